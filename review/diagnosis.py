"""What is wrong with a model's tool calls, and how far two reviewers agree (no Django imports).

``diagnose_calls`` checks each call against the offered tools' schemas (unknown tool, unknown
parameter, missing required, wrong type, value not allowed) and, where the expected calls are
known, against them; the item page highlights each argument with the result. ``suggest_fix``
undoes the mechanical mistakes (dollars for cents, a renamed parameter) when that is all that is
wrong, for the item page's prefill and the queue's bulk "accept the suggested fix".
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from review.schema_form import as_dict, schema_type, validate_arguments

OK, UNKNOWN, INVALID, MISMATCH, MISSING = "ok", "unknown", "invalid", "mismatch", "missing"
RENAMED = "renamed"  # sent under a near name of a parameter it left out (``order`` for ``order_id``)


@dataclass
class ArgumentCheck:
    name: str
    value: str  # JSON text of what the model sent ("" when missing)
    status: str
    message: str = ""
    expected: str = ""  # JSON text of the expected value, when known


@dataclass
class CallCheck:
    index: int
    name: str
    known_tool: bool
    arguments: list[ArgumentCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    expected_name: str = ""
    arguments_raw: str | None = None  # the model's text when its arguments were not a JSON object

    @property
    def ok(self) -> bool:
        return not self.problems and all(a.status == OK for a in self.arguments)


@dataclass
class Diagnosis:
    calls: list[CallCheck]
    problems: list[str]  # about the turn as a whole (calls missing, a call made where none was due)

    @property
    def ok(self) -> bool:
        return not self.problems and all(c.ok for c in self.calls)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _acceptable(expected: Any, schema: Mapping[str, Any]) -> list[Any]:
    """Expected values as a list of acceptable ones (BFCL possible answers or one plain value)."""
    if isinstance(expected, list) and schema_type(schema) != "array":
        return [v for v in expected if v != ""] or [""]
    return [expected]


def diagnose_calls(
    calls: list[dict[str, Any]],
    schemas: Mapping[str, Mapping[str, Any]],
    expected_calls: list[dict[str, Any]] | None = None,
    expected_behavior: str = "",
) -> Diagnosis:
    checks: list[CallCheck] = []
    problems: list[str] = []
    expected_calls = expected_calls or []
    for index, call in enumerate(calls):
        name = str(call.get("name") or "")
        arguments = as_dict(call.get("arguments"))
        schema = schemas.get(name)
        expected = expected_calls[index] if index < len(expected_calls) else None
        check = CallCheck(index=index, name=name, known_tool=schema is not None,
                          expected_name=str(expected.get("name") or "") if expected else "")
        if isinstance(call.get("arguments_raw"), str):
            check.arguments_raw = call["arguments_raw"]
            check.problems.append(str(call.get("arguments_error") or "arguments are not a JSON object"))
        if schema is None:
            check.problems.append(f"'{name}' is not one of the tools offered")
        if expected is not None and check.expected_name and check.expected_name != name:
            check.problems.append(f"expected a call to '{check.expected_name}'")
        check.arguments = _check_arguments(arguments, schema, expected if check.expected_name == name else None)
        checks.append(check)
    if expected_calls and len(expected_calls) > len(calls):
        for missing in expected_calls[len(calls):]:
            problems.append(f"expected call to '{missing.get('name')}' was not made")
    if calls and expected_behavior in ("clarify", "ask_for_details", "abstain"):
        problems.append(f"the right behaviour was to {expected_behavior.replace('_', ' ')}, not to call a tool")
    if not calls and expected_behavior in ("call", "sequence"):
        problems.append("the model made no call where one was expected")
    return Diagnosis(calls=checks, problems=problems)


def _near(sent: str, name: str) -> bool:
    """Whether ``sent`` reads as a slip for ``name``: the same words in another spelling
    (``orderId``, ``order-id``), one a word-boundary prefix or suffix of the other (``order`` for
    ``order_id``, ``id`` is too short to count), or a close spelling."""
    def norm(text: str) -> str:
        return re.sub(r"[^a-z0-9]", "", re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", text).lower())

    a, b = norm(sent), norm(name)
    if not a or not b:
        return False
    if a == b:
        return True
    short, long = sorted((a, b), key=len)
    if len(short) >= 4 and (long.startswith(short) or long.endswith(short)):
        return True
    return len(short) >= 5 and difflib.SequenceMatcher(None, a, b).ratio() >= 0.85


def infer_renames(arguments: Mapping[str, Any], schema: Mapping[str, Any] | None) -> dict[str, str]:
    """{sent name: parameter name} for arguments sent under a near name of a parameter the call
    left out, where the value is valid for that parameter and the pairing is unambiguous."""
    properties = (schema or {}).get("properties") or {}
    if not properties:
        return {}
    unknown = [k for k in arguments if k not in properties]
    left_out = [p for p in properties if p not in arguments]
    out: dict[str, str] = {}
    for sent in unknown:
        candidates = [p for p in left_out if _near(sent, p)
                      and not validate_arguments({"type": "object", "properties": {p: properties[p]}},
                                                 {p: arguments[sent]})]
        if len(candidates) == 1:
            out[sent] = candidates[0]
    # A parameter claimed by two sent names is a human's call.
    targets = list(out.values())
    return {k: v for k, v in out.items() if targets.count(v) == 1}


def _check_arguments(
    arguments: Mapping[str, Any], schema: Mapping[str, Any] | None, expected: Mapping[str, Any] | None
) -> list[ArgumentCheck]:
    properties = (schema or {}).get("properties") or {}
    renamed = infer_renames(arguments, schema)
    errors: dict[str, str] = {}
    if schema is not None:
        for path, message in validate_arguments(schema, arguments):
            key = str(path[0]) if path else ""
            errors.setdefault(key, message)
    expected_args = (expected or {}).get("arguments") or {}
    out: list[ArgumentCheck] = []
    for name, value in arguments.items():
        check = ArgumentCheck(name=name, value=_dump(value), status=OK)
        if name in renamed:
            check.status = RENAMED
            check.message = f"the parameter is called '{renamed[name]}' (sent as '{name}'): one rename fixes it"
            target = renamed[name]
            if target in expected_args:
                check.expected = _dump(_acceptable(expected_args[target], properties.get(target) or {})[0])
            out.append(check)
            continue
        if schema is not None and name not in properties:
            check.status, check.message = UNKNOWN, "not a parameter of this tool"
        elif name in errors:
            check.status, check.message = INVALID, errors[name]
        if name in expected_args:
            acceptable = _acceptable(expected_args[name], properties.get(name) or {})
            check.expected = _dump(acceptable[0])
            if value not in acceptable and check.status == OK:
                check.status, check.message = MISMATCH, "differs from the expected value"
        elif expected is not None and check.status == OK:
            check.status, check.message = MISMATCH, "not in the expected call"
        out.append(check)
    for name in (schema or {}).get("required") or []:
        if name not in arguments and name not in renamed.values():
            exp = expected_args.get(name, None)
            out.append(ArgumentCheck(name=name, value="", status=MISSING, message="required but missing",
                                     expected=_dump(_acceptable(exp, properties.get(name) or {})[0])
                                     if name in expected_args else ""))
    for name, exp in expected_args.items():
        if name not in arguments and name not in renamed.values() and all(a.name != name for a in out):
            acceptable = _acceptable(exp, properties.get(name) or {})
            if acceptable != [""]:
                out.append(ArgumentCheck(name=name, value="", status=MISSING, message="expected but missing",
                                         expected=_dump(acceptable[0])))
    return out


def agreement(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    """How far two reviewers' answers agree: on behaviour, on each call's tool, on each argument.

    Each answer is ``{"behavior", "calls": [{name, arguments}], "required_fields"?}``.
    """
    calls_a = list(first.get("calls") or [])
    calls_b = list(second.get("calls") or [])
    per_call: list[dict[str, Any]] = []
    agreed = total = 0
    for index in range(max(len(calls_a), len(calls_b))):
        a = calls_a[index] if index < len(calls_a) else {}
        b = calls_b[index] if index < len(calls_b) else {}
        args_a = a.get("arguments") or {}
        args_b = b.get("arguments") or {}
        per_arg = {}
        for name in sorted(set(args_a) | set(args_b)):
            same = name in args_a and name in args_b and args_a[name] == args_b[name]
            per_arg[name] = {"agree": same, "first": args_a.get(name), "second": args_b.get(name)}
            agreed += int(same)
            total += 1
        per_call.append({"tool": a.get("name") == b.get("name"), "first": a.get("name"), "second": b.get("name"),
                         "arguments": per_arg})
    fields_a = sorted(first.get("required_fields") or [])
    fields_b = sorted(second.get("required_fields") or [])
    behavior = first.get("behavior") == second.get("behavior")
    tool = all(c["tool"] for c in per_call)
    full = behavior and tool and agreed == total and fields_a == fields_b
    return {
        "behavior": behavior,
        "tool": tool,
        "calls": per_call,
        "required_fields": fields_a == fields_b,
        "arguments_agreed": agreed,
        "arguments_total": total,
        "full": full,
    }


# --- suggested fixes -------------------------------------------------------------------------

CENTS_HINT = re.compile(r"cents?\b", re.IGNORECASE)
DOLLAR_TEXT = re.compile(r"^\s*\$?\s*(\d+(?:\.\d+)?)\s*$")


@dataclass
class SuggestedFix:
    """Calls with mechanical mistakes undone, confident enough to accept without editing."""

    calls: list[dict[str, Any]]  # [{name, arguments}]
    changes: list[str]  # what was changed, one line each ("amount_cents: 49.99 → 4999 …")
    mistakes: list[str]  # mistake tag slugs (review.correction.MISTAKE_TAGS)

    @property
    def explanation(self) -> str:
        return "Suggested fix accepted: " + "; ".join(self.changes) + "."


def _wants_cents(name: str, schema: Mapping[str, Any]) -> bool:
    return schema_type(schema) == "integer" and bool(
        "cents" in name.lower() or CENTS_HINT.search(str(schema.get("description") or "")))


def _dollars_to_cents(value: Any) -> int | None:
    """49.99 or "$49.99" → 4999; None unless it is plainly an amount in dollars.

    A whole number is left alone: 50 may well mean 50 cents, so only a fractional amount (or a
    string with a dollar sign) is taken as dollars.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        text, has_sign = repr(value), False
    elif isinstance(value, str):
        match = DOLLAR_TEXT.match(value)
        if not match:
            return None
        text, has_sign = match.group(1), "$" in value
    else:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
    if amount == amount.to_integral_value() and not has_sign:
        return None
    cents = amount * 100
    if cents != cents.to_integral_value() or cents < 0:
        return None
    return int(cents)


