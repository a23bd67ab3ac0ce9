"""The one few-shot builder: coverage, then failures, then diversity, under two caps, by seed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ftops.core.fewshot import FewShotConfig, build_fewshot, build_prompt, schema_rules, select_examples, tools_of
from ftops.core.records import Record
from tests.evaluation.helpers import CUSTOMER, ORDER, PAYMENT, WEATHER, record


def pool() -> list[Record]:
    weather = {"calls": [{"name": "get_weather", "arguments": {"city": ["Oslo"]}}]}
    short = {"calls": [{"name": "create_payment", "arguments": {"amount": [100], "customer_id": ["cus_3"]}}]}
    steps = {"steps": [{"name": "get_customer_by_name", "arguments": {"name": "John"}},
                       {"name": "create_payment", "arguments": {"amount": 4201, "customer_id": "{prev.customer_id}"}}]}
    fixed = record("p4", query="Charge cus_4 $2", meta={"source": "correction"}, expected={"calls": [
        {"name": "create_payment", "arguments": {"amount": [200], "customer_id": ["cus_4"]}}]})
    return [
        record("p1", query="Charge cus_1 $50"),  # four arguments
        record("p2", query="Bill cus_2 ten dollars"),  # four arguments too: the seed breaks the tie
        record("p3", query="Charge cus_3 $1", expected=short),
        fixed,
        record("w1", query="Weather in Oslo?", tool="get_weather", tools=[WEATHER], expected=weather),
        record("a1", behavior="ask_for_details", query="Make a payment",
               expected={"required_fields": ["amount"], "question": "How much?"}),
        record("n1", behavior="abstain", tool="", query="Order a pizza", expected={"reason": "No tool does that."}),
        record("s1", behavior="sequence", query="Charge John for his order", tools=[CUSTOMER, PAYMENT, ORDER],
               expected=steps),
    ]


def ids(records: list[Record]) -> list[str]:
    return [r.id for r in records]


def test_every_tool_first_then_the_failures_then_one_of_each_other_behaviour() -> None:
    chosen = select_examples(pool(), FewShotConfig())
    assert chosen.tools_covered == ["create_payment", "get_customer_by_name", "get_weather"]
    assert chosen.tools_missing == ["get_latest_order"]  # offered, never called
    examples = ids(chosen.examples)
    # Coverage: the richest plain call per tool (the sequence covers the tool only it calls).
    assert examples[0] in ("p1", "p2") and examples[1:3] == ["s1", "w1"]
    assert examples[3] == "p4"  # the reviewed failure
    assert sorted(examples[4:]) == ["a1", "n1"]  # one of each behaviour not shown yet
    assert "p3" not in examples  # the pool's leftovers are not padding


def test_the_seed_alone_decides_ties_and_the_same_seed_the_same_prompt() -> None:
    first = {select_examples(pool(), FewShotConfig(seed=seed)).examples[0].id for seed in range(12)}
    assert first == {"p1", "p2"}  # never p3: fewer arguments lose to more whatever the seed
    again = [build_fewshot(pool(), FewShotConfig(seed=5)).prompt for _ in range(2)]
    assert again[0] == again[1]
    shuffled = build_fewshot(list(reversed(pool())), FewShotConfig(seed=5)).prompt
    assert shuffled == again[0]  # record order does not matter either


def test_caps_bound_failures_and_diversity_but_never_coverage() -> None:
    tight = select_examples(pool(), FewShotConfig(max_examples=1))
    assert len(tight.examples) == 3 and tight.tools_covered == ["create_payment", "get_customer_by_name",
                                                                   "get_weather"]
    assert "p4" not in ids(select_examples(pool(), FewShotConfig(max_failures=0)).examples)
    assert set(ids(select_examples(pool(), FewShotConfig(include_other_behaviors=False)).examples)) >= {"p4"}
    coverage_only = build_prompt(select_examples(pool(), FewShotConfig(max_examples=1)).examples)
    small = select_examples(pool(), FewShotConfig(max_prompt_chars=len(coverage_only) + 60))
    assert ids(small.examples)[:3] == ids(tight.examples) and len(small.examples) < 6
    assert len(build_prompt(small.examples)) <= len(coverage_only) + 60


def test_failures_the_caller_names_count_and_are_reported() -> None:
    failed = record("x9", query="Charge cus_9 $9")
    built = build_fewshot(pool(), FewShotConfig(), failures=[failed])
    assert {"p4", "x9"} <= set(built.example_ids) and built.failures_included == 2


def test_prompt_states_rules_enumerations_and_examples_in_the_training_format() -> None:
    built = build_fewshot(pool(), FewShotConfig(extra_rules=["Never refund twice"]),
                          rules=["amounts: ALL amounts in cents"])
    prompt = built.prompt
    assert prompt.startswith("You call the tools of payments for the user.")
    assert ("Domain rules:\n- amounts: ALL amounts in cents\n- Never refund twice\n"
            "- create_payment.currency is one of USD, EUR\n- get_weather.unit is one of celsius, fahrenheit") in prompt
    assert ('User: Weather in Oslo?\nAssistant: <tool_call>{"name":"get_weather","arguments":{"city":"Oslo"}}'
            "</tool_call>") in prompt
    assert "User: Make a payment\nAssistant: How much?" in prompt
    assert ('User: Charge John for his order\nAssistant: <tool_call>{"name":"get_customer_by_name",'
            '"arguments":{"name":"John"}}</tool_call>\n(then, using each result: get_customer_by_name') in prompt
    assert built.prompt_chars == len(prompt) and built.token_count_method == "estimate_chars_div_4"
    assert built.prompt_tokens == round(len(prompt) / 4)


def test_a_service_filter_keeps_other_services_out() -> None:
    other = replace(record("o1", query="Weather in Rome?", tool="get_weather", tools=[WEATHER],
                           expected={"calls": [{"name": "get_weather", "arguments": {"city": ["Rome"]}}]}),
                    service="weather")
    built = build_fewshot([*pool(), other], FewShotConfig(service="weather"))
    assert built.example_ids == ["o1"] and tools_of([other]) == ["get_weather"]
    assert schema_rules([other]) == ["get_weather.unit is one of celsius, fahrenheit"]


@pytest.mark.parametrize(("data", "message"), [
    ({"per_tool": 0}, "per_tool: must be an integer from 1 to 20"),
    ({"max_examples": 0}, "max_examples: must be an integer from 1 to 200"),
    ({"max_prompt_chars": "big"}, "max_prompt_chars: must be an integer"),
    ({"seed": 1.5}, "seed: must be an integer"),
])
def test_bad_config_is_refused_with_the_field_named(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_fewshot(pool(), FewShotConfig.from_dict(data))


def test_unknown_config_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown few-shot config fields: shots"):
        FewShotConfig.from_dict({"shots": 3})
