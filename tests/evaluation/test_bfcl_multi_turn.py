"""BFCL multi_turn_base as an evaluation suite: import, runs driven turn by turn through an
OpenAI-compatible endpoint (a local server replaying the ground truth), stored verdicts and pages."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse

from ftops.common.errors import ValidationFailed
from ftops.core.adapters import ReplayAdapter, replay_output
from ftops.core.records import MULTI_TURN, Record
from ftops.evaluation import bfcl_official
from ftops.evaluation.bfcl import BfclEntry, load_category
from ftops.evaluation.bfcl_multi_turn import (
    check_multi_turn,
    evaluate_with_multi_turn,
    ground_truth_result,
    parse_call,
)
from ftops.evaluation.bfcl_official import official_multi_turn_verdict
from ftops.evaluation.models import EvalCase, EvalFailure, EvalRun, EvalSuite, RunStatus
from ftops.evaluation.services import bfcl_suite_import, eval_run_create, eval_run_execute, suite_records
from tests.evaluation.helpers import BFCL_DIR, write_mini_bfcl
from tests.evaluation.openai_server import FakeOpenAI, tool_calls

pytestmark = pytest.mark.django_db

# Multi-turn entries in the runs below (each one is a handful of requests per turn). In 147 a
# later call changes a list an earlier call passed (a tweet's mentions): the recorded call must not.
SUBSET_IDS = ("multi_turn_base_0", "multi_turn_base_1", "multi_turn_base_2", "multi_turn_base_3",
              "multi_turn_base_147")
SUBSET = len(SUBSET_IDS)
ENTRIES = [e for e in load_category(BFCL_DIR, "multi_turn_base") if e.id in SUBSET_IDS]
# One argument changed in the first turn of the first entry: the directory made is another one.
MUTATED_ID, MUTATED_TURN, MUTATED_FROM, MUTATED_TO = "multi_turn_base_0", 0, "mkdir(dir_name='temp')", \
    "mkdir(dir_name='temp_x')"


def mini_data(folder: Path) -> Path:
    """The two single-turn mini categories and the first SUBSET multi-turn entries, in BFCL's layout."""
    write_mini_bfcl(folder)
    for name in ("BFCL_v4_multi_turn_base.json", "possible_answer/BFCL_v4_multi_turn_base.json"):
        lines = [line for line in (BFCL_DIR / name).read_text(encoding="utf-8").splitlines()
                 if line.strip() and json.loads(line)["id"] in SUBSET_IDS]
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.copytree(BFCL_DIR / "multi_turn_func_doc", folder / "multi_turn_func_doc")
    return folder


def truth(entry: BfclEntry, *, mutate: bool) -> list[list[str]]:
    turns = [list(calls) for calls in entry.ground_truth or []]
    if mutate and entry.id == MUTATED_ID:
        assert MUTATED_FROM in turns[MUTATED_TURN]  # the data still holds what this test changes
        turns[MUTATED_TURN] = [MUTATED_TO if c == MUTATED_FROM else c for c in turns[MUTATED_TURN]]
    return turns


def named_arguments(text: str, tools: list[dict[str, Any]]) -> dict[str, Any]:
    """A ground-truth call's arguments by name (chat-completions has no positional arguments)."""
    call = parse_call(text)
    function = next(t["function"] for t in tools if t["function"]["name"] == call.name)
    names = list(function["parameters"].get("properties") or {})
    return {**dict(zip(names, call.args, strict=False)), **dict(call.kwargs)}


