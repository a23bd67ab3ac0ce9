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

    ``greedy``: the caller decodes greedily, so only the highest-scoring allowed token
    matters. Each row's parser is then advanced by the chosen tokens alone and the model's own
    best tokens are tried against it, best first, one character at a time; the whole allowed
    set (a walk of the vocabulary's prefix tree, some 9 ms a row and step here) is computed
    only when ``GREEDY_TRIES`` candidates in a row are refused. The answer is the same token
    greedy decoding over the full mask would pick; sampling needs the full mask.
    """

    GREEDY_TRIES = 32

    def __init__(self, tokenizer: Any, tools_per_row: list[list[dict[str, Any]]], prompt_width: int,
                 stop_ids: list[int], *, greedy: bool = False) -> None:
        from lmformatenforcer import TokenEnforcer

        data = tokenizer_data(tokenizer, stop_ids)
        self.enforcers = [TokenEnforcer(data, answer_parser(tools)) for tools in tools_per_row]
        self.prompt_width = prompt_width
        self.stop_ids = set(stop_ids)
        self.failed: set[int] = set()
        self.greedy = greedy
        self.full_walks = 0  # steps that needed the whole allowed set (greedy: the shortcut found none)
        self._tree = data.tokenizer_tree
        self._decode = data.decoder
        # per row: the parser after the answer's first ``consumed`` tokens, and the tokens of
        # the word being spelled (tokens that continue a word are decoded together)
        self._parsers = [enforcer.root_parser for enforcer in self.enforcers]
        self._consumed = [0] * len(self.enforcers)
        self._word: list[list[int]] = [[] for _ in self.enforcers]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        mask = torch.full_like(scores, float("-inf"))
        for row, enforcer in enumerate(self.enforcers):
            answer = input_ids[row, self.prompt_width:].tolist()
            if row in self.failed or any(t in self.stop_ids for t in answer):
                mask[row] = 0
                continue
            try:
                if self.greedy:
                    choice = self._greedy_choice(row, answer, scores[row])
                    if choice is not None:
                        mask[row, choice] = 0
                        continue
                    allowed = self._allowed_now(row, enforcer)
                else:
                    self.full_walks += 1
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

    # ----------------------------------------------------------------- greedy path

    def _advance(self, row: int, answer: list[int]) -> Any:
        """The row's parser after ``answer`` (only the tokens not applied yet are fed in)."""
        from lmformatenforcer.characterlevelparser import ForceStopParser

        parser = self._parsers[row]
        for token in answer[self._consumed[row]:]:
            if token in self._tree.new_word_tokens:
                self._word[row] = [token]
                text = self._tree.tokens_to_strs.get(token, "")
            else:
                before = self._decode(self._word[row])
                self._word[row] = self._word[row] + [token]
                text = self._decode(self._word[row])[len(before):]
            for character in text:
                try:
                    parser = parser.add_character(character)
                except Exception:  # as the library does: a character the grammar refuses ends the answer
                    parser = ForceStopParser()
                    break
        self._parsers[row] = parser
        self._consumed[row] = len(answer)
        return parser

    def _accepts(self, parser: Any, token: int) -> bool:
        if token in self.stop_ids:
            return bool(parser.can_end())
        text = self._tree.tokens_to_strs.get(token)
        if not text:
            return False
        for character in text:
            if character not in parser.get_allowed_characters():
                return False
            parser = parser.add_character(character)
        return True

    def _greedy_choice(self, row: int, answer: list[int], row_scores: Any) -> int | None:
        import torch

        parser = self._advance(row, answer)
        tries = min(self.GREEDY_TRIES, int(row_scores.shape[0]))
        # Ties go to the lower token id, as argmax breaks them.
        values, order = torch.sort(row_scores, descending=True, stable=True)
        for value, token in zip(values[:tries].tolist(), order[:tries].tolist(), strict=True):
            if value == float("-inf"):
                return None
            if self._accepts(parser, int(token)):
                return int(token)
        return None

    def _allowed_now(self, row: int, enforcer: Any) -> list[int]:
        """The whole allowed set from the row's current parser (the library's prefix-tree walk)."""
        from lmformatenforcer import TokenEnforcer

        self.full_walks += 1
        state = TokenEnforcer.OutputTensorState(parser=self._parsers[row])
        enforcer._compute_allowed_tokens((), state)
        return list(state.allowed_tokens.allowed_tokens if state.allowed_tokens is not None else [])
