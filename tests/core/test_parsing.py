"""Tool calls out of model text."""

from __future__ import annotations

import pytest

from ftops.core.adapters import output_from_text
from ftops.core.parsing import parse_tool_calls

CALL = {"name": "get_weather", "arguments": {"city": "Paris"}}


@pytest.mark.parametrize("text", [
    '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n',
    '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}',  # cut off before the closing tag
    '{"name": "get_weather", "arguments": {"city": "Paris"}}',
    '{"name": "get_weather", "parameters": {"city": "Paris"}}',
    '{"type": "function", "function": {"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}}',
    '[{"get_weather": {"city": "Paris"}}]',
    '```json\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n```',
    'Sure, checking. {"name": "get_weather", "arguments": {"city": "Paris"}}',
    "get_weather(city='Paris')",
    "[get_weather(city=\"Paris\")]",
    "{'name': 'get_weather', 'arguments': {'city': 'Paris'}}",
])
def test_one_call_in_every_format(text: str) -> None:
    assert parse_tool_calls(text) == ([CALL], None)


def test_several_calls_and_dotted_names() -> None:
    text = "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call><tool_call>{\"name\": \"b\"}</tool_call>"
    assert parse_tool_calls(text) == ([{"name": "a", "arguments": {}}, {"name": "b", "arguments": {}}], None)
    assert parse_tool_calls("[math.sqrt(x=4), math.pow(x=2, y=(1, 2), z=true)]") == (
        [{"name": "math.sqrt", "arguments": {"x": 4}},
         {"name": "math.pow", "arguments": {"x": 2, "y": [1, 2], "z": True}}], None)


@pytest.mark.parametrize(("text", "error"), [
    ('<tool_call>{"name": "get_weather", "arguments": {"city": ', "<tool_call> 1 is not valid JSON"),
    ('<tool_call>{"arguments": {}}</tool_call>', "<tool_call> 1 has no function name"),
    ('{"city": "Paris", ', "output looks like JSON but does not parse"),
    ('{"city": "Paris"}', "JSON output holds no function call"),
    ("get_weather('Paris')", "get_weather() passes positional arguments"),
    ("get_weather(city=lookup())", "get_weather(city=...) is not a literal"),
    ("get_weather(city='Paris'", "output looks like a Python call but does not parse"),
])
def test_unparseable_attempts_are_reported(text: str, error: str) -> None:
    calls, problem = parse_tool_calls(text)
    assert calls == []
    assert problem is not None and problem.startswith(error)


@pytest.mark.parametrize("text", ["", "   ", "Which customer do you mean?", "[]", "I can't do that (sorry)."])
def test_plain_answers_are_no_call_and_no_error(text: str) -> None:
    assert parse_tool_calls(text) == ([], None)


def test_model_output_keeps_prose_outside_calls() -> None:
    out = output_from_text('Let me check.<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}'
                           "</tool_call>")
    assert (out.calls, out.text, out.parse_error) == ([CALL], "Let me check.", None)
    broken = output_from_text("<tool_call>{oops</tool_call>")
    assert (broken.calls, broken.text, broken.raw) == ([], "<tool_call>{oops</tool_call>",
                                                       "<tool_call>{oops</tool_call>")
    assert broken.parse_error is not None
