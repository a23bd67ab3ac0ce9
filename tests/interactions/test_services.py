"""Ingest service internals: the insert race, queued batches, failure marking."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import override_settings

from ftops.common.errors import Conflict
from ftops.interactions import services
from ftops.interactions.models import BatchStatus, IngestBatch, Interaction


@pytest.mark.parametrize("use_copy", [True, False])
def test_concurrent_insert_of_the_same_id_turns_into_a_replay(
    catalog: Any, payload: Any, monkeypatch: pytest.MonkeyPatch, use_copy: bool
) -> None:
    monkeypatch.setattr(services, "COPY_ON_POSTGRES", use_copy)
    services.interactions_ingest(payloads=[payload("race-1")])
    real = services.existing_by_external_id
    calls = []

    def stale_first_read(ids: Any, *, scope: str) -> Any:
        calls.append(1)
        ids = list(ids)
        # The first read misses the row another request has just stored.
        return {} if len(calls) == 1 else real(ids, scope=scope)

    monkeypatch.setattr(services, "existing_by_external_id", stale_first_read)
    result = services.interactions_ingest(payloads=[payload("race-0"), payload("race-1")])
    assert len(calls) == 2
    assert [(i.id, i.replayed) for i in result.items] == [("race-0", False), ("race-1", True)]
    assert Interaction.objects.count() == 2


def test_insert_paths_store_the_same_row(catalog: Any, payload: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    body = payload("same", response_text="jane@acme.example", tool_calls=[{"name": "create_payment",
                                                                          "arguments": {"currency": "USD"}}])
    fields = ["external_id", "body_hash", "service_id", "timestamp", "messages", "tools", "tool_calls",
              "response_text", "metadata", "redactions", "call_verdict", "verdict_reason", "is_failure",
              "failure_kind", "user_feedback", "success", "confidence", "latency_ms", "tokens_used"]
    stored = []
    for use_copy in (True, False):
        monkeypatch.setattr(services, "COPY_ON_POSTGRES", use_copy)
        result = services.interactions_ingest(payloads=[body])
        stored.append(Interaction.objects.filter(pk=result.items[0].pk).values(*fields).get())
        Interaction.objects.all().delete()
    assert stored[0] == stored[1]
    if connection.vendor == "postgresql":
        assert stored[0]["redactions"] == {"email": 1}


def test_queued_batch_claim_is_idempotent_and_conflicts_fail_the_batch(
    catalog: Any, payload: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        batch = services.interactions_ingest_enqueue(
            payloads=[payload("qb-1"), payload("qb-2", response_text="mail jane@acme.example")]
        ).batch
    assert len(callbacks) == 1
    assert batch.status == BatchStatus.PENDING
    assert batch.rows[1]["response_text"] == "mail [EMAIL]"  # nothing raw waits in the queue table
    done = services.ingest_batch_process(batch_id=batch.pk)
    assert done is not None and done.status == BatchStatus.SUCCEEDED
    assert services.ingest_batch_process(batch_id=batch.pk) is None  # a second delivery does nothing
    assert Interaction.objects.count() == 2

    with django_capture_on_commit_callbacks(execute=False):
        late = services.interactions_ingest_enqueue(payloads=[payload("qb-3")]).batch
    services.interactions_ingest(payloads=[payload("qb-3", user_feedback=1)])  # same id, other body, first
    failed = services.ingest_batch_process(batch_id=late.pk)
    assert failed is not None
    assert (failed.status, failed.error["code"], failed.rows) == (BatchStatus.FAILED, "conflict", [])
    assert Interaction.objects.get(external_id="qb-3").user_feedback == 1


def test_enqueue_refuses_bad_input_at_once(catalog: Any, payload: Any) -> None:
    services.interactions_ingest(payloads=[payload("e-1")])
    with pytest.raises(Conflict):
        services.interactions_ingest_enqueue(payloads=[payload("e-1", user_feedback=1)])
    assert IngestBatch.objects.count() == 0


@override_settings(FTOPS_FAILURE_FEEDBACK_MAX=3)
def test_failure_marking_order_and_threshold(db: Any) -> None:
    mark = services.failure_marking
    assert mark(schema_kind="type_error", success=False, user_feedback=1) == (True, "type_error")
    assert mark(schema_kind="", success=False, user_feedback=5) == (True, "unsuccessful")
    assert mark(schema_kind="", success=None, user_feedback=3) == (True, "negative_feedback")
    assert mark(schema_kind="", success=True, user_feedback=4) == (False, "")
    assert mark(schema_kind="", success=None, user_feedback=None) == (False, "")


# --- failures reach the review queue on commit ---------------------------------------------------


def test_failures_are_queued_for_review_on_the_ingest_commit_once(
    catalog: Any, payload: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from review.models import ReviewItem

    body = [payload("ok-1"), payload("bad-1", success=False), payload("bad-2", user_feedback=1)]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = services.interactions_ingest(payloads=body)
    assert ReviewItem.objects.count() == 0  # nothing before the commit
    assert len(callbacks) == 1
    for callback in callbacks:
        callback()  # the embedded mode: the review task runs in-process
    failed = {item.id: item.pk for item in result.items if item.is_failure}
    assert sorted(failed) == ["bad-1", "bad-2"]
    items = ReviewItem.objects.order_by("interaction_id")
    assert [(i.interaction_id, i.failure_kind) for i in items] == [
        (failed["bad-1"], "unsuccessful"), (failed["bad-2"], "negative_feedback")]
    # A replay of the same batch stores nothing and queues nothing new; queueing again is harmless.
    with django_capture_on_commit_callbacks(execute=True) as again:
        services.interactions_ingest(payloads=body)
    assert again == []
    services._queue_for_review(list(failed.values()))
    assert ReviewItem.objects.count() == 2


def test_a_batch_without_failures_sends_no_review_task(
    catalog: Any, payload: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.interactions_ingest(payloads=[payload("fine-1"), payload("fine-2")])
    assert callbacks == []


def test_a_queued_batch_queues_its_failures_when_it_commits(
    catalog: Any, payload: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from review.models import ReviewItem

    with django_capture_on_commit_callbacks(execute=False):
        batch = services.interactions_ingest_enqueue(payloads=[payload("qf-1", success=False)]).batch
    with django_capture_on_commit_callbacks(execute=True):
        services.ingest_batch_process(batch_id=batch.pk)
    assert list(ReviewItem.objects.values_list("interaction__external_id", flat=True)) == ["qf-1"]


def test_late_negative_feedback_queues_the_interaction_for_review(
    catalog: Any, payload: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from review.models import ReviewItem

    with django_capture_on_commit_callbacks(execute=True):
        result = services.interactions_ingest(payloads=[payload("late-1")])
    interaction = Interaction.objects.get(pk=result.items[0].pk)
    assert ReviewItem.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=True):
        services.interaction_feedback_add(interaction=interaction, score=1)
    assert list(ReviewItem.objects.values_list("interaction_id", "failure_kind")) == [
        (interaction.pk, "negative_feedback")]


def test_a_lost_review_enqueue_never_fails_the_stored_ingest(
    catalog: Any, payload: Any, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from review import services as review_services
    from review.models import ReviewItem

    def broken(**kwargs: Any) -> int:
        raise RuntimeError("database went away")

    monkeypatch.setattr(review_services, "review_items_enqueue_interactions", broken)
    with django_capture_on_commit_callbacks(execute=True):
        result = services.interactions_ingest(payloads=[payload("lost-1", success=False)])
    assert result.created == 1 and ReviewItem.objects.count() == 0
    monkeypatch.undo()
    assert review_services.review_items_enqueue_failures() == 1  # the sweep is the safety net
