"""The official openai client against a real uvicorn gateway and a fake upstream."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx2
import openai
import pytest
from django.utils import timezone

from ftops.common.actors import Actor
from ftops.common.credentials import upstream_credential_set
from ftops.gateway.models import Arm
from ftops.gateway.routing import canary_bucket
from ftops.gateway.selectors import arm_outcomes
from ftops.interactions.models import Interaction
from registry.models import DeploymentState
from tests.gateway.conftest import deploy, make_version
from tests.gateway.fake_upstream import USAGE

TOOLS = [{"type": "function", "function": {"name": "create_payment", "description": "Charge a customer",
                                            "parameters": {"type": "object", "properties": {
                                                "amount_cents": {"type": "integer"}, "currency": {"type": "string"}},
                                                "required": ["amount_cents", "currency"]}}}]
USER = [{"role": "user", "content": "Charge 5 dollars and 7 euros; mail jane@example.com"}]


def test_non_streamed_answer_names_the_version_and_is_logged(gateway_factory: Any) -> None:
    version = deploy(make_version("acme-gpt-v1.0.0")).model_version
    gw = gateway_factory()
    raw = gw.client().chat.completions.with_raw_response.create(model="ftops/payments", messages=USER)
    answer = raw.parse()

    assert answer.choices[0].message.content == "Hello from the upstream."
    assert answer.model == "acme-gpt-v1.0.0"
    assert answer.id.startswith("chatcmpl-")
    assert raw.headers["x-ftops-version"] == "acme-gpt-v1.0.0"
    assert raw.headers["x-ftops-arm"] == "production"
    assert raw.headers["x-ftops-interaction-id"] == answer.id
    # The upstream got its own model id and the admin's credential, never the caller's key.
    assert gw.upstream.seen[-1]["body"]["model"] == "fake-text"
    assert gw.upstream.seen[-1]["authorization"] == "Bearer sk-upstream"

    assert gw.wait_logged(1) == 1
    logged = Interaction.objects.get(external_id=answer.id)
    assert logged.service.name == "payments"
    assert logged.model_version == "acme-gpt-v1.0.0"
    assert logged.response_text == "Hello from the upstream."
    assert logged.tokens_used == USAGE["total_tokens"]
    assert logged.metadata["arm"] == "production"
    assert logged.metadata["gateway"] is True
    # The same PII redaction as the ingest API.
    assert "jane@example.com" not in json.dumps(logged.messages)
    assert logged.redactions == {"email": 1}
    assert logged.latency_ms is not None
    summary = arm_outcomes(model_version_id=version.pk, since=timezone.now() - timedelta(minutes=5))
    assert (summary.calls, summary.upstream_errors) == (1, 0)


def test_parallel_tool_calls_non_streamed_and_streamed(gateway_factory: Any) -> None:
    deploy(make_version("acme-gpt-v1.0.0", model="fake-tools"))
    gw = gateway_factory()
    client = gw.client()
    answer = client.chat.completions.create(model="ftops/payments", messages=USER, tools=TOOLS,
                                            tool_choice="auto", parallel_tool_calls=True)
    calls = answer.choices[0].message.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("create_payment", {"amount_cents": 500, "currency": "USD"}),
        ("create_payment", {"amount_cents": 700, "currency": "EUR"})]
    assert gw.upstream.seen[-1]["body"]["tool_choice"] == "auto"
    assert gw.upstream.seen[-1]["body"]["tools"] == TOOLS

    stream = client.chat.completions.create(model="ftops/payments", messages=USER, tools=TOOLS, stream=True)
    chunks = list(stream)
    assert {c.model for c in chunks} == {"acme-gpt-v1.0.0"}
    assert len({c.id for c in chunks}) == 1
    # The client did not ask for usage: the gateway asked upstream for it and kept its chunk back.
    assert all(c.choices for c in chunks)
    assert gw.upstream.seen[-1]["body"]["stream_options"] == {"include_usage": True}
    arguments: dict[int, str] = {}
    for chunk in chunks:
        for part in chunk.choices[0].delta.tool_calls or []:
            arguments[part.index] = arguments.get(part.index, "") + (part.function.arguments or "")
    assert [json.loads(a) for a in arguments.values()] == [{"amount_cents": 500, "currency": "USD"},
                                                           {"amount_cents": 700, "currency": "EUR"}]

    assert gw.wait_logged(2) == 2
    streamed = Interaction.objects.get(external_id=chunks[0].id)
    assert [c["name"] for c in streamed.tool_calls] == ["create_payment", "create_payment"]
    assert streamed.tool_calls[1]["arguments"] == {"amount_cents": 700, "currency": "EUR"}
    assert streamed.call_verdict == "valid"
    assert streamed.tokens_used == USAGE["total_tokens"]
    assert streamed.metadata["stream"] is True


def test_streamed_text_with_usage_requested(gateway_factory: Any) -> None:
    deploy(make_version("acme-gpt-v1.0.0"))
    gw = gateway_factory()
    chunks = list(gw.client().chat.completions.create(model="ftops/payments", messages=USER, stream=True,
                                                      stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from the upstream."
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == USAGE["total_tokens"]
    assert gw.wait_logged(1) == 1
    assert Interaction.objects.get().response_text == "Hello from the upstream."


def test_schema_invalid_call_is_a_failure_for_review_and_counted_for_the_arm(gateway_factory: Any) -> None:
    version = deploy(make_version("acme-gpt-v1.0.0", model="fake-bad")).model_version
    gw = gateway_factory()
    gw.client().chat.completions.create(model="ftops/payments", messages=USER, tools=TOOLS)
    assert gw.wait_logged(1) == 1
    logged = Interaction.objects.get()
    assert (logged.call_verdict, logged.is_failure) == ("invalid", True)
    summary = arm_outcomes(model_version_id=version.pk, since=timezone.now() - timedelta(minutes=5))
    assert (summary.calls, summary.schema_invalid, summary.error_rate) == (1, 1, 1.0)


@pytest.mark.parametrize(("kwargs", "status", "code"), [
    ({"model": "ftops/payments", "messages": []}, 400, "invalid_messages"),
    ({"model": "ftops/nope", "messages": USER}, 404, "model_not_found"),
    ({"model": "production", "messages": USER}, 400, "service_required"),
    ({"model": "canary", "messages": USER, "extra_headers": {"x-ftops-service": "payments"}}, 404,
     "model_not_found"),
    ({"model": "no-such-version", "messages": USER}, 404, "model_not_found"),
])
def test_bad_requests_are_openai_errors(gateway_factory: Any, kwargs: dict[str, Any], status: int,
                                        code: str) -> None:
    deploy(make_version("acme-gpt-v1.0.0"))
    gw = gateway_factory()
    with pytest.raises(openai.APIStatusError) as caught:
        gw.client().chat.completions.create(**kwargs)
    assert caught.value.status_code == status
    assert caught.value.body["code"] == code  # type: ignore[index]
    assert caught.value.body["message"]  # type: ignore[index]
    assert gw.upstream.seen == []


def test_invalid_json_and_unknown_paths(gateway_factory: Any) -> None:
    gw = gateway_factory()
    headers = {"authorization": f"Bearer {gw.key}", "content-type": "application/json"}
    bad = httpx2.post(gw.url + "/v1/chat/completions", content=b"{nope", headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    # Valid JSON that nests deeper than the gateway can write on: a 400, not a 500.
    deep = b'{"model": "ftops/payments", "messages": [{"role": "user", "content": "hi"}], "metadata": {"x": ' \
        + b"[" * 400 + b"]" * 400 + b"}}"
    refused = httpx2.post(gw.url + "/v1/chat/completions", content=deep, headers=headers)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_body", refused.text
    missing = httpx2.get(gw.url + "/v1/embeddings", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "invalid_request_error"


def test_authentication_and_role(gateway_factory: Any) -> None:
    from ftops.common.services import api_key_create

    deploy(make_version("acme-gpt-v1.0.0"))
    gw = gateway_factory()
    with pytest.raises(openai.AuthenticationError) as caught:
        gw.client(api_key="ftk_not-a-key").chat.completions.create(model="ftops/payments", messages=USER)
    assert caught.value.status_code == 401
    ingest_only = api_key_create(name="ingest", roles=["ingest"]).secret
    with pytest.raises(openai.PermissionDeniedError):
        gw.client(api_key=ingest_only).chat.completions.create(model="ftops/payments", messages=USER)
    assert gw.upstream.seen == []
    assert Interaction.objects.count() == 0


@pytest.mark.parametrize(("model", "status", "error_kind", "stream"), [
    ("fake-500", 502, "upstream_error", False),
    ("fake-500", 502, "upstream_error", True),
    ("fake-slow", 504, "timeout", False),
    ("fake-400", 400, None, False),
])
def test_upstream_failures(gateway_factory: Any, model: str, status: int, error_kind: str | None,
                           stream: bool) -> None:
    credential = "slow" if model == "fake-slow" else "fake"
    version = deploy(make_version("acme-gpt-v1.0.0", model=model, credential=credential)).model_version
    gw = gateway_factory()
    with pytest.raises(openai.APIStatusError) as caught:
        result = gw.client().chat.completions.create(model="ftops/payments", messages=USER, stream=stream)
        list(result)
    assert caught.value.status_code == status
    assert caught.value.response.headers["x-ftops-version"] == "acme-gpt-v1.0.0"
    if error_kind is None:  # the upstream's own 400 reaches the caller as it was
        assert caught.value.body["message"] == "max_tokens is too large"  # type: ignore[index]
    else:
        assert caught.value.body["type"] == "upstream_error"  # type: ignore[index]
        assert caught.value.body["code"] == error_kind  # type: ignore[index]
    gw.app.recorder.flush_once()
    summary = arm_outcomes(model_version_id=version.pk, since=timezone.now() - timedelta(minutes=5))
    assert summary.upstream_errors == (1 if error_kind else 0)
    assert summary.timeouts == (1 if error_kind == "timeout" else 0)
    assert Interaction.objects.count() == 0


def test_canary_split_is_sticky_and_a_failing_canary_falls_back(gateway_factory: Any) -> None:
    production = deploy(make_version("acme-gpt-v1.0.0")).model_version
    canary_dep = deploy(make_version("acme-gpt-v1.1.0", model="fake-tools", status="canary"),
                        state=DeploymentState.CANARY)
    gw = gateway_factory()
    client = gw.client()
    # Conversations the hash puts on each arm (10% default share).
    on_canary = next(f"conv-{i}" for i in range(1000) if canary_bucket(canary_dep.pk, f"conv-{i}") < 0.1)
    on_prod = next(f"conv-{i}" for i in range(1000) if canary_bucket(canary_dep.pk, f"conv-{i}") >= 0.1)
    for _ in range(3):
        raw = client.chat.completions.with_raw_response.create(
            model="ftops/payments", messages=USER, extra_headers={"x-ftops-conversation": on_canary})
        assert (raw.headers["x-ftops-arm"], raw.headers["x-ftops-version"]) == ("canary", "acme-gpt-v1.1.0")
        raw = client.chat.completions.with_raw_response.create(model="ftops/payments", messages=USER,
                                                                user=on_prod)
        assert (raw.headers["x-ftops-arm"], raw.headers["x-ftops-version"]) == ("production", "acme-gpt-v1.0.0")
    forced = client.chat.completions.with_raw_response.create(
        model="canary", messages=USER, extra_headers={"x-ftops-service": "payments"})
    assert forced.headers["x-ftops-arm"] == "canary"

    # The canary's upstream breaks: production answers, the canary is charged with the error.
    canary_version = canary_dep.model_version
    canary_version.serving = {"kind": "openai", "credential": "fake", "model": "fake-500"}
    canary_version.save(update_fields=["serving"])
    raw = client.chat.completions.with_raw_response.create(
        model="ftops/payments", messages=USER, extra_headers={"x-ftops-conversation": on_canary})
    assert raw.headers["x-ftops-version"] == "acme-gpt-v1.0.0"
    assert raw.headers["x-ftops-fallback-from"] == "acme-gpt-v1.1.0"
    assert gw.wait_logged(8) == 8
    gw.app.recorder.flush_once()
    since = timezone.now() - timedelta(minutes=5)
    canary = arm_outcomes(model_version_id=canary_version.pk, since=since, arm=Arm.CANARY)
    assert (canary.calls, canary.upstream_errors, canary.fallbacks) == (4, 1, 1)
    prod = arm_outcomes(model_version_id=production.pk, since=since)
    assert prod.calls == 4
    fell_back = Interaction.objects.get(external_id=raw.parse().id)
    assert fell_back.metadata["fallback_from"] == "acme-gpt-v1.1.0"


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_outside_the_outbound_allow_list_is_refused(gateway_factory: Any, stream: bool) -> None:
    # 127.0.0.2 is loopback but not in the allow list (127.0.0.1/32): the guard refuses it on
    # both paths (the lean pool for answers, httpx for streams), before a connection is opened.
    deploy(make_version("acme-gpt-v1.0.0", credential="internal"))
    gw = gateway_factory()
    upstream_credential_set(name="internal", base_url="http://127.0.0.2:9/v1", value="sk-x",
                            by=Actor.system("test"))
    with pytest.raises(openai.APIStatusError) as caught:
        list(gw.client().chat.completions.create(model="ftops/payments", messages=USER, stream=stream) or [])
    assert caught.value.status_code == 502
    assert "may not be contacted" in caught.value.body["message"]  # type: ignore[index]


def test_fewshot_prompt_goes_first_and_version_by_name(gateway_factory: Any) -> None:
    fewshot = make_version("acme-fewshot-v1.0.0", status="approved", scope="payments", serving={
        "kind": "fewshot", "prompt": "You call payment tools.",
        "base": {"kind": "openai", "credential": "fake", "model": "fake-text"}})
    gw = gateway_factory()
    answer = gw.client().chat.completions.create(
        model=fewshot.name, messages=[{"role": "system", "content": "Be brief."}, *USER])
    assert answer.model == "acme-fewshot-v1.0.0"
    sent = gw.upstream.seen[-1]["body"]["messages"]
    assert sent[0] == {"role": "system", "content": "You call payment tools.\n\nBe brief."}
    assert gw.wait_logged(1) == 1
    logged = Interaction.objects.get()
    assert logged.messages[0] == {"role": "system", "content": "Be brief."}  # what the caller sent
    assert logged.metadata["arm"] == "direct"


def test_models_metrics_health(gateway_factory: Any) -> None:
    deploy(make_version("acme-gpt-v1.0.0"))
    gw = gateway_factory()
    client = gw.client()
    ids = [m.id for m in client.models.list()]
    assert ids == ["ftops/payments", "acme-gpt-v1.0.0"]
    client.chat.completions.create(model="ftops/payments", messages=USER)
    text = httpx2.get(gw.url + "/metrics").text
    assert 'ftops_gateway_requests_total{arm="production",deployment="enterprise",status="200",upstream="fake"}' \
        in text
    assert "ftops_gateway_request_seconds_bucket" in text
    assert httpx2.get(gw.url + "/healthz").json() == {"status": "ok"}
    ready = httpx2.get(gw.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["database"] is True
