"""Demo stage: the acme sample enterprise into the catalog (services, tools, examples)."""

from __future__ import annotations

from ftops.catalog.models import Service, Tool
from ftops.catalog.services import load_sample_enterprise
from ftops.common.demo import DemoContext


def run(ctx: DemoContext) -> None:
    report = load_sample_enterprise(seed=ctx.seed)
    if report.pending:
        ctx.log(f"sample enterprise (seed {ctx.seed}): queued as import job {report.job}; a worker writes it")
        return
    ctx.log(f"sample enterprise (seed {ctx.seed}): {len(report.services_created)} services, "
            f"{len(report.tools_created)} tools, {len(report.versions_created)} schema versions created; "
            f"{report.examples_created} examples created, {report.examples_existing} already present")
    ctx.summary["services"] = Service.objects.count()
    ctx.summary["tools"] = Tool.objects.count()
    # The examples are curation's rows (a floor up); the import's report counts them.
    ctx.summary["examples"] = report.examples_created + report.examples_existing
