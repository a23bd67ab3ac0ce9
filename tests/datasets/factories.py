"""A small varied catalog with templated requests for dataset-version tests."""

from __future__ import annotations

from typing import Any

from ftops.catalog.models import Service
from ftops.datasets.models import TrainingExample
from ftops.datasets.services import example_create
from tests.datasets.conftest import add_tool

STR = {"type": "string"}
NUM = {"type": "number"}

# tool -> (parameters, templates with {a} {b}, value pairs)
SHOP: dict[str, tuple[dict[str, Any], list[str], list[tuple[Any, Any]]]] = {
    "get_order": (
        {"type": "object", "properties": {"order_id": STR}, "required": ["order_id"]},
        ["Where is order {a}?", "Can you look up order {a} for me", "I need the details of purchase {a}",
         "status check on {a} please"],
        [("ORD-1001", None), ("ORD-2002", None), ("ORD-3003", None), ("ORD-4004", None), ("ORD-5005", None)],
    ),
    "cancel_order": (
        {"type": "object", "properties": {"order_id": STR, "reason": STR}, "required": ["order_id"]},
        ["Cancel order {a} because {b}", "Please stop order {a}, {b}", "I want to call off {a} since {b}",
         "Kill the shipment of {a}: {b}"],
        [("ORD-1101", "customer changed mind"), ("ORD-1202", "out of stock"), ("ORD-1303", "duplicate order"),
         ("ORD-1404", "wrong address"), ("ORD-1505", "payment failed")],
    ),
    "refund_payment": (
        {"type": "object", "properties": {"payment_id": STR, "amount": NUM}, "required": ["payment_id", "amount"]},
        ["Refund {b} dollars on payment {a}", "Give the customer back {b} USD for {a}",
         "Reverse {b} of charge {a}", "Issue a {b} dollar refund against {a}"],
        [("PAY-11", 10), ("PAY-22", 25), ("PAY-33", 40), ("PAY-44", 55), ("PAY-55", 70)],
    ),
    "check_stock": (
        {"type": "object", "properties": {"sku": STR, "warehouse": STR}, "required": ["sku"]},
        ["How many {a} do we have in {b}?", "Stock level for {a} at the {b} warehouse",
         "Is {a} available in {b}", "Inventory count of {a}, {b} site"],
        [("DSK-1040", "Seattle"), ("CHR-3305", "Atlanta"), ("MON-2701", "Reno"), ("KBD-1187", "Seattle"),
         ("LMP-0420", "Atlanta")],
    ),
    "create_ticket": (
        {"type": "object", "properties": {"subject": STR, "priority": {"type": "string",
                                                                        "enum": ["low", "normal", "high"]}},
         "required": ["subject"]},
        ["Open a {b} priority ticket about {a}", "File a support case: {a} ({b})",
         "Log an issue titled {a} with {b} urgency", "Create a {b} ticket regarding {a}"],
        [("printer jam", "low"), ("login broken", "high"), ("slow laptop", "normal"), ("vpn down", "high"),
         ("missing invoice", "normal")],
    ),
    "send_invoice": (
        {"type": "object", "properties": {"customer_email": STR, "invoice_id": STR},
         "required": ["customer_email", "invoice_id"]},
        ["Email invoice {b} to {a}", "Send {a} a copy of invoice {b}", "Mail bill {b} over to {a}",
         "Forward invoice number {b} to {a} please"],
        [("ann@example.com", "INV-7"), ("bob@example.com", "INV-8"), ("cy@example.com", "INV-9"),
         ("dee@example.com", "INV-10"), ("eli@example.com", "INV-11")],
    ),
}


def _arguments(tool: str, a: Any, b: Any) -> dict[str, list[Any]]:
    params = list(SHOP[tool][0]["properties"])
    args = {params[0]: [a]}
    if b is not None and len(params) > 1:
        args[params[1]] = [b]
    return args


def build_shop(service_name: str = "shop", *, source: str = "manual", quality: str = "high",
               with_sequences: bool = True) -> tuple[Service, list[TrainingExample]]:
    service = Service.objects.create(name=service_name)
    for tool, (parameters, _templates, _values) in SHOP.items():
        add_tool(service, tool, f"The {tool.replace('_', ' ')} operation.", parameters)
    examples = []
    for tool, (_parameters, templates, values) in SHOP.items():
        for t_index, template in enumerate(templates):
            for a, b in values:
                examples.append(example_create(
                    service=service, user_query=template.format(a=a, b=b), behavior="call",
                    expected={"calls": [{"name": tool, "arguments": _arguments(tool, a, b)}]},
                    source=source, quality=quality, provenance={"template": f"{tool}-{t_index}"},
                ))
    if with_sequences:
        for k, (order, amount) in enumerate([("ORD-9001", 12), ("ORD-9002", 30), ("ORD-9003", 44)]):
            examples.append(example_create(
                service=service, user_query=f"Look up {order} and refund its payment of {amount} dollars",
                behavior="sequence", source=source, quality=quality,
                expected={"steps": [
                    {"name": "get_order", "arguments": {"order_id": order}, "result": {"payment_id": f"PAY-9{k}"}},
                    {"name": "refund_payment", "arguments": {"payment_id": "{prev.payment_id}", "amount": amount}},
                ]},
            ))
    examples.append(example_create(service=service, user_query="What's the weather in Paris tomorrow?",
                                   behavior="abstain", expected={"reason": "No weather tool"}, source=source,
                                   quality=quality))
    examples.append(example_create(service=service, user_query="Do the usual thing with my order",
                                   behavior="clarify", expected={"question": "Which order, and what should I do?",
                                                                 "reason": "vague"},
                                   source=source, quality=quality))
    return service, examples
