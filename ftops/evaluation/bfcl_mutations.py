"""Mutated answers to BFCL entries: the cross-check set for the checker (no Django imports).

Each entry's ground truth gives a correct answer (``canonical_output``); every mutation
changes it in one way a model gets things wrong (or right in another spelling): types
changed, strings where numbers belong, optional parameters dropped or added, other acceptable
values, enum and string case, list items reordered or retyped, dict keys dropped or added,
parallel calls reordered, dropped or duplicated, extra calls, a wrong function, the other
spelling of a dotted name, Java/JavaScript values sent natively, and for the relevance
categories a mix of call-like and call-free outputs. Deterministic: no randomness.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from ftops.core.checker import PYTHON, canonical_output, category_kind, category_language, to_literal

Output = Any


def _calls(output: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, args) for call in output for name, args in call.items()]


def _retyped(value: Any) -> list[Any]:
    """Values of other types standing for ``value``."""
    if isinstance(value, bool):
        return [int(value), str(value).lower(), [value]]
    if isinstance(value, int):
        return [str(value), float(value), True, [value]]
    if isinstance(value, float):
        return [str(value), int(value), [value]] if value == int(value) else [str(value), round(value), [value]]
    if isinstance(value, str):
        out: list[Any] = [[value], {"value": value}]
        try:
            out.append(int(value))
        except ValueError:
            try:
                out.append(float(value))
            except ValueError:
                out.append(0)
        return out
    if isinstance(value, list):
        return [", ".join(map(str, value)), value[0] if value else "", {"items": value}]
    if isinstance(value, dict):
        return [str(value), list(value.values())]
    return ["x"]


def _changed(value: Any) -> list[Any]:
    """Values of the same type that differ (or differ only in case and punctuation)."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, -value]
    if isinstance(value, float):
        return [value + 0.5, value * 2 + 1]
    if isinstance(value, str):
        return [value.upper(), value.swapcase(), value + " extra", value.replace(" ", "-"), ""]
    if isinstance(value, list):
        out: list[Any] = [list(reversed(value)), value[:-1], [*value, value[-1]] if value else ["x"]]
        if value and all(isinstance(v, str) for v in value):
            out.append([v.upper() for v in value])
        if value and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            out.append([str(v) for v in value])
        if value and all(isinstance(v, dict) for v in value):
            out.append([{**value[0], "zz_extra": 1}, *value[1:]])
        return out
    if isinstance(value, dict):
        out = [{**value, "zz_extra": 1}]
        if value:
            first = next(iter(value))
            out.append({k: v for k, v in value.items() if k != first})
            out.append({**value, first: _changed(value[first])[0] if _changed(value[first]) else None})
        return out
    return []


def _set_arg(output: list[dict[str, Any]], index: int, param: str, value: Any) -> list[dict[str, Any]]:
    mutated = copy.deepcopy(output)
    args = next(iter(mutated[index].values()))
    args[param] = value
    return mutated


def _drop_arg(output: list[dict[str, Any]], index: int, param: str) -> list[dict[str, Any]]:
    mutated = copy.deepcopy(output)
    args = next(iter(mutated[index].values()))
    del args[param]
    return mutated


def _function(functions: list[dict[str, Any]], name: str) -> Mapping[str, Any]:
    for function in functions:
        if function.get("name") == name or str(function.get("name", "")).replace(".", "_") == name:
            return function
    return {}


