"""ftops' checker against BFCL's own (bfcl-eval 2026.3.23, installed by `make install`).

Every single-turn category with ground truth, each entry answered correctly and in every way
``ftops.evaluation.bfcl_mutations`` gets it wrong (or right in another spelling): the verdict
and the error type must be the official checker's on every one. Multi-turn: ftops' runner
(no ``eval``) against BFCL's ``multi_turn_checker`` on the ground truth and its mutations.
"""

from __future__ import annotations

import copy
import io
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftops.core.checker import PERFECT, check_entry
from ftops.evaluation import bfcl, bfcl_official
from ftops.evaluation.bfcl import CATEGORIES, load_category, main
from ftops.evaluation.bfcl_multi_turn import check_multi_turn, ground_truth_result, parse_call
from ftops.evaluation.bfcl_mutations import mutations
from ftops.evaluation.bfcl_official import official_multi_turn_verdict, official_verdict
from tests.evaluation.helpers import BFCL_DIR

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not bfcl_official.installed() or not BFCL_DIR.is_dir(),
                                reason="bfcl-eval is not installed (make install / scripts/install-bfcl-eval)")


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_verdict_is_the_official_one(category: str) -> None:
    compared: Counter[str] = Counter()
    disagreements: list[str] = []
    for entry in load_category(BFCL_DIR, category):
        for label, output in mutations(category, entry.functions, entry.ground_truth):
            ours = check_entry(category, entry.functions, output, entry.ground_truth)
            valid, error_type = official_verdict(category, entry.functions, output, entry.ground_truth)
            compared["valid" if valid else "invalid"] += 1
            if (ours.valid, ours.error_type) != (valid, error_type):
                disagreements.append(f"{entry.id} {label}: ftops {ours.valid} {ours.error_type!r}, "
                                     f"official {valid} {error_type!r}")
    assert disagreements == [], disagreements[:10]
    # The set exercises both outcomes in every category.
    assert compared["valid"] >= 60 and compared["invalid"] >= 60, compared


def test_dotted_names_agree_under_both_conventions() -> None:
    entries = load_category(BFCL_DIR, "simple_python")
    dotted = [e for e in entries if "." in e.functions[0]["name"]][:40]
    assert len(dotted) == 40
    for entry in dotted:
        name = entry.functions[0]["name"]
        for spelling in (name, name.replace(".", "_")):
            args = next(iter(bfcl.ground_truth_output(entry)[0].values()))
            output = [{spelling: args}]
            for underscore_to_dot in (True, False):
                ours = check_entry("simple_python", entry.functions, output, entry.ground_truth,
                                   underscore_to_dot=underscore_to_dot)
                official = official_verdict("simple_python", entry.functions, output, entry.ground_truth,
                                            underscore_to_dot=underscore_to_dot)
                assert (ours.valid, ours.error_type) == official, (entry.id, spelling, underscore_to_dot)


def test_greedy_pairing_is_bfcls_and_perfect_matching_goes_further() -> None:
    # Whenever the greedy pass and the perfect matching differ, BFCL sides with the greedy one.
    differ = 0
    for category in ("parallel", "parallel_multiple", "live_parallel", "live_parallel_multiple"):
        for entry in load_category(BFCL_DIR, category):
            for _, output in mutations(category, entry.functions, entry.ground_truth):
                greedy = check_entry(category, entry.functions, output, entry.ground_truth)
                perfect = check_entry(category, entry.functions, output, entry.ground_truth, matching=PERFECT)
                if greedy.valid != perfect.valid:
                    differ += 1
                    assert perfect.valid and not greedy.valid
                    assert official_verdict(category, entry.functions, output, entry.ground_truth)[0] is False
    assert differ > 0


def _multi_turn_mutations(truth: list[list[str]]) -> Iterator[tuple[str, Any]]:
    base = [[list(turn)] if turn else [] for turn in truth]
    yield "truth", base
    yield "one_call_per_step", [[[call] for call in turn] for turn in truth]
    yield "keywords", [[[parse_call(call).source() for call in turn]] if turn else [] for turn in truth]
    for i, turn in enumerate(truth):
        if not turn:
            continue
        dropped = copy.deepcopy(base)
        dropped[i][0] = dropped[i][0][:-1]
        yield f"drop_last_call_{i}", dropped
        empty = copy.deepcopy(base)
        empty[i] = []
        yield f"empty_turn_{i}", empty
        repeated = copy.deepcopy(base)
        repeated[i][0] = repeated[i][0] + repeated[i][0][-1:]
        yield f"repeat_last_call_{i}", repeated
        unknown = copy.deepcopy(base)
        unknown[i][0] = [*unknown[i][0], "no_such_function(x=1)"]
        yield f"unknown_function_{i}", unknown
        reordered = copy.deepcopy(base)
        reordered[i][0] = list(reversed(reordered[i][0]))
        yield f"reversed_{i}", reordered
    if len(truth) > 1:
        swapped = copy.deepcopy(base)
        swapped[0], swapped[1] = swapped[1], swapped[0]
        yield "turns_swapped", swapped
    yield "a_turn_short", base[:-1]
    yield "not_a_list", "I did it."


