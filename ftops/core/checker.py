"""AST checker with the semantics of the Berkeley Function Calling Leaderboard (pure Python).

A model's answer is a list of calls in BFCL's shape, ``[{"function_name": {"arg": value}}]``;
the ground truth lists the expected calls with every parameter mapped to its acceptable
values (``""`` among them: the parameter may be left out). The rules follow BFCL's AST
checker for its single-turn categories:

- the function name must match; ``.`` and ``_`` are interchangeable in names because
  several providers (OpenAI among them) reject dots and BFCL rewrites them for those models;
- every parameter the schema requires is present; no parameter outside both the schema and
  the ground truth; every ground-truth parameter without ``""`` is present;
- types are checked strictly (``True`` is no integer) and the only coercion is int to float
  at the top level of a parameter; arrays check their items' type one level deep; a value of
  the ground truth's own type passes the type check when that type differs from the schema's
  (BFCL calls this a variable) and is then compared exactly;
- strings are compared after BFCL's normalisation (lowercase, without spaces and ``,./-_*^``,
  single quotes as double quotes), also inside lists and dicts; lists keep their order;
- parallel categories match calls one-to-one in any order, irrelevance passes only with no
  call, relevance with any call.

Two places go beyond BFCL on purpose: parallel matching finds a perfect matching when one
exists (BFCL's greedy pass can miss it when one output fits two expected calls), and nested
dict values may themselves follow the possible-answer model (BFCL only compares them as
plain values; a plain equal value still passes).

Java and JavaScript entries carry their own type names; string literals in those languages
(``"true"``, ``"42L"``, ``"[1, 2]"``) are parsed before the type check so that native JSON
values and literal strings both score.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PYTHON = "python"
JAVA = "java"
JAVASCRIPT = "javascript"

SIMPLE = "simple"
MULTIPLE = "multiple"
PARALLEL = "parallel"
IRRELEVANCE = "irrelevance"
RELEVANCE = "relevance"

_NORMALISE = re.compile(r"[ ,./\-_*^]")

# Every spelling of a parameter type in BFCL files (Python, Java, JavaScript) and in JSON
# Schema, mapped to BFCL's Python type names.
TYPE_NAMES: dict[str, str] = {
    "string": "string", "str": "string", "String": "string", "char": "string", "character": "string",
    "integer": "integer", "int": "integer", "long": "integer", "short": "integer", "byte": "integer",
    "Integer": "integer", "Long": "integer", "Bigint": "integer", "bigint": "integer",
    "float": "float", "double": "float", "number": "float", "Float": "float", "Double": "float",
    "Number": "float",
    "boolean": "boolean", "bool": "boolean", "Boolean": "boolean",
    "array": "array", "Array": "array", "ArrayList": "array", "List": "array", "list": "array",
    "tuple": "tuple",
    "dict": "dict", "object": "dict", "HashMap": "dict", "Map": "dict", "map": "dict",
    "any": "any",
}
PY_TYPES: dict[str, type] = {
    "string": str, "integer": int, "float": float, "boolean": bool,
    "array": list, "tuple": list, "dict": dict, "any": str,
}


@dataclass(frozen=True)
class Verdict:
    """One checked answer. ``error_type`` names the first rule broken, in BFCL's vocabulary."""

    valid: bool
    error_type: str = ""
    error: str = ""
    details: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "error_type": self.error_type or None, "error": self.error}


PASS = Verdict(True)


def fail(error_type: str, error: str, details: Iterable[str] = ()) -> Verdict:
    return Verdict(False, error_type, error, tuple(details))


# --------------------------------------------------------------------------- categories


def category_kind(category: str) -> str:
    """simple | multiple | parallel | irrelevance | relevance, from a BFCL category name."""
    name = category.lower()
    if "irrelevance" in name:
        return IRRELEVANCE
    if "relevance" in name:
        return RELEVANCE
    if "parallel" in name:
        return PARALLEL
    if "multiple" in name:
        return MULTIPLE
    return SIMPLE


def category_language(category: str) -> str:
    name = category.lower()
    if "javascript" in name:
        return JAVASCRIPT
    if "java" in name:
        return JAVA
    return PYTHON


# --------------------------------------------------------------------------- output shape


def is_call_list(output: Any) -> bool:
    """BFCL's output format: a list of one-key dicts ``{name: {args}}``."""
    if not isinstance(output, list):
        return False
    return all(
        isinstance(item, dict) and len(item) == 1 and isinstance(next(iter(item.values())), dict) for item in output
    )


