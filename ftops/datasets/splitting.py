"""Three-dimensional splits of curated examples (pure; no Django, no model).

Given items already deduplicated, ``assign_splits`` decides each one's split (train,
validation, test, holdout) and evaluation dimension:

- zero_shot_tool: a share of the tools (chosen by seed; ``rotation`` walks the seeded order
  so successive versions hold out other tools) never reaches train or validation.
- multi_step: sequences the model is evaluated on, turn by turn. A share of the sequences
  (``sequence_train_share``, whole phrasing groups, only sequences whose tools are all seen
  tools) goes to train so tuning learns to chain calls; the rest are evaluation-only, in
  wordings train never saw. With a share of 0 every sequence is evaluation-only.
- new_phrasing: per tool, whole phrasing groups (one template's wordings) are kept out of
  train so the test asks in wordings the model never saw, for tools it did see. The groups
  are chosen per behaviour (call, clarify, ask_for_details, ...) so the pool, and the test
  drawn from it by behaviour, follow the behaviour mix of the single-step examples, not
  whichever behaviours happen to have the largest groups.
- seen_phrasing: evaluation examples whose wording family also appears in train.

How the shares hold. Zero-shot-tool, new-phrasing and multi-step examples are
evaluation-only, so they must fit in test + holdout (30% by default) or the training share
shrinks. The zero-shot and multi-step pools are fixed by the data; the new-phrasing pool is
the elastic one: it is sized to what the test needs plus whatever room the holdout has left
after the other evaluation-only examples, so "per tool 80/20" is an upper bound, not a
promise. Seen-phrasing examples then fill test, holdout and validation to their targets and
the rest is train. In order:

1. Time-based holdout (optional): examples of the last N days go to the holdout first, with
   their dimension, so the test is filled from what is left and keeps its size.
2. Test: its single-step part follows the composition (seen/new/zero-shot, 40/40/20 by
   default); a pool too small for its share hands the shortfall to the others in proportion
   to their shares. Multi-step examples are a separate dimension on top of that composition
   but inside the test's size: the test takes their proportional share (test / (test +
   holdout)), more when the holdout could not hold the rest, and never more than half the
   test, so the test still mostly measures tool choice.
3. Holdout: the evaluation-only examples the test did not take, topped up with seen ones.
4. Validation: seen examples; train: the rest, with the taught sequences.

When the pools cannot fit (few tools, so one zero-shot tool is a large share; many
sequences; a recent window larger than the holdout; phrasing groups larger than the room
left) the holdout grows beyond its target and ``Assignment.notes`` says why; evaluation-only
examples are never moved into train to save the shares. Everything is deterministic for a
given seed and input order-independent (items are sorted by their content hash first).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

TRAIN, VALIDATION, TEST, HOLDOUT = "train", "validation", "test", "holdout"
SEEN, NEW, ZERO, MULTI = "seen_phrasing", "new_phrasing", "zero_shot_tool", "multi_step"
SPLITS = (TRAIN, VALIDATION, TEST, HOLDOUT)
# A version whose split shares stray further than this from the configured ones says so in its notes.
SHARE_TOLERANCE = 0.03
# Multi-step examples never take more than this share of the test: beyond it the test would
# measure orchestration more than tool choice, which the composition is about.
MULTI_STEP_TEST_CAP = 0.5
# Seen examples are taken for evaluation and validation only while their tool keeps more than
# this many, so every seen tool is still taught (and while their phrasing group keeps one, so
# "seen phrasing" is true: that wording is in train).
SEEN_RESERVE = 2


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
    sequence_train_share: float = 0.5  # of the seen-tool sequences, by whole phrasing group


@dataclass
class Assignment:
    split: dict[str, str] = field(default_factory=dict)  # key -> split
    dimension: dict[str, str] = field(default_factory=dict)  # key -> dimension ("" for train/validation)
    zero_shot_tools: list[str] = field(default_factory=list)
    new_phrasing_groups: dict[str, list[str]] = field(default_factory=dict)  # tool -> groups held out
    targets: dict[str, int] = field(default_factory=dict)  # split -> intended size
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


def apportion(total: int, weights: Sequence[float], caps: Sequence[int]) -> list[int]:
    """``total`` divided by ``weights`` (largest remainder), no part above its cap.

    A part that hits its cap hands the rest of its share to the open parts in proportion to
    their weights; a part of weight 0 gets nothing. The sum falls short of ``total`` only when
    every weighted part is at its cap.
    """
    alloc = [0] * len(weights)
    while True:
        remaining = total - sum(alloc)
        open_parts = [k for k, w in enumerate(weights) if w > 0 and alloc[k] < caps[k]]
        if remaining <= 0 or not open_parts:
            return alloc
        weight_sum = sum(weights[k] for k in open_parts)
        raw = {k: remaining * weights[k] / weight_sum for k in open_parts}
        share = {k: int(raw[k]) for k in open_parts}
        by_remainder = sorted(open_parts, key=lambda k: (-(raw[k] - share[k]), k))
        for k in by_remainder[: remaining - sum(share.values())]:
            share[k] += 1
        for k in open_parts:
            alloc[k] += min(share[k], caps[k] - alloc[k])


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


def _commonest(counts: Counter[str]) -> str:
    """The behaviour a group of mixed behaviours counts for: its commonest (ties by name)."""
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def _hold_out_phrasings(items: list[Item], *, fraction: float, seed: int, low: int,
                        high: int) -> tuple[set[str], dict[str, list[str]], list[str]]:
    """Whole phrasing groups held out as new phrasings: ``low``..``high`` examples in all,
    spread over tools and following the behaviour mix of ``items``.

    The total aims at the per-tool ideal (``fraction`` of each tool's examples) clamped to
    [low, high], and each behaviour (call, clarify, ...) aims at its share of that total
    (largest remainder): whole groups are lumpy, and filled in plain group order the pool (and
    the new-phrasing test drawn from it) would follow whichever behaviours happen to have the
    big groups. The behaviour furthest below its target (in proportion) takes the next group,
    its tools taking turns (seeded order), each offering its next group of that behaviour
    (seeded order) that fits the room left and brings the behaviour nearer its target. A
    behaviour with no such group left keeps what it has and its shortfall goes to the others
    in proportion to their shares; if the total is still below ``low`` then, any group that
    fits is taken. A group of mixed behaviours counts for its commonest one when chosen and
    for each behaviour it holds when counted.

    A tool never holds out its last group nor more than half its examples, so the test asks new
    wordings of tools that train still teaches, and a behaviour never holds out its last group.
    When no group fits at all but the test needs some, the smallest one is taken anyway: a test
    with no new phrasings cannot show whether tuning generalises past the wordings it saw,
    which costs more than a holdout a little over its share (the caller's notes report it).
    The third value is the notes on behaviours that fell materially short of their share.
    """
    by_tool: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_tool[item.tool].append(item)
    mix = Counter(item.behavior for item in items)
    # (tool, group) -> examples per behaviour, for every group, held-out candidate or not.
    holds: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for item in items:
        holds[(item.tool, item.group)][item.behavior] += 1
    sizes: dict[str, Counter[str]] = {}
    queue: dict[tuple[str, str], list[str]] = {}  # (tool, behaviour) -> its groups, seeded order
    for tool in sorted(by_tool):
        counts = Counter(item.group for item in by_tool[tool])
        if len(counts) < 2 or not is_real_tool(tool) or fraction <= 0:
            continue
        names = sorted(counts)
        _rng(seed, "phrasing", tool).shuffle(names)
        for name in names:
            kind = _commonest(holds[(tool, name)])
            queue.setdefault((tool, kind), []).append(name)
        sizes[tool] = counts
    if not sizes or high <= 0:
        return set(), {}, []
    ideal = round(sum(fraction * len(by_tool[t]) for t in sizes))
    target = min(high, max(low, ideal))
    tools = sorted(sizes)
    _rng(seed, "phrasing-tools").shuffle(tools)
    kinds = sorted(mix)
    weights = [mix[b] for b in kinds]
    supply = [sum(sizes[t][g] for (t, b), names in queue.items() if b == kind for g in names) for kind in kinds]
    wanted = dict(zip(kinds, apportion(target, weights, [target] * len(kinds)), strict=True))
    goal = dict(zip(kinds, apportion(target, weights, supply), strict=True))
    strata = {b: [t for t in tools if (t, b) in queue] for b in kinds}
    # Groups per behaviour, candidates or not: a behaviour's last group stays in train.
    groups_of_kind = Counter(_commonest(c) for c in holds.values())
    held: dict[str, list[str]] = {t: [] for t in tools}
    count = dict.fromkeys(tools, 0)
    got: Counter[str] = Counter()
    held_of_kind: Counter[str] = Counter()
    turn: Counter[str] = Counter()
    closed: set[str] = set()
    exhausted: set[str] = set()
    total = 0

    def fits(tool: str, name: str, room: int) -> bool:
        size = sizes[tool][name]
        return (name not in held[tool] and size <= room and count[tool] + size <= len(by_tool[tool]) / 2
                and len(held[tool]) < len(sizes[tool]) - 1)

    def take(tool: str, name: str) -> None:
        nonlocal total
        held[tool].append(name)
        count[tool] += sizes[tool][name]
        total += sizes[tool][name]
        got.update(holds[(tool, name)])

    strict = True
    while total < (target if strict else low):
        open_kinds = [b for b in kinds if b not in closed and (got[b] < goal[b] or not strict)]
        if not open_kinds:
            if not strict or total >= low:
                break
            # The test still needs new phrasings: any group that fits, furthest-behind behaviour first.
            strict, closed = False, set()
            continue
        # Furthest behind in proportion first, so rare behaviours find room before the common ones fill it.
        kind = min(open_kinds, key=lambda b: (got[b] / goal[b] if goal[b] > 0 else float("inf"), b))
        need = goal[kind] - got[kind]
        # A group may overshoot the target only while it brings it nearer (or level, for a
        # behaviour not yet in the pool at all: present beats exact).
        limit = 2 * need if got[kind] == 0 else 2 * need - 1
        pick = None
        if held_of_kind[kind] < groups_of_kind[kind] - 1:
            order = strata[kind]
            for step in range(len(order)):
                tool = order[(turn[kind] + step) % len(order)]
                if count[tool] >= fraction * len(by_tool[tool]) and total >= low:
                    continue
                found = next((g for g in queue[(tool, kind)]
                              if fits(tool, g, high - total) and (sizes[tool][g] <= limit or not strict)), None)
                if found is not None:
                    pick = (tool, found)
                    turn[kind] = (turn[kind] + step + 1) % len(order)
                    break
        if pick is None:
            closed.add(kind)
            if not any(fits(t, g, len(items)) for t in strata[kind] for g in queue[(t, kind)]) or (
                    held_of_kind[kind] >= groups_of_kind[kind] - 1):
                exhausted.add(kind)  # too few groups, not merely groups too large for what is left
            if strict:
                caps = [got[b] if b in closed else supply[k] for k, b in enumerate(kinds)]
                goal = dict(zip(kinds, apportion(target, weights, caps), strict=True))
            continue
        take(*pick)
        held_of_kind[kind] += 1
    if total == 0 and low > 0:
        candidates = [(sizes[t][g], tools.index(t), queue[(t, b)].index(g), t, g)
                      for (t, b), names in queue.items() for g in names if fits(t, g, len(items))]
        if candidates:
            *_rank, tool, name = min(candidates)
            take(tool, name)
    notes = []
    if total:
        short = [b for b in kinds if b in exhausted and wanted[b] - got[b] > max(1, SHARE_TOLERANCE * total)]
        if short:
            described = ", ".join(f"{b.replace('_', '-')} has {got[b]} examples of {wanted[b]}" for b in short)
            notes.append(f"new-phrasing pool: too few phrasing groups to follow the behaviour mix of the single-step "
                         f"examples: {described}; the shortfall went to the other behaviours")
    groups = {t: sorted(g) for t, g in sorted(held.items()) if g}
    return {f"{t}\x00{g}" for t, names in groups.items() for g in names}, groups, notes


def _train_sequence_groups(pool: list[Item], *, share: float, seed: int) -> set[str]:
    """Phrasing groups ("tool\x00group") of sequences that go to train: about ``share`` of ``pool``.

    Groups are taken in seeded order whenever one brings the count nearer the target; below a
    share of 1 at least one group stays out, so some sequences are still evaluated.
    """
    if share <= 0 or not pool:
        return set()
    sizes = Counter(f"{i.tool}\x00{i.group}" for i in pool)
    names = sorted(sizes)
    _rng(seed, "sequence-train").shuffle(names)
    target = share * len(pool)
    room = len(names) if share >= 1 else len(names) - 1
    taken: set[str] = set()
    total = 0
    for name in names:
        if len(taken) >= room:
            break
        if abs(total + sizes[name] - target) < abs(total - target):
            taken.add(name)
            total += sizes[name]
    return taken


def _by_behavior(order: list[Item], count: int, mix: Counter[str]) -> list[Item]:
    """``order`` rearranged so its first ``count`` follow the behaviour ``mix`` as far as it can.

    Per behaviour a quota by largest remainder, capped by what ``order`` holds (a capped
    behaviour's rest goes to the others); each behaviour's examples keep their order. The test
    takes the prefix and the holdout the rest, so the test follows the mix even where whole
    groups left the pool a little off it, rather than whichever behaviour comes first.
    """
    per: dict[str, list[Item]] = defaultdict(list)
    for item in order:
        per[item.behavior].append(item)
    kinds = sorted(per)
    quota = dict(zip(kinds, apportion(count, [mix[b] for b in kinds], [len(per[b]) for b in kinds]),
                     strict=True))
    first = {item.key for b in kinds for item in per[b][: quota[b]]}
    return [i for i in order if i.key in first] + [i for i in order if i.key not in first]


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
    n_test, n_hold, n_val = round(params.test * n), round(params.holdout * n), round(params.validation * n)
    out.targets = {TRAIN: n - n_test - n_hold - n_val, VALIDATION: n_val, TEST: n_test, HOLDOUT: n_hold}

    recent: list[Item] = []
    if params.time_holdout_days > 0 and params.now is not None:
        cutoff = params.now - timedelta(days=params.time_holdout_days)
        recent = [i for i in items if i.created_at is not None and i.created_at >= cutoff]
    recent_keys = {i.key for i in recent}
    zero_pool: list[Item] = []
    multi_pool: list[Item] = []
    single: list[Item] = []
    for item in items:
        if item.key in recent_keys:
            continue
        if zero & {item.tool, *item.tools_called}:
            zero_pool.append(item)
        elif item.behavior == "sequence":
            multi_pool.append(item)
        else:
            single.append(item)
    # Sequences of seen tools are taught too (zero-shot ones are already in zero_pool), by whole
    # phrasing group: the evaluation sequences then ask in wordings train never saw.
    taught_sequences = _train_sequence_groups(multi_pool, share=params.sequence_train_share, seed=seed)
    sequence_train = [i for i in multi_pool if f"{i.tool}\x00{i.group}" in taught_sequences]
    multi_pool = [i for i in multi_pool if f"{i.tool}\x00{i.group}" not in taught_sequences]

    # The room the holdout has for evaluation-only examples once the recent window is in it.
    hold_room = max(0, n_hold - len(recent))
    weights = params.composition
    unbounded = n + 1

    def zero_in_test(n_multi: int) -> int:
        return apportion(n_test - n_multi, weights, (unbounded, unbounded, len(zero_pool)))[2]

    multi_cap = min(len(multi_pool), int(MULTI_STEP_TEST_CAP * n_test))
    n_multi_t = min(multi_cap, round(len(multi_pool) * params.test / max(params.test + params.holdout, 1e-9)))
    while n_multi_t < multi_cap and (len(zero_pool) - zero_in_test(n_multi_t)
                                     + len(multi_pool) - n_multi_t) > hold_room:
        n_multi_t += 1
    single_t = n_test - n_multi_t
    _seen0, new0, zero0 = apportion(single_t, weights, (unbounded, unbounded, len(zero_pool)))
    spare = max(0, hold_room - (len(zero_pool) - zero0) - (len(multi_pool) - n_multi_t))
    held, out.new_phrasing_groups, mix_notes = _hold_out_phrasings(
        single, fraction=params.new_phrasing_fraction, seed=seed, low=new0, high=new0 + spare)
    out.notes.extend(mix_notes)
    new_pool = [i for i in single if f"{i.tool}\x00{i.group}" in held]
    seen_pool = [i for i in single if f"{i.tool}\x00{i.group}" not in held]

    per_tool_left: Counter[str] = Counter(item.tool for item in seen_pool)
    per_group_left: Counter[tuple[str, str]] = Counter((item.tool, item.group) for item in seen_pool)
    spare_in_groups: Counter[str] = Counter()
    for (tool, _group), size in per_group_left.items():
        spare_in_groups[tool] += size - 1
    seen_cap = sum(max(0, min(c - SEEN_RESERVE, spare_in_groups[t])) for t, c in per_tool_left.items())
    n_seen_t, n_new_t, n_zero_t = apportion(single_t, weights, (seen_cap, len(new_pool), len(zero_pool)))
    ideal = apportion(single_t, weights, (unbounded, unbounded, unbounded))
    if [n_seen_t, n_new_t, n_zero_t] != ideal:
        out.notes.append(
            f"test composition: the pools could not give {ideal[0]}/{ideal[1]}/{ideal[2]} seen-phrasing/"
            f"new-phrasing/zero-shot-tool examples; it holds {n_seen_t}/{n_new_t}/{n_zero_t}, the shortfall "
            "taken from the other pools in proportion to their shares")
    short = single_t - n_seen_t - n_new_t - n_zero_t
    if short > 0:
        extra = min(short, len(multi_pool) - n_multi_t)  # rather than a smaller test
        n_multi_t += extra
        if short > extra:
            out.notes.append(f"test holds {n_test - short + extra} examples (target {n_test}): too few examples")

    def put(item: Item, split: str, dimension: str) -> None:
        out.split[item.key] = split
        out.dimension[item.key] = dimension

    seen_order = _interleave(seen_pool, seed, "seen")

    def take_seen(count: int, split: str) -> None:
        nonlocal seen_order
        rest: list[Item] = []
        for item in seen_order:
            if count > 0 and per_tool_left[item.tool] > SEEN_RESERVE and per_group_left[(item.tool, item.group)] > 1:
                put(item, split, SEEN if split in (TEST, HOLDOUT) else "")
                per_tool_left[item.tool] -= 1
                per_group_left[(item.tool, item.group)] -= 1
                count -= 1
            else:
                rest.append(item)
        seen_order = rest

    for item in recent:
        if zero & {item.tool, *item.tools_called}:
            put(item, HOLDOUT, ZERO)
        elif item.behavior == "sequence":
            put(item, HOLDOUT, MULTI)
        else:
            put(item, HOLDOUT, NEW if f"{item.tool}\x00{item.group}" in held else SEEN)
    if recent:
        out.notes.append(f"time-based holdout: {len(recent)} examples of the last {params.time_holdout_days} days "
                         "are in the holdout (set aside before the test was filled)")

    zero_order = _interleave(zero_pool, seed, "zero")
    new_order = _by_behavior(_interleave(new_pool, seed, "new"), n_new_t, Counter(i.behavior for i in single))
    multi_order = _interleave(multi_pool, seed, "multi")
    for order, count, dimension in ((zero_order, n_zero_t, ZERO), (new_order, n_new_t, NEW),
                                    (multi_order, n_multi_t, MULTI)):
        for k, item in enumerate(order):
            put(item, TEST if k < count else HOLDOUT, dimension)
    take_seen(n_seen_t, TEST)

    in_holdout = sum(1 for s in out.split.values() if s == HOLDOUT)
    if in_holdout < n_hold:
        take_seen(n_hold - in_holdout, HOLDOUT)
    elif in_holdout > n_hold:
        left = Counter(out.dimension[k] for k, s in out.split.items() if s == HOLDOUT and k not in recent_keys)
        reasons = [f"{len(recent)} examples of the time-based holdout"] if recent else []
        evaluation_only = [f"{left[d]} {d.replace('_', '-')}" for d in (ZERO, NEW, MULTI) if left[d]]
        if evaluation_only:
            reasons.append(f"{', '.join(evaluation_only)} examples that are evaluation-only and did not fit in "
                           "the test")
        out.notes.append(f"holdout holds {in_holdout} examples (target {n_hold}): {' and '.join(reasons)}; "
                         "none of them may go to train")
    take_seen(n_val, VALIDATION)
    for item in (*seen_order, *sequence_train):
        put(item, TRAIN, "")
    if sequence_train and not multi_pool and not any(i.behavior == "sequence" for i in recent):
        out.notes.append(f"all {len(sequence_train)} sequences of seen tools are in train: no multi-step "
                         "evaluation (sequences of zero-shot tools count as zero-shot)")
    # A recent example whose whole phrasing group (or whole tool) fell in the window was never
    # trained on in that wording (or at all): label it for what the model saw, not for the pool.
    taught_groups = {(i.tool, i.group) for i in items if out.split[i.key] == TRAIN}
    taught_tools = {tool for tool, _group in taught_groups}
    for item in recent:
        if out.dimension[item.key] != SEEN or not is_real_tool(item.tool):
            continue
        if item.tool not in taught_tools:
            out.dimension[item.key] = ZERO
        elif (item.tool, item.group) not in taught_groups:
            out.dimension[item.key] = NEW
            groups = out.new_phrasing_groups.setdefault(item.tool, [])
            if item.group not in groups:
                groups.append(item.group)
                groups.sort()
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
