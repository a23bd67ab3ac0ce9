from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ftops.catalog.importers import ImportFailed, detect_format
from ftops.catalog.models import SchemaChange, Service, Tool, ToolSchemaVersion
from ftops.catalog.sample import build_sample_enterprise
from ftops.catalog.selectors import tool_schema_map
from ftops.catalog.services import catalog_import, catalog_import_documents, load_sample_enterprise
from ftops.common.models import AuditEvent
from ftops.datasets.models import TrainingExample
from tests.catalog.factories import SHIPPING_PARAMS, openai_tools, shipping_doc

pytestmark = pytest.mark.django_db


def counts() -> tuple[int, int, int, int]:
    return (Service.objects.count(), Tool.objects.count(), ToolSchemaVersion.objects.count(),
            TrainingExample.objects.count())


def test_sample_enterprise_loads_and_reloading_changes_nothing() -> None:
    enterprise = build_sample_enterprise(7)
    n_examples = sum(len(d["training_examples"]) + len(d["edge_cases"]) for d in enterprise.tool_documents)

    report = load_sample_enterprise(seed=7)

    assert sorted(report.services_created) == ["customers", "inventory", "orders", "payments"]
    assert len(report.tools_created) == 18
    assert [v["change"] for v in report.versions_created] == ["initial"] * 18
    assert report.examples_created == n_examples
    assert report.examples_skipped == []
    assert counts() == (4, 18, 18, n_examples)
    assert set(TrainingExample.objects.values_list("source", "quality").distinct()) == {("manual", "high")}
    behaviors = set(TrainingExample.objects.values_list("behavior", flat=True).distinct())
    assert behaviors == {"call", "sequence", "clarify", "ask_for_details", "abstain"}
    payment = TrainingExample.objects.filter(tool__name="create_payment", behavior="call").first()
    assert payment is not None
    assert set(payment.tools) == {"create_payment", "refund_payment", "get_payment_status", "list_customer_payments"}
    assert payment.provenance["template"].startswith("create_payment#")
    service = Service.objects.get(name="payments")
    assert service.version == "1.2.0"
    assert service.domain_vocabulary["amounts"]["rule"] == "ALL amounts are integers in cents, never dollars"

    again = load_sample_enterprise(seed=7)

    assert again.changed is False
    assert again.versions_created == [] and again.tools_created == [] and again.services_created == []
    assert again.tools_unchanged == 18
    assert again.examples_created == 0
    assert again.examples_existing == n_examples
    assert counts() == (4, 18, 18, n_examples)
    assert AuditEvent.objects.filter(action="catalog.imported").count() == 2


def test_per_tool_document_with_parameters() -> None:
    report = catalog_import_documents(documents=[shipping_doc()], source="shipping.json")

    tool = Tool.objects.select_related("current_version").get(service__name="shipping", name="create_label")
    assert tool.current_version is not None
    assert tool.current_version.parameters == SHIPPING_PARAMS
    assert tool.current_version.inferred is False
    assert tool.current_version.change == SchemaChange.INITIAL
    # The sequence calls a tool no document describes: it is created with an inferred schema.
    latest = Tool.objects.select_related("current_version").get(service__name="shipping", name="get_latest_order")
    assert latest.current_version is not None and latest.current_version.inferred is True
    assert latest.current_version.parameters == {"type": "object", "properties": {"customer_id": {"type": "string"}},
                                                 "required": ["customer_id"]}
    assert report.examples_created == 6
    by_behavior = {e.behavior: e for e in TrainingExample.objects.all()}
    assert by_behavior["call"].expected["calls"][0]["name"] == "create_label"
    assert by_behavior["sequence"].expected == {"steps": [
        {"name": "get_latest_order", "arguments": {"customer_id": "CUS-10001"}, "result": {"order_id": "ORD-77777"}},
        {"name": "create_label", "arguments": {"order_id": "{prev.order_id}", "carrier": "dhl"}}]}
    assert by_behavior["ask_for_details"].expected == {"required_fields": ["carrier"],
                                                       "question": "Which carrier: UPS, FedEx or DHL?"}
    assert by_behavior["clarify"].expected["reason"] == "No order and no carrier given"
    assert by_behavior["abstain"].tool is None
    assert by_behavior["abstain"].expected == {"reason": "No shipping tool answers weather questions"}
    calls = TrainingExample.objects.filter(behavior="call").order_by("user_query")
    assert [c.expected["calls"][0]["arguments"] for c in calls] == [
        {"order_id": ["ORD-54321"], "carrier": ["fedex"], "weight_grams": [2500]},
        {"order_id": ["ORD-12345"], "carrier": ["ups"]},
    ]


