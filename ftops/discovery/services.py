"""Writes of the discovery app: publishing settings, aggregation sources, dataset-access
accounting (rate limit + audit), and the aggregator that pulls other services' examples."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from ftops.catalog.importers import ServiceDef, ToolDef
from ftops.catalog.models import Service
from ftops.catalog.services import service_upsert, tool_upsert
from ftops.common.actors import Actor
from ftops.common.credentials import upstream_credential_get_secret
from ftops.common.errors import FtopsError, ValidationFailed
from ftops.common.models import AuditAction
from ftops.common.notifications import notify
from ftops.common.outbound import OutboundError, OutboundRefused, guarded_get
from ftops.common.services import audit_record
from ftops.datasets.models import Quality, Source, TrainingExample
from ftops.datasets.selectors import current_schemas
from ftops.datasets.services.examples import example_validate_and_prepare
from ftops.discovery.models import AggregationOutcome, AggregationSource, OutcomeStatus, PublishingSettings

log = logging.getLogger(__name__)
SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
PAGE_LIMIT = 200


# ---------------------------------------------------------------- publishing settings

@transaction.atomic
def publishing_settings_update(*, service: Service, by: Actor, share_with_orchestrators: bool,
                               public_model_training: bool, opt_in_text: str, restrictions: list[str],
                               contact_team: str, contact_documentation: str) -> PublishingSettings:
    restrictions = [r.strip() for r in restrictions if r and r.strip()]
    if public_model_training and not opt_in_text.strip():
        raise ValidationFailed("public consent needs its opt-in text",
                               fields={"opt_in_text": ["say what you consent to, in your own words"]})
    row, _ = PublishingSettings.objects.select_for_update().get_or_create(service=service)
    before = {"share_with_orchestrators": row.share_with_orchestrators,
              "public_model_training": row.public_model_training}
    row.share_with_orchestrators = share_with_orchestrators
    row.public_model_training = public_model_training
    row.opt_in_text = opt_in_text.strip()
    row.restrictions = restrictions
    row.contact_team = contact_team.strip()
    row.contact_documentation = contact_documentation.strip()
    row.updated_by = by.label
    row.save()
    audit_record(action=AuditAction.DISCOVERY_PUBLISHING_UPDATED, by=by, object_type="service",
                 object_id=service.name,
                 detail={"before": before, "after": {"share_with_orchestrators": share_with_orchestrators,
                                                     "public_model_training": public_model_training},
                         "restrictions": restrictions})
    return row


# ---------------------------------------------------------------- dataset access

def dataset_rate_check(*, caller: str) -> int | None:
    """Count one request of ``caller`` this hour; seconds to wait when over the limit, else None.

    A fixed hourly window in the shared cache: every web process sees the same count.
    """
    limit = int(getattr(settings, "FTOPS_MCP_RATE_PER_HOUR", 100))
    window = int(time.time() // 3600)
    key = f"ftops:mcp-rate:{caller}:{window}"
    cache.add(key, 0, timeout=3700)
    try:
        used = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=3700)
        used = 1
    if used > limit:
        return 3600 - int(time.time()) % 3600
    return None


def dataset_access_audit(*, by: Actor, service: str, what: str, allowed: bool, detail: dict[str, Any]) -> None:
    """Every read of training or test data, and every refusal, leaves one row (rule 14)."""
    audit_record(action=AuditAction.DISCOVERY_DATASET_READ if allowed else AuditAction.DISCOVERY_DATASET_DENIED,
                 by=by, object_type="service", object_id=service, detail={"what": what, **detail})


# ---------------------------------------------------------------- aggregation sources

@transaction.atomic
def aggregation_source_save(*, name: str, base_url: str, by: Actor, credential_name: str = "",
                            timeout_s: float = 10.0, enabled: bool = True) -> AggregationSource:
    errors: dict[str, list[str]] = {}
    if not SLUG.match(name or ""):
        errors["name"] = ["lower-case letters, digits, '-' and '_'"]
    base_url = (base_url or "").strip().rstrip("/")
    if not re.match(r"^https?://[^/\s?#@]+(/[^\s?#]*)?$", base_url):  # no userinfo: the host is what it seems
        errors["base_url"] = ["an http(s) URL without query, e.g. https://payments.internal"]
    if not 0.1 <= timeout_s <= 120:
        errors["timeout_s"] = ["between 0.1 and 120 seconds"]
    if errors:
        raise ValidationFailed("the aggregation source is invalid; see 'fields'", fields=errors)
    source, created = AggregationSource.objects.update_or_create(
        name=name, defaults={"base_url": base_url, "credential_name": credential_name.strip(),
                             "timeout_s": timeout_s, "enabled": enabled, "created_by": by.label})
    audit_record(action=AuditAction.DISCOVERY_SOURCE_SAVED, by=by, object_type="aggregation_source",
                 object_id=source.pk, detail={"name": name, "base_url": base_url, "created": created,
                                              "credential": source.credential_name})
    return source


# ---------------------------------------------------------------- the aggregator

class SourceFailed(Exception):
    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class SourceOutcome:
    source: str
    status: str
    services: list[str] = field(default_factory=list)
    pulled: int = 0
    created: int = 0
    duplicates: int = 0
    invalid: int = 0
    tools_imported: int = 0
    error: str = ""
    seconds: float = 0.0


@dataclass
class AggregateReport:
    run_id: str
    outcomes: list[SourceOutcome] = field(default_factory=list)

    @property
    def pulled(self) -> int:
        return sum(o.pulled for o in self.outcomes)

    @property
    def created(self) -> int:
        return sum(o.created for o in self.outcomes)

    @property
    def services(self) -> int:
        return len({s for o in self.outcomes for s in o.services})

    @property
    def failed(self) -> list[SourceOutcome]:
        return [o for o in self.outcomes if o.status != OutcomeStatus.OK]

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "pulled": self.pulled, "created": self.created, "services": self.services,
                "sources": [o.__dict__ for o in self.outcomes]}


def url_within(url: str, base: str) -> bool:
    """``url`` lies under ``base``: the same scheme, host and port, no userinfo, and ``base``'s path
    as whole segments. A string prefix is not enough: ``https://svc.example`` is a prefix of
    ``https://svc.example.evil.net`` and of ``https://svc.example@evil.net``."""
    from urllib.parse import urlsplit

    try:
        u, b = urlsplit(url.strip()), urlsplit(base.strip())
        ports = (u.port or {"http": 80, "https": 443}.get(u.scheme.lower())), \
            (b.port or {"http": 80, "https": 443}.get(b.scheme.lower()))
    except ValueError:  # a port that is no number or out of range
        return False
    if "@" in u.netloc or "@" in b.netloc or not u.hostname or u.scheme.lower() != b.scheme.lower() \
            or u.hostname != b.hostname or ports[0] != ports[1]:
        return False
    base_path, path = b.path.rstrip("/"), u.path.rstrip("/")
    return path == base_path or path.startswith(base_path + "/")


