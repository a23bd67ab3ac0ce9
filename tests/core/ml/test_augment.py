from __future__ import annotations

import random
from typing import Any

import pytest

from ftops.core.ml.augment import (
    argument_values,
    augment_record,
    parse_kinds,
    rename_map,
    rephrase,
    used_tools,
)
from ftops.core.ml.lora import LoraTrainConfig
from ftops.core.records import Record
from ftops.core.scoring import teaching_turns

ALL = ["phrasing", "tools", "names"]


def _tool(name: str, description: str = "", params: tuple[str, ...] = ("id",)) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name, "description": description or f"Does {name}.",
        "parameters": {"type": "object", "properties": {p: {"type": "string"} for p in params},
                       "required": list(params)}}}


TOOLS = [_tool("get_latest_order", "Newest order of a customer; list_orders lists them all.", ("customer",)),
         _tool("list_orders", params=("customer",)), _tool("cancel_order", params=("order_id",)),
         _tool("update_address", params=("order_id", "address")), _tool("create_ticket", params=("subject",)),
         _tool("delete_customer", params=("customer",))]


def _call(i: int) -> Record:
    customer = ("C-1042", "Ana Lima", "c_77", "ACME Ltd.")[i % 4]
    query = ("Please, what is the newest order of {c}?", "hi, latest order for {c} thanks",
             "{c} newest order", "newest order of {c}!")[i % 4].format(c=customer)
    return Record(id=f"call-{i}", service="shop", tool="get_latest_order", tools=list(TOOLS), behavior="call",
                  messages=[{"role": "system", "content": "You are the shop assistant."},
                            {"role": "user", "content": query}],
                  expected={"calls": [{"name": "get_latest_order", "arguments": {"customer": [customer]}}]},
                  split="train")


def _sequence() -> Record:
    steps = [{"name": "get_latest_order", "arguments": {"customer": "C-9"}, "result": {"order_id": "O-5"}},
             {"name": "cancel_order", "arguments": {"order_id": "{prev.order_id}"}}]
    return Record(id="seq-1", service="shop", tool="get_latest_order", tools=list(TOOLS), behavior="sequence",
                  messages=[{"role": "user", "content": "Cancel the newest order of C-9 please"}],
                  expected={"steps": steps}, split="train")


def _names(record: Record) -> list[str]:
    return [t["function"]["name"] for t in record.tools]


def _variants(record: Record, epochs: int = 40, kinds: list[str] | None = None) -> list[Record]:
    return [augment_record(record, kinds or ALL, seed=5, epoch=e) for e in range(1, epochs + 1)]


def test_epoch_zero_and_no_kinds_leave_the_record_as_it_is() -> None:
    record = _call(0)
    assert augment_record(record, ALL, seed=5, epoch=0) is record
    assert augment_record(record, [], seed=5, epoch=3) is record


def test_same_seed_epoch_and_record_give_the_same_variant_and_others_differ() -> None:
    record = _call(1)
    assert _variants(record) == _variants(record)
    assert len({repr(v) for v in _variants(record)}) > 10
    other_seed = [augment_record(record, ALL, seed=6, epoch=e) for e in range(1, 41)]
    assert other_seed != _variants(record)


def test_phrasing_keeps_every_argument_value_verbatim() -> None:
    changed = 0
    for i in range(8):
        record = _call(i)
        value = record.expected["calls"][0]["arguments"]["customer"][0]
        for variant in _variants(record, kinds=["phrasing"]):
            text = variant.messages[-1]["content"]
            assert value in text
            assert variant.messages[0] == record.messages[0]  # the system prompt is not the request
            changed += text != record.messages[-1]["content"]
    assert changed > 100  # most variants do differ from the original request


def test_a_rewrite_that_would_break_a_value_keeps_the_original() -> None:
    # The value starts the request, so lower-casing its first letter would change it.
    text = "Paris weather"
    outs = {rephrase(text, ["Paris"], random.Random(s)) for s in range(200)}
    assert all("Paris" in out for out in outs)
    assert text in outs and len(outs) > 5


def test_argument_values_reads_calls_and_steps() -> None:
    assert argument_values({"calls": [{"name": "x", "arguments": {"a": ["Oslo"], "n": [2.0], "b": [True]}}]}) \
        == ["Oslo", "2.0", "2"]
    assert argument_values(_sequence().expected) == ["C-9", "{prev.order_id}"]


