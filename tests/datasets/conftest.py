"""Factories for curation tests: a small catalog built straight through the ORM."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from ftops.catalog.models import SchemaChange, Service, Tool, ToolSchemaVersion

PAYMENT_TOOLS: dict[str, dict[str, Any]] = {
    "refund_payment": {
        "description": "Refund a captured payment, fully or partially.",
        "parameters": {
            "type": "object",
            "properties": {
                "payment_id": {"type": "string", "description": "Payment id, e.g. pay_123"},
                "amount": {"type": "number", "minimum": 0},
                "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]},
                "reason": {"type": "string"},
            },
            "required": ["payment_id", "amount"],
        },
    },
    "get_order": {
        "description": "Look up an order by its id.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    },
    "charge_card": {
        "description": "Charge a stored card.",
        "parameters": {
            "type": "object",
            "properties": {
                "customer_id": {"type": "string"},
                "amount": {"type": "number"},
                "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]},
            },
            "required": ["customer_id", "amount", "currency"],
        },
    },
}


def schema_hash(parameters: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()


def add_tool(service: Service, name: str, description: str, parameters: dict[str, Any]) -> Tool:
    tool = Tool.objects.create(service=service, name=name, description=description)
    version = ToolSchemaVersion.objects.create(
        tool=tool, number=1, description=description, parameters=parameters, content_hash=schema_hash(parameters),
        change=SchemaChange.INITIAL,
    )
    tool.current_version = version
    tool.save(update_fields=["current_version"])
    return tool


def new_schema_version(tool: Tool, parameters: dict[str, Any], change: str = SchemaChange.BREAKING,
                       diff: dict[str, Any] | None = None) -> ToolSchemaVersion:
    number = (tool.versions.order_by("-number").first().number or 0) + 1  # type: ignore[union-attr]
    version = ToolSchemaVersion.objects.create(
        tool=tool, number=number, description=tool.description, parameters=parameters,
        content_hash=schema_hash(parameters), change=change, diff=diff or {},
    )
    tool.current_version = version
    tool.save(update_fields=["current_version"])
    return version


@pytest.fixture
def payments(db: Any) -> Service:
    service = Service.objects.create(name="payments", display_name="Payments")
    for name, spec in PAYMENT_TOOLS.items():
        add_tool(service, name, spec["description"], spec["parameters"])
    return service


@pytest.fixture
def make_service(db: Any) -> Callable[..., Service]:
    def _make(name: str, tools: dict[str, dict[str, Any]]) -> Service:
        service = Service.objects.create(name=name)
        for tool_name, spec in tools.items():
            add_tool(service, tool_name, spec.get("description", ""), spec["parameters"])
        return service

    return _make


def refund_expected(payment_id: str = "pay_1", amount: float = 20.0) -> dict[str, Any]:
    return {"calls": [{"name": "refund_payment",
                       "arguments": {"payment_id": [payment_id], "amount": [amount], "currency": ["EUR", ""]}}]}
