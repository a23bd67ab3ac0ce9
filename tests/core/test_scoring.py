"""Scoring our records: calls, sequences, clarify / ask_for_details / abstain, partial credit."""

from __future__ import annotations

from typing import Any

import pytest

from ftops.core.adapters import ModelOutput
from ftops.core.harness import EvalReport, RecordResult, percentile
from ftops.core.scoring import mentions_field, record_category, score_record, step_result
from tests.evaluation.helpers import CUSTOMER, ORDER, PAYMENT, WEATHER, record, sequence_record


def out(*calls: tuple[str, dict[str, Any]], text: str = "", error: str | None = None) -> ModelOutput:
    return ModelOutput(calls=[{"name": n, "arguments": a} for n, a in calls], text=text, parse_error=error)


def flags(score: Any) -> tuple[bool, bool, bool, bool, str]:
    return score.exact, score.tool, score.args, score.values, score.error_type


@pytest.mark.parametrize(("output", "expected"), [
    (out(("create_payment", {"amount": 5000, "customer_id": "cus_1"})), (True, True, True, True, "")),
    (out(("create_payment", {"amount": 5000, "customer_id": "CUS_1", "invoice_id": "inv-1", "currency": "usd"})),
     (True, True, True, True, "")),
    (out(("create_payment", {"amount": 50, "customer_id": "cus_1"})),
     (False, True, True, False, "value_error:others")),
    (out(("create_payment", {"amount": 5000})),
     (False, True, False, False, "simple_function_checker:missing_required")),
    (out(("create_payment", {"amount": 5000, "customer_id": "cus_1", "invoice": "INV-1"})),
     (False, True, False, False, "simple_function_checker:unexpected_param")),
    (out(("create_payment", {"amount": "5000", "customer_id": "cus_1"})),
     (False, True, True, False, "type_error:simple")),
    (out(("refund_payment", {"amount": 5000})),
     (False, False, False, False, "simple_function_checker:wrong_func_name")),
    (out(text="Sure."), (False, False, False, False, "ast_decoder:decoder_failed")),
    (out(error="<tool_call> 1 is not valid JSON"), (False, False, False, False, "ast_decoder:decoder_failed")),
])
def test_call_records(output: ModelOutput, expected: tuple[Any, ...]) -> None:
    assert flags(score_record(record(), output)) == expected


def test_parallel_call_records_match_in_any_order() -> None:
    expected = {"calls": [{"name": "get_weather", "arguments": {"city": ["Paris"]}},
                          {"name": "get_weather", "arguments": {"city": ["Rome"], "unit": ["", "celsius"]}}]}
    rec = record(expected=expected, tools=[WEATHER], tool="get_weather", query="Weather in Paris and Rome?")
    assert record_category(rec) == "parallel"
    assert score_record(rec, out(("get_weather", {"city": "rome", "unit": "celsius"}),
                                 ("get_weather", {"city": "Paris"}))).exact
    wrong = score_record(rec, out(("get_weather", {"city": "Rome"}), ("get_weather", {"city": "Oslo"})))
    assert flags(wrong) == (False, True, True, False, "parallel_function_checker_no_order:cannot_find_match")
    one = score_record(rec, out(("get_weather", {"city": "Rome"})))
    assert flags(one) == (False, False, False, False, "parallel_function_checker_no_order:wrong_count")


def test_categories() -> None:
    assert record_category(record()) == "simple"
    assert record_category(record(tools=[PAYMENT, WEATHER])) == "multiple"
    many = {"calls": [{"name": "get_weather", "arguments": {}}, {"name": "create_payment", "arguments": {}}]}
    assert record_category(record(tools=[PAYMENT, WEATHER], expected=many)) == "parallel_multiple"
    assert record_category(sequence_record()) == "multi_step"
    assert record_category(record(behavior="abstain", expected={})) == "irrelevance"
    assert record_category(record(behavior="clarify", expected={})) == "clarify"
    assert record_category(record(meta={"bfcl_category": "live_simple"})) == "live_simple"


def test_no_call_behaviours() -> None:
    ask = record("a", behavior="ask_for_details", query="Create a payment",
                 expected={"required_fields": ["amount", "customer_id"], "question": "How much, for whom?"})
    good = score_record(ask, out(text="Sure - what amount, and which customer ID?"))
    assert flags(good) == (True, True, True, True, "")
    vague = score_record(ask, out(text="What amount should I charge?"))
    assert flags(vague) == (False, True, False, False, "ask_for_details:missing_fields")
    assert vague.error == "the reply does not ask for customer_id"
    called = score_record(ask, out(("create_payment", {"amount": 1})))
    assert flags(called) == (False, False, False, False, "ask_for_details:unexpected_call")

    clarify = record("c", behavior="clarify", expected={"question": "$20 or 20 cents?", "reason": "ambiguous"})
    assert score_record(clarify, out(text="Did you mean $20.00?")).exact
    assert flags(score_record(clarify, out())) == (False, True, False, False, "clarify:empty_reply")
    assert score_record(clarify, out(error="bad json")).error_type == "clarify:unparseable_output"

    abstain = record("n", behavior="abstain", expected={"reason": "no tool"}, tool="")
    assert score_record(abstain, out(text="I can't help with the weather.")).exact
    assert score_record(abstain, out(error="garbled")).exact  # BFCL: an undecodable output makes no call
    assert flags(score_record(abstain, out(("create_payment", {})))) == (
        False, False, False, False, "irrelevance_error:decoder_success")


