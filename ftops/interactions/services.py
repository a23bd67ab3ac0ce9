"""Writes for interactions: ingest (sync and queued), feedback, failure marking.

The ingest path, for one interaction or a batch:
  parse every payload (``validation``) -> resolve services (one query) -> find ids already
  stored (one query) -> check calls against the current schemas -> redact PII -> one bulk
  insert in a transaction: ``bulk_create`` in general and, on PostgreSQL, ``COPY`` with ids
  drawn from the table's sequence first (Django 5.2's UNNEST ``bulk_create`` spends ~4x
  longer adapting JSON arrays than the whole COPY takes; see bench/ingest.py).
All-or-nothing: any invalid item refuses the whole batch with each bad item and field named.
Idempotent: an id stored with the same body is answered from the stored row (``replayed``);
an id stored with a different body is a 409. Ids are unique per idempotency scope (the
sending API key, see ``models.idempotency_scope``), so another key's ids neither clash nor leak.
Concurrent batches insert in one order (sorted by id), so two batches sharing ids wait for
each other instead of deadlocking; what still fails for contention (a deadlock with other
work, a serialization failure, repeated unique-key races) is retried a few times and then
answered 409/503 with Retry-After, never a 500.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import orjson
from celery import current_app
from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, models, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError
from rest_framework import status

from ftops.common.errors import Conflict, FtopsError, Unavailable, ValidationFailed
from ftops.common.jobs import (
    JobHeartbeat,
    JobStatus,
    ReapResult,
    error_dict,
    job_claim,
    job_fail,
    job_finish,
    job_lease_remaining,
    job_mark_enqueued,
    job_release,
    jobs_reap,
    worker_identity,
)
from ftops.common.models import ApiKey
from ftops.interactions import pii
from ftops.interactions.models import (
    CallVerdict,
    FailureKind,
    FeedbackEvent,
    IngestBatch,
    Interaction,
    idempotency_scope,
)
from ftops.interactions.selectors import existing_by_external_id, services_by_name, tool_schemas_by_service
from ftops.interactions.validation import BAD_UNICODE, Errors, ParsedInteraction, ToolsMemo, parse_payload
from ftops.interactions.verdicts import check_calls

logger = logging.getLogger(__name__)

COPY_ON_POSTGRES = True  # bench/ingest.py --bulk-create turns it off to compare
# Tries of the insert under contention (unique-key races, deadlocks, serialization failures).
STORE_ATTEMPTS = 5
# PostgreSQL SQLSTATEs that mean "the same transaction may succeed if run again".
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001", "55P03"})  # deadlock, serialization, lock not available
# The review app sits above this one: failures reach its queue through this task, sent by name.
REVIEW_ENQUEUE_TASK = "review.tasks.enqueue_interactions"


class BatchTooLarge(FtopsError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "batch_too_large"


class IngestContended(Conflict):
    """Other requests kept storing the same ids (or locking them) through every retry."""

    code = "ingest_contended"
    retry_after = 1


class IngestBusy(Unavailable):
    """The database kept aborting the insert (deadlock or serialization failure) through every retry."""

    code = "ingest_busy"
    retry_after = 2


class BrokerUnavailable(Unavailable):
    code = "broker_unavailable"


class LeaseHeld(Exception):
    """A batch is running under another worker's live lease; come back in ``remaining_s``."""

    def __init__(self, batch_id: int, remaining_s: float) -> None:
        super().__init__(f"batch {batch_id} is leased for another {remaining_s:.0f}s")
        self.batch_id = batch_id
        self.remaining_s = remaining_s


class _LeaseLost(Exception):
    """Raised inside the store transaction to roll it back when the batch left this worker."""


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
    # batch index -> {JSON column: its JSON text}, where preparing already wrote it ("tools", and
    # the columns redaction found nothing in), so the PostgreSQL COPY does not serialise again.
    json_text: dict[int, dict[str, str]] = field(default_factory=dict)


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # a value orjson cannot write (a Python caller's odd type, a huge integer)
        return json.dumps(value)


def _redact_value(value: Any, redactor: pii.Redactor, counts: dict[str, int],
                  literals: dict[str, str] | None = None) -> tuple[Any, str | None]:
    """(``value`` redacted, its JSON text when already known).

    One serialisation serves twice: the pre-check that skips the walk when no PII can be in the
    text (most values), and the COPY, which then writes that text as it is."""
    try:
        text = orjson.dumps(value)
    except TypeError:
        return redactor.value_into(value, counts, literals), None
    if not pii.may_hold_pii(text):
        return value, text.decode()
    return redactor.value_into(value, counts, literals), None


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
    json_text: dict[int, dict[str, str]] = {}
    for index, item in kept:
        texts = json_text[index] = {"tools": item.tools_json.decode()}
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
            messages, text = _redact_value(messages, redactor, counts)
            if text is not None:
                texts["messages"] = text
            tool_calls, text = _redact_value(tool_calls, redactor, counts, literals)
            if text is not None:
                texts["tool_calls"] = text
            if metadata:
                metadata, text = _redact_value(metadata, redactor, counts)
                if text is not None:
                    texts["metadata"] = text
            response_text = redactor.text_into(response_text, counts) if response_text else ""
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
    return _Prepared(rows=rows, duplicate_of=duplicate_of, json_text=json_text)


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


