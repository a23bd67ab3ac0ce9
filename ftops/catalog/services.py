"""Writes for the catalog: services, tools, schema versions and imports.

Every import is idempotent: a tool whose schema (parameters and description) is unchanged
gets no new version. A changed schema becomes a new ``ToolSchemaVersion`` whose stored diff
says whether the change breaks callers.

Training examples belong to curation (``ftops.datasets``), one floor up, which this module
never imports. The catalog records what it imported and hands curation the rest by task
name: per-tool documents with examples become a ``CatalogImportJob`` that curation's
``catalog_import_examples_task`` runs (tools and examples in one transaction, through these
services), and a changed schema sends ``examples_migrate_schema_task``. In the embedded
default those tasks run in-process at once, so callers get the same counts as before; with a
broker the counts land on the job (``result``) when the worker is done.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from celery import current_app
from django.db import transaction
from django.db.models import Max, Q

from ftops.catalog.importers import (
    ImportFailed,
    Parsed,
    ServiceDef,
    SourceUnavailable,
    ToolDef,
    parse_source,
    parse_tool_documents,
    resolve_tool_references,
)
from ftops.catalog.models import CatalogImportJob, ImportKind, SchemaChange, Service, Tool, ToolSchemaVersion
from ftops.catalog.schema import content_hash, schema_diff
from ftops.catalog.selectors import service_names, tool_owners
from ftops.common.actors import Actor
from ftops.common.errors import FtopsError, ValidationFailed
from ftops.common.jobs import (
    JobStatus,
    error_dict,
    job_claim,
    job_fail,
    job_finish,
    job_mark_enqueued,
    jobs_reap,
    worker_identity,
)
from ftops.common.models import AuditAction, NotificationKind
from ftops.common.notifications import notify
from ftops.common.outbound import OutboundRefused, record_refusal, redact_url
from ftops.common.services import audit_record

logger = logging.getLogger(__name__)

# Curation's tasks, by name: the catalog sits below curation and never imports it.
EXAMPLES_IMPORT_TASK = "ftops.datasets.tasks.catalog_import_examples_task"
EXAMPLES_MIGRATE_TASK = "ftops.datasets.tasks.examples_migrate_schema_task"
CATALOG_JOB_TASK = "ftops.catalog.tasks.catalog_import_job_task"


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
    job: int | None = None  # the CatalogImportJob that holds this import, when there is one
    pending: bool = False  # a worker writes the examples; the job's result will have the counts
    changed_tools: list[int] = field(default_factory=list)  # tools given a non-initial version (not reported)
    migration_pending: bool = False  # a worker moves the older examples later (not reported)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, job: int | None = None) -> ImportReport:
        """A report from ``as_dict`` (a job's ``result``)."""
        report = cls(source=str(data.get("source", "")), fmt=str(data.get("format", "")), job=job)
        for name in ("services_created", "services_updated", "tools_created", "versions_created", "examples_skipped",
                     "duplicates", "notes"):
            setattr(report, name, list(data.get(name) or []))
        for name in ("tools_unchanged", "examples_created", "examples_existing", "examples_migrated",
                     "examples_flagged"):
            setattr(report, name, int(data.get(name) or 0))
        return report

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
            "duplicates": self.duplicates, "notes": self.notes, "job": self.job, "pending": self.pending,
        }

    def lines(self) -> list[str]:
        """What the import did, one fact per line (printed by ``catalog_import``)."""
        out = [f"imported {self.source} as {self.fmt}"]
        if self.pending:
            return [*out, f"queued as import job {self.job}: a worker writes the tools and examples; "
                          "its result has the counts"]
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


# ---------------------------------------------------------------- imports

@transaction.atomic
def catalog_import_parsed(*, parsed: Parsed, source: str) -> ImportReport:
    """Write the services, tools and schema versions of ``parsed`` (not its examples).

    ``report.changed_tools`` lists the tools whose schema changed, whose older examples
    curation moves to the new version (``examples_migrate_schema``).
    """
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
                report.changed_tools.append(tool.pk)
        else:
            report.tools_unchanged += 1
    return report


def catalog_import_resolve(parsed: Parsed) -> Parsed:
    """``parsed`` with every tool its examples call pointed at the service that has it
    (``importers.resolve_tool_references``); ImportFailed for ambiguous or wrong names."""
    if parsed.fmt != "tool-docs" or not parsed.documents:
        return parsed
    return resolve_tool_references(parsed, catalog_tools=tool_owners(), catalog_services=service_names())