def replay_policy(*, mutate: bool = False) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A model that makes each turn's ground-truth calls in one step, then answers in text;
    single-turn mini questions get their right answer."""
    by_request = {str(e.turns[0][0]["content"]): e for e in ENTRIES}

    def policy(body: dict[str, Any]) -> dict[str, Any]:
        messages = body["messages"]
        users = [str(m["content"]) for m in messages if m["role"] == "user"]
        if users[0].startswith("Triangle"):
            base, height = (10, 5.0) if "10 by 5" in users[0] else (3, 4.0)
            return tool_calls(("calc_area", {"base": base, "height": height, **({"unit": "cm"} if "cm" in users[0]
                                                                                 else {})}))
        if users[0] not in by_request:
            return {"content": "I cannot help with that."}
        if messages[-1]["role"] == "tool":
            return {"content": "Done."}
        calls = truth(by_request[users[0]], mutate=mutate)[len(users) - 1]
        if not calls:
            return {"content": "Nothing to do."}
        return tool_calls(*[(parse_call(c).name, named_arguments(c, body["tools"])) for c in calls])

    return policy


@pytest.fixture
def mixed_suite(tmp_path: Path) -> EvalSuite:
    data = mini_data(tmp_path / "bfcl")
    return bfcl_suite_import(data_dir=data, categories=["simple_python", "irrelevance", "multi_turn_base"],
                             name="mixed").suite


@pytest.fixture
def local_model(fake_openai: FakeOpenAI, make_credential: Any) -> dict[str, Any]:
    make_credential("local", fake_openai.base_url)
    return {"kind": "openai", "credential": "local", "model": "replayer", "concurrency": 1}


def test_import_of_multi_turn_base_gives_200_cases() -> None:
    out = io.StringIO()
    call_command("bfcl_import", "--data-dir", str(BFCL_DIR), "--category", "multi_turn_base", "--name", "mt",
                 stdout=out)
    assert out.getvalue().splitlines()[1:] == ["  multi_turn_base: 200"]
    suite = EvalSuite.objects.get(name="mt")
    assert (suite.case_count, suite.categories) == (200, {"multi_turn_base": 200})
    assert EvalCase.objects.filter(suite=suite, category="multi_turn_base").count() == 200
    first = Record.from_dict(EvalCase.objects.get(suite=suite, position=0).record)
    entry = load_category(BFCL_DIR, "multi_turn_base")[0]
    assert (first.id, first.behavior, first.service) == ("multi_turn_base_0", MULTI_TURN, "bfcl")
    assert first.expected["turns"] == entry.turns and first.messages == entry.turns[0]
    assert first.expected["ground_truth"] == entry.ground_truth
    assert first.expected["involved_classes"] == ["TwitterAPI", "GorillaFileSystem"]
    assert first.expected["initial_config"] == entry.initial_config
    offered = {t["function"]["name"] for t in first.tools}
    assert {parse_call(c).name for calls in entry.ground_truth or [] for c in calls} <= offered
    assert {"cd", "mkdir", "post_tweet"} <= offered


def test_multi_turn_is_imported_only_when_named(tmp_path: Path) -> None:
    data = mini_data(tmp_path / "bfcl")
    default = bfcl_suite_import(data_dir=data, name="default")
    assert default.suite.categories == {"simple_python": 2, "irrelevance": 1}
    named = bfcl_suite_import(data_dir=data, categories=["multi_turn_base"], name="named")
    assert named.suite.categories == {"multi_turn_base": SUBSET}


def test_a_replay_of_the_ground_truth_scores_every_case_right(mixed_suite: EvalSuite, local_model: dict[str, Any],
                                                               fake_openai: FakeOpenAI,
                                                               django_capture_on_commit_callbacks: Any) -> None:
    fake_openai.policy = replay_policy()
    # The task path: the run is enqueued once committed (Celery runs eagerly in tests).
    with django_capture_on_commit_callbacks(execute=True):
        run = eval_run_create(suite=mixed_suite, adapter_config=local_model)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.exact, run.progress_done, run.progress_total) == (100.0, 8, 8)
    assert {k: (v["n"], v["exact"]) for k, v in run.metrics["by_category"].items()} == {
        "irrelevance": (1, 100.0), "multi_turn_base": (SUBSET, 100.0), "simple_python": (2, 100.0)}
    assert run.metrics["by_behavior"]["multi_turn"] == {"n": SUBSET, "exact": 100.0, "tool": 100.0, "args": 100.0,
                                                        "values": 100.0}
    assert not EvalFailure.objects.filter(run=run).exists()
    # Every turn was asked for (a request with the user's message) and got its tool results back.
    first_turns = [b for b in fake_openai.requests if b["messages"][0]["content"] == ENTRIES[0].turns[0][0]["content"]]
    assert len([b for b in first_turns if b["messages"][-1]["role"] == "user"]) == len(ENTRIES[0].turns)
    last = first_turns[-1]["messages"]
    assert [m["content"] for m in last if m["role"] == "user"] == [t[0]["content"] for t in ENTRIES[0].turns]
    assert any(m["role"] == "tool" and "final_report.pdf" in m["content"] for m in last)


def test_a_wrong_argument_scores_the_case_wrong_with_bfcls_error_type(
        mixed_suite: EvalSuite, local_model: dict[str, Any], fake_openai: FakeOpenAI) -> None:
    fake_openai.policy = replay_policy(mutate=True)
    run = eval_run_execute(run_id=eval_run_create(suite=mixed_suite, adapter_config=local_model,
                                                  categories=["multi_turn_base"], enqueue=False).pk)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.exact, run.progress_done) == (80.0, SUBSET)
    failure = EvalFailure.objects.get(run=run)
    entry = ENTRIES[0]
    # The verdict BFCL's own checker gives the same calls (one step per turn).
    mutated = [[calls] for calls in truth(entry, mutate=True)]
    raw = {"id": entry.id, "initial_config": entry.initial_config, "involved_classes": list(entry.involved_classes)}
    official = official_multi_turn_verdict(mutated, entry.ground_truth or [], raw)
    assert official == (False, "multi_turn:instance_state_mismatch")
    assert (failure.record_id, failure.category, failure.behavior, failure.error_type) == (
        MUTATED_ID, "multi_turn_base", MULTI_TURN, official[1])
    assert failure.error.startswith("turn 0: GorillaFileSystem differs from the ground truth")
    assert failure.partial == {"tool": True, "args": True, "values": False, "steps_passed": 0, "steps_total": 4}
    # Both sides as call source with named arguments, so that the page lines them up.
    assert failure.expected["turns"][0] == {"user": entry.turns[0][0]["content"], "calls": [
        "cd(folder='document')", MUTATED_FROM, "mv(source='final_report.pdf',destination='temp')"]}
    assert failure.expected["turns"][2]["calls"] == ["sort(file_name='final_report.pdf')"]
    got = failure.got["turns"][0]
    assert got["calls"] == ["cd(folder='document')", MUTATED_TO, "mv(source='final_report.pdf',destination='temp')"]
    assert got["answer"] == "Done."
    assert len(failure.got["turns"]) == len(entry.turns)
    by_category = run.metrics["by_category"]["multi_turn_base"]
    assert (by_category["n"], by_category["exact"]) == (SUBSET, 80.0)


def test_progress_counts_both_kinds_and_replays_are_scored_as_recorded(mixed_suite: EvalSuite) -> None:
    records = suite_records(mixed_suite)
    # Recorded turns cannot react to tool results: they are scored as they are, as `bfcl score` does.
    recorded = {
        "simple_python_0": {"result": [{"calc_area": {"base": 10, "height": 5.0}}]},
        ENTRIES[0].id: {"result": ground_truth_result(ENTRIES[0].ground_truth or [])},
        ENTRIES[1].id: {"result": [[] for _ in ENTRIES[1].turns]},
        ENTRIES[2].id: {"result": [[[c] for c in calls] for calls in truth(ENTRIES[2], mutate=False)][:-1]},
    }
    adapter = ReplayAdapter(answers={key: replay_output(item) for key, item in recorded.items()})
    seen: list[tuple[int, int]] = []
    report = evaluate_with_multi_turn(adapter=adapter, records=records, batch_size=64,
                                      on_progress=lambda done, total: seen.append((done, total)))
    assert seen == [(3, 8), (4, 8), (5, 8), (6, 8), (7, 8), (8, 8)]
    assert [r.record.id for r in report.results] == [r.id for r in records]
    verdicts = {r.record.id: r.score.error_type or "valid" for r in report.results}
    assert [verdicts[e.id] for e in ENTRIES] == [
        "valid", "multi_turn:empty_turn_model_response", "multi_turn:force_terminated", "missing_result",
        "missing_result"]
    # The same verdict as the checker gives the result directly.
    entry = ENTRIES[1]
    direct = check_multi_turn(recorded[entry.id]["result"], entry.ground_truth or [], entry.involved_classes,
                              entry.initial_config or {})
    assert direct.error_type == verdicts[entry.id]
    assert report.accuracy_by("category")["multi_turn_base"]["exact"] == 20.0


def test_a_run_with_multi_turn_cases_needs_bfcl_eval(mixed_suite: EvalSuite, local_model: dict[str, Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bfcl_official, "installed", lambda: False)
    with pytest.raises(ValidationFailed, match="bfcl-eval is not installed") as caught:
        eval_run_create(suite=mixed_suite, adapter_config=local_model, enqueue=False)
    assert list(caught.value.fields) == ["categories"]
    assert not EvalRun.objects.exists()
    # Single-turn categories of the same suite still run without it.
    eval_run_create(suite=mixed_suite, adapter_config=local_model, categories=["simple_python"], enqueue=False)
    assert EvalRun.objects.count() == 1


def test_run_page_and_failure_detail_show_the_turns(client: Any, admin_user: Any, mixed_suite: EvalSuite,
                                                     local_model: dict[str, Any], fake_openai: FakeOpenAI) -> None:
    fake_openai.policy = replay_policy(mutate=True)
    run = eval_run_execute(run_id=eval_run_create(suite=mixed_suite, adapter_config=local_model, enqueue=False).pk)
    client.force_login(admin_user)
    page = client.get(reverse("evaluation:run", args=[run.pk])).content.decode()
    assert '?category=multi_turn_base"' in page and "simulated back-ends, right when each turn" in page
    charts = json.loads(page.split('id="eval-charts" type="application/json">')[1].split("</script>")[0])
    # (PostgreSQL's jsonb keeps its own key order: compare as sets.)
    assert sorted(charts["category"]["labels"]) == ["irrelevance", "multi_turn_base", "simple_python"]
    failures = client.get(reverse("evaluation:failures", args=[run.pk]), {"category": "multi_turn_base"})
    text = failures.content.decode()
    assert failures.status_code == 200
    assert "multi_turn:instance_state_mismatch" in text and "0/4 turns" in text
    assert "mkdir(dir_name=&#x27;temp_x&#x27;)" in text and "mkdir(dir_name=&#x27;temp&#x27;)" in text
