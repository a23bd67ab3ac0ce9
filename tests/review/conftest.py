"""Fixtures for review tests: the payments catalog, failed interactions, reviewers."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from ftops.catalog.models import Service
from ftops.common.actors import Actor
from review.models import ReviewItem
from review.services import review_items_enqueue_failures
from tests.review.factories import make_interaction, make_payments, make_reviewer


@pytest.fixture
def payments(db: Any) -> Service:
    return make_payments()


@pytest.fixture
def item(payments: Service) -> ReviewItem:
    """One queued dollars-instead-of-cents failure, with the expected call recorded."""
    make_interaction(payments, expected_calls=[
        {"name": "refund_payment", "arguments": {"payment_id": "pay_123", "amount_cents": 4999}}])
    review_items_enqueue_failures()
    return ReviewItem.objects.get()


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    return make_reviewer(django_user_model, "alice")


@pytest.fixture
def bob(django_user_model: Any) -> Any:
    return make_reviewer(django_user_model, "bob")


@pytest.fixture
def alice_actor(alice: Any) -> Actor:
    return Actor(label="alice", user=alice)


@pytest.fixture
def bob_actor(bob: Any) -> Actor:
    return Actor(label="bob", user=bob)


@pytest.fixture
def alice_client(alice: Any) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(bob: Any) -> Client:
    client = Client()
    client.force_login(bob)
    return client
