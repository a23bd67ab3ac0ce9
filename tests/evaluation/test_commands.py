"""manage.py bfcl_import and manage.py evaluate."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from ftops.evaluation.models import EvalRun, EvalSuite, RunStatus
from tests.evaluation.helpers import write_mini_bfcl

pytestmark = pytest.mark.django_db


def run_command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_import_then_evaluate_recorded_answers(tmp_path: Path) -> None:
    data = write_mini_bfcl(tmp_path / "bfcl")
    assert run_command("bfcl_import", "--data-dir", str(data), "--name", "mini").splitlines() == [
        f"suite 'mini' (id {EvalSuite.objects.get().pk}) created: 3 cases", "  simple_python: 2", "  irrelevance: 1"]
    assert "unchanged: 3 cases" in run_command("bfcl_import", "--data-dir", str(data), "--name", "mini")
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"id": "simple_python_0", "result": [{"calc.area": {"base": 10, "height": 5}}]})
                       + "\n" + json.dumps({"id": "irrelevance_0", "result": "no idea"}) + "\n")
    output = run_command("evaluate", "--suite", "mini", "--replay", str(answers))
    run = EvalRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED
    assert output.splitlines()[0] == f"evaluation run {run.pk}: replay: answers.jsonl on mini"
    assert output.splitlines()[1].startswith("exact match: 66.7% of 3 cases")
    assert "  simple_python: 50.0% of 2 (tool 50.0%, args 50.0%)" in output


def test_a_replay_file_outside_the_artifacts_folder_is_copied_in(tmp_path: Path, settings: Any) -> None:
    settings.ARTIFACTS_DIR = tmp_path / "artifacts"
    settings.ARTIFACTS_DIR.mkdir()
    run_command("bfcl_import", "--data-dir", str(write_mini_bfcl(tmp_path / "bfcl")), "--name", "mini")
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"id": "irrelevance_0", "result": "no idea"}) + "\n")
    for _ in range(2):  # the same file twice: one copy
        run_command("evaluate", "--suite", "mini", "--replay", str(answers), "--queue")
    copies = list((tmp_path / "artifacts" / "evaluation" / "replays").iterdir())
    assert [c.read_text() for c in copies] == [answers.read_text()]
    stored = {run.adapter_config["path"] for run in EvalRun.objects.all()}
    assert stored == {f"evaluation/replays/{copies[0].name}"}


def test_evaluate_queue_only_queues(tmp_path: Path) -> None:
    run_command("bfcl_import", "--data-dir", str(write_mini_bfcl(tmp_path)), "--name", "mini")
    output = run_command("evaluate", "--suite", "mini", "--hf-model", str(tmp_path / "model"), "--queue")
    run = EvalRun.objects.get()
    assert output.strip() == f"queued evaluation run {run.pk} ({run.model_label} on mini)"
    assert run.adapter_config == {"kind": "hf_local", "model_path": str(tmp_path / "model"), "batch_size": 16,
                                  "max_new_tokens": 128}


@pytest.mark.parametrize(("args", "message"), [
    (["--suite", "mini"], "name exactly one model"),
    (["--suite", "mini", "--hf-model", "m", "--replay", "r"], "name exactly one model"),
    (["--hf-model", "m"], "name exactly one suite"),
    (["--suite", "nope", "--hf-model", "m"], "evaluation suite 'nope' does not exist"),
    (["--suite", "mini", "--credential", "local"], "--credential needs --openai-model"),
    (["--suite", "mini", "--credential", "nope", "--openai-model", "m"], "no upstream credential named 'nope'"),
    (["--suite", "mini", "--adapter-config", '{"kind": "openai", "credential": "c", "model": "m", "base_url": "h"}'],
     "base_url: not accepted: the endpoint comes from the credential"),
    (["--suite", "mini", "--adapter-config", "{oops"], "--adapter-config is not JSON"),
    (["--suite", "mini", "--hf-model", "m", "--batch-size", "0"], "adapter_config is invalid: batch_size"),
    (["--suite", "mini", "--replay", "/nonexistent.jsonl"], "--replay: cannot read /nonexistent.jsonl"),
])
def test_evaluate_errors(tmp_path: Path, args: list[str], message: str) -> None:
    run_command("bfcl_import", "--data-dir", str(write_mini_bfcl(tmp_path)), "--name", "mini")
    with pytest.raises(CommandError, match=message):
        run_command("evaluate", *args)


def test_import_errors(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="does not exist"):
        run_command("bfcl_import", "--data-dir", str(tmp_path / "none"))
    assert EvalSuite.objects.count() == 0
