"""Strict tool schemas for OpenAI upstreams: the request rewritten on the way out, the answer on the way back.

A version whose serving config says ``"constrained": true`` and that is served by an
OpenAI-compatible upstream (``upstream.Plan.strict_tools``) has the caller's tools sent with
``"strict": true`` and their schemas in strict form (``ftops.core.strict_schema``), so the
upstream decodes the arguments under each schema. Strict mode fills every optional argument the
model leaves out with ``null``; the gateway removes those again before answering, so callers get
calls that validate against the schemas they sent, as from any other version.

The request goes unchanged, with the reason recorded on the call, when:

* the upstream is not known to take strict tools (``upstream.supports_strict_tools``);
* the request is streamed: the arguments arrive in fragments and are passed on as they come,
  so the ``null`` optionals could not be taken out again;
* a tool's schema has no strict form (that tool alone goes as it is; the others go strict);
* the caller set ``strict`` on a tool itself (its choice is kept).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson

from ftops.core.strict_schema import strict_function, strip_null_optionals
from ftops.gateway.upstream import Plan, Upstream

log = logging.getLogger(__name__)

# Functions up to this size (as JSON) have their strict form cached: callers send the same tools
# on every call, and converting a schema costs ~50x its serialisation. Larger ones are converted
# each time, so the cache's memory stays bounded.
_CACHED_FUNCTION_BYTES = 64 * 1024


@dataclass
class StrictRequest:
    """The body to send; the callers' schemas of the tools sent strict, by name; what happened, for the record."""

    body: dict[str, Any]
    originals: dict[str, Any] = field(default_factory=dict)
    note: str = ""  # "" when the version does not ask for strict tools


def strict_request(body: dict[str, Any], plan: Plan, upstream: Upstream, *, stream: bool) -> StrictRequest:
    """``body`` (already meant for ``upstream``) with its tools strict where that applies."""
    tools = body.get("tools")
    if not plan.strict_tools or not isinstance(tools, list) or not tools:
        return StrictRequest(body)
    if not upstream.supports_strict_tools:
        return StrictRequest(body, note=f"not sent strict: upstream {upstream.name} is not marked as taking "
                                        "strict tools (FTOPS_GATEWAY_STRICT_TOOLS)")
    if stream:
        return StrictRequest(body, note="not sent strict: a streamed answer's null optionals cannot be removed")
    out_tools: list[Any] = []
    originals: dict[str, Any] = {}
    loose: list[str] = []
    for tool in tools:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or "strict" in function:
            out_tools.append(tool)
            continue
        strict, reason = _strict_function(function)
        if reason:
            loose.append(f"{function.get('name')}: {reason}")
            out_tools.append(tool)
            continue
        originals[str(function.get("name"))] = function.get("parameters") or {"type": "object", "properties": {}}
        out_tools.append({**tool, "function": strict})
    note = "sent strict" if originals else "not sent strict"
    if loose:
        note += "; not strict: " + "; ".join(loose)
    return StrictRequest({**body, "tools": out_tools}, originals, note)


def _strict_function(function: dict[str, Any]) -> tuple[dict[str, Any], str]:
    try:
        raw = orjson.dumps(function)
    except orjson.JSONEncodeError:  # e.g. an integer orjson does not write: converted uncached
        return strict_function(function)
    if len(raw) > _CACHED_FUNCTION_BYTES:
        return strict_function(function)
    return _strict_function_of(raw)


@lru_cache(maxsize=1024)
def _strict_function_of(raw: bytes) -> tuple[dict[str, Any], str]:
    # The result is shared by every request sending this function: it is only serialised, never changed.
    return strict_function(orjson.loads(raw))


def strip_completion(answer: dict[str, Any], originals: dict[str, Any]) -> int:
    """Remove from a chat completion's tool calls (in place) the ``null`` strict mode gave for
    optional arguments of the tools in ``originals``; returns how many calls changed."""
    if not originals:
        return 0
    changed = 0
    for choice in answer.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        for call in (message.get("tool_calls") if isinstance(message, dict) else None) or []:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or function.get("name") not in originals:
                continue
            try:
                arguments = orjson.loads(function.get("arguments") or "")
            except orjson.JSONDecodeError:
                continue  # the caller sees the upstream's text as it came
            stripped = strip_null_optionals(arguments, originals[function["name"]])
            if stripped != arguments:
                function["arguments"] = orjson.dumps(stripped).decode()
                changed += 1
    return changed


class NoteOnce:
    """Logs each distinct reason a version's tools did not go strict once per process, not per call."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()

    def __call__(self, version: str, note: str) -> None:
        if not note or note == "sent strict" or (version, note) in self._seen:
            return
        if len(self._seen) < 10_000:  # bounded: a caller sending ever new tool names cannot grow it forever
            self._seen.add((version, note))
        log.warning("gateway: %s asks for strict tools, %s", version, note)
