"""Form fields generated from JSON Schemas: every type, parsing, validation, error placement."""

from __future__ import annotations

from review.schema_form import (
    DictData,
    attach_errors,
    build_fields,
    find_field,
    parse_fields,
    validate_arguments,
)
from tests.review.factories import CUSTOMER_SCHEMA, REFUND_SCHEMA

P = "calls-0-arg-"


def by_name(fields):
    return {f.name: f for top in fields for f in top.walk()}


def test_scalar_fields_carry_type_required_description_and_default() -> None:
    fields = build_fields(REFUND_SCHEMA, prefix=P)
    f = by_name(fields)
    assert [x.path[-1] for x in fields] == ["payment_id", "amount_cents", "currency", "reason"]
    assert f[P + "payment_id"].kind == "string"
    assert f[P + "payment_id"].required is True
    assert f[P + "payment_id"].description == "Payment id, e.g. pay_123"
    amount = f[P + "amount_cents"]
    assert (amount.kind, amount.input_type, amount.attrs) == ("integer", "number", {"step": "1", "min": "1"})
    currency = f[P + "currency"]
    assert currency.kind == "enum"
    assert currency.choices == [('"USD"', "USD"), ('"EUR"', "EUR")]
    assert currency.required is False
    # The schema default pre-fills the field when nothing else is known.
    assert currency.raw == '"USD"'
    assert currency.default_label == "USD"
    assert f[P + "reason"].raw == ""


def test_complex_fields_nested_object_arrays_boolean_number_json() -> None:
    f = by_name(build_fields(CUSTOMER_SCHEMA, prefix=P))
    customer = f[P + "customer"]
    assert customer.kind == "object"
    assert [c.name for c in customer.children] == [P + "customer.id", P + "customer.email"]
    assert f[P + "customer.id"].required is True and f[P + "customer.email"].required is False
    assert f[P + "tags"].kind == "lines"
    assert f[P + "tags"].type_label == "list of string"
    assert f[P + "scores"].kind == "lines"
    assert f[P + "channels"].kind == "multi"
    assert [c[1] for c in f[P + "channels"].choices] == ["email", "sms", "push"]
    assert f[P + "notify"].kind == "boolean"
    assert f[P + "notify"].raw == "false"  # default False
    assert f[P + "discount"].kind == "number"
    assert f[P + "discount"].attrs == {"step": "any", "max": "50"}
    assert f[P + "extra"].kind == "json"


def test_initial_values_from_the_models_call_keep_bad_values_visible() -> None:
    fields = build_fields(REFUND_SCHEMA, prefix=P,
                          initial={"payment_id": "pay_1", "amount_cents": 49.99, "currency": "dollars"})
    f = by_name(fields)
    assert f[P + "amount_cents"].raw == "49.99"
    assert f[P + "currency"].raw == '"dollars"'
    assert f[P + "currency"].choices[-1] == ('"dollars"', "dollars (not allowed)")


def test_parse_coerces_every_type_and_leaves_out_empty_optionals() -> None:
    data = DictData({
        P + "customer.id": "42", P + "customer.email": "",
        P + "tags": "vip\n\n  gold  ", P + "scores": "1\n2",
        P + "channels": ['"email"', '"push"'], P + "notify": "true", P + "discount": "12.5",
        P + "extra": '{"a": [1, 2]}',
    })
    fields = build_fields(CUSTOMER_SCHEMA, prefix=P, data=data)
    arguments, errors = parse_fields(fields)
    assert errors == {}
    assert arguments == {
        "customer": {"id": 42}, "tags": ["vip", "gold"], "scores": [1, 2], "channels": ["email", "push"],
        "notify": True, "discount": 12.5, "extra": {"a": [1, 2]},
    }
    assert validate_arguments(CUSTOMER_SCHEMA, arguments) == []


def test_parse_reports_unreadable_values_on_their_fields() -> None:
    data = DictData({P + "payment_id": "pay_1", P + "amount_cents": "49.99"})
    fields = build_fields(REFUND_SCHEMA, prefix=P, data=data)
    arguments, errors = parse_fields(fields)
    assert arguments == {"payment_id": "pay_1"}
    message = "must be a whole number (integer); this amount is in cents, so 49.99 dollars is 4999"
    assert errors == {P + "amount_cents": message}
    assert find_field(fields, P + "amount_cents").error == message

    bad = DictData({P + "customer.id": "x", P + "scores": "1\nten", P + "notify": "maybe", P + "extra": "{"})
    fields = build_fields(CUSTOMER_SCHEMA, prefix=P, data=bad)
    _, errors = parse_fields(fields)
    assert errors == {
        P + "customer.id": "must be a whole number (integer)",
        P + "scores": "line 2: must be a whole number (integer)",
        P + "notify": "must be true or false",
        P + "extra": "is not valid JSON (Expecting property name enclosed in double quotes)",
    }


def test_validate_arguments_explains_each_schema_rule() -> None:
    problems = validate_arguments(REFUND_SCHEMA, {"amount_cents": 0, "currency": "GBP", "note": "x"})
    assert problems == [
        (("payment_id",), "is required"),
        (("note",), "is not a parameter of this tool"),
        (("amount_cents",), "must be at least 1"),
        (("currency",), "must be one of: USD, EUR"),
    ]
    assert validate_arguments(REFUND_SCHEMA, {"payment_id": "p", "amount_cents": 4999}) == []
    assert validate_arguments(REFUND_SCHEMA, {"payment_id": "p", "amount_cents": 49.99}) == [
        (("amount_cents",), "must be a whole number (integer)")]


def test_prev_references_pass_in_sequences_only() -> None:
    args = {"payment_id": "{prev.payment_id}", "amount_cents": "{prev.total_cents}"}
    assert validate_arguments(REFUND_SCHEMA, args, allow_prev_refs=True) == []
    assert validate_arguments(REFUND_SCHEMA, args) == [(("amount_cents",), "must be a whole number (integer)")]


def test_attach_errors_puts_nested_and_array_errors_on_the_right_field() -> None:
    fields = build_fields(CUSTOMER_SCHEMA, prefix=P)
    problems = validate_arguments(CUSTOMER_SCHEMA, {"customer": {"email": "a@b"}, "scores": [1, "x"],
                                                    "discount": 80})
    leftover = attach_errors(fields, problems)
    f = by_name(fields)
    assert leftover == []
    assert f[P + "customer.id"].error == "is required"
    assert f[P + "scores"].error == "item 2: must be a whole number (integer)"
    assert f[P + "discount"].error == "must be at most 50"