def _insert(
    rows: list[dict[str, Any]], api_key: ApiKey | None, json_text: list[dict[str, str]], scope: str
) -> list[int]:
    """Insert prepared rows; returns their primary keys in order."""
    if not rows:
        return []
    if connection.vendor == "postgresql" and COPY_ON_POSTGRES:
        return _insert_copy(rows, api_key, json_text, scope)
    objects = [Interaction(api_key=api_key, scope=scope, **row) for row in rows]
    Interaction.objects.bulk_create(objects, batch_size=1000)
    return [obj.pk for obj in objects]


def _insert_copy(
    rows: list[dict[str, Any]], api_key: ApiKey | None, json_text: list[dict[str, str]], scope: str
) -> list[int]:
    table = Interaction._meta.db_table
    columns = _copy_columns()
    qn = connection.ops.quote_name
    statement = f"COPY {qn(table)} ({', '.join(qn(c) for c, _, _ in columns)}) FROM STDIN"
    extra = {"api_key_id": api_key.pk if api_key else None, "created_at": timezone.now(), "scope": scope}
    # Per column, once per batch: where each value comes from.
    plan = [(attname, is_json, attname in extra) for _, attname, is_json in columns]
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                       [table, len(rows)])
        pks = [pk for (pk,) in cursor.fetchall()]
        with connection.wrap_database_errors, cursor.cursor.copy(statement) as copy:
            write_row = copy.write_row
            for pk, row, texts in zip(pks, rows, json_text, strict=True):
                values = []
                for attname, is_json, fixed in plan:
                    if attname == "id":
                        values.append(pk)
                    elif fixed:
                        values.append(extra[attname])
                    elif is_json:
                        text = texts.get(attname)
                        values.append(text if text is not None else _json_text(row[attname]))
                    else:
                        values.append(row[attname])
                write_row(values)
    return pks


def _queue_for_review(interaction_ids: list[int]) -> None:
    """Hand freshly stored failures to the review queue; runs on the storing transaction's commit.

    ``signature(...).delay()`` rather than ``send_task``: it honours ``task_always_eager``, so
    the embedded mode (no broker, no beat) queues them in-process as well. The rows are already
    committed when this runs, so nothing here may fail the request: a lost enqueue (broker down,
    a database hiccup in the eager run) is logged, and the periodic sweep
    (``review.tasks.enqueue_failures``) queues those failures later.
    """
    try:
        if REVIEW_ENQUEUE_TASK not in current_app.tasks:
            # A web process imports no tasks module of the apps above this one; without the task
            # registered, ``delay`` falls back to ``send_task``, which ignores eager mode and
            # looks for a broker the embedded mode does not have. Celery's autodiscovery, once.
            current_app.loader.import_default_modules()
        current_app.signature(REVIEW_ENQUEUE_TASK, kwargs={"interaction_ids": interaction_ids}).delay()
    except Exception:
        logger.exception("could not queue %s failed interaction(s) for review; the periodic sweep will",
                         len(interaction_ids))


def _retryable(exc: OperationalError) -> bool:
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return True
    return connection.vendor == "sqlite" and "locked" in str(exc)


def _backoff(attempt: int) -> None:
    # Jittered, so two clients that collided do not collide again in step.
    time.sleep(random.uniform(0.02, 0.08) * (2**attempt))