def test_renames_are_consistent_between_tools_and_target_and_unique() -> None:
    renamed = 0
    for variant in _variants(_call(2), epochs=60, kinds=["names"]):
        names = _names(variant)
        assert len(names) == len(set(names))
        target = variant.expected["calls"][0]["name"]
        assert target in names and variant.tool == target
        if target != "get_latest_order":
            renamed += 1
            assert "get_latest_order" not in names
            # The description that named another tool names it by its new name.
            description = variant.tools[names.index(target)]["function"]["description"]
            assert "list_orders" not in description or "list_orders" in names
            assert target == teaching_turns(variant)[0].calls[0]["name"]
    assert 5 < renamed < 40  # renamed in some epochs only (probability 0.3)


def test_rename_map_skips_a_name_that_would_collide() -> None:
    for seed in range(50):
        mapping = rename_map(["get_weather", "fetch_weather", "find_weather", "lookup_weather", "retrieve_weather"],
                             random.Random(seed))
        # Every synonym of "get" is already taken: no tool can be renamed.
        assert mapping == {}
    mapping = rename_map(["get_order", "fetch_order", "cancel_order"], random.Random(1))
    assert "get_order" not in mapping.values() and "fetch_order" not in mapping.values()
    assert set(mapping) <= {"get_order", "fetch_order", "cancel_order"} and "cancel_order" in mapping


def test_tool_lists_are_shuffled_and_never_lose_the_target_or_go_below_two() -> None:
    orders = set()
    dropped = 0
    for i in range(4):
        record = _call(i)
        for variant in _variants(record, kinds=["tools"]):
            names = _names(variant)
            orders.add(tuple(names))
            assert "get_latest_order" in names and len(names) >= 2
            assert set(names) <= set(_names(record))
            dropped += len(names) < len(TOOLS)
    assert len(orders) > 20 and dropped > 5
    two = Record(id="two", service="s", tool="list_orders", tools=TOOLS[:2], behavior="call",
                 messages=[{"role": "user", "content": "orders of C-1"}],
                 expected={"calls": [{"name": "list_orders", "arguments": {"customer": ["C-1"]}}]})
    assert all(len(v.tools) == 2 for v in _variants(two, kinds=["tools"]))


def test_records_offering_the_same_tools_get_the_same_list_in_an_epoch() -> None:
    # Same tool list per epoch keeps one shared prompt prefix for packing.
    a, b = _call(0), _call(1)
    for va, vb in zip(_variants(a, kinds=["tools", "names"]), _variants(b, kinds=["tools", "names"]), strict=True):
        assert va.tools == vb.tools


def test_sequences_keep_every_tool_a_step_uses_and_rename_every_step() -> None:
    record = _sequence()
    renamed = 0
    for variant in _variants(record, epochs=60):
        names = _names(variant)
        steps = [s["name"] for s in variant.expected["steps"]]
        assert set(steps) <= set(names) and used_tools(variant) <= set(names)
        turns = teaching_turns(variant)
        assert [t.calls[0]["name"] for t in turns[:2]] == steps
        # The second turn's earlier assistant call uses the renamed first step.
        earlier = [c["function"]["name"] for m in turns[1].messages for c in m.get("tool_calls") or []]
        assert earlier == steps[:1]
        assert "C-9" in variant.messages[-1]["content"]
        assert turns[1].calls[0]["arguments"] == {"order_id": "O-5"}
        renamed += steps != ["get_latest_order", "cancel_order"]
    assert renamed > 5


def test_config_validates_augment_with_a_clear_message() -> None:
    assert LoraTrainConfig(base_model="x").augment == ""
    assert LoraTrainConfig(base_model="x", augment="phrasing, tools,names").validate() == {}
    errors = LoraTrainConfig(base_model="x", augment="phrasing,synonyms").validate()
    assert "unknown augmentation synonyms" in errors["augment"] and "phrasing, tools, names" in errors["augment"]
    assert parse_kinds("names,phrasing") == (["phrasing", "names"], "")


@pytest.mark.parametrize("kind", ALL)
def test_each_kind_alone_changes_only_its_part(kind: str) -> None:
    record = _call(3)
    for variant in _variants(record, kinds=[kind]):
        if kind != "phrasing":
            assert variant.messages == record.messages
        if kind == "phrasing":
            assert variant.tools == record.tools and variant.expected == record.expected
        if kind == "tools":
            assert variant.expected == record.expected


def test_augmenting_never_changes_the_original_record() -> None:
    import copy

    for record in (_call(0), _call(2), _sequence()):
        before = copy.deepcopy(record)
        _variants(record, epochs=30)
        assert record == before
