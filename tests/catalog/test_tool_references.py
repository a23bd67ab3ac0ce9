"""Examples that call other services' tools: resolved in the file, then the catalog; never copied."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from ftops.catalog.importers import ImportFailed
from ftops.catalog.models import Service, Tool, ToolSchemaVersion
from ftops.catalog.services import catalog_import_documents
from ftops.common.models import AuditEvent
from ftops.datasets.models import ExampleStatus, TrainingExample
from ftops.datasets.selectors import record_from_example
from ftops.datasets.services import example_update

pytestmark = pytest.mark.django_db

IMPORT = "/api/v1/catalog/import"
MakeKey = Callable[..., tuple[APIClient, Any]]
CUSTOMER_PARAMS: dict[str, Any] = {"type": "object", "properties": {"name": {"type": "string"}},
                                   "required": ["name"]}
ORDER_PARAMS: dict[str, Any] = {"type": "object", "properties": {"customer_id": {"type": "string"},
                                                                 "sku": {"type": "string"}},
                                "required": ["customer_id", "sku"]}


def customer_doc(service: str = "crm") -> dict[str, Any]:
    return {"service": service, "tool": "get_customer", "description": "Find a customer by name.",
            "parameters": CUSTOMER_PARAMS,
            "training_examples": [{"user_query": "Who is Ada Lovelace?", "correct_tool": "get_customer",
                                   "correct_parameters": {"name": "Ada Lovelace"}}]}


def order_doc(customer_tool: str = "get_customer") -> dict[str, Any]:
    """An orders document whose sequence looks the customer up in another service first."""
    return {"service": "orders", "tool": "create_order", "description": "Create an order.",
            "parameters": ORDER_PARAMS,
            "training_examples": [{
                "user_query": "Order SKU-1 for Ada Lovelace",
                "correct_sequence": [
                    {"tool": customer_tool, "parameters": {"name": "Ada Lovelace"}, "result": {"id": "CUS-1"}},
                    {"tool": "create_order", "parameters": {"customer_id": "{prev.id}", "sku": "SKU-1"}},
                ]}]}


def tool_names() -> list[str]:
    return sorted(f"{t.service.name}.{t.name}" for t in Tool.objects.select_related("service"))


def the_order_example() -> TrainingExample:
    return TrainingExample.objects.select_related("service", "tool").get(service__name="orders",
                                                                         behavior="sequence")


def assert_calls_crm_customer(example: TrainingExample) -> None:
    crm = Tool.objects.get(service__name="crm", name="get_customer")
    assert example.expected["steps"][0]["name"] == "get_customer"
    assert example.provenance["tool_services"] == {"get_customer": "crm"}
    assert example.tools == ["create_order", "get_customer"]
    assert example.tool_versions == {"create_order": 1, "get_customer": 1}
    assert example.tool is not None and example.tool.name == "create_order"
    # What training sees: the crm tool's own schema is offered with the orders tool.
    record = record_from_example(example)
    offered = {t["function"]["name"]: t["function"]["parameters"] for t in record.tools}
    assert offered == {"create_order": ORDER_PARAMS, "get_customer": CUSTOMER_PARAMS}
    assert crm.current_version is not None and crm.current_version.parameters == CUSTOMER_PARAMS


def test_a_name_defined_by_another_service_in_the_same_file_refers_to_it() -> None:
    report = catalog_import_documents(documents=[order_doc(), customer_doc()], source="both.json")

    assert tool_names() == ["crm.get_customer", "orders.create_order"]  # no orders.get_customer copy
    assert report.tools_created == ["orders.create_order", "crm.get_customer"]
    assert report.examples_created == 2
    assert report.notes == ["examples call tools of other services: orders -> crm.get_customer"]
    assert_calls_crm_customer(the_order_example())


def test_a_name_found_in_one_other_service_of_the_catalog_refers_to_it() -> None:
    catalog_import_documents(documents=[customer_doc()], source="crm.json")

    report = catalog_import_documents(documents=[order_doc()], source="orders.json")

    assert tool_names() == ["crm.get_customer", "orders.create_order"]
    assert report.tools_created == ["orders.create_order"]
    assert report.examples_created == 1
    assert_calls_crm_customer(the_order_example())
    # The same file again changes nothing: the reference resolves the same way.
    again = catalog_import_documents(documents=[order_doc()], source="orders.json")
    assert (again.changed, again.examples_existing) == (False, 1)


def test_a_name_several_services_have_fails_the_import_listing_them_and_how_to_qualify() -> None:
    catalog_import_documents(documents=[customer_doc("crm"), customer_doc("billing")], source="two.json")
    before = (Service.objects.count(), Tool.objects.count(), TrainingExample.objects.count())

    with pytest.raises(ImportFailed) as caught:
        catalog_import_documents(documents=[order_doc()], source="orders.json")

    assert caught.value.fields == {"documents[0].training_examples[0]": [
        "tool 'get_customer' exists in several services (billing, crm); name it as service.tool: "
        "billing.get_customer or crm.get_customer"]}
    assert "name it as service.tool" in caught.value.message
    assert (Service.objects.count(), Tool.objects.count(), TrainingExample.objects.count()) == before
    failed = AuditEvent.objects.get(action="catalog.import_failed")
    assert failed.detail["fields"] == ["documents[0].training_examples[0]"]


def test_a_name_several_services_in_the_file_define_is_ambiguous_too() -> None:
    with pytest.raises(ImportFailed) as caught:
        catalog_import_documents(documents=[customer_doc("crm"), customer_doc("billing"), order_doc()],
                                 source="three.json")

    assert list(caught.value.fields) == ["documents[2].training_examples[0]"]
    assert (Service.objects.count(), Tool.objects.count()) == (0, 0)


def test_the_api_answers_an_ambiguous_name_with_422_and_the_candidates(make_key: MakeKey) -> None:
    catalog_import_documents(documents=[customer_doc("crm"), customer_doc("billing")], source="two.json")
    client, _ = make_key("admin")

    response = client.post(IMPORT, {"content": [order_doc()]}, format="json")

    assert response.status_code == 422, response.json()
    body = response.json()
    assert body["error"]["fields"]["documents[0].training_examples[0]"] == [
        "tool 'get_customer' exists in several services (billing, crm); name it as service.tool: "
        "billing.get_customer or crm.get_customer"]
    assert not Service.objects.filter(name="orders").exists()


def test_a_qualified_name_picks_the_service() -> None:
    catalog_import_documents(documents=[customer_doc("crm"), customer_doc("billing")], source="two.json")

    report = catalog_import_documents(documents=[order_doc("crm.get_customer")], source="orders.json")

    assert report.examples_created == 1
    assert tool_names() == ["billing.get_customer", "crm.get_customer", "orders.create_order"]
    example = the_order_example()
    assert example.expected["steps"][0]["name"] == "get_customer"  # the name the model calls
    assert example.provenance["tool_services"] == {"get_customer": "crm"}


def test_a_qualified_name_of_a_tool_its_service_lacks_fails() -> None:
    catalog_import_documents(documents=[customer_doc("crm")], source="crm.json")

    with pytest.raises(ImportFailed) as caught:
        catalog_import_documents(documents=[order_doc("crm.get_client")], source="orders.json")

    assert caught.value.fields == {"documents[0].training_examples[0]": [
        "'crm.get_client' names service 'crm', which has no tool 'get_client'"]}
    assert not Tool.objects.filter(name__in=["get_client", "crm.get_client"]).exists()


def test_a_name_found_nowhere_is_inferred_in_the_documents_own_service() -> None:
    report = catalog_import_documents(documents=[order_doc("lookup_customer")], source="orders.json")

    assert tool_names() == ["orders.create_order", "orders.lookup_customer"]
    lookup = Tool.objects.get(name="lookup_customer")
    assert lookup.current_version is not None and lookup.current_version.inferred
    assert report.notes == [
        "orders.lookup_customer is called by examples but defined neither in this file nor in the catalog; its "
        "schema was inferred from those calls (qualify the name as service.tool if it belongs to another service)"]
    assert "tool_services" not in the_order_example().provenance


def test_a_changed_schema_moves_the_other_services_examples_that_call_it() -> None:
    catalog_import_documents(documents=[customer_doc(), order_doc()], source="both.json")
    # crm renames its parameter: the orders sequence no longer fits and is flagged.
    renamed = {**customer_doc(), "parameters": {"type": "object", "properties": {"full_name": {"type": "string"}},
                                                "required": ["full_name"]}, "training_examples": []}

    report = catalog_import_documents(documents=[renamed], source="crm-v2.json")

    assert report.versions_created == [{"tool": "crm.get_customer", "number": 2, "change": "breaking",
                                        "inferred": False}]
    assert (report.examples_flagged, report.examples_migrated) == (2, 0)
    order_example = the_order_example()
    assert order_example.status == ExampleStatus.FLAGGED
    assert order_example.provenance["schema_flag"]["tool"] == "get_customer"
    assert ToolSchemaVersion.objects.filter(tool__service__name="orders").count() == 1  # orders untouched


def test_an_example_calling_another_services_tool_stays_editable() -> None:
    catalog_import_documents(documents=[customer_doc(), order_doc()], source="both.json")
    example = the_order_example()

    edited = example_update(example=example, changes={"explanation": "Look the customer up in the CRM."})

    assert edited.explanation == "Look the customer up in the CRM."
    assert edited.tools == ["create_order", "get_customer"]
