"""Tool calls out of a model's text (no Django imports).

Models write calls in several ways; each is accepted:

- ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (one tag per call; a last tag
  cut off by the token limit still parses when its JSON is complete),
- a bare JSON object or list of objects (``{"name", "arguments"|"parameters"}``, OpenAI's
  ``{"type": "function", "function": {...}}``, or BFCL's ``{"fn": {"arg": v}}``), also inside
  a Markdown code fence or after a sentence of prose,
- Python call syntax, ``get_weather(city="Paris")`` or ``[f(a=1), g(b=2)]`` (BFCL's format),
  read with ``ast`` so nothing is executed.

Text that tries none of these is a plain answer (no calls, no error). Text that looks like
a call attempt but does not parse is reported with ``parse_error`` so scoring can tell a
malformed call from a deliberate non-call.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from ftops.core.toolcalls import parse_tool_call

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
_FENCE = re.compile(r"```(?:json|python|tool_code)?\s*(.*?)```", re.S)
_CALL_START = re.compile(r"^\[?\s*[A-Za-z_][\w.]*\s*\(")

Call = dict[str, Any]
# Keys of the {"name", "arguments"} shape: never function names in BFCL's {"fn": {...}} shape.
_CALL_KEYS = frozenset({"name", "arguments", "parameters", "function", "type", "id"})


def parse_tool_calls(text: str) -> tuple[list[Call], str | None]:
    """``([{"name", "arguments"}], parse_error)``; plain prose gives ``([], None)``."""
    body = (text or "").strip()
    if not body:
        return [], None
    if TOOL_CALL_OPEN in body:
        return _parse_tagged(body)
    fenced = _FENCE.search(body)
    if fenced:
        calls, error = _parse_structured(fenced.group(1).strip())
        if calls or error:
            return calls, error
    calls, error = _parse_structured(body)
    if calls or error:
        return calls, error
    embedded = _embedded_json_call(body)
    if embedded:
        return embedded, None
    return [], None


def _parse_tagged(body: str) -> tuple[list[Call], str | None]:
    calls: list[Call] = []
    for chunk in body.split(TOOL_CALL_OPEN)[1:]:
        inner = chunk.split(TOOL_CALL_CLOSE, 1)[0].strip()
        try:
            obj = _load_object(inner)
        except ValueError as exc:
            return calls, f"<tool_call> {len(calls) + 1} is not valid JSON: {exc}"
        found = _calls_from_object(obj)
        if not found:
            return calls, f"<tool_call> {len(calls) + 1} has no function name"
        calls.extend(found)
    return calls, None


def _parse_structured(body: str) -> tuple[list[Call], str | None]:
    """JSON or Python-call text; ``([], None)`` when the text attempts neither."""
    if body[:1] in "{[":
        try:
            obj = _load_object(body)
        except ValueError as exc:
            if _CALL_START.match(body):
                return _parse_python_calls(body)
            return [], f"output looks like JSON but does not parse: {exc}"
        calls = _calls_from_object(obj)
        if calls:
            return calls, None
        if isinstance(obj, list) and not obj:
            return [], None  # an empty list is an explicit "no call"
        return [], "JSON output holds no function call (expected objects with a 'name')"
    if _CALL_START.match(body):
        return _parse_python_calls(body)
    return [], None


def _load_object(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # Single quotes, True/False/None: Python literal syntax is a common near-miss.
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise ValueError(exc.msg) from exc


def _calls_from_object(obj: Any) -> list[Call]:
    items = obj if isinstance(obj, list) else [obj]
    calls: list[Call] = []
    for item in items:
        call = _call_from_item(item)
        if call is None:
            return []
        calls.append(call)
    return calls


def _call_from_item(item: Any) -> Call | None:
    if not isinstance(item, dict):
        return None
    call = parse_tool_call(item)
    if call is not None:
        # Unreadable arguments make the whole output unreadable: the caller reports a parse error.
        return {"name": call.name, "arguments": call.arguments} if call.parsed else None
    if len(item) == 1:
        name, arguments = next(iter(item.items()))
        if isinstance(arguments, dict) and name not in _CALL_KEYS:
            return {"name": str(name), "arguments": arguments}
    return None


def _embedded_json_call(body: str) -> list[Call]:
    """A call object after some prose ("Sure! {"name": ...}")."""
    decoder = json.JSONDecoder()
    start = body.find("{")
    while start != -1:
        try:
            obj, _ = decoder.raw_decode(body, start)
        except json.JSONDecodeError:
            start = body.find("{", start + 1)
            continue
        call = _call_from_item(obj) if isinstance(obj, dict) and "name" in obj else None
        return [call] if call else []
    return []


def _parse_python_calls(body: str) -> tuple[list[Call], str | None]:
    try:
        tree = ast.parse(body, mode="eval").body
    except SyntaxError as exc:
        return [], f"output looks like a Python call but does not parse: {exc.msg}"
    nodes = tree.elts if isinstance(tree, (ast.List, ast.Tuple)) else [tree]
    calls: list[Call] = []
    for node in nodes:
        if not isinstance(node, ast.Call):
            return [], "Python output holds something other than function calls"
        name = _dotted_name(node.func)
        if name is None:
            return [], "a called function has no plain name"
        if node.args:
            return [], f"{name}() passes positional arguments; only keyword arguments can be matched"
        arguments: dict[str, Any] = {}
        for keyword in node.keywords:
            if keyword.arg is None:
                return [], f"{name}() unpacks **kwargs"
            try:
                arguments[keyword.arg] = _literal(keyword.value)
            except ValueError as exc:
                return [], f"{name}({keyword.arg}=...) is not a literal: {exc}"
        calls.append({"name": name, "arguments": arguments})
    return calls, None


def _dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted_name(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _literal(node: ast.expr) -> Any:
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        # JSON spellings inside Python syntax (true/false/null) appear in model output.
        if isinstance(node, ast.Name) and node.id in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[node.id]
        raise ValueError(ast.unparse(node)) from exc
    return list(value) if isinstance(value, tuple) else value