@pytest.mark.parametrize(("text", "field", "found"), [
    ("What's the customer id?", "customer_id", True),
    ("Which customerId is it?", "customerId", True),
    ("Please give the customer ID.", "customerId", True),
    ("Which customer?", "customer_id", False),
    ("What is the amount?", "amount", True),
    ("How much?", "amount", False),
])
def test_mentions_field(text: str, field: str, found: bool) -> None:
    assert mentions_field(text, field) is found


def test_sequence_answered_in_one_output() -> None:
    seq = sequence_record()
    all_at_once = out(("get_customer_by_name", {"name": "John"}),
                      ("get_latest_order", {"customer_id": "customer_id-001"}),
                      ("create_payment", {"amount": 4201, "customer_id": "customer_id-001"}))
    score = score_record(seq, all_at_once)
    assert (score.exact, score.steps_passed, score.steps_total) == (True, 3, 3)
    first_only = score_record(seq, out(("get_customer_by_name", {"name": "John"})))
    assert flags(first_only) == (False, False, False, False, "sequence_checker:missing_step")
    assert (first_only.steps_passed, first_only.error) == (1, "step 2 of 3 was never called")
    wrong_order = score_record(seq, out(("get_latest_order", {"customer_id": "x"})))
    assert wrong_order.error_type == "simple_function_checker:wrong_func_name"
    extra = score_record(seq, ModelOutput(calls=[*all_at_once.calls, {"name": "get_weather", "arguments": {}}]))
    assert flags(extra) == (False, False, False, False, "sequence_checker:extra_call")


def test_recorded_results_win_over_simulated_ones() -> None:
    seq = sequence_record()
    steps = seq.expected["steps"]
    steps[0]["result"] = {"customer_id": "cus_42"}
    steps[1]["result"] = {"order_id": "ord_9", "order_total": 1999}
    assert step_result(seq, 0, []) == {"customer_id": "cus_42"}
    score = score_record(seq, out(("get_customer_by_name", {"name": "john"}),
                                  ("get_latest_order", {"customer_id": "cus_42"}),
                                  ("create_payment", {"amount": 1999, "customer_id": "cus_42"})))
    assert score.exact
    wrong = score_record(seq, out(("get_customer_by_name", {"name": "john"}),
                                  ("get_latest_order", {"customer_id": "cus_42"}),
                                  ("create_payment", {"amount": 19.99, "customer_id": "cus_42"})))
    assert (wrong.exact, wrong.tool, wrong.args, wrong.error_type) == (False, True, True, "type_error:simple")


def test_simulated_results_follow_the_referring_parameter_type() -> None:
    seq = sequence_record()
    assert step_result(seq, 0, []) == {"status": "ok", "customer_id": "customer_id-001"}
    assert step_result(seq, 1, [{"customer_id": "customer_id-001"}]) == {"status": "ok", "order_total": 4201}
    assert step_result(seq, 2, []) == {"status": "ok"}
    assert [t["function"]["name"] for t in seq.tools] == [CUSTOMER["function"]["name"], ORDER["function"]["name"],
                                                          PAYMENT["function"]["name"]]


def test_report_groups_and_latency() -> None:
    results = []
    for i, (dimension, exact) in enumerate([("new_phrasing", True), ("new_phrasing", False), ("zero_shot_tool", True),
                                            ("", True)]):
        rec = record(f"r{i}", dimension=dimension)
        output = out(("create_payment", {"amount": 5000 if exact else 1, "customer_id": "cus_1"}))
        output.latency_ms = 10.0 * (i + 1)
        results.append(RecordResult(rec, score_record(rec, output), [output]))
    report = EvalReport(results)
    assert report.exact == 75.0
    assert report.accuracy_by("dimension") == {
        "new_phrasing": {"n": 2, "exact": 50.0, "tool": 100.0, "args": 100.0, "values": 50.0},
        "zero_shot_tool": {"n": 1, "exact": 100.0, "tool": 100.0, "args": 100.0, "values": 100.0}}
    assert report.latency() == {"p50": 20.0, "p95": 40.0}
    assert [r.record.id for r in report.failures()] == ["r1"]
    assert set(report.summary()) == {"overall", "by_category", "by_service", "by_tool", "by_dimension", "by_behavior",
                                     "latency_ms", "tokens", "parse_errors", "seconds"}
    with pytest.raises(ValueError, match="group by one of"):
        report.accuracy_by("colour")
    assert (percentile([], 50), percentile([5.0], 95), percentile([1, 2, 3, 4], 50)) == (0.0, 5.0, 2.0)
