"""Acceptance: LoRA on the sample enterprise beats its base model by >= 30 points.

The whole pipeline runs as the demo runs it (sample enterprise -> traffic -> review ->
dataset version -> tiny base model -> LoRA -> evaluation of base and tuned on the test
split), on CPU. Slow (minutes): marked ``ml`` and ``slow``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

# The whole demo pipeline takes minutes on two busy cores (857 s measured with the PostgreSQL pass
# running beside it and other work on the machine): more than the 300 s per-test limit.
pytestmark = [pytest.mark.ml, pytest.mark.slow, pytest.mark.timeout(1800), pytest.mark.django_db(transaction=True)]


def test_tuned_adapter_beats_its_base_by_30_points_on_new_phrasings(capsys: Any) -> None:
    from ftops.common.demo import DemoContext, run_demo
    from ftops.training.models import RunStatus

    lines: list[str] = []
    ctx = run_demo(DemoContext(seed=7, out=lines.append))
    summary = ctx.summary
    with capsys.disabled():
        print("\n".join(lines))
        print({k: v for k, v in summary.items() if k != "stage_seconds"})
    run = ctx.shared["training_run"]
    assert not ctx.failures, ctx.failures
    assert run.status == RunStatus.SUCCEEDED and run.dataset_version == ctx.shared["dataset_version"]
    assert Path(ctx.shared["tuned_adapter_path"], "adapter_model.safetensors").exists()
    assert summary["train_examples"] > 0 and summary["final_loss"] < run.loss_series[0][1]
    gain = summary["tuned_exact_new_phrasings"] - summary["base_exact_new_phrasings"]
    assert gain >= 30.0, summary
    # The other dimensions are reported (their values are not part of the claim).
    for key in ("base_exact_zero_shot_tools", "tuned_exact_zero_shot_tools", "base_exact_multi_step",
                "tuned_exact_multi_step"):
        assert key in summary
