"""Fine-tuning exports of records, each line checked against its format's rules (no Django).

- ``openai``: OpenAI chat fine-tuning JSONL: ``{"messages": [...], "tools": [...]}``; the
  assistant turn carries ``tool_calls`` of type ``function`` whose ``arguments`` is a JSON
  *string*; a multi-step sequence becomes assistant call -> tool result -> assistant call ...
- ``hf``: Hugging Face messages JSONL for ``tokenizer.apply_chat_template(messages,
  tools=tools)``: same conversation, ``tool_calls`` arguments as a JSON *object* (chat
  templates serialise them), tool results as ``{"role": "tool", "name", "content"}``.
- ``openai_preference``: OpenAI preference (DPO) fine-tuning JSONL, one line per review
  correction: ``{"input": {"messages", "tools", "parallel_tool_calls"}, "preferred_output":
  [assistant turn], "non_preferred_output": [assistant turn]}``; the preferred turn is the
  reviewer's answer, the non-preferred one the model's (``provenance.model_calls``, or its
  text in ``provenance.model_text`` when it made no call). Arguments are JSON strings.
- ``trl_preference``: the conversational chosen/rejected format TRL's ``DPOTrainer`` reads:
  ``{"prompt": [messages], "chosen": [assistant turn], "rejected": [assistant turn],
  "tools": [...]}`` with arguments as JSON objects (chat templates serialise them).

Preference formats take review corrections only: any other record has no rejected answer,
so it is skipped (``ExportResult.skipped``), not refused. For a multi-step correction the
pair is the first assistant turn (what the model got wrong at that point).

A record that cannot be written correctly is refused with its reason, never written half.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ftops.core.ml.dpo import PreferencePair, correction_pair
from ftops.core.records import Record, canonical_arguments, resolve_prev, target_text

FORMATS = ("openai", "hf", "openai_preference", "trl_preference")
PREFERENCE_FORMATS = ("openai_preference", "trl_preference")
FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ROLES = {"system", "user", "assistant", "tool"}


class ExportRefused(ValueError):
    pass


class NotApplicable(Exception):
    """The record has nothing to say in this format (e.g. no rejected answer for a preference pair)."""


def _conversation(record: Record, *, arguments_as_string: bool) -> list[dict[str, Any]]:
    """The messages plus the ideal assistant turn(s) for ``record``."""
    messages = [dict(m) for m in record.messages]

    def call_message(calls: list[dict[str, Any]], first_id: int) -> dict[str, Any]:
        tool_calls = []
        for k, call in enumerate(calls):
            args = call["arguments"]
            tool_calls.append({
                "id": f"call_{first_id + k}",
                "type": "function",
                "function": {"name": call["name"],
                             "arguments": json.dumps(args, ensure_ascii=False) if arguments_as_string else args},
            })
        return {"role": "assistant", "content": None if arguments_as_string else "", "tool_calls": tool_calls}

    if record.behavior == "call":
        calls = [{"name": c["name"], "arguments": canonical_arguments(c.get("arguments", {}))}
                 for c in record.expected.get("calls", [])]
        messages.append(call_message(calls, 0))
    elif record.behavior == "sequence":
        results: list[dict[str, Any]] = []
        steps = record.expected.get("steps", [])
        for k, step in enumerate(steps):
            args = resolve_prev(dict(step.get("arguments", {})), results)
            messages.append(call_message([{"name": step["name"], "arguments": args}], k))
            result = step.get("result")
            if k < len(steps) - 1:
                tool_message: dict[str, Any] = {"role": "tool", "content": json.dumps(result or {}, ensure_ascii=False)}
                if arguments_as_string:
                    tool_message["tool_call_id"] = f"call_{k}"
                else:
                    tool_message["name"] = step["name"]
                messages.append(tool_message)
            if isinstance(result, dict):
                results.append(result)
    else:
        messages.append({"role": "assistant", "content": target_text(record)})
    return messages


def _tools(record: Record) -> list[dict[str, Any]]:
    return [{"type": "function", "function": dict(t["function"])} for t in record.tools]


def openai_line(record: Record) -> dict[str, Any]:
    return {"messages": _conversation(record, arguments_as_string=True), "tools": _tools(record)}


def hf_line(record: Record) -> dict[str, Any]:
    return {"messages": _conversation(record, arguments_as_string=False), "tools": _tools(record)}


def _check_tools(tools: Any, problems: list[str]) -> set[str]:
    names: set[str] = set()
    if not isinstance(tools, list):
        problems.append("tools must be a list")
        return names
    for k, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            problems.append(f"tools[{k}] must be {{\"type\": \"function\", \"function\": {{...}}}}")
            continue
        name = fn.get("name")
        if not isinstance(name, str) or not FUNCTION_NAME.match(name):
            problems.append(f"tools[{k}].function.name must match {FUNCTION_NAME.pattern}")
        else:
            names.add(name)
        params = fn.get("parameters")
        if params is not None and (not isinstance(params, dict) or params.get("type") != "object"):
            problems.append(f"tools[{k}].function.parameters must be a JSON Schema of type object")
        if "description" in fn and not isinstance(fn["description"], str):
            problems.append(f"tools[{k}].function.description must be a string")
    return names


def _check_common(line: Any, problems: list[str]) -> tuple[list[dict[str, Any]], set[str]]:
    if not isinstance(line, dict):
        problems.append("each line must be a JSON object")
        return [], set()
    unknown = sorted(set(line) - {"messages", "tools", "parallel_tool_calls"})
    if unknown:
        problems.append(f"unknown top-level keys {unknown}")
    messages = line.get("messages")
    if not isinstance(messages, list) or not messages:
        problems.append("messages must be a non-empty list")
        return [], set()
    names = _check_tools(line.get("tools", []), problems)
    for k, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            problems.append(f"messages[{k}].role must be one of {sorted(ROLES)}")
    if problems:
        return [], names
    if not any(m["role"] == "assistant" for m in messages):
        problems.append("at least one assistant message is required (it is what the model learns)")
    if messages[-1]["role"] != "assistant":
        problems.append("the last message must be the assistant's")
    for k, message in enumerate(messages):
        if message["role"] in ("system", "user") and (not isinstance(message.get("content"), str)
                                                      or not message["content"].strip()):
            problems.append(f"messages[{k}] ({message['role']}) needs non-empty text content")
    return messages, names


def validate_openai_line(line: Any) -> list[str]:
    """Problems with one line of OpenAI chat fine-tuning JSONL (empty list: valid)."""
    problems: list[str] = []
    messages, names = _check_common(line, problems)
    call_ids: set[str] = set()
    for k, message in enumerate(messages):
        role = message["role"]
        if role == "assistant":
            calls = message.get("tool_calls")
            content = message.get("content")
            if not calls and not (isinstance(content, str) and content.strip()):
                problems.append(f"messages[{k}] (assistant) needs content or tool_calls")
            for c_index, call in enumerate(calls or []):
                where = f"messages[{k}].tool_calls[{c_index}]"
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(call, dict) or call.get("type") != "function" or not isinstance(fn, dict):
                    problems.append(f"{where} must be {{\"id\", \"type\": \"function\", \"function\": {{...}}}}")
                    continue
                if not isinstance(call.get("id"), str) or not call["id"]:
                    problems.append(f"{where}.id must be a non-empty string")
                else:
                    call_ids.add(call["id"])
                if fn.get("name") not in names:
                    problems.append(f"{where}.function.name {fn.get('name')!r} is not among the tools offered")
                arguments = fn.get("arguments")
                if not isinstance(arguments, str):
                    problems.append(f"{where}.function.arguments must be a JSON-encoded string")
                else:
                    try:
                        parsed = json.loads(arguments)
                    except json.JSONDecodeError as exc:
                        problems.append(f"{where}.function.arguments is not valid JSON ({exc.msg})")
                    else:
                        if not isinstance(parsed, dict):
                            problems.append(f"{where}.function.arguments must encode a JSON object")
        elif role == "tool":
            if message.get("tool_call_id") not in call_ids:
                problems.append(f"messages[{k}] (tool) must answer an earlier tool call by tool_call_id")
            if not isinstance(message.get("content"), str):
                problems.append(f"messages[{k}] (tool) content must be a string")
    return problems


def validate_hf_line(line: Any) -> list[str]:
    """Problems with one line of Hugging Face messages JSONL for apply_chat_template(tools=...)."""
    problems: list[str] = []
    messages, names = _check_common(line, problems)
    for k, message in enumerate(messages):
        role = message["role"]
        if role == "assistant":
            calls = message.get("tool_calls")
            if not isinstance(message.get("content", ""), str):
                problems.append(f"messages[{k}] (assistant) content must be a string (may be empty)")
            if not calls and not (isinstance(message.get("content"), str) and message["content"].strip()):
                problems.append(f"messages[{k}] (assistant) needs content or tool_calls")
            for c_index, call in enumerate(calls or []):
                where = f"messages[{k}].tool_calls[{c_index}]"
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(call, dict) or call.get("type") != "function" or not isinstance(fn, dict):
                    problems.append(f"{where} must be {{\"type\": \"function\", \"function\": {{...}}}}")
                    continue
                if fn.get("name") not in names:
                    problems.append(f"{where}.function.name {fn.get('name')!r} is not among the tools offered")
                if not isinstance(fn.get("arguments"), dict):
                    problems.append(f"{where}.function.arguments must be a JSON object (chat templates encode it)")
        elif role == "tool":
            if not isinstance(message.get("content"), str):
                problems.append(f"messages[{k}] (tool) content must be a string")
            if message.get("name") not in names:
                problems.append(f"messages[{k}] (tool) name must be the tool that produced it")
    try:
        json.dumps(line, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        problems.append(f"not JSON-serialisable: {exc}")
    return problems


def _assistant_turn(calls: list[dict[str, Any]], text: str, *, arguments_as_string: bool) -> dict[str, Any]:
    if not calls:
        return {"role": "assistant", "content": text}
    tool_calls = []
    for k, call in enumerate(calls):
        args = call["arguments"]
        if arguments_as_string and not isinstance(args, str):
            args = json.dumps(args, ensure_ascii=False)
        tool_call: dict[str, Any] = {"id": f"call_{k}"} if arguments_as_string else {}
        tool_call.update({"type": "function", "function": {"name": call["name"], "arguments": args}})
        tool_calls.append(tool_call)
    return {"role": "assistant", "content": None if arguments_as_string else "", "tool_calls": tool_calls}


def _pair_or_skip(record: Record) -> PreferencePair:
    pair = correction_pair(record)  # ValueError (refused) for a correction without a usable pair
    if pair is None:
        raise NotApplicable("not a review correction (no rejected answer to pair with)")
    return pair


def openai_preference_line(record: Record) -> dict[str, Any]:
    pair = _pair_or_skip(record)
    return {
        "input": {"messages": pair.messages, "tools": _tools(record), "parallel_tool_calls": True},
        "preferred_output": [_assistant_turn(pair.chosen_calls, pair.chosen_text, arguments_as_string=True)],
        "non_preferred_output": [_assistant_turn(pair.rejected_calls, pair.rejected_text, arguments_as_string=True)],
    }


def trl_preference_line(record: Record) -> dict[str, Any]:
    pair = _pair_or_skip(record)
    return {
        "prompt": pair.messages,
        "chosen": [_assistant_turn(pair.chosen_calls, pair.chosen_text, arguments_as_string=False)],
        "rejected": [_assistant_turn(pair.rejected_calls, pair.rejected_text, arguments_as_string=False)],
        "tools": _tools(record),
    }


def _check_output(output: Any, where: str, names: set[str], *, arguments_as_string: bool,
                  check_names: bool, problems: list[str]) -> None:
    if not isinstance(output, list) or len(output) != 1 or not isinstance(output[0], dict):
        problems.append(f"{where} must hold exactly one assistant message")
        return
    message = output[0]
    if message.get("role") != "assistant":
        problems.append(f"{where}[0].role must be assistant")
    calls = message.get("tool_calls")
    content = message.get("content")
    if not calls and not (isinstance(content, str) and content.strip()):
        problems.append(f"{where}[0] needs content or tool_calls")
    for c_index, call in enumerate(calls or []):
        at = f"{where}[0].tool_calls[{c_index}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or call.get("type") != "function" or not isinstance(fn, dict):
            problems.append(f"{at} must be {{\"type\": \"function\", \"function\": {{...}}}}")
            continue
        if arguments_as_string and (not isinstance(call.get("id"), str) or not call["id"]):
            problems.append(f"{at}.id must be a non-empty string")
        if not isinstance(fn.get("name"), str) or not FUNCTION_NAME.match(fn["name"]):
            problems.append(f"{at}.function.name must match {FUNCTION_NAME.pattern}")
        elif check_names and fn["name"] not in names:
            problems.append(f"{at}.function.name {fn['name']!r} is not among the tools offered")
        arguments = fn.get("arguments")
        if arguments_as_string:
            if not isinstance(arguments, str):
                problems.append(f"{at}.function.arguments must be a JSON-encoded string")
        elif not isinstance(arguments, dict | str):
            problems.append(f"{at}.function.arguments must be a JSON object")


def _check_prompt(messages: Any, tools: Any, problems: list[str]) -> set[str]:
    names = _check_tools(tools, problems)
    if not isinstance(messages, list) or not messages:
        problems.append("the prompt messages must be a non-empty list")
        return names
    for k, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            problems.append(f"messages[{k}].role must be one of {sorted(ROLES)}")
        elif message["role"] in ("system", "user") and (not isinstance(message.get("content"), str)
                                                        or not message["content"].strip()):
            problems.append(f"messages[{k}] ({message['role']}) needs non-empty text content")
    if not problems and messages[-1].get("role") == "assistant":
        problems.append("the prompt must end before the assistant's answer")
    return names


def validate_openai_preference_line(line: Any) -> list[str]:
    """Problems with one line of OpenAI preference fine-tuning JSONL (empty list: valid)."""
    problems: list[str] = []
    if not isinstance(line, dict) or not isinstance(line.get("input"), dict):
        return ["each line must be an object with an input object"]
    unknown = sorted(set(line) - {"input", "preferred_output", "non_preferred_output"})
    unknown += sorted(f"input.{k}" for k in set(line["input"]) - {"messages", "tools", "parallel_tool_calls"})
    if unknown:
        problems.append(f"unknown keys {unknown}")
    names = _check_prompt(line["input"].get("messages"), line["input"].get("tools", []), problems)
    _check_output(line.get("preferred_output"), "preferred_output", names, arguments_as_string=True,
                  check_names=True, problems=problems)
    # The model's wrong call may name a tool that was not offered: that is the mistake being taught.
    _check_output(line.get("non_preferred_output"), "non_preferred_output", names, arguments_as_string=True,
                  check_names=False, problems=problems)
    if not problems and line["preferred_output"] == line["non_preferred_output"]:
        problems.append("preferred_output and non_preferred_output are the same")
    return problems


def validate_trl_preference_line(line: Any) -> list[str]:
    """Problems with one line of TRL's conversational chosen/rejected preference format."""
    problems: list[str] = []
    if not isinstance(line, dict):
        return ["each line must be a JSON object"]
    unknown = sorted(set(line) - {"prompt", "chosen", "rejected", "tools"})
    if unknown:
        problems.append(f"unknown keys {unknown}")
    names = _check_prompt(line.get("prompt"), line.get("tools", []), problems)
    _check_output(line.get("chosen"), "chosen", names, arguments_as_string=False, check_names=True,
                  problems=problems)
    _check_output(line.get("rejected"), "rejected", names, arguments_as_string=False, check_names=False,
                  problems=problems)
    if not problems and line["chosen"] == line["rejected"]:
        problems.append("chosen and rejected are the same")
    return problems


BUILDERS = {"openai": (openai_line, validate_openai_line), "hf": (hf_line, validate_hf_line),
            "openai_preference": (openai_preference_line, validate_openai_preference_line),
            "trl_preference": (trl_preference_line, validate_trl_preference_line)}


@dataclass
class ExportResult:
    lines: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (record id, reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (record id, why the format does not apply)


def export_records(records: Iterable[Record], fmt: str) -> ExportResult:
    """JSONL lines for ``records`` in ``fmt``; records that break the format are refused with the reason."""
    if fmt not in BUILDERS:
        raise ExportRefused(f"unknown export format {fmt!r}; choose one of {list(FORMATS)}")
    build, validate = BUILDERS[fmt]
    result = ExportResult()
    for record in records:
        try:
            line = build(record)
        except NotApplicable as exc:
            result.skipped.append((record.id, str(exc)))
            continue
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            result.refused.append((record.id, f"cannot be rendered: {type(exc).__name__}: {exc}"))
            continue
        problems = validate(line)
        if problems:
            result.refused.append((record.id, "; ".join(problems)))
            continue
        result.lines.append(json.dumps(line, ensure_ascii=False, allow_nan=False))
    return result
