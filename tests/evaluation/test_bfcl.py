"""BFCL files, the stable command line and the selfcheck on the real data."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftops.evaluation.bfcl import (
    UNPASSABLE,
    UNPASSABLE_REASONS,
    BfclDataError,
    available_categories,
    entry_record,
    load_category,
    main,
    openai_tool,
    selfcheck_category,
)
from tests.evaluation.helpers import BFCL_DIR, write_mini_bfcl

REPO = Path(__file__).resolve().parents[2]
needs_bfcl = pytest.mark.skipif(not BFCL_DIR.is_dir(), reason="../shared/bfcl is not present")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ftops.evaluation.bfcl", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def write_results(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_load_category_joins_questions_and_answers(tmp_path: Path) -> None:
    data = write_mini_bfcl(tmp_path)
    assert available_categories(data) == ["simple_python", "irrelevance"]
    entries = load_category(data, "simple_python")
    assert [e.id for e in entries] == ["simple_python_0", "simple_python_1"]
    assert entries[0].messages == [{"role": "user", "content": "Triangle 10 by 5"}]
    assert entries[1].ground_truth == [{"calc.area": {"base": [3], "height": [4.0], "unit": ["cm"]}}]
    assert load_category(data, "irrelevance")[0].ground_truth is None
    with pytest.raises(BfclDataError, match="no question file for category 'parallel'"):
        load_category(data, "parallel")


def test_score_command_prints_one_line_per_entry_and_accuracy(tmp_path: Path) -> None:
    data = write_mini_bfcl(tmp_path / "data")
    results = write_results(tmp_path / "r.jsonl", [
        {"id": "simple_python_0", "result": [{"calc_area": {"base": 10, "height": 5}}]},
        {"id": "simple_python_1", "result": "The area is 6 square cm."},
    ])
    done = cli("score", "--category", "simple_python", "--results", str(results), "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert [json.loads(line) for line in lines[:-1]] == [
        {"id": "simple_python_0", "valid": True, "error_type": None},
        {"id": "simple_python_1", "valid": False, "error_type": "ast_decoder:decoder_failed"},
    ]
    assert lines[-1] == "accuracy: 0.5000"


def test_score_accepts_the_older_category_names(tmp_path: Path) -> None:
    data = write_mini_bfcl(tmp_path / "data")
    results = write_results(tmp_path / "r.jsonl", [
        {"id": "simple_python_0", "result": [{"calc_area": {"base": 10, "height": 5}}]}])
    out = io.StringIO()
    assert main(["score", "--category", "simple", "--results", str(results), "--data-dir", str(data)], out) == 0
    assert out.getvalue().splitlines()[0] == '{"id": "simple_python_0", "valid": true, "error_type": null}'


def test_score_irrelevance_and_missing_results(tmp_path: Path) -> None:
    data = write_mini_bfcl(tmp_path / "data")
    out = io.StringIO()
    results = write_results(tmp_path / "r.jsonl", [])
    assert main(["score", "--category", "irrelevance", "--results", str(results), "--data-dir", str(data)], out) == 0
    assert out.getvalue().splitlines() == [
        '{"id": "irrelevance_0", "valid": false, "error_type": "missing_result"}', "accuracy: 0.0000"]
    out = io.StringIO()
    results = write_results(tmp_path / "r.jsonl", [{"id": "irrelevance_0", "result": []}])
    assert main(["score", "--category", "irrelevance", "--results", str(results), "--data-dir", str(data)], out) == 0
    assert out.getvalue().splitlines()[-1] == "accuracy: 1.0000"


@pytest.mark.parametrize(("rows", "message"), [
    ([{"id": "nope_1", "result": []}], "1 result id(s) are not entries of this category: nope_1"),
    ([{"id": "simple_python_0"}], "has no 'result'"),
])
def test_score_refuses_bad_results(tmp_path: Path, rows: list[dict[str, object]], message: str) -> None:
    data = write_mini_bfcl(tmp_path / "data")
    results = write_results(tmp_path / "r.jsonl", rows)
    done = cli("score", "--category", "simple_python", "--results", str(results), "--data-dir", str(data))
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


def test_score_refuses_unknown_folder_and_bad_json(tmp_path: Path) -> None:
    done = cli("score", "--category", "simple_python", "--results", "x.jsonl", "--data-dir", str(tmp_path / "none"))
    assert (done.returncode, done.stderr.strip()) == (2, f"error: BFCL data folder {tmp_path / 'none'} does not exist")
    data = write_mini_bfcl(tmp_path / "data")
    (tmp_path / "bad.jsonl").write_text('{"id": "simple_python_0", "result": [}\n')
    bad = str(tmp_path / "bad.jsonl")
    done = cli("score", "--category", "simple_python", "--results", bad, "--data-dir", str(data))
    assert done.returncode == 2
    assert "bad.jsonl line 1 is not JSON" in done.stderr


def test_selfcheck_on_a_small_folder(tmp_path: Path) -> None:
    data = write_mini_bfcl(tmp_path)
    done = cli("selfcheck", "--data-dir", str(data))
    assert (done.returncode, done.stdout) == (0, "simple_python: 2/2 (100.0%)\n")


def test_selfcheck_fails_on_an_unsatisfiable_entry_it_does_not_know(tmp_path: Path) -> None:
    data = write_mini_bfcl(tmp_path)
    answers = data / "possible_answer" / "BFCL_v4_simple_python.json"
    lines = answers.read_text().splitlines()
    lines[1] = json.dumps({"id": "simple_python_1", "ground_truth": [{"calc.area": {"base": [], "height": [4.0]}}]})
    answers.write_text("\n".join(lines) + "\n")
    done = cli("selfcheck", "--data-dir", str(data))
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "simple_python: 1/2 (50.0%) failed: simple_python_1",
        "unexpected: simple_python_1 (simple_function_checker:missing_required: missing required parameter 'base')",
    ]


@needs_bfcl
def test_selfcheck_on_the_bfcl_data() -> None:
    done = cli("selfcheck", "--data-dir", str(BFCL_DIR))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.strip().splitlines())
    for category in ("simple_python", "multiple", "parallel", "parallel_multiple", "live_parallel",
                     "live_parallel_multiple"):
        assert lines[category].endswith("(100.0%)"), (category, lines[category])
    assert lines["live_simple"] == "256/258 (99.2%) failed: live_simple_106-63-0, live_simple_112-68-0"
    assert lines["live_multiple"] == "1051/1053 (99.8%) failed: live_multiple_862-181-3, live_multiple_964-207-0"
    assert lines["simple_java"] == "97/100 (97.0%) failed: simple_java_36, simple_java_64, simple_java_65"
    assert lines["multi_turn_base"] == "200/200 (100.0%)"
    reasons = [line for line in done.stdout.splitlines() if line.startswith("  cannot pass: ")]
    assert len(reasons) == len(UNPASSABLE)
    assert "  cannot pass: simple_java_64: the answer's dict value is a bare string" in done.stdout


@needs_bfcl
def test_only_the_known_entries_are_unsatisfiable() -> None:
    failed = set()
    for category in available_categories(BFCL_DIR):
        entries = load_category(BFCL_DIR, category)
        if entries[0].ground_truth is not None:
            check = selfcheck_category(entries)
            assert check.unexpected == [], category
            failed.update(i.split("-")[0] for i in check.failed_ids)
    assert failed == UNPASSABLE
    assert set(UNPASSABLE_REASONS) == UNPASSABLE


def test_openai_tool_uses_json_schema_names() -> None:
    function = {"name": "math.hypot", "description": "d", "parameters": {"type": "dict", "required": ["x"],
                                                                         "properties": {
        "x": {"type": "float"}, "p": {"type": "tuple", "items": {"type": "integer"}},
        "o": {"type": "dict", "properties": {"k": {"type": "any"}}}, "s": {"type": "String"}}}}
    assert openai_tool(function) == {"type": "function", "function": {"name": "math_hypot", "description": "d",
        "parameters": {"type": "object", "required": ["x"], "properties": {
            "x": {"type": "number"}, "p": {"type": "array", "items": {"type": "integer"}},
            "o": {"type": "object", "properties": {"k": {"type": "string"}}}, "s": {"type": "string"}}}}}


def test_entry_record_keeps_bfcl_semantics(tmp_path: Path) -> None:
    data = write_mini_bfcl(tmp_path)
    record = entry_record(load_category(data, "simple_python")[0])
    assert (record.id, record.behavior, record.tool, record.service) == ("simple_python_0", "call", "calc.area", "bfcl")
    assert record.expected == {"calls": [{"name": "calc.area", "arguments": {
        "base": [10], "height": [5.0], "unit": ["units", ""]}}]}
    assert record.meta["bfcl_category"] == "simple_python"
    assert record.tools[0]["function"]["name"] == "calc_area"
    irrelevant = entry_record(load_category(data, "irrelevance")[0])
    assert (irrelevant.behavior, irrelevant.tool) == ("abstain", "")
