"""One tool-call shape: every input form parses to it, and unreadable arguments stay verbatim."""

from __future__ import annotations

import pytest

from ftops.core.toolcalls import ToolCall, parse_tool_call, parse_tool_calls, stored_calls


@pytest.mark.parametrize("item", [
    {"name": "pay", "arguments": {"amount": 5}},
    {"name": "pay", "arguments": '{"amount": 5}'},
    {"type": "function", "function": {"name": "pay", "arguments": '{"amount": 5}'}},
    {"id": "c1", "type": "function", "function": {"name": "pay", "arguments": {"amount": 5}}},
    {"name": "pay", "parameters": {"amount": 5}},
])
def test_every_accepted_form_gives_the_same_call(item: dict) -> None:
    assert parse_tool_call(item) == ToolCall(name="pay", arguments={"amount": 5})
    assert stored_calls([item]) == [{"name": "pay", "arguments": {"amount": 5}}]


@pytest.mark.parametrize("arguments", [None, "", "   "])
def test_absent_arguments_are_an_empty_object(arguments: object) -> None:
    assert parse_tool_call({"name": "ping", "arguments": arguments}) == ToolCall(name="ping", arguments={})


@pytest.mark.parametrize(("arguments", "raw", "why"), [
    ('{"amount": 5', '{"amount": 5', "arguments are not valid JSON"),
    ("[1, 2]", "[1, 2]", "arguments must be a JSON object (got array)"),
    ('"text"', '"text"', "arguments must be a JSON object (got string)"),
    ([1, 2], "[1, 2]", "arguments must be a JSON object (got array)"),
    (7, "7", "arguments must be a JSON object (got number)"),
])
def test_unreadable_arguments_are_kept_verbatim_never_emptied(arguments: object, raw: str, why: str) -> None:
    call = parse_tool_call({"name": "pay", "arguments": arguments})
    assert call is not None and not call.parsed
    assert call.as_dict() == {"name": "pay", "arguments": {}, "arguments_raw": raw, "arguments_error": why}
    assert call.arguments_text() == raw
    # Stored form read back is the same call (consumers never re-decide).
    assert parse_tool_call(call.as_dict()) == call


def test_items_that_name_no_tool_are_not_calls() -> None:
    assert parse_tool_calls([{"arguments": {}}, "x", None, {"name": ""}, {"name": "ok"}]) == [ToolCall(name="ok")]
    assert parse_tool_calls("not a list") == []
    assert parse_tool_calls({"name": "ok"}) == []


def test_deeply_nested_text_is_kept_not_crashed_on() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    call = parse_tool_call({"name": "pay", "arguments": deep})
    assert call is not None and call.arguments_raw == deep
