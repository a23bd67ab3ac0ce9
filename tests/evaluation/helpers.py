"""Shared test helpers for evaluation: records, tools and a BFCL data folder in miniature."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftops.core.records import Record
from ftops.evaluation.bfcl import SHARED_DIR, default_data_dir

# ../shared/bfcl, else the data the installed bfcl-eval package ships (make install puts it there).
BFCL_DIR = default_data_dir() or SHARED_DIR
# A replay config for runs that are created but never executed; conftest writes the (empty) file
# into each test's artifacts folder, since run creation checks the path.
NO_ANSWERS_FILE = "no-answers.jsonl"
NO_ANSWERS: dict[str, Any] = {"kind": "replay", "path": NO_ANSWERS_FILE}

PAYMENT = {
    "type": "function",
    "function": {
        "name": "create_payment",
        "description": "Charge a customer. Amounts are in cents.",
        "parameters": {
            "type": "object",
            "properties": {
                "amount": {"type": "integer", "description": "in cents"},
                "currency": {"type": "string", "enum": ["USD", "EUR"]},
                "customer_id": {"type": "string"},
                "invoice_id": {"type": "string"},
            },
            "required": ["amount", "customer_id"],
        },
    },
}
CUSTOMER = {
    "type": "function",
    "function": {
        "name": "get_customer_by_name",
        "description": "Find a customer by name.",
        "parameters": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    },
}
ORDER = {
    "type": "function",
    "function": {
        "name": "get_latest_order",
        "description": "The latest order of a customer.",
        "parameters": {"type": "object", "properties": {"customer_id": {"type": "string"}},
                       "required": ["customer_id"]},
    },
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                       "required": ["city"]},
    },
}


def record(rid: str = "r1", *, behavior: str = "call", expected: dict[str, Any] | None = None,
           tools: list[dict[str, Any]] | None = None, query: str = "Charge cus_1 $50 for INV-1",
           tool: str = "create_payment", service: str = "payments", dimension: str = "", split: str = "test",
           meta: dict[str, Any] | None = None) -> Record:
    if expected is None:
        expected = {"calls": [{"name": "create_payment", "arguments": {
            "amount": [5000], "customer_id": ["cus_1"], "invoice_id": ["INV-1", ""], "currency": ["USD", ""]}}]}
    return Record(id=rid, service=service, tool=tool, messages=[{"role": "user", "content": query}],
                  tools=tools if tools is not None else [PAYMENT], behavior=behavior, expected=expected,
                  split=split, dimension=dimension, meta=meta or {})


def sequence_record(rid: str = "s1", **kwargs: Any) -> Record:
    steps = [
        {"name": "get_customer_by_name", "arguments": {"name": "John"}},
        {"name": "get_latest_order", "arguments": {"customer_id": "{prev.customer_id}"}},
        {"name": "create_payment", "arguments": {"amount": "{prev.order_total}", "customer_id": "{prev.customer_id}"}},
    ]
    return record(rid, behavior="sequence", expected={"steps": steps}, tools=[CUSTOMER, ORDER, PAYMENT],
                  query="Process payment for John's latest order", dimension="multi_step", **kwargs)


MINI_FUNCTIONS = [{"name": "calc.area", "description": "Area of a triangle.", "parameters": {
    "type": "dict", "properties": {"base": {"type": "integer"}, "height": {"type": "float"},
                                   "unit": {"type": "string"}}, "required": ["base", "height"]}}]


def write_mini_bfcl(folder: Path) -> Path:
    """Two tiny categories in BFCL's file layout (questions + possible answers)."""
    (folder / "possible_answer").mkdir(parents=True, exist_ok=True)
    simple = [
        ({"id": "simple_python_0", "question": [[{"role": "user", "content": "Triangle 10 by 5"}]],
          "function": MINI_FUNCTIONS},
         {"id": "simple_python_0",
          "ground_truth": [{"calc.area": {"base": [10], "height": [5.0], "unit": ["units", ""]}}]}),
        ({"id": "simple_python_1", "question": [[{"role": "user", "content": "Triangle 3 by 4 in cm"}]],
          "function": MINI_FUNCTIONS},
         {"id": "simple_python_1", "ground_truth": [{"calc.area": {"base": [3], "height": [4.0], "unit": ["cm"]}}]}),
    ]
    irrelevance = [{"id": "irrelevance_0", "question": [[{"role": "user", "content": "Who won in 1998?"}]],
                    "function": MINI_FUNCTIONS}]
    (folder / "BFCL_v4_simple_python.json").write_text("\n".join(json.dumps(q) for q, _ in simple) + "\n")
    (folder / "possible_answer" / "BFCL_v4_simple_python.json").write_text(
        "\n".join(json.dumps(a) for _, a in simple) + "\n")
    (folder / "BFCL_v4_irrelevance.json").write_text("\n".join(json.dumps(q) for q in irrelevance) + "\n")
    return folder
