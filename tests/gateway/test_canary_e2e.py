"""A canary judged on real traffic: the official openai client through a real uvicorn gateway."""

from __future__ import annotations

import time
from typing import Any

from django.db import OperationalError

from ftops.common.actors import Actor
from ftops.gateway.canary import canaries_check_all
from ftops.gateway.models import CanaryAction, CanaryDecision, ShadowComparison
from ftops.gateway.routing import canary_bucket
from ftops.gateway.shadow import calls_agree, shadow_start
from registry.models import DeploymentState
from tests.gateway.conftest import deploy, make_version
from tests.gateway.test_app import TOOLS, USER


def test_bad_canary_is_rolled_back_and_all_traffic_returns_to_production(gateway_factory: Any,
                                                                        settings: Any) -> None:
    settings.FTOPS_CANARY_ROLLBACK_MIN_SAMPLES = 20
    deploy(make_version("acme-gpt-v1.0.0"))
    canary_dep = deploy(make_version("acme-gpt-v1.1.0", model="fake-500", status="canary"),
                        state=DeploymentState.CANARY)
    gw = gateway_factory()
    client = gw.client()
    on_canary = [f"conv-{i}" for i in range(2000) if canary_bucket(canary_dep.pk, f"conv-{i}") < 0.1][:25]
    assert len(on_canary) == 25
    for conversation in on_canary:
        raw = client.chat.completions.with_raw_response.create(
            model="ftops/payments", messages=USER, tools=TOOLS, extra_headers={"x-ftops-conversation": conversation})
        # The caller never sees the canary's failure: production answers (fallback).
        assert raw.headers["x-ftops-fallback-from"] == "acme-gpt-v1.1.0"
        assert raw.parse().model == "acme-gpt-v1.0.0"
    assert gw.wait_logged(25) == 25

    [result] = canaries_check_all()
    assert result.action == CanaryAction.ROLLBACK
    canary_dep.refresh_from_db()
    assert canary_dep.state == DeploymentState.ROLLED_BACK
    decision = CanaryDecision.objects.get()
    assert decision.numbers["canary"]["upstream_errors"] == 25
    assert decision.numbers["canary"]["fallbacks"] == 25
    assert decision.numbers["canary"]["error_rate"] == 1.0

    # Every conversation, the canary's included, now reaches production, with no fallback.
    for conversation in on_canary[:5]:
        raw = client.chat.completions.with_raw_response.create(
            model="ftops/payments", messages=USER, extra_headers={"x-ftops-conversation": conversation})
        assert (raw.headers["x-ftops-arm"], raw.headers["x-ftops-version"]) == ("production", "acme-gpt-v1.0.0")
        assert "x-ftops-fallback-from" not in raw.headers


def test_shadow_copies_production_calls_and_compares_them(gateway_factory: Any) -> None:
    deploy(make_version("acme-gpt-v1.0.0", model="fake-tools"))
    same = make_version("acme-gpt-v1.1.0", model="fake-tools", status="approved")
    other = make_version("acme-gpt-v1.2.0", model="fake-bad", status="approved")
    broken = make_version("acme-gpt-v1.3.0", model="fake-500", status="approved")
    for version in (same, other, broken):
        shadow_start(model_version_id=version.pk, scope="payments", by=Actor.system("test"))
    gw = gateway_factory()
    client = gw.client()
    for _ in range(3):
        answer = client.chat.completions.create(model="ftops/payments", messages=USER, tools=TOOLS)
        assert answer.model == "acme-gpt-v1.0.0"  # the shadows' answers reach nobody
    assert wait_compared(9) == 9
    rows = {(r.model_version_id, r.tools_agree, r.arguments_agree, r.error) for r in ShadowComparison.objects.all()}
    # fake-bad answers one call where production made two (parallel): the tools differ as a multiset.
    assert rows == {(same.pk, True, True, ""), (other.pk, False, False, ""),
                    (broken.pk, False, False, "upstream_error")}
    assert ShadowComparison.objects.count() == 9


def wait_compared(count: int, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    found = 0
    while time.monotonic() < deadline:
        try:  # the embedded SQLite locks a table while the gateway's thread writes to it
            found = ShadowComparison.objects.count()
        except OperationalError:
            found = 0
        if found >= count:
            break
        time.sleep(0.05)
    return found


def test_calls_agree_ignores_order_and_argument_formatting() -> None:
    a = {"tool_calls": [{"function": {"name": "f", "arguments": '{"x": 1, "y": 2}'}},
                        {"function": {"name": "g", "arguments": "{}"}}]}
    b = {"tool_calls": [{"function": {"name": "g", "arguments": {}}},
                        {"function": {"name": "f", "arguments": '{"y":2,"x":1}'}}]}
    assert calls_agree(a, b) == (True, True)
    assert calls_agree(a, {"tool_calls": [{"function": {"name": "f", "arguments": '{"x": 1}'}}]}) == (False, False)
    assert calls_agree({"content": "hi"}, {"content": "hello"}) == (True, True)
