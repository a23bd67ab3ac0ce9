"""Showing stored JSON as JSON on every page: pretty-printed, and expected vs got side by side.

Loaded by pages of several apps (``{% load json_view %}``). It imports no app: a template
library is shared by name, and the values it formats are plain JSON already.
"""

from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()

_MISSING = object()


@register.filter
def as_json(value: Any) -> str:
    """Pretty JSON (``true``, ``null``, double quotes), never a Python repr. Strings that hold
    JSON are parsed and re-printed; other strings are shown as they are."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
        if isinstance(value, str):
            return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@register.filter
def as_json_inline(value: Any) -> str:
    """One-line JSON for a table cell (``[33650]``, ``"pay_1"``, ``true``)."""
    return json.dumps(value, ensure_ascii=False, default=str)


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _flatten(inner, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        for n, inner in enumerate(value):
            _flatten(inner, f"{prefix}[{n}]", out)
    else:
        out[prefix or "(value)"] = value


def _acceptable(path: str, expected: Any, got: Any) -> bool:
    """Whether ``got`` answers ``expected`` at ``path``. An argument's expected value is the
    list of acceptable values (BFCL's possible answers; ``""`` among them: may be left out)."""
    if expected is _MISSING or got is _MISSING:
        optional = isinstance(expected, list) and "" in expected and ".arguments." in f".{path}"
        return got is _MISSING and optional
    if expected == got:
        return True
    if ".arguments." in f".{path}" and isinstance(expected, list) and not isinstance(got, list):
        return got in expected
    return False


def json_compare_rows(expected: Any, got: Any) -> list[dict[str, Any]]:
    """One row per leaf path of either side, in expected's order, then got's extra paths."""
    left: dict[str, Any] = {}
    right: dict[str, Any] = {}
    _flatten(expected, "", left)
    _flatten(got, "", right)
    paths = list(left) + [p for p in right if p not in left]
    rows = []
    for path in paths:
        e, g = left.get(path, _MISSING), right.get(path, _MISSING)
        rows.append({
            "path": path,
            "expected": "" if e is _MISSING else as_json_inline(e),
            "got": "" if g is _MISSING else as_json_inline(g),
            "has_expected": e is not _MISSING,
            "has_got": g is not _MISSING,
            "differs": not _acceptable(path, e, g),
        })
    return rows


def _has_acceptable_lists(value: Any) -> bool:
    if isinstance(value, dict):
        args = value.get("arguments")
        if isinstance(args, dict) and any(isinstance(v, list) for v in args.values()):
            return True
        return any(_has_acceptable_lists(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_acceptable_lists(v) for v in value)
    return False


@register.inclusion_tag("home/_json_compare.html")
def json_compare(expected: Any, got: Any, left: str = "Expected", right: str = "Got") -> dict[str, Any]:
    """Expected and got side by side as JSON, and a table of the keys with the differing ones
    marked. Explains the list-of-acceptable-values format when the expected side uses it."""
    rows = json_compare_rows(expected, got)
    return {
        "expected_json": as_json(expected), "got_json": as_json(got), "rows": rows,
        "differing": sum(1 for r in rows if r["differs"]), "left": left, "right": right,
        "acceptable_lists": _has_acceptable_lists(expected),
    }


@register.inclusion_tag("home/_acceptable_values.html")
def acceptable_values_help() -> dict[str, Any]:
    return {}


@register.filter
def lookup(mapping: Any, key: Any) -> Any:
    """``mapping[key]`` for a key held in a variable (``None`` when absent or not a mapping)."""
    return mapping.get(key) if isinstance(mapping, dict) else None
