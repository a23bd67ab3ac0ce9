"""Forms of the review pages: queue filters, bulk actions, and the schema-driven correction form.

The correction form is not a ``django.forms.Form``: its fields come from the chosen tools'
JSON Schemas (``review.schema_form``) and change as the reviewer picks tools, adds calls or
switches behaviour. It reads a ``QueryDict`` (or ``DictData``), re-renders everything it was
given, and yields a ``Correction`` once valid.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from django import forms

from review.correction import BEHAVIOR_LABELS, BEHAVIORS, MISTAKE_TAGS, MISTAKE_TEXT, Correction, check_correction
from review.models import ReviewStatus
from review.schema_form import (
    DictData,
    Field,
    FormData,
    as_dict,
    attach_errors,
    build_fields,
    find_field,
    parse_fields,
    validate_arguments,
)

MAX_CALLS = 8
# The tool filter's value for "calls that name no tool" (stored as an empty name, which as a
# filter value would mean "all tools").
NO_TOOL = "__none__"
STATUS_FILTERS = [
    ("open", "Open (to review)"),
    ("mine", "Claimed by me"),
    ("claimed", "Claimed"),
    (ReviewStatus.CORRECTED.value, "Corrected"),
    (ReviewStatus.REJECTED.value, "Rejected"),
    (ReviewStatus.SKIPPED.value, "Skipped"),
    ("all", "All"),
]


class QueueFilterForm(forms.Form):
    status = forms.ChoiceField(choices=STATUS_FILTERS, required=False)
    service = forms.CharField(required=False, max_length=100)
    tool = forms.CharField(required=False, max_length=200)
    kind = forms.CharField(required=False, max_length=32, label="Failure kind")
    q = forms.CharField(required=False, max_length=200, label="Search")
    page = forms.IntegerField(required=False, min_value=1)

    def filters(self) -> dict[str, Any]:
        data = self.cleaned_data if self.is_valid() else {}
        return {
            "status": data.get("status") or "open",
            "service": data.get("service") or "",
            "tool": data.get("tool") or "",
            "kind": data.get("kind") or "",
            "q": (data.get("q") or "").strip(),
        }


class RejectForm(forms.Form):
    version = forms.IntegerField(min_value=1)
    reason = forms.CharField(required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


class SkipForm(forms.Form):
    version = forms.IntegerField(min_value=1)


class BulkForm(forms.Form):
    action = forms.ChoiceField(choices=[("reject", "Reject selected"), ("skip", "Skip selected"),
                                        ("accept", "Accept the suggested fix of selected")],
                               error_messages={"required": "choose what to do with the selected items"})
    items = forms.TypedMultipleChoiceField(coerce=int, choices=[], error_messages={
        "required": "select at least one item first"})
    reason = forms.CharField(required=False, max_length=500)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Ids are checked against the database by the service; here they only have to be numbers.
        raw = self.data.getlist("items") if hasattr(self.data, "getlist") else []
        items_field: Any = self.fields["items"]
        items_field.choices = [(v, v) for v in raw if str(v).isdigit()]


@dataclass
class ToolInfo:
    name: str
    description: str
    schema: dict[str, Any]
    offered: bool = True


def _properties(tools: list[ToolInfo]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for tool in tools:
        for name, prop in (as_dict(tool.schema.get("properties")) if isinstance(tool.schema, dict) else {}).items():
            out.append((str(name), prop if isinstance(prop, dict) else {}))
    return out


def mistake_applies(slug: str, tools: list[ToolInfo], service_tools: int) -> bool:
    """Whether a common mistake can happen with ``tools`` (an inventory tool has no amount in cents)."""
    props = _properties(tools)
    if slug == "dollars_for_cents":
        return any("cent" in name.lower() or "cent" in str(p.get("description") or "").lower() for name, p in props)
    if slug == "user_word_not_enum":
        return any("enum" in p for _name, p in props)
    if slug == "name_not_id":
        return any(re.search(r"(_id|email)$", name) for name, _p in props)
    if slug in ("wrong_tool", "missing_step"):
        return service_tools > 1
    if slug in ("missing_required", "should_ask"):
        return any(isinstance(t.schema, dict) and t.schema.get("required") for t in tools)
    if slug in ("wrong_parameter_name", "wrong_type"):
        return bool(props)
    return True


@dataclass
class CallForm:
    index: int
    tool: str
    fields: list[Field]
    error: str = ""

    @property
    def prefix(self) -> str:
        return f"calls-{self.index}-"

    @property
    def tool_field(self) -> str:
        return f"calls-{self.index}-tool"


@dataclass
class CorrectionForm:
    tools: dict[str, ToolInfo]
    behavior: str = "call"
    calls: list[CallForm] = field(default_factory=list)
    question: str = ""
    reason: str = ""
    required_fields: list[str] = field(default_factory=list)
    explanation: str = ""
    mistakes: list[str] = field(default_factory=list)
    mistakes_other: str = ""
    version: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # form-level fields: behavior, question …
    non_field_errors: list[str] = field(default_factory=list)
    correction: Correction | None = None
    submitted: bool = False  # the summary banner only shows after a submit attempt

    behavior_choices = [(b, BEHAVIOR_LABELS[b]) for b in BEHAVIORS]

    @property
    def mistake_choices(self) -> list[tuple[str, str]]:
        """The common mistakes that can happen with this service's tools: those of the tools in
        the form's calls (all the service's tools before one is picked); ticked ones always stay."""
        chosen = [self.tools[c.tool] for c in self.calls if c.tool in self.tools] or list(self.tools.values())
        return [(slug, text) for slug, text in MISTAKE_TAGS
                if slug in self.mistakes or mistake_applies(slug, chosen, len(self.tools))]

    # --- construction ------------------------------------------------------------------

    @classmethod
    def initial(
        cls,
        *,
        tools: dict[str, ToolInfo],
        calls: list[dict[str, Any]],
        behavior: str = "call",
        version: int,
        mistakes: list[str] | None = None,
        explanation: str = "",
    ) -> CorrectionForm:
        """The form as first shown: the model's calls (or the expected ones, or a suggested fix) as a
        starting point."""
        form = cls(tools=tools, behavior=behavior if behavior in BEHAVIORS else "call", version=version,
                   mistakes=[m for m in mistakes or [] if m in MISTAKE_TEXT], explanation=explanation)
        usable = [c for c in calls if isinstance(c, dict)] or [{"name": next(iter(tools), ""), "arguments": {}}]
        for index, call in enumerate(usable[:MAX_CALLS]):
            name = str(call.get("name") or "")
            info = tools.get(name)
            arguments = call.get("arguments") if isinstance(call.get("arguments"), dict) else {}
            form.calls.append(CallForm(
                index=index, tool=name,
                fields=build_fields(info.schema if info else None, prefix=f"calls-{index}-arg-", initial=arguments),
                error="" if info else (f"'{name}' is not a tool of this service; pick one" if name else ""),
            ))
        # Show what is wrong with the starting values right away, field by field.
        unknown = {c.index: c.error for c in form.calls}
        form.is_valid()
        form.errors.clear()
        form.non_field_errors.clear()
        for call_form in form.calls:
            call_form.error = call_form.error or unknown[call_form.index]
        return form

    @classmethod
    def from_data(cls, *, tools: dict[str, ToolInfo], data: FormData, action: str = "") -> CorrectionForm:
        """Rebuild the form from a submission, after an optional structural ``action``
        (``add_call``, ``remove:N``, ``refresh``)."""
        if action.startswith("remove:") and action[7:].isdigit():
            data = _drop_call(data, int(action[7:]))
        try:
            count = max(1, min(MAX_CALLS, int(data.get("calls-count") or 1)))
        except ValueError:
            count = 1
        if action == "add_call" and count < MAX_CALLS:
            count += 1
        behavior = str(data.get("behavior") or "call")
        try:
            version = int(data.get("version") or 0)
        except ValueError:
            version = 0
        form = cls(
            tools=tools,
            behavior=behavior,
            question=str(data.get("question") or ""),
            reason=str(data.get("reason") or ""),
            required_fields=[str(v) for v in data.getlist("required_fields")],
            explanation=str(data.get("explanation") or ""),
            mistakes=[str(v) for v in data.getlist("mistakes") if str(v) in MISTAKE_TEXT],
            mistakes_other=str(data.get("mistakes_other") or ""),
            version=version,
        )
        for index in range(count):
            name = str(data.get(f"calls-{index}-tool") or "")
            info = tools.get(name)
            form.calls.append(CallForm(
                index=index, tool=name,
                fields=build_fields(info.schema if info else None, prefix=f"calls-{index}-arg-", data=data),
            ))
        return form

    # --- reading -----------------------------------------------------------------------

    @property
    def shows_calls(self) -> bool:
        return self.behavior in ("call", "sequence")

    @property
    def primary_tool(self) -> str:
        return self.calls[0].tool if self.calls else ""

    @property
    def detail_choices(self) -> list[str]:
        """ask_for_details: the primary tool's required parameters (the ones worth asking for)."""
        info = self.tools.get(self.primary_tool)
        return [str(p) for p in (info.schema.get("required") or [])] if info else []

    @property
    def tool_choices(self) -> list[ToolInfo]:
        return sorted(self.tools.values(), key=lambda t: (not t.offered, t.name))

    def field(self, name: str) -> Field | None:
        for call in self.calls:
            found = find_field(call.fields, name)
            if found is not None:
                return found
        return None

    def is_valid(self) -> bool:
        """Parse and check everything; put each error on its field. Sets ``self.correction``."""
        self.errors.clear()
        self.non_field_errors.clear()
        self.correction = None
        if self.behavior not in BEHAVIORS:
            self.errors["behavior"] = "choose what the assistant should have done"
            return False
        calls: list[dict[str, Any]] = []
        field_errors = False
        if self.shows_calls:
            for call in self.calls:
                info = self.tools.get(call.tool)
                if info is None:
                    call.error = "choose a tool" if not call.tool else f"'{call.tool}' is not a tool of this service"
                    field_errors = True
                    continue
                arguments, coercion = parse_fields(call.fields, allow_prev_refs=self.behavior == "sequence")
                problems = validate_arguments(info.schema, arguments, allow_prev_refs=self.behavior == "sequence")
                # Fields that could not be read already say why; their "is required" would only add noise.
                problems = [p for p in problems if not _covered(p[0], call.fields, coercion)]
                leftover = attach_errors(call.fields, problems)
                if leftover:
                    call.error = "; ".join(leftover)
                field_errors = field_errors or bool(coercion) or bool(problems)
                calls.append({"name": call.tool, "arguments": arguments})
        correction = Correction(
            behavior=self.behavior,
            calls=calls,
            tool=self.primary_tool if self.behavior != "abstain" else "",
            question=self.question.strip(),
            reason=self.reason.strip(),
            required_fields=self.required_fields if self.behavior == "ask_for_details" else [],
            explanation=self.explanation.strip(),
            common_mistakes=self.common_mistakes(),
        )
        schemas = {name: info.schema for name, info in self.tools.items()}
        for key, messages in check_correction(correction, schemas).items():
            if key.startswith("calls.") and ".arguments" in key:
                continue  # already on the argument fields
            if key.startswith("calls.") and key.endswith(".name"):
                continue  # already on the call
            target = {"calls": "calls", "tool": "calls"}.get(key, key)
            if target == "calls":
                self.non_field_errors.extend(messages)
            else:
                self.errors[target] = "; ".join(messages)
        if field_errors or self.errors or self.non_field_errors:
            return False
        self.correction = correction
        return True

    def common_mistakes(self) -> list[str]:
        texts = [MISTAKE_TEXT[slug] for slug in self.mistakes]
        extra = [t.strip() for t in re.split(r"[\n;]+", self.mistakes_other) if t.strip()]
        return texts + [t for t in extra if t not in texts]

    @property
    def error_links(self) -> list[tuple[str, str, str]]:
        """(element id, label, message) for each field with an error, in form order: the error
        summary links to each one, and the first gets the focus."""
        out: list[tuple[str, str, str]] = []
        if self.errors.get("behavior"):
            out.append(("behavior-legend", "Behaviour", self.errors["behavior"]))
        for call in self.calls:
            if call.error:
                out.append((f"calls-{call.index}-tool", f"Call {call.index + 1}: tool", call.error))
            for top in call.fields:
                for f in top.walk():
                    if f.error:
                        out.append((f.html_id, f"Call {call.index + 1}: {f.label}", f.error))
        for key, element, label in (("required_fields", "required-fields-legend", "Missing fields"),
                                    ("question", "f-question", "Question"), ("reason", "f-reason", "Reason"),
                                    ("tool", "calls-0-tool", "Tool")):
            if self.errors.get(key):
                out.append((element, label, self.errors[key]))
        return out

    @property
    def error_count(self) -> int:
        count = len(self.errors) + len(self.non_field_errors)
        for call in self.calls:
            count += int(bool(call.error)) + sum(1 for top in call.fields for f in top.walk() if f.error)
        return count


