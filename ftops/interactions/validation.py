"""Parsing and validation of ingest payloads (pure Python, no Django).

Hand-written rather than a nested DRF serializer: a batch of 1,000 interactions is checked
field by field in a few milliseconds, and every problem comes back as
``{field: [message]}`` with a message that says what to send instead.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from ftops.core.toolcalls import ToolCall, parse_tool_call

FIELDS = frozenset(
    {
        "id", "service", "timestamp", "messages", "prompt", "tools", "tool_calls", "response_text", "task_type",
        "user_feedback", "success", "confidence", "latency_ms", "tokens_used", "model_version", "metadata",
    }
)  # fmt: skip
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
MAX_INT = 2_147_483_647  # PositiveIntegerField's upper bound on every database
ID_MAX = 200
# How deep one field may nest objects and arrays. Real payloads stay under ten; the bound keeps
# every later recursive walk (hashing, PII redaction, JSON Schema checks) far from Python's
# recursion limit, where a hostile body would otherwise turn into a 500.
MAX_DEPTH = 32
TOO_DEEP = f"nests objects and arrays more than {MAX_DEPTH} levels deep; send a flatter value"
BAD_UNICODE = (
    "holds a lone UTF-16 surrogate (such as \\ud800), which is not valid Unicode and cannot be stored; "
    "send well-formed text"
)
NESTED_TOO_DEEPLY = "arguments are nested too deeply"  # ftops.core.toolcalls' reason for a RecursionError

Errors = dict[str, list[str]]


@dataclass
class ParsedInteraction:
    """One payload, type-checked and normalised, not yet redacted or checked against schemas."""

    external_id: str
    service: str
    body_hash: str
    timestamp: datetime
    messages: list[Any]
    tools: list[Any]
    tool_calls: list[dict[str, Any]]
    unparsable_calls: list[str] = field(default_factory=list)  # why some calls' arguments are unusable
    response_text: str = ""
    task_type: str = ""
    user_feedback: int | None = None
    success: bool | None = None
    confidence: float | None = None
    latency_ms: int | None = None
    tokens_used: int | None = None
    model_version: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    tools_json: bytes = b"[]"  # canonical JSON of ``tools``, reused by the PostgreSQL COPY insert


def canonical_json(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


# orjson writes the same canonical text as ``canonical_json`` (keys sorted by code point, no
# spaces, UTF-8, the same string escapes) ~5x faster, with three differences that matter to the
# stored body hashes: floats from 1e-9 to 1e-4 ("1e-7" for "1e-07", "0.00001" for "1e-05"),
# values that are not JSON types (``default=str`` gives their str(); orjson its own form), and
# what it cannot write at all (a lone surrogate, an integer past 64 bits, deep nesting). The
# first shows in the output (below); the other two make it raise. Either way the standard
# encoder writes the text, so a body hashes as it always did. (NaN, Infinity and plain Enum
# members are written differently too, but only a Python caller can send them: the API parses
# strictly, and PostgreSQL's jsonb refuses NaN anyway.)
_ORJSON_PASSTHROUGH = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS
)
_ORJSON_CANONICAL = orjson.OPT_SORT_KEYS | _ORJSON_PASSTHROUGH
# A digit before "e-" and one exponent digit: a number, not text such as "acme-7".
_FLOAT_FORM_DIFFERS = re.compile(rb"0\.0000|[0-9]e-[0-9](?![0-9])")


def _not_json(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def _orjson_canonical(payload: Any) -> bytes | None:
    """``canonical_json(payload).encode()`` through orjson, or None where orjson would differ."""
    try:
        out = orjson.dumps(payload, default=_not_json, option=_ORJSON_CANONICAL)
    except TypeError:  # orjson.JSONEncodeError included
        return None
    return None if _FLOAT_FORM_DIFFERS.search(out) is not None else out


def canonical_bytes(payload: Any) -> bytes:
    """``canonical_json(payload).encode()``, byte for byte, mostly through orjson.

    Raises UnicodeEncodeError for a lone surrogate, as ``.encode()`` would. Check the depth
    first: past ~1,000 levels the standard encoder raises RecursionError."""
    out = _orjson_canonical(payload)
    return out if out is not None else canonical_json(payload).encode()


class TooDeep(ValueError):
    """A value nests objects and arrays more than ``MAX_DEPTH`` levels deep."""


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests dicts and lists more than ``limit`` levels deep.

    Iterative on purpose: it runs before anything recursive touches hostile input."""
    if type(value) is not dict and type(value) is not list:
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if type(node) is dict else node:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return False


def _openers(text: bytes) -> int:
    """An upper bound of the nesting depth of the JSON ``text`` (brackets in strings count too)."""
    return text.count(b"[") + text.count(b"{")


