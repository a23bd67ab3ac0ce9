from __future__ import annotations

import pytest

from ftops.catalog.models import Service, Tool
from ftops.common.errors import ValidationFailed
from ftops.datasets.models import TrainingExample
from ftops.datasets.services import example_create
from ftops.datasets.services.schema_evolution import examples_migrate_schema, outdated_examples
from tests.datasets.conftest import PAYMENT_TOOLS, new_schema_version, refund_expected


def refund_v2(*, rename: bool, extra_required: bool = False) -> dict:
    params = dict(PAYMENT_TOOLS["refund_payment"]["parameters"])
    props = dict(params["properties"])
    if rename:
        props["payment_reference"] = props.pop("payment_id")
    props["notify_customer"] = {"type": "boolean"}  # a new optional parameter
    required = ["payment_reference" if rename else "payment_id", "amount"]
    if extra_required:
        props["merchant_id"] = {"type": "string"}
        required.append("merchant_id")
    return {**params, "properties": props, "required": required}


def make(payments: Service, query: str, **kwargs) -> TrainingExample:  # type: ignore[no-untyped-def]
    defaults = {"behavior": "call", "expected": refund_expected(), "source": "manual", "quality": "high"}
    defaults.update(kwargs)
    return example_create(service=payments, user_query=query, **defaults)


def test_rename_mapping_migrates_with_provenance(payments: Service) -> None:
    call = make(payments, "Refund 20 euros on pay_1")
    ask = make(payments, "Refund my payment", behavior="ask_for_details", tool="refund_payment",
               expected={"required_fields": ["payment_id"], "question": "Which payment?"})
    other = make(payments, "Where is ord_1?", expected={"calls": [{"name": "get_order",
                                                                   "arguments": {"order_id": ["ord_1"]}}]})
    tool = Tool.objects.get(service=payments, name="refund_payment")
    v2 = new_schema_version(tool, refund_v2(rename=True))
    assert {e.pk for e in outdated_examples(tool)} == {call.pk, ask.pk}
    report = examples_migrate_schema(tool=tool, renames={"payment_id": "payment_reference"}, actor="alice")
    assert sorted(report.migrated) == sorted([call.pk, ask.pk]) and report.flagged == {}
    call.refresh_from_db()
    ask.refresh_from_db()
    assert call.expected["calls"][0]["arguments"]["payment_reference"] == ["pay_1"]
    assert "payment_id" not in call.expected["calls"][0]["arguments"]
    assert call.schema_version == v2 and call.tool_versions["refund_payment"] == 2
    assert call.provenance["migrations"] == [{
        "tool": "refund_payment", "from_version": 1, "to_version": 2, "renames": {"payment_id": "payment_reference"},
        "kind": "rename", "at": call.provenance["migrations"][0]["at"], "by": "alice"}]
    assert ask.expected["required_fields"] == ["payment_reference"]
    other.refresh_from_db()
    assert other.provenance == {} and other.tool_versions == {"get_order": 1}
    assert outdated_examples(tool) == []
    assert examples_migrate_schema(tool=tool).examined == 0  # idempotent


def test_new_optional_parameter_migrates_without_a_mapping(payments: Service) -> None:
    example = make(payments, "Refund 20 euros on pay_1")
    tool = Tool.objects.get(service=payments, name="refund_payment")
    new_schema_version(tool, refund_v2(rename=False), change="additive")
    report = examples_migrate_schema(tool=tool)
    assert report.migrated == [example.pk]
    example.refresh_from_db()
    assert example.status == "active" and example.provenance["migrations"][0]["kind"] == "compatible"


def test_breaking_change_without_mapping_is_flagged_for_review(payments: Service) -> None:
    example = make(payments, "Refund 20 euros on pay_1")
    before = example.expected
    tool = Tool.objects.get(service=payments, name="refund_payment")
    new_schema_version(tool, refund_v2(rename=True, extra_required=True))
    report = examples_migrate_schema(tool=tool, renames={"payment_id": "payment_reference"})
    assert report.migrated == [] and list(report.flagged) == [example.pk]
    example.refresh_from_db()
    assert example.status == "flagged"
    assert example.expected == before  # nothing rewritten when the example is flagged
    problems = example.provenance["schema_flag"]["problems"]
    assert problems == {"expected.calls[0].arguments.merchant_id": [
        "'merchant_id' is required by refund_payment; give its acceptable values"]}


def test_bad_mapping_is_refused(payments: Service) -> None:
    make(payments, "Refund 20 euros on pay_1")
    tool = Tool.objects.get(service=payments, name="refund_payment")
    new_schema_version(tool, refund_v2(rename=True))
    with pytest.raises(ValidationFailed) as exc:
        examples_migrate_schema(tool=tool, renames={"payment_id": "payment_ref"})
    assert "'payment_ref' is not a parameter of the current refund_payment schema (v2)" in exc.value.fields[
        "renames"][0]
    assert TrainingExample.objects.get().status == "active"
