"""The one tool-call shape, and the one parser for every form a call arrives in (no Django imports).

Stored (canonical) form, what ingest writes and every consumer reads::

    {"name": "create_payment", "arguments": {"amount": 5000}}
    {"name": "create_payment", "arguments": {}, "arguments_raw": "{amount: 50", "arguments_error": "…"}

A call whose arguments could not be read as a JSON object keeps the model's text verbatim in
``arguments_raw`` (with the reason in ``arguments_error``); it is never turned into an empty
call, a ``{"_raw": …}`` placeholder or dropped. Consumers show the verbatim text and treat the
call as wrong.

Accepted input forms: ours (``{name, arguments}``), OpenAI's
(``{"type": "function", "function": {"name", "arguments": "<json text>"}}``), MCP/BFCL-style
``parameters`` instead of ``arguments``, and arguments as an object or as JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ToolCall", "parse_tool_call", "parse_tool_calls", "stored_calls"]


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    arguments_raw: str | None = None  # the model's text, verbatim, when it was not a JSON object
    arguments_error: str = ""

    @property
    def parsed(self) -> bool:
        return self.arguments_raw is None

    def as_dict(self) -> dict[str, Any]:
        """The stored form (see the module docstring)."""
        out: dict[str, Any] = {"name": self.name, "arguments": dict(self.arguments)}
        if self.arguments_raw is not None:
            out["arguments_raw"] = self.arguments_raw
            out["arguments_error"] = self.arguments_error
        return out

    def arguments_text(self) -> str:
        """What to show a person: the arguments as JSON, or the verbatim text that was not JSON."""
        if self.arguments_raw is not None:
            return self.arguments_raw
        return json.dumps(self.arguments, ensure_ascii=False, sort_keys=True)


def _decode_arguments(arguments: Any) -> tuple[dict[str, Any], str | None, str]:
    """(arguments, raw text or None, why the text is kept raw)."""
    if arguments is None:
        return {}, None, ""
    if isinstance(arguments, Mapping):
        return dict(arguments), None, ""
    if isinstance(arguments, str):
        if not arguments.strip():
            return {}, None, ""
        try:
            decoded = json.loads(arguments)
        except (ValueError, RecursionError) as exc:
            reason = "arguments are nested too deeply" if isinstance(exc, RecursionError) else \
                "arguments are not valid JSON"
            return {}, arguments, reason
        if not isinstance(decoded, dict):
            return {}, arguments, f"arguments must be a JSON object (got {_type_name(decoded)})"
        return decoded, None, ""
    # An array, number or boolean is as unusable as text that decodes to one.
    return {}, json.dumps(arguments, ensure_ascii=False, sort_keys=True, default=str), \
        f"arguments must be a JSON object (got {_type_name(arguments)})"


def parse_tool_call(item: Any) -> ToolCall | None:
    """One call in any accepted form; ``None`` when it names no tool (not a call at all)."""
    if isinstance(item, ToolCall):
        return item
    if not isinstance(item, Mapping):
        return None
    function = item.get("function")
    spec: Mapping[str, Any] = function if isinstance(function, Mapping) else item
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        return None
    if "arguments_raw" in spec and isinstance(spec.get("arguments_raw"), str):
        # Already canonical and unparsable: keep it as it was judged.
        return ToolCall(name=name, arguments={}, arguments_raw=spec["arguments_raw"],
                        arguments_error=str(spec.get("arguments_error") or "arguments are not a JSON object"))
    raw_arguments = spec["arguments"] if "arguments" in spec else spec.get("parameters")
    arguments, raw, why = _decode_arguments(raw_arguments)
    return ToolCall(name=name, arguments=arguments, arguments_raw=raw, arguments_error=why)


def parse_tool_calls(value: Any) -> list[ToolCall]:
    """Every call of a turn; items that name no tool are skipped (validation reports them)."""
    if not isinstance(value, Iterable) or isinstance(value, str | bytes | Mapping):
        return []
    return [call for call in (parse_tool_call(item) for item in value) if call is not None]


def stored_calls(value: Any) -> list[dict[str, Any]]:
    """Canonical dicts for stored or incoming calls (cheap on rows that are canonical already)."""
    return [call.as_dict() for call in parse_tool_calls(value)]
