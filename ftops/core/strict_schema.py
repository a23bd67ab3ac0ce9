"""Tool schemas in OpenAI's strict form, and calls made under it read back against the original.

With ``"strict": true`` on a function, OpenAI decodes its arguments under the function's JSON
Schema (the hosted counterpart of ``ftops.core.ml.constrained`` for our own model), but only for
a subset of JSON Schema: every object must list all of its properties in ``required`` and set
``additionalProperties: false``, and only some keywords are accepted. ``to_strict_schema`` turns a
catalog schema into that form:

* a property that was optional stays in the schema but may be ``null`` (a type list with
  ``"null"``, or ``anyOf`` with ``{"type": "null"}``), so the model can still leave it out;
* keywords strict mode does not take and whose loss only loosens the schema (``default``,
  ``examples``, ``minLength``, ``uniqueItems``, formats it does not know, ...) are dropped;
* a schema whose meaning would change (``patternProperties``, ``allOf``, ``oneOf``, free-form
  objects, tuples) or that is beyond OpenAI's documented limits is not made strict: the result
  carries the reason and the tool is sent as it was.

``strip_null_optionals`` undoes the nullable rewrite on an answer: an argument that is ``null``
where the original schema made it optional and did not allow ``null`` is removed, so the call
compares with the catalog's schema (and with calls from models that simply left it out).

No Django imports: used by the evaluation adapters and by the gateway alike.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MAX_DEPTH",
    "MAX_ENUM_VALUES",
    "MAX_PROPERTIES",
    "StrictSchema",
    "accepts_null",
    "strict_function",
    "strip_null_optionals",
    "to_strict_schema",
]

# OpenAI's documented limits for strict schemas (structured outputs, "supported schemas").
MAX_DEPTH = 10  # nested object levels
MAX_PROPERTIES = 5000  # object properties in the whole schema
MAX_ENUM_VALUES = 1000  # enum values in the whole schema
MAX_STRING_CHARS = 120_000  # property names, definition names, enum and const values together
LARGE_ENUM = 250  # one string enum with more values than this ...
LARGE_ENUM_CHARS = 15_000  # ... may hold at most this many characters

# Keywords strict mode accepts; everything else is dropped or refused.
_KEPT = frozenset({"type", "description", "title", "enum", "const", "pattern", "format", "multipleOf", "maximum",
                   "exclusiveMaximum", "minimum", "exclusiveMinimum", "minItems", "maxItems"})
_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"})
# Keywords whose loss would change what a valid call is, beyond loosening it: no strict form.
_REFUSED = {
    "patternProperties": "patternProperties (keys matched by pattern) has no strict form",
    "allOf": "allOf is not accepted in strict mode",
    "oneOf": "oneOf is not accepted in strict mode",
    "not": "not is not accepted in strict mode",
    "if": "if/then/else is not accepted in strict mode",
    "then": "if/then/else is not accepted in strict mode",
    "else": "if/then/else is not accepted in strict mode",
    "dependentRequired": "dependentRequired is not accepted in strict mode",
    "dependentSchemas": "dependentSchemas is not accepted in strict mode",
    "dependencies": "dependencies is not accepted in strict mode",
    "prefixItems": "tuples (prefixItems) are not accepted in strict mode",
    "unevaluatedProperties": "unevaluatedProperties is not accepted in strict mode",
    "propertyNames": "propertyNames is not accepted in strict mode",
    "$dynamicRef": "$dynamicRef is not accepted in strict mode",
    "$recursiveRef": "$recursiveRef is not accepted in strict mode",
}
_REF_PREFIXES = ("#/$defs/", "#/definitions/")
_JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
# Type names tool catalogs borrow from Python and Java (BFCL's functions use them): strict mode
# takes JSON Schema's names only, so they are sent under the JSON Schema type they stand for.
_TYPE_ALIASES = {
    "dict": "object", "map": "object", "hashmap": "object", "hashtable": "object",
    "float": "number", "double": "number",
    "int": "integer", "long": "integer", "short": "integer", "byte": "integer", "bigint": "integer",
    "bool": "boolean", "str": "string", "char": "string",
    "list": "array", "tuple": "array", "arraylist": "array", "queue": "array", "stack": "array",
}


@dataclass(frozen=True)
class StrictSchema:
    """The strict form of a schema, or ``None`` and why there is none."""

    schema: dict[str, Any] | None
    reason: str = ""
    dropped: tuple[str, ...] = ()  # keyword paths left out because strict mode does not take them

    @property
    def strict(self) -> bool:
        return self.schema is not None


class _NotStrict(Exception):
    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: {why}")


@dataclass
class _Budget:
    properties: int = 0
    enum_values: int = 0
    chars: int = 0
    dropped: list[str] = field(default_factory=list)


def to_strict_schema(schema: Any) -> StrictSchema:
    """``schema`` (a tool's parameters) in OpenAI's strict form; never changes ``schema`` itself."""
    if not isinstance(schema, Mapping):
        return StrictSchema(None, "the parameters are not a JSON Schema object")
    if "anyOf" in schema:
        return StrictSchema(None, "$: the root of a strict schema may not be anyOf")
    root = dict(schema)
    if "type" not in root and "$ref" not in root:
        root["type"] = "object"  # tools often omit it at the root; the root is always an object
    if "object" not in _types(root):
        return StrictSchema(None, "$: the root of a strict schema must be an object")
    budget = _Budget()
    try:
        out = _node(root, "$", 0, budget, is_root=True)
        _check_budget(budget)
    except _NotStrict as exc:
        return StrictSchema(None, str(exc))
    return StrictSchema(out, "", tuple(budget.dropped))


def strict_function(function: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """An OpenAI ``function`` object sent strict (``"strict": true`` and the strict parameters),
    or unchanged with the reason it cannot be ("" when strict)."""
    result = to_strict_schema(function.get("parameters") or {"type": "object", "properties": {}})
    if result.schema is None:
        return dict(function), result.reason
    return {**function, "parameters": result.schema, "strict": True}, ""


def _types(schema: Mapping[str, Any]) -> list[str]:
    value = schema.get("type")
    if isinstance(value, str):
        return [_json_type(value)]
    if isinstance(value, list):
        return [_json_type(str(v)) for v in value]
    if "properties" in schema:
        return ["object"]
    return []


def _json_type(name: str) -> str:
    return name if name in _JSON_TYPES else _TYPE_ALIASES.get(name.lower(), name)


def _node(schema: Any, path: str, depth: int, budget: _Budget, *, is_root: bool = False) -> dict[str, Any]:
    if not isinstance(schema, Mapping):
        raise _NotStrict(path, "a boolean or non-object schema has no strict form")
    for key in schema:
        if key in _REFUSED:
            raise _NotStrict(path, _REFUSED[key])
    if "$ref" in schema:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not (ref == "#" or ref.startswith(_REF_PREFIXES)):
            raise _NotStrict(path, "only references inside the schema (#, #/$defs/..., #/definitions/...) "
                                   "are accepted in strict mode")
        for key in schema:
            if key not in ("$ref", "description", "$defs", "definitions"):
                budget.dropped.append(f"{path}.{key}")
        out: dict[str, Any] = {"$ref": ref}
        _definitions(schema, out, path, depth, budget)
        return out
    out = {}
    for key, value in schema.items():
        if key in _KEPT:
            if key == "format" and value not in _FORMATS:
                budget.dropped.append(f"{path}.format")
                continue
            out[key] = copy.deepcopy(value)
        elif key not in ("properties", "required", "additionalProperties", "items", "anyOf", "$defs",
                         "definitions"):
            budget.dropped.append(f"{path}.{key}")  # default, examples, minLength, ... only loosen the schema
    _count_values(schema, path, budget)
    types = _types(schema)
    unknown = [t for t in types if t not in _JSON_TYPES]
    if unknown:
        raise _NotStrict(path, f"type {unknown[0]!r} is not a JSON Schema type")
    if "type" in schema or "properties" in schema:
        out["type"] = types[0] if len(types) == 1 else types
    if not types and not any(k in schema for k in ("enum", "const", "anyOf")):
        raise _NotStrict(path, "a schema without a type (any value) has no strict form")
    if "object" in types:
        out.update(_object(schema, path, depth + 1, budget, is_root=is_root))
    if "array" in types:
        items = schema.get("items")
        if not isinstance(items, Mapping):
            raise _NotStrict(path, "an array needs one items schema in strict mode")
        out["items"] = _node(items, f"{path}.items", depth, budget)
    if "anyOf" in schema:
        branches = schema["anyOf"]
        if not isinstance(branches, list) or not branches:
            raise _NotStrict(path, "anyOf must be a non-empty list of schemas")
        out["anyOf"] = [_node(branch, f"{path}.anyOf[{i}]", depth, budget) for i, branch in enumerate(branches)]
    _definitions(schema, out, path, depth, budget)
    return out


def _object(schema: Mapping[str, Any], path: str, depth: int, budget: _Budget, *, is_root: bool) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise _NotStrict(path, f"objects nest deeper than {MAX_DEPTH} levels")
    extra = schema.get("additionalProperties")
    if extra is not None and extra is not False:
        raise _NotStrict(path, "additionalProperties other than false (free keys) has no strict form")
    properties = schema.get("properties") or {}
    if not isinstance(properties, Mapping):
        raise _NotStrict(path, "properties must be an object")
    if not properties and not is_root:
        raise _NotStrict(path, "an object without properties (free-form) has no strict form")
    required = {name for name in (schema.get("required") or []) if isinstance(name, str)}
    budget.properties += len(properties)
    budget.chars += sum(len(str(name)) for name in properties)
    out_properties: dict[str, Any] = {}
    for name, sub in properties.items():
        converted = _node(sub, f"{path}.{name}", depth, budget)
        out_properties[str(name)] = converted if name in required else _nullable(converted)
    return {"properties": out_properties, "required": list(out_properties), "additionalProperties": False}


def _definitions(schema: Mapping[str, Any], out: dict[str, Any], path: str, depth: int, budget: _Budget) -> None:
    for key in ("$defs", "definitions"):
        defs = schema.get(key)
        if defs is None:
            continue
        if not isinstance(defs, Mapping):
            raise _NotStrict(f"{path}.{key}", "must be an object of schemas")
        budget.chars += sum(len(str(name)) for name in defs)
        out[key] = {str(name): _node(sub, f"{path}.{key}.{name}", depth, budget) for name, sub in defs.items()}


def _count_values(schema: Mapping[str, Any], path: str, budget: _Budget) -> None:
    values = schema.get("enum")
    if isinstance(values, list):
        budget.enum_values += len(values)
        chars = sum(len(v) for v in values if isinstance(v, str))
        budget.chars += chars
        if len(values) > LARGE_ENUM and chars > LARGE_ENUM_CHARS:
            raise _NotStrict(path, f"an enum of more than {LARGE_ENUM} values may hold at most "
                                     f"{LARGE_ENUM_CHARS} characters in strict mode ({chars})")
    if isinstance(schema.get("const"), str):
        budget.chars += len(schema["const"])


def _check_budget(budget: _Budget) -> None:
    if budget.properties > MAX_PROPERTIES:
        raise _NotStrict("$", f"{budget.properties} object properties, over strict mode's {MAX_PROPERTIES}")
    if budget.enum_values > MAX_ENUM_VALUES:
        raise _NotStrict("$", f"{budget.enum_values} enum values, over strict mode's {MAX_ENUM_VALUES}")
    if budget.chars > MAX_STRING_CHARS:
        raise _NotStrict("$", f"{budget.chars} characters of names and values, over strict mode's "
                              f"{MAX_STRING_CHARS}")


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` that also takes ``null``: the value a strict call gives for an optional argument it omits."""
    if accepts_null(schema):
        return schema
    kind = schema.get("type")
    if kind is not None and not any(k in schema for k in ("enum", "const", "anyOf", "$ref")):
        return {**schema, "type": [*kind, "null"] if isinstance(kind, list) else [kind, "null"]}
    if set(schema) == {"anyOf"}:
        return {"anyOf": [*schema["anyOf"], {"type": "null"}]}
    # An enum, const or reference: a type list would not let null through, a second branch does.
    return {"anyOf": [schema, {"type": "null"}]}


def accepts_null(schema: Any, root: Mapping[str, Any] | None = None, _seen: frozenset[str] = frozenset()) -> bool:
    """Whether ``null`` is a valid value under ``schema`` (local references resolved against ``root``)."""
    if not isinstance(schema, Mapping):
        return schema is True
    ref = schema.get("$ref")
    if isinstance(ref, str) and root is not None and ref not in _seen:
        target = _resolve(root, ref)
        return target is not None and accepts_null(target, root, _seen | {ref})
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return "enum" not in schema or None in schema["enum"]
    if "const" in schema:
        return schema["const"] is None
    if isinstance(schema.get("enum"), list) and "type" not in schema:
        return None in schema["enum"]
    branches = schema.get("anyOf") or schema.get("oneOf")
    return isinstance(branches, list) and any(accepts_null(b, root, _seen) for b in branches)


def _resolve(root: Mapping[str, Any], ref: str) -> Mapping[str, Any] | None:
    if ref == "#":
        return root
    for prefix in _REF_PREFIXES:
        if ref.startswith(prefix):
            found = (root.get(prefix[2:-1]) or {}).get(ref[len(prefix):])
            return found if isinstance(found, Mapping) else None
    return None


def strip_null_optionals(arguments: Any, schema: Any, root: Mapping[str, Any] | None = None) -> Any:
    """``arguments`` without the ``null`` values strict mode put in for optional parameters the
    original ``schema`` does not let be ``null``; nested objects and arrays likewise. A ``null``
    the original schema accepts is the model's answer and stays. Returns a new value."""
    if not isinstance(schema, Mapping):
        return arguments
    root = schema if root is None else root
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = _resolve(root, ref)
        return arguments if target is None else strip_null_optionals(arguments, target, root)
    if isinstance(arguments, dict):
        properties = schema.get("properties")
        if isinstance(properties, Mapping):
            required = set(schema.get("required") or [])
            out: dict[str, Any] = {}
            for key, value in arguments.items():
                sub = properties.get(key)
                if value is None and key not in required and isinstance(sub, Mapping) \
                        and not accepts_null(sub, root):
                    continue
                out[key] = strip_null_optionals(value, sub, root) if sub is not None else value
            return out
        branch = _branch(schema, lambda b: isinstance(b.get("properties"), Mapping)
                         and set(arguments) <= set(b["properties"]))
        return arguments if branch is None else strip_null_optionals(arguments, branch, root)
    if isinstance(arguments, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            return [strip_null_optionals(item, items, root) for item in arguments]
        branch = _branch(schema, lambda b: "array" in _types(b))
        return arguments if branch is None else strip_null_optionals(arguments, branch, root)
    return arguments


def _branch(schema: Mapping[str, Any], fits: Any) -> Mapping[str, Any] | None:
    for branch in schema.get("anyOf") or []:
        if isinstance(branch, Mapping) and fits(branch):
            return branch
    return None
