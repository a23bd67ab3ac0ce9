"""Reads behind the discovery endpoints: the public ``.well-known`` documents (metadata only),
pages of a service's shared examples and test scenarios, and the published tools."""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Max, QuerySet
from django.utils.dateparse import parse_datetime

from ftops.catalog.models import Service, Tool
from ftops.common.errors import NotFound, ValidationFailed
from ftops.datasets.config import load_config
from ftops.datasets.models import DatasetMembership, DatasetVersion, ExampleStatus, Source, Split, TrainingExample
from ftops.datasets.selectors import record_from_example, schema_maps
from ftops.discovery.models import PublishingSettings
from ftops.interactions.pii import redact_value
from registry.models import CriticalScenario

MCP_VERSION = "2024-11-05"
TRAINING_PATH = "/mcp/training-dataset"
TEST_PATH = "/mcp/test-dataset"
FORMATS = ("openai", "anthropic_messages", "hf")
DEFAULT_LIMIT = 100
MAX_LIMIT = 500


def publishing_for(service: Service) -> PublishingSettings:
    """The stored settings, or unsaved defaults (everything off) for a service nobody configured."""
    found = PublishingSettings.objects.filter(service=service).first()
    return found if found is not None else PublishingSettings(service=service)


def service_or_404(name: str) -> Service:
    service = Service.objects.filter(name=name).first()
    if service is None:
        raise NotFound(f"no service named {name!r}")
    return service


def shared_examples(service: Service) -> QuerySet[TrainingExample]:
    """Active examples of ``service``, and none at all unless it agreed to share them."""
    if not publishing_for(service).share_with_orchestrators:
        return TrainingExample.objects.none()
    return TrainingExample.objects.filter(service=service, status=ExampleStatus.ACTIVE)


def _quality_label(sources: Counter[str]) -> str:
    if not sources:
        return "none"
    human = sources[Source.MANUAL] + sources[Source.CORRECTION]
    if human * 2 >= sum(sources.values()):
        return "human_curated"
    return "production_validated" if sources[Source.PRODUCTION] else "mixed"


def test_example_ids(service: Service) -> tuple[set[int], set[int]]:
    """(all scenario example ids, the critical ones): the latest ready version's test split plus
    every scenario the service marked critical."""
    critical = set(CriticalScenario.objects.filter(service=service.name, example__isnull=False)
                   .values_list("example_id", flat=True))
    version = DatasetVersion.objects.filter(status=DatasetVersion.Status.READY).order_by("-number").first()
    ids = set(critical)
    if version is not None:
        ids |= set(DatasetMembership.objects.filter(version=version, split=Split.TEST, example__service=service)
                   .values_list("example_id", flat=True))
    return ids, critical


def min_accuracy_required(service: Service) -> float:
    criteria = load_config().evaluation.deployment_criteria
    return float(criteria.service_min_accuracy.get(service.name, criteria.min_accuracy_required))


def well_known_document(service: Service, *, base_url: str) -> dict[str, Any]:
    """The seed's document for one service. Counts and names only: no example leaves here."""
    settings_ = publishing_for(service)
    examples = shared_examples(service)
    sources = Counter(examples.values_list("source", flat=True))
    last = examples.aggregate(last=Max("updated_at"))["last"]
    tools_covered = sorted(set(Tool.objects.filter(examples__in=examples).values_list("name", flat=True)))
    shared = settings_.share_with_orchestrators
    test_ids, critical = test_example_ids(service) if shared else (set(), set())
    query = f"?service={service.name}"
    return {
        "service": service.name,
        "version": service.version or "0.0.0",
        "mcp_version": MCP_VERSION,
        "training_data": {
            "available": shared and bool(sources),
            "endpoint": f"{base_url}{TRAINING_PATH}{query}",
            "authentication": "api_key (role ml_orchestrator)",
            "format": "anthropic_messages",
            "formats": list(FORMATS),
            "metadata": {
                "total_examples": sum(sources.values()),
                "tools_covered": tools_covered,
                "last_updated": last.isoformat() if last else None,
                "quality": _quality_label(sources),
                "anonymized": True,  # PII is redacted in every answer of the dataset endpoints
            },
            "consent": {
                "public_model_training": settings_.public_model_training,
                "opt_in": settings_.opt_in_text,
                "restrictions": list(settings_.restrictions),
            },
            "contact": {"team": settings_.contact_team, "documentation": settings_.contact_documentation},
        },
        "test_data": {
            "available": bool(test_ids),
            "endpoint": f"{base_url}{TEST_PATH}{query}",
            "critical_scenarios": len(critical),
            "total_scenarios": len(test_ids),
            "min_accuracy_required": min_accuracy_required(service),
        },
        "schema": f"{base_url}/mcp/schema{query}",
    }


def well_known_index(*, base_url: str) -> dict[str, Any]:
    services = list(Service.objects.order_by("name"))
    return {
        "mcp_version": MCP_VERSION,
        "services": [{"service": s.name, "version": s.version or "0.0.0",
                      "document": f"{base_url}/.well-known/mcp-training-data/{s.name}.json",
                      "sharing": publishing_for(s).share_with_orchestrators} for s in services],
    }


