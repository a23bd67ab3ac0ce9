"""Demo stage: the base model and the tuned adapter on the dataset version's test split.

Both evaluations are stored as runs (see /evaluation/), and the summary reports exact match
per split dimension for each: new phrasings, zero-shot tools and multi-step sequences. Each
model is evaluated twice, free and with schema-constrained decoding (``constrained``: tool
calls forced to the offered tools' schemas); the constrained numbers carry a ``_constrained``
suffix (``tuned_exact_new_phrasings_constrained``).
"""

from __future__ import annotations

from typing import Any

from ftops.common.demo import DemoContext

DIMENSIONS = (("new_phrasing", "new_phrasings"), ("zero_shot_tool", "zero_shot_tools"), ("multi_step", "multi_step"))
NEEDED = ("dataset_version", "base_model_path", "tuned_adapter_path")


def run(ctx: DemoContext) -> None:
    missing = [key for key in NEEDED if not ctx.shared.get(key)]
    if missing:
        ctx.log(f"evaluation skipped: earlier stages did not provide {', '.join(missing)}")
        return
    from ftops.evaluation.selectors import runs_compare
    from ftops.evaluation.services import eval_run_create, eval_run_execute, eval_suite_for_dataset

    version = ctx.shared["dataset_version"]
    suite = eval_suite_for_dataset(dataset_version=version, split="test")
    base_config: dict[str, Any] = {"kind": "hf_local", "model_path": str(ctx.shared["base_model_path"]),
                                   "batch_size": 32, "max_new_tokens": 160}
    tuned_config = {**base_config, "adapter_path": str(ctx.shared["tuned_adapter_path"])}
    configs = {"base": base_config, "tuned": tuned_config,
               "base_constrained": {**base_config, "constrained": True},
               "tuned_constrained": {**tuned_config, "constrained": True}}
    runs = {}
    for label, config in configs.items():
        created = eval_run_create(suite=suite, adapter_config=config, name=f"demo {label}", created_by="demo",
                                  enqueue=False)
        run_row = eval_run_execute(run_id=created.pk)
        if run_row.status != run_row.Status.SUCCEEDED:
            ctx.fail(f"{label} evaluation failed: {run_row.error}")
            return
        runs[label] = run_row
        by_dimension = run_row.metrics.get("by_dimension") or {}
        ctx.log(f"{label}: exact {run_row.exact:.1f}% of {run_row.metrics['overall']['n']} test cases "
                f"(run #{run_row.pk}, p50 {run_row.metrics['latency_ms']['p50']:.0f} ms)")
        for dimension, key in DIMENSIONS:
            row = by_dimension.get(dimension)
            if row is None:
                ctx.log(f"  {dimension}: no test cases")
            model, _, constrained = label.partition("_")
            summary_key = f"{model}_exact_{key}" + (f"_{constrained}" if constrained else "")
            ctx.summary[summary_key] = round(float(row["exact"]) if row else 0.0, 1)
    comparison = runs_compare(base=runs["base"], other=runs["tuned"])
    for row in comparison.groups.get("category", []):
        ctx.log(f"  {row.name}: base {row.base_exact}% -> tuned {row.other_exact}% ({row.delta:+.1f})"
                if row.delta is not None else f"  {row.name}: only in one run")
    ctx.shared["eval_runs"] = runs
