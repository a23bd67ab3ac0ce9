"""Demo stage: evaluate the retraining triggers over what the earlier stages produced."""

from __future__ import annotations

from ftops.common.demo import DemoContext
from ftops.loop.services import triggers_evaluate


def run(ctx: DemoContext) -> None:
    triggers = triggers_evaluate()
    for event in triggers.fired:
        ctx.log(f"trigger fired: {event.reason}")
    for kind, why in triggers.skipped.items():
        ctx.log(f"trigger {kind} skipped: {why}")
    ctx.summary["triggers_fired"] = len(triggers.fired)
