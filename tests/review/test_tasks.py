"""The review tasks run their one service (in-process here; Celery workers in production)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from review.models import ReviewItem
from review.services import review_item_claim
from review.tasks import enqueue_failures, enqueue_interactions, release_expired_leases
from tests.review.factories import make_interaction


def test_enqueue_task_queues_failures_once(payments) -> None:
    make_interaction(payments)
    assert enqueue_failures.delay().get() == 1
    assert enqueue_failures.delay().get() == 0
    assert ReviewItem.objects.count() == 1


def test_enqueue_interactions_queues_only_the_failures_named_and_only_once(payments) -> None:
    failed, other_failed = make_interaction(payments), make_interaction(payments)
    fine = make_interaction(payments, is_failure=False, failure_kind="")
    assert enqueue_interactions.delay([failed.pk, fine.pk, 999_999]).get() == 1
    assert enqueue_interactions.delay([failed.pk]).get() == 0  # already queued: nothing new
    assert list(ReviewItem.objects.values_list("interaction_id", flat=True)) == [failed.pk]
    assert enqueue_failures.delay().get() == 1  # the sweep picks up the one never named
    assert ReviewItem.objects.filter(interaction=other_failed).count() == 1


def test_release_task_returns_expired_leases(item, alice_actor) -> None:
    review_item_claim(item_id=item.pk, actor=alice_actor, now=timezone.now() - timedelta(hours=1))
    assert release_expired_leases.delay().get() == 1
    item.refresh_from_db()
    assert (item.status, item.holder) == ("pending", "")
