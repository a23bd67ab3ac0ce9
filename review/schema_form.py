"""Form fields generated from a tool's JSON Schema, their parsing and their validation.

No Django imports: the review views render ``Field`` trees with templates, the API and the
services call ``validate_arguments`` directly. Field names are ``<prefix><dotted path>``,
e.g. ``calls-0-arg-amount_cents`` or ``calls-0-arg-address.city``.

Kinds and their widgets:
  string / integer / number   one input (number inputs keep what was typed, so a bad value
                              such as 49.99 for an integer stays visible with its error)
  boolean                     select: not set / true / false (omitted differs from false)
  enum                        select of the allowed values (JSON-encoded to keep their type)
  lines                       array of scalars, one item per line
  multi                       array of enum values, one checkbox each
  object                      a fieldset of the nested properties
  json                        anything else (free-form objects, arrays of objects), as JSON
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError

PREV_REF = re.compile(r"^\{prev\.[A-Za-z_][A-Za-z0-9_]*\}$")
_SCALARS = {"string", "integer", "number", "boolean"}
_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number (integer)",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
}


class FormData(Protocol):
    """What a Django ``QueryDict`` offers; ``DictData`` adapts a plain dict for tests and the API."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def getlist(self, key: str) -> list[Any]: ...


class DictData:
    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data = dict(data or {})

    def get(self, key: str, default: Any = None) -> Any:
        value = self._data.get(key, default)
        if isinstance(value, list):
            return value[-1] if value else default
        return value

    def getlist(self, key: str) -> list[Any]:
        value = self._data.get(key)
        if value is None:
            return []
        return list(value) if isinstance(value, list) else [value]

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def keys(self) -> list[str]:
        return list(self._data)


