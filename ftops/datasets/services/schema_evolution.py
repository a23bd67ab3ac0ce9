"""Schema evolution: examples written for an older version of a tool's schema.

When a tool gets a new (typically breaking) schema version, ``examples_migrate_schema``
finds every example that names the tool but was written for another version. Renamed
parameters (a mapping the user gives) are rewritten; an example that then validates
against the current schema -- including when the change only added optional parameters --
is moved to the new version with a provenance entry. Everything else is flagged for review
(status ``flagged``) with the validation messages saying what no longer fits.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ftops.catalog.models import Tool, ToolSchemaVersion
from ftops.common.errors import ValidationFailed
from ftops.common.services import audit_record
from ftops.datasets.models import ExampleStatus, TrainingExample
from ftops.datasets.selectors import current_schemas, example_schemas
from ftops.datasets.validation import content_hash, property_names, validate_expected


@dataclass
class SchemaMigrationReport:
    tool: str
    to_version: int
    examined: int = 0
    migrated: list[int] = field(default_factory=list)
    flagged: dict[int, dict[str, list[str]]] = field(default_factory=dict)
    unchanged: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"tool": self.tool, "to_version": self.to_version, "examined": self.examined,
                "migrated": self.migrated, "flagged": {str(k): v for k, v in self.flagged.items()},
                "unchanged": self.unchanged}


def _rename_arguments(expected: dict[str, Any], behavior: str, tool: str,
                      renames: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The expected behaviour with renamed parameters, and the renames that actually applied."""
    out = copy.deepcopy(expected)
    applied: dict[str, str] = {}
    key = {"call": "calls", "sequence": "steps"}.get(behavior)
    if key:
        for call in out.get(key, []):
            if isinstance(call, dict) and call.get("name") == tool and isinstance(call.get("arguments"), dict):
                applied.update({k: renames[k] for k in call["arguments"] if k in renames})
                call["arguments"] = {renames.get(k, k): v for k, v in call["arguments"].items()}
    if behavior == "ask_for_details" and isinstance(out.get("required_fields"), list):
        applied.update({f: renames[f] for f in out["required_fields"] if f in renames})
        out["required_fields"] = [renames.get(f, f) for f in out["required_fields"]]
    return out, applied


def _tool_services(example: TrainingExample) -> dict[str, str]:
    refs = (example.provenance or {}).get("tool_services")
    return refs if isinstance(refs, dict) else {}


def _names_tool(example: TrainingExample, tool: Tool) -> bool:
    """Whether ``example`` calls ``tool``: by name, in the service its provenance says
    (another service's tool, ``tool_services``) or else in its own service."""
    owner = _tool_services(example).get(tool.name)
    if owner is not None and owner != tool.service.name:
        return False
    if owner is None and example.service_id != tool.service_id:
        return False
    if example.tool_id is not None and example.tool_id == tool.pk:
        return True
    key = {"call": "calls", "sequence": "steps"}.get(example.behavior)
    items = example.expected.get(key, []) if key and isinstance(example.expected, dict) else []
    return any(isinstance(c, dict) and c.get("name") == tool.name for c in items)


def outdated_examples(tool: Tool) -> list[TrainingExample]:
    """Examples that name ``tool`` but were written for another schema version of it,
    including other services' examples that call it (a sequence across services)."""
    current = tool.current_version.number if tool.current_version else None
    candidates = (
        TrainingExample.objects.filter(Q(service_id=tool.service_id) | Q(provenance__has_key="tool_services"))
        .exclude(status=ExampleStatus.ARCHIVED)
        .select_related("tool", "schema_version", "service")
        .order_by("id")
    )
    return [e for e in candidates
            if _names_tool(e, tool) and (e.tool_versions or {}).get(tool.name) != current]


