"""The local LoRA backend: ``ftops.core.ml.lora`` with the run's lease and cancel flag."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from ftops.core.ml.lora import CARD_JSON, LoraTrainConfig, TrainProgress, train_lora
from ftops.training.backends import BackendResult, Context

if TYPE_CHECKING:
    from ftops.core.records import Record
    from ftops.training.models import TrainingRun


def embedded_base_model() -> str:
    return str(settings.FTOPS_BASE_MODEL)


class LoraBackend:
    name = "lora"

    def default_base_model(self) -> str:
        return embedded_base_model()

    def parse_config(self, data: dict[str, Any], *, base_model: str) -> Any:
        from ftops.training.backends.dpo import DpoBackend, is_dpo

        if is_dpo(data):  # preference tuning that continues a LoRA run (its own base model)
            return DpoBackend().parse_config(data, base_model=base_model if base_model != embedded_base_model()
                                             else "")
        cfg = LoraTrainConfig.from_dict({**data, "base_model": base_model})
        errors = cfg.validate()
        if errors:
            raise ValueError(errors)
        return cfg

    def run(self, *, run: TrainingRun, ctx: Context, train: list[Record], val: list[Record],
            rules: list[str]) -> BackendResult:
        import json

        from ftops.core.ml.base_model import ensure_base_model
        from ftops.training.backends.dpo import DpoBackend, is_dpo

        if is_dpo(run.config):
            return DpoBackend().run(run=run, ctx=ctx, train=train, val=val, rules=rules)
        cfg = LoraTrainConfig.from_dict(run.config)
        if Path(cfg.base_model) == Path(embedded_base_model()):
            ensure_base_model(Path(cfg.base_model), on_log=ctx.log)

        def on_progress(p: TrainProgress) -> None:
            if p.step % max(1, p.total_steps // 10) == 0 or p.step == p.total_steps:
                val = f", validation {p.val_loss:.4f}" if p.val_loss is not None else ""
                eta = f", ETA {p.eta_s:.0f}s" if p.eta_s is not None else ""
                ctx.log(f"step {p.step}/{p.total_steps} loss {p.loss:.4f}{val}{eta}")
            ctx.progress(step=p.step, total_steps=p.total_steps, loss=p.loss, val_loss=p.val_loss, eta_s=p.eta_s,
                         force=p.checkpoint is not None or p.step == p.total_steps)
            ctx.check()

        result = train_lora(cfg, train, val, Path(ctx.artifact_dir), on_progress=on_progress, resume=True,
                            on_log=ctx.log, identity=ctx.identity)
        # The curve the run keeps is the trainer's own history (restored from the checkpoint on a
        # resume), not what earlier workers flushed: a worker killed between writing a checkpoint
        # and flushing that step's progress left the row a few points short.
        ctx.replace_series(losses=result.losses, val_losses=result.val_losses)
        card = json.loads((Path(result.adapter_dir) / CARD_JSON).read_text())
        metrics = {k: v for k, v in result.to_dict().items() if k not in ("losses", "val_losses", "adapter_dir")}
        return BackendResult(artifact_path=result.adapter_dir, artifact_bytes=result.adapter_bytes,
                             metrics=metrics, model_ref=result.adapter_dir, card=card)
