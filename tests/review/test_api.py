"""Reviewer API under /api/v1/review/: role checks, claim, submit, conflicts, validation."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from ftops.common.models import AuditEvent
from ftops.datasets.models import TrainingExample
from review.models import ReviewItem

BODY = {"behavior": "call", "calls": [{"name": "refund_payment",
                                        "arguments": {"payment_id": "pay_123", "amount_cents": 4999}}],
        "explanation": "cents", "common_mistakes": ["dollars_for_cents"]}


def test_api_needs_the_reviewer_role(make_key, item) -> None:
    client, key = make_key("ingest")
    response = client.post(f"/api/v1/review/items/{item.pk}/claim")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert AuditEvent.objects.filter(action="permission.denied", api_key=key).count() == 1
    item.refresh_from_db()
    assert item.status == "pending"


def test_claim_then_submit_through_the_api(make_key, item) -> None:
    client, key = make_key("reviewer")
    listed = client.get("/api/v1/review/items", {"service": "payments"}).json()
    assert listed["count"] == 1
    assert listed["results"][0]["id"] == item.pk
    claim = client.post(f"/api/v1/review/items/{item.pk}/claim")
    assert claim.status_code == 200
    assert (claim.json()["holder"], claim.json()["version"]) == (f"key:{key.prefix}", 2)
    submitted = client.post(f"/api/v1/review/items/{item.pk}/submit", {**BODY, "version": 2}, format="json")
    assert submitted.status_code == 201
    data = submitted.json()
    example = TrainingExample.objects.get()
    assert (data["example"], data["final"], data["item"]["status"]) == (example.pk, True, "corrected")
    assert example.common_mistakes == ["Amount in dollars instead of cents"]
    assert example.provenance["reviewers"] == [f"key:{key.prefix}"]


def test_a_second_reviewer_gets_409_on_claim(make_key, item) -> None:
    first, _ = make_key("reviewer", name="one")
    second, _ = make_key("reviewer", name="two")
    assert first.post(f"/api/v1/review/items/{item.pk}/claim").status_code == 200
    refused = second.post(f"/api/v1/review/items/{item.pk}/claim")
    assert refused.status_code == 409
    assert "is reviewing this item" in refused.json()["error"]["message"]


def test_stale_submit_is_409_with_the_current_item(make_key, item) -> None:
    first, _ = make_key("reviewer", name="one")
    second, _ = make_key("reviewer", name="two")
    first.post(f"/api/v1/review/items/{item.pk}/claim")
    ReviewItem.objects.filter(pk=item.pk).update(lease_expires_at=timezone.now() - timedelta(minutes=1))
    second.post(f"/api/v1/review/items/{item.pk}/claim")
    stale = first.post(f"/api/v1/review/items/{item.pk}/submit", {**BODY, "version": 2}, format="json")
    assert stale.status_code == 409
    assert stale.json()["item"]["version"] == 3
    assert stale.json()["error"]["fields"] == {"version": ["the item is now at version 3"]}
    assert TrainingExample.objects.count() == 0


def test_invalid_correction_is_422_naming_the_argument(make_key, item) -> None:
    client, _ = make_key("reviewer")
    client.post(f"/api/v1/review/items/{item.pk}/claim")
    bad = {**BODY, "version": 2, "calls": [{"name": "refund_payment",
                                            "arguments": {"payment_id": "pay_123", "amount_cents": 49.99}}]}
    response = client.post(f"/api/v1/review/items/{item.pk}/submit", bad, format="json")
    assert response.status_code == 422
    assert response.json()["error"]["fields"] == {
        "calls.0.arguments.amount_cents": ["must be a whole number (integer)"]}
    missing = client.post(f"/api/v1/review/items/{item.pk}/submit", {"behavior": "call"}, format="json")
    assert missing.status_code == 422
    assert "version" in missing.json()["error"]["fields"]
    assert client.post("/api/v1/review/items/999999/claim").status_code == 404
    item.refresh_from_db()
    assert (item.status, item.version) == ("claimed", 2)


def test_reject_and_skip_through_the_api(make_key, item) -> None:
    client, _ = make_key("reviewer")
    skipped = client.post(f"/api/v1/review/items/{item.pk}/skip", {"version": 1}, format="json")
    assert skipped.json()["status"] == "skipped"
    assert client.post(f"/api/v1/review/items/{item.pk}/reject", {"version": 1}, format="json").status_code == 409
    rejected = client.post(f"/api/v1/review/items/{item.pk}/reject", {"version": 2, "reason": "spam"}, format="json")
    assert rejected.json()["status"] == "rejected"


def test_review_routes_are_in_the_openapi_schema(admin_user, api_client) -> None:
    api_client.force_authenticate(admin_user)
    schema = api_client.get("/api/v1/schema", {"format": "json"}).json()
    assert "/api/v1/review/items/{item_id}/submit" in schema["paths"]
    assert "/api/v1/review/items/{item_id}/claim" in schema["paths"]
