"""Celery tasks of the review queue: thin wrappers around one service each."""

from __future__ import annotations

from celery import shared_task

from review import services


@shared_task(name="review.tasks.enqueue_failures")
def enqueue_failures() -> int:
    """Queue every failed interaction that has no review item yet (daily beat, after ingest)."""
    return services.review_items_enqueue_failures()


@shared_task(name="review.tasks.release_expired_leases")
def release_expired_leases() -> int:
    """Return items whose reviewer lease ran out to the queue (every few minutes from beat)."""
    return services.review_leases_release_expired()
