"""Schema-constrained decoding: the grammar lets through exactly the calls the tools' schemas allow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ftops.core.adapters import AdapterConfigError, HFLocalAdapter, validate_adapter_config
from ftops.core.ml.constrained import ToolCallLogitsProcessor, answer_parser, tokenizer_data, tool_call_schema
from ftops.core.tiny_model import build_tiny_model

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["c", "f"]}},
                   "required": ["city"]}}}
BOOK = {"type": "function", "function": {
    "name": "book_room", "description": "Book a room.",
    "parameters": {"type": "object", "properties": {"room": {"type": "string"}, "hours": {"type": "integer"}},
                   "required": ["room", "hours"]}}}
TOOLS = [WEATHER, BOOK]


def _accepts(text: str, tools: list[dict[str, Any]] = TOOLS) -> bool:
    """Whether the grammar accepts ``text`` as a whole answer."""
    parser = answer_parser(tools)
    for char in text:
        if char not in parser.get_allowed_characters():
            return False
        parser = parser.add_character(char)
    return bool(parser.can_end())


def test_the_grammar_takes_calls_that_match_a_schema_and_free_text() -> None:
    assert _accepts('<tool_call>{"name":"get_weather","arguments":{"city":"Oslo"}}</tool_call>')
    assert _accepts('<tool_call>{"name":"get_weather","arguments":{"city":"Oslo","unit":"c"}}</tool_call>')
    assert _accepts('<tool_call>{"name":"book_room","arguments":{"room":"Atlas","hours":2}}</tool_call>\n'
                    '<tool_call>{"name":"get_weather","arguments":{"city":"Oslo"}}</tool_call>')
    assert _accepts("Which room, and for how many hours?")  # ask for details / clarify / abstain
    rejected = [
        '<tool_call>{"name":"delete_all","arguments":{}}</tool_call>',  # not an offered tool
        '<tool_call>{"name":"get_weather","arguments":{"town":"Oslo"}}</tool_call>',  # unknown argument
        '<tool_call>{"name":"get_weather","arguments":{"city":"Oslo","unit":"kelvin"}}</tool_call>',  # enum
        '<tool_call>{"name":"book_room","arguments":{"room":"Atlas","hours":"two"}}</tool_call>',  # type
        '<tool_call>{"name":"book_room","arguments":{"room":"Atlas"}}</tool_call>',  # required field missing
        '<tool_call>{"name":"get_weather","arguments":{"city":"Oslo"}}',  # unclosed
        "<tool_call>not json</tool_call>",
        "<b>html</b>",
    ]
    assert [text for text in rejected if _accepts(text)] == []


def test_the_call_schema_closes_objects_and_pins_the_name() -> None:
    schema = tool_call_schema(TOOLS)
    jsonschema.validate({"name": "book_room", "arguments": {"room": "A", "hours": 1}}, schema)
    for bad in ({"name": "book_room", "arguments": {"room": "A", "hours": 1, "x": 1}},
                {"name": "get_weather", "arguments": {"room": "A", "hours": 1}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    assert WEATHER["function"]["parameters"].get("additionalProperties") is None  # the catalog's copy untouched


def test_constrained_is_a_validated_boolean_option_of_hf_local() -> None:
    clean = validate_adapter_config({"kind": "hf_local", "model_path": "m", "constrained": True})
    assert clean["constrained"] is True
    with pytest.raises(AdapterConfigError, match="constrained: must be true or false"):
        validate_adapter_config({"kind": "hf_local", "model_path": "m", "constrained": "yes"})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def tiny_lm(tiny: Path) -> tuple[Any, Any, int, list[int]]:
    """(tokenizer, model, the <tool_call> id, the stop ids) of the random tiny model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny)
    model = AutoModelForCausalLM.from_pretrained(tiny).eval()
    return tokenizer, model, tokenizer.convert_tokens_to_ids("<tool_call>"), [tokenizer.eos_token_id]


