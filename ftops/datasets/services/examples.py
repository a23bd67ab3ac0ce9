"""Writes for training examples and dataset versions.

Every example write validates the expected behaviour against the current JSON Schema of
the tools it names (``ftops.datasets.validation``) and stores a content hash of what was
asked and what should happen.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from ftops.catalog.models import Service, Tool, ToolSchemaVersion
from ftops.common.errors import ValidationFailed
from ftops.common.services import audit_record
from ftops.datasets.models import Behavior, ExampleStatus, Quality, Source, TrainingExample
from ftops.datasets.selectors import current_schemas, example_schemas
from ftops.datasets.validation import Errors, content_hash, validate_expected, validate_messages

EDITABLE_FIELDS = ("user_query", "messages", "tools", "behavior", "expected", "explanation", "common_mistakes",
                   "quality", "status", "tool")


def _resolve_service(service: Service | str) -> Service:
    if isinstance(service, Service):
        return service
    found = Service.objects.filter(name=str(service)).first()
    if found is None:
        raise ValidationFailed(f"unknown service {service!r}", fields={"service": [f"no service named {service!r}"]})
    return found


def _called_tools(behavior: str, expected: Any) -> list[str]:
    if not isinstance(expected, dict):
        return []
    key = {"call": "calls", "sequence": "steps"}.get(behavior)
    items = expected.get(key, []) if key else []
    names = [i.get("name") for i in items if isinstance(i, dict)] if isinstance(items, list) else []
    return [n for n in names if isinstance(n, str) and n]


def _choice(errors: Errors, field: str, value: str, choices: list[str]) -> None:
    if value not in choices:
        errors.setdefault(field, []).append(f"unknown {field} {value!r}; choose one of {choices}")


def example_validate_and_prepare(
    *,
    service: Service,
    tool: Tool | str | None,
    user_query: str,
    messages: list[dict[str, Any]] | None,
    tools: list[str] | None,
    behavior: str,
    expected: dict[str, Any],
    source: str,
    quality: str,
    common_mistakes: list[Any] | None,
    schemas: dict[str, ToolSchemaVersion] | None = None,
) -> dict[str, Any]:
    """Validate an example's fields; return the normalised values to store (raises ValidationFailed).

    ``schemas`` (current versions by tool name) saves the lookup when validating many examples.
    """
    errors: Errors = {}
    user_query = (user_query or "").strip()
    if not user_query:
        errors["user_query"] = ["give the user's request (the last user message)"]
    _choice(errors, "behavior", behavior, list(Behavior.values))
    _choice(errors, "source", source, list(Source.values))
    _choice(errors, "quality", quality, list(Quality.values))
    if messages is None:
        messages = [{"role": "user", "content": user_query}]
    elif user_query:
        errors.update(validate_messages(messages, user_query))
    if common_mistakes is not None and not isinstance(common_mistakes, list):
        errors["common_mistakes"] = ["common_mistakes is a list"]

    if schemas is None:
        schemas = current_schemas(service)
    tool_obj: Tool | None = None
    tool_name = ""
    if isinstance(tool, Tool):
        tool_obj, tool_name = tool, tool.name
    elif isinstance(tool, str) and tool:
        tool_name = tool
    called = _called_tools(behavior, expected)
    if not tool_name and called:
        tool_name = called[0]
    elif tool_name and called and behavior in ("call", "sequence") and tool_name not in called:
        errors.setdefault("tool", []).append(
            f"the primary tool must be one of the tools the example calls: {sorted(set(called))}")
    if tool_name and tool_obj is None:
        tool_obj = schemas[tool_name].tool if tool_name in schemas else None
        if tool_obj is None:
            errors.setdefault("tool", []).append(
                f"service {service.name} has no tool {tool_name!r}; it has {sorted(schemas)}")
    elif tool_obj is not None and tool_obj.service_id != service.pk:
        errors.setdefault("tool", []).append(f"tool {tool_obj.name} belongs to another service")
    if tool_obj is not None and tool_obj.name not in schemas:
        errors.setdefault("tool", []).append(f"tool {tool_obj.name} has no schema version yet")

    if tools is None:
        # Offer every tool of the service: choosing the right one is part of what is learnt.
        tools = sorted(schemas)
    if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
        errors.setdefault("tools", []).append("tools is a list of offered tool names")
        tools = []
    unknown = [t for t in tools if t not in schemas]
    if unknown:
        errors.setdefault("tools", []).append(f"unknown tool(s) {unknown} for service {service.name}")
    offered = [t for t in dict.fromkeys(tools) if t in schemas]
    if behavior in ("call", "sequence", "ask_for_details"):
        for name in [*called, tool_name]:
            if name and name in schemas and name not in offered:
                offered.append(name)  # a called tool is offered by definition
    if errors.get("behavior"):
        raise ValidationFailed("the example is invalid; see 'fields'", fields=errors)
    params = {name: schemas[name].parameters for name in offered}
    errors.update(validate_expected(behavior=behavior, expected=expected, schemas=params, tool=tool_name))
    if errors:
        raise ValidationFailed("the example is invalid; see 'fields'", fields=errors)
    return {
        "tool": tool_obj,
        "schema_version": schemas.get(tool_obj.name) if tool_obj is not None else None,
        "user_query": user_query,
        "messages": messages,
        "tools": offered,
        "behavior": behavior,
        "expected": expected,
        "content_hash": content_hash(user_query=user_query, messages=messages, behavior=behavior,
                                     expected=expected, tool=tool_name),
        "tool_versions": {name: schemas[name].number for name in sorted({*called, tool_name}) if name in schemas},
    }


@transaction.atomic
def example_create(
    *,
    service: Service | str,
    tool: Tool | str | None = None,
    user_query: str,
    messages: list[dict[str, Any]] | None = None,
    tools: list[str] | None = None,
    behavior: str,
    expected: dict[str, Any],
    source: str,
    quality: str,
    explanation: str = "",
    common_mistakes: list[Any] | None = None,
    interaction: Any = None,
    parent: TrainingExample | None = None,
    provenance: dict[str, Any] | None = None,
    actor: str = "",
    schemas: dict[str, ToolSchemaVersion] | None = None,
) -> TrainingExample:
    """Create a validated example. Replaying the same content, source and interaction returns the first one."""
    svc = _resolve_service(service)
    values = example_validate_and_prepare(
        service=svc, tool=tool, user_query=user_query, messages=messages, tools=tools, behavior=behavior,
        expected=expected, source=source, quality=quality, common_mistakes=common_mistakes, schemas=schemas,
    )
    existing = TrainingExample.objects.filter(
        service=svc, content_hash=values["content_hash"], source=source, interaction=interaction
    ).first()
    if existing is not None:
        return existing
    example = TrainingExample.objects.create(
        service=svc,
        explanation=explanation or "",
        common_mistakes=common_mistakes or [],
        source=source,
        quality=quality,
        interaction=interaction,
        parent=parent,
        provenance=provenance or {},
        **values,
    )
    if actor:
        audit_record(action="example.created", actor=actor, object_type="training_example", object_id=example.pk,
                     detail={"service": svc.name, "source": source, "behavior": behavior})
    return example


@transaction.atomic
def example_update(*, example: TrainingExample, changes: dict[str, Any], actor: str = "") -> TrainingExample:
    """Edit an example; the result is validated as a whole against the current schemas."""
    unknown = [k for k in changes if k not in EDITABLE_FIELDS]
    if unknown:
        raise ValidationFailed(f"cannot edit {unknown}", fields={k: [f"editable fields are {list(EDITABLE_FIELDS)}"]
                                                                 for k in unknown})
    example = TrainingExample.objects.select_for_update(of=("self",)).select_related("service", "tool").get(
        pk=example.pk)
    status = changes.get("status", example.status)
    if status not in ExampleStatus.values:
        raise ValidationFailed("unknown status", fields={"status": [f"choose one of {list(ExampleStatus.values)}"]})
    user_query = changes.get("user_query", example.user_query)
    messages = changes.get("messages")
    if messages is None:
        # Keep the history but let a new query replace the last user message.
        messages = [dict(m) for m in example.messages]
        for message in reversed(messages):
            if message.get("role") == "user":
                message["content"] = (user_query or "").strip()
                break
    values = example_validate_and_prepare(
        service=example.service,
        tool=changes.get("tool", example.tool),
        user_query=user_query,
        messages=messages,
        tools=changes.get("tools", example.tools),
        behavior=changes.get("behavior", example.behavior),
        expected=changes.get("expected", example.expected),
        source=example.source,
        quality=changes.get("quality", example.quality),
        common_mistakes=changes.get("common_mistakes", example.common_mistakes),
        # An example may call other services' tools (a sequence across services).
        schemas=example_schemas(example),
    )
    before = example.content_hash
    for key, value in values.items():
        setattr(example, key, value)
    example.explanation = changes.get("explanation", example.explanation)
    example.common_mistakes = changes.get("common_mistakes", example.common_mistakes)
    example.quality = changes.get("quality", example.quality)
    example.status = status
    example.save()
    if actor:
        audit_record(action="example.updated", actor=actor, object_type="training_example", object_id=example.pk,
                     detail={"fields": sorted(changes), "hash_before": before, "hash_after": example.content_hash})
    return example
