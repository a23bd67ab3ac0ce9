"""The loop's demo stage evaluates the triggers over what earlier stages left and says why each did or did not fire."""

from __future__ import annotations

from ftops.catalog.models import Service
from ftops.common.demo import STAGES, DemoContext
from ftops.datasets.services import example_create
from ftops.loop import demo
from tests.datasets.conftest import refund_expected


def test_the_loop_stage_runs_after_the_registry() -> None:
    assert STAGES.index("ftops.loop.demo") > STAGES.index("registry.demo") > STAGES.index("ftops.datasets.demo")


def test_demo_stage_logs_firings_and_skips(payments: Service) -> None:
    for k in range(100):  # the configured threshold (curation.min_examples) in ft_ops_config.yaml
        example_create(service=payments, user_query=f"Refund {k + 1} euros on pay_{k}", behavior="call",
                       expected=refund_expected(f"pay_{k}", float(k + 1)), source="manual", quality="high")
    lines: list[str] = []
    ctx = DemoContext(out=lines.append)
    demo.run(ctx)
    assert ctx.summary["triggers_fired"] == 1
    # The firing starts one triggered cycle for its scope; in this test's transaction its stages
    # never commit, so none ran (test_cycles runs them); the demo still prints its line.
    from ftops.loop.models import Cycle

    cycle = Cycle.objects.get()
    assert (cycle.scope, cycle.origin, cycle.folded.count()) == ("payments", "trigger", 1)
    assert "cycle: 0/10" in lines
    assert any(line.startswith("trigger fired: 100 new high-quality examples for payments") for line in lines)
    assert "trigger stale_accuracy skipped: no evaluation run older than 30 days to compare with" in lines
