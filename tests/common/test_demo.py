"""The demo command: summary lines, and a non-zero exit when a stage could not do its work."""

from __future__ import annotations

import io
import sys
import types
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ftops.common import demo

pytestmark = pytest.mark.django_db


@pytest.fixture
def stages(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Replace the pipeline with stage modules whose ``run`` is the given callables."""
    def install(*bodies: Any) -> None:
        names = []
        for i, body in enumerate(bodies):
            name = f"tests.stage{i}.demo"
            module = types.ModuleType(name)
            module.run = body  # type: ignore[attr-defined]
            monkeypatch.setitem(sys.modules, name, module)
            names.append(name)
        monkeypatch.setattr(demo, "STAGES", names)
    return install


def test_summary_lines_and_exit_zero(stages: Any) -> None:
    stages(lambda ctx: ctx.summary.update({"base_exact_new_phrasings": 10.0}))
    out = io.StringIO()
    call_command("demo", "--no-serve", stdout=out)
    text = out.getvalue()
    assert "base_exact_new_phrasings: 10.0" in text.splitlines()
    assert "user 'admin'" in text


def test_a_failed_stage_still_prints_the_summary_then_exits_non_zero(stages: Any) -> None:
    ran: list[str] = []
    stages(lambda ctx: ctx.fail("training failed: out of memory"), lambda ctx: ran.append("next"))
    out = io.StringIO()
    with pytest.raises(CommandError, match="did not finish: training failed: out of memory"):
        call_command("demo", "--no-serve", stdout=out)
    assert ran == ["next"]  # later stages still run and report what they can
    assert "== ftops demo summary ==" in out.getvalue()
