from __future__ import annotations

from typing import Any

import pytest

from ftops.catalog.models import Service
from ftops.common.errors import ValidationFailed
from ftops.datasets.models import TrainingExample
from ftops.datasets.selectors import record_from_example
from ftops.datasets.services import example_create, example_update
from tests.datasets.conftest import refund_expected


def create(service: Service | str, **overrides: Any) -> TrainingExample:
    kwargs: dict[str, Any] = {
        "service": service, "user_query": "Refund 20 euros on pay_1", "behavior": "call",
        "expected": refund_expected(), "source": "manual", "quality": "high",
    }
    kwargs.update(overrides)
    return example_create(**kwargs)


def fields_of(exc: pytest.ExceptionInfo[ValidationFailed]) -> dict[str, list[str]]:
    return exc.value.fields


def test_call_example_is_stored_with_hash_schema_version_and_all_tools_offered(payments: Service) -> None:
    example = create(payments)
    assert example.tool is not None and example.tool.name == "refund_payment"
    assert example.schema_version == example.tool.current_version
    assert example.tools == ["charge_card", "get_order", "refund_payment"]
    assert example.messages == [{"role": "user", "content": "Refund 20 euros on pay_1"}]
    assert len(example.content_hash) == 64
    assert create(payments).pk == example.pk  # same content, source, interaction: idempotent
    other = create(payments, user_query="Please refund 20 EUR for pay_1")
    assert other.content_hash != example.content_hash


def test_record_from_example_has_openai_tools_from_current_schemas(payments: Service) -> None:
    example = create(payments, tools=["refund_payment", "get_order"])
    record = record_from_example(example, split="train", dimension="seen_phrasing")
    assert record.id == str(example.pk)
    assert record.tool == "refund_payment"
    assert record.user_query == "Refund 20 euros on pay_1"
    assert [t["function"]["name"] for t in record.tools] == ["refund_payment", "get_order"]
    assert record.tools[0]["type"] == "function"
    assert record.tools[0]["function"]["parameters"]["required"] == ["payment_id", "amount"]
    assert (record.split, record.dimension) == ("train", "seen_phrasing")
    assert record.meta["source"] == "manual"


def test_unknown_parameter_and_missing_required_are_named(payments: Service) -> None:
    expected = {"calls": [{"name": "refund_payment", "arguments": {"payment": ["pay_1"], "amount": [5]}}]}
    with pytest.raises(ValidationFailed) as exc:
        create(payments, expected=expected)
    fields = fields_of(exc)
    assert "'payment' is not a parameter of refund_payment" in fields["expected.calls[0].arguments.payment"][0]
    assert "'payment_id' is required" in fields["expected.calls[0].arguments.payment_id"][0]
    assert TrainingExample.objects.count() == 0


def test_each_acceptable_value_is_checked_against_the_schema(payments: Service) -> None:
    expected = {"calls": [{"name": "refund_payment",
                           "arguments": {"payment_id": ["pay_1"], "amount": [20], "currency": ["EUR", "YEN"]}}]}
    with pytest.raises(ValidationFailed) as exc:
        create(payments, expected=expected)
    assert fields_of(exc) == {
        "expected.calls[0].arguments.currency[1]": ["currency: 'YEN' is not one of ['EUR', 'USD', 'GBP']"]}


def test_required_parameter_cannot_be_optional_and_values_must_be_lists(payments: Service) -> None:
    expected = {"calls": [{"name": "refund_payment", "arguments": {"payment_id": ["pay_1", ""], "amount": 20}}]}
    with pytest.raises(ValidationFailed) as exc:
        create(payments, expected=expected)
    assert list(fields_of(exc)) == ["expected.calls[0].arguments.amount"]
    expected = {"calls": [{"name": "refund_payment", "arguments": {"payment_id": ["pay_1", ""], "amount": [20]}}]}
    with pytest.raises(ValidationFailed) as exc:
        create(payments, expected=expected)
    assert "so \"\" (omit) is not allowed" in fields_of(exc)["expected.calls[0].arguments.payment_id"][0]