def test_per_tool_document_without_parameters_infers_a_schema() -> None:
    catalog_import_documents(documents=[shipping_doc(with_parameters=False)], source="no-params.json")

    version = Tool.objects.get(name="create_label").current_version
    assert version is not None
    assert version.inferred is True
    assert version.parameters == {"type": "object", "required": ["carrier", "order_id"], "properties": {
        "carrier": {"type": "string"}, "order_id": {"type": "string"}, "weight_grams": {"type": "integer"}}}
    assert TrainingExample.objects.count() == 6

    # Publishing the real schema later makes a new, non-inferred version...
    report = catalog_import_documents(documents=[shipping_doc()], source="with-params.json")
    assert [(v["number"], v["inferred"]) for v in report.versions_created] == [(2, False)]
    # ...and a later inferred guess never replaces it.
    again = catalog_import_documents(documents=[shipping_doc(with_parameters=False)], source="no-params.json")
    assert again.versions_created == []
    assert Tool.objects.get(name="create_label").current_version.number == 2  # type: ignore[union-attr]


def test_changed_schema_makes_a_new_version_with_its_diff() -> None:
    catalog_import_documents(documents=[shipping_doc()], source="v1.json")
    breaking = json.loads(json.dumps(SHIPPING_PARAMS))
    breaking["properties"]["service_level"] = {"type": "string", "enum": ["standard", "express"]}
    breaking["required"].append("service_level")
    doc = shipping_doc(parameters=breaking)
    # Examples must still fit the new schema: give them the new required parameter.
    for example in doc["training_examples"][:2]:
        example["correct_parameters"]["service_level"] = "standard"
    doc["training_examples"][2]["correct_sequence"][1]["parameters"]["service_level"] = "express"

    report = catalog_import_documents(documents=[doc], source="v2.json")

    tool = Tool.objects.get(name="create_label")
    v2 = tool.current_version
    assert v2 is not None and v2.number == 2
    assert report.versions_created == [{"tool": "shipping.create_label", "number": 2, "change": "breaking",
                                        "inferred": False}]
    assert v2.change == SchemaChange.BREAKING
    assert v2.diff["from_version"] == 1
    assert [(d["kind"], d["path"]) for d in v2.diff["details"]] == [("new_required", "service_level")]
    # The v1 examples that lack the new required parameter are flagged; the others move to v2.
    flagged = TrainingExample.objects.filter(status="flagged", source="manual")
    assert sorted(flagged.values_list("user_query", flat=True)) == [
        "Label for ORD-54321 via FedEx, it weighs 2.5 kg", "Ship ORD-12345 with UPS",
        "Ship the newest order of CUS-10001 with DHL"]
    assert (report.examples_flagged, report.examples_migrated) == (3, 2)
    assert report.examples_created == 3  # the documents' examples written for v2

    additive = json.loads(json.dumps(breaking))
    additive["properties"]["insured"] = {"type": "boolean"}
    doc3 = json.loads(json.dumps(doc))
    doc3["parameters"] = additive
    catalog_import_documents(documents=[doc3], source="v3.json")
    v3 = Tool.objects.get(name="create_label").current_version
    assert v3 is not None and (v3.number, v3.change) == (3, SchemaChange.ADDITIVE)
    assert [d["kind"] for d in v3.diff["details"]] == ["added"]
    assert list(ToolSchemaVersion.objects.filter(tool=tool).values_list("number", flat=True)) == [1, 2, 3]
    assert tool_schema_map(tool.service)["create_label"].number == 3


def test_an_invalid_example_refuses_the_whole_import() -> None:
    doc = shipping_doc()
    doc["training_examples"][1]["correct_parameters"]["weight_grams"] = "2.5kg"
    doc["edge_cases"][0]["correct_behavior"]["required_fields"] = ["tracking_number"]

    with pytest.raises(ImportFailed) as caught:
        catalog_import_documents(documents=[doc], source="bad.json")

    fields = caught.value.fields
    assert sorted(fields) == ["documents[0].edge_cases[0]", "documents[0].training_examples[1]"]
    assert "weight_grams" in json.dumps(fields["documents[0].training_examples[1]"])
    assert "tracking_number" in json.dumps(fields["documents[0].edge_cases[0]"])
    assert counts() == (0, 0, 0, 0)
    assert not AuditEvent.objects.filter(action="catalog.imported").exists()

    report = catalog_import_documents(documents=[doc], source="bad.json", skip_invalid=True)
    assert report.examples_created == 4
    assert [s["where"] for s in report.examples_skipped] == ["documents[0].training_examples[1]",
                                                            "documents[0].edge_cases[0]"]


