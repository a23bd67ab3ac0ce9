from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from ftops.core.records import Record
from ftops.datasets.exports import export_records, hf_line, openai_line, validate_hf_line, validate_openai_line
from tests.datasets.factories import build_shop

ORDER_PARAMS = {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}
TOOLS = [{"type": "function", "function": {"name": "get_order", "description": "Look up an order",
                                           "parameters": ORDER_PARAMS}},
         {"type": "function", "function": {"name": "refund_payment", "description": "Refund",
                                           "parameters": {"type": "object", "properties": {
                                               "payment_id": {"type": "string"}, "amount": {"type": "number"}}}}}]


def record(behavior: str, expected: dict[str, Any], query: str = "Refund order ORD-1") -> Record:
    return Record(id="7", service="shop", tool="get_order", messages=[{"role": "user", "content": query}],
                  tools=TOOLS, behavior=behavior, expected=expected)


CALL = record("call", {"calls": [{"name": "get_order", "arguments": {"order_id": ["ORD-1", "ord-1"]}},
                                 {"name": "refund_payment", "arguments": {"payment_id": ["P-1"], "amount": [5, ""]}}]})
SEQUENCE = record("sequence", {"steps": [
    {"name": "get_order", "arguments": {"order_id": "ORD-1"}, "result": {"payment_id": "P-9", "total": 12.5}},
    {"name": "refund_payment", "arguments": {"payment_id": "{prev.payment_id}", "amount": "{prev.total}"}}]})
CLARIFY = record("clarify", {"question": "Which order?", "reason": "no id"})


