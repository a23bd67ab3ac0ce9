"""Turns a record teaches: a sequence is taught step by step, in the conversation evaluation builds."""

from __future__ import annotations

from typing import Any

from ftops.core.adapters import ModelOutput
from ftops.core.ml.chat import render_prompt
from ftops.core.scoring import run_sequences, teaching_turns
from tests.evaluation.helpers import record, sequence_record

# What an ideal model sends at each turn of ``sequence_record``, written out by hand: the
# simulated results carry customer_id-001 (a string parameter refers to it) and 4201 (an
# integer one does).
IDEAL_CALLS = [
    {"name": "get_customer_by_name", "arguments": {"name": "John"}},
    {"name": "get_latest_order", "arguments": {"customer_id": "customer_id-001"}},
    {"name": "create_payment", "arguments": {"amount": 4201, "customer_id": "customer_id-001"}},
]


class ScriptedAdapter:
    """Answers each request with the next scripted output and keeps the requests it was given."""

    def __init__(self, outputs: list[ModelOutput]) -> None:
        self.outputs = list(outputs)
        self.requests: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]] = []

    def generate(self, requests: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]) -> list[ModelOutput]:
        self.requests.extend(([dict(m) for m in messages], list(tools)) for messages, tools in requests)
        return [self.outputs.pop(0) for _ in requests]


def test_a_three_step_sequence_teaches_each_step_in_the_evaluation_prompt_and_then_stops() -> None:
    seq = sequence_record()
    turns = teaching_turns(seq)
    assert len(turns) == 4
    assert [t.calls for t in turns[:3]] == [[c] for c in IDEAL_CALLS]  # {prev.x} resolved

    adapter = ScriptedAdapter([ModelOutput(calls=[c]) for c in IDEAL_CALLS])
    [run] = run_sequences(adapter, [seq])  # type: ignore[arg-type]
    assert run.score.exact and run.score.steps_passed == 3
    assert len(adapter.requests) == 3
    for turn, (messages, tools) in zip(turns, adapter.requests, strict=False):
        assert render_prompt(None, turn.messages, seq.tools) == render_prompt(None, messages, tools)

    # The closing turn: the last step's call and its result follow the third prompt, and the
    # answer is text, so a tuned model stops calling once the task is done.
    closing = render_prompt(None, turns[3].messages, seq.tools)
    third = render_prompt(None, adapter.requests[2][0], seq.tools).removesuffix("<|assistant|>")
    assert closing == (third + '<|assistant|><tool_call>{"name":"create_payment","arguments":'
                       '{"amount":4201,"customer_id":"customer_id-001"}}</tool_call><|end|>'
                       '<|tool|>{"status":"ok"}<|end|><|assistant|>')
    assert (turns[3].calls, turns[3].text) == ([], 'Done: create_payment returned {"status": "ok"}.')


def test_recorded_results_are_what_later_steps_resolve_and_what_the_model_reads() -> None:
    seq = sequence_record()
    seq.expected["steps"][0]["result"] = {"customer_id": "cus_42"}
    seq.expected["steps"][1]["result"] = {"order_id": "ord_9", "order_total": 1999}
    turns = teaching_turns(seq)
    assert turns[2].calls == [{"name": "create_payment", "arguments": {"amount": 1999, "customer_id": "cus_42"}}]
    assert turns[1].messages[-1] == {"role": "tool", "tool_call_id": "call_0_0", "content": {"customer_id": "cus_42"}}
    assert '<|tool|>{"order_id":"ord_9","order_total":1999}<|end|>' in render_prompt(None, turns[2].messages,
                                                                                     seq.tools)


def test_alternatives_teach_their_first_acceptable_value() -> None:
    seq = sequence_record()
    seq.expected["steps"][0]["arguments"] = {"name": ["John", "john"]}
    seq.expected["steps"][0]["alternatives"] = ["name"]
    assert teaching_turns(seq)[0].calls == [{"name": "get_customer_by_name", "arguments": {"name": "John"}}]


def test_single_step_records_teach_one_turn() -> None:
    call = record()
    [turn] = teaching_turns(call)
    assert turn.messages == call.messages
    assert turn.calls == [{"name": "create_payment", "arguments": {"amount": 5000, "customer_id": "cus_1",
                                                                   "invoice_id": "INV-1", "currency": "USD"}}]
    [abstain] = teaching_turns(record(behavior="abstain", expected={"reason": "No tool books flights."}))
    assert (abstain.calls, abstain.text) == ([], "No tool books flights.")
    assert teaching_turns(record(behavior="sequence", expected={"steps": []})) == []
