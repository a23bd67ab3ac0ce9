"""Demo stage: the acme sample enterprise into the catalog (services, tools, examples)."""

from __future__ import annotations

from ftops.catalog.models import Service, Tool
from ftops.catalog.services import load_sample_enterprise
from ftops.common.demo import DemoContext
from ftops.datasets.models import TrainingExample


def run(ctx: DemoContext) -> None:
    report = load_sample_enterprise(seed=ctx.seed)
    ctx.log(f"sample enterprise (seed {ctx.seed}): {len(report.services_created)} services, "
            f"{len(report.tools_created)} tools, {len(report.versions_created)} schema versions created; "
            f"{report.examples_created} examples created, {report.examples_existing} already present")
    ctx.summary["services"] = Service.objects.count()
    ctx.summary["tools"] = Tool.objects.count()
    ctx.summary["examples"] = TrainingExample.objects.filter(source="manual").count()
