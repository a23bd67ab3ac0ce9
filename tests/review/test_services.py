"""Review services: enqueue, leases, submit with provenance, stale submits, reject/skip, bulk, double review."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from ftops.common.actors import Actor
from ftops.common.errors import Conflict, ValidationFailed
from ftops.common.models import AuditEvent
from ftops.datasets.models import TrainingExample
from review.correction import Correction
from review.models import ReviewAction, ReviewEvent, ReviewItem, ReviewStatus, ReviewSubmission
from review.services import (
    StaleItem,
    review_item_claim,
    review_item_claim_next,
    review_item_reject,
    review_item_release,
    review_item_skip,
    review_item_submit,
    review_items_accept_suggested,
    review_items_bulk,
    review_items_enqueue_failures,
    review_leases_release_expired,
)
from tests.review.factories import make_interaction

CENTS = Correction(behavior="call",
                   calls=[{"name": "refund_payment", "arguments": {"payment_id": "pay_123", "amount_cents": 4999}}],
                   explanation="Amounts are in cents.", common_mistakes=["Amount in dollars instead of cents"])


def snapshot(item: ReviewItem) -> tuple[Any, ...]:
    item.refresh_from_db()
    return (item.status, item.version, item.holder, item.lease_expires_at, item.reviews_done, item.example_id)


def test_enqueue_creates_one_item_per_failure_and_is_idempotent(payments) -> None:
    first = make_interaction(payments, query="Refund $10 on pay_9", failure_kind="type_error")
    make_interaction(payments, is_failure=False)
    no_call = make_interaction(payments, calls=[], failure_kind="negative_feedback", query="where is my order?")
    assert review_items_enqueue_failures() == 2
    assert review_items_enqueue_failures() == 0
    items = {i.interaction_id: i for i in ReviewItem.objects.all()}
    assert set(items) == {first.pk, no_call.pk}
    a = items[first.pk]
    assert (a.service_id, a.tool_name, a.failure_kind, a.user_query, a.occurred_at, a.status, a.version) == (
        payments.pk, "refund_payment", "type_error", "Refund $10 on pay_9", first.timestamp, "pending", 1)
    assert items[no_call.pk].tool_name == ""
    assert all(i.required_reviews == 1 for i in items.values())


@override_settings(FTOPS_REVIEW_DOUBLE_REVIEW_PERCENT=100)
def test_enqueue_marks_the_configured_share_for_double_review(payments) -> None:
    make_interaction(payments)
    review_items_enqueue_failures()
    assert ReviewItem.objects.get().required_reviews == 2


def test_claim_takes_a_lease_and_a_second_reviewer_is_refused(item, alice_actor, bob_actor) -> None:
    before = timezone.now()
    claimed = review_item_claim(item_id=item.pk, actor=alice_actor)
    assert (claimed.status, claimed.holder, claimed.version, claimed.claimed_by_id) == (
        "claimed", "alice", 2, alice_actor.user.pk)
    assert timedelta(minutes=14, seconds=59) < claimed.lease_expires_at - before <= timedelta(minutes=15, seconds=5)
    held = snapshot(item)
    with pytest.raises(Conflict, match=r"alice is reviewing this item"):
        review_item_claim(item_id=item.pk, actor=bob_actor)
    assert snapshot(item) == held
    # The refusal is on record (after the claim's rollback); the item itself is untouched.
    assert list(ReviewEvent.objects.order_by("id").values_list("action", "actor")) == [
        ("claimed", "alice"), ("claim_refused", "bob")]
    refused = ReviewEvent.objects.get(action="claim_refused")
    assert (refused.user_id, refused.detail["holder"], refused.detail["status"], refused.detail["version"]) == (
        bob_actor.user.pk, "alice", "claimed", 2)
    assert refused.detail["reason"].startswith("alice is reviewing this item")


@override_settings(FTOPS_REVIEW_LEASE_MINUTES=5)
def test_lease_length_comes_from_settings_and_renewal_keeps_the_version(item, alice_actor) -> None:
    now = timezone.now()
    review_item_claim(item_id=item.pk, actor=alice_actor, now=now)
    renewed = review_item_claim(item_id=item.pk, actor=alice_actor, now=now + timedelta(minutes=3))
    assert renewed.version == 2
    assert renewed.lease_expires_at == now + timedelta(minutes=8)


def test_an_expired_lease_returns_the_item_to_the_queue(item, alice_actor, bob_actor) -> None:
    start = timezone.now() - timedelta(minutes=20)
    review_item_claim(item_id=item.pk, actor=alice_actor, now=start)
    taken = review_item_claim(item_id=item.pk, actor=bob_actor)
    assert (taken.holder, taken.version) == ("bob", 3)
    assert ReviewEvent.objects.filter(action="claimed", actor="bob").get().detail == {
        "lease_minutes": 15, "took_over_expired_lease_of": "alice"}


def test_the_reaper_releases_expired_leases_without_changing_the_version(item, alice_actor) -> None:
    review_item_claim(item_id=item.pk, actor=alice_actor, now=timezone.now() - timedelta(minutes=16))
    assert review_leases_release_expired() == 1
    assert snapshot(item)[:3] == ("pending", 2, "")
    assert ReviewEvent.objects.filter(action=ReviewAction.EXPIRED, actor="system").get().detail == {"holder": "alice"}
    assert review_leases_release_expired() == 0
    # Nobody else took it, so the last holder's open form (version 2) may still be submitted.
    result = review_item_submit(item_id=item.pk, actor=alice_actor, version=2, correction=CENTS)
    assert result.item.status == "corrected"


def test_a_claim_racing_between_read_and_write_loses_to_the_conditional_update(item, alice_actor, bob_actor,
                                                                            monkeypatch) -> None:
    """Bob's claim reads the item while it is still pending; Alice's claim lands before Bob's
    UPDATE. A read-then-write claim would hand the item to both; the conditional UPDATE refuses Bob."""
    import review.services as svc

    real_get = svc._get
    raced = {"done": False}

    def get_then_race(item_id: int) -> ReviewItem:
        found = real_get(item_id)
        if not raced["done"]:
            raced["done"] = True
            review_item_claim(item_id=item_id, actor=alice_actor)
        return found

    monkeypatch.setattr(svc, "_get", get_then_race)
    with pytest.raises(Conflict):
        review_item_claim(item_id=item.pk, actor=bob_actor)
    monkeypatch.setattr(svc, "_get", real_get)
    # One connection here, so Alice's racing write was inside Bob's (rolled back) transaction;
    # what matters is that Bob never became the holder; his refused claim is on record.
    assert list(ReviewEvent.objects.filter(actor="bob").values_list("action", flat=True)) == ["claim_refused"]
    assert ReviewItem.objects.filter(holder="bob").count() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_let_exactly_one_reviewer_win(django_user_model) -> None:
    from tests.review.factories import make_payments

    if connection.vendor != "postgresql":
        # The test database on SQLite is in-memory with a shared cache, which refuses concurrent
        # writers outright instead of queueing them; the race test above covers SQLite.
        pytest.skip("real concurrent writers need PostgreSQL")
    service = make_payments()
    make_interaction(service)
    review_items_enqueue_failures()
    item = ReviewItem.objects.get()
    actors = [Actor(label=f"reviewer-{n}") for n in range(6)]
    barrier = threading.Barrier(len(actors))
    outcomes: dict[str, str] = {}

    def attempt(actor: Actor) -> None:
        try:
            barrier.wait()
            review_item_claim(item_id=item.pk, actor=actor)
            outcomes[actor.label] = "won"
        except Conflict:
            outcomes[actor.label] = "refused"
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(a,)) for a in actors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [label for label, outcome in outcomes.items() if outcome == "won"]
    assert len(outcomes) == 6
    assert len(winners) == 1
    item.refresh_from_db()
    assert (item.holder, item.version) == (winners[0], 2)
    assert ReviewEvent.objects.filter(action="claimed").count() == 1


def test_submit_creates_a_high_quality_correction_example_with_provenance(item, alice_actor) -> None:
    claimed = review_item_claim(item_id=item.pk, actor=alice_actor)
    result = review_item_submit(item_id=item.pk, actor=alice_actor, version=claimed.version, correction=CENTS)
    example = TrainingExample.objects.get()
    assert result.example == example and result.final is True
    assert (example.source, example.quality, example.behavior, example.interaction_id) == (
        "correction", "high", "call", item.interaction_id)
    assert example.expected == {"calls": [{"name": "refund_payment",
                                           "arguments": {"payment_id": ["pay_123"], "amount_cents": [4999]}}]}
    assert example.user_query == "Refund $49.99 on payment pay_123"
    assert example.tool.name == "refund_payment"
    assert example.explanation == "Amounts are in cents."
    assert example.common_mistakes == ["Amount in dollars instead of cents"]
    assert example.provenance["review_item"] == item.pk
    assert example.provenance["reviewers"] == ["alice"]
    assert example.provenance["interaction"] == item.interaction.external_id
    assert example.provenance["model_calls"] == [
        {"name": "refund_payment", "arguments": {"payment_id": "pay_123", "amount_cents": 49.99}}]
    item.refresh_from_db()
    assert (item.status, item.version, item.holder, item.example_id, item.resolved_by) == (
        "corrected", 3, "", example.pk, "alice")
    assert ReviewSubmission.objects.get().calls == CENTS.calls
    corrected = ReviewEvent.objects.get(action="corrected")
    assert corrected.detail["example"] == example.pk and corrected.seconds_spent is not None
    assert AuditEvent.objects.filter(action="review.corrected", object_id=str(item.pk), actor="alice").count() == 1


def test_an_invalid_correction_is_refused_and_changes_nothing(item, alice_actor) -> None:
    claimed = review_item_claim(item_id=item.pk, actor=alice_actor)
    before = snapshot(item)
    bad = Correction(behavior="call", calls=[{"name": "refund_payment",
                                              "arguments": {"payment_id": "pay_123", "amount_cents": 49.99}}])
    with pytest.raises(ValidationFailed) as info:
        review_item_submit(item_id=item.pk, actor=alice_actor, version=claimed.version, correction=bad)
    assert info.value.fields == {"calls.0.arguments.amount_cents": ["must be a whole number (integer)"]}
    assert snapshot(item) == before
    assert TrainingExample.objects.count() == 0
    assert ReviewSubmission.objects.count() == 0


def test_a_stale_submit_is_refused_and_recorded(item, alice_actor, bob_actor) -> None:
    opened = review_item_claim(item_id=item.pk, actor=alice_actor, now=timezone.now() - timedelta(minutes=30))
    review_item_claim(item_id=item.pk, actor=bob_actor)
    held_by_bob = snapshot(item)
    with pytest.raises(StaleItem, match="bob is reviewing this item") as info:
        review_item_submit(item_id=item.pk, actor=alice_actor, version=opened.version, correction=CENTS)
    assert info.value.item.version == 3
    assert snapshot(item) == held_by_bob
    assert TrainingExample.objects.count() == 0
    conflict = ReviewEvent.objects.get(action=ReviewAction.CONFLICT)
    assert (conflict.actor, conflict.detail) == ("alice", {"seen_version": 2, "current_version": 3,
                                                           "action": "submit"})


def test_reject_and_skip_write_events(payments, alice_actor, bob_actor) -> None:
    make_interaction(payments, external_id="a")
    make_interaction(payments, external_id="b")
    review_items_enqueue_failures()
    first, second = ReviewItem.objects.order_by("pk")
    claimed = review_item_claim(item_id=first.pk, actor=alice_actor)
    rejected = review_item_reject(item_id=first.pk, actor=alice_actor, version=claimed.version,
                                  reason="test traffic")
    assert (rejected.status, rejected.resolved_by, rejected.holder) == ("rejected", "alice", "")
    assert ReviewEvent.objects.get(action="rejected").detail == {"reason": "test traffic"}
    assert AuditEvent.objects.filter(action="review.rejected", object_id=str(first.pk)).count() == 1

    skipped = review_item_skip(item_id=second.pk, actor=alice_actor, version=second.version)
    assert skipped.status == "skipped"
    assert ReviewEvent.objects.filter(action="skipped", actor="alice", item=second).count() == 1
    # Skipped items stay in the queue for others, not for whoever skipped them.
    assert review_item_claim_next(actor=alice_actor) is None
    assert review_item_claim_next(actor=bob_actor).pk == second.pk
    with pytest.raises(Conflict):
        review_item_release(item_id=second.pk, actor=alice_actor)


def test_bulk_reject_changes_only_items_the_reviewer_may_decide(payments, alice_actor, bob_actor) -> None:
    for n in range(4):
        make_interaction(payments, external_id=f"bulk-{n}")
    review_items_enqueue_failures()
    a, b, c, d = ReviewItem.objects.order_by("pk")
    review_item_claim(item_id=b.pk, actor=bob_actor)
    review_item_claim(item_id=c.pk, actor=alice_actor)
    review_item_reject(item_id=d.pk, actor=bob_actor, version=None)
    held_by_bob = snapshot(b)
    result = review_items_bulk(item_ids=[a.pk, b.pk, c.pk, d.pk, 999999], actor=alice_actor, action="reject",
                               reason="synthetic load test")
    assert result.done == [a.pk, c.pk]
    assert result.refused == [b.pk, d.pk, 999999]
    assert snapshot(b) == held_by_bob
    assert set(ReviewItem.objects.filter(status="rejected", resolved_by="alice").values_list("pk", flat=True)) == {
        a.pk, c.pk}
    assert ReviewEvent.objects.filter(action="rejected", actor="alice").count() == 2
    audit = AuditEvent.objects.get(action="review.bulk_rejected")
    assert audit.detail["items"] == [a.pk, c.pk]
    with pytest.raises(ValidationFailed):
        review_items_bulk(item_ids=[], actor=alice_actor, action="reject")


@override_settings(FTOPS_REVIEW_DOUBLE_REVIEW_PERCENT=100)
def test_double_review_records_agreement_on_tool_and_each_argument(payments, alice_actor, bob_actor,
                                                                  django_user_model) -> None:
    make_interaction(payments)
    review_items_enqueue_failures()
    item = ReviewItem.objects.get()
    first = review_item_submit(item_id=item.pk, actor=alice_actor,
                               version=review_item_claim(item_id=item.pk, actor=alice_actor).version,
                               correction=CENTS)
    assert (first.final, first.example, first.item.status, first.item.reviews_done) == (False, None, "pending", 1)
    assert TrainingExample.objects.count() == 0
    with pytest.raises(Conflict, match="a different reviewer gives the second"):
        review_item_claim(item_id=item.pk, actor=alice_actor)
    other = Correction(behavior="call", calls=[{"name": "refund_payment", "arguments": {
        "payment_id": "pay_123", "amount_cents": 5000}}])
    second = review_item_submit(item_id=item.pk, actor=bob_actor,
                                version=review_item_claim(item_id=item.pk, actor=bob_actor).version, correction=other)
    assert second.final is True
    item.refresh_from_db()
    assert item.status == "corrected"
    assert item.agreement["tool"] is True
    assert item.agreement["full"] is False
    assert item.agreement["calls"][0]["arguments"] == {
        "amount_cents": {"agree": False, "first": 4999, "second": 5000},
        "payment_id": {"agree": True, "first": "pay_123", "second": "pay_123"},
    }
    example = TrainingExample.objects.get()
    assert example.quality == "medium"  # the reviewers disagreed on the amount
    assert example.provenance["reviewers"] == ["alice", "bob"]
    assert list(ReviewEvent.objects.filter(action__in=["submitted", "corrected"]).order_by("at", "id")
                .values_list("action", "actor")) == [("submitted", "alice"), ("corrected", "bob")]


@override_settings(FTOPS_REVIEW_DOUBLE_REVIEW_PERCENT=100)
def test_double_review_in_full_agreement_makes_a_high_quality_example(payments, alice_actor, bob_actor) -> None:
    make_interaction(payments)
    review_items_enqueue_failures()
    item = ReviewItem.objects.get()
    for actor in (alice_actor, bob_actor):
        version = review_item_claim(item_id=item.pk, actor=actor).version
        review_item_submit(item_id=item.pk, actor=actor, version=version, correction=CENTS)
    assert TrainingExample.objects.get().quality == "high"
    assert ReviewItem.objects.get().agreement["full"] is True


def test_other_behaviours_make_examples_too(payments, alice_actor) -> None:
    make_interaction(payments, external_id="ask", query="refund my payment", failure_kind="missing_required",
                     calls=[{"name": "refund_payment", "arguments": {"amount_cents": 100}}])
    make_interaction(payments, external_id="abstain", query="what's the weather?", failure_kind="unknown_tool",
                     calls=[{"name": "weather", "arguments": {}}])
    review_items_enqueue_failures()
    ask = ReviewItem.objects.get(interaction__external_id="ask")
    abstain = ReviewItem.objects.get(interaction__external_id="abstain")
    review_item_submit(item_id=ask.pk, actor=alice_actor, version=ask.version, correction=Correction(
        behavior="ask_for_details", tool="refund_payment", required_fields=["payment_id"],
        question="Which payment should I refund?"))
    review_item_submit(item_id=abstain.pk, actor=alice_actor, version=abstain.version, correction=Correction(
        behavior="abstain", reason="No weather tool exists."))
    by_query = {e.user_query: e for e in TrainingExample.objects.all()}
    assert by_query["refund my payment"].expected == {"required_fields": ["payment_id"],
                                                      "question": "Which payment should I refund?"}
    assert by_query["what's the weather?"].expected == {"reason": "No weather tool exists."}
    assert by_query["what's the weather?"].tool is None
    assert set(ReviewItem.objects.values_list("status", flat=True)) == {ReviewStatus.CORRECTED}


def test_a_stale_skip_is_refused_and_recorded(item, alice_actor, bob_actor) -> None:
    opened = review_item_claim(item_id=item.pk, actor=alice_actor, now=timezone.now() - timedelta(minutes=30))
    review_item_claim(item_id=item.pk, actor=bob_actor)
    held_by_bob = snapshot(item)
    with pytest.raises(StaleItem, match="bob is reviewing this item"):
        review_item_skip(item_id=item.pk, actor=alice_actor, version=opened.version)
    assert snapshot(item) == held_by_bob
    conflict = ReviewEvent.objects.get(action=ReviewAction.CONFLICT)
    assert (conflict.actor, conflict.detail) == ("alice", {"seen_version": 2, "current_version": 3,
                                                           "action": "skip"})
    assert not ReviewEvent.objects.filter(action=ReviewAction.SKIPPED).exists()


def test_review_next_losing_a_race_leaves_no_refusal_event(payments, alice_actor, bob_actor) -> None:
    make_interaction(payments, external_id="only")
    review_items_enqueue_failures()
    review_item_claim(item_id=ReviewItem.objects.get().pk, actor=bob_actor)
    assert review_item_claim_next(actor=alice_actor) is None
    assert not ReviewEvent.objects.filter(action=ReviewAction.CLAIM_REFUSED).exists()


def _fixable_and_not(payments: Any) -> tuple[ReviewItem, ReviewItem, ReviewItem]:
    """Two dollars-for-cents failures (a suggested fix) and one that needs a human (wrong enum too)."""
    make_interaction(payments, external_id="fix-1")
    make_interaction(payments, external_id="fix-2", query="Refund $12.50 on pay_9",
                     calls=[{"name": "refund_payment", "arguments": {"payment_id": "pay_9", "amount_cents": 12.5}}])
    make_interaction(payments, external_id="human", calls=[{"name": "refund_payment", "arguments": {
        "payment_id": "pay_1", "amount_cents": 49.99, "currency": "GBP"}}])
    review_items_enqueue_failures()
    items = {i.interaction.external_id: i for i in ReviewItem.objects.select_related("interaction")}
    return items["fix-1"], items["fix-2"], items["human"]


def test_accepting_suggested_fixes_makes_the_same_examples_as_a_manual_submit(payments, alice_actor,
                                                                              bob_actor) -> None:
    one, two, human = _fixable_and_not(payments)
    make_interaction(payments, external_id="held")
    review_items_enqueue_failures()
    held = ReviewItem.objects.get(interaction__external_id="held")
    review_item_claim(item_id=held.pk, actor=bob_actor)
    claimed_by_alice = review_item_claim(item_id=two.pk, actor=alice_actor)
    result = review_items_accept_suggested(item_ids=[one.pk, two.pk, human.pk, held.pk, 99999], actor=alice_actor)
    assert (result.done, result.no_fix, result.refused, result.first_of_two) == (
        [one.pk, two.pk], [human.pk], sorted([held.pk, 99999]), [])
    by_item = {e.provenance["review_item"]: e for e in TrainingExample.objects.all()}
    assert set(by_item) == {one.pk, two.pk}
    example = by_item[one.pk]
    assert (example.source, example.quality, example.behavior, example.interaction_id) == (
        "correction", "high", "call", one.interaction_id)
    assert example.expected == {"calls": [{"name": "refund_payment",
                                           "arguments": {"payment_id": ["pay_123"], "amount_cents": [4999]}}]}
    assert example.common_mistakes == ["Amount in dollars instead of cents"]
    assert example.provenance["reviewers"] == ["alice"]
    assert example.provenance["suggested_fix"] == ["refund_payment.amount_cents: 49.99 dollars → 4999 cents"]
    assert by_item[two.pk].expected["calls"][0]["arguments"]["amount_cents"] == [1250]
    statuses = dict(ReviewItem.objects.values_list("pk", "status"))
    assert (statuses[one.pk], statuses[two.pk], statuses[human.pk], statuses[held.pk]) == (
        "corrected", "corrected", "pending", "claimed")
    corrected = ReviewEvent.objects.filter(action=ReviewAction.CORRECTED).order_by("item_id")
    assert [(e.item_id, e.actor, e.detail["bulk"]) for e in corrected] == [(one.pk, "alice", True),
                                                                           (two.pk, "alice", True)]
    # Claimed first, the claim-to-decision time is kept as for a manual submit.
    assert corrected.get(item_id=two.pk).seconds_spent is not None and claimed_by_alice.holder == "alice"
    assert AuditEvent.objects.filter(action="review.corrected").count() == 2
    assert not ReviewEvent.objects.filter(item_id__in=[human.pk, held.pk]).exclude(actor="bob").exists()


def test_accepting_suggested_fixes_is_atomic_per_item(payments, alice_actor, bob_actor, monkeypatch) -> None:
    one, two, _ = _fixable_and_not(payments)
    import review.services as svc

    real_submit = svc._submit

    def racing_submit(**kwargs: Any) -> Any:
        if kwargs["item_id"] == one.pk:  # Bob claims the first item while the batch runs
            ReviewItem.objects.filter(pk=one.pk).update(status="claimed", holder="bob", version=9,
                                                        lease_expires_at=timezone.now() + timedelta(minutes=5))
        return real_submit(**kwargs)

    monkeypatch.setattr(svc, "_submit", racing_submit)
    result = review_items_accept_suggested(item_ids=[one.pk, two.pk], actor=alice_actor)
    assert (result.done, result.refused) == ([two.pk], [one.pk])
    assert list(TrainingExample.objects.values_list("provenance__review_item", flat=True)) == [two.pk]
    one.refresh_from_db()
    # One connection here, so Bob's racing write was inside the refused (rolled back) submit; what
    # matters is that the first item got nothing while the second was saved.
    assert (one.status, one.version, one.example_id) == ("pending", 1, None)
    conflict = ReviewEvent.objects.get(action=ReviewAction.CONFLICT)
    assert (conflict.item_id, conflict.detail["action"]) == (one.pk, "submit")


@override_settings(FTOPS_REVIEW_DOUBLE_REVIEW_PERCENT=100)
def test_accepting_a_suggested_fix_on_a_double_review_item_is_its_first_review(payments, alice_actor) -> None:
    make_interaction(payments)
    review_items_enqueue_failures()
    item = ReviewItem.objects.get()
    result = review_items_accept_suggested(item_ids=[item.pk], actor=alice_actor)
    assert (result.done, result.first_of_two) == ([item.pk], [item.pk])
    item.refresh_from_db()
    assert (item.status, item.reviews_done, item.first_reviewer) == ("pending", 1, "alice")
    assert TrainingExample.objects.count() == 0
    with pytest.raises(ValidationFailed, match="nothing selected"):
        review_items_accept_suggested(item_ids=[], actor=alice_actor)