class _Client:
    """GETs against one source's fixed base URL through the guarded outbound client."""

    def __init__(self, source: AggregationSource) -> None:
        self.source = source
        self.headers: dict[str, str] = {"Accept": "application/json"}
        if source.credential_name:
            credential = upstream_credential_get_secret(source.credential_name)
            # The credential names the one base URL its value may go to; a source elsewhere never gets it.
            if not url_within(source.base_url, credential.base_url):
                raise SourceFailed(OutcomeStatus.ERROR, f"credential {credential.name!r} is bound to "
                                   f"{credential.base_url}, not to {source.base_url}")
            self.headers["Authorization"] = f"Bearer {credential.value}"

    def get_json(self, path: str, *, params: dict[str, str] | None = None, auth: bool = True) -> Any:
        from urllib.parse import urlencode

        url = self.source.base_url.rstrip("/") + path + (f"?{urlencode(params)}" if params else "")
        headers = self.headers if auth else {"Accept": "application/json"}
        try:
            fetched = guarded_get(url, timeout_s=self.source.timeout_s, headers=headers, max_redirects=0)
        except OutboundRefused as exc:
            raise SourceFailed(OutcomeStatus.ERROR, f"outbound policy refused {path}: {exc}") from None
        except OutboundError as exc:
            status = OutcomeStatus.TIMEOUT if getattr(exc, "kind", "") == "timeout" else OutcomeStatus.DOWN
            raise SourceFailed(status, f"{path}: {exc}") from None
        if fetched.status_code in (401, 403):
            raise SourceFailed(OutcomeStatus.FORBIDDEN, f"{path} answered {fetched.status_code}: "
                               f"{fetched.text()[:200]}")
        if fetched.status_code != 200:
            raise SourceFailed(OutcomeStatus.ERROR, f"{path} answered {fetched.status_code}")
        try:
            return json.loads(fetched.content)
        except ValueError as exc:
            raise SourceFailed(OutcomeStatus.MALFORMED, f"{path} is not JSON: {exc}") from None


