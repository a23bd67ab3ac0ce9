"""A constrained OpenAI-compatible version: the caller's tools go strict to an upstream that takes
them, and the null optionals strict mode adds are gone from the answer the caller gets."""

from __future__ import annotations

import json
import runpy
from pathlib import Path
from typing import Any

import pytest

from ftops.common.actors import Actor
from ftops.common.env import SettingsError
from ftops.gateway.models import ShadowComparison
from ftops.gateway.selectors import Target
from ftops.gateway.shadow import shadow_start
from ftops.gateway.upstream import plan_for, supports_strict_tools
from ftops.interactions.models import Interaction
from tests.gateway.conftest import deploy, make_version
from tests.gateway.test_canary_e2e import wait_compared
from tests.interactions.conftest import PAYMENT_SCHEMA

TOOLS = [{"type": "function", "function": {"name": "create_payment", "description": "Charge a customer",
                                            "parameters": PAYMENT_SCHEMA}}]
STRICT_PARAMETERS = {
    "type": "object",
    "properties": {
        "amount_cents": {"type": "integer", "minimum": 1, "description": "Amount in cents"},
        "currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]},
        "customer_id": {"type": ["string", "null"]},
        "customer_email": {"type": ["string", "null"]},
    },
    "required": ["amount_cents", "currency", "customer_id", "customer_email"],
    "additionalProperties": False,
}
USER = [{"role": "user", "content": "Charge 5 dollars"}]
CONSTRAINED = {"kind": "openai", "credential": "fake", "model": "fake-nulls", "constrained": True}
NOT_MARKED = "not sent strict: upstream fake is not marked as taking strict tools (FTOPS_GATEWAY_STRICT_TOOLS)"


def _arguments(answer: Any) -> list[dict[str, Any]]:
    return [json.loads(call.function.arguments) for call in answer.choices[0].message.tool_calls]


def test_strict_tools_out_and_null_optionals_stripped_from_the_answer(gateway_factory: Any, settings: Any) -> None:
    settings.FTOPS_GATEWAY_STRICT_TOOLS = {"fake": True}
    deploy(make_version("acme-gpt-v1.0.0", serving=CONSTRAINED))
    gw = gateway_factory()
    answer = gw.client().chat.completions.create(model="ftops/payments", messages=USER, tools=TOOLS)
    assert _arguments(answer) == [{"amount_cents": 500, "currency": "USD"}]
    [tool] = gw.upstream.seen[-1]["body"]["tools"]
    assert tool == {"type": "function", "function": {"name": "create_payment", "description": "Charge a customer",
                                                     "parameters": STRICT_PARAMETERS, "strict": True}}
    assert "ftops_constrained" not in gw.upstream.seen[-1]["body"]  # ftops' model server's flag, not OpenAI's
    assert gw.wait_logged(1) == 1
    logged = Interaction.objects.get(external_id=answer.id)
    assert logged.metadata["strict_tools"] == "sent strict"
    assert logged.tool_calls == [{"name": "create_payment", "arguments": {"amount_cents": 500, "currency": "USD"}}]


