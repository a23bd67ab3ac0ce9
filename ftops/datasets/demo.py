"""Demo stage: collect production examples, build a dataset version (triggers: ftops.loop.demo)."""

from __future__ import annotations

from ftops.common.demo import DemoContext
from ftops.datasets.services import dataset_version_build, examples_collect_production


def run(ctx: DemoContext) -> None:
    collected = examples_collect_production()
    ctx.log(f"collected {collected.created} production examples from {collected.considered} good interactions "
            f"(rejected: {collected.rejected or 'none'})")
    version = dataset_version_build(seed=ctx.seed, actor="demo")
    report = version.quality_report
    sizes = report["split_sizes"]
    ctx.log(f"dataset version {version.number} ({version.content_hash[:12]}): {sizes}; "
            f"zero-shot tools {report['zero_shot_tools']}; test composition {report['test_composition']}")
    ctx.log(f"quality: {report['tools_covered']} tools, diversity {report['diversity_score']}, "
            f"{report['duplicates_removed']} duplicates and {report['contamination_removed']} contaminated removed, "
            f"{report['conflicts_count']} conflicts")
    ctx.shared["dataset_version"] = version
    ctx.summary.update({
        "dataset_version": version.number,
        "train_examples": sizes["train"],
        "test_examples": sizes["test"],
        "holdout_examples": sizes["holdout"],
        "duplicates_removed": report["duplicates_removed"],
    })
