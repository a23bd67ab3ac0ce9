"""The demo pipeline: each stage is ``ftops.<app>.demo.run(ctx)`` and adds to the summary.

Stages run in pipeline order; a stage module that does not exist yet is skipped, so the
demo always runs whatever the pipeline can do so far.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

STAGES = [
    "ftops.catalog.demo",  # sample enterprise: services, tools, examples
    "ftops.interactions.demo",  # simulated production traffic through the ingest path
    "review.demo",  # failures into the review queue
    "ftops.datasets.demo",  # curation and a dataset version
    "ftops.training.demo",  # tiny base model, LoRA training
    "ftops.evaluation.demo",  # base vs tuned on the test split
    "registry.demo",  # register the tuned model, run the gates, ask an approver
    "ftops.gateway.demo",  # serve through the gateway: one canary promoted, one rolled back
    "ftops.discovery.demo",  # publish the services, aggregate from our own endpoints
    "ftops.loop.demo",  # retraining triggers over everything above
]


@dataclass
class DemoContext:
    seed: int = 7
    quick: bool = False
    out: Callable[[str], None] = print
    summary: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)  # handed from stage to stage
    failures: list[str] = field(default_factory=list)  # stages that could not do their work

    def log(self, message: str) -> None:
        self.out(message)

    def fail(self, message: str) -> None:
        """Log a stage failure; the demo command still prints its summary, then exits non-zero."""
        self.failures.append(message)
        self.out(message)


def run_demo(ctx: DemoContext) -> DemoContext:
    for module_name in STAGES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        started = time.monotonic()
        ctx.log(f"-- {module_name.rsplit('.', 2)[-2]} --")
        module.run(ctx)
        ctx.summary.setdefault("stage_seconds", {})[module_name] = round(time.monotonic() - started, 1)
    return ctx
