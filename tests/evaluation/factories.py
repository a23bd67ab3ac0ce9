"""A small catalog and a ready dataset version built straight through the ORM."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ftops.catalog.models import Service, Tool, ToolSchemaVersion
from ftops.datasets.models import DatasetMembership, DatasetVersion, TrainingExample
from ftops.datasets.selectors import record_from_example
from tests.evaluation.helpers import CUSTOMER, ORDER, PAYMENT


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def payments_service() -> Service:
    service = Service.objects.create(name="payments")
    for spec in (PAYMENT, CUSTOMER, ORDER):
        function = spec["function"]
        tool = Tool.objects.create(service=service, name=function["name"], description=function["description"])
        version = ToolSchemaVersion.objects.create(tool=tool, number=1, description=function["description"],
                                                   parameters=function["parameters"],
                                                   content_hash=_hash(function["parameters"]))
        tool.current_version = version
        tool.save(update_fields=["current_version"])
    return service


# (query, behavior, tool, tools offered, expected, dimension)
CASES: list[tuple[str, str, str, list[str], dict[str, Any], str]] = [
    ("Charge cus_1 $50", "call", "create_payment", ["create_payment"],
     {"calls": [{"name": "create_payment", "arguments": {"amount": [5000], "customer_id": ["cus_1"]}}]},
     "seen_phrasing"),
    ("Bill customer cus_2 twelve dollars", "call", "create_payment", ["create_payment", "get_latest_order"],
     {"calls": [{"name": "create_payment", "arguments": {"amount": [1200], "customer_id": ["cus_2"]}}]},
     "new_phrasing"),
    ("Latest order of cus_3?", "call", "get_latest_order", ["get_latest_order"],
     {"calls": [{"name": "get_latest_order", "arguments": {"customer_id": ["cus_3"]}}]}, "zero_shot_tool"),
    ("Process payment for John's latest order", "sequence", "create_payment",
     ["get_customer_by_name", "get_latest_order", "create_payment"],
     {"steps": [{"name": "get_customer_by_name", "arguments": {"name": "John"}},
                {"name": "get_latest_order", "arguments": {"customer_id": "{prev.customer_id}"}},
                {"name": "create_payment", "arguments": {"amount": "{prev.order_total}",
                                                         "customer_id": "{prev.customer_id}"}}]}, "multi_step"),
    ("Create a payment", "ask_for_details", "create_payment", ["create_payment"],
     {"required_fields": ["amount", "customer_id"], "question": "What amount, and for which customer?"},
     "new_phrasing"),
]


TRAIN_CASES = [
    ("Charge cus_7 $80", "call", "create_payment", ["create_payment"],
     {"calls": [{"name": "create_payment", "arguments": {"amount": [8000], "customer_id": ["cus_7"]}}]}, ""),
    ("Latest order of cus_8?", "call", "get_latest_order", ["get_latest_order"],
     {"calls": [{"name": "get_latest_order", "arguments": {"customer_id": ["cus_8"]}}]}, ""),
]


def dataset_version(number: int = 1) -> DatasetVersion:
    service = payments_service()
    service.domain_vocabulary = {"amounts": {"rule": "ALL amounts in cents, never dollars"}}
    service.save(update_fields=["domain_vocabulary"])
    tools = {t.name: t for t in service.tools.all()}
    version = DatasetVersion.objects.create(number=number, status="ready", content_hash=_hash(number))
    members = [("test", case) for case in CASES] + [("train", case) for case in TRAIN_CASES]
    for position, (split, (query, behavior, tool, offered, expected, dimension)) in enumerate(members):
        example = TrainingExample.objects.create(
            service=service, tool=tools[tool], schema_version=tools[tool].current_version, user_query=query,
            messages=[{"role": "user", "content": query}], tools=offered, behavior=behavior, expected=expected,
            source="manual", quality="high", content_hash=_hash([query, expected]),
        )
        snapshot = record_from_example(example, split=split, dimension=dimension).to_dict()
        DatasetMembership.objects.create(version=version, example=example, split=split, dimension=dimension,
                                         position=position, snapshot=snapshot)
    return version


def oracle_answers() -> list[dict[str, Any]]:
    """Replay lines answering every case above correctly (ids are example pks, filled in by the test)."""
    return [
        {"calls": [{"name": "create_payment", "arguments": {"amount": 5000, "customer_id": "cus_1"}}]},
        {"calls": [{"name": "create_payment", "arguments": {"amount": 12, "customer_id": "cus_2"}}]},  # wrong value
        {"calls": [{"name": "get_latest_order", "arguments": {"customer_id": "cus_3"}}]},
        {"calls": [{"name": "get_customer_by_name", "arguments": {"name": "John"}},
                   {"name": "get_latest_order", "arguments": {"customer_id": "customer_id-001"}},
                   {"name": "create_payment", "arguments": {"amount": 4201, "customer_id": "customer_id-001"}}]},
        {"text": "Happy to - what amount and which customer id?"},
    ]


def scored_run(suite: Any, *, failed: list[str], tools: int = 3, name: str = "") -> Any:
    """A succeeded run written straight through the ORM: metrics for ``tools`` tools and one
    failure row per id in ``failed`` (no model is run)."""
    from ftops.evaluation.models import EvalFailure, EvalRun

    by_tool = {f"tool_{t:03d}": {"n": 10, "exact": float(t % 100), "tool": 100.0, "args": 90.0, "values": 80.0}
               for t in range(tools)}
    metrics = {"overall": {"n": 10 * tools, "exact": 50.0, "tool": 100.0, "args": 90.0, "values": 80.0},
               "by_category": {"simple": {"n": 10 * tools, "exact": 50.0, "tool": 100.0, "args": 90.0,
                                          "values": 80.0}},
               "by_service": {"payments": {"n": 10 * tools, "exact": 50.0, "tool": 100.0, "args": 90.0,
                                           "values": 80.0}},
               "by_tool": by_tool, "latency_ms": {"p50": 10, "p95": 20}, "tokens": {"prompt": 1, "completion": 1},
               "parse_errors": 0}
    run = EvalRun.objects.create(suite=suite, name=name, model_label=name or "replay", status="succeeded",
                                 exact=50.0, metrics=metrics, adapter_config={"kind": "replay", "path": "x"},
                                 progress_done=10 * tools, progress_total=10 * tools)
    EvalFailure.objects.bulk_create([
        EvalFailure(run=run, record_id=rid, category="simple", service="payments", tool="create_payment",
                    error_type="value_error:int", error="amount differs", user_query=f"Charge for case {rid}",
                    expected={"calls": []}, got={"calls": []}, partial={"tool": True, "args": True})
        for rid in failed])
    return run
