"""The stylesheet's status colours keep WCAG AA contrast (4.5:1) on their badge tints and on white."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

CSS = (Path(settings.BASE_DIR) / "static" / "css" / "ftops.css").read_text()


def _luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _ratio(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _var(name: str) -> str:
    found = re.search(rf"--{name}:(#[0-9a-fA-F]{{6}})", CSS)
    assert found, name
    return found.group(1)


def _badge_background(kind: str) -> str:
    found = re.search(rf"\.badge\.{kind} \{{ background:(#[0-9a-fA-F]{{6}}); color:var\(--{kind}\); \}}", CSS)
    assert found, kind
    return found.group(1)


def test_status_badges_reach_aa_contrast() -> None:
    for kind in ("good", "bad", "warn"):
        assert _ratio(_var(kind), _badge_background(kind)) >= 4.5, kind
        assert _ratio(_var(kind), "#ffffff") >= 4.5, kind
    assert _ratio(_var("muted"), _var("bg")) >= 4.5


def test_narrow_screen_rule_comes_after_the_layouts_it_overrides() -> None:
    media = CSS.index("@media (max-width: 980px) { .review-layout, .queue-layout")
    assert CSS.index(".queue-layout { display:grid") < media
    assert CSS.index(".review-layout { display:grid") < media
