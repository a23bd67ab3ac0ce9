from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from ftops.catalog.models import Service, Tool
from ftops.common.models import AuditEvent
from ftops.datasets.models import TrainingExample
from tests.catalog.conftest import stdio_command
from tests.catalog.factories import openai_tools, shipping_doc

pytestmark = pytest.mark.django_db


def run(*args: str) -> list[str]:
    out = StringIO()
    call_command("catalog_import", *args, stdout=out)
    return out.getvalue().splitlines()


def test_command_prints_what_it_created_and_nothing_the_second_time(tmp_path: Path) -> None:
    path = tmp_path / "shipping.json"
    path.write_text(json.dumps([shipping_doc()]))

    lines = run(str(path))

    assert lines == [
        f"imported {path} as tool-docs",
        "services created: 1 (shipping)",
        "tools created: 2 (shipping.create_label, shipping.get_latest_order)",
        "schema versions created: 2",
        "  shipping.create_label v1 (initial)",
        "  shipping.get_latest_order v1 (initial, inferred)",
        "tools unchanged: 0",
        "examples created: 6, already present: 0",
        "note: shipping.get_latest_order is called by examples but defined neither in this file nor in the "
        "catalog; its schema was inferred from those calls (qualify the name as service.tool if it belongs to "
        "another service)",
    ]
    audit = AuditEvent.objects.get(action="catalog.imported")
    assert audit.actor.startswith("cli:")  # the operator who ran the command
    assert audit.detail["examples_created"] == 6

    second = run(str(path))

    assert second[-3:] == ["tools unchanged: 2", "examples created: 0, already present: 6",
                           "nothing changed: the catalog already had this content"]
    assert (Service.objects.count(), Tool.objects.count(), TrainingExample.objects.count()) == (1, 2, 6)


def test_command_with_format_and_service(tmp_path: Path) -> None:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(openai_tools()))

    lines = run(str(path), "--format", "openai-tools", "--service", "weather")

    assert lines[:3] == [f"imported {path} as openai-tools", "services created: 1 (weather)",
                         "tools created: 2 (weather.get_weather, weather.get_time)"]


def test_command_imports_from_a_stdio_mcp_server() -> None:
    lines = run(stdio_command(), "--service", "payments-mcp")

    assert lines[1] == "services created: 1 (payments-mcp)"
    assert lines[2] == ("tools created: 3 (payments-mcp.create_payment, payments-mcp.get_payment_status, "
                        "payments-mcp.refund_payment)")


def test_command_reports_bad_input_as_an_error(tmp_path: Path) -> None:
    doc = shipping_doc()
    doc["training_examples"][0]["correct_parameters"]["carrier"] = "pigeon"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))

    with pytest.raises(CommandError) as caught:
        run(str(path))

    message = str(caught.value)
    assert message.startswith("1 example(s) are invalid; nothing was imported")
    assert "documents[0].training_examples[0]" in message
    assert "'pigeon' is not one of ['ups', 'fedex', 'dhl']" in message
    assert Service.objects.count() == 0

    lines = run(str(path), "--skip-invalid")
    assert "examples created: 5, already present: 0" in lines
    assert "examples skipped as invalid: 1" in lines


SEED_EXAMPLE = Path(__file__).with_name("fixtures") / "seed_per_tool_example.json"


def test_the_seed_chapters_own_per_tool_example_imports_as_is() -> None:
    # The JSON example of the per-tool format, copied verbatim from the seed chapter. Its
    # ask_for_details case asks for customer_id, which its first example call leaves out.
    lines = run(str(SEED_EXAMPLE))

    # The seed's document describes create_payment only; the other two tools are found nowhere.
    assert [line.split(" is called by examples")[0] for line in lines[9:]] == [
        "note: payment-service.get_customer_by_name", "note: payment-service.get_latest_order"]
    assert lines[:9] == [
        f"imported {SEED_EXAMPLE} as tool-docs",
        "services created: 1 (payment-service)",
        "tools created: 3 (payment-service.create_payment, payment-service.get_customer_by_name, "
        "payment-service.get_latest_order)",
        "schema versions created: 3",
        "  payment-service.create_payment v1 (initial, inferred)",
        "  payment-service.get_customer_by_name v1 (initial, inferred)",
        "  payment-service.get_latest_order v1 (initial, inferred)",
        "tools unchanged: 0",
        "examples created: 4, already present: 0",
    ]
    create = Tool.objects.get(name="create_payment").current_version
    assert create is not None
    assert create.parameters == {"type": "object", "required": ["amount"], "properties": {
        # customer_id is only ever passed as "{prev.customer_id}": its type is unknown.
        "amount": {"type": "integer"}, "currency": {"type": "string"}, "customer_id": {},
        "invoice_id": {"type": "string"}}}
    ask = TrainingExample.objects.get(behavior="ask_for_details")
    assert ask.expected == {"required_fields": ["amount", "customer_id"], "question": (
        "I'll help you create a payment. What's the amount and which customer is this for?")}
    assert ask.schema_version_id == create.pk
    assert sorted(TrainingExample.objects.values_list("behavior", flat=True)) == [
        "ask_for_details", "call", "clarify", "sequence"]
    assert run(str(SEED_EXAMPLE))[-1] == "nothing changed: the catalog already had this content"


def test_ask_for_details_stays_strict_against_a_published_schema(tmp_path: Path) -> None:
    doc = shipping_doc()  # publishes its parameters: weight_grams is optional there
    doc["edge_cases"][0]["correct_behavior"]["required_fields"] = ["carrier", "weight_grams"]
    path = tmp_path / "strict.json"
    path.write_text(json.dumps(doc))

    with pytest.raises(CommandError) as caught:
        run(str(path))

    assert "['weight_grams'] are not required parameters of create_label" in str(caught.value)
    assert TrainingExample.objects.count() == 0


def test_an_openai_tools_file_without_service_says_where_the_name_came_from(tmp_path: Path) -> None:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(openai_tools()))

    lines = run(str(path))

    assert lines[1] == "services created: 1 (tools)"
    assert lines[-1] == "note: service 'tools' was taken from the file name; pass --service NAME to choose it"
    assert "note:" not in "".join(run(str(path), "--service", "weather"))
