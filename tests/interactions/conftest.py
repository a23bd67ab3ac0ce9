"""Catalog fixtures for ingest tests, built directly so they do not depend on the importer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ftops.catalog.models import Service, Tool, ToolSchemaVersion
from ftops.interactions.verdicts import schema_hash

PAYMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "amount_cents": {"type": "integer", "minimum": 1, "description": "Amount in cents"},
        "currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]},
        "customer_id": {"type": "string"},
        "customer_email": {"type": "string"},
    },
    "required": ["amount_cents", "currency"],
}
ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "pattern": "^ORD-[0-9]+$"},
        "fulfillment_state": {"type": "string", "enum": ["awaiting_shipment", "shipped", "delivered"]},
    },
    "required": ["order_id"],
    "additionalProperties": False,
}


def add_tool(service: Service, name: str, parameters: dict[str, Any] | None) -> Tool:
    tool = Tool.objects.create(service=service, name=name, description=f"{name} tool")
    if parameters is not None:
        version = ToolSchemaVersion.objects.create(
            tool=tool, number=1, parameters=parameters, content_hash=schema_hash(parameters)
        )
        tool.current_version = version
        tool.save(update_fields=["current_version"])
    return tool


@pytest.fixture
def catalog(db: Any) -> dict[str, Service]:
    payments = Service.objects.create(name="payments", display_name="Payments")
    orders = Service.objects.create(name="orders", display_name="Orders")
    add_tool(payments, "create_payment", PAYMENT_SCHEMA)
    add_tool(payments, "legacy_refund", None)  # a tool without a published schema
    add_tool(orders, "get_order", ORDER_SCHEMA)
    return {"payments": payments, "orders": orders}


@pytest.fixture
def payload() -> Callable[..., dict[str, Any]]:
    """payload("id-1", user_feedback=2) -> a valid ingest payload with overrides."""

    def _make(external_id: str = "int-1", **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": external_id,
            "service": "payments",
            "timestamp": "2025-03-01T10:00:00Z",
            "messages": [{"role": "user", "content": "Charge cus_1001 $12.50 please"}],
            "tools": ["create_payment"],
            "tool_calls": [{"name": "create_payment", "arguments": {"amount_cents": 1250, "currency": "USD",
                                                                    "customer_id": "cus_1001"}}],
            "response_text": "Done.",
            "task_type": "payment",
            "user_feedback": 5,
            "success": True,
            "confidence": 0.9,
            "latency_ms": 420,
            "tokens_used": 180,
            "model_version": "acme-tools-1.0.0",
            "metadata": {"channel": "chat"},
        }
        body.update(overrides)
        return {k: v for k, v in body.items() if v is not ...}

    return _make
