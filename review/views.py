"""Review pages: queue, item with the correction form, decisions, statistics.

Function views: role check, validate, one service, render. With htmx the correction form
and single fields come back as partials; without JavaScript every form is a plain POST.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ftops.common.actors import Actor, actor_for
from ftops.common.auth import request_roles
from ftops.common.errors import Conflict, FtopsError, NotFound, ValidationFailed
from ftops.common.models import Role
from ftops.common.views import paginate
from ftops.interactions.models import FailureKind
from review import selectors, services
from review.access import reviewer_required
from review.forms import BulkForm, CorrectionForm, QueueFilterForm, RejectForm, SkipForm
from review.models import ReviewItem
from review.schema_form import Field

PAGE_SIZE = 50
HISTORY_PAGE_SIZE = 20
STATS_PAGE_SIZE = 50


class KnownCountPaginator(Paginator):
    """A paginator that takes the total from the queue summary instead of another COUNT(*)."""

    def __init__(self, *args: Any, known_count: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._known_count = known_count

    @cached_property
    def count(self) -> int:
        return self._known_count if self._known_count is not None else super().count
FILTER_KEYS = ("status", "service", "tool", "kind", "q")


def _filters(request: HttpRequest) -> dict[str, Any]:
    return QueueFilterForm(request.GET).filters()


def _filter_query(filters: dict[str, Any]) -> str:
    kept = {k: v for k, v in filters.items() if v and not (k == "status" and v == "open")}
    return urlencode(kept)


def _item_url(item_id: int, filters: dict[str, Any] | None = None) -> str:
    url = reverse("review:item", args=[item_id])
    query = _filter_query(filters or {})
    return f"{url}?{query}" if query else url


def optional_url(name: str) -> str:
    """The URL of another app's page, or "" while that page does not exist yet."""
    try:
        return reverse(name)
    except NoReverseMatch:
        return ""


