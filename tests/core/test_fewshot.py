"""Few-shot prompts: example choice (tools first, then mistakes) and domain rules."""

from __future__ import annotations

from typing import Any

from ftops.core.adapters import ModelOutput
from ftops.core.fewshot import build_prompt, fewshot_adapter_from_records, select_examples, vocabulary_rules
from tests.evaluation.helpers import PAYMENT, WEATHER, record

VOCABULARY = {
    "amounts": {"rule": "ALL amounts in cents, never dollars", "examples": {"$10": 1000}},
    "payment_states": {"our_values": ["pending", "completed"],
                       "user_might_say": {"completed": ["done", "went through"]}},
    "customer_identification": {"never_use_alone": ["name"], "reason": "Names are not unique"},
}


def pool() -> list[Any]:
    weather = {"calls": [{"name": "get_weather", "arguments": {"city": ["Oslo"]}}]}
    return [
        record("p1", query="Charge cus_1 $50"),
        record("p2", query="Bill cus_2 ten dollars"),
        record("p3", query="Charge cus_3 $1"),
        record("w1", query="Weather in Oslo?", tool="get_weather", tools=[WEATHER], expected=weather),
        record("a1", behavior="ask_for_details", query="Make a payment", expected={
            "required_fields": ["amount"], "question": "How much?"}),
    ]


def test_every_tool_first_then_the_mistakes() -> None:
    chosen = select_examples(pool(), wrong_ids={"p3", "a1"}, max_examples=3)
    assert [r.id for r in chosen] == ["p3", "w1", "a1"]
    assert [r.id for r in select_examples(pool(), max_examples=4)] == ["p1", "w1", "p2", "p3"]


def test_prompt_holds_examples_in_the_training_format_and_rules() -> None:
    prompt = build_prompt(select_examples(pool(), max_examples=5), vocabulary=VOCABULARY)
    assert ('1. User: Charge cus_1 $50\n   Assistant: <tool_call>{"name":"create_payment","arguments":'
            '{"amount":5000,"currency":"USD","customer_id":"cus_1","invoice_id":"INV-1"}}</tool_call>') in prompt
    assert "   Assistant: How much?" in prompt
    assert "- create_payment.currency is one of USD, EUR" in prompt
    assert vocabulary_rules(VOCABULARY) == [
        "amounts: ALL amounts in cents, never dollars",
        "amounts, for example: $10 -> 1000",
        "payment states: use only pending, completed",
        "payment states: users saying 'done', 'went through' mean 'completed'",
        "customer identification: Names are not unique",
        "customer identification: never identify by name alone",
    ]


class Echo:
    """Answers what the prompt's first example says for charges (a model that follows its prompt)."""

    name = "echo"

    def __init__(self) -> None:
        self.systems: list[str] = []

    def generate(self, requests: list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]) -> list[ModelOutput]:
        outs = []
        for messages, _tools in requests:
            system = messages[0]["content"] if messages[0]["role"] == "system" else ""
            self.systems.append(system)
            amount = 5000 if "$50" in messages[-1]["content"] else 1
            outs.append(ModelOutput(calls=[{"name": "create_payment", "arguments": {"amount": amount,
                                                                                  "customer_id": "cus_1"}}]))
        return outs


def test_from_records_runs_the_pool_and_picks_the_failures() -> None:
    inner = Echo()
    adapter = fewshot_adapter_from_records(inner, [r for r in pool() if r.id in ("p1", "p2")], max_examples=2)
    assert inner.systems == ["", ""]
    assert "User: Charge cus_1 $50" in adapter.prompt and "User: Bill cus_2 ten dollars" in adapter.prompt
    adapter.generate([([{"role": "user", "content": "Charge cus_9 $5"}], [PAYMENT])])
    assert inner.systems[-1] == adapter.prompt
    assert adapter.name == "fewshot:echo"
