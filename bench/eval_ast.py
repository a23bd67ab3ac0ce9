"""Checker throughput against BFCL's own checker (bfcl-eval), in-process, on the same entries.

    .venv/bin/python bench/eval_ast.py [--data-dir DIR] [--seconds 20] [--quick]

The workload is the cross-check set of ``ftops.evaluation.bfcl_mutations`` over every
single-turn category with data (every entry's correct answer and its mutations: types
changed, optional parameters dropped or added, enum case, parallel calls reordered, dropped
or duplicated, extra calls, wrong function, irrelevance mixes), every ``--every``-th item
(default 5: about 27,700 items). Both sides score the same already-decoded outputs: ftops
with ``check_entry`` (BFCL's matching, the default), BFCL with its ``ast_checker`` behind the
steps its evaluation runner takes after decoding (``ftops.evaluation.bfcl_official``). The
verdicts are compared first (they must all agree); then one cold pass each, then whole passes
alternate between the two until each side has run ``--seconds`` (alternating keeps a busy
machine's drift out of the ratio). Last line: ``ratio: <ftops entries/s / official entries/s>``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftops.core.checker import check_entry
from ftops.evaluation.bfcl import BfclEntry, available_categories, default_data_dir, load_category
from ftops.evaluation.bfcl_mutations import mutations
from ftops.evaluation.bfcl_official import BfclEvalMissing, official_verdict

Item = tuple[str, list[dict[str, Any]], Any, Any]


def workload(data_dir: Path, every: int) -> list[Item]:
    items: list[Item] = []
    n = 0
    for category in available_categories(data_dir):
        entries: list[BfclEntry] = load_category(data_dir, category)
        for entry in entries:
            for _, output in mutations(category, entry.functions, entry.ground_truth):
                if n % every == 0:
                    items.append((category, entry.functions, output, entry.ground_truth))
                n += 1
    return items


def one_pass(items: list[Item], check: Callable[[str, Any, Any, Any], bool]) -> tuple[float, int]:
    passed = 0
    started = time.perf_counter()
    for category, functions, output, truth in items:
        passed += check(category, functions, output, truth)
    return time.perf_counter() - started, passed


def ftops_valid(category: str, functions: Any, output: Any, truth: Any) -> bool:
    return check_entry(category, functions, output, truth).valid


def official_valid(category: str, functions: Any, output: Any, truth: Any) -> bool:
    return official_verdict(category, functions, output, truth)[0]


def interleaved(items: list[Item], seconds: float) -> tuple[list[float], list[float], int, int]:
    """Alternate whole passes of the two checkers until each has had ``seconds``: a busy
    machine slows both alike, so the ratio holds where absolute rates drift."""
    ours: list[float] = []
    theirs: list[float] = []
    passed_ours = passed_theirs = 0
    while min(sum(ours), sum(theirs)) < seconds or not ours:
        elapsed, passed_theirs = one_pass(items, official_valid)
        theirs.append(elapsed)
        elapsed, passed_ours = one_pass(items, ftops_valid)
        ours.append(elapsed)
    return ours, theirs, passed_ours, passed_theirs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of checking per side (default 20)")
    parser.add_argument("--every", type=int, default=5, help="take every n-th item of the mutation set (default 5)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 second per side")
    args = parser.parse_args()
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    if data_dir is None or not data_dir.is_dir():
        print("no BFCL data: pass --data-dir (neither ../shared/bfcl nor bfcl-eval's data is present)")
        return 2
    seconds = 1.0 if args.quick else args.seconds
    items = workload(data_dir, max(1, args.every))
    categories = sorted({category for category, *_ in items})
    print(f"entries: {len(items)} in {len(categories)} categories; {seconds:.0f} s per side")
    try:
        # The first pass is cold on both sides (ftops compiles each function doc and answer once).
        cold_theirs, _ = one_pass(items, official_valid)
        cold_ours, _ = one_pass(items, ftops_valid)
        print(f"first pass: official {len(items) / cold_theirs:10.0f} entries/s, ftops {len(items) / cold_ours:10.0f} "
              "entries/s (ftops compiling as it goes)")
        disagree = sum(check_entry(c, f, o, t).valid != official_verdict(c, f, o, t)[0] for c, f, o, t in items)
    except BfclEvalMissing as exc:
        print(f"error: {exc}")
        return 2
    print(f"agreement: {len(items) - disagree}/{len(items)} verdicts equal")
    ours, theirs, passed_ours, passed_theirs = interleaved(items, seconds)
    n = len(items) * len(ours)
    print(f"official:   {n / sum(theirs):10.0f} entries/s ({n} scored, {100 * passed_theirs / len(items):.1f}% valid)")
    print(f"ftops:      {n / sum(ours):10.0f} entries/s ({n} scored, {100 * passed_ours / len(items):.1f}% valid)")
    print(f"ratio: {sum(theirs) / sum(ours):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
