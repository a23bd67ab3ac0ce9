"""The demo stage: skipped without earlier stages' results; stores both runs when it has them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftops.common.demo import DemoContext
from ftops.evaluation import demo
from ftops.evaluation.models import EvalRun
from tests.evaluation.factories import dataset_version


@pytest.mark.django_db
def test_demo_skips_with_a_log_line_when_inputs_are_missing() -> None:
    lines: list[str] = []
    ctx = DemoContext(out=lines.append, shared={"base_model_path": "/m"})
    demo.run(ctx)
    assert lines == ["evaluation skipped: earlier stages did not provide dataset_version, tuned_adapter_path"]
    assert ctx.summary == {}
    assert EvalRun.objects.count() == 0


@pytest.mark.ml
@pytest.mark.slow
@pytest.mark.timeout(900)  # four evaluations (free and constrained) of a model that never stops early
@pytest.mark.django_db
def test_demo_evaluates_base_and_tuned(tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ftops.core.tiny_model import build_tiny_model

    base = build_tiny_model(tmp_path / "base", seed=1)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    model.save_pretrained(tmp_path / "adapter")
    lines: list[str] = []
    ctx = DemoContext(out=lines.append, shared={"dataset_version": dataset_version(), "base_model_path": str(base),
                                                "tuned_adapter_path": str(tmp_path / "adapter")})
    demo.run(ctx)
    assert set(ctx.summary) == {f"{who}_exact_{dim}{suffix}" for who in ("base", "tuned")
                                for dim in ("new_phrasings", "zero_shot_tools", "multi_step")
                                for suffix in ("", "_constrained")}
    assert all(isinstance(v, float) for v in ctx.summary.values())
    runs = list(EvalRun.objects.order_by("pk"))
    assert [r.name for r in runs] == ["demo base", "demo tuned", "demo base_constrained", "demo tuned_constrained"]
    assert [r.status for r in runs] == ["succeeded"] * 4
    assert runs[1].adapter_config["adapter_path"] == str(tmp_path / "adapter")
    assert [r.adapter_config.get("constrained", False) for r in runs] == [False, False, True, True]
    assert set(ctx.shared["eval_runs"]) == {"base", "tuned", "base_constrained", "tuned_constrained"}
    assert any(line.startswith("base: exact ") for line in lines)
