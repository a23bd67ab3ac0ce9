"""Writes for interactions: ingest (sync and queued), feedback, failure marking.

The ingest path, for one interaction or a batch:
  parse every payload (``validation``) -> resolve services (one query) -> find ids already
  stored (one query) -> check calls against the current schemas -> redact PII -> one bulk
  insert in a transaction: ``bulk_create`` in general and, on PostgreSQL, ``COPY`` with ids
  drawn from the table's sequence first (Django 5.2's UNNEST ``bulk_create`` spends ~4x
  longer adapting JSON arrays than the whole COPY takes; see bench/ingest.py).
All-or-nothing: any invalid item refuses the whole batch with each bad item and field named.
Idempotent: an id stored with the same body is answered from the stored row (``replayed``);
an id stored with a different body is a 409.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.db.models import F, Q
from django.utils import timezone
from rest_framework import status

from ftops.common.errors import Conflict, FtopsError, ValidationFailed
from ftops.common.models import ApiKey
from ftops.interactions import pii
from ftops.interactions.models import BatchStatus, CallVerdict, FailureKind, FeedbackEvent, IngestBatch, Interaction
from ftops.interactions.selectors import existing_by_external_id, services_by_name, tool_schemas_by_service
from ftops.interactions.validation import BAD_UNICODE, Errors, ParsedInteraction, ToolsMemo, parse_payload
from ftops.interactions.verdicts import check_calls

logger = logging.getLogger(__name__)

BATCH_LEASE = timedelta(minutes=10)  # a running batch older than this was lost by its worker
COPY_ON_POSTGRES = True  # bench/ingest.py --bulk-create turns it off to compare


class BatchTooLarge(FtopsError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "batch_too_large"


@dataclass
class IngestItemResult:
    index: int
    id: str
    pk: int
    replayed: bool
    call_verdict: str
    is_failure: bool
    failure_kind: str
    redactions: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        # By hand: dataclasses.asdict deep-copies and costs ~10 ms per 1,000 results.
        return {
            "index": self.index, "id": self.id, "pk": self.pk, "replayed": self.replayed,
            "call_verdict": self.call_verdict, "is_failure": self.is_failure, "failure_kind": self.failure_kind,
            "redactions": self.redactions,
        }  # fmt: skip


@dataclass
class IngestResult:
    items: list[IngestItemResult]
    created: int
    replayed: int

    @property
    def created_pks(self) -> list[int]:
        return [item.pk for item in self.items if not item.replayed]

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "replayed": self.replayed, "results": [i.as_dict() for i in self.items]}


def failure_marking(*, schema_kind: str, success: bool | None, user_feedback: int | None) -> tuple[bool, str]:
    """Whether an interaction goes to review, and why. A schema problem is the most specific."""
    if schema_kind:
        return True, schema_kind
    if success is False:
        return True, FailureKind.UNSUCCESSFUL.value
    if user_feedback is not None and user_feedback <= settings.FTOPS_FAILURE_FEEDBACK_MAX:
        return True, FailureKind.NEGATIVE_FEEDBACK.value
    return False, ""


def _unencodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _redactor() -> pii.Redactor | None:
    if not settings.FTOPS_PII_REDACTION:
        return None
    return pii.redactor(frozenset(settings.FTOPS_PII_TYPES))


# --- preparation (validation, services, verdicts, redaction) ------------------------------------


@dataclass
class _Prepared:
    rows: list[tuple[int, dict[str, Any]]]  # (batch index, Interaction field values), first occurrences
    duplicate_of: dict[int, int]  # batch index -> index of the identical earlier item
    tools_json: dict[int, str] = field(default_factory=dict)  # batch index -> canonical JSON of "tools"


def _field_key(index: int, name: str, single: bool) -> str:
    return name if single else f"interactions[{index}].{name}"


def _refuse(errors: dict[str, list[str]], bad: list[int], total: int, single: bool) -> ValidationFailed:
    if single:
        return ValidationFailed("the interaction is invalid and was not stored; fix the fields listed", fields=errors)
    shown = ", ".join(str(i) for i in bad[:20]) + (" …" if len(bad) > 20 else "")
    return ValidationFailed(
        f"{len(bad)} of {total} interactions are invalid (items {shown}); nothing was stored; fix the fields listed",
        fields=errors,
    )


def _prepare(payloads: list[Any], *, single: bool) -> _Prepared:
    if not isinstance(payloads, list) or not payloads:
        raise ValidationFailed(
            "send one interaction object, a non-empty list, or {\"interactions\": [...]}",
            fields={"interactions": ["give at least one interaction"]},
        )
    limit = settings.FTOPS_INGEST_MAX_BATCH
    if len(payloads) > limit:
        raise BatchTooLarge(
            f"a batch holds at most {limit} interactions (got {len(payloads)}); split it into smaller batches",
            fields={"interactions": [f"at most {limit} items per request"]},
        )

    errors: dict[str, list[str]] = {}
    bad: list[int] = []
    parsed: list[tuple[int, ParsedInteraction]] = []
    memo = ToolsMemo()
    for index, raw in enumerate(payloads):
        item, item_errors = parse_payload(raw, memo)
        if item is None:
            bad.append(index)
            for name, messages in item_errors.items():
                errors[_field_key(index, name, single)] = messages
        else:
            parsed.append((index, item))

    service_ids = services_by_name(item.service for _, item in parsed)
    first_by_id: dict[str, tuple[int, str]] = {}
    duplicate_of: dict[int, int] = {}
    kept: list[tuple[int, ParsedInteraction]] = []
    for index, item in parsed:
        problems: Errors = {}
        if item.service not in service_ids:
            problems["service"] = [
                f"unknown service '{item.service}'; import its tools first "
                "(python manage.py catalog_import FILE)"
            ]
        seen = first_by_id.get(item.external_id)
        if seen is None:
            first_by_id[item.external_id] = (index, item.body_hash)
        elif seen[1] == item.body_hash:
            duplicate_of[index] = seen[0]
        else:
            problems["id"] = [
                f"id '{item.external_id}' is also used by interactions[{seen[0]}] with a different body; "
                "ids must be unique"
            ]
        if problems:
            bad.append(index)
            for name, messages in problems.items():
                errors[_field_key(index, name, single)] = messages
        elif index not in duplicate_of:
            kept.append((index, item))
    if errors:
        raise _refuse(errors, sorted(bad), len(payloads), single)

    schemas = tool_schemas_by_service(service_ids.values())
    redactor = _redactor()
    rows: list[tuple[int, dict[str, Any]]] = []
    tools_json: dict[int, str] = {}
    for index, item in kept:
        tools_json[index] = item.tools_json
        service_id = service_ids[item.service]
        verdict = check_calls(item.tool_calls, schemas[service_id], item.unparsable_calls)
        is_failure, failure_kind = failure_marking(
            schema_kind=verdict.kind, success=item.success, user_feedback=item.user_feedback
        )
        counts: dict[str, int] = {}
        messages, tool_calls, metadata = item.messages, item.tool_calls, item.metadata
        response_text, reason = item.response_text, verdict.reason
        if redactor is not None:
            literals: dict[str, str] = {}
            messages = redactor.value_into(messages, counts)
            tool_calls = redactor.value_into(tool_calls, counts, literals)
            response_text = redactor.text_into(response_text, counts) if response_text else ""
            metadata = redactor.value_into(metadata, counts) if metadata else metadata
            # The reason quotes argument values already counted above; a phone sent as a
            # number ("15552013344 is not of type 'string'") only the literals can find.
            reason = redactor.text_into(reason, {}) if reason else ""
            if reason and literals:
                reason = pii.scrub_literals(reason, literals)
        rows.append(
            (
                index,
                {
                    "external_id": item.external_id,
                    "body_hash": item.body_hash,
                    "service_id": service_id,
                    "timestamp": item.timestamp,
                    "messages": messages,
                    "tools": item.tools,
                    "tool_calls": tool_calls,
                    "response_text": response_text,
                    "task_type": item.task_type,
                    "user_feedback": item.user_feedback,
                    "success": item.success,
                    "confidence": item.confidence,
                    "latency_ms": item.latency_ms,
                    "tokens_used": item.tokens_used,
                    "model_version": item.model_version,
                    "metadata": metadata,
                    "redactions": counts,
                    "call_verdict": verdict.verdict,
                    "verdict_reason": reason,
                    "is_failure": is_failure,
                    "failure_kind": failure_kind,
                },
            )
        )
    return _Prepared(rows=rows, duplicate_of=duplicate_of, tools_json=tools_json)


# --- storing ---------------------------------------------------------------------------------


def _conflicts(prepared: _Prepared, existing: dict[str, dict[str, Any]], single: bool) -> None:
    clashes = {
        index: row["external_id"]
        for index, row in prepared.rows
        if row["external_id"] in existing and existing[row["external_id"]]["body_hash"] != row["body_hash"]
    }
    if not clashes:
        return
    fields = {
        _field_key(index, "id", single): [
            f"interaction '{ext}' was already stored with a different body; send the original body to replay "
            "it, or use a new id"
        ]
        for index, ext in clashes.items()
    }
    names = ", ".join(f"'{ext}'" for ext in list(clashes.values())[:10])
    raise Conflict(
        f"interaction id(s) {names} already exist with a different body; nothing was stored", fields=fields
    )


def _copy_columns() -> list[tuple[str, str, bool]]:
    """(column, attname, is_json) for every concrete column of Interaction."""
    return [
        (str(f.column), f.attname, isinstance(f, models.JSONField)) for f in Interaction._meta.concrete_fields
    ]


def _insert(rows: list[dict[str, Any]], api_key: ApiKey | None, tools_json: list[str | None]) -> list[int]:
    """Insert prepared rows; returns their primary keys in order."""
    if not rows:
        return []
    if connection.vendor == "postgresql" and COPY_ON_POSTGRES:
        return _insert_copy(rows, api_key, tools_json)
    objects = [Interaction(api_key=api_key, **row) for row in rows]
    Interaction.objects.bulk_create(objects, batch_size=1000)
    return [obj.pk for obj in objects]


def _insert_copy(rows: list[dict[str, Any]], api_key: ApiKey | None, tools_json: list[str | None]) -> list[int]:
    table = Interaction._meta.db_table
    columns = _copy_columns()
    qn = connection.ops.quote_name
    statement = f"COPY {qn(table)} ({', '.join(qn(c) for c, _, _ in columns)}) FROM STDIN"
    extra = {"api_key_id": api_key.pk if api_key else None, "created_at": timezone.now()}
    dumps = json.dumps
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                       [table, len(rows)])
        pks = [pk for (pk,) in cursor.fetchall()]
        with connection.wrap_database_errors, cursor.cursor.copy(statement) as copy:
            for pk, row, tools in zip(pks, rows, tools_json, strict=True):
                values = {**row, **extra, "id": pk}
                copy.write_row(
                    [
                        (tools if attname == "tools" and tools is not None else dumps(values[attname]))
                        if is_json
                        else values[attname]
                        for _, attname, is_json in columns
                    ]
                )
    return pks


def _store(prepared: _Prepared, *, api_key: ApiKey | None, single: bool) -> IngestResult:
    for attempt in range(2):
        existing = existing_by_external_id(row["external_id"] for _, row in prepared.rows)
        _conflicts(prepared, existing, single)
        new = [(index, row) for index, row in prepared.rows if row["external_id"] not in existing]
        try:
            with transaction.atomic():
                pks = _insert([row for _, row in new], api_key, [prepared.tools_json.get(i) for i, _ in new])
        except IntegrityError:
            # A concurrent request stored one of these ids between our read and our insert:
            # read again, and the ids now answer as replays or conflicts.
            if attempt == 0:
                continue
            raise
        break

    results: dict[int, IngestItemResult] = {}
    for (index, row), pk in zip(new, pks, strict=True):
        results[index] = IngestItemResult(
            index=index, id=row["external_id"], pk=pk, replayed=False, call_verdict=row["call_verdict"],
            is_failure=row["is_failure"], failure_kind=row["failure_kind"], redactions=row["redactions"],
        )
    for index, row in prepared.rows:
        if index not in results:
            stored = existing[row["external_id"]]
            results[index] = IngestItemResult(
                index=index, id=row["external_id"], pk=stored["pk"], replayed=True,
                call_verdict=stored["call_verdict"], is_failure=stored["is_failure"],
                failure_kind=stored["failure_kind"], redactions=stored["redactions"],
            )
    for index, first in prepared.duplicate_of.items():
        results[index] = IngestItemResult(**{**results[first].as_dict(), "index": index, "replayed": True})
    items = [results[i] for i in sorted(results)]
    created = len(pks)
    return IngestResult(items=items, created=created, replayed=len(items) - created)


def interactions_ingest(
    *, payloads: list[dict[str, Any]], api_key: ApiKey | None = None, single: bool = False
) -> IngestResult:
    """Store one interaction or a batch (all-or-nothing, idempotent by client id).

    ``single`` only changes how field errors are named (``user_feedback`` rather than
    ``interactions[0].user_feedback``) for a request that sent one object.
    Raises ValidationFailed (422), BatchTooLarge (413) or Conflict (409); stores nothing then.
    """
    prepared = _prepare(payloads, single=single)
    return _store(prepared, api_key=api_key, single=single)


# --- queued ingestion -------------------------------------------------------------------------


def _row_to_json(index: int, row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "timestamp": row["timestamp"].isoformat(), "_index": index}


def _row_from_json(data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    row = dict(data)
    index = row.pop("_index")
    row["timestamp"] = datetime.fromisoformat(row["timestamp"])
    return index, row


@transaction.atomic
def interactions_ingest_enqueue(*, payloads: list[dict[str, Any]], api_key: ApiKey | None = None) -> IngestBatch:
    """Validate, check and redact now (so bad input is refused at once and no raw PII is
    stored), then store the batch on the ``ingestion`` queue."""
    prepared = _prepare(payloads, single=False)
    _conflicts(prepared, existing_by_external_id(row["external_id"] for _, row in prepared.rows), False)
    batch = IngestBatch.objects.create(
        rows=[_row_to_json(index, row) for index, row in prepared.rows],
        size=len(payloads),
        api_key=api_key,
        result={"duplicate_of": {str(k): v for k, v in prepared.duplicate_of.items()}},
    )
    from ftops.interactions.tasks import interactions_ingest_batch

    batch_id = batch.pk
    transaction.on_commit(lambda: interactions_ingest_batch.delay(batch_id))
    return batch


def ingest_batch_process(*, batch_id: int) -> IngestBatch | None:
    """Store a queued batch. Claimed by a conditional UPDATE, so a second delivery is a no-op;
    a batch stuck in ``running`` past its lease is claimed again (storing is idempotent)."""
    now = timezone.now()
    claimable = Q(status=BatchStatus.PENDING) | Q(status=BatchStatus.RUNNING, started_at__lt=now - BATCH_LEASE)
    claimed = IngestBatch.objects.filter(claimable, pk=batch_id).update(
        status=BatchStatus.RUNNING, started_at=now, attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    batch = IngestBatch.objects.get(pk=batch_id)
    duplicate_of = {int(k): v for k, v in (batch.result or {}).get("duplicate_of", {}).items()}
    prepared = _Prepared(rows=[_row_from_json(r) for r in batch.rows], duplicate_of=duplicate_of)
    api_key = ApiKey.objects.filter(pk=batch.api_key_id).first() if batch.api_key_id else None
    try:
        result = _store(prepared, api_key=api_key, single=False)
    except FtopsError as exc:
        batch.status, batch.error = BatchStatus.FAILED, {"code": exc.code, "message": exc.message, "fields": exc.fields}
    except Exception:
        # Transient trouble (database gone away): give the batch back for the retry.
        IngestBatch.objects.filter(pk=batch_id).update(status=BatchStatus.PENDING)
        raise
    else:
        batch.status, batch.result = BatchStatus.DONE, {"created": result.created, "replayed": result.replayed}
    batch.rows = []
    batch.finished_at = timezone.now()
    batch.save(update_fields=["status", "error", "result", "rows", "finished_at"])
    return batch


# --- feedback ---------------------------------------------------------------------------------


@transaction.atomic
def interaction_feedback_add(
    *, interaction: Interaction, score: Any, comment: Any = ""
) -> FeedbackEvent:
    """Record late feedback: a FeedbackEvent, the interaction's ``user_feedback``, and its
    failure marking recomputed (a low score sends a good-looking interaction to review)."""
    errors: dict[str, list[str]] = {}
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        errors["score"] = [f"must be an integer from 1 to 5 (got {score!r:.40})"]
    if comment is None:
        comment = ""
    if not isinstance(comment, str):
        errors["comment"] = ["must be a string"]
    elif len(comment) > 5000:
        errors["comment"] = [f"must be at most 5000 characters (got {len(comment)})"]
    elif "\x00" in comment:
        errors["comment"] = ["must not contain NUL (\\u0000) characters; the database cannot store them"]
    elif not comment.isascii() and _unencodable(comment):
        errors["comment"] = [BAD_UNICODE]
    if errors:
        raise ValidationFailed("the feedback is invalid and was not stored; fix the fields listed", fields=errors)
    redactor = _redactor()
    counts: dict[str, int] = {}
    if redactor is not None and comment:
        comment = redactor.text_into(comment, counts)
    locked = Interaction.objects.select_for_update().get(pk=interaction.pk)
    event = FeedbackEvent.objects.create(interaction=locked, score=score, comment=comment)
    schema_kind = locked.failure_kind if locked.call_verdict == CallVerdict.INVALID else ""
    locked.user_feedback = score
    locked.is_failure, locked.failure_kind = failure_marking(
        schema_kind=schema_kind, success=locked.success, user_feedback=score
    )
    if counts:
        locked.redactions = pii.merge_counts(dict(locked.redactions or {}), counts)
    locked.save(update_fields=["user_feedback", "is_failure", "failure_kind", "redactions"])
    interaction.user_feedback, interaction.is_failure = locked.user_feedback, locked.is_failure
    interaction.failure_kind, interaction.redactions = locked.failure_kind, locked.redactions
    return event
