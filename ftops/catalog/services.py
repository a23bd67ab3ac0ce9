"""Writes for the catalog: services, tools, schema versions and imports.

Every import is idempotent: a tool whose schema (parameters and description) is unchanged
gets no new version, and examples already stored are found by their content hash (through
curation's ``example_create``). A changed schema becomes a new ``ToolSchemaVersion`` whose
stored diff says whether the change breaks callers.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Max

from ftops.catalog.importers import (
    ImportFailed,
    Parsed,
    ServiceDef,
    SourceUnavailable,
    ToolDef,
    lenient_ask_schema,
    parse_source,
)
from ftops.catalog.models import CatalogImportJob, SchemaChange, Service, Tool, ToolSchemaVersion
from ftops.catalog.schema import content_hash, schema_diff
from ftops.catalog.selectors import tool_schema_map
from ftops.common.actors import Actor
from ftops.common.errors import FtopsError, ValidationFailed
from ftops.common.jobs import error_dict, job_claim, job_fail, job_finish, job_mark_enqueued, jobs_reap, worker_identity
from ftops.common.models import AuditAction
from ftops.common.outbound import OutboundRefused, record_refusal, redact_url
from ftops.common.services import audit_record

logger = logging.getLogger(__name__)


@dataclass
class ImportReport:
    source: str
    fmt: str
    services_created: list[str] = field(default_factory=list)
    services_updated: list[str] = field(default_factory=list)
    tools_created: list[str] = field(default_factory=list)  # "service.tool"
    versions_created: list[dict[str, Any]] = field(default_factory=list)  # {tool, number, change, inferred}
    tools_unchanged: int = 0
    examples_created: int = 0
    examples_existing: int = 0
    examples_skipped: list[dict[str, Any]] = field(default_factory=list)  # {where, fields}
    examples_migrated: int = 0  # older examples that still fit a new schema version
    examples_flagged: int = 0  # older examples that no longer fit (left for review)
    duplicates: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.services_created or self.services_updated or self.tools_created or self.versions_created
                    or self.examples_created)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "format": self.fmt, "changed": self.changed,
            "services_created": self.services_created, "services_updated": self.services_updated,
            "tools_created": self.tools_created, "versions_created": self.versions_created,
            "tools_unchanged": self.tools_unchanged, "examples_created": self.examples_created,
            "examples_existing": self.examples_existing, "examples_skipped": self.examples_skipped,
            "examples_migrated": self.examples_migrated, "examples_flagged": self.examples_flagged,
            "duplicates": self.duplicates, "notes": self.notes,
        }

    def lines(self) -> list[str]:
        """What the import did, one fact per line (printed by ``catalog_import``)."""
        out = [f"imported {self.source} as {self.fmt}"]
        out.append(f"services created: {len(self.services_created)}"
                   + (f" ({', '.join(self.services_created)})" if self.services_created else ""))
        if self.services_updated:
            out.append(f"services updated: {len(self.services_updated)} ({', '.join(self.services_updated)})")
        out.append(f"tools created: {len(self.tools_created)}"
                   + (f" ({', '.join(self.tools_created)})" if self.tools_created else ""))
        out.append(f"schema versions created: {len(self.versions_created)}")
        for v in self.versions_created:
            inferred = ", inferred" if v["inferred"] else ""
            out.append(f"  {v['tool']} v{v['number']} ({v['change']}{inferred})")
        out.append(f"tools unchanged: {self.tools_unchanged}")
        out.append(f"examples created: {self.examples_created}, already present: {self.examples_existing}")
        if self.examples_migrated or self.examples_flagged:
            out.append(f"older examples moved to the new schemas: {self.examples_migrated}, "
                       f"flagged for review: {self.examples_flagged}")
        if self.examples_skipped:
            out.append(f"examples skipped as invalid: {len(self.examples_skipped)}")
            out += [f"  {s['where']}: {s['fields']}" for s in self.examples_skipped[:20]]
        if self.duplicates:
            out.append(f"duplicate tool definitions ignored: {', '.join(sorted(set(self.duplicates)))}")
        out += [f"note: {note}" for note in self.notes]
        return out


# ---------------------------------------------------------------- services and tools

def service_upsert(*, definition: ServiceDef, source: str) -> tuple[Service, str]:
    """(service, "created" | "updated" | "unchanged"). Empty fields never overwrite stored ones."""
    service, created = Service.objects.get_or_create(
        name=definition.name,
        defaults={"display_name": definition.display_name or definition.name.replace("-", " ").title(),
                  "description": definition.description, "version": definition.version,
                  "domain_vocabulary": definition.vocabulary, "source": source[:300]},
    )
    if created:
        return service, "created"
    changes: dict[str, Any] = {}
    for attr, value in (("display_name", definition.display_name), ("description", definition.description),
                        ("version", definition.version)):
        if value and getattr(service, attr) != value:
            changes[attr] = value
    if definition.vocabulary:
        merged = {**service.domain_vocabulary, **definition.vocabulary}
        if merged != service.domain_vocabulary:
            changes["domain_vocabulary"] = merged
    if not changes:
        return service, "unchanged"
    for attr, value in changes.items():
        setattr(service, attr, value)
    service.save(update_fields=[*changes, "updated_at"])
    return service, "updated"


def tool_upsert(*, service: Service, definition: ToolDef, source: str) -> tuple[Tool, bool, ToolSchemaVersion | None]:
    """(tool, created, new schema version or None when nothing changed)."""
    tool, created = Tool.objects.get_or_create(
        service=service, name=definition.name,
        defaults={"description": definition.description, "domain_vocabulary": definition.vocabulary},
    )
    # Lock the tool row so two imports of the same tool cannot both add "the next" version.
    tool = Tool.objects.select_for_update(of=("self",)).select_related("current_version").get(pk=tool.pk)
    current = tool.current_version
    if current is not None and definition.inferred and not current.inferred:
        return tool, created, None  # a guess from examples never replaces a published schema
    digest = content_hash(parameters=definition.parameters, description=definition.description)
    if current is not None and current.content_hash == digest:
        if definition.vocabulary and definition.vocabulary != tool.domain_vocabulary:
            tool.domain_vocabulary = definition.vocabulary
            tool.save(update_fields=["domain_vocabulary", "updated_at"])
        return tool, created, None
    version = tool_schema_version_create(tool=tool, parameters=definition.parameters,
                                         description=definition.description, inferred=definition.inferred,
                                         source=source)
    return tool, created, version


def tool_schema_version_create(*, tool: Tool, parameters: dict[str, Any], description: str = "",
                               inferred: bool = False, source: str = "") -> ToolSchemaVersion:
    """Append a version to ``tool`` with its diff from the current one, and make it current.

    The caller holds the tool's row lock (``tool_upsert`` does).
    """
    if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
        raise ValidationFailed("parameters must be a JSON Schema of type object",
                               fields={"parameters": ["give {\"type\": \"object\", \"properties\": {...}}"]})
    previous = tool.current_version
    number = (tool.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    if previous is None:
        change, diff = SchemaChange.INITIAL, {}
    else:
        result = schema_diff(previous.parameters, parameters, old_description=previous.description,
                             new_description=description)
        # Same content in another key order hashes equal, so "none" only means cosmetic edits.
        change = SchemaChange.BREAKING if result.change == "breaking" else SchemaChange.ADDITIVE
        diff = {"from_version": previous.number, **result.as_dict()}
    version = ToolSchemaVersion.objects.create(
        tool=tool, number=number, description=description, parameters=parameters,
        content_hash=content_hash(parameters=parameters, description=description), inferred=inferred,
        change=change, diff=diff, source=source[:300],
    )
    tool.current_version = version
    tool.description = description
    tool.save(update_fields=["current_version", "description", "updated_at"])
    return version


# ---------------------------------------------------------------- examples from per-tool documents

def _acceptable(arguments: dict[str, Any], acceptable: dict[str, Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for name, value in arguments.items():
        given = acceptable.get(name)
        out[name] = list(given) if isinstance(given, list) and given else [value]
    return out


def example_fields(example: dict[str, Any], *, doc_tool: str) -> dict[str, Any] | None:
    """The behaviour, expected answer and tool of one document example (None: not an example)."""
    behavior_block = example.get("correct_behavior")
    if isinstance(behavior_block, dict) and behavior_block.get("action"):
        action = str(behavior_block["action"])
        if action == "clarify":
            expected: dict[str, Any] = {"question": str(behavior_block.get("question") or ""),
                                        "reason": str(behavior_block.get("reason") or "")}
            return {"behavior": "clarify", "expected": expected, "tool": doc_tool}
        if action == "ask_for_details":
            expected = {"required_fields": behavior_block.get("required_fields"),
                        "question": str(behavior_block.get("question") or "")}
            return {"behavior": "ask_for_details", "expected": expected, "tool": doc_tool}
        if action == "abstain":
            return {"behavior": "abstain", "expected": {"reason": str(behavior_block.get("reason") or "")},
                    "tool": None}
        if action == "call" and behavior_block.get("tool"):
            example = {"correct_tool": behavior_block["tool"],
                       "correct_parameters": behavior_block.get("parameters") or {}}
        else:
            return {"behavior": action, "expected": behavior_block, "tool": doc_tool}  # rejected by validation
    if isinstance(example.get("correct_sequence"), list):
        steps = []
        for step in example["correct_sequence"]:
            if not isinstance(step, dict):
                steps.append(step)
                continue
            out = {"name": step.get("tool") or step.get("name"),
                   "arguments": step.get("parameters", step.get("arguments", {}))}
            if isinstance(step.get("result"), dict):
                out["result"] = step["result"]
            steps.append(out)
        names = [s.get("name") for s in steps if isinstance(s, dict)]
        tool = doc_tool if doc_tool in names else (names[0] if names else doc_tool)
        return {"behavior": "sequence", "expected": {"steps": steps}, "tool": tool}
    if isinstance(example.get("correct_calls"), list):
        calls = [{"name": c.get("tool") or c.get("name"),
                  "arguments": _acceptable(c.get("parameters", c.get("arguments")) or {},
                                           c.get("acceptable_values") or {})}
                 for c in example["correct_calls"] if isinstance(c, dict)]
        return {"behavior": "call", "expected": {"calls": calls}, "tool": calls[0]["name"] if calls else doc_tool}
    if example.get("correct_tool"):
        params = example.get("correct_parameters") or {}
        if not isinstance(params, dict):
            params = {"__invalid__": params}
        call = {"name": str(example["correct_tool"]),
                "arguments": _acceptable(params, example.get("acceptable_values") or {})}
        return {"behavior": "call", "expected": {"calls": [call]}, "tool": call["name"]}
    return None


def _ask_schemas(schemas: dict[str, ToolSchemaVersion], tool: Any,
                 expected: dict[str, Any]) -> dict[str, ToolSchemaVersion]:
    """The schemas to check an ask_for_details example with: for a tool whose current schema
    was inferred from examples, the fields the example asks for count as required when the
    tool has them (see ``importers.lenient_ask_schema``). Published schemas stay strict."""
    version = schemas.get(tool) if isinstance(tool, str) else None
    if version is None or not version.inferred:
        return schemas
    parameters = lenient_ask_schema(version.parameters, expected.get("required_fields"))
    if parameters is version.parameters:
        return schemas
    view = copy.copy(version)  # same row (the example still points at it); never saved
    view.parameters = parameters
    return {**schemas, tool: view}


def _import_examples(parsed: Parsed, services: dict[str, Service], report: ImportReport, *, source: str,
                     skip_invalid: bool) -> None:
    """Validate every example with curation's rules, then store the new ones in bulk.

    Validation and the content hash come from ``ftops.datasets.services.example_validate_and_prepare``
    (what ``example_create`` runs); rows are written like ``example_create`` writes them, but
    in one ``bulk_create``: the sample enterprise alone has ~750 examples.
    """
    from ftops.datasets.models import TrainingExample
    from ftops.datasets.services import example_validate_and_prepare

    schemas = {name: tool_schema_map(svc) for name, svc in services.items()}
    errors: dict[str, Any] = {}
    prepared: list[tuple[Service, dict[str, Any], dict[str, Any]]] = []
    for d_index, doc in enumerate(parsed.documents):
        service = services[doc["service"]]
        items = [("training_examples", i, e) for i, e in enumerate(doc.get("training_examples") or [])]
        items += [("edge_cases", i, e) for i, e in enumerate(doc.get("edge_cases") or [])]
        for key, e_index, example in items:
            where = f"documents[{d_index}].{key}[{e_index}]"
            if not isinstance(example, dict):
                errors[where] = {"example": ["each example is an object"]}
                continue
            fields_ = example_fields(example, doc_tool=doc["tool"])
            if fields_ is None:
                errors[where] = {"example": ["give correct_tool + correct_parameters, correct_calls, "
                                             "correct_sequence, or correct_behavior {action: ...}"]}
                continue
            mistakes = example.get("common_mistakes") or []
            example_schemas = schemas[doc["service"]]
            if fields_["behavior"] == "ask_for_details":
                example_schemas = _ask_schemas(example_schemas, fields_["tool"], fields_["expected"])
            try:
                values = example_validate_and_prepare(
                    service=service, tool=fields_["tool"], user_query=str(example.get("user_query") or ""),
                    messages=None, tools=None, behavior=fields_["behavior"], expected=fields_["expected"],
                    source="manual", quality="high", common_mistakes=mistakes, schemas=example_schemas,
                )
            except ValidationFailed as exc:
                errors[where] = exc.fields or {"example": [exc.message]}
                continue
            provenance = {"import_source": source[:300], "document_tool": doc["tool"]}
            for extra in ("template", "scenario"):
                if example.get(extra):
                    provenance[extra] = example[extra]
            extra_fields = {"explanation": str(example.get("explanation") or ""), "common_mistakes": mistakes,
                            "provenance": provenance}
            prepared.append((service, values, extra_fields))
    if errors and not skip_invalid:
        raise ImportFailed(f"{len(errors)} example(s) are invalid; nothing was imported (see 'fields', or "
                           "import with skip_invalid to keep the valid ones)", fields=errors)
    report.examples_skipped = [{"where": k, "fields": v} for k, v in errors.items()]

    # The same identity example_create replays on: service, content hash, source, no interaction.
    hashes = sorted({values["content_hash"] for _, values, _ in prepared})
    existing: set[tuple[int, str]] = set()
    for start in range(0, len(hashes), 500):
        existing |= set(TrainingExample.objects.filter(
            service__in=list(services.values()), source="manual", interaction__isnull=True,
            content_hash__in=hashes[start : start + 500]).values_list("service_id", "content_hash"))
    rows = []
    for service, values, extra_fields in prepared:
        identity: tuple[int, str] = (service.pk, values["content_hash"])
        if identity in existing:
            report.examples_existing += 1
            continue
        existing.add(identity)
        rows.append(TrainingExample(service=service, source="manual", quality="high", **extra_fields, **values))
    TrainingExample.objects.bulk_create(rows, batch_size=500)
    report.examples_created = len(rows)


def _migrate_examples(tool: Tool, report: ImportReport) -> None:
    """Move the tool's older examples to its new schema, or flag those that no longer fit.

    Renames are not applied automatically (the diff only guesses them); a reviewer can rerun
    the migration with the renames confirmed.
    """
    from ftops.datasets.services.schema_evolution import examples_migrate_schema, outdated_examples

    if not outdated_examples(tool):
        return  # nothing to move, and no audit row for a no-op
    migration = examples_migrate_schema(tool=tool, actor="catalog_import")
    report.examples_migrated += len(migration.migrated)
    report.examples_flagged += len(migration.flagged)


# ---------------------------------------------------------------- imports

@transaction.atomic
def catalog_import_parsed(*, parsed: Parsed, source: str, skip_invalid: bool = False) -> ImportReport:
    report = ImportReport(source=source, fmt=parsed.fmt, duplicates=list(parsed.duplicates), notes=list(parsed.notes))
    services: dict[str, Service] = {}
    for definition in parsed.services:
        service, state = service_upsert(definition=definition, source=source)
        services[definition.name] = service
        if state == "created":
            report.services_created.append(service.name)
        elif state == "updated":
            report.services_updated.append(service.name)
    for tool_def in parsed.tools:
        if tool_def.service not in services:
            services[tool_def.service], _ = service_upsert(definition=ServiceDef(tool_def.service), source=source)
        service = services[tool_def.service]
        tool, created, version = tool_upsert(service=service, definition=tool_def, source=source)
        if created:
            report.tools_created.append(f"{service.name}.{tool.name}")
        if version is not None:
            report.versions_created.append({"tool": f"{service.name}.{tool.name}", "number": version.number,
                                            "change": version.change, "inferred": version.inferred})
            if version.change != SchemaChange.INITIAL:
                _migrate_examples(tool, report)
        else:
            report.tools_unchanged += 1
    if parsed.documents:
        _import_examples(parsed, services, report, source=source, skip_invalid=skip_invalid)
    return report


def catalog_import(*, source: str, fmt: str | None = None, by: Actor | None = None, service: str | None = None,
                   content: Any = None, skip_invalid: bool = False, job: int | None = None) -> ImportReport:
    """Import tools (and, for per-tool documents, examples) from ``source``.

    ``source`` is a file path, an MCP server command (stdio) or an MCP streamable-HTTP URL;
    with ``content`` the data is given inline and ``source`` only labels it. Records one
    ``catalog.imported`` audit row, or ``catalog.import_failed`` (plus ``outbound.refused``
    for a refused destination) with the real reason when the import fails.
    """
    by = by or Actor.system()
    try:
        # Read the source first, outside the transaction: an MCP server may take seconds to answer.
        parsed = parse_source(source=source, fmt=fmt, service=service, content=content)
        with transaction.atomic():
            report = catalog_import_parsed(parsed=parsed, source=source, skip_invalid=skip_invalid)
            audit_record(
                action=AuditAction.CATALOG_IMPORTED, by=by, object_type="catalog_import",
                object_id=_source_label(source),
                detail={"format": report.fmt, "services_created": len(report.services_created),
                        "tools_created": len(report.tools_created), "versions_created": len(report.versions_created),
                        "examples_created": report.examples_created, "changed": report.changed,
                        **({"job": job} if job is not None else {})},
            )
    except FtopsError as exc:
        _audit_import_failure(exc, source=source, fmt=fmt, by=by, job=job)
        raise
    return report


def _source_label(source: str) -> str:
    """``source`` as an audit row can hold it: no credentials, no NUL, no lone surrogate."""
    text = redact_url(source).replace("\x00", "")
    return text.encode("utf-8", errors="replace").decode("utf-8")[:120]


def _audit_import_failure(exc: FtopsError, *, source: str, fmt: str | None, by: Actor, job: int | None) -> None:
    """The failed import's audit rows, each in its own transaction (the import's rolled back)."""
    detail: dict[str, Any] = {"format": fmt or "", "error": exc.message[:500],
                              "fields": sorted(exc.fields)[:20]}
    if isinstance(exc, SourceUnavailable):
        detail.update(kind=exc.kind, reason=exc.reason[:1000])
    if job is not None:
        detail["job"] = job
    with transaction.atomic():
        audit_record(action=AuditAction.CATALOG_IMPORT_FAILED, by=by, object_type="catalog_import",
                     object_id=_source_label(source), detail=detail)
        if isinstance(exc, SourceUnavailable) and isinstance(exc.outbound, OutboundRefused):
            record_refusal(exc.outbound, by=by, purpose="catalog_import")


# ---------------------------------------------------------------- URL imports as jobs

def catalog_import_job_create(*, url: str, by: Actor, service: str | None = None,
                              skip_invalid: bool = False) -> CatalogImportJob:
    """A pending job for an MCP URL import, published to a worker once the row is committed.

    The row is the outbox: when the broker is down, it stays pending and the reaper's sender
    (``catalog_import_jobs_reap``) publishes it later, so the caller can rely on the 202.
    """
    with transaction.atomic():
        job = CatalogImportJob.objects.create(
            source=url, service=service or "", skip_invalid=skip_invalid, actor=by.label[:200],
            user=by.user if by.user_id is not None else None, api_key=by.api_key, ip=by.ip,
        )
        transaction.on_commit(lambda: catalog_import_job_publish(job_id=job.pk))
    return job


def catalog_import_job_publish(*, job_id: int) -> bool:
    """Hand the job to the broker; False (and the row stays pending) when that fails."""
    from ftops.catalog.tasks import catalog_import_job_task

    try:
        catalog_import_job_task.delay(job_id)
    except Exception as exc:  # any broker trouble: the sender retries from the row
        logger.warning("catalog import job %s not published (%s: %s); the reaper will send it",
                       job_id, type(exc).__name__, exc)
        return False
    job_mark_enqueued(CatalogImportJob, pk=job_id)
    return True


def catalog_import_job_run(*, job_id: int) -> CatalogImportJob | None:
    """Claim and run one URL import; None when another worker holds it or it is finished.

    No heartbeat thread: the fetch is bounded by ``FTOPS_OUTBOUND_TIMEOUT_S`` (at most 25 s)
    and the writes take seconds, far inside the lease. The import itself is idempotent, so a
    worker that lost its lease and a new owner importing the same URL twice changes nothing.
    """
    owner = worker_identity()
    job = job_claim(CatalogImportJob, pk=job_id, owner=owner)
    if job is None:
        return None
    by = Actor(label=job.actor, user=job.user, api_key=job.api_key, ip=job.ip)
    try:
        report = catalog_import(source=job.source, fmt="mcp-http", service=job.service or None,
                                skip_invalid=job.skip_invalid, by=by, job=job.pk)
    except FtopsError as exc:  # audited by catalog_import
        job_fail(CatalogImportJob, pk=job.pk, owner=owner, error=error_dict(exc.code, exc.message, exc.fields))
    except Exception as exc:
        logger.exception("catalog import job %s failed unexpectedly", job.pk)
        with transaction.atomic():
            audit_record(action=AuditAction.CATALOG_IMPORT_FAILED, by=by, object_type="catalog_import",
                         object_id=_source_label(job.source),
                         detail={"job": job.pk, "kind": "internal", "reason": f"{type(exc).__name__}: {exc}"[:1000]})
        job_fail(CatalogImportJob, pk=job.pk, owner=owner,
                 error=error_dict("internal_error", "the import failed unexpectedly; the server log has the details"))
    else:
        job_finish(CatalogImportJob, pk=job.pk, owner=owner, fields={"result": report.as_dict()})
    job.refresh_from_db()
    return job


def catalog_import_jobs_reap() -> dict[str, Any]:
    """Beat: re-queue imports whose worker died, and publish pending ones the broker never got."""
    def publish(pk: int) -> None:
        from ftops.catalog.tasks import catalog_import_job_task

        catalog_import_job_task.delay(pk)

    return jobs_reap(CatalogImportJob, publish=publish, resend_after_s=600).as_dict()


def catalog_import_documents(*, documents: list[dict[str, Any]], source: str,
                             skip_invalid: bool = False) -> ImportReport:
    """Per-tool training-data documents -> services, tools, schema versions and examples."""
    return catalog_import(source=source, fmt="tool-docs", content=documents, skip_invalid=skip_invalid)


def load_sample_enterprise(*, seed: int = 7) -> ImportReport:
    """Import the generated acme enterprise (services, 18 tools, their examples)."""
    from ftops.catalog.sample import build_sample_enterprise

    enterprise = build_sample_enterprise(seed)
    return catalog_import_documents(documents=enterprise.tool_documents, source=f"sample:acme:seed={seed}")