class ToolsMemo:
    """Canonical JSON of the offered tools, computed once per distinct list in a batch.

    The tools offered are most of an interaction's bytes (full JSON Schemas) and repeat
    across a batch, one list per service. A list is found again by its plain orjson text (a
    few microseconds), so it is sorted, depth-checked and serialised canonically once.
    """

    def __init__(self, size: int = 64) -> None:
        self._cache: dict[bytes, bytes] = {}
        self._size = size

    def canonical(self, tools: list[Any]) -> str:
        """Raises TooDeep for a list nested past ``MAX_DEPTH``."""
        return self.canonical_bytes(tools).decode()

    def canonical_bytes(self, tools: list[Any]) -> bytes:
        """Raises TooDeep for a list nested past ``MAX_DEPTH`` and UnicodeEncodeError for a lone surrogate."""
        try:
            # Unsorted, but refusing what the canonical text writes differently (a datetime and
            # its ISO string must not share a key).
            key = orjson.dumps(tools, default=_not_json, option=_ORJSON_PASSTHROUGH)
        except TypeError:  # not writable by orjson (see canonical_bytes): no memo
            key = b""
        found = self._cache.get(key) if key else None
        if found is not None:
            return found
        if (not key or _openers(key) > MAX_DEPTH) and too_deep(tools):
            raise TooDeep(TOO_DEEP)
        text = canonical_bytes(tools)
        if key and len(self._cache) < self._size:
            self._cache[key] = text
        return text


def body_hash(payload: Any, memo: ToolsMemo | None = None) -> str:
    """Order-independent hash of a submitted body, for idempotent replays."""
    return _hash(*_canonical_parts(payload, memo or ToolsMemo()))


def _canonical_parts(payload: dict[str, Any], memo: ToolsMemo) -> tuple[bytes, bytes]:
    """Canonical UTF-8 JSON of the body without its tools, and of its tools."""
    tools = payload.get("tools")
    if type(tools) is not list:
        return canonical_bytes(payload), b""
    rest = {k: v for k, v in payload.items() if k != "tools"}
    return canonical_bytes(rest), memo.canonical_bytes(tools)


def _hash(rest: bytes, tools: bytes) -> str:
    # The same bytes as hashing f"{rest}\x1f{tools}" of the texts, as every stored hash was.
    return hashlib.sha256(rest + b"\x1f" + tools).hexdigest()


def _any_string(value: Any, test: Callable[[str], bool]) -> bool:
    """Whether ``test`` holds for any string in ``value``, dict keys included."""
    if isinstance(value, str):
        return test(value)
    if isinstance(value, dict):
        return any(_any_string(k, test) or _any_string(v, test) for k, v in value.items())
    if isinstance(value, list):
        return any(_any_string(v, test) for v in value)
    return False


def _is_surrogate_text(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _has_surrogate(value: Any) -> bool:
    return _any_string(value, _is_surrogate_text)


def _has_nul(value: Any) -> bool:
    return _any_string(value, lambda text: "\x00" in text)


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )


def _parse_timestamp(value: Any, errors: Errors) -> datetime | None:
    if value is None:
        return datetime.now(UTC)
    if isinstance(value, bool):
        errors["timestamp"] = ["must be an ISO 8601 string such as 2025-01-31T12:00:00Z (got a boolean)"]
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            errors["timestamp"] = [f"epoch seconds {value} is out of range"]
            return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            errors["timestamp"] = [f"'{value[:40]}' is not an ISO 8601 timestamp; send e.g. 2025-01-31T12:00:00Z"]
            return None
        parsed = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
        if not 1970 <= parsed.year <= 2999:  # also keeps UTC conversion from overflowing
            errors["timestamp"] = [f"year {parsed.year} is out of range; send a timestamp from 1970 on"]
            return None
        return parsed
    errors["timestamp"] = [f"must be an ISO 8601 string or epoch seconds (got {_type_name(value)})"]
    return None


def _parse_messages(raw: dict[str, Any], errors: Errors) -> list[Any]:
    messages = raw.get("messages")
    prompt = raw.get("prompt")
    if messages is not None and prompt is not None:
        errors["prompt"] = ["send either 'messages' or 'prompt', not both"]
        return []
    if prompt is not None:
        if not isinstance(prompt, str) or not prompt.strip():
            errors["prompt"] = ["must be a non-empty string"]
            return []
        return [{"role": "user", "content": prompt}]
    if messages is None:
        errors["messages"] = ["required: the conversation as [{role, content}] (or send 'prompt' with the user text)"]
        return []
    if not isinstance(messages, list) or not messages:
        errors["messages"] = [f"must be a non-empty array of {{role, content}} objects (got {_type_name(messages)})"]
        return []
    problems: list[str] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            problems.append(f"[{i}] must be an object with 'role' and 'content' (got {_type_name(message)})")
            continue
        role = message.get("role")
        if role not in ROLES:
            problems.append(f"[{i}].role must be one of {sorted(ROLES)} (got {role!r})")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            problems.append(f"[{i}].content must be a string, an array of parts or null (got {_type_name(content)})")
    if problems:
        errors["messages"] = problems
    return messages


