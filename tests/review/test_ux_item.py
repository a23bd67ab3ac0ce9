"""The item page's correction form (issue 16): suggestion first, renames as renames, mistakes
that fit the tool, wrong behaviour framed as wrong, the simulation's answer for the demo only,
an error summary that links to its fields."""

from __future__ import annotations

import re
from typing import Any

from django.test import Client
from django.urls import reverse

from ftops.catalog.models import Service
from review.models import ReviewItem
from review.services import review_items_enqueue_failures
from tests.review.factories import make_interaction
from tests.review.test_views import HTMX, claimed, fields_of


def _page(client: Client, item: ReviewItem, **params: str) -> str:
    return client.get(reverse("review:item", args=[item.pk]), params).content.decode()


def _mistakes(body: str) -> tuple[list[str], list[str]]:
    """(offered, ticked) mistake slugs of the correction form."""
    boxes = re.findall(r'<input type="checkbox" name="mistakes" value="([a-z_]+)" (checked)?', body)
    return [slug for slug, _ in boxes], [slug for slug, ticked in boxes if ticked]


def test_the_form_starts_from_a_confident_suggested_fix(alice_client: Client, item: ReviewItem, alice: Any) -> None:
    claimed(item, alice)
    body = _page(alice_client, item)
    assert re.search(r'<input type="number" id="f-calls-0-arg-amount_cents" name="calls-0-arg-amount_cents" '
                     r'value="4999"', body)
    offered, ticked = _mistakes(body)
    assert ticked == ["dollars_for_cents"]  # the dollars were the wrong type: named once, precisely
    assert "dollars_for_cents" in offered
    assert ('<button type="submit" form="correction-form" name="action" value="submit" class="primary" '
            'id="accept-suggested">Accept the suggested fix <kbd>a</kbd></button>') in body
    assert "Suggested fix accepted: refund_payment.amount_cents: 49.99 dollars → 4999 cents." in body
    model = _page(alice_client, item, prefill="model")
    assert 'id="accept-suggested"' not in model and 'value="49.99"' in model
    # Before the claim there is nothing to accept yet.
    other = make_interaction(item.service, external_id="unclaimed")
    review_items_enqueue_failures()
    unclaimed = ReviewItem.objects.get(interaction=other)
    assert 'id="accept-suggested"' not in _page(alice_client, unclaimed)


def test_a_renamed_parameter_is_one_rename_with_a_suggested_fix(alice_client: Client, payments: Service,
                                                                 alice: Any) -> None:
    make_interaction(payments, external_id="rename", query="where is order o-77?", failure_kind="unknown_parameter",
                     calls=[{"name": "get_order", "arguments": {"order": "o-77"}}])
    review_items_enqueue_failures()
    item = ReviewItem.objects.get()
    body = _page(alice_client, item)
    assert re.search(r'<tr class="arg-renamed"><th scope="row"><code>order</code></th><td><code>&quot;o-77&quot;'
                     r'</code></td>\s*<td><span class="badge warn">renamed</span> the parameter is called '
                     r'&#x27;order_id&#x27; \(sent as &#x27;order&#x27;\): one rename fixes it</td>', body)
    assert "arg-missing" not in body and "arg-unknown" not in body
    assert "get_order: rename &#x27;order&#x27; to &#x27;order_id&#x27; (the parameter&#x27;s name)" in body
    claimed(item, alice)
    claimed_body = _page(alice_client, item)
    assert 'name="calls-0-arg-order_id" value="o-77"' in claimed_body
    assert _mistakes(claimed_body)[1] == ["wrong_parameter_name"]


def test_common_mistakes_are_those_of_the_tool(alice_client: Client, payments: Service, alice: Any) -> None:
    make_interaction(payments, external_id="inv", query="status of order o-1?", failure_kind="value_error",
                     calls=[{"name": "get_order", "arguments": {"order_id": "o-1", "fulfillment_state": "sent"}}])
    review_items_enqueue_failures()
    item = ReviewItem.objects.get()
    claimed(item, alice)
    body = _page(alice_client, item)
    offered, ticked = _mistakes(body)
    assert "dollars_for_cents" not in offered  # get_order has no amount in cents
    assert "Amount in dollars instead of cents" not in body
    assert ticked == ["user_word_not_enum"]
    assert "user_word_not_enum" in offered and "wrong_tool" in offered
    # Choosing the refund tool (an amount in cents) offers it again.
    refreshed = alice_client.post(reverse("review:item", args=[item.pk]),
                                  fields_of(item, action="refresh", mistakes=[]), **HTMX).content.decode()
    assert "dollars_for_cents" in _mistakes(refreshed)[0]


def test_a_valid_call_where_none_was_due_is_framed_as_wrong(alice_client: Client, payments: Service) -> None:
    payments.source = "sample:acme:seed=7"  # the demo enterprise: its expected behaviour is known
    payments.save(update_fields=["source"])
    make_interaction(payments, external_id="abstain", query="what's the weather?", failure_kind="unsuccessful",
                     calls=[{"name": "get_order", "arguments": {"order_id": "o-1"}}], expected_behavior="abstain")
    review_items_enqueue_failures()
    body = _page(alice_client, ReviewItem.objects.get())
    assert "valid against the schema" not in body
    assert '<span class="badge bad">wrong behaviour</span>' in body
    assert '<div class="call-check wrong">' in body and '<div class="call-check ok">' not in body
    assert "the right behaviour was to abstain, not to call a tool" in body


def test_the_error_summary_links_to_each_field(alice_client: Client, item: ReviewItem, alice: Any) -> None:
    item = claimed(item, alice)
    response = alice_client.post(reverse("review:item", args=[item.pk]),
                                 fields_of(item, **{"calls-0-arg-amount_cents": "49.99", "calls-0-arg-payment_id": ""}),
                                 **HTMX)
    body = response.content.decode()
    assert response.status_code == 422
    summary = body.split('id="error-summary"')[1].split("</div>")[0]
    links = re.findall(r'<a href="#([^"]+)" data-focus-field="\1">([^<]+)</a>', summary)
    assert links == [("f-calls-0-arg-payment_id", "Call 1: payment_id"),
                     ("f-calls-0-arg-amount_cents", "Call 1: amount_cents")]


def test_a_valid_call_of_a_failed_interaction_is_not_shown_as_right(alice_client: Client, payments: Service) -> None:
    make_interaction(payments, external_id="thumbs-down", query="where is my order?", failure_kind="negative_feedback",
                     calls=[{"name": "get_order", "arguments": {"order_id": "o-1"}}])
    review_items_enqueue_failures()
    body = _page(alice_client, ReviewItem.objects.get())
    assert "valid against the schema" not in body
    assert '<span class="badge warn">arguments fit the schema</span>' in body
    assert '<div class="call-check wrong">' in body
