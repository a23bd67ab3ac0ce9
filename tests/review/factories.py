"""Review test data built straight through the ORM: a payments service and failed interactions."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import Group
from django.utils import timezone

from ftops.catalog.models import Service, Tool, ToolSchemaVersion
from ftops.interactions.models import CallVerdict, Interaction

REFUND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "payment_id": {"type": "string", "description": "Payment id, e.g. pay_123"},
        "amount_cents": {"type": "integer", "minimum": 1, "description": "Amount to refund in cents (4999 = $49.99)"},
        "currency": {"type": "string", "enum": ["USD", "EUR"], "default": "USD", "description": "ISO currency"},
        "reason": {"type": "string", "description": "Why the refund is made"},
    },
    "required": ["payment_id", "amount_cents"],
    "additionalProperties": False,
}
ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "fulfillment_state": {"type": "string", "enum": ["awaiting_shipment", "shipped", "delivered"]},
    },
    "required": ["order_id"],
}
CUSTOMER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "customer": {
            "type": "object",
            "description": "Who to update",
            "properties": {"id": {"type": "integer"}, "email": {"type": "string"}},
            "required": ["id"],
        },
        "tags": {"type": "array", "items": {"type": "string"}, "description": "Labels to set"},
        "scores": {"type": "array", "items": {"type": "integer"}},
        "channels": {"type": "array", "items": {"type": "string", "enum": ["email", "sms", "push"]}},
        "notify": {"type": "boolean", "default": False},
        "discount": {"type": "number", "maximum": 50},
        "extra": {"type": "object"},
    },
    "required": ["customer"],
}


def add_tool(service: Service, name: str, parameters: dict[str, Any], description: str = "") -> Tool:
    tool = Tool.objects.create(service=service, name=name, description=description or f"The {name} tool")
    version = ToolSchemaVersion.objects.create(
        tool=tool, number=1, description=description or f"The {name} tool", parameters=parameters,
        content_hash=hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest(),
    )
    tool.current_version = version
    tool.save(update_fields=["current_version"])
    return tool


def make_payments() -> Service:
    service = Service.objects.create(name="payments", display_name="Payments")
    add_tool(service, "refund_payment", REFUND_SCHEMA, "Refund a captured payment")
    add_tool(service, "get_order", ORDER_SCHEMA, "Look up an order")
    add_tool(service, "update_customer", CUSTOMER_SCHEMA, "Update a customer")
    return service


def openai_tools(service: Service) -> list[dict[str, Any]]:
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description,
                                           "parameters": t.current_version.parameters}}
        for t in Tool.objects.filter(service=service).select_related("current_version").order_by("name")
    ]


_counter = {"n": 0}


def make_interaction(
    service: Service,
    *,
    query: str = "Refund $49.99 on payment pay_123",
    calls: list[dict[str, Any]] | None = None,
    failure_kind: str = "type_error",
    is_failure: bool = True,
    when: datetime | None = None,
    expected_calls: list[dict[str, Any]] | None = None,
    expected_behavior: str = "call",
    external_id: str | None = None,
    messages: list[dict[str, Any]] | None = None,
) -> Interaction:
    _counter["n"] += 1
    if calls is None:
        calls = [{"name": "refund_payment", "arguments": {"payment_id": "pay_123", "amount_cents": 49.99}}]
    simulated: dict[str, Any] = {"failure": failure_kind if is_failure else None,
                                 "expected_behavior": expected_behavior}
    if expected_calls is not None:
        simulated["expected_calls"] = expected_calls
    return Interaction.objects.create(
        external_id=external_id or f"int-{_counter['n']}",
        body_hash="x" * 64,
        service=service,
        timestamp=when or timezone.now() - timedelta(minutes=_counter["n"]),
        messages=messages if messages is not None else [
            {"role": "system", "content": "You are the payments assistant."},
            {"role": "user", "content": query},
        ],
        tools=openai_tools(service),
        tool_calls=calls,
        call_verdict=CallVerdict.INVALID if is_failure else CallVerdict.VALID,
        is_failure=is_failure,
        failure_kind=failure_kind if is_failure else "",
        metadata={"simulated": simulated},
        model_version="base-1",
    )


def make_reviewer(django_user_model: Any, username: str, password: str = "pw-" + "reviewer") -> Any:
    user = django_user_model.objects.create_user(username, f"{username}@example.com", password)
    group, _ = Group.objects.get_or_create(name="reviewer")
    user.groups.add(group)
    return user
