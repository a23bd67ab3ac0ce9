from __future__ import annotations

from typing import Any

from ftops.catalog.models import Service
from ftops.datasets.config import CurationConfig, TriggerConfig
from ftops.datasets.models import TriggerEvent
from ftops.datasets.services import example_create, triggers_evaluate
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
    assert event.service == payments and event.details["count"] == 3
    assert "3 new high-quality examples for payments (threshold 3)" in event.reason
    assert triggers_evaluate(config=cfg()).fired == []  # nothing new since it fired


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