def test_documents_missing_service_or_tool_are_refused() -> None:
    with pytest.raises(ImportFailed) as caught:
        catalog_import_documents(documents=[{"tool": "x"}, {"service": "s"}], source="bad.json")
    assert caught.value.fields == {"documents[0].service": ["name the service the tool belongs to (or pass --service)"],
                                   "documents[1].tool": ["name the tool this document is about"]}
    assert counts() == (0, 0, 0, 0)


def test_openai_tools_import_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "weather-tools.json"
    path.write_text(json.dumps(openai_tools()))

    report = catalog_import(source=str(path))

    assert report.fmt == "openai-tools"
    assert report.services_created == ["weather-tools"]
    assert report.tools_created == ["weather-tools.get_weather", "weather-tools.get_time"]
    weather = Tool.objects.get(name="get_weather")
    assert weather.description == "Current weather for a city."
    assert weather.current_version.parameters["required"] == ["city"]  # type: ignore[union-attr]
    assert catalog_import(source=str(path)).changed is False
    assert counts() == (1, 2, 2, 0)

    with pytest.raises(ImportFailed) as caught:
        catalog_import(source="inline", content=openai_tools())
    assert caught.value.fields == {"service": ["name the service these tools belong to"]}


def test_bfcl_function_docs_import(bfcl_simple_path: Path) -> None:
    lines = [json.loads(line) for line in bfcl_simple_path.read_text().splitlines() if line.strip()]
    names = {f["name"] for line in lines for f in line["function"]}

    report = catalog_import(source=str(bfcl_simple_path), service="bfcl-simple")

    assert report.fmt == "bfcl"
    assert len(report.tools_created) == len(names)
    assert Tool.objects.filter(service__name="bfcl-simple").count() == len(names)
    area = Tool.objects.get(name="calculate_triangle_area").current_version
    assert area is not None
    assert area.parameters["type"] == "object"
    assert area.parameters["properties"]["base"] == {"type": "integer", "description": "The base of the triangle."}
    dumped = json.dumps(list(ToolSchemaVersion.objects.values_list("parameters", flat=True)))
    assert '"type": "dict"' not in dumped and '"type": "float"' not in dumped and '"type": "tuple"' not in dumped
    assert catalog_import(source=str(bfcl_simple_path), service="bfcl-simple").changed is False


def test_format_detection(tmp_path: Path) -> None:
    files: dict[str, Any] = {
        "docs.json": [shipping_doc()],
        "one-doc.json": shipping_doc(),
        "tools.json": openai_tools(),
        "wrapped.json": {"tools": openai_tools()},
        "bare.json": [t["function"] for t in openai_tools()],
    }
    for name, data in files.items():
        (tmp_path / name).write_text(json.dumps(data))
    (tmp_path / "bfcl.json").write_text("\n".join(json.dumps({"id": f"q{i}", "question": [], "function": [
        {"name": f"f{i}", "parameters": {"type": "dict", "properties": {}}}]}) for i in range(3)))

    assert {name: detect_format(str(tmp_path / name)) for name in [*files, "bfcl.json"]} == {
        "docs.json": "tool-docs", "one-doc.json": "tool-docs", "tools.json": "openai-tools",
        "wrapped.json": "openai-tools", "bare.json": "openai-tools", "bfcl.json": "bfcl"}
    assert detect_format("http://127.0.0.1:9/mcp") == "mcp-http"
    assert detect_format("python -m some_server") == "mcp"


def test_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"service": "x", "tool": ')
    with pytest.raises(ImportFailed) as caught:
        catalog_import(source=str(path), fmt="tool-docs")
    assert "is not JSON" in caught.value.message
    with pytest.raises(ImportFailed) as unknown:
        catalog_import(source=str(path), fmt="yaml")
    assert unknown.value.fields == {"format": ["choose one of ['mcp', 'mcp-http', 'tool-docs', 'openai-tools', "
                                              "'bfcl']"]}
    assert counts() == (0, 0, 0, 0)
