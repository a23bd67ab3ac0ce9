"""The few-shot backend: the artifact is a system prompt (examples + domain rules).

The prompt comes from ``ftops.core.fewshot``, the builder evaluation uses for few-shot
adapters too, so a prompt evaluated from a dataset split is the prompt training ships.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftops.core.fewshot import FewShotConfig, build_fewshot
from ftops.training.backends import BackendResult, Context

if TYPE_CHECKING:
    from ftops.core.records import Record
    from ftops.training.models import TrainingRun


def _tokenizer(base_model: str) -> Any:
    # Counting with the real tokenizer only when it is on disk: a prompt build must not
    # download or train anything.
    if not base_model or not (Path(base_model) / "tokenizer_config.json").exists():
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_model)


class FewShotBackend:
    name = "fewshot"

    def default_base_model(self) -> str:
        from ftops.training.backends.lora import embedded_base_model

        return embedded_base_model()

    def parse_config(self, data: dict[str, Any], *, base_model: str) -> FewShotConfig:
        cfg = FewShotConfig.from_dict({**data, "base_model": base_model})
        errors = cfg.validate()
        if errors:
            raise ValueError(errors)
        return cfg

    def run(self, *, run: TrainingRun, ctx: Context, train: list[Record], val: list[Record],
            rules: list[str]) -> BackendResult:
        cfg = FewShotConfig.from_dict(run.config)
        ctx.progress(step=0, total_steps=2, force=True)
        built = build_fewshot(train, cfg, rules=rules, tokenizer=_tokenizer(cfg.base_model))
        out = Path(ctx.artifact_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "prompt.txt").write_text(built.prompt)
        (out / "fewshot.json").write_text(json.dumps(built.to_dict(), indent=2))
        ctx.log(f"fewshot: {len(built.example_ids)} examples covering {len(built.tools_covered)} tools, "
                f"{built.failures_included} past failures, {built.prompt_tokens} prompt tokens "
                f"({built.prompt_chars} characters)")
        if built.tools_missing:
            ctx.log(f"fewshot: no example demonstrates {', '.join(built.tools_missing)}")
        ctx.progress(step=2, total_steps=2, force=True)
        metrics = {"prompt_tokens": built.prompt_tokens, "token_count_method": built.token_count_method,
                   "prompt_chars": built.prompt_chars,
                   "examples": len(built.example_ids), "tools_covered": len(built.tools_covered),
                   "tools_missing": built.tools_missing, "failures_included": built.failures_included}
        return BackendResult(artifact_path=str(out / "prompt.txt"), artifact_bytes=len(built.prompt.encode()),
                             artifact=built.to_dict(), metrics=metrics, model_ref=str(out / "prompt.txt"),
                             card={"kind": "few-shot-prompt", "base_model": cfg.base_model, "config": cfg.to_dict(),
                                   "metrics": metrics})
