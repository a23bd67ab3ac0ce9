from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from ftops.core.ml.base_model import ensure_base_model, is_built
from ftops.training.models import RunStatus, TrainingRun
from tests.training.conftest import make_records


@pytest.mark.ml
def test_build_base_model_keeps_an_existing_model(micro_base: Path) -> None:
    out = io.StringIO()
    call_command("build_base_model", "--out", str(micro_base), stdout=out)
    assert "already built" in out.getvalue()
    assert ensure_base_model(micro_base) == micro_base and is_built(micro_base)


def test_build_base_model_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="--time-budget must be >= 0"):
        call_command("build_base_model", "--out", str(tmp_path / "m"), "--time-budget", "-1")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not a model")
    with pytest.raises(CommandError, match="is not an ftops base model"):
        call_command("build_base_model", "--out", str(foreign))
    assert (foreign / "notes.txt").read_text() == "not a model"


def test_ensure_leaves_hub_ids_and_other_models_alone(tmp_path: Path) -> None:
    assert ensure_base_model("Qwen/Qwen2.5-0.5B-Instruct") == Path("Qwen/Qwen2.5-0.5B-Instruct")
    other = tmp_path / "hf-model"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert ensure_base_model(other) == other and not is_built(other)


@pytest.mark.django_db
def test_train_command_runs_a_fewshot_run(make_dataset_version: Any) -> None:
    version = make_dataset_version(train=make_records(12))
    out = io.StringIO()
    call_command("train", "--backend", "fewshot", "--dataset-version", str(version.number), stdout=out)
    run = TrainingRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED and f"run {run.pk} succeeded" in out.getvalue()


@pytest.mark.django_db
def test_train_command_reports_bad_input(make_dataset_version: Any) -> None:
    version = make_dataset_version(train=make_records(4))
    with pytest.raises(CommandError, match="--config is not valid JSON"):
        call_command("train", "--dataset-version", str(version.number), "--config", "{r: 8}")
    with pytest.raises(CommandError, match="config"):
        call_command("train", "--dataset-version", str(version.number), "--config", '{"r": 0}')
    with pytest.raises(CommandError, match="dataset version 999 does not exist"):
        call_command("train", "--dataset-version", "999")
    assert TrainingRun.objects.count() == 0
