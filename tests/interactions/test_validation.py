"""Payload parsing and the body hash behind idempotent replays."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime
from typing import Any

from ftops.interactions.validation import ToolsMemo, body_hash, canonical_bytes, canonical_json, parse_payload, too_deep

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
    assert first.tools_json.startswith(b'[{"function":{"name":"get_order"')


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


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 4 else 5)
    if kind == 0:
        # Floats of every magnitude: orjson writes some of them differently from json.dumps.
        return rng.choice([-1, 1]) * rng.random() * 10 ** rng.uniform(-12, 20)
    if kind == 1:
        return rng.choice([0, -1, 2**63 - 1, 2**64 - 1, 2**70, -(2**65), rng.randrange(-10**9, 10**9)])
    if kind == 2:
        return "".join(chr(rng.choice([rng.randrange(0x20), rng.randrange(0x20, 0x7f), rng.randrange(0xa0, 0xd7ff),
                                       rng.randrange(0xe000, 0x10ffff)])) for _ in range(rng.randrange(8)))
    if kind == 3:
        return rng.choice([True, False, None, 1e-05, 1e-07, 0.00012, 1e16, -0.0, 1.5])
    if kind == 4:
        return datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)  # a Python caller's value: default=str
    if kind in (5, 6):
        return {rng.choice(["a", "b", "é", "Z", "10", "a b"]) + str(i): _random_value(rng, depth + 1)
                for i in range(rng.randrange(4))}
    return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def test_canonical_bytes_are_the_standard_encoders_bytes_exactly() -> None:
    # Stored body hashes were made with json.dumps: the fast path must not change a single byte.
    rng = random.Random(11)
    for _ in range(3000):
        value = {"v": _random_value(rng), "w": [_random_value(rng)]}
        assert canonical_bytes(value) == canonical_json(value).encode()


def test_the_body_hash_is_the_one_stored_before_orjson(payload: Any) -> None:
    body = payload("h-3", tools=[TOOL], confidence=0.00003, metadata={"ratio": 1e-07, "note": "naïve ✓"})
    rest = {k: v for k, v in body.items() if k != "tools"}
    legacy = hashlib.sha256(f"{canonical_json(rest)}\x1f{canonical_json([TOOL])}".encode()).hexdigest()
    assert body_hash(body) == legacy
    item, errors = parse_payload(body)
    assert errors == {} and item is not None and item.body_hash == legacy
