"""The demo stage ingests generated traffic in batches and reports what it stored."""

from __future__ import annotations

from typing import Any

import pytest

from ftops.common.demo import DemoContext
from ftops.interactions import demo
from ftops.interactions.models import Interaction


def test_stage_ingests_in_batches_and_is_rerunnable(
    catalog: Any, payload: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    generated = [payload(f"demo-{i}", user_feedback=1 if i % 5 == 0 else 5,
                         response_text="mail ops@acme.example" if i % 2 else "ok") for i in range(1200)]
    monkeypatch.setattr(demo, "_payloads", lambda ctx: generated)
    lines: list[str] = []
    ctx = DemoContext(seed=7, out=lines.append)
    demo.run(ctx)
    assert ctx.summary == {"interactions": 1200, "failures": 240, "pii_redactions": 600}
    assert lines[:2] == ["ingested 1000/1200 interactions", "ingested 1200/1200 interactions"]
    # Second run: same ids with other bodies (new timestamps) are kept, not refused.
    monkeypatch.setattr(demo, "_payloads", lambda ctx: [{**p, "timestamp": "2025-04-01T00:00:00Z"} for p in generated])
    again = DemoContext(seed=7, out=lines.append)
    demo.run(again)
    assert again.summary == ctx.summary
    assert Interaction.objects.count() == 1200


def test_stage_with_the_sample_enterprise(db: Any) -> None:
    from ftops.catalog.services import load_sample_enterprise

    load_sample_enterprise(seed=7)
    ctx = DemoContext(seed=7, quick=True, out=lambda m: None)
    demo.run(ctx)
    total = ctx.summary["interactions"]
    assert total == 600
    assert 0.08 * total <= ctx.summary["failures"] <= 0.30 * total
    assert ctx.summary["pii_redactions"] > 0
    assert Interaction.objects.filter(call_verdict="invalid").exists()