def _store(prepared: _Prepared, *, api_key: ApiKey | None, single: bool, scope: str) -> IngestResult:
    for attempt in range(STORE_ATTEMPTS):
        last = attempt == STORE_ATTEMPTS - 1
        existing = existing_by_external_id((row["external_id"] for _, row in prepared.rows), scope=scope)
        _conflicts(prepared, existing, single)
        # Sorted by id: every batch takes the unique-index entries in one global order, so two
        # batches sharing ids wait for each other rather than deadlock (each holding an id the
        # other needs).
        new = sorted(
            ((index, row) for index, row in prepared.rows if row["external_id"] not in existing),
            key=lambda pair: pair[1]["external_id"],
        )
        try:
            with transaction.atomic():
                pks = _insert([row for _, row in new], api_key, [prepared.json_text.get(i, {}) for i, _ in new],
                              scope)
                failed = [pk for (_, row), pk in zip(new, pks, strict=True) if row["is_failure"]]
                if failed:
                    # Registered inside the insert's savepoint: a rolled-back try discards it,
                    # and an outer transaction (a queued batch) delays it to the real commit.
                    transaction.on_commit(partial(_queue_for_review, failed))
        except IntegrityError as exc:
            # A concurrent request stored one of these ids between our read and our insert:
            # read again, and the ids now answer as replays or conflicts.
            if not last:
                continue
            raise IngestContended(
                "other requests kept storing the same interaction ids; nothing was stored; retry the request",
            ) from exc
        except OperationalError as exc:
            if not _retryable(exc):
                raise
            logger.info("ingest: %s on attempt %s; retrying", exc.__cause__.__class__.__name__, attempt + 1)
            if not last:
                _backoff(attempt)
                continue
            raise IngestBusy(
                f"the database kept aborting the insert ({exc.__cause__.__class__.__name__}); nothing was "
                "stored; retry the request",
            ) from exc
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
    return _store(prepared, api_key=api_key, single=single, scope=idempotency_scope(api_key))


# --- queued ingestion -------------------------------------------------------------------------


def _row_to_json(index: int, row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "timestamp": row["timestamp"].isoformat(), "_index": index}


