"""The registry demo stage: registers the tuned model and gates it on the runs already made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ftops.common.demo import DemoContext
from ftops.evaluation.models import EvalRun
from ftops.evaluation.services import eval_suite_for_dataset
from ftops.training.models import TrainingRun
from registry import demo
from registry.models import ModelVersion, VersionStatus
from tests.evaluation.factories import dataset_version
from tests.registry.factories import finished_run

pytestmark = pytest.mark.django_db


def test_demo_skips_without_a_training_run() -> None:
    lines: list[str] = []
    ctx = DemoContext(out=lines.append)
    demo.run(ctx)
    assert lines == ["registry skipped: no training run from the earlier stages"] and ctx.summary == {}


def test_demo_registers_gates_and_asks_for_approval(settings: Any, tmp_path: Path) -> None:
    config = tmp_path / "ft_ops_config.yaml"
    config.write_text("evaluation:\n  deployment_criteria:\n    min_cases: 3\n    min_group_cases: 1\n")
    settings.FTOPS_CONFIG_FILE = str(config)
    data = dataset_version()
    run = TrainingRun.objects.create(backend="lora", base_model="/m/base", status="succeeded", dataset_version=data,
                                     artifact_path="/a/adapter", created_by="demo")
    suite = eval_suite_for_dataset(dataset_version=data, split="test")
    base, tuned = finished_run(suite, exact=20.0, n=5), finished_run(suite, exact=80.0, n=5)
    EvalRun.objects.filter(pk=base.pk).update(adapter_config={"kind": "hf_local", "model_path": "/m/base",
                                                              "batch_size": 32})
    EvalRun.objects.filter(pk=tuned.pk).update(adapter_config={"kind": "hf_local", "model_path": "/m/base",
                                                               "adapter_path": "/a/adapter", "batch_size": 32})
    ctx = DemoContext(out=lambda line: None, shared={"training_run": run, "eval_runs": {"base": base, "tuned": tuned}})
    demo.run(ctx)
    version = ModelVersion.objects.get(training_run=run)
    assert version.status == VersionStatus.GATES_PASSED and ctx.failures == []
    assert ctx.summary["model_version"] == "ftops-base-v1.0.0 (initial, lora, scope enterprise)"
    assert ctx.summary["gates"].startswith("passed (") and "vs base model /m/base" in ctx.summary["gates"]
    assert ctx.summary["release"].startswith("gates_passed: awaiting an approver")
    assert EvalRun.objects.get(pk=tuned.pk).model_version_id == version.pk


def test_demo_refuses_runs_of_another_model(tmp_path: Path) -> None:
    data = dataset_version()
    run = TrainingRun.objects.create(backend="lora", base_model="/m/base", status="succeeded", dataset_version=data,
                                     artifact_path="/a/adapter")
    suite = eval_suite_for_dataset(dataset_version=data, split="test")
    base, other = finished_run(suite, exact=20.0, n=5), finished_run(suite, exact=80.0, n=5)
    ctx = DemoContext(out=lambda line: None, shared={"training_run": run, "eval_runs": {"base": base, "tuned": other}})
    demo.run(ctx)
    assert ctx.failures and "did not score" in ctx.failures[0]
    assert ModelVersion.objects.get(training_run=run).status == VersionStatus.REGISTERED
