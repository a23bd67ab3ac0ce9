"""Demo stage: serve the models through the gateway, run a canary that is promoted and one that is rolled back.

Everything runs in this process on 127.0.0.1 ephemeral ports: ftops' model server (the demo's
base model, adapters loaded at run time through vLLM's ``/v1/load_lora_adapter``) registered as
the credential ``FTOPS_GATEWAY_LORA_UPSTREAM`` names, and the gateway in front of it. Traffic is
one service's requests (the service the tuned adapter scored best on), sent with the official
``openai`` client, and every call is logged as an interaction with its schema verdict.

The releases happen in that service's scope, so the enterprise scope the registry stage gates
against is left as it was:

1. the base model, registered as a version of its own, goes to production;
2. the tuned adapter (the registry stage's version, served constrained) starts as a canary; its adapter is loaded
   on the model server when the canary starts; the checker (``canary.canary_check``, called
   directly rather than waiting for beat's minute) promotes it once it is shown not worse;
3. the base model again, approved over its gates as a deliberately worse release, starts as a
   canary against the tuned production and is rolled back by the checker on its error rate.

The checker judges with demo-sized samples (``DEMO_POLICY``: one stage to 100 %, 30 requests a
side, a 15-point margin, automatic promotion on, no minimum canary period) so it decides in
seconds; production keeps the configured policy.
The tuned adapter goes out registered once more with ``"constrained": true`` in its serving
config: the gateway then asks ftops' model server for schema-constrained decoding
(``ftops_constrained``), so its calls follow the offered tools' schemas (the demo's tiny model
otherwise adds arguments no schema lists); the worse release decodes freely.
The checker's decisions stand: a canary whose calls fail their schemas more often than
``max_error_rate`` is rolled back as it would be in production, and ``canary_promoted`` then says
``none`` and why; the demo does not fail for it.
Summary lines: ``gateway_calls``, ``canary_promoted``, ``canary_rolled_back``.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from django.conf import settings
from django.test.utils import override_settings

from ftops.common.actors import Actor
from ftops.common.demo import DemoContext

NEEDED = ("model_version", "base_model_path", "eval_runs", "dataset_version")
# Demo-sized judging (production keeps the configured policy): one stage to 100 %, 30 requests a
# side, a 15-point margin, automatic promotion on and no minimum canary period, whatever
# ft_ops_config.yaml says.
DEMO_POLICY: dict[str, Any] = {"FTOPS_CANARY_STAGES": [1.0], "FTOPS_CANARY_MIN_SAMPLES": 30,
                               "FTOPS_CANARY_ROLLBACK_MIN_SAMPLES": 20, "FTOPS_CANARY_MARGIN": 0.15,
                               "FTOPS_CANARY_AUTO_PROMOTE": True, "FTOPS_CANARY_DURATION_HOURS": 0.0}
# The traffic: the chosen service's requests as the dataset holds them. The requests the service
# already sees (the train split) stand in for production traffic; the test split stays the
# evaluation stage's.
TRAFFIC_SPLIT = "train"
CONCURRENCY = 8
MAX_TOKENS = 96


def run(ctx: DemoContext) -> None:
    missing = [key for key in NEEDED if not ctx.shared.get(key)]
    runs = ctx.shared.get("eval_runs") or {}
    if missing or "base" not in runs:
        ctx.log(f"gateway skipped: earlier stages did not provide {', '.join(missing) or 'the base evaluation'}")
        return
    spool = Path(tempfile.mkdtemp(prefix="ftops-demo-gateway-"))
    allow = [*settings.FTOPS_OUTBOUND_ALLOW, "127.0.0.1/32"]
    try:
        with override_settings(FTOPS_OUTBOUND_ALLOW=allow, FTOPS_GATEWAY_CACHE_S=0, FTOPS_GATEWAY_RETRIES=0,
                               **DEMO_POLICY):
            _run(ctx, spool)
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def _run(ctx: DemoContext, spool: Path) -> None:
    from ftops.common.credentials import upstream_credential_set
    from ftops.common.services import api_key_create
    from ftops.datasets.selectors import dataset_records
    from ftops.gateway.app import GatewayApp
    from ftops.gateway.recorder import CallRecorder
    from ftops.modelserver.server import ThreadedServer, build_server

    started = time.monotonic()
    records = dataset_records(version=ctx.shared["dataset_version"], split=TRAFFIC_SPLIT)
    by_service = Counter(r.service for r in records)
    if not by_service:
        ctx.fail(f"gateway: the dataset version has no {TRAFFIC_SPLIT} records to send")
        return
    service = _service(ctx.shared["eval_runs"], by_service)
    traffic = [r for r in records if r.service == service]
    base = str(ctx.shared["base_model_path"])
    token = secrets.token_urlsafe(24)
    model_server = ThreadedServer(build_server(base_model=base, adapters_root=Path(settings.ARTIFACTS_DIR),
                                               api_key=token, max_batch=CONCURRENCY, batch_wait_ms=10,
                                               max_new_tokens=256))
    system = Actor.system("demo")
    upstream_credential_set(name=settings.FTOPS_GATEWAY_LORA_UPSTREAM, base_url=f"{model_server.url}/v1",
                            value=token, by=system)
    app = GatewayApp(recorder=CallRecorder(spool_dir=spool, flush_s=0.05, batch=200))
    gateway = ThreadedServer(app)
    key = api_key_create(name="demo gateway", roles=["gateway"]).secret
    ctx.log(f"model server on {model_server.url} ({Path(base).name}), gateway on {gateway.url}; traffic: "
            f"{service}'s {len(traffic)} {TRAFFIC_SPLIT} requests")
    sent = Counter[str]()
    try:
        _releases(ctx, service=service, traffic=traffic, gateway_url=gateway.url, key=key, app=app, sent=sent)
    except Exception as exc:  # the summary still prints; the demo exits non-zero
        ctx.fail(f"gateway: the releases stopped: {type(exc).__name__}: {exc}")
    finally:
        gateway.stop()
        model_server.stop()
    calls = sum(sent.values())
    ctx.summary["gateway_calls"] = calls
    ctx.log(f"gateway: {calls} calls ({', '.join(f'{k} {v}' for k, v in sorted(sent.items()))}) "
            f"in {time.monotonic() - started:.1f} s")


def _service(runs: dict[str, Any], by_service: Counter[str]) -> str:
    """Where the tuned adapter goes out first: the service its evaluation scored best on (the
    share of its calls with the right arguments), as a partial deployment would choose."""
    tuned = runs.get("tuned")
    scores = (tuned.metrics.get("by_service") or {}) if tuned is not None else {}
    ranked = sorted(by_service, key=lambda name: (-float((scores.get(name) or {}).get("args") or 0.0),
                                                  -by_service[name], name))
    return ranked[0]


def _releases(ctx: DemoContext, *, service: str, traffic: list[Any], gateway_url: str, key: str, app: Any,
              sent: Counter[str]) -> None:
    from registry.models import Deployment, DeploymentState
    from registry.services import canary_rollback, canary_start, model_version_promote

    system = Actor.system("demo")
    for stale in Deployment.objects.filter(scope=service, state=DeploymentState.CANARY):  # a demo run cut short
        canary_rollback(model_version_id=stale.model_version_id, by=system, scope=service,
                        reason="a new demo run starts its own canaries")
    runs = ctx.shared["eval_runs"]
    tuned = ctx.shared["model_version"]
    base_version = _base_version(ctx, runs, why="the base model, as served before any tuning")
    model_version_promote(model_version_id=base_version.pk, by=system, scope=service,
                          reason="demo: the base model serves the service before the tuned canary")
    ctx.log(f"production for {service}: {base_version.name} (the base model)")

    # 1. The tuned adapter as a canary, served with schema-constrained calls: loaded on the model
    #    server when it starts, then judged.
    tuned = _constrained_version(ctx, tuned, runs)
    canary = canary_start(model_version_id=tuned.pk, by=system, scope=service, reason="demo canary")
    _send(ctx, gateway_url, key, service, traffic, {"canary": DEMO_POLICY["FTOPS_CANARY_MIN_SAMPLES"],
                                                    "production": DEMO_POLICY["FTOPS_CANARY_MIN_SAMPLES"]}, sent)
    action, reason = _judge(ctx, app, canary.pk, expect="promote")
    ctx.summary["canary_promoted"] = (f"{tuned.name} ({reason})" if action == "promote"
                                      else f"none: the checker's decision on {tuned.name} was {action} ({reason})")
    if Deployment.objects.filter(pk=canary.pk, state=DeploymentState.CANARY).exists():
        # Held: the demo ends it, as a person would, so the next canary can start.
        canary_rollback(model_version_id=tuned.pk, by=system, scope=service, reason="demo: ends the held canary")

    # 2. A deliberately worse release (the untuned base, approved over its gates) against the tuned production.
    worse = _base_version(ctx, runs, why="demo: a deliberately worse release, to show the canary catching it")
    second = canary_start(model_version_id=worse.pk, by=system, scope=service, reason="demo: a worse canary")
    _send(ctx, gateway_url, key, service, traffic, {"canary": DEMO_POLICY["FTOPS_CANARY_ROLLBACK_MIN_SAMPLES"] + 4,
                                                    "production": 4}, sent)
    action, reason = _judge(ctx, app, second.pk, expect="rollback")
    ctx.summary["canary_rolled_back"] = (f"{worse.name} ({reason})" if action == "rollback"
                                         else f"none: the checker's decision on {worse.name} was {action} ({reason})")
    if Deployment.objects.filter(pk=second.pk, state=DeploymentState.CANARY).exists():
        canary_rollback(model_version_id=worse.pk, by=system, scope=service, reason="demo: ends the held canary")


def _constrained_version(ctx: DemoContext, tuned: Any, runs: dict[str, Any]) -> Any:
    """The tuned adapter registered again with ``"constrained": true`` in its serving config, gated
    on the evaluation of that adapter under constrained decoding and approved: the gateway then
    asks the model server to hold its calls to the tools' schemas. Without a constrained
    evaluation the tuned version goes out as it is (gates score a version as it is served)."""
    from registry.services import model_version_attach_evaluation, model_version_register

    serving = dict(tuned.serving or {})
    candidate = runs.get("tuned_constrained")
    if serving.get("kind") != "hf_lora" or not serving.get("adapter_path") or candidate is None:
        return _approve(tuned, why="demo: the tuned adapter goes out as a canary")
    system = Actor.system("demo")
    version = model_version_register(base_model=tuned.base_model, backend=tuned.backend,
                                     artifact_path=tuned.artifact_path, serving={**serving, "constrained": True},
                                     scope=tuned.scope, dataset_version=ctx.shared["dataset_version"],
                                     metrics=tuned.metrics, card=tuned.card, cost=tuned.cost, by=system)
    version = model_version_attach_evaluation(model_version_id=version.pk, candidate_run_id=candidate.pk,
                                              baseline_run_id=runs["base"].pk, by=system)
    ctx.log(f"{version.name}: {tuned.name}'s adapter served with schema-constrained tool calls")
    return _approve(version, why="demo: the tuned adapter, with schema-constrained calls, goes out as a canary")


def _base_version(ctx: DemoContext, runs: dict[str, Any], *, why: str) -> Any:
    """The base model registered as a version (served by the LoRA upstream without an adapter), gated and approved."""
    from registry.services import model_version_attach_evaluation, model_version_register

    base = str(ctx.shared["base_model_path"])
    system = Actor.system("demo")
    version = model_version_register(base_model=base, backend="lora", artifact_path="",
                                     serving={"kind": "hf_lora", "base_model": base},
                                     dataset_version=ctx.shared["dataset_version"], by=system)
    version = model_version_attach_evaluation(model_version_id=version.pk, candidate_run_id=runs["base"].pk,
                                              baseline_run_id=runs["base"].pk, by=system)
    return _approve(version, why=why)


def _approve(version: Any, *, why: str) -> Any:
    from registry.models import VersionStatus
    from registry.services import model_version_approve

    if version.status in (VersionStatus.APPROVED, VersionStatus.CANARY, VersionStatus.PRODUCTION):
        return version
    approver = Actor(label="demo-approver")
    blocked = version.status == VersionStatus.GATES_BLOCKED
    return model_version_approve(model_version_id=version.pk, by=approver, comment=why,
                                 override_justification=why if blocked else "")


def _send(ctx: DemoContext, gateway_url: str, key: str, service: str, traffic: list[Any], arms: dict[str, int],
          sent: Counter[str]) -> None:
    """``arms[arm]`` requests addressed to that arm by alias, CONCURRENCY at a time, through the openai client."""
    from openai import OpenAI

    from ftops.core.ml.chat import normalize_tool

    client = OpenAI(base_url=f"{gateway_url}/v1", api_key=key, max_retries=0, timeout=120)
    jobs = [(arm, traffic[i % len(traffic)]) for arm, count in arms.items() for i in range(count)]

    def one(job: tuple[str, Any]) -> tuple[str, str]:
        arm, record = job
        tools: Any = [normalize_tool(t) for t in record.tools]
        try:
            answer = client.chat.completions.create(
                model=arm, messages=record.messages, tools=tools, max_tokens=MAX_TOKENS,
                extra_headers={"x-ftops-service": service})
        except Exception as exc:
            return arm, f"error {type(exc).__name__}"
        message = answer.choices[0].message
        return arm, "call" if message.tool_calls else "text"

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        outcomes = Counter(pool.map(one, jobs))
    for (arm, outcome), count in sorted(outcomes.items()):
        ctx.log(f"  {arm}: {count} answered with {outcome}")
        if not outcome.startswith("error"):
            sent[arm] += count


def _judge(ctx: DemoContext, app: Any, deployment_id: int, *, expect: str) -> tuple[str, str]:
    """Let the call log catch up, then run the checker once: (its action, its reason).

    The checker's decision stands even when it is not the one the demo set up: a tuned adapter
    whose calls fail their schemas more often than ``max_error_rate`` is rolled back, as it
    would be in production, and the summary says so."""
    from ftops.gateway.canary import canary_check
    from ftops.gateway.models import CanaryDecision

    app.recorder.flush_once()
    result = canary_check(deployment_id=deployment_id)
    action, reason, numbers = str(result.action), result.reason, result.numbers
    if action == "ended":  # a scheduler's checker (beat, the embedded one) decided first: report its decision
        decision = CanaryDecision.objects.filter(deployment_id=deployment_id).order_by("-pk").first()
        if decision is not None:
            action, reason, numbers = str(decision.action), decision.reason, decision.numbers
    arms = "; ".join(f"{arm} {n['requests']} requests, error rate {n['error_rate'] or 0:.0%}"
                     for arm in ("canary", "production") if isinstance(n := numbers.get(arm), dict))
    note = "" if action == expect else f"; the demo set this canary up to {expect}"
    ctx.log(f"canary check: {action} ({arms}): {reason}{note}")
    return action, reason