def catalog_import_documents_parse(*, job: CatalogImportJob) -> Parsed:
    """The documents a documents job recorded, read and resolved again (the catalog may have
    changed since the job was queued)."""
    return catalog_import_resolve(parse_tool_documents(job.documents or []))


def catalog_import_audit(*, report: ImportReport, by: Actor, source: str, job: int | None = None) -> None:
    """The ``catalog.imported`` row, and the owners told of breaking schema changes; call it
    inside the import's transaction, once the older examples were migrated (or handed to a worker)."""
    audit_record(
        action=AuditAction.CATALOG_IMPORTED, by=by, object_type="catalog_import", object_id=_source_label(source),
        detail={"format": report.fmt, "services_created": len(report.services_created),
                "tools_created": len(report.tools_created), "versions_created": len(report.versions_created),
                "examples_created": report.examples_created, "changed": report.changed,
                **({"job": job} if job is not None else {})},
    )
    catalog_schema_breaks_notify(report=report, pending=report.migration_pending)


def _has_examples(parsed: Parsed) -> bool:
    return any(doc.get("training_examples") or doc.get("edge_cases") for doc in parsed.documents)


def _tasks_run_in_process() -> bool:
    return bool(current_app.conf.task_always_eager)


def _curation_task(name: str, kwargs: dict[str, Any]) -> Any:
    """Run curation's task ``name`` now when tasks run in-process, else send it on commit.

    In-process (the embedded default, tests) it runs inside the caller's transaction, so the
    caller gets its return value and its writes commit or roll back with the import. With a
    broker it is published once the import is committed (the worker must see the rows).
    ``signature`` rather than ``send_task``: only a registered task honours eager mode, and a
    web process has not imported the tasks modules of the apps above this one yet.
    """
    if name not in current_app.tasks:
        current_app.loader.import_default_modules()
    signature = current_app.signature(name, kwargs=kwargs)
    if _tasks_run_in_process():
        return signature.apply_async().get()
    transaction.on_commit(signature.delay)
    return None


def _examples_migrate(report: ImportReport, *, by: Actor, job: int | None) -> None:
    """Curation moves the older examples of the tools whose schema changed (or flags them)."""
    if not report.changed_tools:
        return
    # In-process the counts come back here (and into the job's result); a worker adds them to the job.
    counts = _curation_task(EXAMPLES_MIGRATE_TASK, {"tool_ids": report.changed_tools, "actor": by.label,
                                                    "job_id": None if _tasks_run_in_process() else job})
    if counts is None:
        report.notes.append("older examples of the changed tools are being moved to the new schemas by a worker"
                            + (f"; import job {job} will show how many" if job is not None else ""))
        report.migration_pending = True
        return
    report.examples_migrated += int(counts.get("migrated", 0))
    report.examples_flagged += int(counts.get("flagged", 0))


def catalog_schema_breaks_notify(*, report: ImportReport, pending: bool = False) -> list[str]:
    """Tell each service's owners (``FTOPS_NOTIFY_SERVICE_OWNERS``, else the admins) about the
    breaking schema changes an import found, what broke and how many older examples it migrated
    (the import's counts: one import usually covers one service). Sent when the import commits;
    returns the services told."""
    breaking = [v for v in report.versions_created if v.get("change") == SchemaChange.BREAKING]
    by_service: dict[str, list[dict[str, Any]]] = {}
    for v in breaking:
        by_service.setdefault(str(v["tool"]).split(".", 1)[0], []).append(v)
    for service, versions in sorted(by_service.items()):
        lines, tools = [], []
        for v in versions:
            tool_name = str(v["tool"]).split(".", 1)[1]
            tools.append({"tool": tool_name, "version": v["number"]})
            diff = (ToolSchemaVersion.objects.filter(tool__service__name=service, tool__name=tool_name,
                                                     number=v["number"]).values_list("diff", flat=True).first()) or {}
            what = [f"{c.get('kind')} {c.get('path')}: {c.get('detail')}" for c in diff.get("details") or []
                    if c.get("breaking")]
            lines.append(f"- {tool_name}: v{diff.get('from_version', '?')} -> v{v['number']}"
                         + (f" ({'; '.join(what[:5])})" if what else ""))
        if pending:
            counted = "Older examples are being migrated to the new schemas by a worker; the import job shows how many."
        else:
            counted = (f"Examples migrated to the new schemas: {report.examples_migrated}; flagged for review "
                       f"(no longer valid): {report.examples_flagged}.")
        notify(audience="service_owners", service=service, kind=NotificationKind.SCHEMA_BREAKING,
               subject=f"Breaking tool-schema change in {service}: {', '.join(t['tool'] for t in tools)}",
               text="\n".join([f"An import from {_source_label(report.source)} changed tools of {service} in a "
                                "breaking way:", *lines, "", counted]),
               payload={"kind": NotificationKind.SCHEMA_BREAKING.value, "service": service, "tools": tools,
                        "examples_migrated": None if pending else report.examples_migrated,
                        "examples_flagged": None if pending else report.examples_flagged,
                        "source": _source_label(report.source)})
    return sorted(by_service)


