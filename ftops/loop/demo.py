"""Demo stage: evaluate the retraining triggers, then run one triggered improvement cycle end to end.

The cycle runs on the embedded default (no broker: each stage's task runs in this process once
the previous stage committed). It trains with the demo's tiny-model LoRA settings (quick when
the demo is quick) with one epoch, so the cycle adds a short training run and two evaluations to the demo.
"""

from __future__ import annotations

import time

from ftops.common.actors import Actor
from ftops.common.demo import DemoContext
from ftops.loop.services import triggers_evaluate


def run(ctx: DemoContext) -> None:
    from ftops.loop.cycles import STAGE_NAMES, cycle_start, scope_for
    from ftops.loop.models import Cycle, CycleOrigin, TriggerEvent
    from ftops.training.demo import demo_lora_config

    triggers = triggers_evaluate()
    for event in triggers.fired:
        ctx.log(f"trigger fired: {event.reason}")
    for kind, why in triggers.skipped.items():
        ctx.log(f"trigger {kind} skipped: {why}")
    ctx.summary["triggers_fired"] = len(triggers.fired)

    # One epoch: the demo's cycle shows every stage working on real data; the accuracy claim
    # belongs to the training stage above, and a second ten-epoch run would double the demo.
    lora = {**demo_lora_config(quick=ctx.quick), "epochs": 1.0}
    params = {"train": {"base_model": str(ctx.shared.get("base_model_path") or ""), "lora": lora}}
    started = time.monotonic()
    if triggers.fired:
        # One triggered cycle: the first firing's scope; the others wait for their own scope's cycle
        # (the served process's scheduler thread starts those after their cooldown).
        first = triggers.fired[0]
        cycle = cycle_start(actor=Actor.system("system:loop"), scope=scope_for(first.service),
                            origin=CycleOrigin.TRIGGER, reason=first.reason, params=params)
    else:
        ctx.log("no trigger fired; the demo starts its cycle by hand instead")
        cycle = cycle_start(actor=Actor.system("demo"), params=params)
    cycle = Cycle.objects.get(pk=cycle.pk)
    seconds = time.monotonic() - started
    stages = list(cycle.stages.order_by("position"))
    done = [s for s in stages if s.status == "succeeded"]
    for stage in stages:
        ctx.log(f"  {stage.name:<9} {stage.status:<9} {stage.note}")
    ctx.log(f"cycle {cycle.pk} ({cycle.scope}, {cycle.origin}): {cycle.status} in {seconds:.1f} s; "
            f"backend {cycle.backend}: {cycle.backend_reason}")
    ctx.log(f"cycle: {len(done)}/{len(STAGE_NAMES)}")
    waiting = TriggerEvent.objects.filter(cycle_link__isnull=True).count()
    if waiting:
        ctx.log(f"{waiting} other firing(s) wait for their scope's next cycle")
    ctx.summary.update({"cycle_stages_done": f"{len(done)}/{len(STAGE_NAMES)}", "cycle_seconds": round(seconds, 1)})
    if cycle.status != "succeeded":
        ctx.fail(f"cycle {cycle.pk} {cycle.status}: {cycle.error}")
