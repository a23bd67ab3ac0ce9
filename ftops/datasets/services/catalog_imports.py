"""Catalog imports that carry training examples: the use-case above the catalog and curation.

The catalog (one floor down) records per-tool documents with examples as a documents
``CatalogImportJob`` and sends ``catalog_import_examples_task`` by name. Here, in one
transaction, the catalog's own services write the services, tools and schema versions, the
examples are validated with curation's rules and stored, the older examples of tools whose
schema changed are moved (or flagged), and the job finishes with the import report. So an
import with one invalid example still writes nothing (unless ``skip_invalid``), as when the
catalog wrote examples itself.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from django.db import transaction
from django.db.models import Q

from ftops.catalog.importers import ImportFailed, Parsed, lenient_ask_schema
from ftops.catalog.models import CatalogImportJob, ImportKind, Service, ToolSchemaVersion
from ftops.catalog.selectors import tool_schema_map, tool_schema_versions
from ftops.catalog.services import (
    INTERNAL_ERROR,
    ImportReport,
    catalog_import_audit,
    catalog_import_documents_parse,
    catalog_import_failure_audit,
    catalog_import_internal_failure_audit,
    catalog_import_job_actor,
    catalog_import_parsed,
)
from ftops.common.errors import FtopsError, ValidationFailed
from ftops.common.jobs import error_dict, job_claim, job_fail, job_finish, worker_identity
from ftops.datasets.models import TrainingExample
from ftops.datasets.services.examples import example_validate_and_prepare
from ftops.datasets.services.schema_evolution import examples_migrate_tools

logger = logging.getLogger(__name__)


class _LeaseLost(Exception):
    """Another worker owns the job now: roll back, it imports the documents itself."""


# ---------------------------------------------------------------- document examples -> fields

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


def _tool_services(example: dict[str, Any]) -> dict[str, str]:
    refs = example.get("tool_services")
    return {str(k): str(v) for k, v in refs.items()} if isinstance(refs, dict) else {}


# ---------------------------------------------------------------- examples of documents

def examples_import_documents(*, parsed: Parsed, report: ImportReport, skip_invalid: bool) -> None:
    """Validate every example of ``parsed``'s documents, then store the new ones in bulk.

    Validation and the content hash are ``example_validate_and_prepare``'s (what
    ``example_create`` runs); rows are written in one ``bulk_create``: the sample enterprise
    alone has ~750 examples. A call to another service's tool (the document's ``tool_services``,
    set by the catalog's resolution) is checked against that tool's schema and kept in the
    example's provenance, so the example offers that tool and never a copy of it.
    """
    services = {s.name: s for s in Service.objects.filter(name__in={d["service"] for d in parsed.documents})}
    schemas = {name: tool_schema_map(svc) for name, svc in services.items()}
    refs = {(svc, name) for doc in parsed.documents for item in _document_examples(doc)
            for name, svc in _tool_services(item[2]).items()}
    others = tool_schema_versions(refs=refs)
    errors: dict[str, Any] = {}
    prepared: list[tuple[Service, dict[str, Any], dict[str, Any]]] = []
    for d_index, doc in enumerate(parsed.documents):
        service = services[doc["service"]]
        for key, e_index, example in _document_examples(doc):
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
            elsewhere = _tool_services(example)
            example_schemas = schemas[doc["service"]]
            if elsewhere:
                example_schemas = {**example_schemas, **{name: others[(svc, name)] for name, svc in elsewhere.items()
                                                         if (svc, name) in others}}
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
            provenance: dict[str, Any] = {"import_source": report.source[:300], "document_tool": doc["tool"]}
            if elsewhere:
                provenance["tool_services"] = elsewhere
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


def _document_examples(doc: dict[str, Any]) -> list[tuple[str, int, Any]]:
    items = [("training_examples", i, e) for i, e in enumerate(doc.get("training_examples") or [])]
    return items + [("edge_cases", i, e) for i, e in enumerate(doc.get("edge_cases") or [])]


# ---------------------------------------------------------------- the documents job

def catalog_import_examples_run(*, job_id: int) -> CatalogImportJob | None:
    """Claim and run one documents import; None when another worker holds it or it is finished.

    Parsing, the catalog's writes, the examples, the schema migration, the audit row and
    ``job_finish`` share one transaction: a worker that lost its lease rolls everything back,
    and a second delivery finds the job finished. No heartbeat: the writes take seconds.
    """
    owner = worker_identity()
    job = job_claim(CatalogImportJob, pk=job_id, owner=owner, where=Q(kind=ImportKind.DOCUMENTS))
    if job is None:
        return None
    by = catalog_import_job_actor(job)
    try:
        parsed = catalog_import_documents_parse(job=job)
        with transaction.atomic():
            report = catalog_import_parsed(parsed=parsed, source=job.source)
            examples_import_documents(parsed=parsed, report=report, skip_invalid=job.skip_invalid)
            migration = examples_migrate_tools(tool_ids=report.changed_tools, actor=by.label)
            report.examples_migrated, report.examples_flagged = migration["migrated"], migration["flagged"]
            report.job = job.pk
            catalog_import_audit(report=report, by=by, source=job.source, job=job.pk)
            if not job_finish(CatalogImportJob, pk=job.pk, owner=owner, fields={"result": report.as_dict()}):
                raise _LeaseLost
    except _LeaseLost:
        logger.warning("catalog import job %s: lease lost; its new owner imports it", job.pk)
    except FtopsError as exc:
        catalog_import_failure_audit(exc, source=job.source, fmt="tool-docs", by=by, job=job.pk)
        job_fail(CatalogImportJob, pk=job.pk, owner=owner, error=error_dict(exc.code, exc.message, exc.fields))
    except Exception as exc:
        logger.exception("catalog import job %s failed unexpectedly", job.pk)
        catalog_import_internal_failure_audit(exc, source=job.source, by=by, job=job.pk)
        job_fail(CatalogImportJob, pk=job.pk, owner=owner, error=INTERNAL_ERROR)
    job.refresh_from_db()
    return job