def mutations(category: str, functions: list[dict[str, Any]],
              ground_truth: list[dict[str, Any]] | None) -> Iterator[tuple[str, Output]]:
    """``(label, output)`` pairs for one entry; the correct answer first."""
    kind = category_kind(category)
    language = category_language(category)
    names = [str(f.get("name", "")) for f in functions]
    if ground_truth is None:
        yield from _no_call_mix(names)
        return
    base = canonical_output(ground_truth, functions, language=language)
    yield "correct", base
    yield "correct_native" if language != PYTHON else "correct_copy", canonical_output(ground_truth, functions) \
        if language != PYTHON else copy.deepcopy(base)
    yield "text", "I would call a function here."
    yield "empty", []
    yield "empty_call", [{}]
    yield "two_keys", [{n: {} for n in names[:2]}] if len(names) > 1 else [{"a": {}, "b": {}}]
    yield "args_not_object", [{next(iter(base[0])): "x=1"}] if base else [{"f": "x"}]
    truth_by_call = [next(iter(call.values())) for call in ground_truth]
    for index, (name, args) in enumerate(_calls(base)):
        function = _function(functions, name)
        parameters = function.get("parameters") or {}
        properties: Mapping[str, Any] = parameters.get("properties") or {}
        required = set(parameters.get("required") or [])
        truth = truth_by_call[index] if index < len(truth_by_call) else {}
        for param, value in args.items():
            spec = properties.get(param) or {}
            native = value
            if language != PYTHON:
                native = canonical_output([{name: {param: truth.get(param, [value])}}])[0][name].get(param, value)
                yield f"native:{param}", _set_arg(base, index, param, native)
            for number, other in enumerate(_retyped(native)):
                shown = to_literal(other, spec, language) if language != PYTHON and number == 0 else other
                yield f"retype{number}:{param}", _set_arg(base, index, param, shown)
            for number, other in enumerate(_changed(native)):
                shown = to_literal(other, spec, language) if language != PYTHON else other
                yield f"change{number}:{param}", _set_arg(base, index, param, shown)
            alternatives = truth.get(param)
            if isinstance(alternatives, list):
                for number, alternative in enumerate(alternatives[1:4], start=1):
                    if alternative != "":
                        shown = to_literal(alternative, spec, language) if language != PYTHON else alternative
                        yield f"alternative{number}:{param}", _set_arg(base, index, param, shown)
            enum = spec.get("enum") if isinstance(spec, Mapping) else None
            if isinstance(enum, list) and isinstance(value, str):
                for number, member in enumerate(enum[:3]):
                    if isinstance(member, str):
                        yield f"enum{number}:{param}", _set_arg(base, index, param, member.lower())
            yield f"drop:{param}{'(required)' if param in required else ''}", _drop_arg(base, index, param)
        for param, spec in properties.items():
            if param in args:
                continue
            alternatives = truth.get(param)
            candidate = next((a for a in alternatives if a != ""), None) if isinstance(alternatives, list) else None
            if candidate is None and isinstance(spec, Mapping):
                candidate = spec.get("default", {"integer": 1, "float": 1.5, "boolean": True}.get(
                    str(spec.get("type")), "value"))
            if candidate is not None:
                shown = to_literal(candidate, spec, language) if language != PYTHON else candidate
                yield f"add:{param}", _set_arg(base, index, param, shown)
        yield f"add_unknown:{index}", _set_arg(base, index, "zz_not_a_parameter", 1)
        others = [n for n in names if n != name and n.replace(".", "_") != name]
        renamed = copy.deepcopy(base)
        renamed[index] = {(others[0] if others else name + "_v2"): copy.deepcopy(args)}
        yield f"wrong_function:{index}", renamed
        if "." in next(iter(ground_truth[index])):
            dotted = copy.deepcopy(base)
            dotted[index] = {next(iter(ground_truth[index])): copy.deepcopy(args)}
            yield f"dotted_name:{index}", dotted
    yield from _call_list_mutations(kind, base, names)


def _call_list_mutations(kind: str, base: list[dict[str, Any]], names: list[str]) -> Iterator[tuple[str, Output]]:
    if len(base) > 1:
        yield "reversed", list(reversed(base))
        yield "rotated", base[1:] + base[:1]
        yield "dropped_last", base[:-1]
        yield "dropped_first", base[1:]
        yield "duplicate_first", [base[0], base[0], *base[2:]]
        yield "duplicate_first_reordered", [*base[2:], base[0], base[0]]
        swapped = copy.deepcopy(base)
        first_args, second_args = next(iter(swapped[0].values())), next(iter(swapped[1].values()))
        if next(iter(swapped[0])) == next(iter(swapped[1])):
            name = next(iter(swapped[0]))
            swapped[0], swapped[1] = {name: second_args}, {name: first_args}
            yield "swapped_args", swapped
    yield "extra_call_copy", [*base, base[-1]] if base else [{"f": {}}]
    yield "extra_call_other", [*base, {names[-1] if names else "f": {}}]
    yield "extra_empty_call", [*base, {}]


def _no_call_mix(names: list[str]) -> Iterator[tuple[str, Output]]:
    name = names[0] if names else "f"
    yield "text", "Sorry, none of these functions fits."
    yield "none", None
    yield "empty", []
    yield "empty_call", [{}]
    yield "two_empty_calls", [{}, {}]
    yield "call_no_args", [{name: {}}]
    yield "call_with_args", [{name: {"x": 1}}]
    yield "underscored_name", [{name.replace(".", "_"): {}}]
    yield "args_not_object", [{name: "x=1"}]
    yield "two_keys", [{name: {}, "other": {}}]
    yield "call_then_empty", [{name: {}}, {}]
    yield "empty_then_call", [{}, {name: {}}]
    yield "list_of_strings", [name]
    yield "dict_not_list", {name: {}}
    yield "two_calls", [{n: {}} for n in (names[:2] or [name])]
