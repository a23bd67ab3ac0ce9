"""Writes of the review workflow: enqueue failures, claim with a lease, submit, reject, skip.

Every state change is one conditional UPDATE that names the state it expects (and, for
decisions, the version the reviewer saw), so two reviewers never hold or decide one item and
a stale form is refused instead of overwriting newer work. Each action leaves a ReviewEvent;
decisions that change training data also leave an audit row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from ftops.catalog.models import Tool
from ftops.common.actors import Actor
from ftops.common.errors import Conflict, NotFound, ValidationFailed
from ftops.common.services import audit_record
from ftops.interactions.models import Interaction
from review.correction import MISTAKE_TEXT, Correction, check_correction
from review.diagnosis import agreement as answers_agreement
from review.models import (
    CLAIMABLE_STATUSES,
    ReviewAction,
    ReviewEvent,
    ReviewItem,
    ReviewStatus,
    ReviewSubmission,
    open_q,
)
from review.schema_form import as_dict

ENQUEUE_BATCH = 2000


class StaleItem(Conflict):
    """The item changed since the reviewer opened it (or someone else holds it now)."""

    def __init__(self, message: str, *, item: ReviewItem) -> None:
        super().__init__(message, fields={"version": [f"the item is now at version {item.version}"]})
        self.item = item


class StaleClaim(Conflict):
    """A claim refused: someone else holds the item, it is decided, or the actor gave its first review."""

    def __init__(self, message: str, *, item: ReviewItem) -> None:
        super().__init__(message)
        self.item = item


@dataclass
class SubmitResult:
    item: ReviewItem
    submission: ReviewSubmission
    example: Any = None  # TrainingExample once the last required review is in
    final: bool = True


@dataclass
class BulkResult:
    done: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    no_fix: list[int] = field(default_factory=list)  # accept: items without a confident suggested fix
    first_of_two: list[int] = field(default_factory=list)  # accept: saved as the first of two reviews


def lease_minutes() -> int:
    return int(getattr(settings, "FTOPS_REVIEW_LEASE_MINUTES", 15))


def double_review_percent() -> int:
    return max(0, min(100, int(getattr(settings, "FTOPS_REVIEW_DOUBLE_REVIEW_PERCENT", 0))))


def chosen_for_double_review(external_id: str, percent: int) -> bool:
    """Deterministic by interaction id, so re-enqueueing never changes the choice."""
    if percent <= 0:
        return False
    bucket = int(hashlib.sha256(external_id.encode()).hexdigest()[:8], 16) % 100
    return bucket < percent


def call_name(call: Any) -> str:
    if not isinstance(call, dict):
        return ""
    if call.get("name"):
        return str(call["name"])
    function = call.get("function")
    return str(function.get("name") or "") if isinstance(function, dict) else ""


def last_user_message(messages: Any) -> str:
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def _event(item_id: int, action: str, actor: Actor, *, now: datetime, seconds: int | None = None,
           detail: dict[str, Any] | None = None) -> ReviewEvent:
    return ReviewEvent(item_id=item_id, action=action, actor=actor.label, user_id=actor.user_id, at=now,
                       seconds_spent=seconds, detail=detail or {})


def _seconds_since(start: datetime | None, now: datetime) -> int | None:
    return max(0, int((now - start).total_seconds())) if start else None


def _get(item_id: int) -> ReviewItem:
    item = ReviewItem.objects.select_related("interaction", "service").filter(pk=item_id).first()
    if item is None:
        raise NotFound(f"review item {item_id} does not exist")
    return item


def _why_not(item: ReviewItem, actor: Actor, now: datetime, *, deciding: bool = False) -> str:
    if item.status in (ReviewStatus.CORRECTED, ReviewStatus.REJECTED):
        who = f" by {item.resolved_by}" if item.resolved_by else ""
        return f"this item was already {item.status}{who}"
    if item.first_reviewer == actor.label and item.status != ReviewStatus.CORRECTED:
        return "you gave the first of two reviews of this item; a different reviewer gives the second"
    if item.status == ReviewStatus.CLAIMED and item.holder != actor.label and item.lease_expires_at \
            and item.lease_expires_at >= now:
        return f"{item.holder} is reviewing this item (lease until {item.lease_expires_at:%H:%M} UTC)"
    if deciding:
        return "this item changed since you opened it"
    return "this item cannot be claimed now"


# --- enqueue -------------------------------------------------------------------------------

_ENQUEUE_COLUMNS = ("pk", "external_id", "service_id", "tool_calls", "failure_kind", "messages", "timestamp")


def _create_items(rows: list[tuple[Any, ...]], percent: int, *, count: bool = True) -> int:
    """Review items for ``rows`` (``_ENQUEUE_COLUMNS`` of failed interactions); how many exist now
    (``count=False``: ``len(rows)``, without the query that counts them).

    ``ignore_conflicts`` on the one-to-one makes a second or concurrent call create nothing more.
    """
    items = [
        ReviewItem(
            interaction_id=pk, service_id=service_id,
            tool_name=call_name(calls[0]) if isinstance(calls, list) and calls else "",
            failure_kind=kind or "", user_query=last_user_message(messages)[:500], occurred_at=ts,
            required_reviews=2 if chosen_for_double_review(external_id, percent) else 1,
        )
        for pk, external_id, service_id, calls, kind, messages, ts in rows
    ]
    if not count:
        ReviewItem.objects.bulk_create(items, ignore_conflicts=True)
        return len(items)
    with transaction.atomic():
        ReviewItem.objects.bulk_create(items, ignore_conflicts=True)
        return ReviewItem.objects.filter(interaction_id__in=[r[0] for r in rows]).count()


def review_items_enqueue_interactions(*, interaction_ids: Iterable[int]) -> int:
    """Queue the failed interactions among ``interaction_ids`` that have no item yet; returns how
    many were found without one (and have one now).

    Called on the ingest transaction's commit (task ``review.tasks.enqueue_interactions``), so a
    failure reaches reviewers at once, with or without a broker. Ids that are not failures (any
    more) or no longer exist are skipped; an id already queued keeps its one item.
    """
    ids = sorted({int(i) for i in interaction_ids})
    percent = double_review_percent()
    queued = 0
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # This runs after every ingest batch that has failures. A crash that loses this
            # commit loses nothing the sweep does not queue again, so it need not wait for
            # the disk flush (which under load costs as much as the rest of the step).
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        for start in range(0, len(ids), ENQUEUE_BATCH):
            chunk = ids[start:start + ENQUEUE_BATCH]
            rows = list(
                Interaction.objects.filter(pk__in=chunk, is_failure=True)
                .filter(~Exists(ReviewItem.objects.filter(interaction_id=OuterRef("pk"))))
                .values_list(*_ENQUEUE_COLUMNS)
            )
            if rows:
                # No count query: the rows were just read without items (a concurrent sweep
                # may have made some of them meanwhile; ignore_conflicts skips those).
                queued += _create_items(rows, percent, count=False)
    return queued


def review_items_enqueue_failures() -> int:
    """Create a review item for every failed interaction that has none; returns how many.

    The safety net behind ``review_items_enqueue_interactions`` (beat): it catches failures whose
    on-commit enqueue was lost (broker down at that moment, a process killed right after commit).
    Idempotent: the one-to-one on the interaction makes a second run (or a concurrent one)
    create nothing more.
    """
    percent = double_review_percent()
    created = 0
    last_pk = 0
    while True:
        rows = list(
            Interaction.objects.filter(is_failure=True, pk__gt=last_pk)
            .filter(~Exists(ReviewItem.objects.filter(interaction_id=OuterRef("pk"))))
            .order_by("pk")
            .values_list(*_ENQUEUE_COLUMNS)
            [:ENQUEUE_BATCH]
        )
        if not rows:
            return created
        last_pk = rows[-1][0]
        created += _create_items(rows, percent)
        if len(rows) < ENQUEUE_BATCH:
            return created


# --- leases --------------------------------------------------------------------------------

def review_item_claim(*, item_id: int, actor: Actor, now: datetime | None = None,
                      record_refusal: bool = True) -> ReviewItem:
    """Take (or renew) the lease on an item. Raises Conflict when someone else holds it or it is done.

    A refused claim leaves a ``claim_refused`` event (who tried, and why not), written after the
    claim's transaction rolled back; ``review_item_claim_next`` passes ``record_refusal=False``
    because losing a race for the next item is routine there, not something a reviewer asked for.
    """
    now = now or timezone.now()
    try:
        return _claim(item_id=item_id, actor=actor, now=now)
    except StaleClaim as exc:
        if record_refusal:
            _event(item_id, ReviewAction.CLAIM_REFUSED, actor, now=now,
                   detail={"reason": exc.message, "status": exc.item.status, "holder": exc.item.holder,
                           "version": exc.item.version}).save()
        raise


def _claim(*, item_id: int, actor: Actor, now: datetime) -> ReviewItem:
    expires = now + timedelta(minutes=lease_minutes())
    with transaction.atomic():
        # Renewing one's own lease keeps the version: the reviewer's open form stays valid.
        renewed = ReviewItem.objects.filter(pk=item_id, status=ReviewStatus.CLAIMED, holder=actor.label).update(
            lease_expires_at=expires, updated_at=now)
        if renewed:
            return _get(item_id)
        before = _get(item_id)
        taken = (
            ReviewItem.objects.filter(pk=item_id).filter(open_q(now)).exclude(first_reviewer=actor.label)
            .update(status=ReviewStatus.CLAIMED, holder=actor.label, claimed_by_id=actor.user_id, claimed_at=now,
                    lease_expires_at=expires, version=F("version") + 1, updated_at=now)
        )
        if not taken:
            current = _get(item_id)  # not ``before``: a racing claim may have landed since
            raise StaleClaim(_why_not(current, actor, now), item=current)
        detail: dict[str, Any] = {"lease_minutes": lease_minutes()}
        if before.status == ReviewStatus.CLAIMED and before.holder:
            detail["took_over_expired_lease_of"] = before.holder
        _event(item_id, ReviewAction.CLAIMED, actor, now=now, detail=detail).save()
    return _get(item_id)


def review_item_claim_next(*, actor: Actor, filters: dict[str, Any] | None = None,
                           after: ReviewItem | None = None, now: datetime | None = None) -> ReviewItem | None:
    """The reviewer's current item if they hold one, else claim the next open item they may take.

    "Next" is in the queue's order (newest first): the first one below ``after`` (the item the
    reviewer just decided on, so they keep working down the list they were reading), or the
    newest one when there is no ``after`` or nothing is left below it.
    """
    from review.selectors import review_queue  # selectors import services' helpers; avoid a cycle

    now = now or timezone.now()
    held = ReviewItem.objects.filter(status=ReviewStatus.CLAIMED, holder=actor.label,
                                     lease_expires_at__gte=now).order_by("-occurred_at", "-id").first()
    if held is not None:
        return held
    wanted = {**(filters or {}), "status": "open"}
    candidates = (
        review_queue(actor=actor, now=now, **wanted).exclude(first_reviewer=actor.label)
        .filter(~Exists(ReviewEvent.objects.filter(item_id=OuterRef("pk"), actor=actor.label,
                                                    action=ReviewAction.SKIPPED)))
    )
    ordered = [candidates]
    if after is not None:
        below = Q(occurred_at__lt=after.occurred_at) | Q(occurred_at=after.occurred_at, id__lt=after.pk)
        ordered = [candidates.filter(below), candidates]
    for group in ordered:
        for candidate in group.values_list("pk", flat=True)[:5]:
            try:
                return review_item_claim(item_id=candidate, actor=actor, now=now, record_refusal=False)
            except Conflict:
                continue  # someone was faster; try the next one
    return None


def review_item_release(*, item_id: int, actor: Actor, now: datetime | None = None) -> ReviewItem:
    now = now or timezone.now()
    with transaction.atomic():
        before = _get(item_id)
        released = ReviewItem.objects.filter(pk=item_id, status=ReviewStatus.CLAIMED, holder=actor.label).update(
            status=ReviewStatus.PENDING, holder="", claimed_by=None, claimed_at=None, lease_expires_at=None,
            version=F("version") + 1, updated_at=now)
        if not released:
            raise Conflict("you do not hold this item")
        _event(item_id, ReviewAction.RELEASED, actor, now=now,
               seconds=_seconds_since(before.claimed_at, now)).save()
    return _get(item_id)


def review_leases_release_expired(*, now: datetime | None = None) -> int:
    """Return items whose lease ran out to the queue (claims already treat them as open).

    The version stays: if nobody else claims the item, its last holder may still submit.
    """
    now = now or timezone.now()
    system = Actor(label="system")
    with transaction.atomic():
        expired = list(ReviewItem.objects.filter(status=ReviewStatus.CLAIMED, lease_expires_at__lt=now)
                       .values_list("pk", "holder"))
        if not expired:
            return 0
        ids = [pk for pk, _ in expired]
        count = ReviewItem.objects.filter(pk__in=ids, status=ReviewStatus.CLAIMED, lease_expires_at__lt=now).update(
            status=ReviewStatus.PENDING, holder="", claimed_by=None, claimed_at=None, lease_expires_at=None,
            updated_at=now)
        ReviewEvent.objects.bulk_create(
            [_event(pk, ReviewAction.EXPIRED, system, now=now, detail={"holder": holder}) for pk, holder in expired])
    return count


# --- decisions -----------------------------------------------------------------------------

def _decidable(item_id: int, actor: Actor, version: int | None) -> Any:
    """The conditional part of every decision: held by the actor or open, at the version seen."""
    qs = ReviewItem.objects.filter(pk=item_id).filter(
        Q(status=ReviewStatus.CLAIMED, holder=actor.label) | Q(status__in=CLAIMABLE_STATUSES)
        | Q(status=ReviewStatus.CLAIMED, lease_expires_at__lt=timezone.now())
    ).exclude(first_reviewer=actor.label)
    return qs.filter(version=version) if version is not None else qs


def tool_schemas(service_id: int) -> dict[str, dict[str, Any]]:
    """Current parameters schema per tool of a service (what corrections are checked against)."""
    tools = Tool.objects.filter(service_id=service_id, current_version__isnull=False).select_related("current_version")
    return {t.name: t.current_version.parameters for t in tools if t.current_version is not None}


def offered_tool_names(tools: Any) -> list[str]:
    names = []
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, dict):
            fn = as_dict(tool.get("function")) or tool
            if fn.get("name"):
                names.append(str(fn["name"]))
    return names


def review_item_submit(
    *, item_id: int, actor: Actor, version: int, correction: Correction, now: datetime | None = None,
    origin: dict[str, Any] | None = None,
) -> SubmitResult:
    """Record a correction. The last required review turns it into a training example
    (source correction) with provenance; a first of two reviews returns the item to the queue.

    ``origin`` says how the correction was made when not by hand (a bulk-accepted suggested
    fix); it goes into the review event and the example's provenance.
    """
    now = now or timezone.now()
    try:
        with transaction.atomic():
            return _submit(item_id=item_id, actor=actor, version=version, correction=correction, now=now,
                           origin=origin)
    except StaleItem as exc:
        _conflict_event(item_id, actor, now=now, seen_version=version, stale=exc, action="submit")
        raise


def _conflict_event(item_id: int, actor: Actor, *, now: datetime, seen_version: int | None, stale: StaleItem,
                    action: str) -> None:
    """The review event for an action refused because the item moved on (written after the rollback)."""
    _event(item_id, ReviewAction.CONFLICT, actor, now=now,
           detail={"seen_version": seen_version, "current_version": stale.item.version, "action": action}).save()


def _stale(item_id: int, actor: Actor, now: datetime) -> StaleItem:
    current = _get(item_id)
    return StaleItem(_why_not(current, actor, now, deciding=True), item=current)


def _submit(*, item_id: int, actor: Actor, version: int, correction: Correction, now: datetime,
            origin: dict[str, Any] | None = None) -> SubmitResult:
    item = _get(item_id)
    if item.version != version:
        raise _stale(item_id, actor, now)
    schemas = tool_schemas(item.service_id)
    errors = check_correction(correction, schemas)
    if errors:
        raise ValidationFailed("the correction is invalid; see 'fields'", fields=errors)
    round_no = item.reviews_done + 1
    final = round_no >= item.required_reviews
    updated = _decidable(item_id, actor, version).update(
        status=ReviewStatus.CORRECTED if final else ReviewStatus.PENDING,
        version=F("version") + 1, holder="", claimed_by=None, claimed_at=None, lease_expires_at=None,
        reviews_done=round_no,
        first_reviewer=item.first_reviewer or ("" if final and round_no == 1 else actor.label),
        resolved_by=actor.label if final else "", resolved_at=now if final else None, updated_at=now,
    )
    if not updated:
        raise _stale(item_id, actor, now)
    submission = ReviewSubmission.objects.create(
        item_id=item_id, round=round_no, reviewer=actor.label, user_id=actor.user_id, behavior=correction.behavior,
        tool=correction.primary_tool,
        calls=correction.calls if correction.behavior in ("call", "sequence") else [],
        expected=correction.expected(), explanation=correction.explanation,
        common_mistakes=correction.common_mistakes,
    )
    seconds = _seconds_since(item.claimed_at, now) if item.holder == actor.label else None
    example = None
    agreement_info = None
    if final:
        reviewers = [actor.label]
        quality = "high"
        if round_no > 1:
            first = ReviewSubmission.objects.get(item_id=item_id, round=1)
            agreement_info = answers_agreement(submission_answer(first), correction.answer())
            reviewers = [first.reviewer, actor.label]
            # Reviewers who disagree still made an example, but not one we vouch for as high quality.
            quality = "high" if agreement_info["full"] else "medium"
        example = _example_from_correction(item=item, correction=correction, quality=quality, reviewers=reviewers,
                                           agreement_info=agreement_info, now=now, origin=origin)
        ReviewItem.objects.filter(pk=item_id).update(example=example, agreement=agreement_info)
    _event(item_id, ReviewAction.CORRECTED if final else ReviewAction.SUBMITTED, actor, now=now, seconds=seconds,
           detail={"behavior": correction.behavior, "round": round_no,
                   "example": getattr(example, "pk", None), "agreement_full": (agreement_info or {}).get("full"),
                   **(origin or {})}
           ).save()
    if final:
        audit_record(action="review.corrected", user=actor.user, api_key=actor.api_key, object_type="review_item",
                     object_id=item_id, detail={"example": getattr(example, "pk", None),
                                                "behavior": correction.behavior, "round": round_no})
    return SubmitResult(item=_get(item_id), submission=submission, example=example, final=final)


def submission_answer(submission: ReviewSubmission) -> dict[str, Any]:
    """A stored submission in the shape ``Correction.answer()`` has, for agreement."""
    calls = submission.calls if submission.behavior in ("call", "sequence") else (
        [{"name": submission.tool, "arguments": {}}] if submission.tool else [])
    return {"behavior": submission.behavior, "calls": calls,
            "required_fields": submission.expected.get("required_fields") or []}


def _example_from_correction(
    *, item: ReviewItem, correction: Correction, quality: str, reviewers: list[str],
    agreement_info: dict[str, Any] | None, now: datetime, origin: dict[str, Any] | None = None,
) -> Any:
    from ftops.datasets.services import example_create

    interaction = item.interaction
    catalog = set(tool_schemas(item.service_id))
    offered = [n for n in offered_tool_names(interaction.tools) if n in catalog]
    for name in [c["name"] for c in correction.calls] + ([correction.tool] if correction.tool else []):
        if name and name not in offered:
            offered.append(name)
    provenance = {
        "review_item": item.pk,
        "interaction": interaction.external_id,
        "reviewers": reviewers,
        "reviewed_at": now.isoformat(),
        "failure_kind": item.failure_kind,
        "model_calls": interaction.tool_calls,
        "model_version": interaction.model_version,
    }
    if agreement_info is not None:
        provenance["double_review"] = agreement_info
    if origin:
        provenance.update(origin)
    messages = interaction.messages if isinstance(interaction.messages, list) and interaction.messages else None
    return example_create(
        service=item.service,
        tool=correction.primary_tool or None,
        user_query=interaction.user_query if messages else item.user_query,
        messages=messages,
        tools=offered or None,
        behavior=correction.behavior,
        expected=correction.expected(),
        source="correction",
        quality=quality,
        explanation=correction.explanation,
        common_mistakes=correction.common_mistakes,
        interaction=interaction,
        provenance=provenance,
    )


def review_item_reject(*, item_id: int, actor: Actor, version: int | None, reason: str = "",
                       now: datetime | None = None) -> ReviewItem:
    """Not a real failure, or not worth training on: closes the item without an example."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            before = _get(item_id)
            updated = _decidable(item_id, actor, version).update(
                status=ReviewStatus.REJECTED, version=F("version") + 1, holder="", claimed_by=None, claimed_at=None,
                lease_expires_at=None, resolved_by=actor.label, resolved_at=now, updated_at=now)
            if not updated:
                raise _stale(item_id, actor, now)
            seconds = _seconds_since(before.claimed_at, now) if before.holder == actor.label else None
            _event(item_id, ReviewAction.REJECTED, actor, now=now, seconds=seconds,
                   detail={"reason": reason.strip()}).save()
            audit_record(action="review.rejected", user=actor.user, api_key=actor.api_key, object_type="review_item",
                         object_id=item_id, detail={"reason": reason.strip()})
    except StaleItem as exc:
        _conflict_event(item_id, actor, now=now, seen_version=version, stale=exc, action="reject")
        raise
    return _get(item_id)


