"""BFCL data files and the stable command line around the checker (no Django imports).

    python -m ftops.evaluation.bfcl score --category CAT --results FILE [--data-dir DIR]
    python -m ftops.evaluation.bfcl selfcheck [--data-dir DIR]

``score`` reads one JSON line per entry, ``{"id": ..., "result": [{"fn": {"arg": v}}, ...]}``
(a result that is not a list means no call), prints ``{"id", "valid", "error_type"}`` per
entry of the category (entries without a result line fail as ``missing_result``) and a last
line ``accuracy: <fraction>``. Exit status 0, or 2 for unusable input.

``selfcheck`` feeds every ground truth's first acceptable values back to the checker. Four
live entries cannot be passed by any output (their ground truth leaves a required argument
without a value, or names an argument the function does not have); every other entry must
pass. One line per category; exit status 1 when the failures differ from those four.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ftops.core.checker import (
    IRRELEVANCE,
    TYPE_NAMES,
    Verdict,
    canonical_output,
    category_kind,
    check_entry,
)
from ftops.core.records import Record

# Single-turn categories in the leaderboard's order; multi-turn ones need simulated back-ends.
CATEGORIES = (
    "simple_python", "simple_java", "simple_javascript", "multiple", "parallel", "parallel_multiple",
    "irrelevance", "live_simple", "live_multiple", "live_parallel", "live_parallel_multiple",
    "live_irrelevance", "live_relevance",
)
# Entries whose ground truth no output can satisfy (see the module docstring).
# Names earlier leaderboard releases used for what the current data calls otherwise.
CATEGORY_ALIASES = {"simple": "simple_python", "java": "simple_java", "javascript": "simple_javascript"}
UNPASSABLE = frozenset({"live_simple_106", "live_simple_112", "live_multiple_862", "live_multiple_964"})
_FILE = re.compile(r"^BFCL_v(\d+)_(.+)\.json$")


class BfclDataError(Exception):
    """The data folder or a results file cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class BfclEntry:
    id: str
    category: str
    turns: list[list[dict[str, Any]]]
    functions: list[dict[str, Any]]
    ground_truth: list[dict[str, Any]] | None  # None where the category has no answer file

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The single-turn conversation (every turn's messages, in order)."""
        return [message for turn in self.turns for message in turn]

    @property
    def short_id(self) -> str:
        """``live_simple_106-63-0`` -> ``live_simple_106``; plain ids unchanged."""
        return self.id.split("-", 1)[0]


def default_data_dir() -> Path | None:
    """$FTOPS_BFCL_DIR, else ../shared/bfcl beside the checkout when it exists."""
    configured = os.environ.get("FTOPS_BFCL_DIR")
    if configured:
        return Path(configured)
    candidate = Path(__file__).resolve().parents[2].parent / "shared" / "bfcl"
    return candidate if candidate.is_dir() else None


def category_files(data_dir: Path) -> dict[str, Path]:
    """Question file per category; the newest ``BFCL_vN_`` prefix wins."""
    if not data_dir.is_dir():
        raise BfclDataError(f"BFCL data folder {data_dir} does not exist")
    found: dict[str, tuple[int, Path]] = {}
    for path in data_dir.iterdir():
        match = _FILE.match(path.name)
        if match and path.is_file():
            version, category = int(match.group(1)), match.group(2)
            if category not in found or version > found[category][0]:
                found[category] = (version, path)
    return {category: path for category, (_, path) in found.items()}


def available_categories(data_dir: Path) -> list[str]:
    files = category_files(data_dir)
    return [c for c in CATEGORIES if c in files]


def _json_lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BfclDataError(f"{path.name} line {number} is not JSON: {exc.msg}") from exc
            if not isinstance(item, dict) or "id" not in item:
                raise BfclDataError(f"{path.name} line {number} is not an object with an 'id'")
            yield item


def load_category(data_dir: Path, category: str) -> list[BfclEntry]:
    files = category_files(data_dir)
    if category not in files and CATEGORY_ALIASES.get(category) in files:
        category = CATEGORY_ALIASES[category]
    if category not in files:
        known = ", ".join(c for c in CATEGORIES if c in files) or "none"
        raise BfclDataError(f"no question file for category {category!r} in {data_dir} (available: {known})")
    question_file = files[category]
    answer_file = question_file.parent / "possible_answer" / question_file.name
    answers: dict[str, Any] = {}
    if answer_file.is_file():
        answers = {str(item["id"]): item.get("ground_truth") for item in _json_lines(answer_file)}
    entries: list[BfclEntry] = []
    for item in _json_lines(question_file):
        entry_id = str(item["id"])
        turns = item.get("question") or []
        entries.append(BfclEntry(
            id=entry_id,
            category=category,
            turns=[list(turn) for turn in turns] if turns and isinstance(turns[0], list) else [list(turns)],
            functions=list(item.get("function") or []),
            ground_truth=answers.get(entry_id) if answer_file.is_file() else None,
        ))
    return entries


# BFCL type names -> JSON Schema, as an OpenAI-compatible endpoint needs them.
_JSON_SCHEMA_TYPES = {"string": "string", "integer": "integer", "float": "number", "boolean": "boolean",
                      "array": "array", "tuple": "array", "dict": "object", "any": "string"}


def json_schema(spec: Any) -> Any:
    """A BFCL parameter spec in JSON Schema terms (recursively)."""
    if not isinstance(spec, Mapping):
        return spec
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "type" and isinstance(value, str):
            out[key] = _JSON_SCHEMA_TYPES.get(TYPE_NAMES.get(value, ""), "string")
        elif key == "properties" and isinstance(value, Mapping):
            out[key] = {name: json_schema(sub) for name, sub in value.items()}
        elif key == "items":
            out[key] = json_schema(value)
        else:
            out[key] = value
    return out


def openai_tool(function: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI tool for a BFCL function doc; dots become underscores as the API requires
    (the checker treats the two as the same character)."""
    parameters = json_schema(function.get("parameters") or {"type": "dict", "properties": {}})
    return {"type": "function", "function": {"name": str(function.get("name", "")).replace(".", "_"),
                                             "description": str(function.get("description") or ""),
                                             "parameters": parameters}}


def entry_record(entry: BfclEntry) -> Record:
    """A BFCL entry as one of our records; scoring then applies the category's own rules to
    the original function docs kept in ``meta``."""
    calls = [{"name": name, "arguments": args} for item in entry.ground_truth or [] for name, args in item.items()]
    irrelevant = category_kind(entry.category) == IRRELEVANCE
    expected: dict[str, Any] = (
        {"reason": "none of the offered functions fits the request"} if irrelevant else {"calls": calls}
    )
    first = calls[0]["name"] if calls else (str(entry.functions[0].get("name", "")) if entry.functions else "")
    return Record(
        id=entry.id,
        service="bfcl",
        tool="" if irrelevant else first,
        messages=[dict(m) for m in entry.messages],
        tools=[openai_tool(f) for f in entry.functions],
        behavior="abstain" if irrelevant else "call",
        expected=expected,
        meta={"bfcl_category": entry.category, "bfcl_functions": entry.functions},
    )


def score_entry(entry: BfclEntry, result: Any) -> Verdict:
    return check_entry(entry.category, entry.functions, result, entry.ground_truth)


def read_results(path: Path) -> dict[str, Any]:
    """``{id: result}`` from a JSON-lines results file."""
    if not path.is_file():
        raise BfclDataError(f"results file {path} does not exist")
    results: dict[str, Any] = {}
    for item in _json_lines(path):
        if "result" not in item:
            raise BfclDataError(f"{path.name}: the line for id {item['id']!r} has no 'result'")
        results[str(item["id"])] = item["result"]
    return results


def score_results(entries: Sequence[BfclEntry], results: Mapping[str, Any]) -> list[tuple[str, Verdict]]:
    unknown = sorted(set(results) - {e.id for e in entries})
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise BfclDataError(f"{len(unknown)} result id(s) are not entries of this category: {shown}")
    scored: list[tuple[str, Verdict]] = []
    for entry in entries:
        if entry.id not in results:
            scored.append((entry.id, Verdict(False, "missing_result", "no result line for this entry")))
        else:
            scored.append((entry.id, score_entry(entry, results[entry.id])))
    return scored


@dataclass(frozen=True)
class CategoryCheck:
    category: str
    total: int
    passed: int
    failed_ids: list[str]
    unexpected: list[str]  # failures outside UNPASSABLE, or UNPASSABLE entries that passed


def selfcheck_category(entries: Sequence[BfclEntry]) -> CategoryCheck:
    category = entries[0].category if entries else ""
    failed: list[str] = []
    unexpected: list[str] = []
    for entry in entries:
        if entry.ground_truth is None:
            continue
        verdict = score_entry(entry, canonical_output(entry.ground_truth, entry.functions))
        if not verdict.valid:
            failed.append(entry.id)
            if entry.short_id not in UNPASSABLE:
                unexpected.append(f"{entry.id} ({verdict.error_type}: {verdict.error})")
        elif entry.short_id in UNPASSABLE:
            unexpected.append(f"{entry.id} passed but its ground truth is unsatisfiable")
    total = sum(1 for e in entries if e.ground_truth is not None)
    return CategoryCheck(category, total, total - len(failed), failed, unexpected)


def _format_check(check: CategoryCheck) -> str:
    share = 100.0 * check.passed / check.total if check.total else 0.0
    line = f"{check.category}: {check.passed}/{check.total} ({share:.1f}%)"
    if check.failed_ids:
        line += " failed: " + ", ".join(check.failed_ids)
    return line


def _cmd_score(args: argparse.Namespace, out: TextIO) -> int:
    data_dir = _data_dir(args.data_dir)
    entries = load_category(data_dir, args.category)
    scored = score_results(entries, read_results(Path(args.results)))
    for entry_id, verdict in scored:
        out.write(json.dumps({"id": entry_id, "valid": verdict.valid, "error_type": verdict.error_type or None}) + "\n")
    accuracy = sum(1 for _, v in scored if v.valid) / len(scored) if scored else 0.0
    out.write(f"accuracy: {accuracy:.4f}\n")
    return 0


def _cmd_selfcheck(args: argparse.Namespace, out: TextIO) -> int:
    data_dir = _data_dir(args.data_dir)
    problems: list[str] = []
    for category in available_categories(data_dir):
        entries = load_category(data_dir, category)
        if not entries or entries[0].ground_truth is None:
            continue  # no answers to feed back (irrelevance, relevance)
        check = selfcheck_category(entries)
        out.write(_format_check(check) + "\n")
        problems.extend(check.unexpected)
    for problem in problems:
        out.write(f"unexpected: {problem}\n")
    return 1 if problems else 0


def _data_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    found = default_data_dir()
    if found is None:
        raise BfclDataError("no BFCL data folder found; pass --data-dir DIR (or set FTOPS_BFCL_DIR)")
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ftops.evaluation.bfcl", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    score = sub.add_parser("score", help="score a results file against one category")
    score.add_argument("--category", required=True, help="e.g. simple_python, live_multiple, irrelevance")
    score.add_argument("--results", required=True, help="JSON lines: {\"id\": ..., \"result\": [...]}")
    score.add_argument("--data-dir", default=None, help="BFCL data folder (default ../shared/bfcl)")
    check = sub.add_parser("selfcheck", help="feed the ground truth back and report per category")
    check.add_argument("--data-dir", default=None, help="BFCL data folder (default ../shared/bfcl)")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    stream = out or sys.stdout
    try:
        if args.command == "score":
            return _cmd_score(args, stream)
        return _cmd_selfcheck(args, stream)
    except BfclDataError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
