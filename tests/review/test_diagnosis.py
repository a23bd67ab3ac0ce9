"""What the item page highlights in the model's call, and double-review agreement."""

from __future__ import annotations

from review.diagnosis import agreement, chain_renames, diagnose_calls, suggest_fix
from tests.review.factories import ORDER_SCHEMA, REFUND_SCHEMA

SCHEMAS = {"refund_payment": REFUND_SCHEMA, "get_order": ORDER_SCHEMA}


def statuses(check):
    return {a.name: (a.status, a.message, a.expected) for a in check.arguments}


def test_dollars_instead_of_cents_is_a_type_error_and_differs_from_the_expected_call() -> None:
    d = diagnose_calls(
        [{"name": "refund_payment", "arguments": {"payment_id": "pay_123", "amount_cents": 49.99}}], SCHEMAS,
        [{"name": "refund_payment", "arguments": {"payment_id": "pay_123", "amount_cents": 4999}}], "call")
    assert d.problems == []
    assert d.ok is False
    assert statuses(d.calls[0]) == {
        "payment_id": ("ok", "", '"pay_123"'),
        "amount_cents": ("invalid", "must be a whole number (integer)", "4999"),
    }


def test_unknown_tool_unknown_parameter_missing_required_and_bad_enum() -> None:
    d = diagnose_calls([
        {"name": "refund", "arguments": {"id": "x"}},
        {"name": "get_order", "arguments": {"orderId": "o1", "fulfillment_state": "pending"}},
    ], SCHEMAS)
    unknown, order = d.calls
    assert unknown.known_tool is False
    assert unknown.problems == ["'refund' is not one of the tools offered"]
    # ``orderId`` for ``order_id`` is one rename, not an unknown row and a missing row.
    assert statuses(order) == {
        "orderId": ("renamed", "the parameter is called 'order_id' (sent as 'orderId'): one rename fixes it", ""),
        "fulfillment_state": ("invalid", "must be one of: awaiting_shipment, shipped, delivered", ""),
    }
    far = diagnose_calls([{"name": "get_order", "arguments": {"reference": "o1"}}], SCHEMAS)
    assert statuses(far.calls[0]) == {
        "reference": ("unknown", "not a parameter of this tool", ""),
        "order_id": ("missing", "required but missing", ""),
    }


def test_a_renamed_parameter_gets_a_suggested_fix_without_a_recorded_rename() -> None:
    calls = [{"name": "get_order", "arguments": {"order": "o1"}}]
    fix = suggest_fix(calls, SCHEMAS)
    assert fix is not None
    assert fix.calls == [{"name": "get_order", "arguments": {"order_id": "o1"}}]
    assert fix.changes == ["get_order: rename 'order' to 'order_id' (the parameter's name)"]
    assert fix.mistakes == ["wrong_parameter_name"]
    # Not confident: the value is not valid for the near parameter, or two names claim it.
    assert suggest_fix([{"name": "get_order", "arguments": {"order": 7}}], SCHEMAS) is None
    assert suggest_fix([{"name": "get_order", "arguments": {"order": "o1", "orderId": "o2"}}], SCHEMAS) is None
    # A short word is not taken for a prefix of a longer name.
    assert suggest_fix([{"name": "get_order", "arguments": {"id": "o1"}}], SCHEMAS) is None


def test_wrong_tool_and_missing_calls_against_the_expected_ones() -> None:
    d = diagnose_calls([{"name": "get_order", "arguments": {"order_id": "o1"}}], SCHEMAS, [
        {"name": "refund_payment", "arguments": {"payment_id": ["p1"], "amount_cents": [100]}},
        {"name": "get_order", "arguments": {"order_id": "o1"}},
    ])
    assert d.calls[0].problems == ["expected a call to 'refund_payment'"]
    assert d.problems == ["expected call to 'get_order' was not made"]


def test_a_call_where_the_assistant_should_have_asked() -> None:
    d = diagnose_calls([{"name": "get_order", "arguments": {"order_id": "o1"}}], SCHEMAS, None, "ask_for_details")
    assert d.problems == ["the right behaviour was to ask for details, not to call a tool"]
    assert diagnose_calls([], SCHEMAS, None, "call").problems == ["the model made no call where one was expected"]


def test_a_valid_matching_call_is_ok() -> None:
    call = {"name": "get_order", "arguments": {"order_id": "o1"}}
    assert diagnose_calls([call], SCHEMAS, [call]).ok is True