def review_item_skip(*, item_id: int, actor: Actor, version: int | None, now: datetime | None = None) -> ReviewItem:
    """Pass the item on: it goes back to the queue for others (not for whoever skipped it)."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            before = _get(item_id)
            updated = _decidable(item_id, actor, version).update(
                status=ReviewStatus.SKIPPED, version=F("version") + 1, holder="", claimed_by=None, claimed_at=None,
                lease_expires_at=None, updated_at=now)
            if not updated:
                raise _stale(item_id, actor, now)
            seconds = _seconds_since(before.claimed_at, now) if before.holder == actor.label else None
            _event(item_id, ReviewAction.SKIPPED, actor, now=now, seconds=seconds).save()
    except StaleItem as exc:
        _conflict_event(item_id, actor, now=now, seen_version=version, stale=exc, action="skip")
        raise
    return _get(item_id)


def review_items_bulk(*, item_ids: Iterable[int], actor: Actor, action: str, reason: str = "",
                      now: datetime | None = None) -> BulkResult:
    """Reject or skip several items at once; items held by someone else or already done are refused."""
    if action not in ("reject", "skip"):
        raise ValidationFailed("unknown bulk action", fields={"action": ["choose reject or skip"]})
    wanted = sorted({int(i) for i in item_ids})
    if not wanted:
        raise ValidationFailed("nothing selected", fields={"items": ["select at least one item first"]})
    now = now or timezone.now()
    status = ReviewStatus.REJECTED if action == "reject" else ReviewStatus.SKIPPED
    event_action = ReviewAction.REJECTED if action == "reject" else ReviewAction.SKIPPED
    condition = Q(status=ReviewStatus.CLAIMED, holder=actor.label) | open_q(now)
    result = BulkResult()
    with transaction.atomic():
        eligible = list(
            ReviewItem.objects.select_for_update().filter(pk__in=wanted).filter(condition)
            .exclude(first_reviewer=actor.label).order_by("pk").values_list("pk", flat=True)
        )
        changes: dict[str, Any] = {"status": status, "version": F("version") + 1, "holder": "", "claimed_by": None,
                                   "claimed_at": None, "lease_expires_at": None, "updated_at": now}
        if action == "reject":
            changes.update(resolved_by=actor.label, resolved_at=now)
        ReviewItem.objects.filter(pk__in=eligible).filter(condition).update(**changes)
        ReviewEvent.objects.bulk_create([
            _event(pk, event_action, actor, now=now, detail={"bulk": True, "reason": reason.strip()})
            for pk in eligible
        ])
        result.done = eligible
        result.refused = [pk for pk in wanted if pk not in set(eligible)]
        if action == "reject" and eligible:
            audit_record(action="review.bulk_rejected", user=actor.user, api_key=actor.api_key,
                         object_type="review_item", object_id=",".join(map(str, eligible))[:120],
                         detail={"items": eligible, "reason": reason.strip(), "refused": result.refused})
    return result


def review_items_accept_suggested(*, item_ids: Iterable[int], actor: Actor, now: datetime | None = None) -> BulkResult:
    """Submit the suggested fix (``review.diagnosis.suggest_fix``) of each item that has a confident one.

    Each item goes through ``review_item_submit`` on its own, in its own transaction: the same
    checks, review events, audit row and high-quality training example as a manual submit, and
    one refused item never undoes the others. Items held by someone else or already decided are
    refused; items without a confident fix are left for a human (``no_fix``).
    """
    from review.selectors import suggested_fixes  # selectors import services' helpers; avoid a cycle

    wanted = sorted({int(i) for i in item_ids})
    if not wanted:
        raise ValidationFailed("nothing selected", fields={"items": ["select at least one item first"]})
    now = now or timezone.now()
    condition = Q(status=ReviewStatus.CLAIMED, holder=actor.label) | open_q(now)
    items = list(ReviewItem.objects.filter(pk__in=wanted).filter(condition).exclude(first_reviewer=actor.label)
                 .order_by("pk"))
    fixes = suggested_fixes(items)
    result = BulkResult()
    decidable = {it.pk for it in items}
    result.refused = [pk for pk in wanted if pk not in decidable]
    for it in items:
        fix = fixes.get(it.pk)
        if fix is None:
            result.no_fix.append(it.pk)
            continue
        correction = Correction(behavior="call", calls=fix.calls, explanation=fix.explanation,
                                common_mistakes=[MISTAKE_TEXT[m] for m in fix.mistakes if m in MISTAKE_TEXT])
        try:
            submitted = review_item_submit(item_id=it.pk, actor=actor, version=it.version, correction=correction,
                                           now=now, origin={"bulk": True, "suggested_fix": fix.changes})
        except (StaleItem, ValidationFailed):
            result.refused.append(it.pk)  # changed meanwhile (a conflict event says so) or no longer valid
            continue
        result.done.append(it.pk)
        if not submitted.final:
            result.first_of_two.append(it.pk)
    result.refused.sort()
    return result
