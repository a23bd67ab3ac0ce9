"""Review corrections exported as preference pairs (OpenAI preference JSONL, TRL chosen/rejected)."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from ftops.common.actors import Actor
from ftops.core.records import Record
from ftops.datasets.exports import (
    FORMATS,
    export_records,
    openai_preference_line,
    trl_preference_line,
    validate_openai_preference_line,
    validate_trl_preference_line,
)
from tests.datasets.factories import build_shop
from tests.datasets.test_exports import TOOLS


def correction(behavior: str, expected: dict[str, Any], model_calls: Any, *, model_text: str = "",
               record_id: str = "11") -> Record:
    provenance: dict[str, Any] = {"review_item": 3, "model_calls": model_calls}
    if model_text:
        provenance["model_text"] = model_text
    return Record(id=record_id, service="shop", tool="get_order",
                  messages=[{"role": "user", "content": "Refund order ORD-1, 5 dollars"}], tools=TOOLS,
                  behavior=behavior, expected=expected, meta={"source": "correction", "provenance": provenance})


WRONG_AMOUNT = correction(
    "call", {"calls": [{"name": "refund_payment", "arguments": {"payment_id": ["P-1"], "amount": [5, 5.0]}}]},
    # OpenAI's shape, arguments as a string (what the gateway records) ...
    [{"type": "function", "function": {"name": "refund_payment", "arguments": '{"payment_id": "P-1", "amount": 500}'}}])
SHOULD_ASK = correction(
    "ask_for_details", {"required_fields": ["order_id"], "question": "Which order should I look up?"},
    # ... or the plain {name, arguments} one
    [{"name": "get_order", "arguments": {"order_id": "latest"}}])
SHOULD_CALL = correction("call", {"calls": [{"name": "get_order", "arguments": {"order_id": ["ORD-1"]}}]}, [],
                         model_text="I cannot look that up.")


def test_openai_preference_line_pairs_the_reviewers_answer_with_the_models() -> None:
    line = openai_preference_line(WRONG_AMOUNT)
    assert line["input"] == {"messages": [{"role": "user", "content": "Refund order ORD-1, 5 dollars"}],
                             "tools": TOOLS, "parallel_tool_calls": True}
    preferred, rejected = line["preferred_output"], line["non_preferred_output"]
    assert len(preferred) == len(rejected) == 1
    assert preferred[0]["role"] == rejected[0]["role"] == "assistant"
    assert json.loads(preferred[0]["tool_calls"][0]["function"]["arguments"]) == {"payment_id": "P-1", "amount": 5}
    assert json.loads(rejected[0]["tool_calls"][0]["function"]["arguments"]) == {"payment_id": "P-1", "amount": 500}
    assert validate_openai_preference_line(line) == []
    ask = openai_preference_line(SHOULD_ASK)
    assert ask["preferred_output"] == [{"role": "assistant", "content": "Which order should I look up?"}]
    assert ask["non_preferred_output"][0]["tool_calls"][0]["function"] == {
        "name": "get_order", "arguments": '{"order_id": "latest"}'}
    assert validate_openai_preference_line(ask) == []
    text = openai_preference_line(SHOULD_CALL)
    assert text["non_preferred_output"] == [{"role": "assistant", "content": "I cannot look that up."}]
    assert validate_openai_preference_line(text) == []


def test_trl_preference_line_has_object_arguments_and_the_tools() -> None:
    line = trl_preference_line(WRONG_AMOUNT)
    assert set(line) == {"prompt", "chosen", "rejected", "tools"}
    assert line["prompt"] == [{"role": "user", "content": "Refund order ORD-1, 5 dollars"}]
    assert line["chosen"][0]["tool_calls"][0]["function"]["arguments"] == {"payment_id": "P-1", "amount": 5}
    assert line["rejected"][0]["tool_calls"][0]["function"]["arguments"] == {"payment_id": "P-1", "amount": 500}
    assert line["tools"] == TOOLS
    assert validate_trl_preference_line(line) == []
    assert validate_trl_preference_line(trl_preference_line(SHOULD_ASK)) == []


@pytest.mark.parametrize("fmt", ["openai_preference", "trl_preference"])
def test_non_corrections_are_skipped_and_broken_corrections_refused(fmt: str) -> None:
    assert fmt in FORMATS
    plain = Record(id="1", service="shop", tool="get_order", messages=[{"role": "user", "content": "ORD-1?"}],
                   tools=TOOLS, behavior="call",
                   expected={"calls": [{"name": "get_order", "arguments": {"order_id": ["ORD-1"]}}]},
                   meta={"source": "manual"})
    no_answer = correction("call", WRONG_AMOUNT.expected, [], record_id="12")
    agreed = correction("call", {"calls": [{"name": "get_order", "arguments": {"order_id": ["ORD-1"]}}]},
                        [{"name": "get_order", "arguments": {"order_id": "ORD-1"}}], record_id="13")
    result = export_records([plain, WRONG_AMOUNT, no_answer, agreed, SHOULD_ASK], fmt)
    assert len(result.lines) == 2
    assert result.skipped == [("1", "not a review correction (no rejected answer to pair with)")]
    reasons = dict(result.refused)
    assert set(reasons) == {"12", "13"}
    assert "no model answer" in reasons["12"] and "prefers nothing" in reasons["13"]


def test_validators_catch_broken_pairs() -> None:
    line = openai_preference_line(WRONG_AMOUNT)
    bad = json.loads(json.dumps(line))
    bad["preferred_output"][0]["tool_calls"][0]["function"]["arguments"] = {"amount": 5}
    bad["non_preferred_output"] = [line["non_preferred_output"][0], line["non_preferred_output"][0]]
    bad["input"]["extra"] = 1
    problems = validate_openai_preference_line(bad)
    assert any("arguments must be a JSON-encoded string" in p for p in problems)
    assert any("exactly one assistant message" in p for p in problems)
    assert any("input.extra" in p for p in problems)
    offered = json.loads(json.dumps(line))
    offered["preferred_output"][0]["tool_calls"][0]["function"]["name"] = "delete_everything"
    assert any("not among the tools offered" in p for p in validate_openai_preference_line(offered))
    same = trl_preference_line(WRONG_AMOUNT)
    same["rejected"] = same["chosen"]
    assert validate_trl_preference_line(same) == ["chosen and rejected are the same"]
    answered = trl_preference_line(WRONG_AMOUNT)
    answered["prompt"] = [*answered["prompt"], {"role": "assistant", "content": "done"}]
    assert "the prompt must end before the assistant's answer" in validate_trl_preference_line(answered)


def test_dataset_export_writes_every_correction_as_a_pair(db: Any) -> None:
    from ftops.datasets.selectors import dataset_records
    from ftops.datasets.services import example_create
    from ftops.datasets.services.export import dataset_export

    service, _ = build_shop(with_sequences=False)
    corrections = []
    for k in range(8):
        corrections.append(example_create(
            service=service, user_query=f"Refund payment PAY-7{k} of {k + 2} dollars", behavior="call",
            expected={"calls": [{"name": "refund_payment",
                                 "arguments": {"payment_id": [f"PAY-7{k}"], "amount": [k + 2]}}]},
            source="correction", quality="high",
            provenance={"review_item": k, "model_calls": [
                {"name": "refund_payment", "arguments": {"payment_id": f"PAY-7{k}", "amount": (k + 2) * 100}}]}))
    call_command("dataset_build", "--seed", "2", "--no-collect", stdout=StringIO(), stderr=StringIO())
    from ftops.datasets.models import DatasetVersion

    version = DatasetVersion.objects.get(number=1)
    ids = {str(c.pk) for c in corrections}
    exported = 0
    for split in ("train", "validation", "test", "holdout"):
        records = dataset_records(version=version, split=split, allow_holdout=True)
        result = dataset_export(version=version, split=split, fmt="trl_preference", by=Actor(label="test"),
                                allow_holdout=True)
        here = {r.id for r in records} & ids
        assert len(result.lines) == len(here) and not result.refused
        assert len(result.skipped) == len(records) - len(here)
        for raw in result.lines:
            line = json.loads(raw)
            assert validate_trl_preference_line(line) == []
            chosen = line["chosen"][0]["tool_calls"][0]["function"]["arguments"]
            rejected = line["rejected"][0]["tool_calls"][0]["function"]["arguments"]
            assert rejected["amount"] == chosen["amount"] * 100
        exported += len(result.lines)
    assert exported == len(corrections)