def test_multi_turn_verdicts_are_the_official_ones() -> None:
    compared: Counter[str] = Counter()
    disagreements: list[str] = []
    for entry in load_category(BFCL_DIR, "multi_turn_base"):
        raw = {"id": entry.id, "initial_config": entry.initial_config, "involved_classes": list(entry.involved_classes)}
        truth = entry.ground_truth or []
        for label, result in _multi_turn_mutations(truth):
            ours = check_multi_turn(result, truth, entry.involved_classes, entry.initial_config or {})
            valid, error_type = official_multi_turn_verdict(result, truth, raw)
            compared[error_type or "valid"] += 1
            if (ours.valid, ours.error_type) != (valid, error_type):
                disagreements.append(f"{entry.id} {label}: ftops {ours.valid} {ours.error_type!r}, "
                                     f"official {valid} {error_type!r}")
    assert disagreements == [], disagreements[:10]
    for outcome in ("valid", "multi_turn:instance_state_mismatch", "multi_turn:execution_response_mismatch",
                    "multi_turn:empty_turn_model_response", "multi_turn:force_terminated"):
        assert compared[outcome] >= 20, compared


def test_multi_turn_score_command(tmp_path: Path) -> None:
    entries = load_category(BFCL_DIR, "multi_turn_base")[:3]
    rows = [{"id": entries[0].id, "result": ground_truth_result(entries[0].ground_truth or [])},
            {"id": entries[1].id, "result": [[] for _ in entries[1].ground_truth or []]}]
    results = tmp_path / "r.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = io.StringIO()
    assert main(["score", "--category", "multi_turn_base", "--results", str(results),
                 "--data-dir", str(BFCL_DIR)], out) == 0
    lines = out.getvalue().splitlines()
    assert [json.loads(line) for line in lines[:3]] == [
        {"id": entries[0].id, "valid": True, "error_type": None},
        {"id": entries[1].id, "valid": False, "error_type": "multi_turn:empty_turn_model_response"},
        {"id": entries[2].id, "valid": False, "error_type": "missing_result"},
    ]
    assert lines[-1] == f"accuracy: {1 / 200:.4f}"


def test_perfect_matching_is_labelled_in_the_score_output(tmp_path: Path) -> None:
    entry = load_category(BFCL_DIR, "parallel")[0]
    results = tmp_path / "r.jsonl"
    results.write_text(json.dumps({"id": entry.id, "result": bfcl.ground_truth_output(entry)}) + "\n")
    args = ["score", "--category", "parallel", "--results", str(results), "--data-dir", str(BFCL_DIR)]
    out = io.StringIO()
    assert main(args, out) == 0
    assert not any(line.startswith("matching:") for line in out.getvalue().splitlines())
    out = io.StringIO()
    assert main([*args, "--matching", "perfect"], out) == 0
    assert out.getvalue().splitlines()[-2] == (
        "matching: perfect (ftops extension; BFCL's leaderboard pairs parallel calls greedily)")


def test_the_package_data_is_the_fallback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FTOPS_BFCL_DIR", raising=False)
    monkeypatch.setattr(bfcl, "SHARED_DIR", tmp_path / "absent")
    found = bfcl.default_data_dir()
    assert found == bfcl_official.package_data_dir()
    assert found is not None and len(load_category(found, "simple_python")) == 400
    assert len(load_category(found, "multi_turn_base")) == 200


def test_ftops_runs_without_bfcl_eval_and_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    # Importing the checker and the BFCL tooling never imports bfcl-eval.
    code = ("import sys, ftops.core.checker, ftops.core.scoring, ftops.evaluation.bfcl, "
            "ftops.evaluation.bfcl_multi_turn; print('bfcl_eval' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "False"), done.stderr
    monkeypatch.setattr(bfcl_official.importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(bfcl_official.BfclEvalMissing, match=re.escape("pip install --no-deps bfcl-eval==2026.3.23")):
        bfcl_official.backend_class("MathAPI")
    results = tmp_path / "r.jsonl"
    results.write_text("")
    entries = [e for e in load_category(BFCL_DIR, "multi_turn_base")[:1]]
    with pytest.raises(bfcl_official.BfclEvalMissing):
        check_multi_turn([[]], [["ls()"]], entries[0].involved_classes, {})
    assert main(["score", "--category", "multi_turn_base", "--results", str(results),
                 "--data-dir", str(BFCL_DIR)], io.StringIO()) == 2


def test_a_model_is_driven_turn_by_turn_against_the_back_ends() -> None:
    from ftops.evaluation.bfcl import openai_tool
    from ftops.evaluation.bfcl_multi_turn import run_multi_turn

    entry = load_category(BFCL_DIR, "multi_turn_base")[1]  # ls, mv, grep, tail in a file system
    truth = entry.ground_truth or []
    seen: list[list[dict[str, Any]]] = []

    def respond(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # A model that knows the answer: the turn's calls, then a text reply once it saw the results.
        seen.append(messages)
        turn = sum(1 for m in messages if m["role"] == "user") - 1
        if messages[-1]["role"] == "tool":
            return []
        return [{"name": c.name, "arguments": dict(c.kwargs)} for c in map(parse_call, truth[turn])]

    tools = [openai_tool(f) for f in entry.functions]
    result = run_multi_turn(entry.turns, tools, entry.involved_classes, entry.initial_config or {}, respond)
    assert len(result) == len(truth)
    assert check_multi_turn(result, truth, entry.involved_classes, entry.initial_config or {}).valid
    # The model saw the back-end's answers: ls(a=True) lists the workspace.
    first_tool_reply = next(m for m in seen[1] if m["role"] == "tool")
    assert "workspace" in first_tool_reply["content"]
    # A model that never stops calling is cut off after the step limit (BFCL's force-termination).
    looping = run_multi_turn(entry.turns, tools, entry.involved_classes, entry.initial_config or {},
                             lambda messages, tools: [{"name": "pwd", "arguments": {}}], max_steps=3)
    assert len(looping) == 1 and len(looping[0]) == 3
    verdict = check_multi_turn(looping, truth, entry.involved_classes, entry.initial_config or {})
    assert verdict.error_type == "multi_turn:force_terminated"
