"""Celery tasks of the review queue: thin wrappers around one service each."""

from __future__ import annotations

from celery import shared_task

from review import services


@shared_task(name="review.tasks.enqueue_failures")
def enqueue_failures() -> int:
    """Queue every failed interaction that has no review item yet (beat: the safety net behind enqueue_interactions)."""
    return services.review_items_enqueue_failures()


@shared_task(name="review.tasks.enqueue_interactions")
def enqueue_interactions(interaction_ids: list[int]) -> int:
    """Queue these failed interactions now (sent by name on the ingest transaction's commit)."""
    return services.review_items_enqueue_interactions(interaction_ids=interaction_ids)


@shared_task(name="review.tasks.release_expired_leases")
def release_expired_leases() -> int:
    """Return items whose reviewer lease ran out to the queue (every few minutes from beat)."""
    return services.review_leases_release_expired()
