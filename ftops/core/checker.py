"""AST checker with the semantics of the Berkeley Function Calling Leaderboard (pure Python).

A model's answer is a list of calls in BFCL's shape, ``[{"function_name": {"arg": value}}]``;
the ground truth lists the expected calls with every parameter mapped to its acceptable
values (``""`` among them: the parameter may be left out).

The default is BFCL's own checker (``bfcl-eval`` 2026.3.23, ``ast_checker.py``), rule for
rule, and the cross-check tests hold it to 100% agreement with that package on every
single-turn category and on a generated mutation set:

- the function name must match exactly; a name with dots is expected with ``_`` in their
  place when ``underscore_to_dot`` is set (what BFCL does for OpenAI-style function-calling
  models, which cannot send dots; ``openai_tool`` renames the functions the same way);
- every parameter the schema requires is present; no parameter outside both the schema and
  the ground truth; every ground-truth parameter without ``""`` is present;
- types are checked strictly (``True`` is no integer); the only coercion is int to float at
  the top level of a Python parameter; arrays check their items' type one level deep; a value
  of the ground truth's own type passes when that type differs from the schema's (BFCL calls
  this a variable) and is then compared with plain equality;
- strings are compared after BFCL's normalisation (lowercase, without spaces and ``,./-_*^``,
  single quotes as double quotes), also as list items and dict values; lists keep their order;
- Java and JavaScript arguments are literal strings (``"42L"``, ``"new ArrayList<>(...)"``)
  converted with BFCL's own converters before the type check; a native JSON value fails;
- parallel categories pair calls with BFCL's greedy pass: each expected call, in order, takes
  the first unused output call that fits. ``matching=PERFECT`` pairs them with a perfect
  (bipartite) matching instead, which also passes answers the greedy pass rejects when one
  output fits two expected calls; it is an ftops extension and labelled so wherever used;
- irrelevance passes with no call, relevance with a call; ``[]``, ``[{}]`` and anything not in
  the call-list format count as no call.

Beyond BFCL, where BFCL itself would crash: JSON Schema type names (``object``, ``number``,
unions with ``null``) map to BFCL's, a parameter without a type is not type-checked, and a
call without a function doc is checked against the ground truth alone. These only matter for
ftops' own records.

Speed: a function doc's parameter specs are compiled once (cached by object identity, the
object kept alive with its entry), as are the normalised forms of acceptable strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

PYTHON = "python"
JAVA = "java"
JAVASCRIPT = "javascript"

SIMPLE = "simple"
MULTIPLE = "multiple"
PARALLEL = "parallel"
IRRELEVANCE = "irrelevance"
RELEVANCE = "relevance"

# Parallel matching: BFCL's greedy pass (default) or a perfect matching (ftops extension).
GREEDY = "greedy"
PERFECT = "perfect"
MATCHINGS = (GREEDY, PERFECT)

_NORMALISE = re.compile(r"[ ,./\-_*^]")

# Every spelling of a parameter type in BFCL's Python files and in JSON Schema, mapped to
# BFCL's Python type names.
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
# BFCL's type tables for Java and JavaScript (constants/type_mappings.py).
JAVA_TYPES: dict[str, type] = {
    "byte": int, "short": int, "integer": int, "float": float, "double": float, "long": int,
    "boolean": bool, "char": str, "Array": list, "ArrayList": list, "Set": set, "HashMap": dict,
    "Hashtable": dict, "Queue": list, "Stack": list, "String": str, "any": str,
}
JS_TYPES: dict[str, type] = {
    "String": str, "integer": int, "float": float, "Bigint": int, "Boolean": bool, "dict": dict,
    "array": list, "any": str,
}
_NESTED_CONVERSION = frozenset({"Array", "ArrayList", "array"})


class Verdict(NamedTuple):
    """One checked answer. ``error_type`` names the first rule broken, in BFCL's vocabulary."""

    valid: bool
    error_type: str = ""
    error: str = ""
    details: tuple[str, ...] = ()

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
    """BFCL's output format: a list of one-key dicts ``{name: {args}}`` (``[]`` included)."""
    if type(output) is not list:
        return False
    for item in output:
        if type(item) is not dict or len(item) != 1:
            return False
        for args in item.values():
            if type(args) is not dict:
                return False
    return True


def makes_no_call(output: Any) -> bool:
    """True when the output holds no call (what irrelevance needs): BFCL's ``is_empty_output``.

    ``[]``, ``[{}]`` and anything that is not in the call-list format count as no call.
    """
    if not is_call_list(output):
        return True
    return not output or (len(output) == 1 and not output[0])


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