def test_an_upstream_not_marked_gets_the_request_unchanged_and_the_reason_is_kept(
        gateway_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    deploy(make_version("acme-gpt-v1.0.0", serving=CONSTRAINED))  # 127.0.0.1 is not api.openai.com
    gw = gateway_factory()
    with caplog.at_level("WARNING", logger="ftops.gateway.strict_tools"):
        answers = [gw.client().chat.completions.create(model="ftops/payments", messages=USER, tools=TOOLS)
                   for _ in range(2)]
    assert [s["body"]["tools"] for s in gw.upstream.seen] == [TOOLS, TOOLS]
    # Nothing was made nullable, so nothing is taken out: the caller gets what the upstream said.
    assert _arguments(answers[0]) == [{"amount_cents": 500, "currency": "USD", "customer_id": None,
                                       "customer_email": None}]
    assert [r.getMessage() for r in caplog.records] == [
        f"gateway: acme-gpt-v1.0.0 asks for strict tools, {NOT_MARKED}"]  # once, not per call
    assert gw.wait_logged(2) == 2
    assert {i.metadata["strict_tools"] for i in Interaction.objects.all()} == {NOT_MARKED}


def test_a_streamed_request_goes_unchanged(gateway_factory: Any, settings: Any) -> None:
    settings.FTOPS_GATEWAY_STRICT_TOOLS = {"fake": True}
    deploy(make_version("acme-gpt-v1.0.0", serving=CONSTRAINED))
    gw = gateway_factory()
    stream = gw.client().chat.completions.create(model="ftops/payments", messages=USER, tools=TOOLS, stream=True)
    parts = "".join(c.choices[0].delta.tool_calls[0].function.arguments or ""
                    for c in stream if c.choices and c.choices[0].delta.tool_calls)
    assert json.loads(parts)["customer_id"] is None
    assert gw.upstream.seen[-1]["body"]["tools"] == TOOLS
    assert gw.wait_logged(1) == 1
    assert Interaction.objects.get().metadata["strict_tools"] == (
        "not sent strict: a streamed answer's null optionals cannot be removed")


def test_a_version_without_constrained_and_the_callers_own_strict_are_left_alone(gateway_factory: Any,
                                                                                  settings: Any) -> None:
    settings.FTOPS_GATEWAY_STRICT_TOOLS = {"fake": True}
    free = deploy(make_version("acme-gpt-v1.0.0", model="fake-nulls")).model_version
    gw = gateway_factory()
    first = gw.client().chat.completions.create(model="ftops/payments", messages=USER, tools=TOOLS)
    assert gw.upstream.seen[-1]["body"]["tools"] == TOOLS
    free.serving = CONSTRAINED
    free.save(update_fields=["serving"])
    own = [{"type": "function", "function": {**TOOLS[0]["function"], "strict": False}},
           {"type": "function", "function": {"name": "tag", "parameters": {
               "type": "object", "properties": {"labels": {"type": "object", "patternProperties": {}}}}}}]
    answer = gw.client().chat.completions.create(model="ftops/payments", messages=USER, tools=own)
    assert gw.upstream.seen[-1]["body"]["tools"] == own
    assert _arguments(answer)[0]["customer_id"] is None
    assert gw.wait_logged(2) == 2
    # The writer thread batches calls, so row ids need not follow call order: look each one up.
    notes = [Interaction.objects.get(external_id=a.id).metadata.get("strict_tools") for a in (first, answer)]
    assert notes == [None, "not sent strict; not strict: tag: $.labels: patternProperties (keys matched by "
                           "pattern) has no strict form"]


def test_which_upstreams_take_strict_tools(settings: Any) -> None:
    settings.FTOPS_GATEWAY_STRICT_TOOLS = {"azure": True, "openai-off": False}
    assert supports_strict_tools("openai", "https://api.openai.com/v1")
    assert supports_strict_tools("openai", "https://API.OPENAI.COM/v1/")
    assert not supports_strict_tools("openai-off", "https://api.openai.com/v1")
    assert supports_strict_tools("azure", "https://acme.openai.azure.com/openai/v1")
    assert not supports_strict_tools("vllm", "http://10.0.0.5:8000/v1")
    assert not supports_strict_tools("proxy", "https://api.openai.com.evil.example/v1")


def test_plans_ask_for_strict_tools_only_with_a_literal_true(settings: Any) -> None:
    openai = {"kind": "openai", "credential": "c", "model": "m"}
    fewshot = {"kind": "fewshot", "prompt": "p", "base": openai}
    assert plan_for(Target(1, "a", {**openai, "constrained": True}, "s", "production")).strict_tools
    assert plan_for(Target(2, "b", {**fewshot, "constrained": True}, "s", "production")).strict_tools
    assert not plan_for(Target(3, "c", {**openai, "constrained": "yes"}, "s", "production")).strict_tools
    assert not plan_for(Target(4, "d", openai, "s", "production")).strict_tools
    lora = plan_for(Target(5, "e", {"kind": "hf_lora", "base_model": "b", "adapter_path": "a", "constrained": True},
                           "s", "production"))
    assert (lora.constrained, lora.strict_tools) == (True, False)  # ftops' model server constrains itself


SETTINGS_FILE = Path(__file__).resolve().parents[2] / "ftops" / "settings.py"


def test_the_setting_is_read_and_a_bad_entry_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTOPS_GATEWAY_STRICT_TOOLS", "azure-prod:on, openai:off")
    assert runpy.run_path(str(SETTINGS_FILE))["FTOPS_GATEWAY_STRICT_TOOLS"] == {"azure-prod": True, "openai": False}
    monkeypatch.setenv("FTOPS_GATEWAY_STRICT_TOOLS", "azure-prod:yes")
    with pytest.raises(SettingsError, match=r"^FTOPS_GATEWAY_STRICT_TOOLS entry 'azure-prod:yes' is not name:on"):
        runpy.run_path(str(SETTINGS_FILE))


def test_a_constrained_shadow_is_compared_on_its_stripped_calls(gateway_factory: Any, settings: Any) -> None:
    settings.FTOPS_GATEWAY_STRICT_TOOLS = {"fake": True}
    deploy(make_version("acme-gpt-v1.0.0", serving=CONSTRAINED))
    strict = make_version("acme-gpt-v1.1.0", status="approved", serving=CONSTRAINED)
    free = make_version("acme-gpt-v1.2.0", status="approved", model="fake-nulls")
    for version in (strict, free):
        shadow_start(model_version_id=version.pk, scope="payments", by=Actor.system("test"))
    gw = gateway_factory()
    gw.client().chat.completions.create(model="ftops/payments", messages=USER, tools=TOOLS)
    assert wait_compared(2) == 2
    rows = {(r.model_version_id, r.tools_agree, r.arguments_agree) for r in ShadowComparison.objects.all()}
    # The free shadow keeps the nulls production's answer no longer has.
    assert rows == {(strict.pk, True, True), (free.pk, True, False)}
    sent = sorted(bool(s["body"]["tools"][0]["function"].get("strict")) for s in gw.upstream.seen)
    assert sent == [False, True, True]