def _get_item_or_404(item_id: int) -> ReviewItem:
    from django.http import Http404

    try:
        return selectors.review_item_get(item_id=item_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc


@require_GET
@reviewer_required
def queue(request: HttpRequest) -> HttpResponse:
    actor = actor_for(request)
    filter_form = QueueFilterForm(request.GET)
    filters = filter_form.filters()
    items = selectors.review_queue(actor=actor, **filters)
    summary = selectors.queue_summary(filters=filters, actor=actor)
    page = KnownCountPaginator(items, PAGE_SIZE, known_count=summary.total).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    fixes = selectors.suggested_fixes(rows)
    for row in rows:
        row.suggested = fixes.get(row.pk)  # type: ignore[attr-defined]
    page.object_list = rows
    context = {
        "nav_section": "review",
        "filter_form": filter_form,
        "filters": filters,
        "filter_query": _filter_query(filters),
        "page": page,
        "counts": summary.counts,
        "facets": summary.facets,
        "kind_labels": dict(FailureKind.choices),
        "status_choices": filter_form.fields["status"].choices,  # type: ignore[attr-defined]
        "tab_query": _filter_query({**filters, "status": ""}),
        "fixable": len(fixes),
        "actor": actor,
        "now": timezone.now(),
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "review/queue.html#queue-results", context)
    return render(request, "review/queue.html", context)


@require_POST
@reviewer_required
def claim_next(request: HttpRequest) -> HttpResponse:
    actor = actor_for(request)
    filters = _filters(request)
    item = services.review_item_claim_next(actor=actor, filters={k: v for k, v in filters.items() if k != "status"})
    if item is None:
        messages.info(request, "Nothing left to review under these filters.")
        query = _filter_query(filters)
        return redirect(reverse("review:queue") + (f"?{query}" if query else ""))
    return HttpResponseRedirect(_item_url(item.pk, filters))


@require_POST
@reviewer_required
def bulk(request: HttpRequest) -> HttpResponse:
    actor = actor_for(request)
    form = BulkForm(request.POST)
    back = reverse("review:queue") + (f"?{request.POST['back']}" if request.POST.get("back") else "")
    if not form.is_valid():
        for field_name, errors in form.errors.items():
            messages.error(request, f"{'Items' if field_name == 'items' else field_name}: "
                                    + " ".join(str(e) for e in errors))
        return redirect(back)
    action = form.cleaned_data["action"]
    item_ids = form.cleaned_data["items"]
    if action == "reject" and request.POST.get("confirmed") != str(len(item_ids)):
        # Rejecting closes items for good: ask first, with the count. review.js asks in a dialog
        # and sends the count along; without JavaScript this page asks instead.
        return render(request, "review/bulk_confirm.html", {
            "nav_section": "review", "item_ids": item_ids, "count": len(item_ids),
            "reason": form.cleaned_data["reason"], "back": request.POST.get("back") or "", "back_url": back,
        })
    try:
        if action == "accept":
            result = services.review_items_accept_suggested(item_ids=form.cleaned_data["items"], actor=actor)
        else:
            result = services.review_items_bulk(item_ids=form.cleaned_data["items"], actor=actor, action=action,
                                                reason=form.cleaned_data["reason"])
    except ValidationFailed as exc:
        messages.error(request, exc.message)
        return redirect(back)
    if action == "accept":
        text = f"Accepted the suggested fix of {len(result.done)} item(s)."
        if result.first_of_two:
            text += f" {len(result.first_of_two)} of them wait for a second reviewer."
        if result.no_fix:
            text += f" {len(result.no_fix)} had no confident suggested fix (review them by hand): " + ", ".join(
                f"#{pk}" for pk in result.no_fix) + "."
    else:
        text = f"{'Rejected' if action == 'reject' else 'Skipped'} {len(result.done)} item(s)."
    if result.refused:
        text += f" {len(result.refused)} not changed (held by someone else or already decided): " + ", ".join(
            f"#{pk}" for pk in result.refused)
    messages.success(request, text)
    return redirect(back)


def _item_context(request: HttpRequest, item: ReviewItem, actor: Actor, form: CorrectionForm | None,
                  **extra: Any) -> dict[str, Any]:
    filters = _filters(request)
    view = selectors.item_view(item=item, actor=actor, filters=filters)
    if form is None and item.held_by(actor.label):
        form = _initial_form(request, view)
    return {
        "nav_section": "review",
        "view": view,
        "item": item,
        "form": form,
        "history": paginate(request, selectors.item_events(item=item), HISTORY_PAGE_SIZE, param="history"),
        "answers_visible": selectors.answers_visible(item=item, actor=actor, is_admin=_is_admin(request)),
        "holds": item.held_by(actor.label),
        "can_claim": item.is_open() and item.first_reviewer != actor.label,
        "actor": actor,
        "filters": filters,
        "filter_query": _filter_query(filters),
        "kind_labels": dict(FailureKind.choices),
        "examples_url": optional_url("datasets:examples"),
        "demo_expectation": _demo_expectation(view),
        "starts_from_suggestion": bool(form is not None and view.suggested is not None
                                       and request.GET.get("prefill", "") in ("", "suggested")),
        **extra,
    }


def _is_admin(request: HttpRequest) -> bool:
    return Role.ADMIN in request_roles(request)


# Failure kinds that name a mistake of the correction form's list (pre-ticked when detected).
KIND_MISTAKES = {"unknown_tool": "wrong_tool", "missing_required": "missing_required", "type_error": "wrong_type",
                 "unknown_parameter": "wrong_parameter_name"}
STATUS_MISTAKES = {"renamed": "wrong_parameter_name", "missing": "missing_required"}


def detected_mistakes(view: selectors.ItemView) -> list[str]:
    """The form's mistake tags that the diagnosis or the failure kind already shows."""
    found = set()
    if view.item.failure_kind in KIND_MISTAKES:
        found.add(KIND_MISTAKES[view.item.failure_kind])
    for call in view.diagnosis.calls:
        if not call.known_tool:
            found.add("wrong_tool")
        for arg in call.arguments:
            if arg.status in STATUS_MISTAKES:
                found.add(STATUS_MISTAKES[arg.status])
            elif arg.status == "invalid" and arg.message.startswith("must be one of"):
                found.add("user_word_not_enum")
    behavior = view.expected_behavior if _demo_expectation(view) else ""
    if view.model_calls and behavior in ("clarify", "ask_for_details"):
        found.add("should_ask")
    elif view.model_calls and behavior == "abstain":
        found.add("should_abstain")
    if view.suggested is not None:
        found.update(view.suggested.mistakes)
        if "wrong_type" in found and "dollars_for_cents" in found:
            found.discard("wrong_type")  # the dollars were the wrong type; one mistake, named precisely
    return sorted(found)


def _demo_expectation(view: selectors.ItemView) -> bool:
    """The simulated expected answer is sample-data scaffolding: shown for the demo enterprise only."""
    return bool(view.expected_calls or view.expected_behavior) and str(view.item.service.source).startswith("sample:")


def _initial_form(request: HttpRequest, view: selectors.ItemView) -> CorrectionForm:
    """The form's starting point: the confident suggested fix when there is one (unless the
    reviewer asked for the model's answer), else the model's calls; detected mistakes ticked."""
    prefill = request.GET.get("prefill", "")
    mistakes = detected_mistakes(view)
    if view.suggested is not None and prefill in ("", "suggested"):
        return CorrectionForm.initial(tools=view.tools, calls=view.suggested.calls, version=view.item.version,
                                      mistakes=mistakes, explanation=view.suggested.explanation)
    use_expected = prefill == "expected" and _demo_expectation(view)
    calls = view.model_calls
    behavior = "call"
    if use_expected:
        behavior = view.expected_behavior or "call"
        calls = view.expected_calls or (
            [{"name": view.expected_tool, "arguments": {}}] if view.expected_tool else view.model_calls)
    return CorrectionForm.initial(tools=view.tools, calls=calls, behavior=behavior, version=view.item.version,
                                  mistakes=mistakes)


@require_GET
@reviewer_required
def by_interaction(request: HttpRequest, interaction_id: int) -> HttpResponse:
    """Where an interaction's page links: its review item (the interactions app sits below review
    and cannot look the item up itself)."""
    from django.http import Http404

    try:
        item_id = selectors.review_item_id_for_interaction(interaction_id=interaction_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    return redirect(reverse("review:item", args=[item_id]))


@require_http_methods(["GET", "POST"])
@reviewer_required
def item_detail(request: HttpRequest, item_id: int) -> HttpResponse:
    actor = actor_for(request)
    item = _get_item_or_404(item_id)
    if request.method == "GET":
        return render(request, "review/item.html", _item_context(request, item, actor, None))

    tools = selectors.service_tools(service=item.service, offered=item.interaction.tools)
    action = str(request.POST.get("action") or "submit")
    form = CorrectionForm.from_data(tools=tools, data=request.POST, action=action)
    if action != "submit":
        # Structural change (tool picked, call added or removed, behaviour switched): show it, save nothing.
        return _render_form(request, item, actor, form)
    form.submitted = True
    if not form.is_valid() or form.correction is None:
        return _render_form(request, item, actor, form, status=422)
    try:
        result = services.review_item_submit(item_id=item.pk, actor=actor, version=form.version,
                                             correction=form.correction)
    except services.StaleItem as exc:
        current = exc.item
        # Nothing the reviewer typed is dropped; if they may still act, the next submit is deliberate.
        if current.held_by(actor.label) or (current.is_open() and current.first_reviewer != actor.label):
            form.version = current.version
        return _render_form(request, current, actor, form, status=409, conflict=exc.message)
    except ValidationFailed as exc:
        form.non_field_errors.extend(_flatten(exc.fields) or [exc.message])
        return _render_form(request, item, actor, form, status=422)
    if result.final:
        text = f"Saved. Training example #{result.example.pk} created from review #{item.pk}."
    else:
        text = f"Saved your review of #{item.pk}; a second reviewer will give the other review."
    messages.success(request, text)
    return _after_decision(request, actor, item)


def _flatten(fields: dict[str, Any]) -> list[str]:
    out = []
    for key, value in (fields or {}).items():
        for message in value if isinstance(value, list) else [value]:
            out.append(f"{key}: {message}")
    return out


def _render_form(request: HttpRequest, item: ReviewItem, actor: Actor, form: CorrectionForm, *,
                 status: int = 200, conflict: str = "") -> HttpResponse:
    context = _item_context(request, item, actor, form, conflict=conflict)
    if request.htmx:  # type: ignore[attr-defined]
        # The whole review column comes back (lease, form, decisions, history can all have changed);
        # item.html's htmx-config swaps 409/422 answers in: they carry the form to show again.
        return render(request, "review/item.html#review-work", context, status=status)
    return render(request, "review/item.html", context, status=status)


def _after_decision(request: HttpRequest, actor: Actor, decided: ReviewItem) -> HttpResponse:
    filters = _filters(request)
    if request.POST.get("then") == "queue":
        target = reverse("review:queue")
    else:
        # The item page carries the list's filters in its query string; the next item is the
        # one below the decided item in that list, not the newest under the filters.
        item = services.review_item_claim_next(actor=actor, after=decided,
                                               filters={k: v for k, v in filters.items() if k != "status"})
        target = _item_url(item.pk, filters) if item else reverse("review:queue")
    if request.htmx:  # type: ignore[attr-defined]
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target
        return response
    return HttpResponseRedirect(target)


@require_POST
@reviewer_required
def validate_field(request: HttpRequest, item_id: int) -> HttpResponse:
    """Live validation: the one field named in ``field``, re-rendered with its error (htmx)."""
    item = _get_item_or_404(item_id)
    tools = selectors.service_tools(service=item.service, offered=item.interaction.tools)
    form = CorrectionForm.from_data(tools=tools, data=request.POST)
    form.is_valid()
    name = str(request.POST.get("field") or "")
    target: Field | None = form.field(name)
    if target is None:
        return HttpResponse(f"unknown field {name!r}", status=400, content_type="text/plain")
    return render(request, "review/_field.html", {"f": target, "item": item})


@require_POST
@reviewer_required
def claim(request: HttpRequest, item_id: int) -> HttpResponse:
    actor = actor_for(request)
    filters = _filters(request)
    try:
        services.review_item_claim(item_id=item_id, actor=actor)
    except NotFound as exc:
        from django.http import Http404

        raise Http404(exc.message) from exc
    except Conflict as exc:
        messages.error(request, f"Could not claim #{item_id}: {exc.message}.")
        return HttpResponseRedirect(_item_url(item_id, filters))
    return HttpResponseRedirect(_item_url(item_id, filters))


@require_POST
@reviewer_required
def release(request: HttpRequest, item_id: int) -> HttpResponse:
    actor = actor_for(request)
    try:
        services.review_item_release(item_id=item_id, actor=actor)
        messages.info(request, f"Released #{item_id} back to the queue.")
    except FtopsError as exc:
        messages.error(request, exc.message)
    return HttpResponseRedirect(_item_url(item_id, _filters(request)))


@require_POST
@reviewer_required
def reject(request: HttpRequest, item_id: int) -> HttpResponse:
    actor = actor_for(request)
    form = RejectForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The reject form is missing the item's version; reload the page.")
        return HttpResponseRedirect(_item_url(item_id, _filters(request)))
    try:
        decided = services.review_item_reject(item_id=item_id, actor=actor, version=form.cleaned_data["version"],
                                              reason=form.cleaned_data["reason"])
    except FtopsError as exc:
        messages.error(request, f"Not rejected: {exc.message}.")
        return HttpResponseRedirect(_item_url(item_id, _filters(request)))
    messages.success(request, f"Rejected #{item_id}.")
    return _after_decision(request, actor, decided)


@require_POST
@reviewer_required
def skip(request: HttpRequest, item_id: int) -> HttpResponse:
    actor = actor_for(request)
    form = SkipForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The skip form is missing the item's version; reload the page.")
        return HttpResponseRedirect(_item_url(item_id, _filters(request)))
    try:
        decided = services.review_item_skip(item_id=item_id, actor=actor, version=form.cleaned_data["version"])
    except FtopsError as exc:
        messages.error(request, f"Not skipped: {exc.message}.")
        return HttpResponseRedirect(_item_url(item_id, _filters(request)))
    messages.info(request, f"Skipped #{item_id}; it stays in the queue for others.")
    return _after_decision(request, actor, decided)


@require_GET
@reviewer_required
def stats(request: HttpRequest) -> HttpResponse:
    try:
        days = int(request.GET.get("days") or 30)
    except ValueError:
        days = 30
    days = days if days in (1, 7, 30, 90, 0) else 30
    all_rows = selectors.reviewer_stats(days=days or None)
    page = paginate(request, all_rows, STATS_PAGE_SIZE)
    rows = list(page.object_list)
    chart = {
        "type": "bar",
        "data": {
            "labels": [r.actor for r in rows],
            "datasets": [
                {"label": "corrected", "data": [r.corrected + r.first_reviews for r in rows]},
                {"label": "rejected", "data": [r.rejected for r in rows]},
                {"label": "skipped", "data": [r.skipped for r in rows]},
            ],
        },
        "options": {"scales": {"x": {"stacked": True}, "y": {"stacked": True, "beginAtZero": True}}},
    }
    return render(request, "review/stats.html", {
        "nav_section": "review", "rows": rows, "page": page, "days": days, "chart": chart,
        "day_choices": [(1, "24 hours"), (7, "7 days"), (30, "30 days"), (90, "90 days"), (0, "all time")],
    })
