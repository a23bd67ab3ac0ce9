"""Retraining triggers (ftops.loop.services): new trainable examples, error patterns, stale accuracy."""

from __future__ import annotations

from typing import Any

from ftops.catalog.models import Service
from ftops.common.models import AuditEvent
from ftops.datasets.config import CurationConfig, TriggerConfig
from ftops.datasets.models import TrainingExample
from ftops.datasets.services import example_create, examples_collect_production
from ftops.interactions.services import interactions_ingest
from ftops.loop.models import TriggerEvent
from ftops.loop.services import triggers_evaluate
from tests.datasets.conftest import refund_expected
from tests.datasets.test_collection import interaction


def cfg(**overrides: Any) -> CurationConfig:
    return CurationConfig(min_examples=overrides.pop("min_examples", 3),
                          triggers=TriggerConfig(error_pattern_min_failures=overrides.pop("min_failures", 10)))


def test_high_quality_examples_fire_once_per_batch(payments: Service) -> None:
    for k in range(3):
        example_create(service=payments, user_query=f"Refund {20 + k} euros on pay_{k}", behavior="call",
                       expected=refund_expected(f"pay_{k}", 20.0 + k), source="manual", quality="high")
    report = triggers_evaluate(config=cfg())
    assert [e.kind for e in report.fired] == ["high_quality_examples"]
    event = TriggerEvent.objects.get()
    assert event.service == payments
    assert (event.details["count"], event.details["high_quality"], event.details["production_validated"]) == (3, 3, 0)
    assert ("3 new high-quality examples for payments (3 rated high, 0 production-validated; threshold 3)"
            in event.reason)
    audit = AuditEvent.objects.get(action="retraining_trigger.fired")
    assert (audit.actor, audit.object_id, audit.detail["kind"]) == ("system:loop", str(event.pk),
                                                                    "high_quality_examples")
    assert triggers_evaluate(config=cfg()).fired == []  # nothing new since it fired


def _traffic(n: int, *, start: int = 0, **overrides: Any) -> None:
    """n good production interactions through the real ingest path (schema-checked there)."""
    payloads = [{
        "id": f"traffic-{start + k}", "service": "payments", "timestamp": "2026-11-30T10:00:00Z",
        "messages": [{"role": "user", "content": f"Please refund {10 + start + k} EUR on payment pay_{start + k}"}],
        "tools": ["refund_payment"],
        "tool_calls": [{"name": "refund_payment",
                        "arguments": {"payment_id": f"pay_{start + k}", "amount": 10 + start + k, "currency": "EUR"}}],
        "response_text": "Refunded.", "user_feedback": 5, "success": True, "latency_ms": 300, **overrides,
    } for k in range(n)]
    interactions_ingest(payloads=payloads)


def test_production_validated_examples_fire_on_traffic_alone(payments: Service) -> None:
    _traffic(3)
    collected = examples_collect_production()
    assert collected.created == 3
    assert set(TrainingExample.objects.values_list("source", "quality")) == {("production", "medium")}
    report = triggers_evaluate(config=cfg())
    assert [e.kind for e in report.fired] == ["high_quality_examples"]
    event = report.fired[0]
    assert (event.details["count"], event.details["high_quality"], event.details["production_validated"]) == (3, 0, 3)
    assert "(0 rated high, 3 production-validated; threshold 3)" in event.reason
    assert triggers_evaluate(config=cfg()).fired == []


def test_production_examples_that_are_not_validated_do_not_count(payments: Service) -> None:
    _traffic(2)
    examples_collect_production()
    # Rated well enough to collect at threshold 4, but this trigger asks for 5: not validated.
    _traffic(1, start=10, user_feedback=4)
    examples_collect_production()
    assert TrainingExample.objects.count() == 3
    strict = CurationConfig(min_examples=3, quality_threshold=5.0)
    assert triggers_evaluate(config=strict).fired == []
    # An interaction re-marked a failure after collection stops counting too.
    first = TrainingExample.objects.order_by("id").first()
    assert first is not None and first.interaction is not None
    first.interaction.is_failure = True
    first.interaction.save(update_fields=["is_failure"])
    _traffic(1, start=20)
    examples_collect_production()
    assert triggers_evaluate(config=strict).fired == []  # 2 validated + 1 not, 1 failure: 2 < 3
    _traffic(1, start=30)
    examples_collect_production()
    report = triggers_evaluate(config=strict)
    assert [e.details["production_validated"] for e in report.fired] == [3]


