"""BFCL data files and the stable command line around the checker (no Django imports).

    python -m ftops.evaluation.bfcl score --category CAT --results FILE [--data-dir DIR]
                                          [--matching greedy|perfect] [--dotted-names]
    python -m ftops.evaluation.bfcl selfcheck [--data-dir DIR]

``score`` reads one JSON line per entry, ``{"id": ..., "result": [{"fn": {"arg": v}}, ...]}``
(a result that is not a list means no call), prints ``{"id", "valid", "error_type"}`` per
entry of the category (entries without a result line fail as ``missing_result``) and a last
line ``accuracy: <fraction>``. Exit status 0, or 2 for unusable input. The matching is BFCL's
own (greedy pairing of parallel calls, dotted names expected with underscores as for BFCL's
function-calling models), so the numbers compare with the leaderboard; ``--matching perfect``
pairs parallel calls with a perfect matching instead (an ftops extension: the output then
says so on a ``matching:`` line) and ``--dotted-names`` expects names as they are (BFCL's
prompt models). For ``multi_turn_base`` a result is one list per turn of the model's steps,
each a list of calls (``{"fn": {"arg": v}}`` or ``"fn(arg=v)"``); the calls run against the
back-end classes of ``bfcl-eval``, which must then be installed.

``selfcheck`` feeds every ground truth back to the checker (single-turn: each parameter's
first acceptable value; multi-turn: the ground-truth calls, turn by turn). The entries in
``UNPASSABLE`` cannot be passed by any output, for the reason given there; every other entry
must pass. One line per category; exit status 1 when the failures differ from those.

Data: ``--data-dir``, else ``$FTOPS_BFCL_DIR``, else ``../shared/bfcl`` beside the checkout,
else the data the installed ``bfcl-eval`` package ships (found without importing it).
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
    GREEDY,
    IRRELEVANCE,
    JAVA,
    JAVASCRIPT,
    MATCHINGS,
    PERFECT,
    PYTHON,
    TYPE_NAMES,
    Verdict,
    canonical_output,
    category_kind,
    category_language,
    check_entry,
)
from ftops.core.records import MULTI_TURN, Record
from ftops.evaluation.bfcl_official import package_data_dir

# Single-turn categories in the leaderboard's order; multi-turn ones need simulated back-ends.
CATEGORIES = (
    "simple_python", "simple_java", "simple_javascript", "multiple", "parallel", "parallel_multiple",
    "irrelevance", "live_simple", "live_multiple", "live_parallel", "live_parallel_multiple",
    "live_irrelevance", "live_relevance",
)
# Multi-turn categories scored by running the calls against bfcl-eval's back-end classes.
MULTI_TURN_CATEGORIES = ("multi_turn_base",)
# Names earlier leaderboard releases used for what the current data calls otherwise.
CATEGORY_ALIASES = {"simple": "simple_python", "java": "simple_java", "javascript": "simple_javascript"}
# Entries whose ground truth no output can satisfy under BFCL's own checker, and why.
_REQUIRED_NOT_IN_TRUTH = ("the function requires an argument the ground truth does not list (sending it is an "
                          "unexpected parameter, leaving it out a missing required one)")
UNPASSABLE_REASONS: dict[str, str] = {
    "live_simple_106": _REQUIRED_NOT_IN_TRUTH,
    "live_simple_112": _REQUIRED_NOT_IN_TRUTH,
    "live_multiple_862": "the ground truth requires an argument the function does not define",
    "live_multiple_964": _REQUIRED_NOT_IN_TRUTH,
    "simple_java_36": "items typed 'any' are read by BFCL's Java converter as strings, "
                      "while the ground truth holds numbers and booleans",
    "simple_java_64": "the answer's dict value is a bare string, which BFCL's dict checker reads "
                      "character by character",
    "simple_java_65": "items typed 'any' are read by BFCL's Java converter as strings, "
                      "while the ground truth holds booleans",
}
UNPASSABLE = frozenset(UNPASSABLE_REASONS)
# bfcl-eval's constants/executable_backend_config.py: function docs per back-end class.
MULTI_TURN_FUNC_DOCS = {
    "GorillaFileSystem": "gorilla_file_system.json", "MathAPI": "math_api.json", "MessageAPI": "message_api.json",
    "TwitterAPI": "posting_api.json", "TicketAPI": "ticket_api.json", "TradingBot": "trading_bot.json",
    "TravelAPI": "travel_booking.json", "VehicleControlAPI": "vehicle_control.json",
}
_FILE = re.compile(r"^BFCL_v(\d+)_(.+)\.json$")
# ../shared/bfcl beside the checkout.
SHARED_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "bfcl"


class BfclDataError(Exception):
    """The data folder or a results file cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class BfclEntry:
    id: str
    category: str
    turns: list[list[dict[str, Any]]]
    functions: list[dict[str, Any]]
    ground_truth: list[Any] | None  # None where the category has no answer file
    # Multi-turn entries: the back-end classes and their initial state.
    involved_classes: tuple[str, ...] = ()
    initial_config: dict[str, Any] | None = None

    @property
    def multi_turn(self) -> bool:
        return self.category in MULTI_TURN_CATEGORIES

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The single-turn conversation (every turn's messages, in order)."""
        return [message for turn in self.turns for message in turn]

    @property
    def short_id(self) -> str:
        """``live_simple_106-63-0`` -> ``live_simple_106``; plain ids unchanged."""
        return self.id.split("-", 1)[0]


def default_data_dir() -> Path | None:
    """$FTOPS_BFCL_DIR, else ../shared/bfcl beside the checkout when it exists, else the data
    folder of the installed bfcl-eval package."""
    configured = os.environ.get("FTOPS_BFCL_DIR")
    if configured:
        return Path(configured)
    return SHARED_DIR if SHARED_DIR.is_dir() else package_data_dir()


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


def available_categories(data_dir: Path, *, multi_turn: bool = False) -> list[str]:
    """Single-turn categories present in the folder (with ``multi_turn``, the multi-turn ones too)."""
    files = category_files(data_dir)
    wanted = CATEGORIES + MULTI_TURN_CATEGORIES if multi_turn else CATEGORIES
    return [c for c in wanted if c in files]


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
        known = ", ".join(c for c in CATEGORIES + MULTI_TURN_CATEGORIES if c in files) or "none"
        raise BfclDataError(f"no question file for category {category!r} in {data_dir} (available: {known})")
    question_file = files[category]
    answer_file = question_file.parent / "possible_answer" / question_file.name
    answers: dict[str, Any] = {}
    if answer_file.is_file():
        answers = {str(item["id"]): item.get("ground_truth") for item in _json_lines(answer_file)}
    entries: list[BfclEntry] = []
    docs: dict[str, list[dict[str, Any]]] = {}
    for item in _json_lines(question_file):
        entry_id = str(item["id"])
        turns = item.get("question") or []
        involved = tuple(str(c) for c in item.get("involved_classes") or ())
        functions = list(item.get("function") or [])
        if involved and not functions:
            excluded = set(item.get("excluded_function") or ())
            functions = [f for name in involved for f in _class_docs(question_file.parent, name, docs)
                         if f.get("name") not in excluded]
        entries.append(BfclEntry(
            id=entry_id,
            category=category,
            turns=[list(turn) for turn in turns] if turns and isinstance(turns[0], list) else [list(turns)],
            functions=functions,
            ground_truth=answers.get(entry_id) if answer_file.is_file() else None,
            involved_classes=involved,
            initial_config=item.get("initial_config") if involved else None,
        ))
    return entries


def _class_docs(data_dir: Path, class_name: str, cache: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    if class_name not in cache:
        file_name = MULTI_TURN_FUNC_DOCS.get(class_name)
        path = data_dir / "multi_turn_func_doc" / file_name if file_name else None
        if path is None or not path.is_file():
            raise BfclDataError(f"no function docs for back-end class {class_name!r} in {data_dir}")
        with path.open(encoding="utf-8") as handle:
            cache[class_name] = [json.loads(line) for line in handle if line.strip()]
    return cache[class_name]


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


def openai_tool(function: Mapping[str, Any], category: str = "") -> dict[str, Any]:
    """An OpenAI tool for a BFCL function doc; dots become underscores as the API requires
    (BFCL's checker then expects the underscored name). For Java and JavaScript categories
    every parameter is a string holding a literal of the language, as BFCL prepares them."""
    language = category_language(category) if category else PYTHON
    source = function.get("parameters") or {"type": "dict", "properties": {}}
    if language in (JAVA, JAVASCRIPT):
        source = _literal_parameters(source, language)
    parameters = json_schema(source)
    return {"type": "function", "function": {"name": str(function.get("name", "")).replace(".", "_"),
                                             "description": str(function.get("description") or ""),
                                             "parameters": parameters}}


def _literal_parameters(parameters: Mapping[str, Any], language: str) -> dict[str, Any]:
    # bfcl_eval/utils.py _func_doc_language_specific_pre_processing
    name = "Java" if language == JAVA else "JavaScript"
    properties: dict[str, Any] = {}
    for key, spec in (parameters.get("properties") or {}).items():
        spec = dict(spec)
        kind = spec.get("type")
        note = (f" This parameter can be of any type of {name} object in string representation." if kind == "any"
                else f" This is {name} {kind} type parameter in string representation.")
        if kind in ("ArrayList", "Array", "array") and isinstance(spec.get("items"), Mapping):
            item_type = spec["items"].get("type")
            note += f" The list elements are of type {item_type}; they are not in string representation."
            spec.pop("items")
        if language == JAVASCRIPT and kind == "dict" and "properties" in spec:
            note += (" The dictionary entries have the following schema; they are not in string representation. "
                     + json.dumps(spec.pop("properties")))
        spec["description"] = str(spec.get("description") or "") + note
        spec["type"] = "string"
        properties[key] = spec
    return {**parameters, "properties": properties}


def entry_record(entry: BfclEntry) -> Record:
    """A BFCL entry as one of our records; scoring then applies the category's own rules to
    the original function docs kept in ``meta``."""
    if entry.multi_turn:
        return multi_turn_record(entry)
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
        tools=[openai_tool(f, entry.category) for f in entry.functions],
        behavior="abstain" if irrelevant else "call",
        expected=expected,
        meta={"bfcl_category": entry.category, "bfcl_functions": entry.functions},
    )


def multi_turn_record(entry: BfclEntry) -> Record:
    """A multi-turn entry as a record holding all ``run_multi_turn`` needs (``Record``'s
    ``multi_turn`` contract); the tools are every function of the involved classes."""
    turns = [[dict(m) for m in turn] for turn in entry.turns]
    return Record(
        id=entry.id,
        service="bfcl",
        tool="",  # many tools per entry: grouping by the first one would say nothing
        messages=[dict(m) for m in turns[0]] if turns else [],
        tools=[openai_tool(f, entry.category) for f in entry.functions],
        behavior=MULTI_TURN,
        expected={"turns": turns, "ground_truth": [list(calls) for calls in entry.ground_truth or []],
                  "involved_classes": list(entry.involved_classes), "initial_config": entry.initial_config or {}},
        meta={"bfcl_category": entry.category},
    )


def score_entry(entry: BfclEntry, result: Any, *, matching: str = GREEDY, underscore_to_dot: bool = True) -> Verdict:
    if entry.multi_turn:
        from ftops.evaluation.bfcl_multi_turn import check_multi_turn

        return check_multi_turn(result, entry.ground_truth or [], entry.involved_classes, entry.initial_config or {})
    return check_entry(entry.category, entry.functions, result, entry.ground_truth, matching=matching,
                       underscore_to_dot=underscore_to_dot)


def ground_truth_output(entry: BfclEntry) -> Any:
    """What a model answering exactly as the ground truth says would send."""
    if entry.multi_turn:
        from ftops.evaluation.bfcl_multi_turn import ground_truth_result

        return ground_truth_result(entry.ground_truth or [])
    return canonical_output(entry.ground_truth or [], entry.functions, language=category_language(entry.category))


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


def score_results(entries: Sequence[BfclEntry], results: Mapping[str, Any], *, matching: str = GREEDY,
                  underscore_to_dot: bool = True) -> list[tuple[str, Verdict]]:
    unknown = sorted(set(results) - {e.id for e in entries})
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise BfclDataError(f"{len(unknown)} result id(s) are not entries of this category: {shown}")
    scored: list[tuple[str, Verdict]] = []
    for entry in entries:
        if entry.id not in results:
            scored.append((entry.id, Verdict(False, "missing_result", "no result line for this entry")))
        else:
            scored.append((entry.id, score_entry(entry, results[entry.id], matching=matching,
                                                 underscore_to_dot=underscore_to_dot)))
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
        verdict = score_entry(entry, ground_truth_output(entry))
        if not verdict.valid:
            failed.append(entry.id)
            if entry.short_id not in UNPASSABLE_REASONS:
                unexpected.append(f"{entry.id} ({verdict.error_type}: {verdict.error})")
        elif entry.short_id in UNPASSABLE_REASONS:
            unexpected.append(f"{entry.id} passed but its ground truth is unsatisfiable")
    total = sum(1 for e in entries if e.ground_truth is not None)
    return CategoryCheck(category, total, total - len(failed), failed, unexpected)


def _format_check(check: CategoryCheck) -> str:
    share = 100.0 * check.passed / check.total if check.total else 0.0
    line = f"{check.category}: {check.passed}/{check.total} ({share:.1f}%)"
    if check.failed_ids:
        line += " failed: " + ", ".join(check.failed_ids)
    return line


def _unpassable_lines(check: CategoryCheck) -> list[str]:
    lines = []
    for entry_id in check.failed_ids:
        reason = UNPASSABLE_REASONS.get(entry_id.split("-", 1)[0])
        if reason:
            lines.append(f"  cannot pass: {entry_id}: {reason}")
    return lines


def _cmd_score(args: argparse.Namespace, out: TextIO) -> int:
    data_dir = _data_dir(args.data_dir)
    entries = load_category(data_dir, args.category)
    if entries and entries[0].multi_turn:
        _require_backends()
    scored = score_results(entries, read_results(Path(args.results)), matching=args.matching,
                           underscore_to_dot=not args.dotted_names)
    for entry_id, verdict in scored:
        out.write(json.dumps({"id": entry_id, "valid": verdict.valid, "error_type": verdict.error_type or None}) + "\n")
    accuracy = sum(1 for _, v in scored if v.valid) / len(scored) if scored else 0.0
    if args.matching == PERFECT:
        out.write("matching: perfect (ftops extension; BFCL's leaderboard pairs parallel calls greedily)\n")
    out.write(f"accuracy: {accuracy:.4f}\n")
    return 0


def _require_backends() -> None:
    from ftops.evaluation.bfcl_official import INSTALL_HINT, installed

    if not installed():
        raise BfclDataError(f"multi-turn scoring runs bfcl-eval's back-end classes: {INSTALL_HINT}")


def _cmd_selfcheck(args: argparse.Namespace, out: TextIO) -> int:
    data_dir = _data_dir(args.data_dir)
    from ftops.evaluation.bfcl_official import installed

    problems: list[str] = []
    for category in available_categories(data_dir, multi_turn=True):
        if category in MULTI_TURN_CATEGORIES and not installed():
            out.write(f"{category}: skipped (bfcl-eval is not installed; run scripts/install-bfcl-eval)\n")
            continue
        entries = load_category(data_dir, category)
        if not entries or entries[0].ground_truth is None:
            continue  # no answers to feed back (irrelevance, relevance)
        check = selfcheck_category(entries)
        out.write(_format_check(check) + "\n")
        for line in _unpassable_lines(check):
            out.write(line + "\n")
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
    score.add_argument("--matching", choices=MATCHINGS, default=GREEDY,
                       help="parallel calls: greedy = BFCL's own (default); perfect = ftops extension")
    score.add_argument("--dotted-names", action="store_true",
                       help="expect dotted function names as they are (BFCL's prompt models); by default "
                            "dots are expected as underscores (function-calling models)")
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
