from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from ftops.catalog.services import catalog_import_documents
from tests.catalog.factories import SHIPPING_PARAMS, shipping_doc

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client


def test_pages_need_login(client: Client) -> None:
    catalog_import_documents(documents=[shipping_doc()], source="t")
    for url in ("/catalog/", "/catalog/shipping/", "/catalog/shipping/tools/create_label/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")


def test_services_page_lists_services_with_tool_counts(logged_in: Client) -> None:
    empty = logged_in.get("/catalog/")
    assert empty.status_code == 200
    assert "No services yet." in empty.content.decode()

    catalog_import_documents(documents=[shipping_doc()], source="t")
    body = logged_in.get("/catalog/").content.decode()

    assert '<a href="/catalog/shipping/">Shipping</a>' in body
    assert "<td>2</td>" in body  # create_label and the inferred get_latest_order
    assert 'aria-current="page">Catalog</a>' in body


def test_service_page_lists_its_tools(logged_in: Client) -> None:
    catalog_import_documents(documents=[shipping_doc()], source="t")
    body = logged_in.get("/catalog/shipping/").content.decode()

    assert '<a href="/catalog/shipping/tools/create_label/"><code>create_label</code></a>' in body
    assert "<code>order_id</code>*" in body and "<code>weight_grams</code>," not in body
    assert '<span class="badge warn">inferred</span>' in body  # get_latest_order
    assert logged_in.get("/catalog/nope/").status_code == 404


def test_service_page_states_its_and_its_tools_vocabulary(logged_in: Client) -> None:
    from ftops.catalog.models import Service, Tool

    catalog_import_documents(documents=[shipping_doc()], source="t")
    Service.objects.filter(name="shipping").update(domain_vocabulary={"weights": {"rule": "in grams"}})
    Tool.objects.filter(name="create_label").update(domain_vocabulary={
        "carriers": {"our_values": ["ups", "dhl"]}, "weights": {"rule": "in kilograms for labels"}})
    body = logged_in.get("/catalog/shipping/").content.decode()
    assert "<li>weights: in grams</li>" in body and "<li>carriers: use only ups, dhl</li>" in body
    assert "<li>weights (create_label): in kilograms for labels</li>" in body


def test_tool_page_shows_versions_with_breaking_and_additive_badges(logged_in: Client) -> None:
    catalog_import_documents(documents=[shipping_doc()], source="t")
    removed = {**SHIPPING_PARAMS, "properties": {k: v for k, v in SHIPPING_PARAMS["properties"].items()
                                                 if k != "weight_grams"}}
    doc = shipping_doc(parameters=removed)
    doc["training_examples"][1]["correct_parameters"].pop("weight_grams")
    catalog_import_documents(documents=[doc], source="t2")
    widened = {**removed, "properties": {**removed["properties"], "note": {"type": "string"}}}
    doc3 = shipping_doc(parameters=widened)
    doc3["training_examples"][1]["correct_parameters"].pop("weight_grams")
    catalog_import_documents(documents=[doc3], source="t3")

    body = logged_in.get("/catalog/shipping/tools/create_label/").content.decode()

    assert body.index('id="v3"') < body.index('id="v2"') < body.index('id="v1"')
    assert '<span class="badge good">additive</span>' in body
    assert '<span class="badge bad">breaking</span>' in body
    assert '<span class="badge bad">removed</span></td><td><code>weight_grams</code>' in body
    assert '<span class="badge good">added</span></td><td><code>note</code>' in body
    assert "&quot;pattern&quot;: &quot;^ORD-\\\\d{5}$&quot;" in body
    assert logged_in.get("/catalog/shipping/tools/nope/").status_code == 404


def test_tool_names_with_dots_have_pages(logged_in: Client) -> None:
    from ftops.catalog.services import catalog_import

    catalog_import(source="bfcl-inline", fmt="bfcl", content=[{"name": "math.factorial", "parameters": {
        "type": "dict", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}])
    response = logged_in.get("/catalog/bfcl/tools/math.factorial/")
    assert response.status_code == 200
    assert "<code>math.factorial</code>" in response.content.decode()


@pytest.mark.parametrize("size", [3, 30])
def test_catalog_pages_take_the_same_queries_whatever_the_rows(logged_in: Client, size: int,
                                                                django_assert_max_num_queries: Any) -> None:
    from ftops.catalog.models import Service, Tool, ToolSchemaVersion
    from tests.common.pages import get_within

    for n in range(size):
        service = Service.objects.create(name=f"svc{n}")
        for t in range(size if n == 0 else 2):
            tool = Tool.objects.create(service=service, name=f"tool{t}")
            for v in range(1, (size if t == 0 else 1) + 1):
                version = ToolSchemaVersion.objects.create(tool=tool, number=v, content_hash=f"{n}-{t}-{v}",
                                                           parameters={"type": "object", "properties": {
                                                               "a": {"type": "string"}}, "required": ["a"]})
            tool.current_version = version
            tool.save(update_fields=["current_version"])
    get_within(logged_in, django_assert_max_num_queries, "/catalog/", 4)
    # The sixth reads the tools' vocabulary documents (one query whatever their number).
    get_within(logged_in, django_assert_max_num_queries, "/catalog/svc0/", 6)
    get_within(logged_in, django_assert_max_num_queries, "/catalog/svc0/tools/tool0/", 5)
