"""Schema inference for per-tool documents that publish no ``parameters``."""

from __future__ import annotations

from typing import Any

from ftops.catalog.importers import asked_fields, infer_tool_schema, lenient_ask_schema


def _doc(edge_fields: list[str], calls: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "service": "billing", "tool": "create_invoice",
        "training_examples": [{"user_query": f"q{i}", "correct_tool": "create_invoice", "correct_parameters": args}
                              for i, args in enumerate(calls)],
        "edge_cases": [{"user_query": "Invoice someone", "correct_behavior": {
            "action": "ask_for_details", "required_fields": edge_fields, "question": "Who, and how much?"}}],
    }


def test_asked_fields_are_parameters_and_required_unless_a_call_leaves_them_out() -> None:
    doc = _doc(["amount_cents", "customer_id", "due_date"],
               [{"amount_cents": 100, "customer_id": "c1"}, {"amount_cents": 200, "customer_id": "c2", "memo": "x"}])

    schema = infer_tool_schema([doc], "create_invoice")

    assert schema == {"type": "object", "required": ["amount_cents", "customer_id"], "properties": {
        "amount_cents": {"type": "integer"}, "customer_id": {"type": "string"}, "due_date": {},
        "memo": {"type": "string"}}}


def test_with_no_example_calls_the_asked_fields_are_the_required_ones() -> None:
    doc = _doc(["customer_id"], [])
    assert infer_tool_schema([doc], "create_invoice") == {
        "type": "object", "required": ["customer_id"], "properties": {"customer_id": {}}}
    assert asked_fields([doc], "other_tool") == []


def test_lenient_schema_only_adds_known_parameters() -> None:
    parameters = {"type": "object", "required": ["amount"], "properties": {"amount": {}, "customer_id": {}}}
    assert lenient_ask_schema(parameters, ["amount", "customer_id", "nope"])["required"] == ["amount", "customer_id"]
    assert lenient_ask_schema(parameters, ["amount"]) is parameters
    assert parameters["required"] == ["amount"]  # not modified
