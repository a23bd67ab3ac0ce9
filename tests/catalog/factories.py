"""Small per-tool documents and tool lists for catalog tests."""

from __future__ import annotations

import copy
from typing import Any

SHIPPING_PARAMS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "pattern": r"^ORD-\d{5}$"},
        "carrier": {"type": "string", "enum": ["ups", "fedex", "dhl"]},
        "weight_grams": {"type": "integer", "minimum": 1},
    },
    "required": ["order_id", "carrier"],
    "additionalProperties": False,
}


def shipping_doc(*, parameters: dict[str, Any] | None = None, with_parameters: bool = True) -> dict[str, Any]:
    """One per-tool document in the seed's format (service, version, tool, examples, edge cases, vocabulary)."""
    doc: dict[str, Any] = {
        "service": "shipping",
        "version": "0.9.0",
        "tool": "create_label",
        "description": "Create a shipping label for an order.",
        "training_examples": [
            {"user_query": "Ship ORD-12345 with UPS", "correct_tool": "create_label",
             "correct_parameters": {"order_id": "ORD-12345", "carrier": "ups"},
             "explanation": "Carrier names are lower-case codes.",
             "common_mistakes": [{"wrong_params": {"carrier": "UPS"}, "reason": "use the lower-case code"}]},
            {"user_query": "Label for ORD-54321 via FedEx, it weighs 2.5 kg", "correct_tool": "create_label",
             "correct_parameters": {"order_id": "ORD-54321", "carrier": "fedex", "weight_grams": 2500},
             "explanation": "Weights are grams."},
            {"user_query": "Ship the newest order of CUS-10001 with DHL",
             "correct_sequence": [
                 {"tool": "get_latest_order", "parameters": {"customer_id": "CUS-10001"},
                  "result": {"order_id": "ORD-77777"}},
                 {"tool": "create_label", "parameters": {"order_id": "{prev.order_id}", "carrier": "dhl"}},
             ],
             "explanation": "Find the order first."},
        ],
        "edge_cases": [
            {"scenario": "Missing carrier", "user_query": "Ship ORD-11111",
             "correct_behavior": {"action": "ask_for_details", "required_fields": ["carrier"],
                                  "question": "Which carrier: UPS, FedEx or DHL?"}},
            {"scenario": "Vague", "user_query": "Ship it the fast way",
             "correct_behavior": {"action": "clarify", "question": "Which order, and which carrier is 'fast'?",
                                  "reason": "No order and no carrier given"}},
            {"scenario": "Unrelated", "user_query": "What's the weather in Oslo?",
             "correct_behavior": {"action": "abstain", "reason": "No shipping tool answers weather questions"}},
        ],
        "domain_vocabulary": {"weights": {"rule": "grams, integers"}},
    }
    if with_parameters:
        doc["parameters"] = copy.deepcopy(parameters or SHIPPING_PARAMS)
    return doc


def openai_tools() -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {
            "name": "get_weather", "description": "Current weather for a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                             "unit": {"type": "string", "enum": ["c", "f"]}},
                           "required": ["city"]}}},
        {"type": "function", "function": {
            "name": "get_time", "description": "Local time in a timezone.",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}},
    ]
