"""The aggregator against real HTTP servers on 127.0.0.1: one healthy (answers recorded from this
app's own endpoints), one down, one malformed, one refusing with 403 and one slow past its timeout."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from ftops.catalog.models import Service, Tool
from ftops.common.actors import Actor
from ftops.common.credentials import upstream_credential_set
from ftops.common.models import AuditEvent
from ftops.common.services import api_key_create
from ftops.datasets.models import Source, TrainingExample
from ftops.discovery import services as discovery_services
from ftops.discovery.models import AggregationOutcome, AggregationSource
from ftops.discovery.services import aggregate_all, aggregation_source_save, publishing_settings_update
from tests.datasets.factories import build_shop
from tests.discovery.conftest import Served, route_key

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("loopback_allowed")]
SYSTEM = Actor.system("test")


def record_instance(*, tamper: bool = True) -> tuple[dict[str, Served], str]:
    """Every answer an aggregator asks of this instance, produced by its own views; returns the
    routes and the orchestrator key's secret."""
    secret = api_key_create(name="orchestrator", roles=["ml_orchestrator"]).secret
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    routes: dict[str, Served] = {}

    def put(path: str) -> Any:
        answer = client.get(path)
        routes[route_key(path)] = Served(answer.status_code, answer.content)
        return answer.json()

    index = put("/.well-known/mcp-training-data.json")
    for entry in index["services"]:
        name = entry["service"]
        put(f"/.well-known/mcp-training-data/{name}.json")
        put(f"/mcp/schema?service={name}")
        cursor = ""
        while True:
            page = put(f"/mcp/training-dataset?service={name}&format=hf&limit=200"
                       + (f"&cursor={cursor}" if cursor else ""))
            cursor = page["next_cursor"] or ""
            if not cursor:
                # What the next incremental run asks: everything after the last example.
                put(f"/mcp/training-dataset?service={name}&format=hf&limit=200&cursor={page['resume_cursor']}")
                break
    if tamper:  # one example calling a tool the service does not have must be refused on import
        key = next(k for k in routes if k.endswith("service=shop") and "training-dataset" in k and "cursor" not in k)
        body = json.loads(routes[key].body)
        body["items"][0]["native"]["expected"] = {"calls": [{"name": "drop_tables", "arguments": {}}]}
        routes[key] = Served(200, json.dumps(body).encode())
    return routes, secret


@pytest.fixture
def remote(protocol_server: Any, dead_url: str) -> dict[str, Any]:
    for name in ("shop", "shop2"):
        service, _ = build_shop(name, with_sequences=False)
        publishing_settings_update(service=service, by=SYSTEM, share_with_orchestrators=True,
                                   public_model_training=False, opt_in_text="", restrictions=[], contact_team="",
                                   contact_documentation="")
    routes, secret = record_instance()
    # The orchestrator starts empty: what it holds afterwards came over HTTP.
    TrainingExample.objects.all().delete()
    Service.objects.all().delete()

    index = routes[route_key("/.well-known/mcp-training-data.json")]
    healthy = protocol_server(routes=routes)
    forbidden = protocol_server(routes={k: v for k, v in routes.items() if k.startswith("/.well-known")},
                                default=Served(403, b'{"error": {"code": "forbidden", "message": "no"}}'))
    malformed = protocol_server(default=Served(200, b'{"services": [ {"service": "shop"'))
    slow = protocol_server(routes={route_key("/.well-known/mcp-training-data.json"): Served(200, index.body, 3.0)})
    upstream_credential_set(name="healthy-token", base_url=healthy.url, value=secret, by=SYSTEM)
    upstream_credential_set(name="forbidden-token", base_url=forbidden.url, value="ftk_wrong_key_value", by=SYSTEM)
    aggregation_source_save(name="healthy", base_url=healthy.url, credential_name="healthy-token", by=SYSTEM)
    aggregation_source_save(name="down", base_url=dead_url, by=SYSTEM)
    aggregation_source_save(name="malformed", base_url=malformed.url, by=SYSTEM)
    aggregation_source_save(name="forbidden", base_url=forbidden.url, credential_name="forbidden-token", by=SYSTEM)
    aggregation_source_save(name="slow", base_url=slow.url, by=SYSTEM, timeout_s=0.5)
    return {"healthy": healthy, "forbidden": forbidden, "secret": secret}


