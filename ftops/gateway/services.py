"""Writes for the gateway: store a batch of finished calls as interactions, and per-arm outcomes.

Called by the background writer (``recorder.CallRecorder``), never on the request path.
A record is a plain JSON-able dict (so a batch can be spooled to disk as it is):

    {"kind": "call" | "error", "id": "chatcmpl-…", "api_key_id": 3, "service": "payments",
     "model_version_id": 7, "version": "acme-tiny-v1.2.0", "scope": "enterprise", "arm": "canary",
     "finished_at": 1764851234.5, "latency_ms": 812.0, "fallback": false,
     "payload": {…an ingest payload…} (calls), "error": "timeout" | "upstream_error" (errors)}

Calls go through the same ingest service as ``POST /api/v1/interactions`` (validation, schema
verdicts, PII redaction, review queueing), so a gateway call and a logged call are stored
alike. Ingest is idempotent by id, so a batch replayed from the spool after a partial write
stores nothing twice and its outcomes count only the calls stored for the first time.
Database errors propagate: the writer spools the batch and tries again later.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from ftops.common.errors import Conflict, ValidationFailed
from ftops.common.models import ApiKey
from ftops.gateway.models import LATENCY_BUCKETS_MS, ArmOutcome
from ftops.interactions.models import CallVerdict
from ftops.interactions.services import interactions_ingest

logger = logging.getLogger(__name__)

Record = dict[str, Any]


def _bucket(latency_ms: float) -> int:
    for index, bound in enumerate(LATENCY_BUCKETS_MS):
        if latency_ms <= bound:
            return index
    return len(LATENCY_BUCKETS_MS)


def _ingest_group(payloads: list[dict[str, Any]], api_key: ApiKey | None) -> dict[str, tuple[str, bool]]:
    """{id: (call verdict, replayed)} for the payloads stored; one refused item must not sink the rest.

    Ingest is all-or-nothing per batch; a gateway batch mixes unrelated callers, so a batch it
    refuses (a service deleted meanwhile, a body the validator rejects) is stored item by item
    and only the items it still refuses are dropped, each with a log line.
    """
    try:
        result = interactions_ingest(payloads=payloads, api_key=api_key)
        return {item.id: (item.call_verdict, item.replayed) for item in result.items}
    except (ValidationFailed, Conflict) as exc:
        if len(payloads) == 1:
            logger.warning("gateway call %s not stored: %s %s", payloads[0].get("id"), exc, getattr(exc, "fields", ""))
            return {}
    stored: dict[str, tuple[str, bool]] = {}
    for payload in payloads:
        stored.update(_ingest_group([payload], api_key))
    return stored


def gateway_calls_store(*, records: list[Record]) -> int:
    """Store a batch of gateway records; returns how many calls were stored for the first time."""
    calls = [r for r in records if r.get("kind") == "call"]
    by_key: dict[int | None, list[Record]] = defaultdict(list)
    for record in calls:
        by_key[record.get("api_key_id")].append(record)
    keys = ApiKey.objects.in_bulk([k for k in by_key if k is not None])
    verdicts: dict[str, tuple[str, bool]] = {}
    for key_id, group in by_key.items():
        api_key = keys.get(key_id) if key_id is not None else None
        verdicts.update(_ingest_group([r["payload"] for r in group], api_key))
    fresh = [r for r in calls if r["id"] in verdicts and not verdicts[r["id"]][1]]
    invalid = {r["id"] for r in fresh if verdicts[r["id"]][0] == CallVerdict.INVALID}
    errors = [r for r in records if r.get("kind") == "error"]
    arm_outcomes_record(records=[*fresh, *errors], schema_invalid=invalid)
    return len(fresh)


def arm_outcomes_record(*, records: Iterable[Record], schema_invalid: set[str] | frozenset[str] = frozenset()) -> None:
    """Add records to the per-minute, per-arm counts a canary checker reads (``selectors.arm_outcomes``).

    One row per (version, scope, arm, minute) updated under a row lock: several gateway
    processes add to the same minute without losing counts.
    """
    totals: dict[tuple[int, str, str, datetime], dict[str, Any]] = {}
    for record in records:
        finished = datetime.fromtimestamp(float(record["finished_at"]), tz=UTC).replace(second=0, microsecond=0)
        key = (int(record["model_version_id"]), str(record["scope"]), str(record["arm"]), finished)
        row = totals.setdefault(key, {"calls": 0, "upstream_errors": 0, "timeouts": 0, "fallbacks": 0,
                                      "schema_invalid": 0, "latency_sum_ms": 0.0,
                                      "buckets": [0] * (len(LATENCY_BUCKETS_MS) + 1)})
        if record.get("fallback"):
            row["fallbacks"] += 1
        if record.get("kind") == "error":
            row["upstream_errors"] += 1
            row["timeouts"] += 1 if record.get("error") == "timeout" else 0
            continue
        latency = float(record.get("latency_ms") or 0.0)
        row["calls"] += 1
        row["latency_sum_ms"] += latency
        row["buckets"][_bucket(latency)] += 1
        row["schema_invalid"] += 1 if record["id"] in schema_invalid else 0
    # One order for every writer, so two processes adding to the same rows never deadlock.
    for (version_id, scope, arm, minute), add in sorted(totals.items(), key=lambda kv: (kv[0][0], kv[0][1],
                                                                                        kv[0][2], kv[0][3])):
        with transaction.atomic():
            outcome, _ = ArmOutcome.objects.select_for_update().get_or_create(
                model_version_id=version_id, scope=scope, arm=arm, minute=minute,
                defaults={"latency_buckets": [0] * (len(LATENCY_BUCKETS_MS) + 1)})
            buckets = list(outcome.latency_buckets or []) + [0] * (len(LATENCY_BUCKETS_MS) + 1)
            outcome.calls += add["calls"]
            outcome.upstream_errors += add["upstream_errors"]
            outcome.timeouts += add["timeouts"]
            outcome.fallbacks += add["fallbacks"]
            outcome.schema_invalid += add["schema_invalid"]
            outcome.latency_sum_ms += add["latency_sum_ms"]
            outcome.latency_buckets = [a + b for a, b in zip(buckets, add["buckets"], strict=False)]
            outcome.save()
