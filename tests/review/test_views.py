"""Review pages: role checks, queue filters and counts, the generated form, live validation,
plain-POST submit, stale submit, bulk actions, statistics, and query counts."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ftops.common.models import AuditEvent
from ftops.datasets.models import TrainingExample
from review.models import ReviewEvent, ReviewItem
from review.services import review_item_claim, review_items_enqueue_failures
from tests.review.factories import make_interaction

HTMX = {"HTTP_HX_REQUEST": "true"}


def fields_of(item: ReviewItem, **overrides: Any) -> dict[str, Any]:
    data = {
        "version": str(item.version), "calls-count": "1", "behavior": "call",
        "calls-0-tool": "refund_payment", "calls-0-arg-payment_id": "pay_123", "calls-0-arg-amount_cents": "4999",
        "calls-0-arg-currency": '"USD"', "explanation": "Amounts are in cents.",
        "mistakes": ["dollars_for_cents"], "action": "submit",
    }
    data.update(overrides)
    return data


def claimed(item: ReviewItem, user: Any) -> ReviewItem:
    from ftops.common.actors import Actor

    return review_item_claim(item_id=item.pk, actor=Actor(label=user.username, user=user))


# --- access -----------------------------------------------------------------------------------

def test_anonymous_users_are_sent_to_login(client: Client, item) -> None:
    response = client.get(reverse("review:queue"))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/review/")


def test_users_without_the_reviewer_role_get_403_and_an_audit_row(client: Client, item,
                                                                   django_user_model) -> None:
    user = django_user_model.objects.create_user("mallory", "m@example.com", "pw")
    client.force_login(user)
    response = client.post(reverse("review:claim", args=[item.pk]))
    assert response.status_code == 403
    assert "not a reviewer" in response.content.decode()
    audit = AuditEvent.objects.get(action="permission.denied")
    assert (audit.actor, audit.detail["needed_roles"]) == ("mallory", ["reviewer"])
    item.refresh_from_db()
    assert (item.status, item.version) == ("pending", 1)


def test_staff_and_reviewer_group_members_may_review(client: Client, item, admin_user, alice) -> None:
    client.force_login(admin_user)
    assert client.get(reverse("review:queue")).status_code == 200
    client.force_login(alice)
    assert client.get(reverse("review:queue")).status_code == 200
    assert Group.objects.get(name="reviewer").user_set.filter(pk=alice.pk).exists()


# --- queue --------------------------------------------------------------------------------------

def test_queue_lists_failures_newest_first_with_counts_filters_and_search(alice_client: Client, payments) -> None:
    now = timezone.now()
    make_interaction(payments, query="refund old order", when=now - timedelta(days=2), failure_kind="type_error")
    make_interaction(payments, query="where is order 7", when=now - timedelta(hours=1),
                     calls=[{"name": "get_order", "arguments": {"order_id": "7", "fulfillment_state": "pending"}}],
                     failure_kind="value_error")
    make_interaction(payments, query="newest refund", when=now, failure_kind="type_error")
    review_items_enqueue_failures()
    page = alice_client.get(reverse("review:queue")).content.decode()
    assert page.index("newest refund") < page.index("where is order 7") < page.index("refund old order")
    assert re.search(r"Open \(to review\) <span class=\"count\">3</span>", page)
    assert "refund_payment (2)" in page and "get_order (1)" in page
    assert "Wrong type (2)" in page and "Value not allowed (1)" in page

    by_kind = alice_client.get(reverse("review:queue"), {"kind": "value_error"}).content.decode()
    assert "where is order 7" in by_kind and "newest refund" not in by_kind
    by_tool = alice_client.get(reverse("review:queue"), {"tool": "refund_payment"}).content.decode()
    assert "where is order 7" not in by_tool and "newest refund" in by_tool
    searched = alice_client.get(reverse("review:queue"), {"q": "OLD ORDER"}).content.decode()
    assert "refund old order" in searched and "newest refund" not in searched
    nothing = alice_client.get(reverse("review:queue"), {"q": "zzz"}).content.decode()
    assert "Nothing matches these filters." in nothing


def test_queue_htmx_filter_returns_only_the_results_partial(alice_client: Client, item) -> None:
    response = alice_client.get(reverse("review:queue"), {"service": "payments"}, **HTMX)
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="queue-results"')
    assert "<html" not in body


def test_empty_queue_says_what_to_do_next(alice_client: Client, db) -> None:
    body = alice_client.get(reverse("review:queue")).content.decode()
    assert "No failures to review yet." in body
    assert "POST /api/v1/interactions" in body


def test_queue_paginates(alice_client: Client, payments) -> None:
    for n in range(53):
        make_interaction(payments, external_id=f"p-{n}")
    review_items_enqueue_failures()
    first = alice_client.get(reverse("review:queue")).content.decode()
    assert first.count("data-row") == 50
    assert "Page 1 of 2" in first
    second = alice_client.get(reverse("review:queue"), {"page": 2}).content.decode()
    assert second.count("data-row") == 3


@pytest.mark.parametrize("rows", [3, 40])
def test_queue_query_count_does_not_grow_with_rows(alice_client: Client, payments, rows,
                                                   django_assert_max_num_queries) -> None:
    for n in range(rows):
        make_interaction(payments, external_id=f"q-{n}")
    review_items_enqueue_failures()
    # session, user, roles, summary, service names, "mine", the page, and the suggested fixes'
    # interactions, schemas and renames: the same ten for 3 rows or 40.
    with django_assert_max_num_queries(10):
        assert alice_client.get(reverse("review:queue")).status_code == 200


# --- item page and the generated form ------------------------------------------------------------

def test_item_page_highlights_what_is_wrong_and_offers_a_claim(alice_client: Client, item) -> None:
    row = (r'<tr class="arg-invalid"><th scope="row"><code>amount_cents</code></th><td><code>49.99</code>'
           r'</td>\s*<td><span class="badge bad">invalid</span> must be a whole number \(integer\)</td>\s*'
           r'<td>{}</td>')
    body = alice_client.get(reverse("review:item", args=[item.pk])).content.decode()
    assert "Refund $49.99 on payment pay_123" in body
    # Real traffic: the simulation's expected value (4999) is not taken from the client's metadata.
    assert re.search(row.format(r'<span class="muted">—</span>'), body)
    assert 'id="claim-form"' in body
    assert 'id="correction-form"' not in body  # only the holder edits
    item.service.source = "sample:acme:seed=7"  # the demo enterprise: its simulated answer is known
    item.service.save(update_fields=["source"])
    body = alice_client.get(reverse("review:item", args=[item.pk])).content.decode()
    assert re.search(row.format(r'<code>4999</code>'), body)


def test_claimed_item_shows_the_form_generated_from_the_schema(alice_client: Client, item, alice) -> None:
    claimed(item, alice)
    # From the model's answer (without ?prefill the form starts from the suggested fix).
    body = alice_client.get(reverse("review:item", args=[item.pk]), {"prefill": "model"}).content.decode()
    assert '"code": "409", "swap": true' in body  # htmx swaps refused submits in
    assert '<label for="f-calls-0-arg-amount_cents"><code>amount_cents</code> <span class="type">integer</span> ' \
           '<span class="req">required</span></label>' in body
    assert re.search(r'<input type="number" id="f-calls-0-arg-amount_cents" name="calls-0-arg-amount_cents" '
                     r'value="49.99"', body)
    assert 'step="1"' in body and 'min="1"' in body
    assert 'aria-describedby="f-calls-0-arg-amount_cents-help f-calls-0-arg-amount_cents-err"' in body
    assert "Amount to refund in cents (4999 = $49.99)" in body
    assert '<option value="&quot;USD&quot;" selected>USD</option>' in body
    assert f'<input type="hidden" name="version" value="{item.version + 1}">' in body


def test_item_page_query_count_is_small(alice_client: Client, item, alice, django_assert_max_num_queries) -> None:
    claimed(item, alice)
    with django_assert_max_num_queries(12):
        assert alice_client.get(reverse("review:item", args=[item.pk])).status_code == 200


def test_live_validation_returns_the_field_with_its_error(alice_client: Client, item, alice) -> None:
    claimed(item, alice)
    url = reverse("review:validate", args=[item.pk])
    bad = alice_client.post(url, fields_of(item, **{"calls-0-arg-amount_cents": "49.99",
                                                    "field": "calls-0-arg-amount_cents"}), **HTMX)
    body = bad.content.decode()
    assert bad.status_code == 200
    assert body.lstrip().startswith('<div class="field field-integer has-error" id="wrap-f-calls-0-arg-amount_cents">')
    assert "must be a whole number (integer); this amount is in cents, so 49.99 dollars is 4999" in body
    assert 'aria-invalid="true"' in body
    good = alice_client.post(url, fields_of(item, field="calls-0-arg-amount_cents"), **HTMX).content.decode()
    assert "has-error" not in good and 'value="4999"' in good
    missing = alice_client.post(url, fields_of(item, **{"calls-0-arg-payment_id": "",
                                                        "field": "calls-0-arg-payment_id"}), **HTMX)
    assert '<p class="field-error" id="f-calls-0-arg-payment_id-err">is required</p>' in missing.content.decode()
    unknown = alice_client.post(url, fields_of(item, field="calls-0-arg-nope"), **HTMX)
    assert unknown.status_code == 400


def test_picking_another_tool_rerenders_the_form_with_its_fields(alice_client: Client, item, alice) -> None:
    claimed(item, alice)
    response = alice_client.post(reverse("review:item", args=[item.pk]),
                                 fields_of(item, **{"calls-0-tool": "get_order", "action": "refresh"}), **HTMX)
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section class="review-work" id="review-work"')
    assert '<form id="correction-form"' in body
    assert 'name="calls-0-arg-order_id"' in body
    assert 'name="calls-0-arg-fulfillment_state"' in body
    assert 'name="calls-0-arg-amount_cents"' not in body
    assert TrainingExample.objects.count() == 0


def test_adding_and_removing_calls_without_javascript(alice_client: Client, item, alice) -> None:
    claimed(item, alice)
    url = reverse("review:item", args=[item.pk])
    added = alice_client.post(url, fields_of(item, action="add_call")).content.decode()
    assert 'name="calls-count" value="2"' in added and 'name="calls-1-tool"' in added
    removed = alice_client.post(url, fields_of(item, **{
        "calls-count": "2", "calls-1-tool": "get_order", "calls-1-arg-order_id": "o-9", "action": "remove:0"}))
    body = removed.content.decode()
    assert 'name="calls-count" value="1"' in body
    assert '<option value="get_order" selected>' in body
    assert 'value="o-9"' in body


def test_plain_post_submit_creates_the_example_and_moves_on(alice_client: Client, item, alice) -> None:
    current = claimed(item, alice)
    response = alice_client.post(reverse("review:item", args=[item.pk]),
                                 fields_of(current, then="queue", **{"calls-0-arg-reason": "late delivery"}))
    assert response.status_code == 302
    assert response["Location"] == reverse("review:queue")
    example = TrainingExample.objects.get()
    assert (example.source, example.quality) == ("correction", "high")
    assert example.expected["calls"][0]["arguments"] == {
        "payment_id": ["pay_123"], "amount_cents": [4999], "currency": ["USD"], "reason": ["late delivery"]}
    assert example.common_mistakes == ["Amount in dollars instead of cents"]
    follow = alice_client.get(response["Location"]).content.decode()
    assert f"Training example #{example.pk} created from review #{item.pk}" in follow


def test_invalid_submit_shows_errors_and_keeps_the_input(alice_client: Client, item, alice) -> None:
    current = claimed(item, alice)
    response = alice_client.post(reverse("review:item", args=[item.pk]),
                                 fields_of(current, **{"calls-0-arg-amount_cents": "49.99", "explanation": "mine"}))
    body = response.content.decode()
    assert response.status_code == 422
    assert "Please fix 1 problem below." in body
    assert 'value="49.99"' in body and ">mine</textarea>" in body
    assert TrainingExample.objects.count() == 0


def test_stale_submit_shows_the_conflict_and_loses_nothing(alice_client: Client, item, alice, bob) -> None:
    opened = claimed(item, alice)
    ReviewItem.objects.filter(pk=item.pk).update(lease_expires_at=timezone.now() - timedelta(minutes=1))
    claimed(item, bob)
    response = alice_client.post(reverse("review:item", args=[item.pk]), fields_of(
        opened, explanation="Careful: cents, not dollars", **{"calls-0-arg-reason": "customer asked twice"}))
    body = response.content.decode()
    assert response.status_code == 409
    assert "Not saved: bob is reviewing this item" in body
    assert "Your input is kept below so nothing is lost" in body
    assert ">Careful: cents, not dollars</textarea>" in body
    assert 'value="customer asked twice"' in body and 'value="4999"' in body
    assert 'id="submit-correction"\n            disabled' in body or "disabled aria-describedby" in body
    assert TrainingExample.objects.count() == 0
    item.refresh_from_db()
    assert (item.holder, item.status) == ("bob", "claimed")
    assert ReviewEvent.objects.filter(action="conflict", actor="alice").count() == 1


def test_stale_submit_when_the_item_is_free_again_lets_the_reviewer_resubmit(alice_client: Client, item,
                                                                             alice, bob) -> None:
    opened = claimed(item, alice)
    ReviewItem.objects.filter(pk=item.pk).update(lease_expires_at=timezone.now() - timedelta(minutes=1))
    claimed(item, bob)
    bob_client = Client()
    bob_client.force_login(bob)
    bob_client.post(reverse("review:skip", args=[item.pk]), {"version": 3})
    url = reverse("review:item", args=[item.pk])
    response = alice_client.post(url, fields_of(opened), **HTMX)
    body = response.content.decode()
    assert response.status_code == 409
    assert body.lstrip().startswith('<section class="review-work" id="review-work"')
    assert "check the history, then submit again" in body
    assert '<input type="hidden" name="version" value="4">' in body
    again = alice_client.post(url, fields_of(opened, version="4"), **HTMX)
    assert again.status_code == 204 and again["HX-Redirect"]
    assert TrainingExample.objects.count() == 1


def test_ask_for_details_lists_the_required_fields(alice_client: Client, item, alice) -> None:
    current = claimed(item, alice)
    url = reverse("review:item", args=[item.pk])
    body = alice_client.post(url, fields_of(current, behavior="ask_for_details", action="refresh")).content.decode()
    assert 'name="required_fields" value="payment_id"' in body
    assert 'name="required_fields" value="amount_cents"' in body
    assert 'name="required_fields" value="currency"' not in body
    done = alice_client.post(url, fields_of(current, behavior="ask_for_details", required_fields=["payment_id"],
                                            question="Which payment do you mean?"))
    assert done.status_code == 302
    assert TrainingExample.objects.get().expected == {"required_fields": ["payment_id"],
                                                      "question": "Which payment do you mean?"}


def test_reject_and_skip_buttons(alice_client: Client, payments, alice) -> None:
    make_interaction(payments, external_id="r1")
    make_interaction(payments, external_id="r2")
    review_items_enqueue_failures()
    first, second = ReviewItem.objects.order_by("pk")
    after_reject = alice_client.post(reverse("review:reject", args=[first.pk]), {"version": 1, "reason": "bot traffic"})
    # A decision moves on to the next open item, claimed for the reviewer.
    assert after_reject["Location"] == reverse("review:item", args=[second.pk])
    second.refresh_from_db()
    assert (second.holder, second.version) == ("alice", 2)
    alice_client.post(reverse("review:skip", args=[second.pk]), {"version": 2, "then": "queue"})
    assert dict(ReviewItem.objects.values_list("pk", "status")) == {first.pk: "rejected", second.pk: "skipped"}
    stale = alice_client.post(reverse("review:reject", args=[second.pk]), {"version": 1}, follow=True)
    assert "Not rejected: this item changed since you opened it." in stale.content.decode()


def test_bulk_reject_from_the_queue(alice_client: Client, payments, bob) -> None:
    for n in range(3):
        make_interaction(payments, external_id=f"b-{n}")
    review_items_enqueue_failures()
    a, b, c = ReviewItem.objects.order_by("pk")
    claimed(b, bob)
    asked = alice_client.post(reverse("review:bulk"), {"action": "reject", "items": [a.pk, b.pk, c.pk],
                                                       "reason": "load test", "back": "kind=type_error"})
    # Rejecting closes items for good: without a confirmed count the reviewer is asked first.
    assert asked.status_code == 200
    page = asked.content.decode()
    assert "Reject 3 items?" in page and 'name="confirmed" value="3"' in page and "?kind=type_error" in page
    assert ReviewItem.objects.filter(status="rejected").count() == 0
    response = alice_client.post(reverse("review:bulk"), {"action": "reject", "items": [a.pk, b.pk, c.pk],
                                                          "reason": "load test", "confirmed": "3"}, follow=True)
    body = response.content.decode()
    assert f"Rejected 2 item(s). 1 not changed (held by someone else or already decided): #{b.pk}" in body
    assert dict(ReviewItem.objects.values_list("pk", "status")) == {a.pk: "rejected", b.pk: "claimed",
                                                                    c.pk: "rejected"}
    nothing = alice_client.post(reverse("review:bulk"), {"action": "reject"}, follow=True).content.decode()
    assert "select at least one item first" in nothing
    no_action = alice_client.post(reverse("review:bulk"), {"items": [a.pk]}, follow=True).content.decode()
    assert "choose what to do with the selected items" in no_action


def test_bulk_reject_is_not_the_default_action(alice_client: Client, item) -> None:
    page = alice_client.get(reverse("review:queue")).content.decode()
    select = page[page.index('id="bulk-action"'):]
    select = select[:select.index("</select>")]
    assert re.search(r'<option value="" selected>', select)
    assert not re.search(r'<option value="reject"[^>]*selected', select)


def test_tool_filter_has_its_own_value_for_calls_without_a_tool(alice_client: Client, payments) -> None:
    make_interaction(payments, external_id="with-tool", query="refund my payment")
    make_interaction(payments, external_id="no-tool", query="nothing was called", calls=[], failure_kind="no_call")
    review_items_enqueue_failures()
    page = alice_client.get(reverse("review:queue")).content.decode()
    assert '<option value="__none__" >(no tool called) (1)</option>' in page
    assert 'value="__none__" selected' not in page
    filtered = alice_client.get(reverse("review:queue"), {"tool": "__none__"}).content.decode()
    assert '<option value="__none__" selected>' in filtered
    assert "nothing was called" in filtered and "refund my payment" not in filtered


def test_tab_and_dropdown_counts_follow_the_filters_and_search(alice_client: Client, payments) -> None:
    make_interaction(payments, external_id="c-1", query="parcel twice", failure_kind="type_error")
    make_interaction(payments, external_id="c-2", query="parcel late", failure_kind="value_error")
    make_interaction(payments, external_id="c-3", query="unrelated", failure_kind="value_error")
    review_items_enqueue_failures()
    page = alice_client.get(reverse("review:queue"), {"q": "parcel"}).content.decode()
    assert re.search(r"Open \(to review\) <span class=\"count\">2</span>", page)
    assert re.search(r"All <span class=\"count\">2</span>", page)
    assert "Wrong type (1)" in page and "Value not allowed (1)" in page
    page = alice_client.get(reverse("review:queue"), {"q": "parcel", "kind": "value_error"}).content.decode()
    assert re.search(r"Open \(to review\) <span class=\"count\">1</span>", page)
    assert "refund_payment (1)" in page and "1 item," in page


def test_rows_use_the_tabs_word_for_an_undecided_item(alice_client: Client, item) -> None:
    page = alice_client.get(reverse("review:queue")).content.decode()
    assert '<span class="badge">Open</span>' in page and "Pending" not in page
    assert "Pending" not in alice_client.get(reverse("review:item", args=[item.pk])).content.decode()


def test_after_a_decision_the_next_item_is_the_one_below_in_the_list(alice_client: Client, payments) -> None:
    now = timezone.now()
    for n in range(4):
        make_interaction(payments, external_id=f"n-{n}", when=now - timedelta(hours=n),
                         failure_kind="value_error" if n != 2 else "type_error")
    review_items_enqueue_failures()
    items = {i.interaction.external_id: i for i in ReviewItem.objects.select_related("interaction")}
    # Working down the value_error list from its second row: the next is n-3, not the newest (n-0).
    second = items["n-1"]
    response = alice_client.post(reverse("review:skip", args=[second.pk]) + "?kind=value_error",
                                 {"version": second.version})
    assert response["Location"] == reverse("review:item", args=[items["n-3"].pk]) + "?kind=value_error"
    # At the end of the list it starts again from the top (the skipped item is not offered back).
    last = ReviewItem.objects.get(pk=items["n-3"].pk)
    response = alice_client.post(reverse("review:skip", args=[last.pk]) + "?kind=value_error",
                                 {"version": last.version})
    assert response["Location"] == reverse("review:item", args=[items["n-0"].pk]) + "?kind=value_error"


def test_review_next_claims_the_newest_open_item(alice_client: Client, payments) -> None:
    make_interaction(payments, external_id="older", when=timezone.now() - timedelta(hours=3))
    make_interaction(payments, external_id="newer", when=timezone.now())
    review_items_enqueue_failures()
    response = alice_client.post(reverse("review:next"))
    newer = ReviewItem.objects.get(interaction__external_id="newer")
    assert response["Location"] == reverse("review:item", args=[newer.pk])
    newer.refresh_from_db()
    assert newer.holder == "alice"


def test_statistics_page_per_reviewer(alice_client: Client, item, alice, django_assert_max_num_queries) -> None:
    current = claimed(item, alice)
    alice_client.post(reverse("review:item", args=[item.pk]), fields_of(current))
    with django_assert_max_num_queries(6):
        body = alice_client.get(reverse("review:stats")).content.decode()
    assert re.search(r'<tr><th scope="row">alice</th><td>1</td><td>0</td><td>0</td>\s*<td>0</td><td>1</td><td>0</td>',
                     body)
    assert 'data-chart="stats-chart"' in body


def test_prefill_from_the_expected_answer(alice_client: Client, payments, alice) -> None:
    make_interaction(payments, external_id="ask", query="refund my last payment", failure_kind="unsuccessful",
                     calls=[{"name": "get_order", "arguments": {"order_id": "o1"}}],
                     expected_behavior="ask_for_details")
    review_items_enqueue_failures()
    it = ReviewItem.objects.get()
    it.interaction.metadata["simulated"]["tool"] = "refund_payment"
    it.interaction.save(update_fields=["metadata"])
    claimed(it, alice)
    # Real traffic: the simulated answer is never shown nor used, even if a client sent one.
    real = alice_client.get(reverse("review:item", args=[it.pk]), {"prefill": "expected"}).content.decode()
    assert "Expected (from the simulation)" not in real
    assert '<input type="radio" name="behavior" value="call" checked>' in real
    payments.source = "sample:acme:seed=7"  # the demo enterprise
    payments.save(update_fields=["source"])
    body = alice_client.get(reverse("review:item", args=[it.pk]), {"prefill": "expected"}).content.decode()
    assert 'Expected (from the simulation) <span class="badge warn">sample data only</span>' in body
    assert '<input type="radio" name="behavior" value="ask_for_details" checked>' in body
    assert '<option value="refund_payment" selected>' in body
    assert 'name="required_fields" value="payment_id"' in body


def test_parallel_calls_and_a_multi_step_sequence_through_the_form(alice_client: Client, payments, alice) -> None:
    make_interaction(payments, external_id="par", query="refund pay_1 and look up order o-2")
    make_interaction(payments, external_id="seq", query="refund the payment of order o-3")
    review_items_enqueue_failures()
    parallel = ReviewItem.objects.get(interaction__external_id="par")
    sequence = ReviewItem.objects.get(interaction__external_id="seq")
    version = claimed(parallel, alice).version
    done = alice_client.post(reverse("review:item", args=[parallel.pk]), fields_of(
        parallel, version=str(version), then="queue", **{
            "calls-count": "2", "calls-0-arg-payment_id": "pay_1", "calls-1-tool": "get_order",
            "calls-1-arg-order_id": "o-2"}))
    assert done.status_code == 302
    version = claimed(sequence, alice).version
    steps = fields_of(sequence, version=str(version), behavior="sequence", then="queue", **{
        "calls-count": "2", "calls-0-tool": "get_order", "calls-0-arg-order_id": "o-3",
        "calls-1-tool": "refund_payment", "calls-1-arg-payment_id": "{prev.payment_id}",
        "calls-1-arg-amount_cents": "{prev.total_cents}"})
    steps.pop("calls-0-arg-payment_id")
    steps.pop("calls-0-arg-amount_cents")
    steps.pop("calls-0-arg-currency")
    done = alice_client.post(reverse("review:item", args=[sequence.pk]), steps)
    assert done.status_code == 302, done.content.decode()[-2000:]
    by_query = {e.user_query: e for e in TrainingExample.objects.all()}
    assert by_query["refund pay_1 and look up order o-2"].expected == {"calls": [
        {"name": "refund_payment", "arguments": {"payment_id": ["pay_1"], "amount_cents": [4999],
                                                 "currency": ["USD"]}},
        {"name": "get_order", "arguments": {"order_id": ["o-2"]}},
    ]}
    assert by_query["refund the payment of order o-3"].expected == {"steps": [
        {"name": "get_order", "arguments": {"order_id": "o-3"}},
        {"name": "refund_payment", "arguments": {"payment_id": "{prev.payment_id}",
                                                 "amount_cents": "{prev.total_cents}"}},
    ]}
    assert by_query["refund the payment of order o-3"].behavior == "sequence"


def test_a_prev_reference_is_refused_outside_a_sequence(alice_client: Client, item, alice) -> None:
    current = claimed(item, alice)
    response = alice_client.post(reverse("review:item", args=[item.pk]),
                                 fields_of(current, **{"calls-0-arg-amount_cents": "{prev.total_cents}"}))
    assert response.status_code == 422
    assert "must be a whole number (integer)" in response.content.decode()
    assert TrainingExample.objects.count() == 0


# --- status tabs, bulk accept, suggested fix, blind double review, history, stats ---------------

def test_status_tabs_keep_the_service_tool_kind_and_search_filters(alice_client: Client, item) -> None:
    body = alice_client.get(reverse("review:queue"), {"service": "payments", "tool": "refund_payment",
                                                      "kind": "type_error", "q": "refund"}).content.decode()
    tabs = body.split('<nav class="status-tabs"')[1].split("</nav>")[0]
    assert 'href="?service=payments&amp;tool=refund_payment&amp;kind=type_error&amp;q=refund"' in tabs
    assert ('href="?status=all&amp;service=payments&amp;tool=refund_payment&amp;kind=type_error&amp;q=refund"'
            in tabs)
    assert 'hx-swap-oob' not in tabs
    # An htmx filter swaps only the results; the tabs come along out of band with the new filters.
    partial = alice_client.get(reverse("review:queue"), {"tool": "refund_payment", "q": "49"}, **HTMX)
    oob = partial.content.decode().split('<nav class="status-tabs" id="status-tabs" aria-label="Status" '
                                         'hx-swap-oob="true">')[1].split("</nav>")[0]
    assert 'href="?status=mine&amp;tool=refund_payment&amp;q=49"' in oob


def test_bulk_accept_of_suggested_fixes_from_the_queue(alice_client: Client, payments) -> None:
    make_interaction(payments, external_id="cents")
    make_interaction(payments, external_id="enum", calls=[{"name": "refund_payment", "arguments": {
        "payment_id": "pay_1", "amount_cents": 49.99, "currency": "GBP"}}])
    review_items_enqueue_failures()
    cents = ReviewItem.objects.get(interaction__external_id="cents")
    enum = ReviewItem.objects.get(interaction__external_id="enum")
    queue = alice_client.get(reverse("review:queue")).content.decode()
    assert 'id="select-all" data-select-all' in queue
    assert '<option value="accept">Accept the suggested fix</option>' in queue
    assert queue.count('class="badge good" title="Suggested fix: refund_payment.amount_cents: 49.99 dollars') == 1
    assert "1 row on this page has one." in queue
    done = alice_client.post(reverse("review:bulk"), {"action": "accept", "items": [cents.pk, enum.pk],
                                                      "back": "kind=type_error"}, follow=True)
    assert done.redirect_chain[0][0] == reverse("review:queue") + "?kind=type_error"
    body = done.content.decode()
    assert (f"Accepted the suggested fix of 1 item(s). 1 had no confident suggested fix (review them by hand): "
            f"#{enum.pk}.") in body
    example = TrainingExample.objects.get()
    assert (example.source, example.quality, example.provenance["review_item"]) == ("correction", "high", cents.pk)
    assert dict(ReviewItem.objects.values_list("pk", "status")) == {cents.pk: "corrected", enum.pk: "pending"}


def test_item_page_shows_the_suggested_fix_and_prefills_the_form_with_it(alice_client: Client, item,
                                                                         alice) -> None:
    page = alice_client.get(reverse("review:item", args=[item.pk])).content.decode()
    assert 'id="suggested-fix"' in page and "refund_payment.amount_cents: 49.99 dollars → 4999 cents" in page
    assert "prefill=suggested" not in page  # only for whoever holds the item
    claimed(item, alice)
    form = alice_client.get(reverse("review:item", args=[item.pk]), {"prefill": "suggested"}).content.decode()
    assert re.search(r'name="calls-0-arg-amount_cents"[^>]*value="4999"', form)
    assert '<input type="checkbox" name="mistakes" value="dollars_for_cents" checked>' in form
    assert "Suggested fix accepted: refund_payment.amount_cents" in form


def test_a_refused_claim_says_why_and_is_in_the_history(alice_client: Client, bob_client: Client, item,
                                                        bob) -> None:
    claimed(item, bob)
    response = alice_client.post(reverse("review:claim", args=[item.pk]), follow=True)
    body = response.content.decode()
    assert f"Could not claim #{item.pk}: bob is reviewing this item" in body
    assert "alice — claim refused: “bob is reviewing this item" in body
    assert ReviewEvent.objects.filter(action="claim_refused", actor="alice").count() == 1


@pytest.fixture
def double_item(payments, settings) -> ReviewItem:
    settings.FTOPS_REVIEW_DOUBLE_REVIEW_PERCENT = 100
    make_interaction(payments)
    review_items_enqueue_failures()
    return ReviewItem.objects.get()


def test_double_review_is_blind_until_both_reviews_are_in(alice_client: Client, bob_client: Client, client: Client,
                                                          double_item, alice, bob, admin_user) -> None:
    url = reverse("review:item", args=[double_item.pk])
    first = claimed(double_item, alice)
    alice_client.post(url, fields_of(first, **{"calls-0-tool": "refund_payment", "then": "queue"}))
    second_view = bob_client.get(url).content.decode()
    submissions = second_view.split('id="submissions"')[1].split("</ul>")[0]
    assert "Round 1 is in." in submissions and "Double review is blind" in submissions
    assert "alice</strong>" not in submissions and "refund_payment" not in submissions
    assert "Double review agreement" not in second_view
    # The first reviewer sees their own answer, an admin sees it too.
    assert "Round 1 by <strong>alice</strong>: call" in alice_client.get(url).content.decode()
    client.force_login(admin_user)
    assert "Round 1 by <strong>alice</strong>: call" in client.get(url).content.decode()

    current = claimed(double_item, bob)
    bob_client.post(url, fields_of(current, **{"calls-0-arg-amount_cents": "5000", "then": "queue"}))
    after = bob_client.get(url).content.decode()
    assert "Round 1 by <strong>alice</strong>: call" in after and "Round 2 by <strong>bob</strong>: call" in after
    table = after.split('<table class="agreement">')[1].split("</table>")[0]
    rows = [(css, re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cells)).strip())
            for css, cells in re.findall(r'<tr class="([^"]+)">(.*?)</tr>', table, re.S)]
    assert rows == [
        ("arg-ok", "1 tool refund_payment refund_payment yes"),
        ("arg-mismatch", "amount_cents 4999 5000 no"),
        ("arg-ok", "currency USD USD yes"),
        ("arg-ok", "payment_id pay_123 pay_123 yes"),
    ]
    assert "disagreement" in after and "arguments 2/3 agree" in after


def test_item_history_is_paginated(alice_client: Client, item) -> None:
    from review.models import ReviewAction

    ReviewEvent.objects.bulk_create([
        ReviewEvent(item=item, action=ReviewAction.CLAIM_REFUSED, actor=f"r{n:02d}",
                    at=timezone.now() - timedelta(minutes=n)) for n in range(45)])
    url = reverse("review:item", args=[item.pk])
    first = alice_client.get(url).content.decode()
    history = first.split('id="history"')[1]
    assert history.count("— claim refused") == 20 and "r00 —" in history and "r20 —" not in history
    assert 'href="?history=2#history"' in history and "page 1 of 3 &middot; 45 events" in history
    last = alice_client.get(url, {"history": 3}).content.decode().split('id="history"')[1]
    assert last.count("— claim refused") == 5 and "r44 —" in last


def test_statistics_are_paginated(alice_client: Client, item) -> None:
    from review.models import ReviewAction

    ReviewEvent.objects.bulk_create([ReviewEvent(item=item, action=ReviewAction.SKIPPED, actor=f"rev-{n:02d}")
                                     for n in range(55)])
    first = alice_client.get(reverse("review:stats")).content.decode()
    assert first.count('<th scope="row">rev-') == 50 and "page 1 of 2 &middot; 55 reviewers" in first
    second = alice_client.get(reverse("review:stats"), {"page": 2, "days": 7}).content.decode()
    assert second.count('<th scope="row">rev-') == 5 and 'href="?days=7&amp;page=1"' in second


def test_unreadable_arguments_are_shown_verbatim_and_framed_as_wrong(alice_client: Client, payments) -> None:
    make_interaction(payments, calls=[{"name": "refund_payment", "arguments": {},
                                       "arguments_raw": '{"payment_id": "pay_1", amount: 12',
                                       "arguments_error": "arguments are not valid JSON"}])
    review_items_enqueue_failures()
    item = ReviewItem.objects.get()
    body = alice_client.get(reverse("review:item", args=[item.pk])).content.decode()
    verbatim = "{&quot;payment_id&quot;: &quot;pay_1&quot;, amount: 12"
    assert f'<pre class="raw-arguments"><code>{verbatim}</code></pre>' in body
    assert '<span class="badge bad">arguments are not valid JSON</span>' in body
    assert "valid against the schema" not in body
    assert 'id="suggested-fix"' not in body


def test_the_interaction_redirect_needs_the_reviewer_role(client: Client, django_user_model: Any, item) -> None:
    assert client.get(f"/review/by-interaction/{item.interaction_id}/").status_code == 302  # to the login
    client.force_login(django_user_model.objects.create_user("nobody", password="pw-nobody-123"))
    assert client.get(f"/review/by-interaction/{item.interaction_id}/").status_code == 403