def _matches_expected(calls: list[dict[str, Any]], expected_calls: list[dict[str, Any]],
                      schemas: Mapping[str, Mapping[str, Any]]) -> bool:
    if len(calls) != len(expected_calls):
        return False
    for call, expected in zip(calls, expected_calls, strict=True):
        if call["name"] != expected.get("name"):
            return False
        properties = (schemas.get(call["name"]) or {}).get("properties") or {}
        wanted = as_dict(expected.get("arguments"))
        for name in set(wanted) | set(call["arguments"]):
            acceptable = _acceptable(wanted.get(name, ""), properties.get(name) or {})
            if name in call["arguments"]:
                if call["arguments"][name] not in acceptable:
                    return False
            elif "" not in acceptable:
                return False
    return True


def suggest_fix(
    calls: list[dict[str, Any]],
    schemas: Mapping[str, Mapping[str, Any]],
    *,
    renames: Mapping[str, Mapping[str, str]] | None = None,
    expected_calls: list[dict[str, Any]] | None = None,
) -> SuggestedFix | None:
    """The model's calls with known mechanical mistakes undone, or None when not confident.

    Two mistakes are fixed: an amount in dollars sent to an integer parameter in cents (a
    ``*_cents`` name or "cents" in its description) becomes cents, and a parameter that the
    catalog recorded as renamed (``renames``: {tool: {old name: new name}}) gets its new name.
    Confident means every call names a known tool, at least one fix applied, nothing else is
    wrong (the fixed calls validate against their schemas) and, where the expected calls are
    known, the fixed calls are among the acceptable answers.
    """
    if not calls or any("arguments_raw" in call for call in calls):
        return None  # unreadable arguments are not a mechanical mistake
    fixed: list[dict[str, Any]] = []
    changes: list[str] = []
    mistakes: list[str] = []
    for call in calls:
        name = str(call.get("name") or "")
        schema = schemas.get(name)
        if schema is None:
            return None
        properties = schema.get("properties") or {}
        # Renames the catalog recorded first; then a near name of a left-out parameter.
        recorded = (renames or {}).get(name) or {}
        tool_renames = {**infer_renames(as_dict(call.get("arguments")), schema), **recorded}
        arguments: dict[str, Any] = {}
        for key, value in as_dict(call.get("arguments")).items():
            new_key = tool_renames.get(key, key) if key not in properties else key
            if new_key != key:
                if new_key in arguments or new_key in as_dict(call.get("arguments")):
                    return None  # both names sent: which value is meant is a human's call
                changes.append(f"{name}: '{key}' is now called '{new_key}'" if key in recorded
                               else f"{name}: rename '{key}' to '{new_key}' (the parameter's name)")
                mistakes.append("wrong_parameter_name")
            if _wants_cents(new_key, properties.get(new_key) or {}):
                cents = _dollars_to_cents(value)
                if cents is not None:
                    changes.append(f"{name}.{new_key}: {_dump(value)} dollars → {cents} cents")
                    mistakes.append("dollars_for_cents")
                    value = cents
            arguments[new_key] = value
        if validate_arguments(schema, arguments) or any(k not in properties for k in arguments):
            return None  # still invalid, or a parameter the tool does not have: not mechanical
        fixed.append({"name": name, "arguments": arguments})
    if not changes:
        return None
    if expected_calls and not _matches_expected(fixed, expected_calls, schemas):
        return None
    return SuggestedFix(calls=fixed, changes=changes, mistakes=sorted(set(mistakes)))


def chain_renames(steps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """Renames of successive schema versions (oldest first) folded into {any old name: newest name}."""
    out: dict[str, str] = {}
    for step in steps:
        for old, new in step.items():
            for earlier, current in list(out.items()):
                if current == old:
                    out[earlier] = new
            out.setdefault(old, new)
    return {old: new for old, new in out.items() if old != new}
