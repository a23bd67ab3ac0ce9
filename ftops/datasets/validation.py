"""Validation of an example's expected behaviour against tool JSON Schemas (no Django imports).

``validate_expected`` returns field messages ({field: [message, ...]}); an empty dict means
valid. The services raise ``ValidationFailed`` with these messages, the schema migration
uses them to decide whether an example still fits a new schema, and the synthetic
paraphraser uses them before keeping a variation.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from ftops.core.records import BEHAVIORS, PREV_REF, canonical_arguments

Errors = dict[str, list[str]]

MESSAGE_ROLES = ("system", "user", "assistant", "tool")


def stable_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def content_hash(*, user_query: str, messages: list[dict[str, Any]], behavior: str, expected: dict[str, Any],
                 tool: str) -> str:
    """The identity of an example's content: what was asked and what should happen."""
    payload = {"query": user_query, "messages": messages, "behavior": behavior, "expected": expected, "tool": tool}
    return hashlib.sha256(stable_json(payload).encode()).hexdigest()


def bad_text(value: Any) -> str | None:
    """Why ``value`` cannot be stored, or None: a NUL character or a lone UTF-16 surrogate in any
    string (object keys included). PostgreSQL's text and jsonb refuse both, so the insert would
    fail with a 500 instead of naming the field."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "strings must not contain NUL (\\u0000) characters; the database cannot store them"
            try:
                item.encode()
            except UnicodeEncodeError:
                return "a string holds a lone UTF-16 surrogate (such as \\ud800), which is not valid Unicode"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None


def _add(errors: Errors, field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def _path(error: Any) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(root)"


def schema_errors(parameters: Mapping[str, Any], instance: Any, *, allow_prev_refs: bool = False) -> list[str]:
    """Messages for every way ``instance`` breaks the JSON Schema ``parameters``."""
    try:
        validator = Draft202012Validator(dict(parameters))
    except SchemaError as exc:  # a broken published schema is reported, not raised
        return [f"the tool's schema is itself invalid: {exc.message}"]
    out = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        if allow_prev_refs and isinstance(error.instance, str) and PREV_REF.match(error.instance):
            continue  # "{prev.x}" stands for a value only known once the earlier step ran
        out.append(f"{_path(error)}: {error.message}")
    return out


def required_params(parameters: Mapping[str, Any]) -> list[str]:
    required = parameters.get("required") or []
    return [str(r) for r in required] if isinstance(required, list) else []


def property_names(parameters: Mapping[str, Any]) -> set[str]:
    props = parameters.get("properties") or {}
    return set(props) if isinstance(props, dict) else set()


def _check_call(index: int, call: Any, schemas: Mapping[str, Mapping[str, Any]], errors: Errors) -> None:
    field = f"expected.calls[{index}]"
    if not isinstance(call, dict):
        _add(errors, field, 'each call is an object {"name": ..., "arguments": {param: [acceptable values]}}')
        return
    name = call.get("name")
    if not isinstance(name, str) or not name:
        _add(errors, f"{field}.name", "give the tool name as a non-empty string")
        return
    if name not in schemas:
        _add(errors, f"{field}.name", f"unknown tool '{name}'; offered tools are {sorted(schemas)}")
        return
    arguments = call.get("arguments", {})
    if not isinstance(arguments, dict):
        _add(errors, f"{field}.arguments",
             "arguments is an object mapping each parameter to a list of acceptable values")
        return
    parameters = schemas[name]
    bad_shape = False
    for param, values in arguments.items():
        if not isinstance(values, list) or not values:
            _add(errors, f"{field}.arguments.{param}",
                 'give a non-empty list of acceptable values, e.g. ["EUR"] (add "" if it may be omitted)')
            bad_shape = True
    if bad_shape:
        return
    props = property_names(parameters)
    closed = parameters.get("additionalProperties") is False or bool(props)
    for param in arguments:
        if closed and param not in props:
            _add(errors, f"{field}.arguments.{param}",
                 f"'{param}' is not a parameter of {name}; it has {sorted(props)}")
    for param in required_params(parameters):
        values = arguments.get(param)
        if values is None:
            _add(errors, f"{field}.arguments.{param}", f"'{param}' is required by {name}; give its acceptable values")
        elif "" in values:
            _add(errors, f"{field}.arguments.{param}",
                 f"'{param}' is required by {name}, so \"\" (omit) is not allowed")
    if errors:
        return
    # Every acceptable value must be valid in context: validate the canonical call with each
    # alternative substituted in turn, so $refs and sibling constraints are honoured.
    base = canonical_arguments(arguments)
    for message in schema_errors(parameters, base):
        _add(errors, f"{field}.arguments", message)
    for param, values in arguments.items():
        for alt_index, value in enumerate(values):
            if value == "" or (alt_index == 0 and base.get(param) == value):
                continue
            instance = copy.deepcopy(base)
            instance[param] = canonical_arguments({"v": [value]}).get("v", value)
            for message in schema_errors(parameters, instance):
                _add(errors, f"{field}.arguments.{param}[{alt_index}]", message)


def _check_sequence(expected: dict[str, Any], schemas: Mapping[str, Mapping[str, Any]], errors: Errors) -> None:
    steps = expected.get("steps")
    if not isinstance(steps, list) or len(steps) < 2:
        _add(errors, "expected.steps", "a sequence needs a list of at least two steps (use behavior 'call' for one)")
        return
    seen_results: list[dict[str, Any]] = []
    for index, step in enumerate(steps):
        field = f"expected.steps[{index}]"
        if not isinstance(step, dict):
            _add(errors, field, 'each step is an object {"name": ..., "arguments": {...}}')
            continue
        name = step.get("name")
        if not isinstance(name, str) or name not in schemas:
            _add(errors, f"{field}.name", f"unknown tool {name!r}; offered tools are {sorted(schemas)}")
            continue
        arguments = step.get("arguments", {})
        if not isinstance(arguments, dict):
            _add(errors, f"{field}.arguments", "arguments is an object of parameter values")
            continue
        for param, value in arguments.items():
            match = PREV_REF.match(value) if isinstance(value, str) else None
            if not match:
                continue
            if index == 0:
                _add(errors, f"{field}.arguments.{param}", "the first step cannot reference an earlier result")
            elif seen_results and not any(match.group(1) in r for r in seen_results):
                _add(errors, f"{field}.arguments.{param}",
                     f"no earlier step's result has '{match.group(1)}'")
        for message in schema_errors(schemas[name], arguments, allow_prev_refs=True):
            _add(errors, f"{field}.arguments", message)
        result = step.get("result")
        if result is not None and not isinstance(result, dict):
            _add(errors, f"{field}.result", "result, when given, is an object")
        elif isinstance(result, dict):
            seen_results.append(result)


def validate_expected(
    *,
    behavior: str,
    expected: Any,
    schemas: Mapping[str, Mapping[str, Any]],
    tool: str = "",
) -> Errors:
    """Check ``expected`` for ``behavior`` against ``schemas`` ({tool name: parameters})."""
    errors: Errors = {}
    if behavior not in BEHAVIORS:
        _add(errors, "behavior", f"unknown behavior {behavior!r}; choose one of {list(BEHAVIORS)}")
        return errors
    if not isinstance(expected, dict):
        _add(errors, "expected", "expected must be an object")
        return errors
    problem = bad_text(expected)
    if problem:
        _add(errors, "expected", problem)
        return errors
    if behavior == "call":
        calls = expected.get("calls")
        if not isinstance(calls, list) or not calls:
            _add(errors, "expected.calls", 'give a non-empty list of calls [{"name": ..., "arguments": {...}}]')
            return errors
        for index, call in enumerate(calls):
            _check_call(index, call, schemas, errors)
    elif behavior == "sequence":
        _check_sequence(expected, schemas, errors)
    elif behavior == "clarify":
        if not isinstance(expected.get("question"), str) or not expected["question"].strip():
            _add(errors, "expected.question", "give the clarifying question the assistant should ask")
        if not isinstance(expected.get("reason", ""), str):
            _add(errors, "expected.reason", "reason is a string")
    elif behavior == "ask_for_details":
        fields = expected.get("required_fields")
        if not tool:
            _add(errors, "tool", "ask_for_details needs the tool whose required fields are missing")
        if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
            _add(errors, "expected.required_fields", "give a non-empty list of the missing required parameter names")
        elif tool and tool in schemas:
            required = required_params(schemas[tool])
            unknown = [f for f in fields if f not in required]
            if unknown:
                _add(errors, "expected.required_fields",
                     f"{unknown} are not required parameters of {tool}; its required parameters are {required}")
        if not isinstance(expected.get("question"), str) or not expected["question"].strip():
            _add(errors, "expected.question", "give the question asking for the missing details")
    elif behavior == "abstain" and not isinstance(expected.get("reason", ""), str):
        _add(errors, "expected.reason", "reason is a string")
    return errors


def validate_messages(messages: Any, user_query: str) -> Errors:
    errors: Errors = {}
    if not isinstance(messages, list) or not messages:
        _add(errors, "messages", "messages is a non-empty list of {role, content} objects")
        return errors
    problem = bad_text(messages)
    if problem:
        _add(errors, "messages", problem)
        return errors
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in MESSAGE_ROLES:
            _add(errors, f"messages[{index}]", f"each message needs a role among {list(MESSAGE_ROLES)}")
    if errors:
        return errors
    users = [m for m in messages if m.get("role") == "user"]
    if not users:
        _add(errors, "messages", "the conversation needs at least one user message (the request)")
    elif str(users[-1].get("content") or "") != user_query:
        _add(errors, "user_query", "user_query must equal the content of the last user message")
    return errors