def bfcl_name(name: str, underscore_to_dot: bool = True) -> str:
    """The name a model must send for function ``name`` (BFCL's ``convert_func_name``)."""
    return name.replace(".", "_") if underscore_to_dot and "." in name else name


# --------------------------------------------------------------------------- canonical answers


def canonical_output(
    ground_truth: Sequence[Mapping[str, Any]],
    functions: Sequence[Mapping[str, Any]] = (),
    *,
    language: str = PYTHON,
    underscore_to_dot: bool = True,
) -> list[dict[str, Any]]:
    """An answer built from the ground truth: each parameter's first acceptable value.

    ``""`` stands for leaving a parameter out, so it is skipped while another value is
    listed; a parameter whose only value is ``""`` is left out, unless the function requires
    it (then the empty string is sent, the one output that can pass). With ``functions``
    given, an optional parameter the function does not define is left out, as a model would;
    names are spelt as a model must send them, and Java/JavaScript values are written as the
    literal strings BFCL expects from those languages.
    """
    out: list[dict[str, Any]] = []
    for item in ground_truth:
        for name, params in item.items():
            schema = find_function(functions, name) if functions else None
            parameters = (schema or {}).get("parameters") or {}
            known = parameters.get("properties") if schema is not None else None
            required = set(parameters.get("required") or [])
            args = canonical_args(params, known=known, required=required)
            if language != PYTHON and known is not None:
                args = {k: to_literal(v, known.get(k) or {}, language) for k, v in args.items()}
            out.append({bfcl_name(name, underscore_to_dot) if functions else name: args})
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
    # Top level: a dict alternative maps keys to acceptable values (BFCL's dict_checker); a
    # list of such dicts likewise (list_dict_checker). Deeper values are compared as they are.
    if not isinstance(values, list):
        return values
    for value in values:
        if value == "":
            continue
        if _is_answer_dict(value):
            return _first_of_each(value)
        if isinstance(value, list) and value and all(_is_answer_dict(v) for v in value):
            return [_first_of_each(v) for v in value]
        return value
    return _OMIT