def test_high_and_production_validated_examples_add_up(payments: Service) -> None:
    example_create(service=payments, user_query="Refund 20 euros on pay_77", behavior="call",
                   expected=refund_expected("pay_77", 20.0), source="manual", quality="high")
    _traffic(2)
    examples_collect_production()
    report = triggers_evaluate(config=cfg())
    assert [(e.details["high_quality"], e.details["production_validated"]) for e in report.fired] == [(1, 2)]


def test_recurring_error_pattern_needs_ten_similar_failures(payments: Service) -> None:
    for k in range(9):
        interaction(payments, query=f"Refund the duplicate charge on payment pay_{k}", is_failure=True,
                    failure_kind="missing_required", call_verdict="invalid")
    for k in range(5):  # other failures of the same kind, different requests
        interaction(payments, query=["What's my balance?", "Book a flight", "Translate hello", "Play music",
                                     "Order pizza"][k], is_failure=True, failure_kind="missing_required",
                    call_verdict="invalid")
    assert triggers_evaluate(config=cfg(min_examples=1000)).fired == []
    interaction(payments, query="Refund the duplicate charge on payment pay_99", is_failure=True,
                failure_kind="missing_required", call_verdict="invalid")
    report = triggers_evaluate(config=cfg(min_examples=1000))
    assert [e.kind for e in report.fired] == ["error_pattern"]
    event = report.fired[0]
    assert event.details["size"] == 10 and event.details["tool"] == "refund_payment"
    assert event.details["failure_kind"] == "missing_required"
    assert "10 similar 'missing_required' failures on payments.refund_payment" in event.reason
    assert triggers_evaluate(config=cfg(min_examples=1000)).fired == []


def test_stale_accuracy_is_skipped_with_a_reason_without_runs(db: Any) -> None:
    report = triggers_evaluate(config=cfg())
    assert report.skipped == {"stale_accuracy": "no evaluation run older than 30 days to compare with"}


def _run(suite: Any, exact: float, days_ago: int) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from ftops.evaluation.models import EvalRun

    EvalRun.objects.create(suite=suite, status="succeeded", exact=exact,
                           finished_at=timezone.now() - timedelta(days=days_ago))


def test_no_accuracy_gain_in_thirty_days_fires_once(db: Any) -> None:
    from ftops.evaluation.models import EvalSuite

    suite = EvalSuite.objects.create(name="bfcl-simple", kind="bfcl")
    _run(suite, 61.0, days_ago=45)
    _run(suite, 58.5, days_ago=10)
    report = triggers_evaluate(config=cfg())
    assert [e.kind for e in report.fired] == ["stale_accuracy"]
    assert report.fired[0].reason == "no accuracy gain in 30 days (bfcl-simple: best 61.0% before, 58.5% since)"
    again = triggers_evaluate(config=cfg())
    assert again.fired == [] and again.skipped["stale_accuracy"] == "already fired in the last 30 days"


def test_an_accuracy_gain_does_not_fire(db: Any) -> None:
    from ftops.evaluation.models import EvalSuite

    suite = EvalSuite.objects.create(name="bfcl-simple", kind="bfcl")
    _run(suite, 61.0, days_ago=45)
    _run(suite, 66.0, days_ago=3)
    report = triggers_evaluate(config=cfg())
    assert report.fired == []
    assert report.skipped["stale_accuracy"] == "accuracy improved in the last 30 days on ['bfcl-simple']"