def test_unknown_tool_behavior_source_quality(payments: Service) -> None:
    with pytest.raises(ValidationFailed) as exc:
        create(payments, expected={"calls": [{"name": "delete_everything", "arguments": {}}]})
    assert "no tool 'delete_everything'" in fields_of(exc)["tool"][0]
    with pytest.raises(ValidationFailed) as exc:
        create(payments, behavior="dance")
    assert "unknown behavior 'dance'" in fields_of(exc)["behavior"][0]
    with pytest.raises(ValidationFailed) as exc:
        create(payments, source="rumour", quality="great")
    assert set(fields_of(exc)) == {"source", "quality"}
    with pytest.raises(ValidationFailed) as exc:
        create("nope")
    assert fields_of(exc) == {"service": ["no service named 'nope'"]}
    assert TrainingExample.objects.count() == 0


def test_sequence_allows_prev_references_and_checks_each_step(payments: Service) -> None:
    expected = {"steps": [
        {"name": "get_order", "arguments": {"order_id": "ord_9"}, "result": {"payment_id": "pay_9", "total": 40}},
        {"name": "refund_payment", "arguments": {"payment_id": "{prev.payment_id}", "amount": "{prev.total}"}},
    ]}
    example = create(payments, user_query="Refund order ord_9 in full", behavior="sequence", expected=expected)
    assert example.tool is not None and example.tool.name == "get_order"
    bad = {"steps": [
        {"name": "get_order", "arguments": {"order_id": 9}, "result": {"payment_id": "pay_9"}},
        {"name": "refund_payment", "arguments": {"payment_id": "{prev.payment_id}", "amount": "{prev.total}"}},
    ]}
    with pytest.raises(ValidationFailed) as exc:
        create(payments, user_query="Refund order 9", behavior="sequence", expected=bad)
    assert fields_of(exc) == {
        "expected.steps[0].arguments": ["order_id: 9 is not of type 'string'"],
        "expected.steps[1].arguments.amount": ["no earlier step's result has 'total'"],
    }


def test_ask_for_details_needs_real_required_fields(payments: Service) -> None:
    ok = create(payments, user_query="Refund my payment", behavior="ask_for_details", tool="refund_payment",
                expected={"required_fields": ["payment_id", "amount"], "question": "Which payment and how much?"})
    assert ok.behavior == "ask_for_details"
    with pytest.raises(ValidationFailed) as exc:
        create(payments, user_query="Refund it", behavior="ask_for_details", tool="refund_payment",
               expected={"required_fields": ["currency"], "question": "Which currency?"})
    assert "['currency'] are not required parameters of refund_payment" in fields_of(exc)[
        "expected.required_fields"][0]


def test_clarify_and_abstain(payments: Service) -> None:
    clarify = create(payments, user_query="Do the thing with my money", behavior="clarify",
                     expected={"question": "Do you want a refund or a charge?", "reason": "ambiguous"})
    abstain = create(payments, user_query="What's the weather?", behavior="abstain",
                     expected={"reason": "No weather tool"})
    assert clarify.tool is None and abstain.tool is None
    with pytest.raises(ValidationFailed) as exc:
        create(payments, user_query="Hmm", behavior="clarify", expected={"question": " "})
    assert list(fields_of(exc)) == ["expected.question"]


def test_messages_must_end_with_the_query(payments: Service) -> None:
    with pytest.raises(ValidationFailed) as exc:
        create(payments, messages=[{"role": "user", "content": "something else"}])
    assert fields_of(exc) == {"user_query": ["user_query must equal the content of the last user message"]}


def test_update_revalidates_and_rehashes(payments: Service) -> None:
    example = create(payments)
    before = example.content_hash
    updated = example_update(example=example, changes={"user_query": "Refund twenty euros for pay_1"})
    assert updated.messages[-1]["content"] == "Refund twenty euros for pay_1"
    assert updated.content_hash != before
    with pytest.raises(ValidationFailed):
        example_update(example=updated, changes={"expected": {"calls": [{"name": "get_order", "arguments": {}}]}})
    updated.refresh_from_db()
    assert updated.user_query == "Refund twenty euros for pay_1"
    assert updated.tool is not None and updated.tool.name == "refund_payment"
