"""Schema verdicts: the fast path agrees with jsonschema, broken schemas never refuse a log."""

from __future__ import annotations

import random
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from ftops.interactions import verdicts
from ftops.interactions.verdicts import ToolSchema, check_call, check_calls, schema_hash

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "amount_cents": {"type": "integer", "minimum": 1, "maximum": 10_000_000},
        "currency": {"type": "string", "enum": ["USD", "EUR"]},
        "order_id": {"type": "string", "pattern": "^ORD-[0-9]+$", "maxLength": 12},
        "ratio": {"type": "number"},
        "express": {"type": "boolean"},
        "note": {"type": "string", "minLength": 2},
    },
    "required": ["amount_cents", "currency"],
    "additionalProperties": False,
}
VALUES = [1, 0, -5, 2.0, 2.5, 10**8, True, False, None, "USD", "usd", "EUR", "ORD-12", "ORD-123456789", "x", "",
          "ok", [], {}, "1"]  # fmt: skip


def test_fast_path_never_disagrees_with_jsonschema() -> None:
    schema = ToolSchema("pay", SCHEMA, schema_hash(SCHEMA))
    reference = Draft202012Validator(SCHEMA)
    fast = verdicts._fast_checker(SCHEMA)
    assert fast is not None
    rng = random.Random(3)
    fast_yes = 0
    for _ in range(4000):
        arguments: dict[str, Any] = {"amount_cents": rng.choice([1, 500, 2.0, True, 0, "5"]),
                                     "currency": rng.choice(["USD", "EUR", "usd", 1])}
        if rng.random() < 0.1:
            del arguments[rng.choice(["amount_cents", "currency"])]
        for key in rng.sample([*SCHEMA["properties"], "extra"], rng.randint(0, 3)):
            arguments[key] = rng.choice(VALUES)
        valid = reference.is_valid(arguments)
        if fast(arguments):
            fast_yes += 1
            assert valid, arguments
        assert (check_call("pay", arguments, schema) == []) == valid, arguments
    assert fast_yes > 50  # the fast path is really taken


def test_schemas_outside_the_simple_subset_use_jsonschema_only() -> None:
    nested = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "string"}}}}
    assert verdicts._fast_checker(nested) is None
    schema = ToolSchema("bulk", nested, schema_hash(nested))
    assert check_call("bulk", {"items": ["a", "b"]}, schema) == []
    problems = check_call("bulk", {"items": ["a", 3]}, schema)
    assert problems == [("type_error", "bulk.items.1: 3 is not of type 'string'")]


def test_a_broken_published_schema_does_not_refuse_the_call() -> None:
    broken = {"type": "object", "properties": {"x": {"type": "no-such-type"}}}
    verdict = check_calls([{"name": "t", "arguments": {"x": 1}}], {"t": ToolSchema("t", broken, "broken-1")})
    assert (verdict.verdict, verdict.kind) == ("valid", "")


def test_long_reasons_are_truncated() -> None:
    many = {f"p{i}": i for i in range(200)}
    verdict = check_calls([{"name": "pay", "arguments": many}], {"pay": ToolSchema("pay", SCHEMA, "s")})
    assert verdict.verdict == "invalid"
    assert len(verdict.reason) == verdicts.REASON_MAX
    assert verdict.reason.endswith("…")


@pytest.mark.parametrize(("calls", "expected"), [([], ("no_call", "")), ([{"name": "nope", "arguments": {}}],
                                                                         ("invalid", "unknown_tool"))])
def test_no_call_and_unknown_tool(calls: list[dict[str, Any]], expected: tuple[str, str]) -> None:
    verdict = check_calls(calls, {})
    assert (verdict.verdict, verdict.kind) == expected
