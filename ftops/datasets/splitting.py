"""Three-dimensional splits of curated examples (pure; no Django, no model).

Given items already deduplicated, ``assign_splits`` decides each one's split (train,
validation, test, holdout) and evaluation dimension:

- zero_shot_tool: a share of the tools (chosen by seed; ``rotation`` walks the seeded order
  so successive versions hold out other tools) never reaches train or validation.
- multi_step: sequences are evaluation-only; training sees single-step examples.
- new_phrasing: per tool, whole phrasing groups (one template's wordings) are kept out of
  train so the test asks in wordings the model never saw, for tools it did see.
- seen_phrasing: evaluation examples whose wording family also appears in train.

The test split is filled to its configured composition (seen/new/zero-shot, 40/40/20 by
default) as far as the pools allow, plus its share of multi-step examples; the holdout takes
the rest of the evaluation-only pools and is topped up with seen examples to its target.
Everything is deterministic for a given seed and input order-independent (items are sorted
by their content hash first).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

TRAIN, VALIDATION, TEST, HOLDOUT = "train", "validation", "test", "holdout"
SEEN, NEW, ZERO, MULTI = "seen_phrasing", "new_phrasing", "zero_shot_tool", "multi_step"


@dataclass(frozen=True)
class Item:
    key: str  # the example's content hash (stable identity, independent of database ids)
    tool: str  # "service.tool" of the primary tool, or "service.(none)" for clarify/abstain
    tools_called: tuple[str, ...]  # every "service.tool" the expected behaviour calls
    behavior: str
    group: str  # phrasing group id
    created_at: datetime | None = None


@dataclass(frozen=True)
class SplitParams:
    train: float = 0.6
    validation: float = 0.1
    test: float = 0.1
    holdout: float = 0.2
    zero_shot_tool_fraction: float = 0.2
    new_phrasing_fraction: float = 0.2
    composition: tuple[float, float, float] = (0.4, 0.4, 0.2)  # seen, new, zero-shot in test
    rotation: int = 0
    time_holdout_days: int = 0
    now: datetime | None = None


@dataclass
class Assignment:
    split: dict[str, str] = field(default_factory=dict)  # key -> split
    dimension: dict[str, str] = field(default_factory=dict)  # key -> dimension ("" for train/validation)
    zero_shot_tools: list[str] = field(default_factory=list)
    new_phrasing_groups: dict[str, list[str]] = field(default_factory=dict)  # tool -> groups held out
    notes: list[str] = field(default_factory=list)


def _rng(seed: int, *salt: str) -> random.Random:
    digest = hashlib.sha256("\x00".join([str(seed), *salt]).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def is_real_tool(tool: str) -> bool:
    return bool(tool) and not tool.endswith(".(none)")


def choose_zero_shot_tools(tools: Sequence[str], *, fraction: float, seed: int, rotation: int = 0) -> list[str]:
    """``fraction`` of the tools, from a seeded order; rotation r takes the r-th window of that order."""
    ordered = sorted(set(tools))
    if len(ordered) < 3 or fraction <= 0:
        return []  # with fewer tools there is nothing left to learn tool use from
    k = max(1, round(fraction * len(ordered)))
    k = min(k, len(ordered) - 2)
    _rng(seed, "zero-shot").shuffle(ordered)
    start = (rotation * k) % len(ordered)
    return sorted((ordered + ordered)[start : start + k])


def _interleave(items: list[Item], seed: int, salt: str) -> list[Item]:
    """Seeded shuffle, then round-robin across tools so any prefix covers many tools."""
    rng = _rng(seed, salt)
    shuffled = sorted(items, key=lambda i: i.key)
    rng.shuffle(shuffled)
    rank: dict[str, int] = defaultdict(int)
    keyed = []
    for position, item in enumerate(shuffled):
        keyed.append((rank[item.tool], position, item))
        rank[item.tool] += 1
    return [item for _, _, item in sorted(keyed, key=lambda t: (t[0], t[1]))]


def _hold_out_phrasings(items: list[Item], *, fraction: float, seed: int) -> tuple[list[Item], list[Item], dict]:
    """Per tool, whole phrasing groups (about ``fraction`` of its examples) set aside; the rest stay seen."""
    by_tool: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_tool[item.tool].append(item)
    seen: list[Item] = []
    new: list[Item] = []
    held: dict[str, list[str]] = {}
    for tool in sorted(by_tool):
        tool_items = by_tool[tool]
        groups: dict[str, list[Item]] = defaultdict(list)
        for item in tool_items:
            groups[item.group].append(item)
        names = sorted(groups)
        if len(names) < 2 or not is_real_tool(tool) or fraction <= 0:
            seen.extend(tool_items)
            continue
        _rng(seed, "phrasing", tool).shuffle(names)
        target = fraction * len(tool_items)
        taken: list[str] = []
        count = 0
        for name in names[:-1]:  # at least one group always stays seen
            if count >= target:
                break
            size = len(groups[name])
            if count + size > len(tool_items) / 2:
                continue  # never hold out more than half of a tool's examples
            taken.append(name)
            count += size
        held[tool] = sorted(taken)
        for name in names:
            (new if name in taken else seen).extend(groups[name])
    return seen, new, held


def assign_splits(items: Sequence[Item], params: SplitParams, *, seed: int) -> Assignment:
    out = Assignment()
    items = sorted(items, key=lambda i: i.key)
    n = len(items)
    if n == 0:
        return out
    tools = [t for i in items for t in (i.tool, *i.tools_called) if is_real_tool(t)]
    zero = set(choose_zero_shot_tools(tools, fraction=params.zero_shot_tool_fraction, seed=seed,
                                      rotation=params.rotation))
    out.zero_shot_tools = sorted(zero)

    zero_pool: list[Item] = []
    multi_pool: list[Item] = []
    single: list[Item] = []
    for item in items:
        if zero & {item.tool, *item.tools_called}:
            zero_pool.append(item)
        elif item.behavior == "sequence":
            multi_pool.append(item)
        else:
            single.append(item)
    seen_pool, new_pool, out.new_phrasing_groups = _hold_out_phrasings(
        single, fraction=params.new_phrasing_fraction, seed=seed)

    def put(item: Item, split: str, dimension: str) -> None:
        out.split[item.key] = split
        out.dimension[item.key] = dimension

    test_target = round(params.test * n)
    holdout_target = round(params.holdout * n)
    val_target = round(params.validation * n)
    seen_share, new_share, zero_share = params.composition

    zero_order = _interleave(zero_pool, seed, "zero")
    new_order = _interleave(new_pool, seed, "new")
    seen_order = _interleave(seen_pool, seed, "seen")
    multi_order = _interleave(multi_pool, seed, "multi")

    n_zero_t = min(len(zero_order), round(zero_share * test_target))
    n_new_t = min(len(new_order), round(new_share * test_target))
    # Seen examples for evaluation must leave every seen tool with training examples.
    per_tool_left: dict[str, int] = defaultdict(int)
    for item in seen_order:
        per_tool_left[item.tool] += 1
    n_seen_t = round(seen_share * test_target)
    n_multi_t = round(len(multi_order) * params.test / max(params.test + params.holdout, 1e-9))

    def take_seen(count: int, split: str) -> None:
        nonlocal seen_order
        rest: list[Item] = []
        for item in seen_order:
            if count > 0 and per_tool_left[item.tool] > 2:
                put(item, split, SEEN if split in (TEST, HOLDOUT) else "")
                per_tool_left[item.tool] -= 1
                count -= 1
            else:
                rest.append(item)
        seen_order = rest

    for item in zero_order[:n_zero_t]:
        put(item, TEST, ZERO)
    for item in new_order[:n_new_t]:
        put(item, TEST, NEW)
    for item in multi_order[:n_multi_t]:
        put(item, TEST, MULTI)
    take_seen(n_seen_t, TEST)

    for item in zero_order[n_zero_t:]:
        put(item, HOLDOUT, ZERO)
    for item in new_order[n_new_t:]:
        put(item, HOLDOUT, NEW)
    for item in multi_order[n_multi_t:]:
        put(item, HOLDOUT, MULTI)
    in_holdout = sum(1 for s in out.split.values() if s == HOLDOUT)
    if in_holdout < holdout_target:
        take_seen(holdout_target - in_holdout, HOLDOUT)
    elif in_holdout > holdout_target:
        out.notes.append(
            f"holdout holds {in_holdout} examples (target {holdout_target}): zero-shot-tool, new-phrasing and "
            "multi-step examples never go to train, so their overflow stays in the holdout")
    take_seen(val_target, VALIDATION)
    for item in seen_order:
        put(item, TRAIN, "")

    if params.time_holdout_days > 0 and params.now is not None:
        cutoff = params.now - timedelta(days=params.time_holdout_days)
        moved = 0
        for item in items:
            if item.created_at is not None and item.created_at >= cutoff and out.split[item.key] != HOLDOUT:
                out.dimension[item.key] = out.dimension[item.key] or SEEN
                out.split[item.key] = HOLDOUT
                moved += 1
        out.notes.append(f"time-based holdout: {moved} examples of the last {params.time_holdout_days} days moved "
                         "to holdout")
    return out


def expected_values(expected: object) -> list[str]:
    """Every scalar argument value in an expected behaviour, as text (to mask it in phrasings)."""
    out: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, bool) or value is None:
            return
        elif isinstance(value, float) and value.is_integer():
            out.extend([str(value), str(int(value))])
        else:
            out.append(str(value))

    if isinstance(expected, dict):
        for key in ("calls", "steps"):
            for call in expected.get(key) or []:
                if isinstance(call, dict):
                    walk(call.get("arguments", {}))
    return out


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NON_WORD = re.compile(r"[^\w<>#]+")


def phrasing_template(query: str, values: Sequence[str]) -> str:
    """The wording of a request with its argument values masked: one template, one key."""
    text = f" {query.lower()} "
    for value in sorted({v.lower() for v in values if len(v.strip()) >= 2}, key=len, reverse=True):
        text = text.replace(value, " <v> ")
    text = _NUMBER.sub("#", text)
    return " ".join(_NON_WORD.sub(" ", text).split())


_ENTITY = re.compile(r"\S*\d\S*|\[[A-Z_]+\]|\S+@\S+")


def mask_entities(text: str) -> str:
    """The request with ids, numbers, emails and PII placeholders masked: its wording alone."""
    return " ".join(_ENTITY.sub("#", text).lower().split())
