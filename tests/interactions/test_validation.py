"""Payload parsing and the body hash behind idempotent replays."""

from __future__ import annotations

from typing import Any

from ftops.interactions.validation import ToolsMemo, body_hash, parse_payload, too_deep

TOOL = {"type": "function", "function": {"name": "get_order", "parameters": {"type": "object", "properties": {}}}}


def test_body_hash_ignores_key_order_and_memo_sharing(payload: Any) -> None:
    body = payload("h-1", tools=[TOOL])
    reordered = dict(reversed(list(body.items())))
    reordered["tools"] = [{"function": {"parameters": {"properties": {}, "type": "object"}, "name": "get_order"},
                           "type": "function"}]
    memo = ToolsMemo()
    assert body_hash(body, memo) == body_hash(reordered, memo) == body_hash(reordered)


def test_body_hash_changes_with_any_field_including_tools(payload: Any) -> None:
    base = body_hash(payload("h-2", tools=[TOOL]))
    other_tool = {"type": "function", "function": {"name": "get_order", "parameters": {"type": "object"}}}
    assert body_hash(payload("h-2", tools=[other_tool])) != base
    assert body_hash(payload("h-2", tools=[TOOL], user_feedback=4)) != base
    assert body_hash(payload("h-2", tools=...)) != body_hash(payload("h-2", tools=[]))


def test_parsed_payload_carries_the_canonical_tools(payload: Any) -> None:
    memo = ToolsMemo()
    first, errors = parse_payload(payload("t-1", tools=[TOOL]), memo)
    second, _ = parse_payload(payload("t-2", tools=[TOOL]), memo)
    assert errors == {}
    assert first is not None and second is not None
    assert first.tools_json is second.tools_json  # serialised once for the batch
    assert first.tools_json.startswith('[{"function":{"name":"get_order"')


def test_epoch_and_naive_timestamps_are_utc(payload: Any) -> None:
    epoch, _ = parse_payload(payload("e", timestamp=1_740_823_200))
    naive, _ = parse_payload(payload("n", timestamp="2025-03-01T10:00:00"))
    assert epoch is not None and naive is not None
    assert epoch.timestamp.isoformat() == "2025-03-01T10:00:00+00:00"
    assert naive.timestamp.isoformat() == "2025-03-01T10:00:00+00:00"


def test_unparsable_arguments_are_kept_for_the_verdict(payload: Any) -> None:
    item, errors = parse_payload(payload("u", tool_calls=[{"name": "get_order", "arguments": "[1, 2]"}]))
    assert errors == {}
    assert item is not None
    assert item.tool_calls == [{"name": "get_order", "arguments": {}, "arguments_raw": "[1, 2]",
                                "arguments_error": "arguments must be a JSON object (got array)"}]
    assert item.unparsable_calls == ["get_order: arguments must be a JSON object (got array)"]


def test_depth_is_measured_without_recursion() -> None:
    value: Any = 1
    for _ in range(50_000):  # far past the recursion limit
        value = [value]
    assert too_deep(value) is True
    assert too_deep([[[1]]], limit=3) is False
    assert too_deep([[[[1]]]], limit=3) is True
    assert too_deep({"a": [{"b": {}}]}, limit=4) is False
    assert too_deep("text") is False


def test_non_object_arguments_are_kept_as_json_text(payload: Any) -> None:
    item, errors = parse_payload(payload("u2", tool_calls=[{"name": "get_order", "arguments": [1, "x"]}]))
    assert errors == {}
    assert item is not None
    assert item.tool_calls == [{"name": "get_order", "arguments": {}, "arguments_raw": '[1, "x"]',
                                "arguments_error": "arguments must be a JSON object (got array)"}]
    assert item.unparsable_calls == ["get_order: arguments must be a JSON object (got array)"]