def test_partial_failure_lands_the_healthy_source_and_alerts_the_rest(remote: dict[str, Any],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    alerts: list[dict[str, Any]] = []
    monkeypatch.setattr(discovery_services, "notify", lambda **kwargs: alerts.append(kwargs))

    report = aggregate_all(by=SYSTEM)

    by_source = {o.source: o for o in report.outcomes}
    assert {name: o.status for name, o in by_source.items()} == {
        "down": "down", "forbidden": "forbidden", "healthy": "ok", "malformed": "malformed", "slow": "timeout"}
    healthy = by_source["healthy"]
    # 122 examples per service; shop2 repeats shop's requests word for word, so they land once
    # (shop's tampered one is refused, and its twin from shop2 lands instead).
    assert (healthy.services, healthy.pulled, healthy.invalid, healthy.duplicates, healthy.created) == (
        ["shop", "shop2"], 244, 1, 121, 122)
    assert healthy.tools_imported == 12
    assert sorted(set(Tool.objects.values_list("service__name", flat=True))) == ["shop", "shop2"]
    stored = TrainingExample.objects.all()
    assert stored.count() == 122 and set(stored.values_list("source", flat=True)) == {Source.DISCOVERED}
    example = stored.filter(service__name="shop").first()
    assert example is not None
    assert example.provenance["origin"] == "healthy" and example.provenance["service"] == "shop"
    assert example.provenance["remote_id"].isdigit() and example.provenance["source"] == "discovered"
    assert "ann@example.com" not in json.dumps(list(stored.values_list("expected", flat=True)))

    rows = AggregationOutcome.objects.filter(run_id=report.run_id)
    assert sorted(rows.values_list("source__name", "status")) == [
        ("down", "down"), ("forbidden", "forbidden"), ("healthy", "ok"), ("malformed", "malformed"),
        ("slow", "timeout")]
    assert sorted(a["payload"]["source"] for a in alerts) == ["down", "forbidden", "malformed", "slow"]
    assert {a["audience"] for a in alerts} == {"admins"}
    assert AuditEvent.objects.filter(action="discovery.aggregated", object_id=report.run_id).count() == 1

    # The token goes with the dataset and schema requests only, and only to its own source.
    sent = {path.split("?")[0]: auth for path, auth in remote["healthy"].requests}
    assert sent["/mcp/training-dataset"] == f"Bearer {remote['secret']}"
    assert sent["/.well-known/mcp-training-data.json"] == ""
    assert all(remote["secret"] not in auth for _p, auth in remote["forbidden"].requests)

    # A re-run resumes after the last stored example and creates nothing twice.
    again = aggregate_all(by=SYSTEM, sources=["healthy"])
    assert (again.outcomes[0].status, again.outcomes[0].pulled, again.created) == ("ok", 0, 0)
    assert TrainingExample.objects.count() == 122
    assert AggregationSource.objects.get(name="healthy").cursors.keys() == {"shop", "shop2"}


def test_credential_bound_elsewhere_is_never_sent(remote: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discovery_services, "notify", lambda **kwargs: None)
    AggregationSource.objects.filter(name="malformed").update(credential_name="healthy-token")
    report = aggregate_all(by=SYSTEM, sources=["malformed"])
    assert report.outcomes[0].status == "error"
    assert "is bound to" in report.outcomes[0].error
    assert TrainingExample.objects.count() == 0


def test_refetch_from_scratch_creates_nothing_twice(remote: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discovery_services, "notify", lambda **kwargs: None)
    aggregate_all(by=SYSTEM, sources=["healthy"])
    AggregationSource.objects.filter(name="healthy").update(cursors={})  # forget where it stopped
    report = aggregate_all(by=SYSTEM, sources=["healthy"])
    # The tampered one now matches, by its remote hash, the twin stored from shop2.
    assert (report.pulled, report.created, report.outcomes[0].duplicates) == (244, 0, 244)
    assert TrainingExample.objects.count() == 122


def test_command_prints_the_summary(remote: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(discovery_services, "notify", lambda **kwargs: None)
    call_command("aggregate", "--source", "healthy", "--source", "down")
    out = capsys.readouterr().out
    assert "healthy: ok services=2 pulled=244 created=122" in out
    assert "down: down" in out
    assert out.strip().endswith("aggregated: 244 examples from 2 services (122 new, 1 source(s) failed)")


def test_source_validation() -> None:
    with pytest.raises(Exception, match="invalid"):
        aggregation_source_save(name="Bad Name", base_url="ftp://x", by=SYSTEM)
    assert not AggregationSource.objects.exists()


def test_a_cycle_aggregate_stage_pulls_from_every_source_and_goes_on_past_failures(
        remote: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from ftops.loop import cycles
    from ftops.loop.cycles import StageOutcome, cycle_stage_execute, cycle_start
    from ftops.loop.models import CycleStage

    alerts: list[dict[str, Any]] = []
    monkeypatch.setattr(discovery_services, "notify", lambda **kwargs: alerts.append(kwargs))
    monkeypatch.setitem(cycles.STAGE_FUNCTIONS, "collect", lambda cycle, stage: StageOutcome(note="collected"))
    cycle = cycle_start(actor=SYSTEM, send=False)  # the enterprise's cycle; stages driven one by one here
    cycle_stage_execute(stage_id=CycleStage.objects.get(cycle=cycle, name="collect").pk)

    stage = cycle_stage_execute(stage_id=CycleStage.objects.get(cycle=cycle, name="aggregate").pk)

    assert stage is not None and stage.status == "succeeded"
    assert stage.note == ("122 new examples of 244 pulled from 5 source(s), 2 service(s); failed: down (down), "
                          "forbidden (forbidden), malformed (malformed), slow (timeout)")
    run_id = stage.links["aggregation_run"]
    assert stage.links["aggregated"] == 122
    assert AggregationOutcome.objects.filter(run_id=run_id).count() == 5
    assert sorted(a["payload"]["source"] for a in alerts) == ["down", "forbidden", "malformed", "slow"]
    assert TrainingExample.objects.filter(source=Source.DISCOVERED).count() == 122
    # The cycle goes on: curate is next, over what landed.
    assert CycleStage.objects.filter(cycle=cycle, name="curate", status="pending").exists()


def test_aggregate_for_cycle_without_sources_says_so() -> None:
    result = discovery_services.aggregate_for_cycle(cycle_id=1, scope="enterprise")
    assert result["run_id"] == "" and result["sources"] == 0
    assert result["note"].startswith("no aggregation sources configured")
    assert not AggregationOutcome.objects.exists()


def test_a_credential_never_goes_to_a_url_that_only_starts_like_its_own(
        remote: dict[str, Any], protocol_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The binding is by scheme, host, port and path segments, not by string prefix: userinfo
    (``http://bound@elsewhere``) and a longer path segment do not pass."""
    from ftops.common.errors import ValidationFailed

    monkeypatch.setattr(discovery_services, "notify", lambda **kwargs: None)
    evil = protocol_server(default=Served(200, b"{}"))
    bound = remote["healthy"].url.rstrip("/")
    sneaky = f"{bound}@{evil.url.removeprefix('http://').rstrip('/')}"
    with pytest.raises(ValidationFailed, match="invalid"):
        aggregation_source_save(name="sneaky", base_url=sneaky, credential_name="healthy-token", by=SYSTEM)
    # A row written around the service (the admin site edits rows directly) is refused when used.
    AggregationSource.objects.create(name="sneaky", base_url=sneaky, credential_name="healthy-token")
    AggregationSource.objects.create(name="longer", base_url=f"{bound}/v1", credential_name="path-token")
    upstream_credential_set(name="path-token", base_url=f"{bound}/v", value="ftk_path_secret", by=SYSTEM)
    report = aggregate_all(by=SYSTEM, sources=["sneaky", "longer"])
    assert sorted((o.source, o.status) for o in report.outcomes) == [("longer", "error"), ("sneaky", "error")]
    assert all("is bound to" in o.error for o in report.outcomes)
    assert [auth for _, auth in evil.requests if auth] == []
    assert all("ftk_path_secret" not in auth for _, auth in remote["healthy"].requests)