TOO_DEEP_ARGUMENTS = f"arguments are nested more than {MAX_DEPTH} levels deep"


def _arguments_text(item: dict[str, Any]) -> str:
    """The arguments as sent, when they were sent as text ("" otherwise)."""
    function = item.get("function")
    spec = function if type(function) is dict else item
    text = spec["arguments"] if "arguments" in spec else spec.get("parameters")
    return text if type(text) is str else ""


def _parse_tool_calls(value: Any, errors: Errors) -> tuple[list[dict[str, Any]], list[str]]:
    """Every form ``ftops.core.toolcalls`` accepts, stored in its canonical shape.

    Arguments that are not a JSON object are the model's mistake, not the client's: such a
    call is kept with its text verbatim (``arguments_raw``, ``arguments_error``) and judged
    invalid, never refused: a bad call must never stop the interaction from being logged.
    Only items that are no call at all (not an object, no name) are the client's to fix.
    """
    if value is None:
        return [], []
    if type(value) is not list:
        errors["tool_calls"] = [f"must be an array of {{name, arguments}} objects (got {_type_name(value)})"]
        return [], []
    calls: list[dict[str, Any]] = []
    unparsable: list[str] = []
    problems: list[str] = []
    for i, item in enumerate(value):
        if type(item) is not dict:
            problems.append(f"[{i}] must be an object {{name, arguments}} (got {_type_name(item)})")
            continue
        call = parse_tool_call(item)
        if call is None:
            problems.append(f"[{i}].name is required: the tool's name as a string")
            continue
        if call.parsed:
            if call.arguments and (text := _arguments_text(item)) and too_deep(call.arguments):
                # Decoded from text, the arguments missed the depth check the payload's own
                # fields get; past the bound they stay text, like any unusable call.
                call = ToolCall(name=call.name, arguments_raw=text, arguments_error=TOO_DEEP_ARGUMENTS)
        elif call.arguments_error == NESTED_TOO_DEEPLY:
            call = ToolCall(name=call.name, arguments_raw=call.arguments_raw, arguments_error=TOO_DEEP_ARGUMENTS)
        if not call.parsed:
            unparsable.append(f"{call.name}: {call.arguments_error}")
        calls.append(call.as_dict())
    if problems:
        errors["tool_calls"] = problems
    return calls, unparsable


def _opt_str(raw: dict[str, Any], name: str, max_len: int | None, errors: Errors) -> str:
    value = raw.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        errors[name] = [f"must be a string (got {_type_name(value)})"]
        return ""
    if max_len is not None and len(value) > max_len:
        errors[name] = [f"must be at most {max_len} characters (got {len(value)})"]
    return value


def _opt_int(
    raw: dict[str, Any], name: str, lo: int, hi: int, errors: Errors, *, allow_float: bool = False
) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    ok_type = isinstance(value, int) or (allow_float and isinstance(value, float) and value == value)
    if isinstance(value, bool) or not ok_type:
        kind = "a number" if allow_float else "an integer"
        errors[name] = [f"must be {kind} from {lo} to {hi} (got {_type_name(value)} {value!r:.40})"]
        return None
    if not lo <= value <= hi:
        errors[name] = [f"must be from {lo} to {hi} (got {value})"]
        return None
    return round(value)