def _row_from_json(data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    row = dict(data)
    index = row.pop("_index")
    row["timestamp"] = datetime.fromisoformat(row["timestamp"])
    return index, row


def _content_hash(prepared: _Prepared, size: int) -> str:
    """What makes two requests the same batch: their ids and bodies, in order, and the size."""
    digest = hashlib.sha256(str(size).encode())
    for index, row in prepared.rows:
        digest.update(f"\n{index}\t{row['external_id']}\t{row['body_hash']}".encode())
    for index, first in sorted(prepared.duplicate_of.items()):
        digest.update(f"\n{index}={first}".encode())
    return digest.hexdigest()


@dataclass
class EnqueueOutcome:
    batch: IngestBatch
    created: bool  # False: a retry that found the first batch with this key
    publish_error: str = ""  # set when the task could not be handed to the broker


def _embedded() -> bool:
    """No broker: tasks run in-process (the app's setting, which tests may switch at run time)."""
    from ftops.interactions.tasks import interactions_ingest_batch

    return bool(interactions_ingest_batch.app.conf.task_always_eager)


# What a publish raises when the broker cannot be reached (kombu wraps most of them).
BROKER_ERRORS: tuple[type[BaseException], ...] = (KombuOperationalError, OSError, TimeoutError)


def _publish_batch(batch_id: int) -> None:
    """Hand the batch's task to the broker; raises when the broker is unreachable."""
    from ftops.interactions.tasks import interactions_ingest_batch

    # retry=False: fail fast so the request can answer 503 (the row is already durable and the
    # sender publishes it later) rather than hang on a dead broker.
    interactions_ingest_batch.apply_async(args=[batch_id], retry=False)


def interactions_ingest_enqueue(
    *, payloads: list[dict[str, Any]], api_key: ApiKey | None = None, batch_key: str = ""
) -> EnqueueOutcome:
    """Queue a batch through the outbox: commit the batch row, then publish its task.

    Validate, check and redact now (bad input is refused at once and no raw PII is stored),
    commit the row, and publish after the commit. When publishing fails the row stays pending
    with no ``enqueued_at``; the periodic sender (``ingest_batches_reap``) publishes it once
    the broker is back, and the caller answers 503 so the client retries with the same key.
    The same ``batch_key`` (default: a hash of the ids and bodies) finds the first batch
    again instead of queueing a second one; the same key with other content is a 409.
    """
    prepared = _prepare(payloads, single=False)
    scope = idempotency_scope(api_key)
    content_hash = _content_hash(prepared, len(payloads))
    key = batch_key or f"content:{content_hash}"
    if _embedded():
        # Embedded mode has no beat: reap before each new batch, so a batch left running by a
        # process that died is finished by the next one that queues work.
        ingest_batches_reap()
    outcome: dict[str, str] = {}

    def publish(batch_id: int) -> None:
        try:
            _publish_batch(batch_id)
        except BROKER_ERRORS as exc:  # broker down or unreachable: the sender publishes it later
            logger.warning("ingest batch %s stays pending: publishing failed (%s)", batch_id, exc)
            outcome["error"] = f"{type(exc).__name__}: {exc}"
        else:
            job_mark_enqueued(IngestBatch, pk=batch_id)

    with transaction.atomic():
        batch = _batch_with_key(scope, key, content_hash)
        created = batch is None
        if batch is None:
            _conflicts(prepared, existing_by_external_id((row["external_id"] for _, row in prepared.rows),
                                                         scope=scope), False)
            try:
                with transaction.atomic():
                    batch = IngestBatch.objects.create(
                        rows=[_row_to_json(index, row) for index, row in prepared.rows],
                        size=len(payloads), api_key=api_key, scope=scope, batch_key=key,
                        content_hash=content_hash,
                        result={"duplicate_of": {str(k): v for k, v in prepared.duplicate_of.items()}},
                    )
            except IntegrityError:
                # The same key raced in from a concurrent retry: answer with that batch.
                batch = _batch_with_key(scope, key, content_hash)
                if batch is None:
                    raise
                created = False
        if batch.status == JobStatus.PENDING and batch.enqueued_at is None:
            # Published after the commit, so a worker never looks for a row it cannot see yet;
            # a retry of a batch whose first publish failed tries again here.
            batch_id = batch.pk
            transaction.on_commit(lambda: publish(batch_id))
    batch.refresh_from_db()
    return EnqueueOutcome(batch=batch, created=created, publish_error=outcome.get("error", ""))


def _batch_with_key(scope: str, key: str, content_hash: str) -> IngestBatch | None:
    batch = IngestBatch.objects.filter(scope=scope, batch_key=key).first()
    if batch is not None and batch.content_hash != content_hash:
        raise Conflict(
            f"batch key '{key}' was already used for a different batch; reuse a key only to retry the same batch",
            fields={"Idempotency-Key": ["already used with other content"]},
        )
    return batch


def ingest_batch_process(*, batch_id: int, owner: str | None = None) -> IngestBatch | None:
    """Store a queued batch under a lease (``ftops.common.jobs``).

    None when there is nothing to do (finished, or gone). Raises ``LeaseHeld`` when another
    worker's lease is live: the task comes back when it ends instead of being dropped, since
    the holder may be dead. The interactions and the batch's end are committed in one
    transaction, and only while this worker still holds the lease: a worker killed half-way
    commits nothing, and the next one (after the lease expires) stores the whole batch.
    """
    owner = owner or worker_identity()
    batch = job_claim(IngestBatch, pk=batch_id, owner=owner)
    if batch is None:
        remaining = job_lease_remaining(IngestBatch, pk=batch_id)
        if remaining is not None:
            raise LeaseHeld(batch_id, remaining)
        return None
    duplicate_of = {int(k): v for k, v in (batch.result or {}).get("duplicate_of", {}).items()}
    prepared = _Prepared(rows=[_row_from_json(r) for r in batch.rows], duplicate_of=duplicate_of)
    api_key = ApiKey.objects.filter(pk=batch.api_key_id).first() if batch.api_key_id else None
    counts = {"done": batch.size, "total": batch.size}
    try:
        with JobHeartbeat(IngestBatch, pk=batch_id, owner=owner), transaction.atomic():
            result = _store(prepared, api_key=api_key, single=False, scope=batch.scope)
            finished = job_finish(
                IngestBatch, pk=batch_id, owner=owner, fields={
                    "result": {"created": result.created, "replayed": result.replayed}, "rows": [],
                    "progress_counts": counts,
                },
            )
            if not finished:
                raise _LeaseLost
    except _LeaseLost:
        logger.warning("ingest batch %s: the lease went to another worker; rolled back", batch_id)
    except (IngestContended, IngestBusy) as exc:
        # Contention, not bad data: give it back; the task's retry claims it again.
        job_release(IngestBatch, pk=batch_id, owner=owner, error=error_dict(exc.code, exc.message))
        raise
    except FtopsError as exc:
        job_fail(IngestBatch, pk=batch_id, owner=owner, error=error_dict(exc.code, exc.message, exc.fields),
                 fields={"rows": []})
    except Exception as exc:
        # Transient trouble (database gone away): give the batch back for the retry.
        job_release(IngestBatch, pk=batch_id, owner=owner, error=error_dict("transient", str(exc) or repr(exc)))
        raise
    return IngestBatch.objects.get(pk=batch_id)


def ingest_batches_reap(*, now: datetime | None = None) -> ReapResult:
    """Re-queue batches whose worker died, then publish every pending batch not yet handed over
    (the outbox sender). On beat every FTOPS_INGEST_REAP_EVERY_S; in the embedded mode before
    each new batch."""
    return jobs_reap(
        IngestBatch, publish=_publish_batch, now=now, resend_after_s=settings.FTOPS_INGEST_RESEND_AFTER_S
    )


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
    if locked.is_failure:
        # A low score can turn a logged interaction into a failure: it reaches review at once too
        # (the enqueue skips an interaction that already has its item).
        pk = locked.pk
        transaction.on_commit(lambda: _queue_for_review([pk]))
    interaction.user_feedback, interaction.is_failure = locked.user_feedback, locked.is_failure
    interaction.failure_kind, interaction.redactions = locked.failure_kind, locked.redactions
    return event
