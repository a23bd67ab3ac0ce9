"""The OpenAI-compatible adapter against a local endpoint, through the official client."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ftops.core.adapters import (
    AdapterConfigError,
    FewShotAdapter,
    OpenAICompatibleAdapter,
    adapter_from_config,
    to_openai_messages,
    validate_adapter_config,
)
from ftops.core.harness import evaluate_records
from ftops.core.scoring import run_sequence
from tests.evaluation.helpers import PAYMENT, record, sequence_record
from tests.evaluation.openai_server import FakeOpenAI, tool_calls


def adapter(server: FakeOpenAI, **kwargs: Any) -> OpenAICompatibleAdapter:
    return OpenAICompatibleAdapter(server.base_url, "sk-test", "tiny-tools", max_retries=0, **kwargs)


def test_tool_calls_come_from_the_response(fake_openai: FakeOpenAI) -> None:
    fake_openai.policy = lambda body: tool_calls(("create_payment", {"amount": 5000, "customer_id": "cus_1"}))
    [out] = adapter(fake_openai).generate([([{"role": "user", "content": "Charge cus_1 $50"}], [PAYMENT])])
    assert out.calls == [{"name": "create_payment", "arguments": {"amount": 5000, "customer_id": "cus_1"}}]
    assert (out.parse_error, out.prompt_tokens, out.completion_tokens) == (None, 11, 7)
    assert out.latency_ms > 0
    body = fake_openai.requests[0]
    assert body["model"] == "tiny-tools"
    assert body["temperature"] == 0.0
    assert body["messages"] == [{"role": "user", "content": "Charge cus_1 $50"}]
    assert body["tools"] == [PAYMENT]
    assert fake_openai.headers[0]["authorization"] == "Bearer sk-test"


def test_text_answer_and_text_encoded_calls(fake_openai: FakeOpenAI) -> None:
    answers = iter([{"content": "Which customer?"},
                    {"content": '<tool_call>{"name": "create_payment", "arguments": {"amount": 1}}</tool_call>'}])
    fake_openai.policy = lambda body: next(answers)
    first, second = adapter(fake_openai, concurrency=1).generate([([{"role": "user", "content": "a"}], [PAYMENT])] * 2)
    assert (first.calls, first.text, first.parse_error) == ([], "Which customer?", None)
    assert second.calls == [{"name": "create_payment", "arguments": {"amount": 1}}]


def test_bad_arguments_and_failed_requests_are_recorded(fake_openai: FakeOpenAI) -> None:
    answers = iter([tool_calls(("create_payment", '{"amount": 50')), {"status": 500, "message": "overloaded"}])
    fake_openai.policy = lambda body: next(answers)
    bad, failed = adapter(fake_openai, concurrency=1).generate([([{"role": "user", "content": "x"}], [])] * 2)
    assert bad.calls == []
    assert bad.parse_error is not None
    assert bad.parse_error.startswith("arguments of 'create_payment' are not valid JSON")
    assert json.loads(bad.raw)["tool_calls"] == [{"name": "create_payment", "arguments": '{"amount": 50'}]
    assert failed.calls == []
    assert failed.parse_error is not None and failed.parse_error.startswith("request failed: InternalServerError")
    assert "tools" not in fake_openai.requests[0]


def test_requests_keep_their_order_with_concurrency(fake_openai: FakeOpenAI) -> None:
    fake_openai.policy = lambda body: {"content": body["messages"][-1]["content"].upper()}
    requests = [([{"role": "user", "content": f"q{i}"}], []) for i in range(12)]
    outs = adapter(fake_openai, concurrency=4).generate(requests)
    assert [o.text for o in outs] == [f"Q{i}" for i in range(12)]


def test_sequence_is_driven_turn_by_turn_with_tool_results(fake_openai: FakeOpenAI) -> None:
    def policy(body: dict[str, Any]) -> dict[str, Any]:
        results = [json.loads(m["content"]) for m in body["messages"] if m["role"] == "tool"]
        if not results:
            return tool_calls(("get_customer_by_name", {"name": "John"}))
        if len(results) == 1:
            return tool_calls(("get_latest_order", {"customer_id": results[0]["customer_id"]}))
        return tool_calls(("create_payment", {"amount": results[1]["order_total"],
                                              "customer_id": results[0]["customer_id"]}))

    fake_openai.policy = policy
    run = run_sequence(adapter(fake_openai), sequence_record())
    assert (run.score.exact, run.score.steps_passed, run.score.steps_total) == (True, 3, 3)
    assert len(fake_openai.requests) == 3
    third = fake_openai.requests[2]["messages"]
    assert [m["role"] for m in third] == ["user", "assistant", "tool", "assistant", "tool"]
    assert third[2]["tool_call_id"] == third[1]["tool_calls"][0]["id"]
    assert json.loads(third[4]["content"]) == {"status": "ok", "order_total": 4201}
    assert json.loads(third[1]["tool_calls"][0]["function"]["arguments"]) == {"name": "John"}


def test_sequence_with_a_wrong_reference_fails_at_that_step(fake_openai: FakeOpenAI) -> None:
    def policy(body: dict[str, Any]) -> dict[str, Any]:
        done = sum(1 for m in body["messages"] if m["role"] == "tool")
        return [tool_calls(("get_customer_by_name", {"name": "John"})),
                tool_calls(("get_latest_order", {"customer_id": "cus_guess"})),
                tool_calls(("create_payment", {"amount": 4201, "customer_id": "customer_id-001"}))][done]

    fake_openai.policy = policy
    score = run_sequence(adapter(fake_openai), sequence_record()).score
    assert (score.exact, score.tool, score.args, score.steps_passed) == (False, True, True, 2)
    assert score.error_type == "value_error:string"
    assert score.error.startswith("step 2:")


def test_evaluate_records_through_the_endpoint(fake_openai: FakeOpenAI) -> None:
    def policy(body: dict[str, Any]) -> dict[str, Any]:
        text = body["messages"][-1]["content"]
        if "weather" in text:
            return {"content": "I can only handle payments."}
        if "$50" in text:
            return tool_calls(("create_payment", {"amount": 5000, "customer_id": "cus_1"}))
        return tool_calls(("create_payment", {"amount": 20, "customer_id": "cus_1"}))

    fake_openai.policy = policy
    records = [
        record("ok", dimension="new_phrasing"),
        record("dollars", query="Charge cus_1 twenty dollars", dimension="new_phrasing",
               expected={"calls": [{"name": "create_payment",
                                    "arguments": {"amount": [2000], "customer_id": ["cus_1"]}}]}),
        record("abstain", behavior="abstain", query="What's the weather?", tool="", expected={"reason": "no tool"},
               dimension="zero_shot_tool"),
    ]
    report = evaluate_records(adapter=adapter(fake_openai), records=records, batch_size=2)
    assert [r.score.exact for r in report.results] == [True, False, True]
    assert report.exact == 66.67
    assert report.accuracy_by("dimension") == {
        "new_phrasing": {"n": 2, "exact": 50.0, "tool": 100.0, "args": 100.0, "values": 50.0},
        "zero_shot_tool": {"n": 1, "exact": 100.0, "tool": 100.0, "args": 100.0, "values": 100.0},
    }
    assert report.tokens() == {"prompt": 33, "completion": 21}
    assert all("ftops_record_id" not in m for body in fake_openai.requests for m in body["messages"])


def test_fewshot_prompt_goes_first(fake_openai: FakeOpenAI) -> None:
    fake_openai.policy = lambda body: {"content": "ok"}
    wrapped = FewShotAdapter(adapter(fake_openai), "Amounts are in cents.")
    wrapped.generate([([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}], [])])
    assert fake_openai.requests[0]["messages"][0] == {"role": "system", "content": "Amounts are in cents.\n\nBe brief."}


def test_config_builds_the_adapter_from_the_credential_it_names(fake_openai: FakeOpenAI) -> None:
    fake_openai.policy = lambda body: {"content": "fine"}
    asked: list[str] = []

    def credentials(name: str) -> tuple[str, str]:
        asked.append(name)
        return fake_openai.base_url, "sk-from-store"

    built = adapter_from_config({"kind": "openai", "credential": "local", "model": "m"}, credentials=credentials)
    assert built.generate([([{"role": "user", "content": "x"}], [])])[0].text == "fine"
    assert (asked, fake_openai.headers[0]["authorization"]) == (["local"], "Bearer sk-from-store")
    with pytest.raises(AdapterConfigError) as caught:  # no resolver: no way to a key
        adapter_from_config({"kind": "openai", "credential": "local", "model": "m"})
    assert caught.value.field == "credential"


@pytest.mark.parametrize(("config", "field"), [
    ({"kind": "gpt"}, "kind"),
    ({"kind": "openai", "model": "m"}, "credential"),
    ({"kind": "openai", "credential": "c", "model": "m", "base_url": "http://x"}, "base_url"),
    ({"kind": "openai", "credential": "c", "model": "m", "api_key_env": "FTOPS_SECRET_KEY"}, "api_key_env"),
    ({"kind": "openai", "credential": "c", "model": "m", "api_key": "sk"}, "api_key"),
    ({"kind": "openai", "credential": "c", "model": "m", "headers": {"x": "y"}}, "headers"),
    ({"kind": "fewshot", "prompt": "p", "inner": {"kind": "openai", "credential": "c", "model": "m",
                                                   "base_url": "http://x"}}, "inner.base_url"),
    ({"kind": "replay", "path": "a.jsonl", "base_url": "http://x"}, "base_url"),
    ({"kind": "hf_local", "model_path": "m", "batch": 4}, "batch"),
    ({"kind": "hf_local", "model_path": "m", "batch_size": 0}, "batch_size"),
    ({"kind": "fewshot", "prompt": "p", "inner": {"kind": "hf_local"}}, "inner.model_path"),
    ({"kind": "replay"}, "path"),
    ([], "adapter_config"),
])
def test_bad_configs_name_the_field(config: Any, field: str) -> None:
    with pytest.raises(AdapterConfigError) as caught:
        validate_adapter_config(config)
    assert caught.value.field == field


def test_messages_get_call_ids() -> None:
    messages = [{"role": "user", "content": "go"},
                {"role": "assistant", "tool_calls": [{"name": "f", "arguments": {"a": 1}}]},
                {"role": "tool", "content": {"ok": True}}]
    assert to_openai_messages(messages) == [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"ok": true}'},
    ]