@dataclass
class Field:
    name: str
    path: tuple[str, ...]
    label: str
    kind: str
    required: bool = False
    description: str = ""
    type_label: str = ""
    choices: list[tuple[str, str]] = field(default_factory=list)
    raw: str = ""
    raw_list: list[str] = field(default_factory=list)
    error: str = ""
    hint: str = ""
    children: list[Field] = field(default_factory=list)
    attrs: dict[str, str] = field(default_factory=dict)
    schema: dict[str, Any] = field(default_factory=dict)
    has_default: bool = False
    default_label: str = ""

    @property
    def html_id(self) -> str:
        return "f-" + re.sub(r"[^A-Za-z0-9_-]", "-", self.name)

    @property
    def input_type(self) -> str:
        return "number" if self.kind in ("integer", "number") else "text"

    def walk(self) -> Iterable[Field]:
        yield self
        for child in self.children:
            yield from child.walk()


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (schemas come from outside)."""
    return value if isinstance(value, dict) else {}


def schema_type(schema: Mapping[str, Any]) -> str:
    """The single JSON type of a property; unions of one type plus null count as that type."""
    declared = schema.get("type")
    if isinstance(declared, list):
        non_null = [t for t in declared if t != "null"]
        declared = non_null[0] if len(non_null) == 1 else None
    if isinstance(declared, str):
        return declared
    if schema.get("enum"):
        return _json_type(schema["enum"][0])
    if "properties" in schema:
        return "object"
    return ""


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def field_kind(schema: Mapping[str, Any]) -> str:
    if schema.get("enum"):
        return "enum"
    kind = schema_type(schema)
    if kind in _SCALARS:
        return kind
    if kind == "array":
        items = as_dict(schema.get("items"))
        if items.get("enum"):
            return "multi"
        if schema_type(items) in _SCALARS:
            return "lines"
        return "json"
    if kind == "object" and isinstance(schema.get("properties"), dict) and schema["properties"]:
        return "object"
    return "json"


def _type_label(schema: Mapping[str, Any], kind: str) -> str:
    if kind == "enum":
        return "one of " + ", ".join(_show(v) for v in schema["enum"])
    if kind in ("lines", "multi"):
        items = schema.get("items") or {}
        return f"list of {schema_type(items) or 'values'}"
    if kind == "json":
        return f"{schema_type(schema) or 'any'} (JSON)"
    if kind == "object":
        return "object"
    fmt = schema.get("format")
    return f"{kind}, {fmt}" if fmt else kind


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


# --- building -------------------------------------------------------------------------------

def build_fields(
    schema: Mapping[str, Any] | None,
    *,
    prefix: str,
    data: FormData | None = None,
    initial: Mapping[str, Any] | None = None,
) -> list[Field]:
    """Fields for every property of ``schema`` (an object schema).

    Values come from ``data`` (a submitted form) when given, else from ``initial`` (e.g. the
    model's call), else from the schema's ``default``.
    """
    schema = schema or {}
    properties = as_dict(schema.get("properties"))
    required = set(schema.get("required") or [])
    return [
        _build_field(name, sub if isinstance(sub, dict) else {}, prefix=prefix, path=(name,),
                     required=name in required, data=data, initial=initial)
        for name, sub in properties.items()
    ]


def _build_field(
    name: str,
    schema: dict[str, Any],
    *,
    prefix: str,
    path: tuple[str, ...],
    required: bool,
    data: FormData | None,
    initial: Mapping[str, Any] | None,
) -> Field:
    kind = field_kind(schema)
    html_name = prefix + ".".join(path)
    f = Field(
        name=html_name, path=path, label=name, kind=kind, required=required,
        description=str(schema.get("description") or ""), type_label=_type_label(schema, kind), schema=schema,
    )
    if "default" in schema:
        f.has_default = True
        f.default_label = _show(schema["default"])
    if kind == "object":
        sub_required = set(schema.get("required") or [])
        nested_initial = initial.get(name) if initial is not None else None
        f.children = [
            _build_field(child, sub if isinstance(sub, dict) else {}, prefix=prefix, path=(*path, child),
                         required=child in sub_required, data=data,
                         initial=nested_initial if isinstance(nested_initial, dict) else None)
            for child, sub in schema["properties"].items()
        ]
        return f
    if kind == "enum":
        f.choices = [(json.dumps(v), _show(v)) for v in schema["enum"]]
    elif kind == "multi":
        f.choices = [(json.dumps(v), _show(v)) for v in schema["items"]["enum"]]
    elif kind == "boolean":
        f.choices = [("true", "true"), ("false", "false")]
    _set_attrs(f)
    present, value = False, None
    if data is not None:
        if kind == "multi":
            f.raw_list = [str(v) for v in data.getlist(html_name)]
        else:
            f.raw = str(data.get(html_name) or "")
    else:
        if initial is not None and name in initial:
            present, value = True, initial[name]
        elif "default" in schema:
            present, value = True, schema["default"]
        if present:
            _set_raw(f, value)
    if kind == "enum" and f.raw and f.raw not in {c[0] for c in f.choices}:
        # Keep the model's disallowed value visible (and selected) so the reviewer sees it.
        f.choices.append((f.raw, f"{_raw_label(f.raw)} (not allowed)"))
    if kind == "multi":
        known = {c[0] for c in f.choices}
        f.choices += [(r, f"{_raw_label(r)} (not allowed)") for r in f.raw_list if r not in known]
    return f


def _raw_label(raw: str) -> str:
    try:
        return _show(json.loads(raw))
    except ValueError:
        return raw


def _set_attrs(f: Field) -> None:
    s = f.schema
    if f.kind == "integer":
        f.attrs["step"] = "1"
    elif f.kind == "number":
        f.attrs["step"] = "any"
    for key, attr in (("minimum", "min"), ("maximum", "max")):
        if f.kind in ("integer", "number") and isinstance(s.get(key), int | float):
            f.attrs[attr] = str(s[key])
    if f.kind == "string":
        for key, attr in (("minLength", "minlength"), ("maxLength", "maxlength")):
            if isinstance(s.get(key), int):
                f.attrs[attr] = str(s[key])
    if f.kind == "lines":
        f.hint = "one item per line"
    elif f.kind == "json":
        f.hint = "JSON"


def _set_raw(f: Field, value: Any) -> None:
    if f.kind == "multi":
        f.raw_list = [json.dumps(v) for v in value] if isinstance(value, list) else [json.dumps(value)]
    elif f.kind == "enum":
        f.raw = json.dumps(value)
    elif f.kind == "boolean":
        f.raw = ("true" if value else "false") if isinstance(value, bool) else _show(value)
    elif f.kind == "lines":
        f.raw = "\n".join(_show(v) for v in value) if isinstance(value, list) else _show(value)
    elif f.kind == "json":
        f.raw = json.dumps(value, indent=2, ensure_ascii=False)
    elif f.kind == "string":
        f.raw = value if isinstance(value, str) else json.dumps(value)
    else:
        f.raw = _show(value)


# --- parsing --------------------------------------------------------------------------------

_MISSING = object()


def parse_fields(fields: list[Field], *, allow_prev_refs: bool = False) -> tuple[dict[str, Any], dict[str, str]]:
    """Turn the fields' raw values into arguments; errors by field name for what cannot be read.

    Empty optional fields are left out of the arguments (a form cannot tell "" from omitted).
    """
    arguments: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in fields:
        value = _parse_field(f, errors, allow_prev_refs)
        if value is not _MISSING:
            arguments[f.path[-1]] = value
    return arguments, errors


def _parse_field(f: Field, errors: dict[str, str], allow_prev_refs: bool) -> Any:
    if f.kind == "object":
        nested, _ = parse_fields(f.children, allow_prev_refs=allow_prev_refs)
        for child in f.children:
            if child.error:
                errors[child.name] = child.error
        return nested if nested else _MISSING
    if f.kind == "multi":
        if not f.raw_list:
            return _MISSING
        try:
            return [json.loads(r) for r in f.raw_list]
        except ValueError:
            return _fail(f, errors, "choose from the listed values")
    raw = f.raw.strip() if f.kind != "string" else f.raw
    if raw == "" or (f.kind == "string" and raw.strip() == ""):
        return _MISSING
    if allow_prev_refs and PREV_REF.match(raw.strip()):
        return raw.strip()
    if f.kind == "string":
        return raw
    if f.kind in ("integer", "number"):
        return _parse_number(f, raw, errors)
    if f.kind == "boolean":
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        return _fail(f, errors, "must be true or false")
    if f.kind == "enum":
        try:
            return json.loads(raw)
        except ValueError:
            return _fail(f, errors, "choose one of the listed values")
    if f.kind == "lines":
        items_type = schema_type(f.schema.get("items") or {})
        values: list[Any] = []
        for n, line in enumerate((x.strip() for x in raw.splitlines()), start=1):
            if not line:
                continue
            item, problem = _coerce_scalar(line, items_type)
            if problem:
                return _fail(f, errors, f"line {n}: {problem}")
            values.append(item)
        return values if values else _MISSING
    try:
        return json.loads(raw)
    except ValueError as exc:
        return _fail(f, errors, f"is not valid JSON ({exc.args[0].split(':')[0]})")


def _fail(f: Field, errors: dict[str, str], message: str) -> Any:
    f.error = message
    errors[f.name] = message
    return _MISSING


def _parse_number(f: Field, raw: str, errors: dict[str, str]) -> Any:
    value, problem = _coerce_scalar(raw, f.kind)
    if problem:
        if f.kind == "integer" and _is_cents(f) and _looks_decimal(raw):
            problem += f"; this amount is in cents, so {raw} dollars is {_cents(raw)}"
        return _fail(f, errors, problem)
    return value


def _coerce_scalar(raw: str, kind: str) -> tuple[Any, str]:
    if kind == "integer":
        if re.fullmatch(r"[+-]?\d+", raw):
            return int(raw), ""
        return None, "must be a whole number (integer)"
    if kind == "number":
        try:
            number = float(raw)
        except ValueError:
            return None, "must be a number"
        if number != number or number in (float("inf"), float("-inf")):
            return None, "must be a finite number"
        return (int(raw) if re.fullmatch(r"[+-]?\d+", raw) else number), ""
    if kind == "boolean":
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true", ""
        return None, "must be true or false"
    return raw, ""


def _is_cents(f: Field) -> bool:
    text = f"{f.label} {f.description}".lower()
    return "cent" in text


def _looks_decimal(raw: str) -> bool:
    return bool(re.fullmatch(r"[+-]?\d*\.\d+", raw.strip()))


def _cents(raw: str) -> int:
    return round(float(raw) * 100)


# --- validation -----------------------------------------------------------------------------

def validate_arguments(
    schema: Mapping[str, Any] | None, arguments: Mapping[str, Any], *, allow_prev_refs: bool = False
) -> list[tuple[tuple[str | int, ...], str]]:
    """Schema errors as (path within the arguments, message); an empty list means valid.

    With ``allow_prev_refs`` a ``"{prev.field}"`` string stands for any value (its type is
    only known once the earlier step has run).
    """
    schema = dict(schema or {"type": "object"})
    instance = dict(arguments)
    if allow_prev_refs:
        refs = {k for k, v in instance.items() if isinstance(v, str) and PREV_REF.match(v)}
        if refs:
            props = dict(schema.get("properties") or {})
            for key in refs:
                props[key] = {}
            schema["properties"] = props
    schema.setdefault("type", "object")
    validator = Draft202012Validator(schema)
    out: list[tuple[tuple[str | int, ...], str]] = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        out.extend(_explain(error))
    return out


def _explain(error: SchemaError) -> list[tuple[tuple[str | int, ...], str]]:
    path = tuple(error.absolute_path)
    validator = error.validator
    value: Any = error.validator_value  # typed loosely by jsonschema (it may be "unset")
    if validator == "required":
        instance = error.instance if isinstance(error.instance, dict) else {}
        return [((*path, name), "is required") for name in value if name not in instance]
    if validator == "additionalProperties":
        instance = error.instance if isinstance(error.instance, dict) else {}
        allowed = set(as_dict(as_dict(error.schema).get("properties")))
        extra = sorted(k for k in instance if k not in allowed)
        return [((*path, name), "is not a parameter of this tool") for name in extra]
    if validator == "type":
        words = " or ".join(_TYPE_WORDS.get(str(t), str(t)) for t in (value if isinstance(value, list) else [value]))
        return [(path, f"must be {words}")]
    if validator == "enum":
        return [(path, "must be one of: " + ", ".join(_show(v) for v in value))]
    if validator == "const":
        return [(path, f"must be {_show(value)}")]
    if validator in ("minimum", "exclusiveMinimum"):
        word = "at least" if validator == "minimum" else "more than"
        return [(path, f"must be {word} {value}")]
    if validator in ("maximum", "exclusiveMaximum"):
        word = "at most" if validator == "maximum" else "less than"
        return [(path, f"must be {word} {value}")]
    if validator == "minLength":
        return [(path, f"must have at least {value} characters")]
    if validator == "maxLength":
        return [(path, f"must have at most {value} characters")]
    if validator == "pattern":
        return [(path, f"must match the pattern {value}")]
    if validator == "minItems":
        return [(path, f"needs at least {value} items")]
    if validator == "maxItems":
        return [(path, f"takes at most {value} items")]
    return [(path, error.message)]


def attach_errors(fields: list[Field], errors: list[tuple[tuple[str | int, ...], str]]) -> list[str]:
    """Put schema errors on the fields they belong to; return those that fit no field."""
    by_path: dict[tuple[str, ...], Field] = {}
    for top in fields:
        for f in top.walk():
            by_path[f.path] = f
    leftover: list[str] = []
    for path, message in errors:
        key = tuple(str(p) for p in path)
        # An array item's error belongs to the array's field: cut the path at the first index.
        cut = next((i for i, p in enumerate(path) if isinstance(p, int)), len(path))
        key = key[:cut]
        target = None
        while key:
            if key in by_path:
                target = by_path[key]
                break
            key = key[:-1]
        if target is None:
            leftover.append((".".join(str(p) for p in path) + " " if path else "") + message)
        elif not target.error:
            target.error = message if cut == len(path) else f"item {path[cut] + 1}: {message}"  # type: ignore[operator]
    return leftover


def find_field(fields: list[Field], name: str) -> Field | None:
    for top in fields:
        for f in top.walk():
            if f.name == name:
                return f
    return None