def makes_no_call(output: Any) -> bool:
    """True when the output holds no call (what irrelevance needs).

    BFCL's relevance check is looser than its call-format check: any non-empty list of dicts
    counts as an attempted call, even ``[{"f": "x"}]``; only ``[]``, ``[{}]`` and outputs that
    are not a list of dicts count as no call.
    """
    if not isinstance(output, list) or not all(isinstance(item, dict) for item in output) or not output:
        return True
    return len(output) == 1 and len(output[0]) == 0


def to_bfcl_calls(calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``[{"name", "arguments"}]`` -> ``[{name: arguments}]``."""
    out: list[dict[str, Any]] = []
    for call in calls:
        arguments = call.get("arguments")
        out.append({str(call.get("name", "")): arguments if isinstance(arguments, dict) else {}})
    return out


def from_bfcl_calls(output: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``[{name: arguments}]`` -> ``[{"name", "arguments"}]``."""
    return [{"name": name, "arguments": args} for item in output for name, args in item.items()]


def canonical_output(
    ground_truth: Sequence[Mapping[str, Any]], functions: Sequence[Mapping[str, Any]] = ()
) -> list[dict[str, Any]]:
    """An answer built from the ground truth: each parameter's first acceptable value.

    ``""`` stands for leaving a parameter out, so it is skipped while another value is
    listed; a parameter whose only value is ``""`` is left out, unless the function requires
    it (then the empty string is sent, the one output that can pass). With ``functions``
    given, an optional parameter the function does not define is left out, as a model would.
    """
    out: list[dict[str, Any]] = []
    for item in ground_truth:
        for name, params in item.items():
            schema = find_function(functions, name) if functions else None
            parameters = (schema or {}).get("parameters") or {}
            known = parameters.get("properties") if schema is not None else None
            required = set(parameters.get("required") or [])
            out.append({name: canonical_args(params, known=known, required=required)})
    return out


def canonical_args(
    params: Mapping[str, Any], *, known: Mapping[str, Any] | None = None, required: set[str] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, values in params.items():
        if known is not None and name not in known and allows_omission(values):
            continue
        chosen = _first_acceptable(values)
        if chosen is not _OMIT:
            out[name] = chosen
        elif required and name in required and allows_omission(values):
            out[name] = ""
    return out


_OMIT = object()


def _first_acceptable(values: Any) -> Any:
    if not isinstance(values, list):
        return values
    for value in values:
        if value == "":
            continue
        if _is_answer_dict(value):
            return canonical_args(value)
        if isinstance(value, list) and value and all(_is_answer_dict(v) for v in value):
            return [canonical_args(v) for v in value]
        return value
    return _OMIT


def _is_answer_dict(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(v, list) for v in value.values())


# --------------------------------------------------------------------------- strings


def normalise_string(text: str) -> str:
    """BFCL's string normalisation: "April 1, 2024" and "april 1 2024" compare equal."""
    return _NORMALISE.sub("", text).lower().replace("'", '"')


def normalise_name(name: str) -> str:
    return name.replace(".", "_")


# --------------------------------------------------------------------------- entry points


def check_entry(
    category: str,
    functions: Sequence[Mapping[str, Any]],
    output: Any,
    ground_truth: Sequence[Mapping[str, Any]] | None,
    *,
    language: str | None = None,
) -> Verdict:
    """Score one BFCL entry: ``output`` in BFCL's call-list shape (anything else = no call)."""
    kind = category_kind(category)
    language = language or category_language(category)
    if kind == IRRELEVANCE:
        if makes_no_call(output):
            return PASS
        return fail("irrelevance_error:decoder_success", "a call was made where no function is relevant")
    if kind == RELEVANCE:
        if makes_no_call(output):
            return fail("relevance_error:decoder_failed", "no call was made where a function is relevant")
        return PASS
    if not isinstance(output, list):
        return fail("ast_decoder:decoder_failed", "the output holds no function call")
    if not is_call_list(output):
        return fail("ast_decoder:decoder_wrong_output_format",
                    "the output is not a list of {function_name: {argument: value}} objects")
    expected = list(ground_truth or [])
    if kind == PARALLEL:
        return check_parallel(functions, output, expected, language=language)
    if kind == MULTIPLE:
        if len(output) != len(expected):
            return fail("multiple_function_checker:wrong_count",
                        f"expected {len(expected)} call(s), got {len(output)}")
    elif len(output) != 1 or len(expected) != 1:
        return fail("simple_function_checker:wrong_count", f"expected 1 call, got {len(output)}")
    if not expected:
        return PASS
    name = _only_key(expected[0])
    schema = find_function(functions, name)
    if schema is None and kind == SIMPLE and functions:
        schema = functions[0]
    return check_call(schema, output[0], expected[0], language=language)


def check_parallel(
    functions: Sequence[Mapping[str, Any]],
    output: Sequence[Mapping[str, Any]],
    expected: Sequence[Mapping[str, Any]],
    *,
    language: str = PYTHON,
) -> Verdict:
    """Expected calls matched one-to-one with output calls, in any order."""
    if len(output) != len(expected):
        return fail("parallel_function_checker_no_order:wrong_count",
                    f"expected {len(expected)} call(s), got {len(output)}")
    verdicts = [
        [check_call(find_function(functions, _only_key(want)), got, want, language=language) for got in output]
        for want in expected
    ]
    fits = [[j for j, v in enumerate(row) if v.valid] for row in verdicts]
    matched = perfect_matching(fits, len(output))
    if matched is not None:
        return PASS
    # Report the first expected call that no output can take, with why each candidate failed.
    unmatched = next((i for i, row in enumerate(fits) if not row), None)
    if unmatched is None:
        unmatched = _first_unassignable(fits, len(output))
    reasons = [f"output {j}: {v.error_type}: {v.error}" for j, v in enumerate(verdicts[unmatched])]
    return fail(
        "parallel_function_checker_no_order:cannot_find_match",
        f"no output call matches expected call {unmatched} ({_only_key(expected[unmatched])})",
        reasons,
    )


def perfect_matching(fits: list[list[int]], n_outputs: int) -> list[int] | None:
    """Kuhn's augmenting paths; the lists are tiny (a handful of calls)."""
    owner = [-1] * n_outputs

    def place(i: int, seen: set[int]) -> bool:
        for j in fits[i]:
            if j in seen:
                continue
            seen.add(j)
            if owner[j] == -1 or place(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in range(len(fits)):
        if not place(i, set()):
            return None
    return owner


def _first_unassignable(fits: list[list[int]], n_outputs: int) -> int:
    for k in range(1, len(fits) + 1):
        if perfect_matching(fits[:k], n_outputs) is None:
            return k - 1
    return 0


def find_function(functions: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any] | None:
    for function in functions:
        if function.get("name") == name:
            return function
    wanted = normalise_name(name)
    for function in functions:
        if normalise_name(str(function.get("name", ""))) == wanted:
            return function
    return None


def _only_key(item: Mapping[str, Any]) -> str:
    return str(next(iter(item)))


# --------------------------------------------------------------------------- one call


def check_call(
    schema: Mapping[str, Any] | None,
    got: Mapping[str, Any],
    want: Mapping[str, Any],
    *,
    language: str = PYTHON,
) -> Verdict:
    """One output call ``{name: args}`` against one expected call ``{name: {param: [values]}}``.

    ``schema`` is the function's description (BFCL or OpenAI ``function`` shape); without
    one only the ground truth constrains the parameters.
    """
    expected_name = _only_key(want)
    acceptable: Mapping[str, Any] = want[expected_name] or {}
    got_name = _only_key(got) if got else ""
    if normalise_name(got_name) != normalise_name(expected_name):
        return fail("simple_function_checker:wrong_func_name",
                    f"expected function {expected_name!r}, got {got_name!r}")
    args = got[got_name]
    if not isinstance(args, dict):
        return fail("ast_decoder:decoder_wrong_output_format", f"arguments of {got_name!r} are not an object")
    parameters = (schema or {}).get("parameters") or {}
    properties: Mapping[str, Any] | None = parameters.get("properties") if schema is not None else None
    for param in parameters.get("required") or []:
        if param not in args:
            return fail("simple_function_checker:missing_required", f"missing required parameter {param!r}")
    for param, value in args.items():
        if (properties is not None and param not in properties) or param not in acceptable:
            return fail("simple_function_checker:unexpected_param", f"unexpected parameter {param!r}")
        spec = properties.get(param) if properties is not None else None
        verdict = check_value(param, value, spec if isinstance(spec, Mapping) else {}, acceptable[param],
                              language=language)
        if not verdict.valid:
            return verdict
    for param, values in acceptable.items():
        if param not in args and not allows_omission(values):
            return fail("simple_function_checker:missing_optional",
                        f"parameter {param!r} is not provided and the answer does not allow leaving it out")
    return PASS


def allows_omission(values: Any) -> bool:
    return isinstance(values, list) and "" in values


def type_name(spec: Mapping[str, Any]) -> str | None:
    """BFCL type name of a parameter spec, or None when it has no single known type."""
    raw = spec.get("type")
    if isinstance(raw, list):
        # JSON Schema unions such as ["string", "null"]: take the one non-null member.
        members = [t for t in raw if t != "null"]
        raw = members[0] if len(members) == 1 else None
    return TYPE_NAMES.get(raw) if isinstance(raw, str) else None


def check_value(param: str, value: Any, spec: Mapping[str, Any], acceptable: Any, *,
                language: str = PYTHON) -> Verdict:
    """Type and value of one argument against its acceptable values."""
    if not isinstance(acceptable, list):
        acceptable = [acceptable]
    kind = type_name(spec)
    if language != PYTHON and isinstance(value, str) and kind not in (None, "string", "any"):
        value = parse_literal(value, kind)
    if isinstance(value, tuple):
        value = list(value)
    if kind == "float" and type(value) is int:
        value = float(value)
    expected_type = PY_TYPES.get(kind) if kind else None
    item_type = None
    # Item types are checked for Python only: BFCL trusts its Java/JS literal converters there.
    if kind in ("array", "tuple") and language == PYTHON:
        items = spec.get("items")
        item_kind = type_name(items) if isinstance(items, Mapping) else None
        item_type = PY_TYPES.get(item_kind) if item_kind else None
    reference = _reference_type(acceptable)
    is_variable = False
    if expected_type is not None:
        if type(value) is expected_type:
            if item_type is not None and isinstance(value, list) and not _items_typed(value, acceptable, item_type):
                return fail("type_error:nested",
                            f"items of {param!r} should be {item_type.__name__}; got {value!r}")
            is_variable = reference is not None and reference is not expected_type
        elif reference is not None and type(value) is reference:
            is_variable = True
        else:
            return fail("type_error:simple",
                        f"parameter {param!r} should be {spec.get('type')}, got {type(value).__name__} ({value!r})")
    if is_variable:
        if value in acceptable:
            return PASS
        return fail("value_error:others", f"invalid value for {param!r}: {value!r}; expected one of {acceptable!r}")
    return _check_plain(param, value, acceptable, item_type)


def _reference_type(acceptable: list[Any]) -> type | None:
    for value in acceptable:
        if value != "":
            return type(value)
    return None


def _items_typed(value: list[Any], acceptable: list[Any], item_type: type) -> bool:
    # BFCL: each item must have the schema's item type or the type the answer's items have;
    # one acceptable alternative is enough (a non-list alternative such as "" always is).
    for alternative in acceptable:
        if not isinstance(alternative, list):
            return True
        reference = _reference_type(alternative)
        if all(type(item) is item_type or (reference is not None and type(item) is reference) for item in value):
            return True
    return False


def _check_plain(param: str, value: Any, acceptable: list[Any], item_type: type | None) -> Verdict:
    if isinstance(value, dict):
        return _check_dict(param, value, acceptable)
    if isinstance(value, list) and (item_type is dict or (value and all(isinstance(v, dict) for v in value))):
        return _check_dict_list(param, value, acceptable)
    if isinstance(value, str):
        if normalise_string(value) in {normalise_string(v) for v in acceptable if isinstance(v, str)}:
            return PASS
        return fail("value_error:string", f"invalid value for {param!r}: {value!r}; expected one of {acceptable!r}")
    if isinstance(value, list):
        wanted = _normalised_list(value)
        # BFCL iterates each alternative as a list, so the "may be omitted" marker "" also
        # accepts an explicit empty list.
        if any((isinstance(a, list) and _normalised_list(a) == wanted) or (a == "" and not value)
               for a in acceptable):
            return PASS
        return fail("value_error:list/tuple",
                    f"invalid value for {param!r}: {value!r}; expected one of {acceptable!r}")
    if value in acceptable and any(_same_scalar(value, a) for a in acceptable):
        return PASS
    return fail("value_error:others", f"invalid value for {param!r}: {value!r}; expected one of {acceptable!r}")


def _same_scalar(value: Any, candidate: Any) -> bool:
    # ``True == 1`` in Python; without a schema type to rule it out, keep bools and numbers apart.
    if isinstance(value, bool) or isinstance(candidate, bool):
        return type(value) is type(candidate) and value == candidate
    return bool(value == candidate)


def _normalised_list(values: list[Any]) -> list[Any]:
    return [normalise_string(v) if isinstance(v, str) else v for v in values]


def _check_dict(param: str, value: dict[str, Any], acceptable: list[Any]) -> Verdict:
    last = fail("dict_checker:unclear", f"no acceptable value given for {param!r}")
    for alternative in acceptable:
        if alternative == "":
            continue
        if not isinstance(alternative, dict):
            last = fail("value_error:dict_value", f"invalid value for {param!r}: {value!r}")
            continue
        verdict = _dict_matches(param, value, alternative)
        if verdict.valid:
            return verdict
        last = verdict
    return last


def _dict_matches(param: str, value: Mapping[str, Any], alternative: Mapping[str, Any]) -> Verdict:
    for key, item in value.items():
        if key not in alternative:
            return fail("value_error:dict_key", f"unexpected key {key!r} in {param!r}")
        allowed = alternative[key] if isinstance(alternative[key], list) else [alternative[key]]
        if not _value_allowed(item, allowed):
            return fail("value_error:dict_value", f"invalid value for {param!r}[{key!r}]: {item!r}")
    for key, allowed in alternative.items():
        if key not in value and not allows_omission(allowed):
            return fail("value_error:dict_key", f"missing key {key!r} in {param!r}")
    return PASS


def _value_allowed(item: Any, allowed: list[Any]) -> bool:
    """A value inside a dict: BFCL's normalised equality, or a nested possible answer."""
    probe = normalise_string(item) if isinstance(item, str) else item
    for candidate in allowed:
        if candidate == "" and item != "":
            continue
        if isinstance(candidate, str):
            if isinstance(item, str) and normalise_string(candidate) == probe:
                return True
            continue
        if isinstance(item, dict) and _is_answer_dict(candidate):
            if _dict_matches("", item, candidate).valid:
                return True
            continue
        if isinstance(item, list) and isinstance(candidate, list):
            if _normalised_list(item) == _normalised_list(candidate):
                return True
            continue
        if _same_scalar(item, candidate) or (isinstance(item, dict) and item == candidate):
            return True
    return False


def _check_dict_list(param: str, value: list[Any], acceptable: list[Any]) -> Verdict:
    last = fail("list_dict_checker:unclear", f"no acceptable value given for {param!r}")
    for alternative in acceptable:
        if not isinstance(alternative, list):
            continue
        if len(alternative) != len(value):
            last = fail("value_error:list_dict_count",
                        f"{param!r} should hold {len(alternative)} item(s), got {len(value)}")
            continue
        for got, want in zip(value, alternative, strict=True):
            if not isinstance(got, dict):
                last = fail("value_error:list_dict_count", f"{param!r} should hold objects")
                break
            verdict = _check_dict(param, got, [want])
            if not verdict.valid:
                last = verdict
                break
        else:
            return PASS
    return last


# --------------------------------------------------------------------------- Java / JS literals

_JAVA_NUMBER_SUFFIX = re.compile(r"^([+-]?[0-9.eE+-]+)[lLfFdD]$")
_JAVA_COLLECTION = re.compile(
    r"^(?:new\s+[\w<>\[\], ]+?\s*\{(?P<brace>.*)\}|(?:Arrays\.asList|List\.of|Set\.of)\((?P<paren>.*)\))$", re.S
)


def parse_literal(text: str, kind: str | None) -> Any:
    """A Java/JavaScript literal string as a Python value of ``kind``; the text if it is none."""
    raw = text.strip()
    if kind == "boolean" and raw in ("true", "false"):
        return raw == "true"
    if kind in ("integer", "float"):
        match = _JAVA_NUMBER_SUFFIX.match(raw)
        number = match.group(1) if match else raw
        try:
            return int(number) if kind == "integer" else float(number)
        except ValueError:
            return text
    if kind in ("array", "tuple", "dict"):
        try:
            return json.loads(raw)
        except ValueError:
            pass
        if kind != "dict":
            match = _JAVA_COLLECTION.match(raw)
            inner = (match.group("brace") if match and match.group("brace") is not None
                     else match.group("paren") if match else None)
            if inner is not None:
                try:
                    parsed = ast.literal_eval(f"[{inner}]")
                except (ValueError, SyntaxError):
                    return text
                return list(parsed)
    return text
