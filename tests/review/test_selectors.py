"""Queue reads: the one-pass summary (counts, facets, totals), ordering, neighbours, reviewer statistics."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from review.forms import NO_TOOL
from review.models import ReviewItem
from review.selectors import (
    demo_expectation,
    item_view,
    neighbours,
    queue_summary,
    review_queue,
    reviewer_stats,
    suggested_fixes,
)
from review.services import review_item_claim, review_item_reject, review_item_skip, review_items_enqueue_failures
from tests.review.factories import make_interaction


def test_summary_counts_expired_claims_as_open_and_totals_follow_the_filters(payments, alice_actor,
                                                                            bob_actor) -> None:
    order_call = [{"name": "get_order", "arguments": {"order_id": "1"}}]
    for n in range(5):
        make_interaction(payments, external_id=f"s-{n}", failure_kind="type_error" if n < 3 else "value_error",
                         calls=None if n < 4 else order_call)
    review_items_enqueue_failures()
    a, b, c, d, _e = ReviewItem.objects.order_by("pk")
    review_item_claim(item_id=a.pk, actor=alice_actor)
    review_item_claim(item_id=b.pk, actor=bob_actor, now=timezone.now() - timedelta(hours=1))  # expired
    review_item_reject(item_id=c.pk, actor=alice_actor, version=None)
    review_item_skip(item_id=d.pk, actor=alice_actor, version=None)

    summary = queue_summary(filters={"status": "open"}, actor=alice_actor)
    assert summary.counts == {"open": 3, "claimed": 1, "mine": 1, "corrected": 0, "rejected": 1, "skipped": 1,
                              "all": 5}
    assert summary.total == 3
    assert summary.facets.services == [("payments", 3)]
    assert summary.facets.tools == [("refund_payment", 2), ("get_order", 1)]
    assert summary.facets.kinds == [("value_error", 2), ("type_error", 1)]
    assert queue_summary(filters={"status": "open", "kind": "value_error"}, actor=alice_actor).total == 2
    assert queue_summary(filters={"status": "open", "tool": "get_order", "kind": "type_error"},
                         actor=alice_actor).total == 0
    searched = queue_summary(filters={"status": "open", "q": "refund"}, actor=alice_actor)
    assert searched.total == review_queue(status="open", q="refund", actor=alice_actor).count()
    mine = queue_summary(filters={"status": "mine"}, actor=alice_actor)
    assert (mine.total, mine.facets.tools) == (1, [("refund_payment", 1)])
    # The summary's totals agree with the listing itself.
    for status in ("open", "claimed", "rejected", "skipped", "all", "mine"):
        listed = review_queue(status=status, actor=alice_actor).count()
        assert queue_summary(filters={"status": status}, actor=alice_actor).total == listed, status


def test_tabs_and_dropdowns_count_what_the_active_filters_and_search_would_list(payments, alice_actor) -> None:
    order_call = [{"name": "get_order", "arguments": {"order_id": "1"}}]
    make_interaction(payments, external_id="t-1", query="refund twice", failure_kind="type_error")
    make_interaction(payments, external_id="t-2", query="refund late", failure_kind="value_error")
    make_interaction(payments, external_id="t-3", query="where is my order", calls=order_call,
                     failure_kind="value_error")
    make_interaction(payments, external_id="t-4", query="said nothing useful", calls=[], failure_kind="no_call")
    review_items_enqueue_failures()
    rejected = ReviewItem.objects.get(interaction__external_id="t-2")
    review_item_reject(item_id=rejected.pk, actor=alice_actor, version=None)

    by_kind = queue_summary(filters={"status": "open", "kind": "value_error"}, actor=alice_actor)
    assert (by_kind.counts["open"], by_kind.counts["rejected"], by_kind.counts["all"]) == (1, 1, 2)
    # A dropdown counts its own options under the other filters, so switching stays informed.
    assert by_kind.facets.kinds == [("no_call", 1), ("type_error", 1), ("value_error", 1)]
    assert by_kind.facets.tools == [("get_order", 1)]
    searched = queue_summary(filters={"status": "all", "q": "refund"}, actor=alice_actor)
    assert (searched.counts["open"], searched.counts["all"], searched.total) == (1, 2, 2)
    assert searched.facets.tools == [("refund_payment", 2)]
    # Calls without a tool have their own filter value, distinct from "all tools".
    no_tool = queue_summary(filters={"status": "open", "tool": NO_TOOL}, actor=alice_actor)
    assert (no_tool.total, no_tool.counts["open"]) == (1, 1)
    assert [i.interaction.external_id for i in review_queue(tool=NO_TOOL, actor=alice_actor)] == ["t-4"]
    # Every tab's count is what that tab lists under the same filters.
    cases: list[dict[str, str]] = [{"kind": "value_error"}, {"q": "refund"}, {"tool": NO_TOOL},
                                   {"tool": "get_order", "q": "order"}]
    for filters in cases:
        summary = queue_summary(filters={"status": "open", **filters}, actor=alice_actor)
        for status in ("open", "claimed", "rejected", "skipped", "all", "mine"):
            listed = review_queue(status=status, actor=alice_actor, kind=filters.get("kind", ""),
                                  q=filters.get("q", ""), tool=filters.get("tool", "")).count()
            assert summary.counts[status] == listed, (filters, status)


def test_queue_order_and_neighbours(payments, alice_actor) -> None:
    now = timezone.now()
    for n in range(3):
        make_interaction(payments, external_id=f"o-{n}", when=now - timedelta(hours=n))
    review_items_enqueue_failures()
    newest, middle, oldest = review_queue(actor=alice_actor)
    assert [i.interaction.external_id for i in (newest, middle, oldest)] == ["o-0", "o-1", "o-2"]
    assert neighbours(item=middle, actor=alice_actor, filters={"status": "open"}) == (newest.pk, oldest.pk)
    assert neighbours(item=newest, actor=alice_actor, filters={"status": "open"}) == (None, middle.pk)


def test_reviewer_stats_count_decisions_per_reviewer(payments, alice_actor, bob_actor) -> None:
    for n in range(3):
        make_interaction(payments, external_id=f"st-{n}")
    review_items_enqueue_failures()
    a, b, c = ReviewItem.objects.order_by("pk")
    review_item_claim(item_id=a.pk, actor=alice_actor)
    review_item_reject(item_id=a.pk, actor=alice_actor, version=2)
    review_item_skip(item_id=b.pk, actor=alice_actor, version=1)
    review_item_skip(item_id=c.pk, actor=bob_actor, version=1)
    stats = {s.actor: s for s in reviewer_stats()}
    assert (stats["alice"].rejected, stats["alice"].skipped, stats["alice"].claimed, stats["alice"].decisions) == (
        1, 1, 1, 1)
    assert stats["alice"].avg_seconds is not None
    assert (stats["bob"].skipped, stats["bob"].decisions) == (1, 0)
    assert [s.actor for s in reviewer_stats()] == ["alice", "bob"]


# --- the simulation's expected answer is demo scaffolding, never taken from real traffic -----------

def test_simulated_expectations_count_only_for_the_demo_enterprise(payments, alice_actor) -> None:
    dollars = [{"name": "refund_payment", "arguments": {"payment_id": "pay_123", "amount_cents": 49.99}}]
    # A client's own metadata claims another answer, and on a second item that none was due.
    make_interaction(payments, external_id="claims-other", calls=dollars, expected_calls=[
        {"name": "refund_payment", "arguments": {"payment_id": "pay_999", "amount_cents": 1}}])
    make_interaction(payments, external_id="claims-abstain", calls=dollars, expected_behavior="abstain")
    review_items_enqueue_failures()
    other = ReviewItem.objects.select_related("interaction", "service").get(interaction__external_id="claims-other")
    abstain = ReviewItem.objects.get(interaction__external_id="claims-abstain")

    view = item_view(item=other, actor=alice_actor)
    assert (view.expected_calls, view.expected_behavior, view.expected_tool) == ([], "", "")
    assert [(a.name, a.expected) for a in view.diagnosis.calls[0].arguments] == [
        ("payment_id", ""), ("amount_cents", "")]
    assert view.diagnosis.problems == []
    assert view.suggested is not None and view.suggested.calls == [
        {"name": "refund_payment", "arguments": {"payment_id": "pay_123", "amount_cents": 4999}}]
    assert sorted(suggested_fixes([other, abstain])) == sorted([other.pk, abstain.pk])

    payments.source = "sample:acme:seed=7"  # the demo enterprise: the simulator wrote these
    payments.save(update_fields=["source"])
    other = ReviewItem.objects.select_related("interaction", "service").get(pk=other.pk)
    view = item_view(item=other, actor=alice_actor)
    assert view.expected_behavior == "call" and view.expected_calls[0]["arguments"]["payment_id"] == "pay_999"
    assert [(a.name, a.expected) for a in view.diagnosis.calls[0].arguments] == [
        ("payment_id", '"pay_999"'), ("amount_cents", "1")]
    assert view.suggested is None  # the fixed call is not the expected one: not confident
    assert suggested_fixes([other, abstain]) == {}


def test_demo_expectation_reads_only_a_sample_source() -> None:
    simulated = {"expected_behavior": "abstain"}
    assert demo_expectation(source="sample:acme:seed=7", metadata={"simulated": simulated}) == simulated
    for source in ("", None, "mcp:https://tools.example.com", "manual", "x-sample:acme"):
        assert demo_expectation(source=source, metadata={"simulated": simulated}) == {}
    assert demo_expectation(source="sample:acme", metadata={"simulated": "abstain"}) == {}
    assert demo_expectation(source="sample:acme", metadata=None) == {}
