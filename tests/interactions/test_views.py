"""The interaction pages: login, roles, filters, pagination, detail."""

from __future__ import annotations

from typing import Any

import pytest

from ftops.common.models import AuditEvent
from ftops.common.selectors import CappedPaginator
from ftops.interactions.services import interactions_ingest


def test_list_requires_login(client: Any, db: Any) -> None:
    response = client.get("/interactions/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_user_without_a_role_gets_403_and_an_audit_row(client: Any, django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("visitor", password="pw-visitor-123")
    client.force_login(user)
    assert client.get("/interactions/").status_code == 403
    assert AuditEvent.objects.filter(action="permission.denied", object_id="interactions:list").count() == 1


def test_list_filters_by_service_and_failure_kind(client: Any, admin_user: Any, catalog: Any, payload: Any) -> None:
    interactions_ingest(payloads=[
        payload("p-ok"),
        payload("p-low", user_feedback=1),
        payload("o-bad", service="orders", tool_calls=[{"name": "get_order", "arguments": {"order_id": "x"}}]),
    ])
    client.force_login(admin_user)
    page = client.get("/interactions/")
    assert page.status_code == 200
    assert page.context["nav_section"] == "interactions"
    assert {i.external_id for i in page.context["page"].object_list} == {"p-ok", "p-low", "o-bad"}
    by_service = client.get("/interactions/", {"service": "orders"})
    assert [i.external_id for i in by_service.context["page"].object_list] == ["o-bad"]
    by_kind = client.get("/interactions/", {"failure_kind": "negative_feedback"})
    assert [i.external_id for i in by_kind.context["page"].object_list] == ["p-low"]
    failures = client.get("/interactions/", {"failures": "1"})
    assert {i.external_id for i in failures.context["page"].object_list} == {"p-low", "o-bad"}
    html = failures.content.decode()
    assert 'href="/interactions/o-bad/"' in html
    assert "Value not allowed" in html


def test_list_paginates(client: Any, admin_user: Any, catalog: Any, payload: Any) -> None:
    interactions_ingest(payloads=[payload(f"pg-{i:03d}", timestamp=f"2025-03-01T10:{i // 60:02d}:{i % 60:02d}Z")
                                  for i in range(120)])
    client.force_login(admin_user)
    second = client.get("/interactions/", {"page": 2, "service": "payments"})
    page = second.context["page"]
    assert (page.number, page.paginator.num_pages, len(page.object_list)) == (2, 3, 50)
    assert page.object_list[0].external_id == "pg-069"
    assert "service=payments&amp;page=3" in second.content.decode()


def test_detail_page_shows_redacted_conversation_and_verdict(
    client: Any, admin_user: Any, catalog: Any, payload: Any
) -> None:
    interactions_ingest(payloads=[payload(
        "d-1", messages=[{"role": "user", "content": "refund jane@acme.example"}],
        tool_calls=[{"name": "create_payment", "arguments": {"currency": "USD"}}],
    )])
    client.force_login(admin_user)
    response = client.get("/interactions/d-1/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "refund [EMAIL]" in html
    assert "jane@acme.example" not in html
    assert "create_payment: &#x27;amount_cents&#x27; is a required property" in html
    assert client.get("/interactions/nope/").status_code == 404


def test_a_failed_interactions_page_links_to_its_review_item(
    client: Any, admin_user: Any, catalog: Any, payload: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from review.models import ReviewItem

    with django_capture_on_commit_callbacks(execute=True):
        result = interactions_ingest(payloads=[payload("f-1", success=False), payload("f-ok")])
    failed_pk, ok_pk = (item.pk for item in result.items)
    client.force_login(admin_user)
    html = client.get("/interactions/f-1/").content.decode()
    link = f'href="/review/by-interaction/{failed_pk}/"'
    assert link in html
    assert "by-interaction" not in client.get("/interactions/f-ok/").content.decode()
    response = client.get(f"/review/by-interaction/{failed_pk}/")
    item = ReviewItem.objects.get(interaction_id=failed_pk)
    assert (response.status_code, response["Location"]) == (302, f"/review/{item.pk}/")
    missing = client.get(f"/review/by-interaction/{ok_pk}/")
    assert missing.status_code == 404
    assert f"interaction {ok_pk} has no review item" in missing.content.decode()


def test_an_unparsable_call_is_shown_verbatim(client: Any, admin_user: Any, catalog: Any, payload: Any) -> None:
    interactions_ingest(payloads=[payload(
        "raw-1", tool_calls=[{"type": "function", "function": {"name": "create_payment",
                                                                "arguments": "{amount_cents: 12"}}])])
    client.force_login(admin_user)
    html = client.get("/interactions/raw-1/").content.decode()
    assert "arguments are not valid JSON; the model sent, verbatim:" in html
    assert "<pre>{amount_cents: 12</pre>" in html


def test_the_list_page_says_more_than_when_capped(client: Any, admin_user: Any, monkeypatch: Any,
                                                   catalog: Any, payload: Any) -> None:
    interactions_ingest(payloads=[payload(f"cap-{i}") for i in range(4)])
    monkeypatch.setattr(CappedPaginator, "__init__", _small_cap)
    client.force_login(admin_user)
    html = client.get("/interactions/").content.decode()
    assert "more than 3 interactions" in html
    assert "of at least 1" in html


def _small_cap(self: CappedPaginator, object_list: Any, per_page: int, *, cap: int = 3) -> None:
    super(CappedPaginator, self).__init__(object_list, per_page)
    self.cap = 3


@pytest.mark.parametrize("size", [3, 40])
def test_interaction_pages_take_the_same_queries_whatever_the_rows(client: Any, admin_user: Any, catalog: Any,
                                                                    payload: Any, size: int,
                                                                    django_assert_max_num_queries: Any) -> None:
    from tests.common.pages import get_within

    interactions_ingest(payloads=[payload(f"q-{n}", user_feedback=1 if n % 2 else 5) for n in range(size)])
    client.force_login(admin_user)
    get_within(client, django_assert_max_num_queries, "/interactions/", 5)
    get_within(client, django_assert_max_num_queries, "/interactions/", 5, failures="1", service="payments")
    # session, user, the interaction, its feedback, the training examples made from it
    get_within(client, django_assert_max_num_queries, "/interactions/q-1/", 5)


def test_an_interaction_links_to_its_review_item_and_training_example(client: Any, admin_user: Any) -> None:
    from ftops.common.actors import Actor
    from ftops.datasets.models import TrainingExample
    from review.models import ReviewItem
    from review.services import review_items_accept_suggested, review_items_enqueue_failures
    from tests.review.factories import make_interaction, make_payments

    make_interaction(make_payments(), external_id="int-links")
    review_items_enqueue_failures()
    item = ReviewItem.objects.get()
    client.force_login(admin_user)
    before = client.get("/interactions/int-links/").content.decode()
    assert f'<a href="/review/by-interaction/{item.interaction_id}/">Its review item</a>' in before
    assert "No training example made from it yet." in before
    assert "{&#x27;" not in before and '&quot;amount_cents&quot;: 49.99' in before
    review_items_accept_suggested(item_ids=[item.pk], actor=Actor(label="alice"))
    example = TrainingExample.objects.get()
    after = client.get("/interactions/int-links/").content.decode()
    assert f'<a href="/datasets/examples/{example.pk}/">training example #{example.pk}</a>' in after
