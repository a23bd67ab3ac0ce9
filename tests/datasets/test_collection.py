from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from ftops.catalog.models import Service
from ftops.datasets.config import CurationConfig, FilterConfig
from ftops.datasets.models import TrainingExample
from ftops.datasets.services import examples_collect_production
from ftops.interactions.models import Interaction

_ids = itertools.count(1)


def interaction(service: Service, query: str = "Refund 20 EUR on pay_1", **overrides: Any) -> Interaction:
    n = next(_ids)
    values: dict[str, Any] = {
        "external_id": f"int-{n}", "body_hash": f"{n:064d}", "service": service,
        "timestamp": timezone.now() - timedelta(minutes=n),
        "messages": [{"role": "system", "content": "You are the payments assistant."},
                     {"role": "user", "content": query}],
        "tools": [{"type": "function", "function": {"name": "refund_payment", "parameters": {}}},
                  {"type": "function", "function": {"name": "get_order", "parameters": {}}}],
        "tool_calls": [{"name": "refund_payment",
                        "arguments": {"payment_id": "pay_1", "amount": 20, "currency": "EUR"}}],
        "response_text": "", "user_feedback": 5, "success": True, "latency_ms": 800, "call_verdict": "valid",
    }
    values.update(overrides)
    return Interaction.objects.create(**values)


def test_good_interactions_become_medium_production_examples_once(payments: Service) -> None:
    good = interaction(payments)
    report = examples_collect_production()
    assert (report.considered, report.created, report.rejected) == (1, 1, {})
    example = TrainingExample.objects.get()
    assert (example.source, example.quality, example.interaction_id) == ("production", "medium", good.pk)
    arguments = {"payment_id": ["pay_1"], "amount": [20], "currency": ["EUR"]}
    assert example.expected == {"calls": [{"name": "refund_payment", "arguments": arguments}]}
    assert example.tools == ["refund_payment", "get_order"]
    assert example.messages[0]["role"] == "system" and example.user_query == "Refund 20 EUR on pay_1"
    assert example.provenance["interaction"] == good.external_id
    again = examples_collect_production()
    assert (again.considered, again.created) == (0, 0)
    assert TrainingExample.objects.count() == 1


def test_openai_shaped_calls_are_understood(payments: Service) -> None:
    interaction(payments, tool_calls=[{"type": "function", "function": {
        "name": "get_order", "arguments": '{"order_id": "ord_5"}'}}], query="Where is ord_5?")
    assert examples_collect_production().created == 1
    assert TrainingExample.objects.get().expected["calls"][0] == {"name": "get_order",
                                                                  "arguments": {"order_id": ["ord_5"]}}


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"response_text": "Error: upstream timeout"}, "error_text"),
    ({"latency_ms": 25000}, "too_slow"),
    ({"call_verdict": "invalid"}, "invalid_call"),
    ({"tool_calls": []}, "no_call"),
    ({"query": "hi"}, "query_too_short"),
    ({"tool_calls": [{"name": "refund_payment", "arguments": {"payment_id": "pay_1"}}]}, "schema_mismatch"),
    # Judged valid by an older ingest, yet unreadable: never an empty call that slips through.
    ({"tool_calls": [{"name": "refund_payment", "arguments": '{"payment_id": "pay_1", amount'}]},
     "unreadable_arguments"),
])
def test_quality_filters_reject_with_a_reason(payments: Service, overrides: dict[str, Any], reason: str) -> None:
    interaction(payments, **overrides)
    report = examples_collect_production()
    assert report.rejected == {reason: 1}
    assert TrainingExample.objects.count() == 0


def test_feedback_threshold_and_success_select_candidates(payments: Service) -> None:
    interaction(payments, user_feedback=3)
    interaction(payments, user_feedback=None)
    interaction(payments, success=False)
    interaction(payments, is_failure=True)
    assert examples_collect_production().considered == 0
    lenient = CurationConfig(quality_threshold=3.0, filters=FilterConfig(max_latency_ms=100))
    report = examples_collect_production(config=lenient)
    assert report.considered == 1 and report.rejected == {"too_slow": 1}


def test_correction_examples_keep_their_interaction_and_quality(payments: Service) -> None:
    from ftops.datasets.services import example_create

    failed = interaction(payments, is_failure=True, call_verdict="invalid")
    correction = example_create(service=payments, user_query=failed.user_query, messages=failed.messages,
                                behavior="call", expected={"calls": [{"name": "refund_payment", "arguments": {
                                    "payment_id": ["pay_1"], "amount": [20]}}]},
                                source="correction", quality="high", interaction=failed)
    assert (correction.source, correction.quality, correction.interaction_id) == ("correction", "high", failed.pk)
    assert examples_collect_production().considered == 0