def catalog_import(*, source: str, fmt: str | None = None, by: Actor | None = None, service: str | None = None,
                   content: Any = None, skip_invalid: bool = False, job: int | None = None) -> ImportReport:
    """Import tools (and, for per-tool documents, examples) from ``source``.

    ``source`` is a file path, an MCP server command (stdio) or an MCP streamable-HTTP URL;
    with ``content`` the data is given inline and ``source`` only labels it. Records one
    ``catalog.imported`` audit row, or ``catalog.import_failed`` (plus ``outbound.refused``
    for a refused destination) with the real reason when the import fails.

    Documents that carry examples become a documents job that curation runs (see the module
    docstring): at once in-process, where this returns its report or raises its error; with
    a broker the report comes back ``pending`` with the job's id.
    """
    by = by or Actor.system()
    try:
        # Read the source first, outside the transaction: an MCP server may take seconds to answer.
        parsed = catalog_import_resolve(parse_source(source=source, fmt=fmt, service=service, content=content))
        if not _has_examples(parsed):
            with transaction.atomic():
                report = catalog_import_parsed(parsed=parsed, source=source)
                _examples_migrate(report, by=by, job=job)
                catalog_import_audit(report=report, by=by, source=source, job=job)
            return report
    except FtopsError as exc:
        catalog_import_failure_audit(exc, source=source, fmt=fmt, by=by, job=job)
        raise
    return _documents_import(parsed, source=source, by=by, skip_invalid=skip_invalid)


def _documents_import(parsed: Parsed, *, source: str, by: Actor, skip_invalid: bool) -> ImportReport:
    """Record the documents as a job and hand it to curation (which audits success and failure)."""
    with transaction.atomic():
        job = CatalogImportJob.objects.create(
            kind=ImportKind.DOCUMENTS, source=source[:2000], documents=parsed.documents, skip_invalid=skip_invalid,
            actor=by.label[:200], user=by.user if by.user_id is not None else None, api_key=by.api_key, ip=by.ip,
        )
        if not _tasks_run_in_process():
            transaction.on_commit(lambda: catalog_import_job_publish(job_id=job.pk))
    if not _tasks_run_in_process():
        return ImportReport(source=source, fmt=parsed.fmt, job=job.pk, pending=True,
                            duplicates=list(parsed.duplicates), notes=list(parsed.notes))
    _curation_task(EXAMPLES_IMPORT_TASK, {"job_id": job.pk})
    job.refresh_from_db()
    if job.status == JobStatus.SUCCEEDED:
        return ImportReport.from_dict(job.result or {}, job=job.pk)
    error = job.error or {}
    if error.get("code") == "internal_error":
        # A bug, not the caller's input: a server error, as if the import had run here.
        raise RuntimeError(f"catalog import job {job.pk} failed unexpectedly; the server log has the details")
    raise ImportFailed(str(error.get("message") or f"import job {job.pk} did not finish ({job.status})"),
                       fields=error.get("fields") or {})


def catalog_import_job_actor(job: CatalogImportJob) -> Actor:
    """Who asked for ``job``: its worker audits as them."""
    return Actor(label=job.actor, user=job.user, api_key=job.api_key, ip=job.ip)


def _source_label(source: str) -> str:
    """``source`` as an audit row can hold it: no credentials, no NUL, no lone surrogate."""
    text = redact_url(source).replace("\x00", "")
    return text.encode("utf-8", errors="replace").decode("utf-8")[:120]


def catalog_import_failure_audit(exc: FtopsError, *, source: str, fmt: str | None, by: Actor,
                                 job: int | None) -> None:
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


def catalog_import_internal_failure_audit(exc: Exception, *, source: str, by: Actor, job: int) -> None:
    """The audit row of an import that failed on a bug (the log has the traceback)."""
    with transaction.atomic():
        audit_record(action=AuditAction.CATALOG_IMPORT_FAILED, by=by, object_type="catalog_import",
                     object_id=_source_label(source),
                     detail={"job": job, "kind": "internal", "reason": f"{type(exc).__name__}: {exc}"[:1000]})