def parse_payload(raw: Any, memo: ToolsMemo | None = None) -> tuple[ParsedInteraction | None, Errors]:
    """Check one payload; returns the parsed interaction or the errors by field.

    Pass one ``memo`` for all payloads of a batch."""
    errors: Errors = {}
    if not isinstance(raw, dict):
        return None, {"non_field_errors": [f"each interaction must be a JSON object (got {_type_name(raw)})"]}
    unknown = raw.keys() - FIELDS
    if unknown:
        errors["non_field_errors"] = [f"unknown field(s) {sorted(unknown)}; allowed: {sorted(FIELDS)}"]

    external_id = raw.get("id")
    if not isinstance(external_id, str) or not external_id.strip():
        errors["id"] = ["required: your own unique id for this interaction, as a string (it makes retries safe)"]
    elif len(external_id) > ID_MAX:
        errors["id"] = [f"must be at most {ID_MAX} characters (got {len(external_id)})"]
    elif "/" in external_id or any(ch.isspace() for ch in external_id):
        errors["id"] = ["must not contain '/' or whitespace: it is used in URLs such as /interactions/{id}/feedback"]

    service = raw.get("service")
    if not isinstance(service, str) or not service:
        errors["service"] = ["required: the catalog name of the service whose tools were offered, e.g. 'payments'"]

    timestamp = _parse_timestamp(raw.get("timestamp"), errors)
    messages = _parse_messages(raw, errors)

    tools = raw.get("tools")
    if tools is None:
        tools = []
    elif not isinstance(tools, list) or not all(isinstance(t, str | dict) for t in tools):
        errors["tools"] = ["must be an array of tool names or OpenAI tool objects"]

    tool_calls, unparsable = _parse_tool_calls(raw.get("tool_calls"), errors)
    response_text = _opt_str(raw, "response_text", None, errors)
    task_type = _opt_str(raw, "task_type", 100, errors)
    model_version = _opt_str(raw, "model_version", 200, errors)
    user_feedback = _opt_int(raw, "user_feedback", 1, 5, errors)

    success = raw.get("success")
    if success is not None and not isinstance(success, bool):
        errors["success"] = [f"must be true, false or null (got {_type_name(success)} {success!r:.40})"]

    confidence = raw.get("confidence")
    if confidence is not None and (
        isinstance(confidence, bool) or not isinstance(confidence, int | float) or not 0 <= confidence <= 1
    ):
        errors["confidence"] = [f"must be a number from 0 to 1 (got {confidence!r:.40})"]

    latency_ms = _opt_int(raw, "latency_ms", 0, MAX_INT, errors, allow_float=True)
    tokens_used = _opt_int(raw, "tokens_used", 0, MAX_INT, errors)

    metadata = raw.get("metadata")
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):
        errors["metadata"] = [f"must be an object (got {_type_name(metadata)})"]

    # Depth before anything recursive walks these values ("tools" is checked by the memo, once
    # per distinct list). orjson writes the canonical text without recursing in Python; when
    # its text holds few brackets no field can be deep, and the walk is skipped.
    rest_json = tools_json = b""
    digest = ""
    deep_fields = ("messages", "tool_calls", "metadata")
    if errors:
        for name in deep_fields:
            if name not in errors and too_deep(raw.get(name)):
                errors[name] = [TOO_DEEP]
    else:
        tools_list = raw.get("tools")
        rest = {k: v for k, v in raw.items() if k != "tools"} if type(tools_list) is list else raw
        fast = _orjson_canonical(rest)
        if fast is None or _openers(fast) > MAX_DEPTH + 1:  # +1: the body's own braces
            for name in deep_fields:
                if too_deep(raw.get(name)):
                    errors[name] = [TOO_DEEP]
        if not errors:
            try:
                rest_json = fast if fast is not None else canonical_json(rest).encode()
                if type(tools_list) is list:
                    tools_json = (memo or ToolsMemo()).canonical_bytes(tools_list)
            except TooDeep:
                errors["tools"] = [TOO_DEEP]
            except UnicodeEncodeError:
                # A JSON "\ud800" escape decodes to a lone surrogate: no UTF-8 form, so neither
                # the hash nor the database can take it. Name the fields that hold one.
                for name in sorted(raw):
                    if _has_surrogate(raw[name]):
                        errors[name] = [BAD_UNICODE]
                if not errors:
                    errors["non_field_errors"] = [f"a string {BAD_UNICODE}"]
    # JSON escapes NUL as \u0000; only then walk the payload to be sure (PostgreSQL text and
    # jsonb cannot hold NUL, and the insert would fail with a 500).
    if (b"\\u0000" in rest_json or b"\\u0000" in tools_json) and _has_nul(raw):
        errors.setdefault("non_field_errors", []).append(
            "strings must not contain NUL (\\u0000) characters; the database cannot store them"
        )
    if not errors:
        digest = _hash(rest_json, tools_json)
    if errors:
        return None, errors
    assert timestamp is not None and isinstance(external_id, str) and isinstance(service, str)
    return (
        ParsedInteraction(
            external_id=external_id,
            service=service,
            body_hash=digest,
            timestamp=timestamp,
            messages=messages,
            tools=tools,
            tool_calls=tool_calls,
            unparsable_calls=unparsable,
            response_text=response_text,
            task_type=task_type,
            user_feedback=user_feedback,
            success=success,
            confidence=float(confidence) if confidence is not None else None,
            latency_ms=latency_ms,
            tokens_used=tokens_used,
            model_version=model_version,
            metadata=metadata,
            tools_json=tools_json or b"[]",
        ),
        {},
    )
