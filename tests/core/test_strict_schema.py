"""Tool schemas in OpenAI's strict form, and strict calls read back against the original schema."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ftops.core.strict_schema import (
    MAX_DEPTH,
    MAX_ENUM_VALUES,
    accepts_null,
    strict_function,
    strip_null_optionals,
    to_strict_schema,
)

PAYMENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "amount": {"type": "integer", "minimum": 1, "default": 100, "description": "in cents"},
        "currency": {"type": "string", "enum": ["USD", "EUR"]},
        "note": {"type": "string", "maxLength": 80, "examples": ["rent"]},
        "paid_at": {"type": "string", "format": "date-time"},
        "receipt_url": {"type": "string", "format": "uri"},
    },
    "required": ["amount", "currency"],
}


def test_flat_object_optional_becomes_nullable_and_everything_is_required() -> None:
    result = to_strict_schema(PAYMENT)
    assert result.strict and result.reason == ""
    assert result.schema == {
        "type": "object",
        "properties": {
            "amount": {"type": "integer", "minimum": 1, "description": "in cents"},
            "currency": {"type": "string", "enum": ["USD", "EUR"]},
            "note": {"type": ["string", "null"]},
            "paid_at": {"type": ["string", "null"], "format": "date-time"},
            "receipt_url": {"type": ["string", "null"]},
        },
        "required": ["amount", "currency", "note", "paid_at", "receipt_url"],
        "additionalProperties": False,
    }
    assert result.dropped == ("$.amount.default", "$.note.maxLength", "$.note.examples", "$.receipt_url.format")


def test_the_input_schema_is_not_changed() -> None:
    before = copy.deepcopy(PAYMENT)
    to_strict_schema(PAYMENT)
    assert before == PAYMENT


def test_optional_enum_gets_a_null_branch_not_a_type_list() -> None:
    schema = {"type": "object", "properties": {"unit": {"type": "string", "enum": ["C", "F"]},
                                               "mode": {"const": "fast"}}}
    result = to_strict_schema(schema)
    assert result.schema is not None
    assert result.schema["properties"] == {
        "unit": {"anyOf": [{"type": "string", "enum": ["C", "F"]}, {"type": "null"}]},
        "mode": {"anyOf": [{"const": "fast"}, {"type": "null"}]},
    }


def test_nested_objects_and_arrays_of_objects_recursively() -> None:
    schema = {
        "type": "object",
        "properties": {
            "customer": {"type": "object", "properties": {"id": {"type": "string"}, "email": {"type": "string"}},
                         "required": ["id"]},
            "lines": {"type": "array", "minItems": 1, "uniqueItems": True,
                      "items": {"properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
                                "required": ["sku"]}},
        },
        "required": ["lines"],
    }
    result = to_strict_schema(schema)
    assert result.schema == {
        "type": "object",
        "properties": {
            "customer": {"type": ["object", "null"],
                         "properties": {"id": {"type": "string"}, "email": {"type": ["string", "null"]}},
                         "required": ["id", "email"], "additionalProperties": False},
            "lines": {"type": "array", "minItems": 1,
                      "items": {"type": "object",
                                "properties": {"sku": {"type": "string"}, "qty": {"type": ["integer", "null"]}},
                                "required": ["sku", "qty"], "additionalProperties": False}},
        },
        "required": ["customer", "lines"],
        "additionalProperties": False,
    }


def test_any_of_branches_and_nullable_unions() -> None:
    schema = {"type": "object", "properties": {
        "target": {"anyOf": [{"type": "string"}, {"type": "object", "properties": {"id": {"type": "integer"}}}]},
        "maybe": {"type": ["string", "null"]},
    }, "required": ["maybe"]}
    result = to_strict_schema(schema)
    assert result.schema is not None
    assert result.schema["properties"] == {
        "target": {"anyOf": [{"type": "string"},
                             {"type": "object", "properties": {"id": {"type": ["integer", "null"]}},
                              "required": ["id"], "additionalProperties": False},
                             {"type": "null"}]},
        "maybe": {"type": ["string", "null"]},
    }


def test_local_references_and_definitions() -> None:
    schema = {"type": "object", "$defs": {"money": {"type": "object", "properties": {"cents": {"type": "integer"}},
                                                    "required": ["cents"]}},
              "properties": {"price": {"$ref": "#/$defs/money"}, "fee": {"$ref": "#/$defs/money", "default": {}}},
              "required": ["price"]}
    result = to_strict_schema(schema)
    assert result.schema is not None
    assert result.schema["properties"] == {"price": {"$ref": "#/$defs/money"},
                                           "fee": {"anyOf": [{"$ref": "#/$defs/money"}, {"type": "null"}]}}
    assert result.schema["$defs"]["money"]["additionalProperties"] is False
    assert strip_null_optionals({"price": {"cents": 5}, "fee": None}, schema) == {"price": {"cents": 5}}


def test_a_tool_without_parameters_is_strict() -> None:
    assert to_strict_schema({"type": "object", "properties": {}}).schema == {
        "type": "object", "properties": {}, "required": [], "additionalProperties": False}
    function, reason = strict_function({"name": "ping", "description": "Is it up?"})
    assert (reason, function["strict"], function["parameters"]["required"]) == ("", True, [])


@pytest.mark.parametrize(("schema", "why"), [
    ({"type": "object", "patternProperties": {"^x-": {"type": "string"}}}, "patternProperties"),
    ({"type": "object", "properties": {"a": {"allOf": [{"type": "string"}]}}}, "$.a: allOf"),
    ({"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}}, "$.a: oneOf"),
    ({"type": "object", "properties": {"a": {"type": "string", "not": {"const": "x"}}}}, "$.a: not"),
    ({"type": "object", "properties": {"meta": {"type": "object", "additionalProperties": {"type": "string"}}}},
     "$.meta: additionalProperties"),
    ({"type": "object", "properties": {"meta": {"type": "object"}}}, "$.meta: an object without properties"),
    ({"type": "object", "properties": {"tags": {"type": "array"}}}, "$.tags: an array needs one items schema"),
    ({"type": "object", "properties": {"anything": {}}}, "$.anything: a schema without a type"),
    ({"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}}, "$.a: only references"),
    ({"anyOf": [{"type": "object"}]}, "root of a strict schema may not be anyOf"),
    ({"type": "array", "items": {"type": "string"}}, "root of a strict schema must be an object"),
    ("not a schema", "not a JSON Schema object"),
])
def test_schemas_without_a_strict_form_fall_back_with_a_reason(schema: Any, why: str) -> None:
    result = to_strict_schema(schema)
    assert (result.strict, result.schema) == (False, None)
    assert why in result.reason


def _nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": {"leaf": {"type": "string"}}, "required": ["leaf"]}
    for _ in range(levels - 1):
        schema = {"type": "object", "properties": {"inner": schema}, "required": ["inner"]}
    return schema


def test_depth_limit() -> None:
    assert to_strict_schema(_nested(MAX_DEPTH)).strict
    deep = to_strict_schema(_nested(MAX_DEPTH + 1))
    assert not deep.strict
    assert f"objects nest deeper than {MAX_DEPTH} levels" in deep.reason


def test_size_limits() -> None:
    many = {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(5001)}}
    assert "5001 object properties" in to_strict_schema(many).reason
    enums = {"type": "object", "properties": {f"e{i}": {"type": "string", "enum": [f"v{j}" for j in range(100)]}
                                              for i in range(11)}}
    assert f"1100 enum values, over strict mode's {MAX_ENUM_VALUES}" in to_strict_schema(enums).reason
    big = {"type": "object", "properties": {"e": {"type": "string", "enum": ["x" * 70 + str(j) for j in range(251)]}}}
    assert "an enum of more than 250 values" in to_strict_schema(big).reason


def test_strict_function_keeps_a_tool_that_cannot_be_strict_unchanged() -> None:
    function = {"name": "tag", "parameters": {"type": "object", "patternProperties": {".*": {"type": "string"}}}}
    out, reason = strict_function(function)
    assert out == function and "strict" not in out
    assert reason.startswith("$: patternProperties")


def test_strip_removes_null_optionals_only() -> None:
    schema = {
        "type": "object",
        "properties": {
            "amount": {"type": "integer"},
            "note": {"type": "string"},
            "memo": {"type": ["string", "null"]},  # the original already takes null: the model's answer
            "customer": {"type": "object", "properties": {"id": {"type": "string"}, "email": {"type": "string"}},
                         "required": ["id"]},
            "lines": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"},
                                                                                 "qty": {"type": "integer"}}}},
            "when": {"anyOf": [{"type": "string"},
                               {"type": "object", "properties": {"day": {"type": "string"},
                                                                 "hour": {"type": "integer"}}}]},
        },
        "required": ["amount", "note"],
    }
    arguments = {"amount": None, "note": None, "memo": None,
                 "customer": {"id": "c1", "email": None},
                 "lines": [{"sku": "a", "qty": None}, {"sku": None, "qty": 2}],
                 "when": {"day": "mon", "hour": None}}
    assert strip_null_optionals(arguments, schema) == {
        "amount": None, "note": None, "memo": None,  # required ones stay (and fail validation as they should)
        "customer": {"id": "c1"},
        "lines": [{"sku": "a"}, {"qty": 2}],
        "when": {"day": "mon"},
    }
    assert arguments["customer"] == {"id": "c1", "email": None}  # a new value; the answer is not changed


def test_strip_undoes_the_strict_rewrite_for_every_optional() -> None:
    strict = to_strict_schema(PAYMENT).schema
    assert strict is not None
    answer = {name: None for name in strict["required"]} | {"amount": 500, "currency": "EUR"}
    assert strip_null_optionals(answer, PAYMENT) == {"amount": 500, "currency": "EUR"}


def test_accepts_null() -> None:
    assert accepts_null({"type": ["string", "null"]})
    assert accepts_null({"anyOf": [{"type": "string"}, {"type": "null"}]})
    assert accepts_null({"enum": ["a", None]})
    assert not accepts_null({"type": ["string", "null"], "enum": ["a"]})
    assert not accepts_null({"type": "string"})
    assert accepts_null({"$ref": "#/$defs/n"}, {"$defs": {"n": {"type": "null"}}})


def test_python_and_java_type_names_go_out_as_json_schema_types() -> None:
    bfcl = {"type": "dict", "properties": {"base": {"type": "integer"}, "height": {"type": "float"},
                                           "sides": {"type": "tuple", "items": {"type": "Double"}}},
            "required": ["base", "height"]}
    assert to_strict_schema(bfcl).schema == {
        "type": "object",
        "properties": {"base": {"type": "integer"}, "height": {"type": "number"},
                       "sides": {"type": ["array", "null"], "items": {"type": "number"}}},
        "required": ["base", "height", "sides"], "additionalProperties": False}
    assert "type 'any' is not a JSON Schema type" in to_strict_schema(
        {"type": "object", "properties": {"x": {"type": "any"}}}).reason
