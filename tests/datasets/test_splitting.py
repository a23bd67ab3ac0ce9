from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, datetime, timedelta

from ftops.datasets.splitting import (
    HOLDOUT,
    MULTI,
    NEW,
    SEEN,
    TEST,
    TRAIN,
    VALIDATION,
    ZERO,
    Item,
    SplitParams,
    assign_splits,
    choose_zero_shot_tools,
    expected_values,
    phrasing_template,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def make_items(n_tools: int = 10, templates: int = 5, per_template: int = 4, sequences: int = 12) -> list[Item]:
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
                          tools_called=(f"svc.tool{a}", f"svc.tool{b}"), behavior="sequence", group=f"s{s}"))
    return items


def test_invariants_zero_shot_multi_step_and_new_phrasings_never_train() -> None:
    items = make_items()
    out = assign_splits(items, SplitParams(), seed=7)
    by_key = {i.key: i for i in items}
    assert len(out.zero_shot_tools) == 2  # 20% of 10 tools
    assert set(out.split) == set(by_key)
    for key, split in out.split.items():
        item = by_key[key]
        if split in (TRAIN, VALIDATION):
            assert not set(item.tools_called) & set(out.zero_shot_tools)
            assert item.behavior != "sequence"
            assert item.group not in out.new_phrasing_groups.get(item.tool, [])
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
    values = expected_values({"calls": [{"name": "r", "arguments": {"payment_id": ["PAY-12"], "amount": [20.0]}}]})
    assert phrasing_template("Refund 20 dollars on PAY-12 now", values) == "refund <v> dollars on <v> now"
    assert phrasing_template("Refund 35 dollars on PAY-99 now", ["PAY-99", "35"]) == "refund <v> dollars on <v> now"


def test_mask_entities_keeps_only_the_wording() -> None:
    from ftops.datasets.splitting import mask_entities

    assert mask_entities("Charge CUS-123 USD 40 for INV-9, mail me at a@b.com or [PHONE]") == (
        "charge # usd # for # mail me at # or #")
