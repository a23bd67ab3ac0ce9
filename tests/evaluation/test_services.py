"""Evaluation runs: suites, BFCL import, run lifecycle, stored metrics and failures, comparison."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from ftops.common.errors import Conflict, NotFound, ValidationFailed
from ftops.evaluation.models import EvalCase, EvalFailure, EvalRun, EvalSuite, RunStatus
from ftops.evaluation.selectors import runs_compare
from ftops.evaluation.services import (
    bfcl_suite_import,
    eval_run_cancel,
    eval_run_create,
    eval_run_execute,
    eval_suite_for_dataset,
)
from tests.evaluation.factories import dataset_version, oracle_answers
from tests.evaluation.helpers import NO_ANSWERS, write_mini_bfcl
from tests.evaluation.openai_server import tool_calls

pytestmark = pytest.mark.django_db


def replay_file(path: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"kind": "replay", "path": str(path)}


@pytest.fixture
def mini_suite(tmp_path: Path) -> EvalSuite:
    return bfcl_suite_import(data_dir=write_mini_bfcl(tmp_path / "bfcl"), name="mini").suite


def bfcl_answers(tmp_path: Path, *, second_right: bool) -> dict[str, Any]:
    return replay_file(tmp_path / f"answers-{second_right}.jsonl", [
        {"id": "simple_python_0", "result": [{"calc_area": {"base": 10, "height": 5}}]},
        {"id": "simple_python_1", "result": [{"calc.area": {"base": 3, "height": 4.0,
                                                            "unit": "cm" if second_right else "inches"}}]},
        {"id": "irrelevance_0", "result": "I cannot answer that."},
    ])


def test_bfcl_import_is_idempotent(tmp_path: Path) -> None:
    data = write_mini_bfcl(tmp_path)
    first = bfcl_suite_import(data_dir=data, name="mini")
    assert (first.created, first.unchanged, first.cases) == (True, False, 3)
    assert first.suite.categories == {"simple_python": 2, "irrelevance": 1}
    assert list(EvalCase.objects.order_by("position").values_list("case_id", "category")) == [
        ("simple_python_0", "simple_python"), ("simple_python_1", "simple_python"), ("irrelevance_0", "irrelevance")]
    again = bfcl_suite_import(data_dir=data, name="mini")
    assert (again.created, again.unchanged, again.suite.pk) == (False, True, first.suite.pk)
    assert EvalCase.objects.count() == 3


def test_bfcl_import_refuses_to_rewrite_a_suite_in_use(tmp_path: Path, mini_suite: EvalSuite) -> None:
    eval_run_create(suite=mini_suite, adapter_config=bfcl_answers(tmp_path, second_right=True), enqueue=False)
    before = (mini_suite.content_hash, EvalCase.objects.count())
    with pytest.raises(Conflict, match="already exists with other content"):
        bfcl_suite_import(data_dir=tmp_path / "bfcl", categories=["simple_python"], name="mini")
    mini_suite.refresh_from_db()
    assert (mini_suite.content_hash, EvalCase.objects.count()) == before


def test_bfcl_import_names_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as caught:
        bfcl_suite_import(data_dir=write_mini_bfcl(tmp_path), categories=["parallel"])
    assert caught.value.fields == {"categories": ["choose from ['simple_python', 'irrelevance']"]}
    with pytest.raises(ValidationFailed, match="does not exist"):
        bfcl_suite_import(data_dir=tmp_path / "missing")
    assert EvalSuite.objects.count() == 0


@pytest.mark.parametrize(("kwargs", "field"), [
    ({}, "adapter_config"),
    ({"adapter_config": {"kind": "openai", "model": "m"}}, "adapter_config.credential"),
    ({"adapter_config": NO_ANSWERS, "model_version_id": 3}, "adapter_config"),
    ({"adapter_config": NO_ANSWERS, "limit": 0}, "limit"),
    ({"adapter_config": NO_ANSWERS, "categories": ["parallel"]}, "categories"),
])
def test_run_create_rejects_bad_input_and_creates_nothing(mini_suite: EvalSuite, kwargs: dict[str, Any],
                                                           field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        eval_run_create(suite=mini_suite, enqueue=False, **kwargs)
    assert field in caught.value.fields
    assert EvalRun.objects.count() == 0


def test_unknown_model_version_is_refused(mini_suite: EvalSuite) -> None:
    with pytest.raises((NotFound, ValidationFailed)):
        eval_run_create(suite=mini_suite, model_version_id=987654, enqueue=False)
    assert EvalRun.objects.count() == 0


def test_model_versions_become_adapter_configs(mini_suite: EvalSuite, make_credential: Any) -> None:
    # The registry hands its resolver down (registry.apps); configs come from each version's serving record.
    from registry.models import ModelVersion
    from registry.services import model_version_register

    make_credential("openai", "https://api.openai.com/v1")
    lora = model_version_register(base_model="/models/base", artifact_path="/a/lora")
    shots = model_version_register(base_model="/models/base", backend="fewshot", serving={
        "kind": "fewshot", "prompt": "Amounts are in cents.",
        "base": {"kind": "hf_local", "model_path": "/models/base"}})
    tuned = model_version_register(base_model="gpt-4o-mini", backend="openai", artifact_path="ft:gpt-4o-mini:acme::x1")
    runs = [eval_run_create(suite=mini_suite, model_version_id=v.pk, enqueue=False) for v in (lora, shots, tuned)]
    assert [(r.model_version_id, r.model_label) for r in runs] == [
        (lora.pk, lora.name), (shots.pk, shots.name), (tuned.pk, tuned.name)]
    assert runs[0].adapter_config == {"kind": "hf_local", "model_path": "/models/base", "adapter_path": "/a/lora"}
    assert runs[1].adapter_config == {"kind": "fewshot", "prompt": "Amounts are in cents.",
                                      "inner": {"kind": "hf_local", "model_path": "/models/base"}}
    assert runs[2].adapter_config == {"kind": "openai", "credential": "openai", "model": "ft:gpt-4o-mini:acme::x1"}
    ModelVersion.objects.filter(pk=shots.pk).update(serving={})
    with pytest.raises(ValidationFailed, match="no serving config"):
        eval_run_create(suite=mini_suite, model_version_id=shots.pk, enqueue=False)
    assert EvalRun.objects.count() == 3


def test_run_stores_metrics_per_category_and_failures(tmp_path: Path, mini_suite: EvalSuite) -> None:
    run = eval_run_create(suite=mini_suite, adapter_config=bfcl_answers(tmp_path, second_right=False), name="r",
                          enqueue=False)
    assert (run.status, run.model_label) == (RunStatus.QUEUED, "replay: answers-False.jsonl")
    run = eval_run_execute(run_id=run.pk)
    assert (run.status, run.exact, run.progress_done, run.progress_total) == (RunStatus.SUCCEEDED, 66.67, 3, 3)
    assert run.metrics["by_category"] == {
        "irrelevance": {"n": 1, "exact": 100.0, "tool": 100.0, "args": 100.0, "values": 100.0},
        "simple_python": {"n": 2, "exact": 50.0, "tool": 100.0, "args": 100.0, "values": 50.0},
    }
    assert run.metrics["by_service"] == {"bfcl": {"n": 3, "exact": 66.67, "tool": 100.0, "args": 100.0,
                                                  "values": 66.67}}
    assert run.metrics["by_tool"]["calc.area"]["n"] == 2
    failure = EvalFailure.objects.get(run=run)
    assert (failure.record_id, failure.category, failure.error_type) == ("simple_python_1", "simple_python",
                                                                        "value_error:string")
    assert failure.expected == {"behavior": "call", "calls": [
        {"name": "calc.area", "arguments": {"base": [3], "height": [4.0], "unit": ["cm"]}}]}
    assert failure.got["calls"] == [{"name": "calc.area", "arguments": {"base": 3, "height": 4.0, "unit": "inches"}}]
    assert failure.user_query == "Triangle 3 by 4 in cm"
    assert failure.partial == {"tool": True, "args": True, "values": False, "steps_passed": 0, "steps_total": 0}


def test_executing_twice_changes_nothing(tmp_path: Path, mini_suite: EvalSuite) -> None:
    run = eval_run_create(suite=mini_suite, adapter_config=bfcl_answers(tmp_path, second_right=False), enqueue=False)
    first = eval_run_execute(run_id=run.pk)
    again = eval_run_execute(run_id=run.pk)
    assert (again.status, again.finished_at, again.metrics) == (first.status, first.finished_at, first.metrics)
    assert EvalFailure.objects.filter(run=run).count() == 1
    with pytest.raises(NotFound):
        eval_run_execute(run_id=run.pk + 100)


def test_a_live_claim_is_respected_and_a_stale_one_taken_over(tmp_path: Path, mini_suite: EvalSuite) -> None:
    run = eval_run_create(suite=mini_suite, adapter_config=bfcl_answers(tmp_path, second_right=True), enqueue=False)
    EvalRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease_owner="w1", attempts=1,
                                             lease_expires_at=timezone.now() + timedelta(minutes=5))
    held = eval_run_execute(run_id=run.pk, owner="w2")
    assert (held.status, held.lease_owner, held.attempts) == (RunStatus.RUNNING, "w1", 1)
    # w1 died: its lease ran out, so the next delivery takes the run over and finishes it.
    EvalRun.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    done = eval_run_execute(run_id=run.pk, owner="w2")
    assert (done.status, done.attempts, done.lease_owner, done.error) == (RunStatus.SUCCEEDED, 2, "", "")


def test_a_broken_model_marks_the_run_failed(mini_suite: EvalSuite, tmp_path: Path) -> None:
    config = bfcl_answers(tmp_path, second_right=True)
    run = eval_run_create(suite=mini_suite, adapter_config=config, enqueue=False)
    (tmp_path / config["path"]).unlink()  # gone by the time the worker starts
    run = eval_run_execute(run_id=run.pk)
    assert run.status == RunStatus.FAILED
    assert run.error == "AdapterConfigError: path: no readable results file at this path inside the artifacts folder"
    assert run.exact is None and not EvalFailure.objects.exists()


def test_category_filter_and_limit(tmp_path: Path, mini_suite: EvalSuite) -> None:
    config = bfcl_answers(tmp_path, second_right=True)
    only = eval_run_execute(run_id=eval_run_create(suite=mini_suite, adapter_config=config, enqueue=False,
                                                   categories=["irrelevance"]).pk)
    assert list(only.metrics["by_category"]) == ["irrelevance"]
    first = eval_run_execute(run_id=eval_run_create(suite=mini_suite, adapter_config=config, limit=1,
                                                    enqueue=False).pk)
    assert first.metrics["overall"]["n"] == 1


def test_enqueued_run_executes_once_committed(tmp_path: Path, mini_suite: EvalSuite,
                                              django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run = eval_run_create(suite=mini_suite, adapter_config=bfcl_answers(tmp_path, second_right=True))
    assert len(callbacks) == 1
    run.refresh_from_db()
    assert (run.status, run.exact) == (RunStatus.SUCCEEDED, 100.0)


def test_task_is_routed_to_the_evaluation_queue() -> None:
    from ftops.celery import app
    from ftops.evaluation.tasks import eval_run_execute_task

    route = app.amqp.router.route({}, eval_run_execute_task.name)
    assert route["queue"].name == "evaluation"


def test_cancel(tmp_path: Path, mini_suite: EvalSuite) -> None:
    run = eval_run_create(suite=mini_suite, adapter_config=bfcl_answers(tmp_path, second_right=True), enqueue=False)
    assert eval_run_cancel(run=run).status == RunStatus.CANCELLED
    assert eval_run_execute(run_id=run.pk).status == RunStatus.CANCELLED
    done = eval_run_execute(run_id=eval_run_create(suite=mini_suite, adapter_config=bfcl_answers(
        tmp_path, second_right=True), enqueue=False).pk)
    with pytest.raises(Conflict, match="has already succeeded"):
        eval_run_cancel(run=done)


def test_a_run_cancelled_while_running_stops_and_stays_cancelled(tmp_path: Path, mini_suite: EvalSuite) -> None:
    run = eval_run_create(suite=mini_suite, adapter_config=bfcl_answers(tmp_path, second_right=True), enqueue=False)

    class CancelsMidway:
        name = "cancels"

        def generate(self, requests: list[Any]) -> list[Any]:
            eval_run_cancel(run=EvalRun.objects.get(pk=run.pk))
            from ftops.core.adapters import ModelOutput

            return [ModelOutput(calls=[]) for _ in requests]

    stopped = eval_run_execute(run_id=run.pk, adapter=CancelsMidway())
    assert (stopped.status, stopped.exact, stopped.metrics) == (RunStatus.CANCELLED, None, {})
    assert not EvalFailure.objects.exists()


def test_dataset_suite_scores_by_split_dimension(tmp_path: Path) -> None:
    version = dataset_version()
    suite = eval_suite_for_dataset(dataset_version=version, split="test")
    assert eval_suite_for_dataset(dataset_version=version, split="test").pk == suite.pk
    from ftops.datasets.selectors import dataset_records

    records = dataset_records(version=version, split="test")
    rows = [{"id": r.id, **answer} for r, answer in zip(records, oracle_answers(), strict=True)]
    run = eval_run_execute(run_id=eval_run_create(suite=suite, adapter_config=replay_file(tmp_path / "o.jsonl", rows),
                                                  enqueue=False).pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert {k: v["exact"] for k, v in run.metrics["by_dimension"].items()} == {
        "multi_step": 100.0, "new_phrasing": 50.0, "seen_phrasing": 100.0, "zero_shot_tool": 100.0}
    assert {k: v["n"] for k, v in run.metrics["by_category"].items()} == {
        "ask_for_details": 1, "multi_step": 1, "multiple": 1, "simple": 2}
    failure = EvalFailure.objects.get(run=run)
    assert (failure.dimension, failure.category, failure.error_type) == ("new_phrasing", "multiple",
                                                                        "value_error:others")


def test_fewshot_run_builds_its_prompt_from_the_training_split(fake_openai: Any, make_credential: Any) -> None:
    """The wrapped model only answers in cents once the prompt has shown it how."""
    def policy(body: dict[str, Any]) -> dict[str, Any]:
        system = body["messages"][0]["content"] if body["messages"][0]["role"] == "system" else ""
        text = body["messages"][-1]["content"]
        if "Bill customer cus_2" in text:
            amount = 1200 if "in cents" in system else 12
            return tool_calls(("create_payment", {"amount": amount, "customer_id": "cus_2"}))
        return {"content": "?"}

    fake_openai.policy = policy
    version = dataset_version(number=2)
    suite = eval_suite_for_dataset(dataset_version=version, split="test")
    make_credential("local", fake_openai.base_url)
    inner = {"kind": "openai", "credential": "local", "model": "m"}
    config = {"kind": "fewshot", "inner": inner, "examples_from": {"dataset_version": 2, "max_examples": 4}}
    run = eval_run_execute(run_id=eval_run_create(suite=suite, adapter_config=config, enqueue=False).pk)
    plain = eval_run_execute(run_id=eval_run_create(suite=suite, adapter_config=inner, enqueue=False).pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.model_label == "few-shot (dataset v2 train): m via local"
    prompt = run.metrics["fewshot_prompt"]
    assert "User: Charge cus_7 $80" in prompt and "User: Latest order of cus_8?" in prompt
    assert "- amounts: ALL amounts in cents, never dollars" in prompt
    assert "Charge cus_1 $50" not in prompt  # test cases never leak into the prompt
    exact = [r.metrics["by_dimension"]["new_phrasing"]["exact"] for r in (plain, run)]
    assert exact == [0.0, 50.0]
    new_phrasing = {r.record_id for r in EvalFailure.objects.filter(run=run, dimension="new_phrasing")}
    plain_new = {r.record_id for r in EvalFailure.objects.filter(run=plain, dimension="new_phrasing")}
    assert len(plain_new) == 2 and len(new_phrasing) == 1


def test_fewshot_examples_never_come_from_the_test_split(mini_suite: EvalSuite) -> None:
    config = {"kind": "fewshot", "inner": {"kind": "hf_local", "model_path": "m"},
              "examples_from": {"dataset_version": 1, "split": "test"}}
    with pytest.raises(ValidationFailed) as caught:
        eval_run_create(suite=mini_suite, adapter_config=config, enqueue=False)
    assert list(caught.value.fields) == ["adapter_config.examples_from.split"]


def test_dataset_suite_needs_a_ready_version_and_a_known_split() -> None:
    version = dataset_version()
    with pytest.raises(ValidationFailed, match="unknown split"):
        eval_suite_for_dataset(dataset_version=version, split="dev")
    version.status = "running"
    with pytest.raises(ValidationFailed, match="not ready"):
        eval_suite_for_dataset(dataset_version=version, split="test")
    assert EvalSuite.objects.count() == 0


def test_compare_two_runs(tmp_path: Path, mini_suite: EvalSuite) -> None:
    base = eval_run_execute(run_id=eval_run_create(suite=mini_suite, adapter_config=bfcl_answers(
        tmp_path, second_right=False), enqueue=False).pk)
    other = eval_run_execute(run_id=eval_run_create(suite=mini_suite, adapter_config=bfcl_answers(
        tmp_path, second_right=True), enqueue=False).pk)
    comparison = runs_compare(base=base, other=other)
    assert comparison.delta == 33.33
    assert [(r.name, r.base_exact, r.other_exact, r.delta) for r in comparison.groups["category"]] == [
        ("irrelevance", 100.0, 100.0, 0.0), ("simple_python", 50.0, 100.0, 50.0)]
    assert (comparison.comparable_cases, comparison.fixed, comparison.regressed) == (True, ["simple_python_1"], [])
    queued = eval_run_create(suite=mini_suite, adapter_config=bfcl_answers(tmp_path, second_right=True),
                             enqueue=False)
    with pytest.raises(ValidationFailed, match="only finished runs can be compared"):
        runs_compare(base=base, other=queued)