@transaction.atomic
def examples_migrate_schema(
    *, tool: Tool, renames: dict[str, str] | None = None, actor: str = ""
) -> SchemaMigrationReport:
    """Migrate or flag the examples of ``tool`` written for an older schema version."""
    tool = Tool.objects.select_related("current_version", "service").get(pk=tool.pk)
    current: ToolSchemaVersion | None = tool.current_version
    if current is None:
        raise ValidationFailed(f"tool {tool.name} has no schema version", fields={"tool": ["publish a schema first"]})
    renames = dict(renames or {})
    new_props = property_names(current.parameters)
    errors: dict[str, list[str]] = {}
    for old, new in renames.items():
        if not isinstance(old, str) or not isinstance(new, str) or not old or not new:
            errors.setdefault("renames", []).append("renames maps old parameter names to new ones (strings)")
        elif new not in new_props:
            errors.setdefault("renames", []).append(
                f"'{new}' is not a parameter of the current {tool.name} schema (v{current.number}); "
                f"it has {sorted(new_props)}")
    if errors:
        raise ValidationFailed("invalid rename mapping", fields=errors)
    own_schemas: dict[int, dict[str, ToolSchemaVersion]] = {}
    report = SchemaMigrationReport(tool=f"{tool.service.name}.{tool.name}", to_version=current.number)
    now = timezone.now().isoformat()
    for example in outdated_examples(tool):
        report.examined += 1
        old_number = (example.tool_versions or {}).get(tool.name)
        expected, applied = _rename_arguments(example.expected, example.behavior, tool.name, renames)
        if example.service_id not in own_schemas:
            own_schemas[example.service_id] = current_schemas(example.service)
        schemas = example_schemas(example, own_schemas[example.service_id])
        params = {name: schemas[name].parameters for name in example.tools if name in schemas}
        params[tool.name] = current.parameters
        problems = validate_expected(behavior=example.behavior, expected=expected, schemas=params,
                                     tool=example.tool.name if example.tool else "")
        provenance = dict(example.provenance or {})
        if problems:
            example.status = ExampleStatus.FLAGGED
            provenance["schema_flag"] = {"tool": tool.name, "from_version": old_number, "to_version": current.number,
                                         "problems": problems, "at": now}
            report.flagged[example.pk] = problems
        else:
            provenance.setdefault("migrations", []).append({
                "tool": tool.name, "from_version": old_number, "to_version": current.number,
                "renames": applied, "kind": "rename" if applied else "compatible", "at": now, "by": actor or "system",
            })
            provenance.pop("schema_flag", None)
            example.tool_versions = {**(example.tool_versions or {}), tool.name: current.number}
            example.expected = expected
            example.status = ExampleStatus.ACTIVE
            if example.tool_id == tool.pk:
                example.schema_version = current
            example.content_hash = content_hash(
                user_query=example.user_query, messages=example.messages, behavior=example.behavior,
                expected=expected, tool=example.tool.name if example.tool else "")
            report.migrated.append(example.pk)
        example.provenance = provenance
        example.save()
    audit_record(action="examples.schema_migrated", actor=actor or "system", object_type="tool", object_id=tool.pk,
                 detail={"renames": renames, **{k: v for k, v in report.as_dict().items() if k != "flagged"},
                         "flagged": sorted(report.flagged)})
    return report


def examples_migrate_tools(*, tool_ids: list[int], actor: str = "") -> dict[str, int]:
    """After a catalog import: move (or flag) the older examples of each tool whose schema
    changed. Renames are not applied automatically (the diff only guesses them); a reviewer
    can rerun ``examples_migrate_schema`` with the renames confirmed."""
    counts = {"migrated": 0, "flagged": 0}
    for tool in Tool.objects.filter(pk__in=tool_ids).select_related("current_version", "service").order_by("pk"):
        if not outdated_examples(tool):
            continue  # nothing to move, and no audit row for a no-op
        migration = examples_migrate_schema(tool=tool, actor=actor or "catalog_import")
        counts["migrated"] += len(migration.migrated)
        counts["flagged"] += len(migration.flagged)
    return counts
