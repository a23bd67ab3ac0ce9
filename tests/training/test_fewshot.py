from __future__ import annotations

from pathlib import Path

import pytest

from ftops.core.ml.fewshot_prompt import FewShotConfig, build_fewshot, domain_rules, select_examples, tools_of
from ftops.core.records import Record
from tests.training.conftest import BOOK, WEATHER, make_records

EXTRA = {"type": "function", "function": {"name": "cancel_booking", "description": "Cancel a booking.",
                                          "parameters": {"type": "object", "properties": {"booking_id": {
                                              "type": "string"}}, "required": ["booking_id"]}}}


def _with_third_tool() -> list[Record]:
    records = make_records(18)
    records.append(Record(id="cancel-1", service="weather", tool="cancel_booking",
                          messages=[{"role": "user", "content": "Cancel booking BK-12"}],
                          tools=[WEATHER, BOOK, EXTRA], behavior="call",
                          expected={"calls": [{"name": "cancel_booking", "arguments": {"booking_id": ["BK-12"]}}]}))
    return records


def test_every_tool_is_covered_even_beyond_the_cap() -> None:
    records = _with_third_tool()
    chosen, covered, missing = select_examples(records, FewShotConfig(max_examples=1, include_other_behaviors=False))
    assert covered == ["book_room", "cancel_booking", "get_weather"] == tools_of(records)
    assert missing == []
    called = {c["name"] for r in chosen for c in r.expected.get("calls", [])}
    assert called == {"book_room", "cancel_booking", "get_weather"}


def test_past_failures_come_after_coverage_then_other_behaviours() -> None:
    records = _with_third_tool()
    failure = records[7]  # its source is "correction" (a reviewed failure)
    chosen, _, _ = select_examples(records, FewShotConfig(max_failures=5))
    ids = [r.id for r in chosen]
    assert failure.id in ids
    assert {r.behavior for r in chosen} >= {"call", "ask_for_details", "abstain"}
    assert len(ids) == len(set(ids))


def test_tools_without_any_example_are_reported_missing() -> None:
    records = make_records(6)
    lonely = Record(id="x", service="weather", tool="", messages=[{"role": "user", "content": "hi"}],
                    tools=[WEATHER, EXTRA], behavior="abstain", expected={"reason": "no"})
    _, covered, missing = select_examples([*records, lonely], FewShotConfig())
    assert missing == ["cancel_booking"] and "get_weather" in covered


def test_prompt_holds_rules_examples_and_its_token_cost(micro_tokenizer: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(micro_tokenizer)
    rules = domain_rules({"payments": {"amounts": {"rule": "ALL amounts in cents", "examples": {"$10": 1000}},
                                       "states": {"user_might_say": {"failed": ["bounced", "declined"]}}}})
    assert rules == ['payments / amounts: ALL amounts in cents (e.g. $10 -> 1000)',
                     "payments / states: bounced, declined -> failed"]
    built = build_fewshot(_with_third_tool(), FewShotConfig(), rules=rules, tokenizer=tokenizer)
    assert "- payments / amounts: ALL amounts in cents" in built.prompt
    assert 'User: Cancel booking BK-12\nAssistant: <tool_call>{"name":"cancel_booking"' in built.prompt
    assert built.prompt_tokens == len(tokenizer(built.prompt, add_special_tokens=False)["input_ids"])
    assert built.token_count_method == "tokenizer" and built.failures_included == 1
    estimate = build_fewshot(_with_third_tool(), FewShotConfig(), rules=rules)
    assert estimate.token_count_method == "estimate_chars_div_4"
    assert estimate.prompt_tokens == round(len(estimate.prompt) / 4)


def test_bad_fewshot_config_is_refused() -> None:
    with pytest.raises(ValueError, match="per_tool: must be >= 1"):
        build_fewshot(make_records(4), FewShotConfig(per_tool=0))
    with pytest.raises(ValueError, match="unknown few-shot config fields: shots"):
        FewShotConfig.from_dict({"shots": 3})
