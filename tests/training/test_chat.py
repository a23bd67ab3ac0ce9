from __future__ import annotations

import json
from pathlib import Path

from ftops.core.ml.chat import (
    CHAT_TEMPLATE,
    normalize_messages,
    normalize_tool,
    render_assistant,
    render_example,
    render_prompt,
    tool_signature,
)
from tests.training.conftest import BOOK, WEATHER


def test_render_assistant_writes_one_compact_sorted_call_per_line() -> None:
    text = render_assistant([{"name": "get_weather", "arguments": {"unit": "c", "city": "Paris"}},
                             {"name": "book_room", "arguments": {}}])
    assert text == ('<tool_call>{"name":"get_weather","arguments":{"city":"Paris","unit":"c"}}</tool_call>\n'
                    '<tool_call>{"name":"book_room","arguments":{}}</tool_call>')


def test_render_assistant_without_calls_is_the_text() -> None:
    assert render_assistant([], "Which city?") == "Which city?"


def test_tool_signature_is_short_and_marks_optional_parameters() -> None:
    assert tool_signature(WEATHER) == "get_weather(city:str, unit?:c|f) - Current weather for a city"
    assert tool_signature({"name": "ping"}) == "ping()"


def test_builtin_prompt_without_tokenizer() -> None:
    prompt = render_prompt(None, [{"role": "user", "content": "Weather in Oslo?"}], [WEATHER, BOOK])
    assert prompt == ("<|tools|>get_weather(city:str, unit?:c|f) - Current weather for a city\n"
                      "book_room(hours:int, room:str) - Book a meeting room\n<|end|>"
                      "<|user|>Weather in Oslo?<|end|><|assistant|>")


def test_jinja_template_matches_the_python_rendering(micro_tokenizer: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(micro_tokenizer)
    assert tokenizer.chat_template == CHAT_TEMPLATE
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Oslo, then book Atlas"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "content": {"temp": 3, "sky": "snow"}},
    ]
    tools = [WEATHER, BOOK["function"]]  # plain {name, parameters} tools are accepted too
    jinja = tokenizer.apply_chat_template(normalize_messages(messages), tools=[normalize_tool(t) for t in tools],
                                          add_generation_prompt=True, tokenize=False)
    assert jinja == render_prompt(None, messages, tools) == render_prompt(tokenizer, messages, tools)
    full = tokenizer.apply_chat_template([*normalize_messages(messages), {"role": "assistant", "content": "ok"}],
                                         tools=[normalize_tool(t) for t in tools], tokenize=False)
    assert full == jinja + "ok<|end|>"


def test_history_calls_become_tool_call_text() -> None:
    plain = normalize_messages([{"role": "assistant", "content": None, "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": json.dumps({"b": 1, "a": 2})}}]}])
    assert plain == [{"role": "assistant", "content": '<tool_call>{"name":"f","arguments":{"a":2,"b":1}}</tool_call>'}]


def test_render_example_completion_ends_with_the_end_of_turn(micro_tokenizer: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(micro_tokenizer)
    prompt, completion = render_example(tokenizer, [{"role": "user", "content": "hi"}], [], "Hello")
    assert prompt == "<|user|>hi<|end|><|assistant|>"
    assert completion == "Hello<|end|>"


CHATML = (
    "{% if tools %}<|im_start|>system\nTools: {{ tools | map(attribute='function.name') | join(', ') }}<|im_end|>\n"
    "{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_a_models_own_chat_template_is_used_with_tools(micro_tokenizer: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(micro_tokenizer)
    tokenizer.chat_template = CHATML  # stands in for e.g. Qwen's template
    messages = [{"role": "user", "content": "Weather in Oslo?"}]
    prompt, completion = render_example(tokenizer, messages, [WEATHER, BOOK], "<tool_call>{}</tool_call>")
    assert prompt == ("<|im_start|>system\nTools: get_weather, book_room<|im_end|>\n"
                      "<|im_start|>user\nWeather in Oslo?<|im_end|>\n<|im_start|>assistant\n")
    assert completion == "<tool_call>{}</tool_call><|im_end|>\n"  # the template's own end of turn
    assert render_prompt(tokenizer, messages, [WEATHER, BOOK]) == prompt