def test_agreement_on_tool_and_each_argument() -> None:
    a = {"behavior": "call", "calls": [{"name": "refund_payment",
                                        "arguments": {"payment_id": "p1", "amount_cents": 4999}}]}
    b = {"behavior": "call", "calls": [{"name": "refund_payment",
                                        "arguments": {"payment_id": "p1", "amount_cents": 5000, "reason": "late"}}]}
    info = agreement(a, b)
    assert info["behavior"] is True
    assert info["tool"] is True
    assert info["full"] is False
    assert (info["arguments_agreed"], info["arguments_total"]) == (1, 3)
    assert info["calls"][0]["arguments"]["amount_cents"] == {"agree": False, "first": 4999, "second": 5000}
    assert info["calls"][0]["arguments"]["payment_id"]["agree"] is True
    assert agreement(a, a)["full"] is True
    other_tool = {"behavior": "call", "calls": [{"name": "get_order", "arguments": {}}]}
    assert agreement(a, other_tool)["tool"] is False


# --- suggested fixes ---------------------------------------------------------------------------

def refund(**arguments):
    return [{"name": "refund_payment", "arguments": arguments}]


def test_dollars_for_cents_is_fixed_when_nothing_else_is_wrong() -> None:
    fix = suggest_fix(refund(payment_id="pay_123", amount_cents=49.99), SCHEMAS)
    assert fix is not None
    assert fix.calls == refund(payment_id="pay_123", amount_cents=4999)
    assert fix.changes == ["refund_payment.amount_cents: 49.99 dollars → 4999 cents"]
    assert fix.mistakes == ["dollars_for_cents"]
    assert fix.explanation == "Suggested fix accepted: refund_payment.amount_cents: 49.99 dollars → 4999 cents."
    text = suggest_fix(refund(payment_id="pay_1", amount_cents="$12"), SCHEMAS)
    assert text is not None and text.calls == refund(payment_id="pay_1", amount_cents=1200)


def test_no_suggestion_when_a_human_has_to_judge() -> None:
    # A whole number may well be cents already; a third decimal is not an amount of money.
    assert suggest_fix(refund(payment_id="pay_1", amount_cents=50), SCHEMAS) is None
    assert suggest_fix(refund(payment_id="pay_1", amount_cents=1.005), SCHEMAS) is None
    # Something else is wrong as well (a required parameter missing, an unknown tool, a bad enum).
    assert suggest_fix(refund(amount_cents=49.99), SCHEMAS) is None
    assert suggest_fix([{"name": "refund", "arguments": {"amount_cents": 49.99}}], SCHEMAS) is None
    assert suggest_fix(refund(payment_id="pay_1", amount_cents=49.99, currency="GBP"), SCHEMAS) is None
    # The fix disagrees with the known expected call.
    assert suggest_fix(refund(payment_id="pay_1", amount_cents=49.99), SCHEMAS,
                       expected_calls=refund(payment_id="pay_1", amount_cents=5000)) is None
    assert suggest_fix(refund(payment_id="pay_1", amount_cents=49.99), SCHEMAS,
                       expected_calls=refund(payment_id="pay_1", amount_cents=4999)) is not None
    assert suggest_fix([], SCHEMAS) is None


def test_a_known_parameter_rename_is_applied_together_with_cents() -> None:
    renames = {"refund_payment": {"amount": "amount_cents", "payment": "payment_id"}}
    fix = suggest_fix(refund(payment="pay_9", amount=10.5), SCHEMAS, renames=renames)
    assert fix is not None
    assert fix.calls == refund(payment_id="pay_9", amount_cents=1050)
    assert fix.mistakes == ["dollars_for_cents", "wrong_parameter_name"]
    assert fix.changes == ["refund_payment: 'payment' is now called 'payment_id'",
                           "refund_payment: 'amount' is now called 'amount_cents'",
                           "refund_payment.amount_cents: 10.5 dollars → 1050 cents"]
    # An unknown parameter the catalog never renamed stays a human's call; so does sending both names.
    assert suggest_fix(refund(payment_id="pay_9", amount_cents=1050, amt=3), SCHEMAS, renames=renames) is None
    assert suggest_fix(refund(payment_id="pay_9", payment="pay_9", amount_cents=10.5), SCHEMAS,
                       renames=renames) is None


def test_renames_of_successive_versions_chain_to_the_newest_name() -> None:
    assert chain_renames([{"amount": "amount_usd"}, {"amount_usd": "amount_cents"}]) == {
        "amount": "amount_cents", "amount_usd": "amount_cents"}
    assert chain_renames([{"a": "b"}, {"b": "a"}]) == {"b": "a"}
