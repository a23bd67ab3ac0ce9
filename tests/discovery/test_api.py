"""The public documents, the publishing page and the ML-orchestrator dataset endpoints."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from ftops.common.actors import Actor
from ftops.common.models import AuditEvent
from ftops.datasets.models import TrainingExample
from ftops.discovery.formats import anthropic_line
from ftops.discovery.models import PublishingSettings
from ftops.discovery.services import publishing_settings_update
from registry.models import CriticalScenario
from tests.datasets.factories import build_shop

pytestmark = pytest.mark.django_db


def share(service: Any, *, public: bool = False) -> None:
    publishing_settings_update(service=service, by=Actor.system(), share_with_orchestrators=True,
                               public_model_training=public, opt_in_text="We consent" if public else "",
                               restrictions=["Must be anonymized"], contact_team="ml@acme.test",
                               contact_documentation="https://docs.acme.test/mcp")


@pytest.fixture
def shop() -> Any:
    service, _examples = build_shop("shop", with_sequences=True)
    return service


def test_well_known_document_is_metadata_only_and_consent_defaults_off(client: Client, shop: Any) -> None:
    doc = client.get("/.well-known/mcp-training-data/shop.json").json()
    assert doc["service"] == "shop"
    assert doc["mcp_version"] == "2024-11-05"
    assert doc["training_data"]["available"] is False
    assert doc["training_data"]["consent"] == {"public_model_training": False, "opt_in": "", "restrictions": []}
    assert doc["training_data"]["metadata"]["total_examples"] == 0  # nothing counted before consent
    assert doc["test_data"]["min_accuracy_required"] == 0.98
    assert client.get("/.well-known/mcp-training-data.json?service=shop").json() == doc

    share(shop, public=True)
    doc = client.get("/.well-known/mcp-training-data/shop.json").json()
    training = doc["training_data"]
    assert training["available"] is True
    assert training["metadata"]["total_examples"] == TrainingExample.objects.filter(service=shop).count() == 125
    assert training["metadata"]["tools_covered"] == ["cancel_order", "check_stock", "create_ticket", "get_order",
                                                     "refund_payment", "send_invoice"]
    assert training["metadata"]["quality"] == "human_curated"
    assert training["consent"] == {"public_model_training": True, "opt_in": "We consent",
                                   "restrictions": ["Must be anonymized"]}
    assert training["contact"] == {"team": "ml@acme.test", "documentation": "https://docs.acme.test/mcp"}
    assert training["endpoint"] == "http://testserver/mcp/training-dataset?service=shop"
    assert "items" not in str(doc) and "ann@example.com" not in str(doc)

    index = client.get("/.well-known/mcp-training-data.json").json()
    assert index["services"] == [{"service": "shop", "version": "0.0.0", "sharing": True,
                                  "document": "http://testserver/.well-known/mcp-training-data/shop.json"}]
    assert client.get("/.well-known/mcp-training-data/nope.json").status_code == 404


def test_publishing_page_needs_an_editor_and_saves(client: Client, shop: Any, admin_user: Any,
                                                   django_user_model: Any) -> None:
    assert client.get("/discovery/publishing/shop/").status_code == 302  # login first
    client.force_login(django_user_model.objects.create_user("rita", password="pw-rita-123"))
    assert client.get("/discovery/publishing/shop/").status_code == 403
    assert not PublishingSettings.objects.exists()

    client.force_login(admin_user)
    listing = client.get("/discovery/publishing/")
    assert listing.status_code == 200
    # The main navigation links the page, marked as the current section.
    assert '<a href="/discovery/publishing/" aria-current="page">Publishing</a>' in listing.content.decode()
    bad = client.post("/discovery/publishing/shop/", {"public_model_training": "on", "opt_in_text": ""})
    assert bad.status_code == 400 and not PublishingSettings.objects.exists()
    ok = client.post("/discovery/publishing/shop/", {
        "share_with_orchestrators": "on", "public_model_training": "on", "opt_in_text": "Yes, for public models",
        "restrictions": "Must be anonymized\n\nAttribution required\n", "contact_team": "ml@acme.test"})
    assert ok.status_code == 302
    row = PublishingSettings.objects.get(service=shop)
    assert (row.share_with_orchestrators, row.public_model_training, row.restrictions, row.updated_by) == (
        True, True, ["Must be anonymized", "Attribution required"], "admin")
    assert AuditEvent.objects.filter(action="discovery.publishing_updated", object_id="shop").count() == 1


def test_dataset_needs_an_orchestrator_key_and_consent(api_client: Any, make_key: Any, shop: Any) -> None:
    assert api_client.get("/mcp/training-dataset?service=shop").status_code == 401
    admin, _ = make_key("admin")
    assert admin.get("/mcp/training-dataset?service=shop").status_code == 403  # admin does not imply it
    orch, key = make_key("ml_orchestrator")
    refused = orch.get("/mcp/training-dataset?service=shop")
    assert refused.status_code == 403
    assert "does not share" in refused.json()["error"]["message"]
    denials = AuditEvent.objects.filter(action="discovery.dataset_denied").order_by("id")
    assert [(d.object_id, d.detail["what"], d.detail["status"]) for d in denials] == [
        ("shop", "training-dataset", 401), ("shop", "training-dataset", 403), ("shop", "training-dataset", 403)]
    assert [d.api_key for d in denials][-1] == key
    assert orch.get("/mcp/training-dataset?service=nope").status_code == 404
    assert orch.get("/mcp/training-dataset").status_code == 400


def test_pages_formats_redaction_etag_and_since(make_key: Any, shop: Any) -> None:
    share(shop)
    orch, key = make_key("ml_orchestrator")
    seen: list[str] = []
    cursor = ""
    for _ in range(10):
        answer = orch.get("/mcp/training-dataset", {"service": "shop", "format": "openai", "limit": 50,
                                                    **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, (answer.content, cursor, seen)
        body = answer.json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 125
    assert AuditEvent.objects.filter(action="discovery.dataset_read", api_key=key).count() == 3
    assert [e.detail["count"] for e in AuditEvent.objects.filter(action="discovery.dataset_read").order_by("id")] \
        == [50, 50, 25]

    invoices = orch.get("/mcp/training-dataset", {"service": "shop", "format": "hf", "limit": 500}).json()
    text = str(invoices)
    assert "ann@example.com" not in text and invoices["redactions"] > 0
    item = next(i for i in invoices["items"] if i["native"]["expected"].get("calls", [{}])[0].get("name")
                == "send_invoice")
    assert item["example"]["messages"][-1]["tool_calls"][0]["function"]["name"] == "send_invoice"

    anthropic = orch.get("/mcp/training-dataset", {"service": "shop", "limit": 1}).json()
    line = anthropic["items"][0]["example"]
    assert anthropic["format"] == "anthropic_messages"
    assert {"name", "description", "input_schema"} == set(line["tools"][0])

    first = orch.get("/mcp/training-dataset", {"service": "shop", "limit": 5})
    etag = first["ETag"]
    again = orch.get("/mcp/training-dataset", {"service": "shop", "limit": 5}, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    last_read = AuditEvent.objects.filter(action="discovery.dataset_read").order_by("id").last()
    assert last_read is not None and last_read.detail["not_modified"] is True

    resume = first.json()["resume_cursor"]
    later = orch.get("/mcp/training-dataset", {"service": "shop", "since": "2999-01-01T00:00:00Z"}).json()
    assert later["count"] == 0
    assert orch.get("/mcp/training-dataset", {"service": "shop", "since": "yesterday"}).status_code == 422
    assert orch.get("/mcp/training-dataset", {"service": "shop", "cursor": "!!"}).status_code == 422
    assert orch.get("/mcp/training-dataset", {"service": "shop", "format": "xml"}).status_code == 422
    assert orch.get("/mcp/training-dataset", {"service": "shop", "cursor": resume, "limit": 500}).json()["count"] == 120


def test_rate_limit_per_key(make_key: Any, shop: Any, settings: Any) -> None:
    settings.FTOPS_MCP_RATE_PER_HOUR = 2
    share(shop)
    one, _ = make_key("ml_orchestrator", name="one")
    two, _ = make_key("ml_orchestrator", name="two")
    assert [one.get("/mcp/training-dataset?service=shop&limit=1").status_code for _ in range(3)] == [200, 200, 429]
    limited = one.get("/mcp/test-dataset?service=shop")
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert two.get("/mcp/training-dataset?service=shop&limit=1").status_code == 200  # per caller
    assert AuditEvent.objects.filter(action="discovery.dataset_denied", detail__status=429).count() == 2


def test_test_dataset_lists_critical_scenarios(make_key: Any, shop: Any) -> None:
    share(shop)
    example = TrainingExample.objects.filter(service=shop, expected__calls__0__name="refund_payment").first()
    assert example is not None
    CriticalScenario.objects.create(record_id=str(example.pk), service="shop", example=example)
    orch, _ = make_key("ml_orchestrator")
    body = orch.get("/mcp/test-dataset?service=shop").json()
    assert body["critical_scenarios"] == 1 and body["min_accuracy_required"] == 0.98
    scenario = body["scenarios"][0]
    assert scenario["priority"] == "critical"
    assert scenario["expected_tool"] == "refund_payment"
    assert scenario["expected_params"] == example.expected["calls"][0]["arguments"]


def test_schema_lists_tools_in_mcp_shape(client: Client, shop: Any) -> None:
    body = client.get("/mcp/schema?service=shop").json()
    assert [t["name"] for t in body["tools"]] == ["cancel_order", "check_stock", "create_ticket", "get_order",
                                                  "refund_payment", "send_invoice"]
    assert body["tools"][0]["inputSchema"]["required"] == ["order_id"]
    assert client.get("/mcp/schema?service=nope").status_code == 404


def test_anthropic_line_pairs_tool_results_with_tool_uses() -> None:
    from ftops.core.records import Record

    record = Record(id="1", service="s", tool="a", messages=[{"role": "system", "content": "be brief"},
                                                              {"role": "user", "content": "do a then b"}],
                    tools=[{"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}},
                           {"type": "function", "function": {"name": "b", "parameters": {"type": "object"}}}],
                    behavior="sequence",
                    expected={"steps": [{"name": "a", "arguments": {}, "result": {"x": 1}},
                                        {"name": "b", "arguments": {"x": "{prev.x}"}}]})
    line = anthropic_line(record)
    assert line["system"] == "be brief"
    assert [m["role"] for m in line["messages"]] == ["user", "assistant", "user", "assistant"]
    use = line["messages"][1]["content"][0]
    assert line["messages"][2]["content"][0]["tool_use_id"] == use["id"]
    assert line["messages"][3]["content"][0]["input"] == {"x": 1}
