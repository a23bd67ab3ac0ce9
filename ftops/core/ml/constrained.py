"""Schema-constrained decoding of tool calls with lm-format-enforcer (no Django imports).

An answer is either free text (a clarifying question, a request for details, an
abstention: it may not start with ``<``) or one or more
``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks, one per line, whose
JSON must match one of the offered tools: the name is one of theirs, and the arguments
follow that tool's JSON Schema (argument names, types, enums, required fields; no names
the schema does not list). Decoding stays greedy: the constraint only removes the tokens
that would break the grammar, so a model that already answers well answers the same.

lm-format-enforcer's own transformers integration does not import under transformers 5
(it imports ``transformers.tokenization_utils``), so the bridge is here: the tokenizer data
it needs (every token's text) and a ``LogitsProcessor`` with one ``TokenEnforcer`` per row,
which also lets each row of a batch have its own tools.
"""

from __future__ import annotations

import copy
import logging
import threading
from typing import Any

from ftops.core.ml.chat import TOOL_CALL_CLOSE, TOOL_CALL_OPEN, normalize_tool

log = logging.getLogger(__name__)

MAX_CALLS = 4  # parallel calls one answer may hold
FREE_TEXT = r"[^<][^<]*"
_TOKENIZER_DATA: dict[int, Any] = {}
_LOCK = threading.Lock()


def _closed(schema: Any) -> Any:
    """A copy where every object schema lists its properties only (no names it does not define)."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _closed(v) for k, v in schema.items()}
    if out.get("type") == "object" or "properties" in out:
        out.setdefault("type", "object")
        out.setdefault("properties", {})
        out.setdefault("additionalProperties", False)
    return out


def tool_call_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """JSON Schema of one call: ``{"name": <one tool>, "arguments": <that tool's parameters>}``."""
    options = []
    for tool in tools:
        function = normalize_tool(tool)["function"]
        parameters = copy.deepcopy(function.get("parameters") or {"type": "object", "properties": {}})
        options.append({
            "type": "object",
            "properties": {"name": {"type": "string", "enum": [function["name"]]},
                           "arguments": _closed(parameters)},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        })
    return options[0] if len(options) == 1 else {"anyOf": options}


def answer_parser(tools: list[dict[str, Any]]) -> Any:
    """The lm-format-enforcer parser of an answer: free text, or up to ``MAX_CALLS`` tool calls."""
    from lmformatenforcer import (
        CharacterLevelParserConfig,
        JsonSchemaParser,
        RegexParser,
        SequenceParser,
        StringParser,
        UnionParser,
    )

    text = RegexParser(FREE_TEXT)
    if not tools:
        return text
    schema = tool_call_schema(tools)
    # One whitespace character at a time: compact JSON (what ftops trains) and single spaces in
    # values pass; runs of layout whitespace, which a small model may loop on, do not.
    config = CharacterLevelParserConfig(max_consecutive_whitespaces=1)

    def call() -> Any:
        return SequenceParser([StringParser(TOOL_CALL_OPEN), JsonSchemaParser(schema, config=config),
                               StringParser(TOOL_CALL_CLOSE)])

    calls = call()
    for _ in range(MAX_CALLS - 1):
        calls = SequenceParser([call(), UnionParser([StringParser(""), SequenceParser([StringParser("\n"), calls])])])
    return UnionParser([calls, text])


def tokenizer_data(tokenizer: Any, eos_ids: list[int]) -> Any:
    """lm-format-enforcer's per-tokenizer data (each token's text), built once per tokenizer."""
    from lmformatenforcer import TokenEnforcerTokenizerData

    key = id(tokenizer)
    with _LOCK:
        if key in _TOKENIZER_DATA:
            return _TOKENIZER_DATA[key]
        vocab_size = len(tokenizer)
        special = set(tokenizer.all_special_ids)
        zero = tokenizer.encode("0", add_special_tokens=False)[-1]
        regular = []
        for token_id in range(vocab_size):
            if token_id in special:
                continue
            after_zero = tokenizer.decode([zero, token_id])[1:]
            alone = tokenizer.decode([token_id])
            regular.append((token_id, after_zero, len(after_zero) > len(alone)))

        def decode(tokens: list[int]) -> str:
            return str(tokenizer.decode(tokens)).rstrip("\ufffd")

        data = TokenEnforcerTokenizerData(regular, decode, list(eos_ids), False, vocab_size)
        _TOKENIZER_DATA[key] = data
        return data


class ToolCallLogitsProcessor:
    """Masks, per row, every token the row's grammar does not allow next (a transformers LogitsProcessor).

    ``prompt_width`` is the padded prompt length: only tokens after it are the answer. A
    row that has emitted a stop token is left alone (generate pads it), and a row whose
    enforcer fails is left unconstrained rather than failing the batch.
    """

    def __init__(self, tokenizer: Any, tools_per_row: list[list[dict[str, Any]]], prompt_width: int,
                 stop_ids: list[int]) -> None:
        from lmformatenforcer import TokenEnforcer

        data = tokenizer_data(tokenizer, stop_ids)
        self.enforcers = [TokenEnforcer(data, answer_parser(tools)) for tools in tools_per_row]
        self.prompt_width = prompt_width
        self.stop_ids = set(stop_ids)
        self.failed: set[int] = set()

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        mask = torch.full_like(scores, float("-inf"))
        for row, enforcer in enumerate(self.enforcers):
            answer = input_ids[row, self.prompt_width:].tolist()
            if row in self.failed or any(t in self.stop_ids for t in answer):
                mask[row] = 0
                continue
            try:
                allowed = enforcer.get_allowed_tokens(answer).allowed_tokens
            except Exception as exc:  # the library's own failure: decode this row freely
                log.warning("constrained decoding gave up on a row: %s", exc)
                self.failed.add(row)
                mask[row] = 0
                continue
            index = torch.tensor([t for t in allowed if t < scores.shape[1]], dtype=torch.long)
            if len(index) == 0:
                mask[row] = 0
            else:
                mask[row, index] = 0
        return scores + mask
