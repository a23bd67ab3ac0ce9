"""JSON Schema helpers for tool parameters: canonical hashing, diffs, inference, BFCL types.

Pure functions, no Django. ``schema_diff`` decides whether a new version of a tool's
``parameters`` breaks callers:

breaking   a parameter removed, renamed, retyped (narrowed), newly required, enum values
           removed, or a constraint tightened (pattern/format changed, bounds narrowed)
additive   anything else: new optional parameters, enum values added, a parameter no longer
           required, looser bounds, description changes
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

BREAKING_KINDS = frozenset({"removed", "renamed", "retyped", "new_required", "made_required", "enum_narrowed",
                            "constraint_tightened"})

# BFCL and Python-flavoured type names -> JSON Schema types.
TYPE_ALIASES = {
    "dict": "object", "object": "object", "float": "number", "double": "number", "number": "number",
    "integer": "integer", "int": "integer", "long": "integer", "string": "string", "str": "string",
    "char": "string", "boolean": "boolean", "bool": "boolean", "array": "array", "list": "array",
    "tuple": "array", "set": "array", "null": "null", "any": "", "Any": "",
}


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(*, parameters: dict[str, Any], description: str = "") -> str:
    """Identity of a schema version: equal content gives an equal hash whatever the key order."""
    return hashlib.sha256(canonical_json({"parameters": parameters, "description": description}).encode()).hexdigest()


@dataclass(frozen=True)
class Change:
    kind: str  # removed | renamed | retyped | new_required | made_required | enum_narrowed | constraint_tightened
    #            added | made_optional | enum_widened | constraint_loosened | description_changed
    path: str  # dotted parameter path, "" for the tool itself
    detail: str
    new_name: str = ""  # for "renamed": the parameter's new name

    @property
    def breaking(self) -> bool:
        return self.kind in BREAKING_KINDS

    def as_dict(self) -> dict[str, Any]:
        out = {"kind": self.kind, "path": self.path, "detail": self.detail, "breaking": self.breaking}
        if self.new_name:
            out["new_name"] = self.new_name
        return out


@dataclass(frozen=True)
class SchemaDiff:
    change: str  # "none" | "additive" | "breaking"
    details: list[Change] = field(default_factory=list)

    @property
    def breaking(self) -> list[Change]:
        return [c for c in self.details if c.breaking]

    @property
    def renames(self) -> dict[str, str]:
        """Top-level parameters that look renamed: {old name: new name} (a guess, for a human to confirm)."""
        return {c.path: c.new_name for c in self.details if c.kind == "renamed" and "." not in c.path}

    def as_dict(self) -> dict[str, Any]:
        return {"change": self.change, "details": [c.as_dict() for c in self.details], "renames": self.renames}


def schema_diff(old: dict[str, Any], new: dict[str, Any], *, old_description: str = "",
                new_description: str = "") -> SchemaDiff:
    """Classify the change from ``old`` to ``new`` parameter schemas (both type object)."""
    changes: list[Change] = []
    if old_description.strip() != new_description.strip():
        changes.append(Change("description_changed", "", "the tool description changed"))
    _diff_object(old or {}, new or {}, "", changes)
    if not changes:
        return SchemaDiff("none", [])
    return SchemaDiff("breaking" if any(c.breaking for c in changes) else "additive", changes)


def _types(schema: dict[str, Any]) -> set[str]:
    raw = schema.get("type")
    if raw is None:
        union = schema.get("anyOf") or schema.get("oneOf")
        if isinstance(union, list) and union:
            members = [_types(m) if isinstance(m, dict) else set() for m in union]
            return set() if any(not m for m in members) else set().union(*members)
        if "enum" in schema:
            return {_json_type(v) for v in schema["enum"]}
        if "properties" in schema:
            return {"object"}
        return set()  # unconstrained
    return set(raw) if isinstance(raw, list) else {str(raw)}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "array" if isinstance(value, list) else "object"


def _accepts(new: set[str], old: set[str]) -> bool:
    """Does every value valid for the old types stay valid for the new ones?"""
    if not new:
        return True
    if not old:
        return False
    expanded = set(new) | ({"integer"} if "number" in new else set())
    return old <= expanded


def _diff_object(old: dict[str, Any], new: dict[str, Any], prefix: str, changes: list[Change]) -> None:
    old_props: dict[str, Any] = old.get("properties") or {}
    new_props: dict[str, Any] = new.get("properties") or {}
    old_req, new_req = set(old.get("required") or []), set(new.get("required") or [])
    removed = [n for n in old_props if n not in new_props]
    added = [n for n in new_props if n not in old_props]

    renamed: dict[str, str] = {}
    for name in removed:
        match = _rename_partner(name, old_props[name], [a for a in added if a not in renamed.values()], new_props)
        if match:
            renamed[name] = match
    for old_name, new_name in renamed.items():
        changes.append(Change("renamed", prefix + old_name, f"'{old_name}' is now '{new_name}'", new_name))
    for name in removed:
        if name not in renamed:
            changes.append(Change("removed", prefix + name, f"parameter '{name}' was removed"))
    for name in added:
        if name in renamed.values():
            continue
        if name in new_req:
            changes.append(Change("new_required", prefix + name, f"new required parameter '{name}'"))
        else:
            changes.append(Change("added", prefix + name, f"new optional parameter '{name}'"))

    for name in old_props:
        if name not in new_props:
            continue
        path = prefix + name
        if name in new_req and name not in old_req:
            changes.append(Change("made_required", path, f"'{name}' is now required"))
        elif name in old_req and name not in new_req:
            changes.append(Change("made_optional", path, f"'{name}' is no longer required"))
        _diff_property(old_props[name] or {}, new_props[name] or {}, path, changes)

    old_extra, new_extra = old.get("additionalProperties", True), new.get("additionalProperties", True)
    if old_extra is not False and new_extra is False and prefix == "":
        changes.append(Change("constraint_tightened", "", "additional properties are no longer allowed"))


def _rename_partner(name: str, schema: dict[str, Any], candidates: list[str],
                    new_props: dict[str, Any]) -> str | None:
    """An added parameter that looks like ``name`` under a new name: same type and shape or a close name."""
    best, best_score = None, 0.0
    for cand in candidates:
        other = new_props[cand] or {}
        if _types(schema) != _types(other):
            continue
        same_shape = _shape(schema) == _shape(other)
        similarity = difflib.SequenceMatcher(None, name, cand).ratio()
        score = similarity + (1.0 if same_shape else 0.0)
        if (same_shape or similarity >= 0.6) and score > best_score:
            best, best_score = cand, score
    return best


def _shape(schema: dict[str, Any]) -> str:
    return canonical_json({k: v for k, v in schema.items() if k not in ("description", "title", "examples")})


_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems")


def _diff_property(old: dict[str, Any], new: dict[str, Any], path: str, changes: list[Change]) -> None:
    old_types, new_types = _types(old), _types(new)
    if old_types != new_types:
        if _accepts(new_types, old_types):
            changes.append(Change("constraint_loosened", path,
                                  f"type widened from {sorted(old_types) or 'any'} to {sorted(new_types) or 'any'}"))
        else:
            changes.append(Change("retyped", path,
                                  f"type changed from {sorted(old_types) or 'any'} to {sorted(new_types) or 'any'}"))
            return  # the finer checks below compare unlike things

    if "enum" in old or "enum" in new:
        old_enum = old.get("enum")
        new_enum = new.get("enum")
        if old_enum is None:
            changes.append(Change("enum_narrowed", path, f"values now limited to {new_enum}"))
        elif new_enum is None:
            changes.append(Change("enum_widened", path, "any value of the type is now allowed"))
        else:
            gone = [v for v in old_enum if v not in new_enum]
            extra = [v for v in new_enum if v not in old_enum]
            if gone:
                changes.append(Change("enum_narrowed", path, f"values removed: {gone}"))
            if extra:
                changes.append(Change("enum_widened", path, f"values added: {extra}"))

    for key in ("pattern", "format", "const"):
        if old.get(key) != new.get(key):
            if new.get(key) is None:
                changes.append(Change("constraint_loosened", path, f"{key} removed"))
            else:
                changes.append(Change("constraint_tightened", path, f"{key} is now {new.get(key)!r}"))

    for key in _LOWER_BOUNDS + _UPPER_BOUNDS:
        before, after = old.get(key), new.get(key)
        if before == after or (isinstance(before, bool) or isinstance(after, bool)):
            continue
        lower = key in _LOWER_BOUNDS
        if after is None:
            tighter = False
        elif before is None:
            tighter = True
        else:
            tighter = after > before if lower else after < before
        changes.append(Change("constraint_tightened" if tighter else "constraint_loosened", path,
                              f"{key} {before!r} -> {after!r}"))

    if "object" in new_types and ("properties" in old or "properties" in new):
        _diff_object(old, new, path + ".", changes)
    if "array" in new_types and isinstance(old.get("items"), dict) and isinstance(new.get("items"), dict):
        _diff_property(old["items"], new["items"], path + "[]", changes)
    if (old.get("description") or "") != (new.get("description") or "") and not changes_at(changes, path):
        changes.append(Change("description_changed", path, "description changed"))


def changes_at(changes: list[Change], path: str) -> bool:
    return any(c.path == path for c in changes)


# ---------------------------------------------------------------- normalising foreign schemas

def normalize_schema(schema: Any) -> dict[str, Any]:
    """A JSON Schema object from a BFCL/OpenAI/MCP ``parameters`` value (BFCL type names mapped)."""
    if not isinstance(schema, dict):
        return {"type": "object", "properties": {}}
    out = _normalize(schema)
    if "type" not in out:
        out["type"] = "object"
    out.setdefault("properties", {})
    return out


def _normalize(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type":
            mapped = _map_type(value)
            if mapped:
                out["type"] = mapped
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {k: _normalize(v) if isinstance(v, dict) else {} for k, v in value.items()}
        elif key == "items" and isinstance(value, dict):
            out["items"] = _normalize(value)
        elif key in ("anyOf", "oneOf", "allOf") and isinstance(value, list):
            out[key] = [_normalize(v) if isinstance(v, dict) else v for v in value]
        else:
            out[key] = value
    return out


def _map_type(value: Any) -> str | list[str] | None:
    if isinstance(value, list):
        names = [TYPE_ALIASES.get(str(v), str(v)) for v in value]
        return [n for n in names if n] or None
    return TYPE_ALIASES.get(str(value), str(value)) or None


# ---------------------------------------------------------------- inference from examples

def infer_schema(argument_sets: list[dict[str, Any]]) -> dict[str, Any]:
    """A parameters schema that accepts every example's arguments.

    A parameter present in every example is required; types are unioned; string values
    that are ``{prev.x}`` references say nothing about the type and are skipped.
    """
    seen: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    samples: dict[str, list[Any]] = {}
    for args in argument_sets:
        for name, value in args.items():
            counts[name] = counts.get(name, 0) + 1
            if isinstance(value, str) and value.startswith("{prev.") and value.endswith("}"):
                seen.setdefault(name, set())
                continue
            seen.setdefault(name, set()).add(_json_type(value))
            samples.setdefault(name, []).append(value)
    properties: dict[str, Any] = {}
    for name in sorted(seen):
        types = seen[name]
        if {"integer", "number"} <= types:
            types = (types - {"integer"}) | {"number"}
        prop: dict[str, Any] = {}
        if len(types) == 1:
            prop["type"] = next(iter(types))
        elif types:
            prop["type"] = sorted(types)
        if prop.get("type") == "array":
            item_types = {_json_type(v) for values in samples.get(name, []) for v in values}
            if len(item_types) == 1:
                prop["items"] = {"type": next(iter(item_types))}
        properties[name] = prop
    required = sorted(n for n, c in counts.items() if c == len(argument_sets)) if argument_sets else []
    return {"type": "object", "properties": properties, "required": required}
