"""Checker throughput on all single-turn BFCL data, against schema-only validation.

    .venv/bin/python bench/eval_ast.py [--data-dir DIR] [--seconds 20] [--quick]

Every entry of every single-turn category (simple, java, javascript, multiple, parallel,
parallel_multiple, irrelevance and the live ones) is scored with a realistic output: even
entries get the correct answer, odd entries a one-value mutation of it (so both the passing
path and the error paths are timed); irrelevance entries alternate between no call and a call.
The pass over all entries is repeated until ``--seconds`` of checking have been done.

The baseline is what a schema-only evaluator does with the same outputs: validate each call's
arguments against its function's JSON Schema with ``jsonschema`` (validators built up front,
outside the timing). Our checker does strictly more (names, value matching, one-to-one
pairing); the ratio says how its speed compares. Last line: ``ratio: <ours / baseline>``.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftops.core.checker import canonical_output, check_entry
from ftops.evaluation.bfcl import (
    BfclEntry,
    available_categories,
    default_data_dir,
    json_schema,
    load_category,
)


def mutate(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same answer with one value changed (strings get a suffix, numbers move, bools flip)."""
    changed = copy.deepcopy(output)
    for call in changed:
        args = next(iter(call.values()))
        for name, value in args.items():
            if isinstance(value, bool):
                args[name] = not value
            elif isinstance(value, (int, float)):
                args[name] = value + 7
            elif isinstance(value, str):
                args[name] = value + " x"
            else:
                continue
            return changed
    return changed


def workload(data_dir: Path) -> list[tuple[BfclEntry, Any]]:
    items: list[tuple[BfclEntry, Any]] = []
    for category in available_categories(data_dir):
        for i, entry in enumerate(load_category(data_dir, category)):
            if entry.ground_truth is None:
                fake = [{entry.functions[0]["name"]: {}}] if entry.functions else []
                items.append((entry, fake if i % 2 else "I cannot help with that."))
                continue
            output = canonical_output(entry.ground_truth, entry.functions)
            items.append((entry, output if i % 2 == 0 else mutate(output)))
    return items


def ours(items: list[tuple[BfclEntry, Any]], seconds: float) -> tuple[float, int, int]:
    done = passed = 0
    started = time.perf_counter()
    while True:
        for entry, output in items:
            passed += check_entry(entry.category, entry.functions, output, entry.ground_truth).valid
        done += len(items)
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done / elapsed, done, passed


def baseline(items: list[tuple[BfclEntry, Any]], seconds: float) -> tuple[float, int, int]:
    from jsonschema import Draft202012Validator

    prepared = []
    for entry, output in items:
        validators = {f["name"]: Draft202012Validator(json_schema(f.get("parameters") or {})) for f in entry.functions}
        calls = output if isinstance(output, list) else []
        prepared.append((validators, [(name, args) for call in calls for name, args in call.items()]))
    done = passed = 0
    started = time.perf_counter()
    while True:
        for validators, calls in prepared:
            ok = True
            for name, args in calls:
                validator = validators.get(name)
                ok = ok and validator is not None and validator.is_valid(args)
            passed += ok
        done += len(prepared)
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done / elapsed, done, passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of checking per side (default 20)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 second per side")
    args = parser.parse_args()
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    if data_dir is None or not data_dir.is_dir():
        print("no BFCL data: pass --data-dir (../shared/bfcl is not present)")
        return 2
    seconds = 1.0 if args.quick else args.seconds
    items = workload(data_dir)
    categories = sorted({entry.category for entry, _ in items})
    print(f"entries: {len(items)} in {len(categories)} categories; {seconds:.0f} s per side")
    rate, done, passed = ours(items, seconds)
    print(f"checker:    {rate:10.0f} entries/s ({done} scored, {100 * passed / done:.1f}% valid)")
    base_rate, base_done, base_passed = baseline(items, seconds)
    share = 100 * base_passed / base_done
    print(f"jsonschema: {base_rate:10.0f} entries/s ({base_done} validated, {share:.1f}% valid)")
    print(f"ratio: {rate / base_rate:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
