from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from ftops.core.records import argument_values
from ftops.datasets.splitting import (
    HOLDOUT,
    MULTI,
    NEW,
    SEEN,
    SHARE_TOLERANCE,
    SPLITS,
    TEST,
    TRAIN,
    VALIDATION,
    ZERO,
    Assignment,
    Item,
    SplitParams,
    apportion,
    assign_splits,
    choose_zero_shot_tools,
    phrasing_template,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CLARIFY = "clarify"


def make_items(n_tools: int = 10, templates: int = 5, per_template: int = 4, sequences: int = 12,
               sequence_wordings: int = 0) -> list[Item]:
    """``sequence_wordings`` > 0: sequences share that many phrasing groups (per primary tool) instead of one each."""
    items = []
    for t in range(n_tools):
        for g in range(templates):
            for k in range(per_template):
                key = hashlib.sha256(f"{t}-{g}-{k}".encode()).hexdigest()
                items.append(Item(key=key, tool=f"svc.tool{t}", tools_called=(f"svc.tool{t}",), behavior="call",
                                  group=f"g{t}-{g}", created_at=NOW - timedelta(days=t * 10 + k)))
    for s in range(sequences):
        a, b = s % n_tools, (s + 1) % n_tools
        items.append(Item(key=hashlib.sha256(f"seq{s}".encode()).hexdigest(), tool=f"svc.tool{a}",
                          tools_called=(f"svc.tool{a}", f"svc.tool{b}"), behavior="sequence",
                          group=f"s{s % sequence_wordings if sequence_wordings else s}"))
    return items


def test_invariants_zero_shot_multi_step_and_new_phrasings_never_train() -> None:
    items = make_items()
    out = assign_splits(items, SplitParams(), seed=7)
    by_key = {i.key: i for i in items}
    assert len(out.zero_shot_tools) == 2  # 20% of 10 tools
    assert_invariants(items, out)
    for key, split in out.split.items():
        if split in (TRAIN, VALIDATION):
            assert out.dimension[key] == ""
        else:
            assert out.dimension[key] in (SEEN, NEW, ZERO, MULTI)
    train_tools = {by_key[k].tool for k, s in out.split.items() if s == TRAIN}
    new_tools = {by_key[k].tool for k, d in out.dimension.items() if d == NEW}
    assert new_tools and new_tools <= train_tools  # new phrasings are of tools that train teaches
    train_groups = {by_key[k].group for k, s in out.split.items() if s == TRAIN}
    assert not train_groups & {by_key[k].group for k, d in out.dimension.items() if d == NEW}
    # every seen tool keeps plenty of training examples
    per_tool_train = Counter(by_key[k].tool for k, s in out.split.items() if s == TRAIN)
    assert min(per_tool_train.values()) >= 8


def test_test_split_follows_the_composition() -> None:
    items = make_items(n_tools=10, templates=5, per_template=8, sequences=0)  # 400 items
    out = assign_splits(items, SplitParams(), seed=3)
    test_dims = Counter(out.dimension[k] for k, s in out.split.items() if s == TEST)
    assert test_dims == {SEEN: 16, NEW: 16, ZERO: 8}  # 40 = 10% of 400, 40/40/20
    sizes = Counter(out.split.values())
    assert sizes[VALIDATION] == 40
    assert sizes[TRAIN] + sizes[VALIDATION] + sizes[TEST] + sizes[HOLDOUT] == 400


def test_deterministic_by_seed_and_independent_of_input_order() -> None:
    items = make_items()
    a = assign_splits(items, SplitParams(), seed=11)
    b = assign_splits(list(reversed(items)), SplitParams(), seed=11)
    c = assign_splits(items, SplitParams(), seed=12)
    assert a.split == b.split and a.dimension == b.dimension
    assert a.split != c.split


def test_rotation_walks_through_the_tools() -> None:
    tools = [f"s.t{k}" for k in range(10)]
    windows = [choose_zero_shot_tools(tools, fraction=0.2, seed=5, rotation=r) for r in range(5)]
    assert all(len(w) == 2 for w in windows)
    assert sorted(t for w in windows for t in w) == sorted(tools)  # five rotations cover every tool once
    assert choose_zero_shot_tools(tools[:2], fraction=0.2, seed=5) == []


def test_time_based_holdout_moves_recent_examples() -> None:
    items = make_items(sequences=0)
    out = assign_splits(items, SplitParams(time_holdout_days=5, now=NOW), seed=1)
    recent = [i for i in items if i.created_at and i.created_at >= NOW - timedelta(days=5)]
    assert recent and all(out.split[i.key] == HOLDOUT for i in recent)


def test_phrasing_template_masks_values() -> None:
    values = argument_values({"calls": [{"name": "r", "arguments": {"payment_id": ["PAY-12"], "amount": [20.0]}}]})
    assert phrasing_template("Refund 20 dollars on PAY-12 now", values) == "refund <v> dollars on <v> now"
    assert phrasing_template("Refund 35 dollars on PAY-99 now", ["PAY-99", "35"]) == "refund <v> dollars on <v> now"


def test_mask_entities_keeps_only_the_wording() -> None:
    from ftops.datasets.splitting import mask_entities

    assert mask_entities("Charge CUS-123 USD 40 for INV-9, mail me at a@b.com or [PHONE]") == (
        "charge # usd # for # mail me at # or #")


def shares(out: Assignment) -> dict[str, float]:
    sizes = Counter(out.split.values())
    return {s: sizes[s] / len(out.split) for s in SPLITS}


def dims_in_test(out: Assignment) -> Counter[str]:
    return Counter(out.dimension[k] for k, s in out.split.items() if s == TEST)


def assert_shares_within_tolerance(out: Assignment) -> None:
    targets = {TRAIN: 0.6, VALIDATION: 0.1, TEST: 0.1, HOLDOUT: 0.2}
    got = shares(out)
    assert all(abs(got[s] - targets[s]) <= SHARE_TOLERANCE for s in SPLITS), got


def assert_invariants(items: list[Item], out: Assignment) -> None:
    by_key = {i.key: i for i in items}
    assert set(out.split) == set(by_key)
    taught = {by_key[k].group for k, s in out.split.items() if s == TRAIN}
    for key, split in out.split.items():
        item = by_key[key]
        if split in (TRAIN, VALIDATION):
            assert not set(item.tools_called) & set(out.zero_shot_tools)
            assert item.group not in out.new_phrasing_groups.get(item.tool, [])
        if split == VALIDATION:
            assert item.behavior != "sequence"
        if out.dimension[key] == SEEN:
            assert item.group in taught  # "seen phrasing" means that wording family is in train
        if out.dimension[key] == NEW:
            assert item.group not in taught


def test_ten_tools_400_items_hold_60_10_10_20_exactly() -> None:
    items = make_items(n_tools=10, templates=5, per_template=8, sequences=0)
    out = assign_splits(items, SplitParams(), seed=3)
    # Before: train 50%, holdout 30% (every new-phrasing group and zero-shot example overflowed).
    assert Counter(out.split.values()) == {TRAIN: 240, VALIDATION: 40, TEST: 40, HOLDOUT: 80}
    assert dims_in_test(out) == {SEEN: 16, NEW: 16, ZERO: 8}
    assert out.notes == []
    assert_invariants(items, out)


def test_shares_hold_with_many_sequences_and_multi_step_sits_inside_the_test() -> None:
    items = make_items(n_tools=10, templates=5, per_template=8, sequences=40)  # 440 items
    # A sequence share of 0 is the split from before sequences were taught: all evaluation-only.
    out = assign_splits(items, SplitParams(sequence_train_share=0.0), seed=3)
    assert not [k for k, s in out.split.items() if s == TRAIN and k in sequence_keys(items)]
    assert_shares_within_tolerance(out)  # before: 44/10/12/34
    dims = dims_in_test(out)
    assert sum(dims.values()) == 44  # multi-step examples count inside the test's 10%, not on top
    assert 0 < dims[MULTI] <= 22  # at most half the test is multi-step
    # The single-step part keeps 40/40/20 to within one phrasing group (groups here are 8 examples).
    single = 44 - dims[MULTI]
    assert (dims[SEEN], dims[NEW], dims[ZERO]) == (10, 8, 4)
    assert apportion(single, (0.4, 0.4, 0.2), (99, 99, 99)) == [9, 9, 4]
    assert any(n.startswith("test composition: the pools could not give 9/9/4") for n in out.notes)
    assert any(n.startswith("holdout holds 94 examples (target 88)") for n in out.notes)
    assert_invariants(items, out)


def test_shares_hold_with_two_phrasings_per_tool() -> None:
    items = make_items(n_tools=6, templates=2, per_template=10, sequences=0)  # 120 items
    out = assign_splits(items, SplitParams(), seed=3)
    assert_shares_within_tolerance(out)  # before: train 27.5%, holdout 52.5%
    assert Counter(out.split.values()) == {TRAIN: 72, VALIDATION: 12, TEST: 12, HOLDOUT: 24}
    assert dims_in_test(out) == {SEEN: 5, NEW: 5, ZERO: 2}  # 40/40/20 of 12, largest remainder
    assert sum(len(g) for g in out.new_phrasing_groups.values()) == 1  # one group of 10 fits the room
    assert_invariants(items, out)


def test_composition_shortfall_goes_to_the_other_pools() -> None:
    items = make_items(n_tools=10, templates=5, per_template=8, sequences=0)
    out = assign_splits(items, SplitParams(new_phrasing_fraction=0.0), seed=3)
    assert dims_in_test(out) == {SEEN: 27, ZERO: 13}  # the new-phrasing 40% split 2:1 like 40:20
    assert Counter(out.split.values()) == {TRAIN: 240, VALIDATION: 40, TEST: 40, HOLDOUT: 80}
    assert out.notes == ["test composition: the pools could not give 16/16/8 seen-phrasing/new-phrasing/"
                         "zero-shot-tool examples; it holds 27/0/13, the shortfall taken from the other pools "
                         "in proportion to their shares"]
    two_tools = assign_splits(make_items(n_tools=2, templates=5, per_template=8, sequences=0), SplitParams(), seed=3)
    assert dims_in_test(two_tools) == {SEEN: 4, NEW: 4}  # no zero-shot tool among two: 50/50


def test_apportion_caps_and_redistributes() -> None:
    assert apportion(40, (0.4, 0.4, 0.2), (100, 100, 100)) == [16, 16, 8]
    assert apportion(40, (0.4, 0.4, 0.2), (100, 5, 100)) == [23, 5, 12]
    assert apportion(40, (0.4, 0.4, 0.2), (3, 3, 3)) == [3, 3, 3]
    assert apportion(18, (0.4, 0.4, 0.2), (99, 99, 99)) == [7, 7, 4]


def test_time_holdout_is_set_aside_before_the_test_is_filled() -> None:
    base = make_items(n_tools=10, templates=5, per_template=8, sequences=0)
    # One template of tools 0 and 1 was written in the last week: 16 examples (4%).
    items = [replace(i, created_at=NOW - timedelta(days=1 if i.group in ("g0-4", "g1-4") else 60)) for i in base]
    out = assign_splits(items, SplitParams(time_holdout_days=7, now=NOW), seed=3)
    recent = [i for i in items if i.group in ("g0-4", "g1-4")]
    assert all(out.split[i.key] == HOLDOUT for i in recent)
    # Before: the recent examples were moved out of the test after it was composed.
    assert dims_in_test(out) == {SEEN: 16, NEW: 16, ZERO: 8}
    assert_shares_within_tolerance(out)
    assert "time-based holdout: 16 examples of the last 7 days are in the holdout" in out.notes[0]
    # The whole template is in the window, so train never saw that wording: a new phrasing.
    taught = {out.dimension[i.key] for i in recent if not set(i.tools_called) & set(out.zero_shot_tools)}
    assert taught <= {NEW}
    assert_invariants(items, out)


def test_a_recent_window_larger_than_the_holdout_grows_it_and_says_why() -> None:
    base = make_items(n_tools=10, templates=5, per_template=8, sequences=0)
    # A third of the examples are from today: more than the holdout's 20% can take.
    items = [replace(i, created_at=NOW - timedelta(days=0 if k % 3 == 0 else 30)) for k, i in enumerate(base)]
    out = assign_splits(items, SplitParams(time_holdout_days=1, now=NOW), seed=3)
    assert Counter(out.split.values())[TEST] == 40
    assert dims_in_test(out) == {SEEN: 16, NEW: 16, ZERO: 8}
    assert shares(out)[HOLDOUT] > 0.2 + SHARE_TOLERANCE
    assert any(n.startswith("holdout holds 180 examples (target 80): 134 examples of the time-based holdout and 46 "
                          "zero-shot-tool examples") for n in out.notes)
    assert_invariants(items, out)


def sequence_keys(items: list[Item]) -> set[str]:
    return {i.key for i in items if i.behavior == "sequence"}


def test_a_share_of_seen_tool_sequences_trains_by_whole_phrasing_group() -> None:
    items = make_items(n_tools=10, templates=5, per_template=8, sequences=40, sequence_wordings=5)  # 440 items
    out = assign_splits(items, SplitParams(sequence_train_share=0.5), seed=3)
    assert_invariants(items, out)
    assert_shares_within_tolerance(out)
    sequences = [i for i in items if i.behavior == "sequence"]
    seen_tool = [i for i in sequences if not set(i.tools_called) & set(out.zero_shot_tools)]
    trained = [i for i in sequences if out.split[i.key] == TRAIN]
    assert len(seen_tool) == 24 and len(sequences) - len(seen_tool) == 16
    # About half of the seen-tool sequences (whole groups of 4 here), none touching a zero-shot tool.
    assert len(trained) == 12
    assert all(i in seen_tool for i in trained)
    assert all(out.dimension[i.key] == ZERO for i in sequences if i not in seen_tool)
    # Whole groups: every evaluated sequence is in a wording train never saw.
    taught = {(i.tool, i.group) for i in trained}
    evaluated = [i for i in seen_tool if out.split[i.key] != TRAIN]
    assert evaluated and all(out.dimension[i.key] == MULTI and (i.tool, i.group) not in taught for i in evaluated)
    assert dims_in_test(out)[MULTI] > 0
    again = assign_splits(list(reversed(items)), SplitParams(sequence_train_share=0.5), seed=3)
    assert (again.split, again.dimension) == (out.split, out.dimension)


def test_sequence_share_zero_keeps_every_sequence_out_of_train_and_one_keeps_none_for_evaluation() -> None:
    items = make_items(n_tools=10, templates=5, per_template=8, sequences=40, sequence_wordings=5)
    keys = sequence_keys(items)
    before = assign_splits(items, SplitParams(sequence_train_share=0.0), seed=3)
    assert not [k for k in keys if before.split[k] == TRAIN]
    assert {before.dimension[k] for k in keys} == {MULTI, ZERO}
    everything = assign_splits(items, SplitParams(sequence_train_share=1.0), seed=3)
    assert {everything.dimension[k] for k in keys if everything.split[k] != TRAIN} == {ZERO}
    assert any(n.startswith("all 24 sequences of seen tools are in train") for n in everything.notes)
    # Below a share of 1 one group always stays for evaluation, however small the pool.
    few = make_items(n_tools=10, templates=5, per_template=8, sequences=3)
    kept = assign_splits(few, SplitParams(sequence_train_share=0.9), seed=3)
    assert any(kept.dimension[k] == MULTI for k in sequence_keys(few))



def lumpy_behaviour_items(n_tools: int = 10, shapes: tuple[tuple[str, int, int, int], ...] = (
        ("call", 4, 6, 1), ("clarify", 8, 2, 1), ("ask_for_details", 3, 3, 2))) -> list[Item]:
    """Per shape (behaviour, wordings, examples per wording, every n-th tool): by default call in few
    large groups, clarify in many small ones and ask-for-details in half the tools: taken whole in
    plain group order, the kinds of group that skew the new-phrasing mix."""
    items = []
    for t in range(n_tools):
        for behavior, groups, size, every in shapes:
            if t % every:
                continue
            for g in range(groups):
                for k in range(size):
                    key = hashlib.sha256(f"{t}-{behavior}-{g}-{k}".encode()).hexdigest()
                    items.append(Item(key=key, tool=f"svc.tool{t}", tools_called=(f"svc.tool{t}",),
                                      behavior=behavior, group=f"{behavior}{t}-{g}"))
    return items


def new_phrasing_mix(items: list[Item], out: Assignment, split: str) -> Counter[str]:
    return Counter(i.behavior for i in items if out.split[i.key] == split and out.dimension[i.key] == NEW)


def test_new_phrasings_in_the_test_follow_the_behaviour_mix_of_the_single_step_examples() -> None:
    items = lumpy_behaviour_items()
    # Before, in plain group order: 0/4/13, 0/9/8 and 0/5/12 ask-for-details/call/clarify for 2/9/6.
    for seed in (3, 5, 11):
        out = assign_splits(items, SplitParams(), seed=seed)
        assert_invariants(items, out)
        assert_shares_within_tolerance(out)
        single = Counter(i.behavior for i in items if not set(i.tools_called) & set(out.zero_shot_tools))
        kinds = sorted(single)
        got = new_phrasing_mix(items, out, TEST)
        ideal = apportion(sum(got.values()), [single[b] for b in kinds], [999] * len(kinds))
        assert [got[b] for b in kinds] == ideal == [2, 9, 6], seed
        assert out.notes == []
        # Whole groups: no wording held out as new has an example in train or validation.
        held = {(t, g) for t, groups in out.new_phrasing_groups.items() for g in groups}
        assert held and not [i for i in items if (i.tool, i.group) in held and out.split[i.key] in (TRAIN, VALIDATION)]
        again = assign_splits(list(reversed(items)), SplitParams(), seed=seed)
        assert (again.split, again.dimension, again.notes) == (out.split, out.dimension, out.notes)
    # Whole groups too large for the room left cannot be split: the mix is then only near.
    tight = assign_splits(items, SplitParams(), seed=7)
    assert_invariants(items, tight)
    assert sum(new_phrasing_mix(items, tight, TEST).values()) == dims_in_test(tight)[NEW] > 0


def test_a_behaviour_with_too_few_groups_hands_its_share_to_the_others_and_says_so() -> None:
    # Ask-for-details is 40 examples in one wording: a behaviour never holds out its last group.
    items = lumpy_behaviour_items(shapes=(("call", 4, 6, 1), ("clarify", 8, 2, 1), ("ask_for_details", 1, 40, 10)))
    out = assign_splits(items, SplitParams(), seed=3)
    assert "svc.tool0" not in out.zero_shot_tools
    assert_invariants(items, out)
    assert_shares_within_tolerance(out)
    got = new_phrasing_mix(items, out, TEST)
    assert got["ask_for_details"] == 0 and got["call"] + got["clarify"] == dims_in_test(out)[NEW] > 0
    assert [n for n in out.notes if n.startswith("new-phrasing pool")] == [
        "new-phrasing pool: too few phrasing groups to follow the behaviour mix of the single-step examples: "
        "ask-for-details has 0 examples of 4; the shortfall went to the other behaviours"]
