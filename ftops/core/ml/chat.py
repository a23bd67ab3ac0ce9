"""Prompt and target rendering shared by training and the local model adapter (no Django imports).

Training and inference must see byte-identical prompts, so both go through
``render_prompt``. A tokenizer that ships a chat template renders with it (tools passed as
``tools=``, generation prompt added); one without falls back to ``CHAT_TEMPLATE``, the
compact template the embedded tiny base model also carries. Tool schemas are written as
one short signature line per tool (``name(param:type, opt?:a|b) - description``): prompt
length dominates training time for small models, and full JSON schemas triple it.

Targets are ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` per call (compact
JSON, sorted keys), or the plain text for clarifying questions and abstentions.
"""

from __future__ import annotations

import json
from typing import Any

from ftops.core.toolcalls import parse_tool_call

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
END_OF_TURN = "<|end|>"
ROLE_TOKENS = ("<|system|>", "<|tools|>", "<|user|>", "<|assistant|>", "<|tool|>")
# Short type names keep the signature lines short; unknown types are written as given.
TYPE_SHORT = {"string": "str", "integer": "int", "number": "num", "boolean": "bool", "array": "list",
              "object": "obj", "null": "null"}
DESCRIPTION_WORDS = 6

# Mirrors ``_python_render`` exactly (tests/training/test_chat.py holds them together). It runs
# under transformers' sandboxed Jinja with trim_blocks and lstrip_blocks, hence the explicit
# "\n" strings and the whitespace-stripping tags.
CHAT_TEMPLATE = (
    "{%- set short = " + json.dumps(TYPE_SHORT) + " -%}"
    "{%- if tools -%}"
    "<|tools|>"
    "{%- for t in tools -%}"
    "{%- set f = t.function if t.function is defined else t -%}"
    "{%- set params = f.parameters if f.parameters is defined and f.parameters else {} -%}"
    "{%- set props = params.properties if params.properties is defined and params.properties else {} -%}"
    "{%- set req = params.required if params.required is defined and params.required else [] -%}"
    "{{- f.name -}}("
    "{%- for pname, p in props|dictsort -%}"
    "{{- ', ' if not loop.first else '' -}}"
    "{{- pname -}}{{- '' if pname in req else '?' -}}:"
    "{%- if p.enum is defined and p.enum -%}{{- p.enum|join('|') -}}"
    "{%- elif p.type is defined and p.type is string -%}{{- short[p.type] if p.type in short else p.type -}}"
    "{%- else -%}any{%- endif -%}"
    "{%- endfor -%})"
    "{%- set d = (f.description if f.description is defined and f.description else '').split('.')[0].split() -%}"
    "{%- if d -%}{{- ' - ' + d[:" + str(DESCRIPTION_WORDS) + "]|join(' ') -}}{%- endif -%}"
    "{{- '\\n' -}}"
    "{%- endfor -%}"
    "<|end|>"
    "{%- endif -%}"
    "{%- for m in messages -%}"
    "{{- '<|' + m.role + '|>' + (m.content if m.content is string else '') + '<|end|>' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def render_assistant(calls: list[dict[str, Any]], text: str = "") -> str:
    """The ideal assistant turn: one ``<tool_call>`` per call, else the text.

    "name" comes first and "arguments" second, as in every tool-calling format; arguments
    are key-sorted so one call always renders one way.
    """
    if calls:
        return "\n".join(
            f'{TOOL_CALL_OPEN}{{"name":{json.dumps(str(call["name"]), ensure_ascii=False)},'
            f'"arguments":{_json(call.get("arguments") or {})}}}{TOOL_CALL_CLOSE}'
            for call in calls
        )
    return text


def normalize_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """OpenAI function format for any of {"type": "function", "function": {...}} or {name, ...}."""
    if tool.get("type") == "function" and isinstance(tool.get("function"), dict):
        return tool
    return {"type": "function", "function": {"name": tool.get("name", ""), "description": tool.get("description", ""),
                                             "parameters": tool.get("parameters") or tool.get("inputSchema") or {}}}


def _history_call(call: Any) -> dict[str, Any]:
    """A call from an earlier turn, as the model will see it rendered; unreadable arguments stay verbatim."""
    parsed = parse_tool_call(call)
    if parsed is None:
        return {"name": "", "arguments": {}}
    return {"name": parsed.name, "arguments": parsed.arguments if parsed.parsed else parsed.arguments_raw}


def normalize_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Plain {role, content} messages: earlier tool calls and tool results become text.

    Writing history calls in the same ``<tool_call>`` form as targets means a model sees one
    format everywhere, whatever the chat template does with ``tool_calls`` natively.
    """
    out: list[dict[str, str]] = []
    for message in messages:
        role = str(message.get("role") or "user")
        content = message.get("content")
        if role == "assistant" and message.get("tool_calls"):
            calls = [_history_call(c) for c in message["tool_calls"]]
            text = render_assistant(calls)
            if isinstance(content, str) and content.strip():
                text = content.strip() + "\n" + text
            out.append({"role": "assistant", "content": text})
            continue
        if content is None:
            content = ""
        elif not isinstance(content, str):
            content = _json(content)
        out.append({"role": role, "content": content})
    return out


def tool_signature(tool: dict[str, Any]) -> str:
    """One line per tool: ``name(a:str, b?:x|y) - first words of the description``."""
    function = normalize_tool(tool)["function"]
    params = function.get("parameters") or {}
    props = params.get("properties") or {}
    required = set(params.get("required") or [])
    parts = []
    for name in sorted(props):
        spec = props[name] if isinstance(props[name], dict) else {}
        if spec.get("enum"):
            kind = "|".join(_jinja_str(v) for v in spec["enum"])
        elif isinstance(spec.get("type"), str):
            kind = TYPE_SHORT.get(spec["type"], spec["type"])
        else:
            kind = "any"
        parts.append(f"{name}{'' if name in required else '?'}:{kind}")
    line = f"{function.get('name', '')}({', '.join(parts)})"
    words = str(function.get("description") or "").split(".")[0].split()
    if words:
        line += " - " + " ".join(words[:DESCRIPTION_WORDS])
    return line


def _jinja_str(value: Any) -> str:
    # Jinja's join writes Python's str(); keep the pure-Python path identical.
    return str(value)


def _python_render(messages: list[dict[str, str]], tools: list[dict[str, Any]], add_generation_prompt: bool) -> str:
    text = ""
    if tools:
        text += "<|tools|>" + "".join(tool_signature(t) + "\n" for t in tools) + END_OF_TURN
    for message in messages:
        text += f"<|{message['role']}|>{message['content']}{END_OF_TURN}"
    if add_generation_prompt:
        text += "<|assistant|>"
    return text


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_prompt(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
    """The prompt text up to and including the assistant's generation prompt."""
    plain = normalize_messages(messages)
    openai_tools = [normalize_tool(t) for t in tools or []]
    if tokenizer is None or getattr(tokenizer, "chat_template", None) == CHAT_TEMPLATE:
        # The built-in template rendered in Python: same text (tested), without Jinja's cost.
        return _python_render(plain, openai_tools, True)
    template = None if has_chat_template(tokenizer) else CHAT_TEMPLATE
    return str(tokenizer.apply_chat_template(plain, tools=openai_tools or None, add_generation_prompt=True,
                                             tokenize=False, chat_template=template))


def render_example(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                   target: str) -> tuple[str, str]:
    """(prompt, completion) for training: the completion is the target plus the end of turn.

    The end-of-turn marker differs per template (``<|end|>``, ``<|im_end|>\\n`` ...), so the
    whole conversation is rendered with the answer and the prompt is cut off its front;
    when a template rewrites earlier turns (some drop reasoning), fall back to target + EOS.
    """
    prompt = render_prompt(tokenizer, messages, tools)
    if tokenizer is None or getattr(tokenizer, "chat_template", None) == CHAT_TEMPLATE:
        return prompt, target + END_OF_TURN
    plain = [*normalize_messages(messages), {"role": "assistant", "content": target}]
    openai_tools = [normalize_tool(t) for t in tools or []]
    template = None if has_chat_template(tokenizer) else CHAT_TEMPLATE
    full = str(tokenizer.apply_chat_template(plain, tools=openai_tools or None, add_generation_prompt=False,
                                             tokenize=False, chat_template=template))
    if full.startswith(prompt) and target in full[len(prompt):]:
        return prompt, full[len(prompt):]
    return prompt, target + str(getattr(tokenizer, "eos_token", "") or "")
