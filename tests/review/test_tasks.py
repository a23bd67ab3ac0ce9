"""The review tasks run their one service (in-process here; Celery workers in production)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from review.models import ReviewItem
from review.services import review_item_claim
from review.tasks import enqueue_failures, release_expired_leases
from tests.review.factories import make_interaction


def test_enqueue_task_queues_failures_once(payments) -> None:
    make_interaction(payments)
    assert enqueue_failures.delay().get() == 1
    assert enqueue_failures.delay().get() == 0
    assert ReviewItem.objects.count() == 1


def test_release_task_returns_expired_leases(item, alice_actor) -> None:
    review_item_claim(item_id=item.pk, actor=alice_actor, now=timezone.now() - timedelta(hours=1))
    assert release_expired_leases.delay().get() == 1
    item.refresh_from_db()
    assert (item.status, item.holder) == ("pending", "")