def _covered(path: tuple[str | int, ...], fields: list[Field], coercion: dict[str, str]) -> bool:
    for top in fields:
        for f in top.walk():
            if f.name in coercion and tuple(str(p) for p in path[: len(f.path)]) == f.path:
                return True
    return False


def _drop_call(data: FormData, index: int) -> DictData:
    """A copy of the submitted data without call ``index``; later calls move up one place."""
    items: dict[str, Any] = {}
    keys = list(data.keys()) if hasattr(data, "keys") else []
    pattern = re.compile(r"^calls-(\d+)-(.*)$")
    for key in keys:
        values = data.getlist(key)
        match = pattern.match(key)
        if match is None:
            items[key] = values
            continue
        n = int(match.group(1))
        if n == index:
            continue
        items[f"calls-{n - 1 if n > index else n}-{match.group(2)}"] = values
    try:
        count = int(data.get("calls-count") or 1)
    except ValueError:
        count = 1
    items["calls-count"] = [str(max(1, count - 1))]
    return DictData(items)


def correction_from_api(payload: dict[str, Any]) -> Correction:
    """The API's JSON body as a ``Correction`` (shape checked by the serializer)."""
    mistakes = [MISTAKE_TEXT.get(m, m) for m in payload.get("common_mistakes") or []]
    calls = [{"name": c.get("name", ""), "arguments": c.get("arguments", {})} for c in payload.get("calls") or []]
    behavior = payload.get("behavior", "call")
    tool = payload.get("tool") or (calls[0]["name"] if calls else "")
    return Correction(
        behavior=behavior,
        calls=calls,
        tool=tool if behavior != "abstain" else "",
        question=payload.get("question", ""),
        reason=payload.get("reason", ""),
        required_fields=list(payload.get("required_fields") or []),
        explanation=payload.get("explanation", ""),
        common_mistakes=mistakes,
    )


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