def _first_of_each(answer: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, values in answer.items():
        chosen = next((v for v in values if v != ""), _OMIT)
        if chosen is not _OMIT:
            out[key] = chosen
    return out


def _is_answer_dict(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(v, list) for v in value.values())


def to_literal(value: Any, spec: Mapping[str, Any], language: str) -> Any:
    """A Python value as the Java/JavaScript literal string BFCL's converters read back."""
    kind = spec.get("type") if isinstance(spec, Mapping) else None
    items = spec.get("items") if isinstance(spec, Mapping) else None
    item_kind = items.get("type") if isinstance(items, Mapping) else None
    if language == JAVA:
        return _java_literal(value, kind, item_kind)
    return _js_literal(value, kind, item_kind)


def _java_scalar(value: Any, kind: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if kind == "long" and isinstance(value, int):
        return f"{value}L"
    if kind == "float" and isinstance(value, int | float):
        return f"{value}f"
    if isinstance(value, str) and kind in ("String", None):
        return f'"{value}"'
    return str(value)


def _java_literal(value: Any, kind: Any, item_kind: Any) -> Any:
    if kind in ("Array", "ArrayList") and isinstance(value, list):
        if kind == "ArrayList":
            if not value:
                return "new ArrayList<>()"
            inner = ", ".join(f'"{v}"' if item_kind in ("String", "char") or (item_kind is None and isinstance(v, str))
                              else _java_scalar(v, item_kind) for v in value)
            return f"new ArrayList<>(Arrays.asList({inner}))"
        return "new Object[]{" + ", ".join(_java_scalar(v, item_kind) if item_kind != "String" else str(v)
                                          for v in value) + "}"
    if kind == "HashMap" and isinstance(value, dict):
        puts = " ".join(f'put("{k}", {_java_scalar(v, None)});' for k, v in value.items())
        return "new HashMap<>() {{ " + puts + " }}"
    if kind in ("String", "any", "char"):
        return value if isinstance(value, str) else str(value)
    return _java_scalar(value, kind) if not isinstance(value, str) else value


def _js_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _js_literal(value: Any, kind: Any, item_kind: Any) -> Any:
    if kind == "array" and isinstance(value, list):
        return "[" + ", ".join(_js_scalar(v) for v in value) + "]"
    if kind == "dict" and isinstance(value, dict):
        return "{" + ", ".join(f'"{k}": {_js_scalar(v)}' for k, v in value.items()) + "}"
    if kind == "Bigint" and isinstance(value, int) and not isinstance(value, bool):
        return f"{value}n"
    if isinstance(value, str):
        return value
    return _js_scalar(value)


# --------------------------------------------------------------------------- strings


def normalise_string(text: str) -> str:
    """BFCL's string normalisation: "April 1, 2024" and "april 1 2024" compare equal."""
    return _NORMALISE.sub("", text).lower().replace("'", '"')


def normalise_name(name: str) -> str:
    return name.replace(".", "_")


# --------------------------------------------------------------------------- entry points

_categories: dict[str, tuple[str, str]] = {}


def check_entry(
    category: str,
    functions: Sequence[Mapping[str, Any]],
    output: Any,
    ground_truth: Sequence[Mapping[str, Any]] | None,
    *,
    language: str | None = None,
    matching: str = GREEDY,
    underscore_to_dot: bool = True,
) -> Verdict:
    """Score one BFCL entry: ``output`` in BFCL's call-list shape (anything else = no call)."""
    known = _categories.get(category)
    if known is None:
        known = _categories[category] = (category_kind(category), category_language(category))
    kind = known[0]
    language = language or known[1]
    if kind == IRRELEVANCE:
        if makes_no_call(output):
            return PASS
        return fail("irrelevance_error:decoder_success", "a call was made where no function is relevant")
    if kind == RELEVANCE:
        if makes_no_call(output):
            return fail("relevance_error:decoder_failed", "no call was made where a function is relevant")
        return PASS
    if type(output) is not list:
        return fail("ast_decoder:decoder_failed", "the output holds no function call")
    if not is_call_list(output):
        return fail("ast_decoder:decoder_wrong_output_format",
                    "the output is not a list of {function_name: {argument: value}} objects")
    expected = ground_truth or ()
    if kind == PARALLEL:
        return check_parallel(functions, output, expected, language=language, matching=matching,
                              underscore_to_dot=underscore_to_dot)
    if kind == MULTIPLE:
        if len(output) != len(expected):
            return fail("multiple_function_checker:wrong_count",
                        f"expected {len(expected)} call(s), got {len(output)}")
        if not expected:
            return PASS
        schema = find_function(functions, _only_key(expected[0]))
    else:
        if len(output) != 1:
            return fail("simple_function_checker:wrong_count", f"expected 1 call, got {len(output)}")
        if not expected:
            return fail("simple_function_checker:wrong_count", "the ground truth holds no call")
        schema = functions[0] if functions else None
    return check_call(schema, output[0], expected[0], language=language, underscore_to_dot=underscore_to_dot)


def check_parallel(
    functions: Sequence[Mapping[str, Any]],
    output: Sequence[Mapping[str, Any]],
    expected: Sequence[Mapping[str, Any]],
    *,
    language: str = PYTHON,
    matching: str = GREEDY,
    underscore_to_dot: bool = True,
) -> Verdict:
    """Expected calls paired one-to-one with output calls, in any order.

    ``GREEDY`` is BFCL's pass: expected calls in order, each taking the first unused output
    call that fits. ``PERFECT`` (ftops extension) succeeds whenever some pairing exists.
    """
    if len(output) != len(expected):
        return fail("parallel_function_checker_no_order:wrong_count",
                    f"expected {len(expected)} call(s), got {len(output)}")
    if matching == PERFECT:
        return _check_parallel_perfect(functions, output, expected, language, underscore_to_dot)
    used = [False] * len(output)
    for i, want in enumerate(expected):
        plan = _plan(find_function(functions, _only_key(want)), want, language, underscore_to_dot)
        for j, got in enumerate(output):
            if not used[j] and plan.func_name in got and _check_planned(plan, got, language).valid:
                used[j] = True
                break
        else:
            reasons = [f"output {j}: {v.error_type}: {v.error}" for j, v in
                       ((j, _check_planned(plan, got, language)) for j, got in enumerate(output) if not used[j])]
            return fail("parallel_function_checker_no_order:cannot_find_match",
                        f"no unused output call matches expected call {i} ({_only_key(want)})", reasons)
    return PASS


def _check_parallel_perfect(functions: Sequence[Mapping[str, Any]], output: Sequence[Mapping[str, Any]],
                            expected: Sequence[Mapping[str, Any]], language: str,
                            underscore_to_dot: bool) -> Verdict:
    verdicts = [
        [check_call(find_function(functions, _only_key(want)), got, want, language=language,
                    underscore_to_dot=underscore_to_dot) for got in output]
        for want in expected
    ]
    fits = [[j for j, v in enumerate(row) if v.valid] for row in verdicts]
    if perfect_matching(fits, len(output)) is not None:
        return PASS
    unmatched = next((i for i, row in enumerate(fits) if not row), None)
    if unmatched is None:
        unmatched = _first_unassignable(fits, len(output))
    reasons = [f"output {j}: {v.error_type}: {v.error}" for j, v in enumerate(verdicts[unmatched])]
    return fail(
        "parallel_function_checker_no_order:cannot_find_match",
        f"no output call matches expected call {unmatched} ({_only_key(expected[unmatched])}) "
        "(perfect matching)",
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
    """The function doc named ``name`` (BFCL looks names up exactly; the dot/underscore
    fallback only serves ftops' own records, where BFCL would find nothing and crash)."""
    for function in functions:
        if function.get("name") == name:
            return function
    wanted = normalise_name(name)
    for function in functions:
        if normalise_name(str(function.get("name", ""))) == wanted:
            return function
    return None


def _only_key(item: Mapping[str, Any]) -> str:
    for key in item:
        return str(key)
    return ""


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


# --------------------------------------------------------------------------- compiled function docs


@dataclass(frozen=True)
class _Param:
    """One parameter's type rules, compiled from its spec for one language."""

    expected: type | None  # the type the (converted) value must have; None: not type-checked
    nested: type | None  # item type of arrays, checked one level deep
    desc: str  # the spec's own type name
    nested_desc: str | None  # the item spec's own type name (Java/JavaScript conversion)
    literal: bool  # Java/JavaScript: the value must be a literal string, converted before the check
    to_float: bool  # Python: an int passes as a float


@dataclass(frozen=True)
class _Function:
    name: str
    required: tuple[str, ...]
    params: dict[str, _Param] | None  # None: no function doc, only the ground truth constrains


_UNTYPED = _Param(None, None, "", None, False, False)
_CACHE_LIMIT = 20000
_compiled: dict[tuple[int, str], tuple[Mapping[str, Any] | None, _Function]] = {}


def _compile(schema: Mapping[str, Any] | None, language: str) -> _Function:
    key = (id(schema), language)
    hit = _compiled.get(key)
    if hit is not None and hit[0] is schema:
        return hit[1]
    compiled = _compile_function(schema, language)
    if len(_compiled) >= _CACHE_LIMIT:
        _compiled.clear()
    _compiled[key] = (schema, compiled)  # the doc is kept alive, so its id stays its own
    return compiled


def _compile_function(schema: Mapping[str, Any] | None, language: str) -> _Function:
    if schema is None:
        return _Function("", (), None)
    parameters = schema.get("parameters") or {}
    properties = parameters.get("properties") or {}
    params = {name: _compile_param(spec if isinstance(spec, Mapping) else {}, language)
              for name, spec in properties.items()}
    required = tuple(str(p) for p in parameters.get("required") or ())
    return _Function(str(schema.get("name", "")), required, params)


def _compile_param(spec: Mapping[str, Any], language: str) -> _Param:
    raw = spec.get("type")
    desc = raw if isinstance(raw, str) else ""
    items = spec.get("items")
    item_desc = items.get("type") if isinstance(items, Mapping) else None
    item_desc = item_desc if isinstance(item_desc, str) else None
    if language == PYTHON:
        kind = type_name(spec)
        expected = PY_TYPES.get(kind) if kind else None
        nested = None
        if kind in ("array", "tuple") and isinstance(items, Mapping):
            item_kind = type_name(items)
            nested = PY_TYPES.get(item_kind) if item_kind else None
        return _Param(expected, nested, desc, item_desc, False, kind == "float")
    table = JAVA_TYPES if language == JAVA else JS_TYPES
    expected = table.get(desc)
    if expected is None:
        return _UNTYPED
    nested = table.get(item_desc) if desc in _NESTED_CONVERSION and item_desc else None
    return _Param(expected, nested, desc, item_desc if desc in _NESTED_CONVERSION else None, True, False)


# --------------------------------------------------------------------------- one call


class _Arg:
    """One expected parameter, compiled: its type rules and its acceptable values."""

    __slots__ = ("acceptable", "nested_error", "reference", "spec", "strings", "variable")

    def __init__(self, spec: _Param, acceptable: list[Any]) -> None:
        self.spec = spec
        self.acceptable = acceptable
        reference = _reference_type(acceptable)
        self.reference = reference
        expected = spec.expected
        # A value of the answer's own type, where that differs from the schema's, is a variable.
        self.variable = reference is not None and expected is not None and reference is not expected
        self.nested_error = "type_error:nested" if reference is not None and reference is expected else (
            "type_error:simple")
        self.strings = frozenset(normalise_string(v) for v in acceptable if type(v) is str)


class _Call:
    """One expected call against one function doc, compiled."""

    __slots__ = ("args", "func_name", "must_send", "required")

    def __init__(self, schema: Mapping[str, Any] | None, want: Mapping[str, Any], language: str,
                 underscore_to_dot: bool) -> None:
        expected_name = _only_key(want)
        by_param: Mapping[str, Any] = want.get(expected_name) or {}
        function = _compile(schema, language)
        self.func_name = bfcl_name(function.name or expected_name, underscore_to_dot)
        self.required = function.required
        params = function.params
        self.args: dict[str, _Arg] = {}
        for param, values in by_param.items():
            spec = _UNTYPED if params is None else params.get(param)
            if spec is not None:
                self.args[param] = _Arg(spec, values if type(values) is list else [values])
        self.must_send = tuple(p for p, v in by_param.items() if not (type(v) is list and "" in v))


_plans: dict[tuple[int, int, str, bool], tuple[Any, Any, _Call]] = {}
_normalised: dict[str, str] = {}  # short argument strings seen, normalised
_CACHED_STRING_CHARS = 200


def _plan(schema: Mapping[str, Any] | None, want: Mapping[str, Any], language: str, underscore_to_dot: bool) -> _Call:
    """The compiled expected call, cached by the identity of the doc and the answer (both kept
    alive with it, so an identity is never reused while cached: ground truths and function docs
    are treated as immutable once checked)."""
    key = (id(schema), id(want), language, underscore_to_dot)
    hit = _plans.get(key)
    if hit is not None and hit[0] is schema and hit[1] is want:
        return hit[2]
    plan = _Call(schema, want, language, underscore_to_dot)
    if len(_plans) >= _CACHE_LIMIT:
        _plans.clear()
    _plans[key] = (schema, want, plan)
    return plan


def check_call(
    schema: Mapping[str, Any] | None,
    got: Mapping[str, Any],
    want: Mapping[str, Any],
    *,
    language: str = PYTHON,
    underscore_to_dot: bool = True,
) -> Verdict:
    """One output call ``{name: args}`` against one expected call ``{name: {param: [values]}}``
    (BFCL's ``simple_function_checker``).

    ``schema`` is the function's description (BFCL or OpenAI ``function`` shape); without
    one only the ground truth constrains the parameters.
    """
    return _check_planned(_plan(schema, want, language, underscore_to_dot), got, language)


def _check_planned(plan: _Call, got: Mapping[str, Any], language: str) -> Verdict:
    func_name = plan.func_name
    args = got.get(func_name, _OMIT) if type(got) is dict else _OMIT
    if args is _OMIT:
        return fail("simple_function_checker:wrong_func_name",
                    f"function {func_name!r} not found in the output (got {_only_key(got)!r})")
    if type(args) is not dict:
        return fail("ast_decoder:decoder_wrong_output_format", f"arguments of {func_name!r} are not an object")
    for param in plan.required:
        if param not in args:
            return fail("simple_function_checker:missing_required", f"missing required parameter {param!r}")
    expected_args = plan.args
    for param, value in args.items():
        arg = expected_args.get(param)
        if arg is None:
            return fail("simple_function_checker:unexpected_param", f"unexpected parameter {param!r}")
        verdict = _check_value(param, value, arg, language)
        if verdict is not PASS:
            return verdict
    for param in plan.must_send:
        if param not in args:
            return fail("simple_function_checker:missing_optional",
                        f"parameter {param!r} is not provided and the answer does not allow leaving it out")
    return PASS


def _check_value(param: str, value: Any, arg: _Arg, language: str) -> Verdict:
    spec = arg.spec
    if spec.literal:
        if type(value) is not str:
            return fail(f"type_error:{'java' if language == JAVA else 'js'}",
                        f"parameter {param!r} should be a {spec.desc} literal in a string, "
                        f"got {type(value).__name__} ({value!r})")
        if language == JAVA:
            value = java_literal(value, spec.desc, spec.nested_desc)
        else:
            value = js_literal(value, spec.desc, spec.nested_desc)
    value_type = type(value)
    if value_type is int and spec.to_float:
        value = float(value)
        value_type = float
    elif value_type is tuple and spec.desc == "tuple":
        value = list(value)
        value_type = list
    expected = spec.expected
    acceptable = arg.acceptable
    is_variable = False
    if expected is not None:
        if value_type is expected:
            nested = spec.nested
            if nested is not None and not _nested_ok(value, acceptable, nested):
                return fail(arg.nested_error, f"items of {param!r} should be {spec.nested_desc}; got {value!r}")
            is_variable = arg.variable
        elif value_type is arg.reference:
            is_variable = True
        else:
            return fail("type_error:simple",
                        f"parameter {param!r} should be {spec.desc}, got {value_type.__name__} ({value!r})")
        target = expected
    else:
        target = value_type
    if not is_variable:
        if target is str:
            if value_type is str:
                normalised = _normalised.get(value)
                if normalised is None:
                    normalised = normalise_string(value)
                    if len(value) <= _CACHED_STRING_CHARS:  # a model's long strings are not kept
                        if len(_normalised) >= _CACHE_LIMIT:
                            _normalised.clear()
                        _normalised[value] = normalised
                if normalised in arg.strings:
                    return PASS
            return fail("value_error:string",
                        f"invalid value for {param!r}: {value!r}; expected one of {acceptable!r}")
        if target is dict:
            return _check_dict(param, value, acceptable) if value_type is dict else _fail_others(param, value,
                                                                                                 acceptable)
        if target is list:
            if spec.nested is dict or (expected is None and value and all(type(v) is dict for v in value)):
                return _check_dict_list(param, value, acceptable)
            return _check_list(param, value, acceptable)
    if value in acceptable:
        return PASS
    return _fail_others(param, value, acceptable)


def _nested_ok(value: Any, acceptable: list[Any], nested: type) -> bool:
    # BFCL: one alternative is enough; one that is not a list (such as "") always is.
    return any(type(alternative) is not list or _items_typed(value, alternative, nested) for alternative in acceptable)


def _fail_others(param: str, value: Any, acceptable: list[Any]) -> Verdict:
    return fail("value_error:others", f"invalid value for {param!r}: {value!r}; expected one of {acceptable!r}")


def _reference_type(acceptable: list[Any]) -> type | None:
    for value in acceptable:
        if value != "":
            return type(value)
    return None


def _items_typed(value: Any, alternative: list[Any], item_type: type) -> bool:
    # BFCL: each item must have the schema's item type or the type of the alternative's first item.
    reference = _reference_type(alternative)
    for item in value:
        item_class = type(item)
        if item_class is not item_type and (reference is None or item_class is not reference):
            return False
    return True


_standardised: dict[int, tuple[Any, list[Any]]] = {}


def _standardise(values: Any) -> list[Any]:
    """BFCL's element-wise standardisation of one ground-truth list (strings normalised)."""
    hit = _standardised.get(id(values))
    if hit is not None and hit[0] is values:
        return hit[1]
    items = values if isinstance(values, str | list) else [values]
    out = [normalise_string(v) if type(v) is str else v for v in items]
    if len(_standardised) >= _CACHE_LIMIT:
        _standardised.clear()
    _standardised[id(values)] = (values, out)
    return out


def _check_list(param: str, value: list[Any], acceptable: list[Any]) -> Verdict:
    wanted = [normalise_string(v) if type(v) is str else v for v in value]
    for alternative in acceptable:
        if isinstance(alternative, str | list) and _standardise(alternative) == wanted:
            return PASS
    return fail("value_error:list/tuple", f"invalid value for {param!r}: {value!r}; expected one of {acceptable!r}")


def _check_dict(param: str, value: dict[str, Any], acceptable: list[Any]) -> Verdict:
    """BFCL's dict_checker: each alternative maps keys to acceptable values (compared after
    string normalisation, nested values with plain equality)."""
    result = fail("dict_checker:unclear", f"no acceptable value given for {param!r}")
    for alternative in acceptable:
        if alternative == "":
            continue
        if type(alternative) is not dict:
            result = fail("value_error:dict_value", f"invalid value for {param!r}: {value!r}")
            continue
        result = PASS
        for key, item in value.items():
            if key not in alternative:
                result = fail("value_error:dict_key", f"unexpected key {key!r} in {param!r}")
                break
            probe = normalise_string(item) if type(item) is str else item
            if probe not in _standardise(alternative[key]):
                result = fail("value_error:dict_value", f"invalid value for {param!r}[{key!r}]: {item!r}")
                break
        for key, allowed in alternative.items():
            if key not in value and not (isinstance(allowed, list | str) and "" in allowed):
                result = fail("value_error:dict_key", f"missing key {key!r} in {param!r}")
                break
        if result is PASS:
            return PASS
    return result


def _check_dict_list(param: str, value: list[Any], acceptable: list[Any]) -> Verdict:
    result = fail("list_dict_checker:unclear", f"no acceptable value given for {param!r}")
    for alternative in acceptable:
        size = len(alternative) if isinstance(alternative, list | str) else -1
        if size != len(value):
            result = fail("value_error:list_dict_count",
                          f"{param!r} should hold {size} item(s), got {len(value)}")
            continue
        ok = True
        for got, want in zip(value, alternative, strict=True):
            result = _check_dict(param, got, [want]) if type(got) is dict else fail(
                "value_error:dict_value", f"{param!r} should hold objects")
            if result is not PASS:
                ok = False
                break
        if ok:
            return PASS
    return result


# --------------------------------------------------------------------------- Java / JS literals
# Ports of BFCL's java_type_converter.py and js_type_converter.py: a literal that does not
# parse stays a string (and then fails the type check), as it does there.

_INT = re.compile(r"^-?\d+$")
_JAVA_FLOAT = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?[fF]$")
_JAVA_DOUBLE = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")
_JAVA_LONG = re.compile(r"^-?\d+[lL]$")
_JAVA_CHAR = re.compile(r"^\'.$\'")
_ARRAYLIST_ASLIST = re.compile(r"new\s+ArrayList<\w*>\(Arrays\.asList\((.+?)\)\)")
_ARRAYLIST_ADD = re.compile(r"new\s+ArrayList<\w*>\(\)\s*\{\{\s*(.+?)\s*\}\}", re.DOTALL)
_ARRAYLIST_EMPTY = re.compile(r"new\s+ArrayList<\w*>\(\)")
_ADD = re.compile(r"add\((.+?)\)")
_JAVA_ARRAY = re.compile(r"new\s+\w+\[\]\s*\{(.*?)\}")
_HASHMAP = re.compile(r"new\s+HashMap<.*?>\s*\(\)\s*\{\s*\{?\s*(.*?)\s*\}?\s*\}", re.DOTALL)
_HASHMAP_EMPTY = re.compile(r"new\s+HashMap<.*?>\s*\(\)")
_PUT = re.compile(r"put\(\"(.*?)\",\s*(.*?)\)")


class _Unconvertible(Exception):
    """Where BFCL's converter raises (an unsupported type): the literal stays a string."""


def java_literal(value: str, kind: str, nested: str | None = None) -> Any:
    """A Java literal string as BFCL reads it for parameter type ``kind``."""
    try:
        return _java(value, kind, nested)
    except (_Unconvertible, ValueError, IndexError):
        return value


def _java(value: str, kind: str, nested: str | None = None) -> Any:
    if kind not in JAVA_TYPES:
        raise _Unconvertible(kind)
    if kind in ("byte", "short", "integer"):
        return int(value) if _INT.match(value) else value
    if kind == "float":
        return float(re.sub(r"[fF]$", "", value)) if _JAVA_FLOAT.match(value) else value
    if kind == "double":
        return float(value) if _JAVA_DOUBLE.match(value) else value
    if kind == "long":
        return int(re.sub(r"[lL]$", "", value)) if _JAVA_LONG.match(value) else value
    if kind == "boolean":
        return value == "true" if value in ("true", "false") else value
    if kind == "char":
        return value
    if kind == "ArrayList":
        return _java_arraylist(value, nested)
    if kind == "Array":
        return _java_array(value, nested)
    if kind == "HashMap":
        return _java_hashmap(value)
    if kind in ("String", "any"):
        return value
    raise _Unconvertible(kind)


def _java_element(text: str, nested: str | None) -> Any:
    if nested in ("char", "String"):
        return text[1:-1]
    return _java(text, nested) if nested else java_value(text)


def _java_arraylist(text: str, nested: str | None) -> Any:
    match = _ARRAYLIST_ASLIST.search(text)
    if match:
        return [_java_element(part.strip(), nested) for part in match.group(1).split(",")]
    match = _ARRAYLIST_ADD.search(text)
    if match:
        return [_java_element(found.strip(), nested) for found in _ADD.findall(match.group(1))]
    if _ARRAYLIST_EMPTY.search(text):
        return []
    return text


def _java_array(text: str, nested: str | None) -> Any:
    match = _JAVA_ARRAY.search(text)
    if not match:
        return text
    parts = [x.strip() for x in match.group(1).split(",") if x.strip()]
    return [_java(x, nested) if nested else java_value(x) for x in parts]


def _java_hashmap(text: str) -> Any:
    match = _HASHMAP.search(text)
    if match:
        elements: dict[str, Any] = {}
        puts = match.group(1)
        if puts.strip():
            for key, raw in _PUT.findall(puts):
                elements[key] = java_value(raw.strip())
        return elements
    if _HASHMAP_EMPTY.search(text):
        return {}
    return text


def java_value(text: str) -> Any:
    """BFCL's ``parse_java_value``: a literal without a declared type."""
    if text == "true":
        return True
    if text == "false":
        return False
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1]
    if _JAVA_LONG.match(text):
        return int(text[:-1])
    if _JAVA_FLOAT.match(text):
        return float(re.sub(r"[fF]$", "", text))
    return _number_or_text(text)


def _number_or_text(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


_JS_FLOAT = re.compile(r"^-?\d+(\.\d+)?$")
_JS_BIGINT = re.compile(r"^-?\d+n$")
_JS_ARRAY_2D = re.compile(r"\[\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\]|\bnew\s+Array\(\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\)")
_JS_ARRAY = re.compile(r"\[(.*?)\]|\bnew\s+Array\((.*?)\)")
_JS_INNER = re.compile(r"\[(.*?)\]")
_JS_DICT = re.compile(r"\{(.*?)\}")
_JS_PAIRS = re.compile(r"([^:]+):\s*(.*?)(?:,\s*(?=[^,]+:)|$)")


def js_literal(value: str, kind: str, nested: str | None = None) -> Any:
    """A JavaScript literal string as BFCL reads it for parameter type ``kind``."""
    try:
        return _js(value, kind, nested)
    except (_Unconvertible, ValueError, IndexError):
        return value


def _js(value: str, kind: str, nested: str | None = None) -> Any:
    if kind not in JS_TYPES:
        raise _Unconvertible(kind)
    if kind == "String":
        quoted = (value.startswith('"') and value.endswith('"')) or (value.startswith("'") and value.endswith("'"))
        return value[1:-1] if quoted else value
    if kind == "integer":
        return int(value) if _INT.match(value) else value
    if kind == "float":
        return float(value) if _JS_FLOAT.match(value) else value
    if kind == "Bigint":
        return int(value[:-1]) if _JS_BIGINT.match(value) else value
    if kind == "Boolean":
        return value == "true" if value in ("true", "false") else value
    if kind == "dict":
        return _js_collection(value, "dict", nested)
    if kind == "array":
        return _js_collection(value, "array", nested)
    return value  # any


def _js_collection(code: str, kind: str, nested: str | None = None) -> Any:
    code = code.strip()
    if kind == "array":
        try:
            match_2d = _JS_ARRAY_2D.match(code)
            if match_2d:
                elements: list[Any] = []
                for index, inner in enumerate(_JS_INNER.findall(match_2d.group(0))):
                    inner = inner.strip()
                    if index == 0 and inner.startswith("["):
                        inner = inner[1:]
                    elements.append([js_value(e.strip()) for e in inner.split(",")])
                return elements
            match = _JS_ARRAY.match(code)
            if not match:
                return code
            body = match.group(1) if match.group(1) is not None else match.group(2)
            body = body.strip() if body is not None else ""
            parts = body.split(",") if body else []
            if nested:
                return [_js(e.strip(), nested, "String") if e.strip().startswith(("'", '"'))
                        else _js(e.strip(), nested) for e in parts]
            return [js_value(e.strip()) for e in parts]
        except Exception:  # BFCL: any failure leaves the literal as it is
            return code
    if code == "{}":
        return {}
    match = _JS_DICT.match(code)
    if not match:
        return code
    try:
        dictionary: dict[str, Any] = {}
        for key, raw in _JS_PAIRS.findall(match.group(1)):
            key = key.strip().strip("'\"")
            raw = raw.strip()
            if raw.startswith("[") and raw.endswith("]"):
                dictionary[key] = _js_collection(raw, "array")
            elif raw.startswith("{") and raw.endswith("}"):
                dictionary[key] = _js_collection(raw, "dict")
            else:
                dictionary[key] = js_value(raw.strip("'\""))
        return dictionary
    except Exception:
        return code


def js_value(text: str) -> Any:
    """BFCL's ``parse_js_value``."""
    text = text.strip()
    if text == "true":
        return True
    if text == "false":
        return False
    if (text.startswith('"') and text.endswith('"')) or (text.startswith("'") and text.endswith("'")):
        return text[1:-1]
    return _number_or_text(text)
