"""DPO runs: a succeeded LoRA run's adapter continued with TRL's DPO trainer.

A DPO run is a ``lora`` run whose config says ``"method": "dpo"`` (the artifact is a LoRA
adapter of the same base model, registered and served like any other). The run names its
starting point by run id (``config.from_run``), never by a path: the adapter folder and
the base model are read from that run's row, so a caller cannot point training at a file
of its choosing. Pairs are every review correction in the version's
train split (the reviewer's answer against the model's) plus, unless ``self_pairs`` is off,
the starting adapter's own wrong answers on the train split.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftops.core.ml.dpo import CARD_JSON, DpoTrainConfig, PreferencePair, correction_pair, self_pairs_from, train_dpo
from ftops.training.backends import BackendResult, Context

if TYPE_CHECKING:
    from ftops.core.records import Record
    from ftops.training.models import TrainingRun

PATH_KEYS = ("adapter_path", "base_model")


def is_dpo(config: dict[str, Any]) -> bool:
    return isinstance(config, dict) and config.get("method") == "dpo"


class DpoBackend:
    name = "lora"  # runs as the lora backend's "dpo" method

    def default_base_model(self) -> str:
        return ""  # always the LoRA run's

    def parse_config(self, data: dict[str, Any], *, base_model: str) -> DpoTrainConfig:
        from ftops.training.models import Backend, RunStatus, TrainingRun

        data = dict(data)
        refused = sorted(k for k in PATH_KEYS if data.get(k))
        if refused:
            raise ValueError({k: "not accepted: give from_run, the id of the LoRA run to continue" for k in refused})
        if data.pop("service", ""):
            raise ValueError({"service": "DPO runs continue a LoRA run on all of its services; leave it empty"})
        from_run = data.get("from_run")
        if not isinstance(from_run, int) or isinstance(from_run, bool) or from_run < 1:
            raise ValueError({"from_run": "the id of a succeeded LoRA training run"})
        parent = TrainingRun.objects.filter(pk=from_run).first()
        if parent is None or parent.backend != Backend.LORA or is_dpo(parent.config):
            raise ValueError({"from_run": f"no LoRA training run {from_run}"})
        if parent.status != RunStatus.SUCCEEDED or not parent.artifact_path:
            raise ValueError({"from_run": f"LoRA run {from_run} is {parent.status}; it must have succeeded"})
        if base_model and Path(base_model) != Path(parent.base_model):
            raise ValueError({"base_model": f"the LoRA run was trained on {parent.base_model}; leave it empty"})
        cfg = DpoTrainConfig.from_dict({**data, "base_model": parent.base_model, "adapter_path": parent.artifact_path})
        errors = cfg.validate()
        if errors:
            raise ValueError(errors)
        return cfg

    def run(self, *, run: TrainingRun, ctx: Context, train: list[Record], val: list[Record],
            rules: list[str]) -> BackendResult:
        from ftops.core.adapters import HFLocalAdapter

        cfg = DpoTrainConfig.from_dict(run.config)
        if not (Path(cfg.adapter_path) / "adapter_config.json").is_file():
            raise RuntimeError(f"the adapter of LoRA run {cfg.from_run} is gone from {cfg.adapter_path}")
        pairs: list[PreferencePair] = []
        unusable = 0
        for record in train:
            try:
                pair = correction_pair(record)
            except ValueError:
                unusable += 1
                continue
            if pair is not None:
                pairs.append(pair)
        ctx.log(f"{len(pairs)} preference pairs from review corrections"
                + (f" ({unusable} corrections hold no usable pair)" if unusable else ""))
        if cfg.self_pairs and cfg.max_self_pairs:
            adapter = HFLocalAdapter(cfg.base_model, cfg.adapter_path, batch_size=cfg.self_pair_batch,
                                     max_new_tokens=cfg.max_new_tokens, threads=cfg.threads)
            taken = {p.record_id for p in pairs}
            own = self_pairs_from(adapter, [r for r in train if r.id not in taken], limit=cfg.max_self_pairs)
            ctx.log(f"{len(own)} preference pairs from the adapter's own mistakes on the train split")
            pairs.extend(own)
            ctx.check()

        def on_step(step: int, total: int, loss: float) -> None:
            ctx.progress(step=step, total_steps=total, loss=loss, force=step == total)
            if step == total or step % max(1, total // 10) == 0:
                ctx.log(f"step {step}/{total} DPO loss {loss:.4f}")
            ctx.check()

        result = train_dpo(cfg, pairs, Path(ctx.artifact_dir), on_log=ctx.log, on_step=on_step)
        ctx.replace_series(losses=[list(x) for x in result.losses], val_losses=[])
        card = json.loads((Path(result.adapter_dir) / CARD_JSON).read_text())
        metrics = {k: v for k, v in result.to_dict().items() if k not in ("losses", "adapter_dir")}
        metrics["final_loss"] = result.loss_after
        return BackendResult(artifact_path=result.adapter_dir, artifact_bytes=result.adapter_bytes, metrics=metrics,
                             model_ref=result.adapter_dir, card=card)