def test_a_random_model_pushed_into_a_call_writes_one_that_validates(tiny_lm: tuple[Any, Any, int, list[int]]) -> None:
    """The tiny model knows nothing; pushed to open a call, the grammar alone makes it a valid one."""
    import torch
    from transformers import LogitsProcessorList

    tokenizer, model, open_id, stop = tiny_lm
    # The random model rambles, so string values may run long: only short names and an enum are offered.
    tools = [{"type": "function", "function": {"name": "set_unit", "parameters": {
        "type": "object", "properties": {"unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                                         "level": {"type": "boolean"}}, "required": ["unit", "level"]}}}]
    prompt = tokenizer(["<|user|>set the unit<|end|><|assistant|>"] * 2, return_tensors="pt", add_special_tokens=False)
    width = prompt["input_ids"].shape[1]

    def open_a_call(input_ids: Any, scores: Any) -> Any:
        if input_ids.shape[1] == width:
            scores[:, open_id] += 1000.0
        return scores

    constraint = ToolCallLogitsProcessor(tokenizer, [tools, tools], width, stop)
    with torch.inference_mode():
        out = model.generate(**prompt, max_new_tokens=80, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=stop, logits_processor=LogitsProcessorList([open_a_call, constraint]))
    text = tokenizer.decode(out[0, width:], skip_special_tokens=True)
    assert text.startswith("<tool_call>") and text.rstrip().endswith("</tool_call>"), text
    call = json.loads(text.strip()[len("<tool_call>"):-len("</tool_call>")])
    jsonschema.validate(call, tool_call_schema(tools))
    assert not constraint.failed


def test_the_local_adapter_decodes_constrained_when_asked(tiny: Path) -> None:
    requests = [([{"role": "user", "content": f"Weather in {c}?"}], TOOLS) for c in ("Paris", "Oslo")]
    free = HFLocalAdapter(tiny, batch_size=2, max_new_tokens=24, threads=1)
    constrained = HFLocalAdapter(tiny, batch_size=2, max_new_tokens=24, threads=1, constrained=True)
    assert constrained.name.endswith("+constrained")
    outputs = constrained.generate(requests)
    assert len(outputs) == 2
    # The random model opens no call, so the grammar's free-text branch holds: never a "<" (no broken tag).
    assert all("<" not in o.raw for o in outputs)
    assert any("<" in o.raw or o.raw != c.raw for o, c in zip(free.generate(requests), outputs, strict=True))
    data = tokenizer_data(constrained.tokenizer, [constrained.tokenizer.eos_token_id])
    assert data is tokenizer_data(constrained.tokenizer, [constrained.tokenizer.eos_token_id])  # built once


def test_the_greedy_shortcut_picks_the_tokens_the_full_mask_picks(tiny_lm: tuple[Any, Any, int, list[int]]) -> None:
    """``greedy=True`` tries the model's best tokens against the grammar instead of building
    the whole allowed set; over greedy decoding the two must write the same tokens, including
    the steps where the model's favourite is refused and the full set is needed."""
    import torch
    from transformers import LogitsProcessorList

    tokenizer, model, open_id, stop = tiny_lm
    tools = [{"type": "function", "function": {"name": "set_unit", "parameters": {
        "type": "object", "properties": {"unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                                         "level": {"type": "boolean"}, "count": {"type": "integer"}},
        "required": ["unit", "level"]}}}]
    prompts = ["<|user|>set the unit<|end|><|assistant|>", "<|user|>weather in Oslo<|end|><|assistant|>",
               "<|user|>book<|end|><|assistant|>"]
    encoded = tokenizer(prompts, return_tensors="pt", add_special_tokens=False, padding=True)
    width = encoded["input_ids"].shape[1]

    def open_calls(input_ids: Any, scores: Any) -> Any:
        if input_ids.shape[1] == width:
            scores[:2, open_id] += 1000.0  # two rows are pushed into a call, the third answers in text
        return scores

    runs = {}
    processors = {}
    for greedy in (False, True):
        processors[greedy] = ToolCallLogitsProcessor(tokenizer, [tools, tools, TOOLS], width, stop, greedy=greedy)
        with torch.inference_mode():
            out = model.generate(**encoded, max_new_tokens=60, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=stop,
                                 logits_processor=LogitsProcessorList([open_calls, processors[greedy]]))
        runs[greedy] = out[:, width:].tolist()
    assert runs[True] == runs[False]
    first = tokenizer.decode(runs[True][0], skip_special_tokens=True)
    assert first.startswith("<tool_call>"), first
    assert not processors[True].failed
    # Both branches ran: most steps took a tried token, some needed the whole set.
    assert 0 < processors[True].full_walks < processors[False].full_walks