def test_openai_lines_have_string_arguments_and_pass_the_validator() -> None:
    line = openai_line(CALL)
    assistant = line["messages"][-1]
    assert assistant["role"] == "assistant" and assistant["content"] is None
    assert [c["function"]["arguments"] for c in assistant["tool_calls"]] == [
        '{"order_id": "ORD-1"}', '{"payment_id": "P-1", "amount": 5}']
    assert line["tools"] == TOOLS
    assert validate_openai_line(line) == []
    seq = openai_line(SEQUENCE)
    assert [m["role"] for m in seq["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert seq["messages"][2]["tool_call_id"] == "call_0"
    assert json.loads(seq["messages"][3]["tool_calls"][0]["function"]["arguments"]) == {
        "payment_id": "P-9", "amount": 12.5}
    assert validate_openai_line(seq) == []
    assert validate_openai_line(openai_line(CLARIFY)) == []
    assert openai_line(CLARIFY)["messages"][-1] == {"role": "assistant", "content": "Which order?"}


def test_hf_lines_have_object_arguments_and_pass_the_validator() -> None:
    line = hf_line(CALL)
    assert line["messages"][-1]["tool_calls"][0]["function"]["arguments"] == {"order_id": "ORD-1"}
    assert validate_hf_line(line) == []
    seq = hf_line(SEQUENCE)
    assert seq["messages"][2] == {"role": "tool", "content": '{"payment_id": "P-9", "total": 12.5}',
                                  "name": "get_order"}
    assert validate_hf_line(seq) == []
    # the OpenAI shape is not valid HF input and vice versa
    assert any("must be a JSON object" in p for p in validate_hf_line(openai_line(CALL)))
    assert any("must be a JSON-encoded string" in p for p in validate_openai_line(line))


@pytest.mark.parametrize("fmt", ["openai", "hf"])
def test_malformed_example_is_refused_with_its_reason(fmt: str) -> None:
    unknown_tool = record("call", {"calls": [{"name": "delete_everything", "arguments": {}}]})
    empty_question = record("clarify", {"question": ""})
    no_user = Record(id="9", service="shop", tool="", messages=[{"role": "user", "content": "  "}], tools=TOOLS,
                     behavior="abstain", expected={"reason": "nothing fits"})
    result = export_records([CALL, unknown_tool, empty_question, no_user], fmt)
    assert len(result.lines) == 1
    reasons = dict(zip(["unknown", "empty", "blank"], [r for _, r in result.refused], strict=True))
    assert "'delete_everything' is not among the tools offered" in reasons["unknown"]
    assert "(assistant) needs content or tool_calls" in reasons["empty"]
    assert "messages[0] (user) needs non-empty text content" in reasons["blank"]


def test_validator_rules() -> None:
    assert validate_openai_line({"messages": []}) == ["messages must be a non-empty list"]
    bad = {"messages": [{"role": "user", "content": "hi"}, {"role": "tool", "content": "x", "tool_call_id": "c9"}],
           "tools": [{"type": "function", "function": {"name": "bad name!"}}], "extra": 1}
    problems = validate_openai_line(bad)
    assert "unknown top-level keys ['extra']" in problems
    assert "tools[0].function.name must match ^[a-zA-Z0-9_-]{1,64}$" in problems
    bad.pop("extra")
    bad["tools"] = TOOLS
    problems = validate_openai_line(bad)
    assert "the last message must be the assistant's" in problems
    assert "messages[1] (tool) must answer an earlier tool call by tool_call_id" in problems
    broken_args = openai_line(CALL)
    broken_args["messages"][-1]["tool_calls"][0]["function"]["arguments"] = "{order_id: 1"
    assert any("is not valid JSON" in p for p in validate_openai_line(broken_args))


def test_build_and_export_commands(db: Any, tmp_path: Path) -> None:
    build_shop()
    out = StringIO()
    call_command("dataset_build", "--seed", "2", "--no-collect", stdout=out, stderr=StringIO())
    number = out.getvalue().strip()
    assert number == "1"
    target = tmp_path / "train.jsonl"
    call_command("dataset_export", "--version", "latest", "--split", "train", "--format", "openai",
                 "--out", str(target), stderr=StringIO())
    lines = [json.loads(x) for x in target.read_text().splitlines()]
    assert lines and all(validate_openai_line(line) == [] for line in lines)
    hf_target = tmp_path / "test.jsonl"
    call_command("dataset_export", "--version", number, "--split", "test", "--format", "hf",
                 "--out", str(hf_target), stderr=StringIO())
    assert all(validate_hf_line(json.loads(x)) == [] for x in hf_target.read_text().splitlines())
    with pytest.raises(CommandError, match="holdout split is reserved"):
        call_command("dataset_export", "--version", number, "--split", "holdout", "--format", "hf",
                     "--out", str(tmp_path / "h.jsonl"))
    assert not (tmp_path / "h.jsonl").exists()
    with pytest.raises(CommandError, match="dataset version 9 does not exist"):
        call_command("dataset_export", "--version", "9", "--split", "train", "--format", "hf", "--out", "-")


# A tools-aware chat template in the Hermes/Qwen2.5 shape: tools are written as JSON in the
# system turn, each assistant tool call as <tool_call>{"name": ..., "arguments": <tojson>}
# </tool_call>, tool results as <tool_response> blocks in a user turn.
HERMES_TEMPLATE = """\
{%- if tools %}
{{- '<|im_start|>system\\n' }}
{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] + '\\n\\n' }}{%- endif %}
{{- '# Tools\\n\\n<tools>' }}
{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}
{{- '\\n</tools><|im_end|>\\n' }}
{%- elif messages[0]['role'] == 'system' %}
{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
{%- if message.role == 'user' or (message.role == 'assistant' and not message.tool_calls) %}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
{%- elif message.role == 'assistant' %}
{{- '<|im_start|>assistant' }}
{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}
{%- for tool_call in message.tool_calls %}
{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}
{{- '\\n<tool_call>\\n{"name": "' + tool_call.name + '", "arguments": ' }}
{{- tool_call.arguments | tojson }}
{{- '}\\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\\n' }}
{%- elif message.role == 'tool' %}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}
{{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}
"""


def hermes_tokenizer() -> Any:
    """A byte-level tokenizer built here (no download): every byte is a token, so any text round-trips."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|im_start|>", "<|im_end|>"]
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: k for k, token in enumerate([*specials, *alphabet])}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|im_end|>",
                                        additional_special_tokens=specials)
    tokenizer.chat_template = HERMES_TEMPLATE
    return tokenizer


TOOL_CALL_BLOCK = re.compile(r"<tool_call>\n(.*?)\n</tool_call>", re.S)
TOOLS_BLOCK = re.compile(r"<tools>\n(.*?)\n</tools>", re.S)


def test_hf_export_renders_through_a_tools_aware_chat_template(db: Any) -> None:
    from ftops.datasets.selectors import dataset_records
    from ftops.datasets.services import dataset_version_build

    build_shop()
    version = dataset_version_build(seed=2)
    records = [r for split in ("train", "validation", "test", "holdout")
               for r in dataset_records(version=version, split=split, allow_holdout=True)]
    result = export_records(records, "hf")
    assert result.refused == [] and len(result.lines) == len(records) == 125
    tokenizer = hermes_tokenizer()
    behaviors: set[str] = set()
    for text, rec in zip(result.lines, records, strict=True):
        line = json.loads(text)
        rendered = tokenizer.apply_chat_template(line["messages"], tools=line["tools"], tokenize=False)
        assert isinstance(rendered, str)
        # The template saw every tool schema whole ...
        tools_block = TOOLS_BLOCK.search(rendered)
        assert tools_block is not None
        assert [json.loads(t) for t in tools_block.group(1).split("\n")] == line["tools"]
        # ... and every expected call, with its arguments as a JSON object (not a string in a string).
        expected_calls = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
                          for m in line["messages"] if m["role"] == "assistant" for c in m.get("tool_calls") or []]
        assert [json.loads(c) for c in TOOL_CALL_BLOCK.findall(rendered)] == expected_calls
        if rec.behavior == "sequence":
            results = [m["content"] for m in line["messages"] if m["role"] == "tool"]
            assert results and all(f"<tool_response>\n{r}\n</tool_response>" in rendered for r in results)
        elif rec.behavior in ("clarify", "abstain"):
            assert f"<|im_start|>assistant\n{line['messages'][-1]['content']}<|im_end|>" in rendered
        assert rendered.endswith("<|im_end|>\n")
        ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == rendered  # the rendered text is what the model is trained on
        behaviors.add(rec.behavior)
    assert behaviors == {"call", "sequence", "clarify", "abstain"}
    # The OpenAI shape (arguments as a JSON string) would reach the model double-encoded.
    line = openai_line(CALL)
    rendered = tokenizer.apply_chat_template(line["messages"], tools=line["tools"], tokenize=False)
    assert isinstance(json.loads(TOOL_CALL_BLOCK.findall(rendered)[0])["arguments"], str)