def tools_schema(service: Service) -> dict[str, Any]:
    """The service's tools in MCP's ``tools/list`` shape (``inputSchema``)."""
    tools = Tool.objects.filter(service=service, current_version__isnull=False).select_related("current_version")
    return {
        "service": service.name,
        "version": service.version,
        "description": service.description,
        "tools": [{"name": t.name, "description": t.current_version.description or t.description,
                   "inputSchema": t.current_version.parameters} for t in tools if t.current_version],
    }


# ---------------------------------------------------------------- pages of examples

@dataclass(frozen=True)
class PageRequest:
    fmt: str
    after_id: int
    since: datetime | None
    limit: int


def encode_cursor(example_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{example_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = raw.partition(":")
        if kind != "id":
            raise ValueError(kind)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed("bad cursor", fields={"cursor": ["pass back the next_cursor of an earlier page"]}) \
            from None


def parse_page_request(params: Any, *, default_format: str = "anthropic_messages") -> PageRequest:
    fmt = str(params.get("format") or default_format)
    if fmt not in FORMATS:
        raise ValidationFailed(f"unknown format {fmt!r}", fields={"format": [f"one of {list(FORMATS)}"]})
    since: datetime | None = None
    if params.get("since"):
        since = parse_datetime(str(params["since"]).replace(" ", "+"))
        if since is None:
            raise ValidationFailed("bad since", fields={"since": ["an ISO 8601 date-time, e.g. 2026-01-01T00:00:00Z"]})
    try:
        limit = int(params.get("limit") or DEFAULT_LIMIT)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed("bad limit", fields={"limit": [f"an integer from 1 to {MAX_LIMIT}"]})
    after = decode_cursor(str(params["cursor"])) if params.get("cursor") else 0
    return PageRequest(fmt=fmt, after_id=after, since=since, limit=limit)


def _page(queryset: QuerySet[TrainingExample], page: PageRequest) -> tuple[list[TrainingExample], str | None]:
    """(rows after the cursor, the next page's cursor when there is more)."""
    queryset = queryset.filter(pk__gt=page.after_id)
    if page.since is not None:
        queryset = queryset.filter(updated_at__gte=page.since)
    rows = list(queryset.select_related("service", "tool").order_by("pk")[: page.limit + 1])
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    return rows, encode_cursor(rows[-1].pk) if more and rows else None


def _redacted_native(example: TrainingExample) -> tuple[dict[str, Any], dict[str, int]]:
    native = {"user_query": example.user_query, "messages": example.messages, "tools": example.tools,
              "behavior": example.behavior, "expected": example.expected, "explanation": example.explanation,
              "common_mistakes": example.common_mistakes, "tool": example.tool.name if example.tool else ""}
    redacted, counts = redact_value(native)
    return redacted, dict(counts)


def training_page(service: Service, page: PageRequest) -> dict[str, Any]:
    """One page of shared examples, PII redacted, each in the asked format plus the native
    behaviour (acceptable alternatives included) that another ftops imports."""
    from ftops.discovery.formats import render

    rows, next_cursor = _page(shared_examples(service), page)
    schemas = schema_maps({service.pk})
    items = []
    redactions = 0
    for example in rows:
        native, counts = _redacted_native(example)
        redactions += sum(counts.values())
        record = dataclasses.replace(record_from_example(example, schemas=schemas.get(service.pk, {})),
                                     messages=native["messages"], expected=native["expected"])
        items.append({
            "id": str(example.pk),
            "service": service.name,
            "source": example.source,
            "quality": example.quality,
            "content_hash": example.content_hash,
            "updated_at": example.updated_at.isoformat(),
            "tool_versions": example.tool_versions,
            "example": render(record, page.fmt),
            "native": native,
        })
    return {"service": service.name, "format": page.fmt, "count": len(items), "items": items,
            "next_cursor": next_cursor,
            # Where an incremental puller resumes next time, even from the last page.
            "resume_cursor": encode_cursor(rows[-1].pk) if rows else (encode_cursor(page.after_id)
                                                                      if page.after_id else None),
            "redactions": redactions}


def test_page(service: Service, page: PageRequest) -> dict[str, Any]:
    ids, critical = test_example_ids(service)
    rows, next_cursor = _page(shared_examples(service).filter(pk__in=ids), page)
    scenarios = []
    for example in rows:
        native, _counts = _redacted_native(example)
        calls = native["expected"].get("calls") or native["expected"].get("steps") or []
        first = calls[0] if calls and isinstance(calls[0], dict) else {}
        scenarios.append({
            "id": str(example.pk),
            "priority": "critical" if example.pk in critical else "normal",
            "query": native["user_query"],
            "messages": native["messages"],
            "tools": native["tools"],
            "behavior": native["behavior"],
            "expected_tool": first.get("name", ""),
            # BFCL's possible answers: each parameter lists every acceptable value ("" = may be omitted).
            "expected_params": first.get("arguments", {}),
            "expected": native["expected"],
        })
    return {"service": service.name, "count": len(scenarios), "scenarios": scenarios, "next_cursor": next_cursor,
            "critical_scenarios": len(critical), "total_scenarios": len(ids),
            "min_accuracy_required": min_accuracy_required(service)}
