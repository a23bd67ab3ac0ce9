"""Checks of logged tool calls against the service's current tool schemas (pure Python).

A verdict never refuses a log: it records whether the calls fit the published schemas,
and why not. Validators are built once per schema content hash and kept for the process,
since the same dozen schemas are checked for every interaction of a batch.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import exceptions as js_exceptions
from jsonschema import validators

VALID, INVALID, NO_CALL = "valid", "invalid", "no_call"

# Most specific first: a misspelt parameter shows up as unknown *and* missing; the
# misspelling is what a reviewer needs to see.
KIND_ORDER = ("unknown_tool", "unknown_parameter", "missing_required", "type_error", "value_error")
REASON_MAX = 500


@dataclass(frozen=True)
class ToolSchema:
    name: str
    parameters: dict[str, Any] | None  # None: the tool exists but has no schema to check
    content_hash: str = ""


@dataclass(frozen=True)
class CallVerdict:
    verdict: str  # valid | invalid | no_call
    kind: str = ""  # a FailureKind value when invalid
    reason: str = ""


_VALIDATORS: dict[str, Any] = {}
_FAST: dict[str, Callable[[dict[str, Any]], bool] | None] = {}
_LOCK = threading.Lock()

# A flat object of scalar parameters is what nearly every tool publishes. For such schemas a
# hand-rolled check answers "certainly valid" about 10x faster than jsonschema; anything it is
# not sure about (a float for an integer, a keyword outside this list) goes to jsonschema,
# which also writes the messages. It can only say yes when jsonschema would.
_FAST_TOP_KEYS = frozenset(
    {"type", "properties", "required", "additionalProperties", "description", "title", "$schema"}
)
_FAST_PROP_KEYS = frozenset(
    {"type", "enum", "minimum", "maximum", "pattern", "minLength", "maxLength", "description", "title", "default",
     "examples", "format"}
)  # fmt: skip
_SCALAR_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
}  # fmt: skip


def _fast_checker(parameters: Mapping[str, Any]) -> Callable[[dict[str, Any]], bool] | None:
    if parameters.get("type") != "object" or not parameters.keys() <= _FAST_TOP_KEYS:
        return None
    props = parameters.get("properties", {})
    required = parameters.get("required", [])
    if not isinstance(props, dict) or not isinstance(required, list):
        return None
    specs: dict[str, tuple[tuple[type, ...], list[Any] | None, Any, Any, re.Pattern[str] | None, Any, Any]] = {}
    for name, prop in props.items():
        if not isinstance(prop, dict) or not prop.keys() <= _FAST_PROP_KEYS:
            return None
        types = _SCALAR_TYPES.get(prop.get("type"))  # type: ignore[arg-type]
        if types is None:
            return None
        enum = prop.get("enum")
        if enum is not None and not isinstance(enum, list):
            return None
        try:
            pattern = re.compile(prop["pattern"]) if "pattern" in prop else None
        except re.error:
            return None
        specs[name] = (types, enum, prop.get("minimum"), prop.get("maximum"), pattern, prop.get("minLength"),
                       prop.get("maxLength"))
    required_names = tuple(required)

    def check(arguments: dict[str, Any]) -> bool:
        for name in required_names:
            if name not in arguments:
                return False
        for name, value in arguments.items():
            spec = specs.get(name)
            if spec is None:
                return False
            types, enum, lo, hi, pattern, min_len, max_len = spec
            if type(value) not in types:  # exact type: bool is not an integer here
                return False
            if enum is not None and not any(value == e and type(value) is type(e) for e in enum):
                return False
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                return False
            if pattern is not None and pattern.search(value) is None:
                return False
            if (min_len is not None and len(value) < min_len) or (max_len is not None and len(value) > max_len):
                return False
        return True

    return check


def schema_hash(parameters: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parameters, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _key(schema: ToolSchema) -> str:
    assert schema.parameters is not None
    return schema.content_hash or schema_hash(schema.parameters)


def _validator(schema: ToolSchema) -> Any:
    key = _key(schema)
    found = _VALIDATORS.get(key)
    if found is None:
        assert schema.parameters is not None
        cls = validators.validator_for(schema.parameters)
        try:
            cls.check_schema(schema.parameters)
        except js_exceptions.SchemaError:
            found = False  # a broken published schema cannot judge calls
        else:
            found = cls(schema.parameters)
        with _LOCK:
            _VALIDATORS[key] = found
            _FAST[key] = _fast_checker(schema.parameters) if found is not False else None
    return found


def _kind(error: js_exceptions.ValidationError) -> str:
    if error.validator == "required":
        return "missing_required"
    if error.validator == "additionalProperties":
        return "unknown_parameter"
    if error.validator == "type":
        return "type_error"
    return "value_error"


def _path(error: js_exceptions.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path)


def check_call(name: str, arguments: dict[str, Any], schema: ToolSchema | None) -> list[tuple[str, str]]:
    """Problems with one call as ``[(kind, message)]``; empty when the call fits."""
    if schema is None:
        return [("unknown_tool", f"{name}: no such tool in this service's catalog")]
    if schema.parameters is None:
        return []
    validator = _validator(schema)
    fast = _FAST.get(_key(schema))
    if fast is not None and fast(arguments):
        return []
    problems: list[tuple[str, str]] = []
    props = schema.parameters.get("properties")
    # Undeclared arguments are an error for tool calling even when the schema does not say
    # additionalProperties: false (OpenAI strict mode and BFCL both treat them so).
    if isinstance(props, dict) and "additionalProperties" not in schema.parameters:
        for key in arguments:
            if key not in props:
                problems.append(("unknown_parameter", f"{name}: unknown parameter '{key}'"))
    if validator is False:
        return problems
    for error in validator.iter_errors(arguments):
        where = _path(error)
        prefix = f"{name}.{where}" if where else name
        problems.append((_kind(error), f"{prefix}: {error.message}"))
    return problems


def check_calls(
    calls: list[dict[str, Any]], schemas: Mapping[str, ToolSchema], unparsable: list[str] | None = None
) -> CallVerdict:
    """Verdict for all calls of one turn; ``unparsable`` lists calls whose arguments were not JSON."""
    if not calls:
        return CallVerdict(NO_CALL)
    problems: list[tuple[str, str]] = [("type_error", reason) for reason in unparsable or []]
    for call in calls:
        if "arguments_raw" in call:
            continue  # already reported through ``unparsable``
        problems.extend(check_call(call["name"], call.get("arguments") or {}, schemas.get(call["name"])))
    if not problems:
        return CallVerdict(VALID)
    kind = min((k for k, _ in problems), key=KIND_ORDER.index)
    reason = "; ".join(message for _, message in problems)
    if len(reason) > REASON_MAX:
        reason = reason[: REASON_MAX - 1] + "…"
    return CallVerdict(INVALID, kind, reason)
