"""``"constrained": true`` on the OpenAI-compatible adapter: strict tool schemas out, null optionals
stripped from the calls that come back; against a local endpoint, through the official client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ftops.core.adapters import AdapterConfigError, OpenAICompatibleAdapter, adapter_from_config
from ftops.evaluation.models import EvalRun, RunStatus
from ftops.evaluation.services import bfcl_suite_import, eval_run_create, eval_run_execute
from tests.evaluation.helpers import PAYMENT, write_mini_bfcl
from tests.evaluation.openai_server import FakeOpenAI, tool_calls

STRICT_PAYMENT = {
    "type": "object",
    "properties": {
        "amount": {"type": "integer", "description": "in cents"},
        "currency": {"anyOf": [{"type": "string", "enum": ["USD", "EUR"]}, {"type": "null"}]},
        "customer_id": {"type": "string"},
        "invoice_id": {"type": ["string", "null"]},
    },
    "required": ["amount", "currency", "customer_id", "invoice_id"],
    "additionalProperties": False,
}
FREE_FORM = {"type": "function", "function": {"name": "tag", "description": "Tag anything.", "parameters": {
    "type": "object", "properties": {"labels": {"type": "object", "additionalProperties": {"type": "string"}}}}}}
ASK = [{"role": "user", "content": "Charge cus_1 $50"}]


def adapter(server: FakeOpenAI, **kwargs: Any) -> OpenAICompatibleAdapter:
    return OpenAICompatibleAdapter(server.base_url, "sk-test", "gpt-tools", max_retries=0, **kwargs)


def test_constrained_sends_strict_tools_and_strips_null_optionals(fake_openai: FakeOpenAI) -> None:
    fake_openai.policy = lambda body: tool_calls(("create_payment", {"amount": 5000, "currency": None,
                                                                     "customer_id": "cus_1", "invoice_id": None}))
    built = adapter(fake_openai, constrained=True)
    [out] = built.generate([(ASK, [PAYMENT])])
    assert out.parse_error is None
    assert out.calls == [{"name": "create_payment", "arguments": {"amount": 5000, "customer_id": "cus_1"}}]
    # What the model said is kept as it said it.
    assert json.loads(json.loads(out.raw)["tool_calls"][0]["arguments"])["invoice_id"] is None
    [tool] = fake_openai.requests[0]["tools"]
    assert tool == {"type": "function", "function": {"name": "create_payment", "strict": True,
                                                     "description": "Charge a customer. Amounts are in cents.",
                                                     "parameters": STRICT_PAYMENT}}
    assert built.name == "openai:gpt-tools+constrained"
    assert PAYMENT["function"]["parameters"]["required"] == ["amount", "customer_id"]  # the catalog's is untouched


def test_without_constrained_tools_and_answers_go_as_they_are(fake_openai: FakeOpenAI) -> None:
    fake_openai.policy = lambda body: tool_calls(("create_payment", {"amount": 5000, "customer_id": "cus_1",
                                                                     "invoice_id": None}))
    [out] = adapter(fake_openai).generate([(ASK, [PAYMENT])])
    assert fake_openai.requests[0]["tools"] == [PAYMENT]
    assert out.calls[0]["arguments"] == {"amount": 5000, "customer_id": "cus_1", "invoice_id": None}


def test_a_tool_without_a_strict_form_goes_unchanged_and_says_why(fake_openai: FakeOpenAI,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    fake_openai.policy = lambda body: tool_calls(("tag", {"labels": None}))
    built = adapter(fake_openai, constrained=True, concurrency=1)
    with caplog.at_level("INFO", logger="ftops.core.adapters"):
        outs = built.generate([(ASK, [PAYMENT, FREE_FORM])] * 2)
    payment, tag = fake_openai.requests[0]["tools"]
    assert payment["function"]["strict"] is True
    assert tag == FREE_FORM  # no strict flag, the schema as the catalog has it
    assert built.not_strict == {"tag": "$.labels: additionalProperties other than false (free keys) has no "
                                       "strict form"}
    assert [r.getMessage() for r in caplog.records].count(
        f"openai:gpt-tools+constrained: tool 'tag' goes out without strict: {built.not_strict['tag']}") == 1
    # A non-strict tool's answer is not rewritten: null is what the model sent.
    assert [o.calls for o in outs] == [[{"name": "tag", "arguments": {"labels": None}}]] * 2


def test_config_turns_it_on_through_the_credential(fake_openai: FakeOpenAI) -> None:
    fake_openai.policy = lambda body: {"content": "ok"}
    config = {"kind": "openai", "credential": "local", "model": "m", "constrained": True}
    built = adapter_from_config(config, credentials=lambda name: (fake_openai.base_url, "sk"))
    built.generate([(ASK, [PAYMENT])])
    assert fake_openai.requests[0]["tools"][0]["function"]["strict"] is True
    fewshot = adapter_from_config({"kind": "fewshot", "prompt": "p", "inner": config},
                                  credentials=lambda name: (fake_openai.base_url, "sk"))
    fewshot.generate([(ASK, [PAYMENT])])
    assert fake_openai.requests[1]["tools"][0]["function"]["parameters"] == STRICT_PAYMENT


@pytest.mark.parametrize("value", ["yes", 1, None, {"on": True}])
def test_a_constrained_value_that_is_not_a_boolean_is_refused(value: Any) -> None:
    with pytest.raises(AdapterConfigError) as caught:
        adapter_from_config({"kind": "openai", "credential": "c", "model": "m", "constrained": value},
                            credentials=lambda name: ("http://127.0.0.1:1/v1", "sk"))
    assert caught.value.field == "constrained"
    assert caught.value.message.startswith("must be true or false")


@pytest.mark.django_db
def test_the_runs_api_refuses_a_bad_value_with_422(make_key: Any, tmp_path: Path) -> None:
    bfcl_suite_import(data_dir=write_mini_bfcl(tmp_path / "bfcl"), name="mini")
    client, _ = make_key("ml_orchestrator")
    config = {"kind": "openai", "credential": "local", "model": "m", "constrained": "yes"}
    response = client.post("/api/v1/evaluation/runs", {"suite": "mini", "adapter_config": config}, format="json")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["fields"] == {"adapter_config.constrained": [
        "must be true or false (strict tool schemas: OpenAI decodes the calls under each tool's schema), got 'yes'"]}
    assert EvalRun.objects.count() == 0


@pytest.mark.django_db
def test_a_bfcl_run_scores_strict_answers_against_the_catalog_schema(fake_openai: FakeOpenAI, make_credential: Any,
                                                                     tmp_path: Path) -> None:
    """The model fills every optional with null, as strict mode makes it; only stripped do the
    calls match the ground truth (``unit`` may be left out in case 0, not given as null)."""
    def policy(body: dict[str, Any]) -> dict[str, Any]:
        name = body["tools"][0]["function"]["name"]  # calc_area: OpenAI's names take no dots
        if "10 by 5" in body["messages"][-1]["content"]:
            return tool_calls((name, {"base": 10, "height": 5.0, "unit": None}))
        return tool_calls((name, {"base": 3, "height": 4.0, "unit": "cm"}))

    fake_openai.policy = policy
    suite = bfcl_suite_import(data_dir=write_mini_bfcl(tmp_path / "bfcl"), name="mini",
                              categories=["simple_python"]).suite
    make_credential("local", fake_openai.base_url)
    plain = {"kind": "openai", "credential": "local", "model": "m"}
    runs = [eval_run_execute(run_id=eval_run_create(suite=suite, adapter_config=config, enqueue=False).pk)
            for config in (plain, {**plain, "constrained": True})]
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED] * 2
    assert [r.exact for r in runs] == [50.0, 100.0]
    strict_tool = fake_openai.requests[-1]["tools"][0]["function"]
    assert (strict_tool["strict"], strict_tool["parameters"]["properties"]["height"]) == (True, {"type": "number"})