INTERNAL_ERROR = error_dict("internal_error", "the import failed unexpectedly; the server log has the details")


# ---------------------------------------------------------------- imports as jobs

def catalog_import_job_create(*, url: str, by: Actor, service: str | None = None,
                              skip_invalid: bool = False) -> CatalogImportJob:
    """A pending job for an MCP URL import, published to a worker once the row is committed.

    The row is the outbox: when the broker is down, it stays pending and the reaper's sender
    (``catalog_import_jobs_reap``) publishes it later, so the caller can rely on the 202.
    """
    with transaction.atomic():
        job = CatalogImportJob.objects.create(
            kind=ImportKind.URL, source=url, service=service or "", skip_invalid=skip_invalid, actor=by.label[:200],
            user=by.user if by.user_id is not None else None, api_key=by.api_key, ip=by.ip,
        )
        transaction.on_commit(lambda: catalog_import_job_publish(job_id=job.pk))
    return job


def _job_publish(pk: int) -> None:
    """Send the job's task: the catalog's own for a URL, curation's (by name) for documents."""
    kind = CatalogImportJob.objects.filter(pk=pk).values_list("kind", flat=True).first()
    name = EXAMPLES_IMPORT_TASK if kind == ImportKind.DOCUMENTS else CATALOG_JOB_TASK
    if name not in current_app.tasks:
        current_app.loader.import_default_modules()
    current_app.signature(name, kwargs={"job_id": pk}).delay()


def catalog_import_job_publish(*, job_id: int) -> bool:
    """Hand the job to the broker; False (and the row stays pending) when that fails."""
    try:
        _job_publish(job_id)
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
    job = job_claim(CatalogImportJob, pk=job_id, owner=owner, where=Q(kind=ImportKind.URL))
    if job is None:
        return None
    by = catalog_import_job_actor(job)
    try:
        report = catalog_import(source=job.source, fmt="mcp-http", service=job.service or None,
                                skip_invalid=job.skip_invalid, by=by, job=job.pk)
    except FtopsError as exc:  # audited by catalog_import
        job_fail(CatalogImportJob, pk=job.pk, owner=owner, error=error_dict(exc.code, exc.message, exc.fields))
    except Exception as exc:
        logger.exception("catalog import job %s failed unexpectedly", job.pk)
        catalog_import_internal_failure_audit(exc, source=job.source, by=by, job=job.pk)
        job_fail(CatalogImportJob, pk=job.pk, owner=owner, error=INTERNAL_ERROR)
    else:
        job_finish(CatalogImportJob, pk=job.pk, owner=owner, fields={"result": report.as_dict()})
    job.refresh_from_db()
    return job


def catalog_import_job_record_migration(*, job_id: int, migrated: int, flagged: int) -> None:
    """Add a worker's schema-migration counts to its import job (broker mode).

    Kept in ``progress_counts``, which finishing the job leaves alone: the migration may
    finish before the import job writes its ``result``. The job's API adds them to the result.
    """
    with transaction.atomic():
        job = CatalogImportJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            return
        counts = dict(job.progress_counts or {})
        counts["examples_migrated"] = int(counts.get("examples_migrated") or 0) + migrated
        counts["examples_flagged"] = int(counts.get("examples_flagged") or 0) + flagged
        job.progress_counts = counts
        job.save(update_fields=["progress_counts", "updated_at"])


def catalog_import_jobs_reap() -> dict[str, Any]:
    """Beat: re-queue imports whose worker died, and publish pending ones the broker never got."""
    return jobs_reap(CatalogImportJob, publish=_job_publish, resend_after_s=600).as_dict()


def catalog_import_documents(*, documents: list[dict[str, Any]], source: str,
                             skip_invalid: bool = False) -> ImportReport:
    """Per-tool training-data documents -> services, tools, schema versions and examples."""
    return catalog_import(source=source, fmt="tool-docs", content=documents, skip_invalid=skip_invalid)


def load_sample_enterprise(*, seed: int = 7) -> ImportReport:
    """Import the generated acme enterprise (services, 18 tools, their examples)."""
    from ftops.catalog.sample import build_sample_enterprise

    enterprise = build_sample_enterprise(seed)
    return catalog_import_documents(documents=enterprise.tool_documents, source=f"sample:acme:seed={seed}")