def _expect(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise SourceFailed(OutcomeStatus.MALFORMED, f"{what} should be a {kind.__name__}")
    return value


def _import_tools(client: _Client, name: str, outcome: SourceOutcome) -> Service:
    schema = _expect(client.get_json("/mcp/schema", params={"service": name}), dict, "/mcp/schema")
    tools = _expect(schema.get("tools"), list, "/mcp/schema tools")
    label = f"discovered:{client.source.name}"
    with transaction.atomic():
        service, _ = service_upsert(definition=ServiceDef(name=name, version=str(schema.get("version") or ""),
                                                          description=str(schema.get("description") or "")),
                                    source=label)
        for tool in tools:
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise SourceFailed(OutcomeStatus.MALFORMED, "a tool in /mcp/schema has no name")
            params = tool.get("inputSchema") or {"type": "object", "properties": {}}
            try:
                _tool, _created, version = tool_upsert(
                    service=service, source=label,
                    definition=ToolDef(service=name, name=tool["name"], description=str(tool.get("description") or ""),
                                       parameters=params))
            except ValidationFailed as exc:
                raise SourceFailed(OutcomeStatus.MALFORMED, f"tool {tool['name']}: {exc}") from None
            outcome.tools_imported += version is not None
    return service


def _store_page(source: AggregationSource, service: Service, items: list[Any], outcome: SourceOutcome) -> None:
    """Validate and store one page in one transaction, so a crash never leaves half a page."""
    schemas = current_schemas(service)
    # The remote's hash is of its original, unredacted example: when we hold that very example
    # (another route to the same data, or pulling from ourselves) the redacted copy is a duplicate.
    remote_hashes = {str(i["content_hash"]) for i in items if isinstance(i, dict) and i.get("content_hash")}
    held = set(TrainingExample.objects.filter(content_hash__in=remote_hashes).values_list("content_hash", flat=True))
    prepared: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for item in items:
        native = item.get("native") if isinstance(item, dict) else None
        if not isinstance(native, dict):
            outcome.invalid += 1
            continue
        if item.get("content_hash") in held:
            outcome.duplicates += 1
            continue
        try:
            values = example_validate_and_prepare(
                service=service, tool=native.get("tool") or None, user_query=str(native.get("user_query") or ""),
                messages=native.get("messages"), tools=native.get("tools"), behavior=str(native.get("behavior")),
                expected=expected if isinstance(expected := native.get("expected"), dict) else {},
                source=Source.DISCOVERED,
                quality=item.get("quality") if item.get("quality") in Quality.values else Quality.MEDIUM,
                common_mistakes=native.get("common_mistakes") or [], schemas=schemas)
        except (ValidationFailed, TypeError, AttributeError):
            outcome.invalid += 1
            continue
        prepared.append((item, {**values, "explanation": str(native.get("explanation") or ""),
                                "common_mistakes": native.get("common_mistakes") or []}))
    hashes = {values["content_hash"] for _item, values in prepared}
    # Duplicates across services and across runs: one content hash is stored once, wherever it came from.
    seen = set(TrainingExample.objects.filter(content_hash__in=hashes).values_list("content_hash", flat=True))
    rows = []
    for item, values in prepared:
        if values["content_hash"] in seen:
            outcome.duplicates += 1
            continue
        seen.add(values["content_hash"])
        quality = str(item.get("quality")) if item.get("quality") in Quality.values else str(Quality.MEDIUM)
        rows.append(TrainingExample(
            service=service, source=Source.DISCOVERED, quality=quality,
            provenance={"source": Source.DISCOVERED, "origin": source.name, "base_url": source.base_url,
                        "service": service.name, "remote_id": str(item.get("id", "")),
                        "remote_source": str(item.get("source", "")),
                        "remote_hash": str(item.get("content_hash", ""))},
            **values))
    TrainingExample.objects.bulk_create(rows, batch_size=500)
    outcome.created += len(rows)


def _pull_service(client: _Client, source: AggregationSource, name: str, outcome: SourceOutcome) -> None:
    document = _expect(client.get_json(f"/.well-known/mcp-training-data/{name}.json", auth=False), dict,
                       "the service document")
    training = _expect(document.get("training_data"), dict, "training_data")
    if not training.get("available"):
        return
    service = _import_tools(client, name, outcome)
    outcome.services.append(name)
    cursor = str((source.cursors or {}).get(name) or "")
    while True:
        params = {"service": name, "format": "hf", "limit": str(PAGE_LIMIT)}
        if cursor:
            params["cursor"] = cursor
        page = _expect(client.get_json("/mcp/training-dataset", params=params), dict, "a dataset page")
        items = _expect(page.get("items"), list, "items")
        outcome.pulled += len(items)
        with transaction.atomic():
            _store_page(source, service, items, outcome)
            resume = page.get("resume_cursor")
            if isinstance(resume, str) and resume:
                cursor = resume
                cursors = dict(AggregationSource.objects.get(pk=source.pk).cursors or {})
                cursors[name] = cursor
                AggregationSource.objects.filter(pk=source.pk).update(cursors=cursors)
                source.cursors = cursors
        if not page.get("next_cursor"):
            break


def aggregate_source(*, source: AggregationSource, run_id: str, by: Actor) -> SourceOutcome:
    """Pull everything new from one source; any failure ends in an outcome row, never an exception."""
    outcome = SourceOutcome(source=source.name, status=OutcomeStatus.OK)
    started = timezone.now()
    t0 = time.perf_counter()
    try:
        client = _Client(source)
        index = _expect(client.get_json("/.well-known/mcp-training-data.json", auth=False), dict, "the index")
        entries = _expect(index.get("services"), list, "services")
        for entry in entries:
            name = entry.get("service") if isinstance(entry, dict) else None
            if not isinstance(name, str) or not SLUG.match(name):
                raise SourceFailed(OutcomeStatus.MALFORMED, f"bad service name in the index: {name!r}")
            if entry.get("sharing") is False:
                continue
            _pull_service(client, source, name, outcome)
    except SourceFailed as exc:
        outcome.status, outcome.error = exc.status, str(exc)
    except FtopsError as exc:  # e.g. the named credential is missing
        outcome.status, outcome.error = OutcomeStatus.ERROR, str(exc)
    outcome.seconds = time.perf_counter() - t0
    AggregationOutcome.objects.create(
        run_id=run_id, source=source, status=outcome.status, started_at=started, finished_at=timezone.now(),
        services=outcome.services, pulled=outcome.pulled, created=outcome.created, duplicates=outcome.duplicates,
        invalid=outcome.invalid, tools_imported=outcome.tools_imported, error=outcome.error[:2000], actor=by.label)
    if outcome.status != OutcomeStatus.OK:
        log.warning("aggregation from %s failed (%s): %s", source.name, outcome.status, outcome.error)
        notify(audience="admins", subject=f"Aggregation from {source.name} failed: {outcome.status}",
               text=f"{source.name} ({source.base_url}): {outcome.error}\n"
                    f"Examples stored from it before the failure: {outcome.created}.",
               payload={"kind": "aggregation_failed", "source": source.name, "status": outcome.status,
                        "error": outcome.error[:500], "run_id": run_id})
    return outcome


def aggregate_all(*, by: Actor, sources: list[str] | None = None) -> AggregateReport:
    """Pull from every enabled source (or the named ones). One source failing never stops the others."""
    report = AggregateReport(run_id=uuid.uuid4().hex)
    queryset = AggregationSource.objects.filter(enabled=True).order_by("name")
    if sources:
        queryset = queryset.filter(name__in=sources)
    for source in queryset:
        report.outcomes.append(aggregate_source(source=source, run_id=report.run_id, by=by))
    audit_record(action=AuditAction.DISCOVERY_AGGREGATED, by=by, object_type="aggregation_run",
                 object_id=report.run_id,
                 detail={"pulled": report.pulled, "created": report.created,
                         "sources": {o.source: o.status for o in report.outcomes}})
    return report


def aggregate_for_cycle(*, cycle_id: int, scope: str) -> dict[str, Any]:
    """The aggregate stage of an improvement cycle (``ftops.loop``): pull from every enabled source.

    Partial failure is normal: a failed source is recorded and alerted by ``aggregate_source``
    and the cycle goes on with what landed. ``scope`` (the enterprise or a service) only labels
    the run: a source's services land under their own names and the build stage picks the
    cycle's. Returns a short summary with a one-line ``note`` for the stage.
    """
    if not AggregationSource.objects.filter(enabled=True).exists():
        return {"run_id": "", "sources": 0, "pulled": 0, "created": 0, "services": 0, "failed": {},
                "note": "no aggregation sources configured (manage.py aggregate --add NAME --url URL)"}
    report = aggregate_all(by=Actor.system(f"cycle {cycle_id} ({scope})"))
    failed = {o.source: o.status for o in report.failed}
    note = (f"{report.created} new examples of {report.pulled} pulled from {len(report.outcomes)} source(s), "
            f"{report.services} service(s)")
    if failed:
        note += "; failed: " + ", ".join(f"{name} ({status})" for name, status in sorted(failed.items()))
    return {"run_id": report.run_id, "sources": len(report.outcomes), "pulled": report.pulled,
            "created": report.created, "services": report.services, "failed": failed, "note": note}
