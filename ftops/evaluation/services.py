"""Writes for evaluation: suites, BFCL import, runs (create, execute, store) and their failures.

``evaluate_records`` and ``EvalReport`` (pure, in ``ftops.core.harness``) are re-exported
here: they are what the demo and acceptance checks call directly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ftops.common.actors import Actor
from ftops.common.credentials import upstream_credential_exists, upstream_credential_get_secret
from ftops.common.errors import Conflict, NotFound, ValidationFailed
from ftops.common.jobs import (
    TRANSIENT_ERRORS,
    JobHeartbeat,
    error_dict,
    job_claim,
    job_fail,
    job_finish,
    job_heartbeat,
    job_mark_enqueued,
    job_release,
    jobs_reap,
    worker_identity,
)
from ftops.common.models import AuditAction
from ftops.common.services import audit_record
from ftops.core.adapters import (
    AdapterConfigError,
    FewShotAdapter,
    ModelAdapter,
    adapter_from_config,
    confined_file,
    relative_to_root,
    validate_adapter_config,
)
from ftops.core.fewshot import FewShotConfig, build_fewshot
from ftops.core.harness import EvalReport, RecordResult, evaluate_records
from ftops.core.records import Record
from ftops.core.scoring import expected_summary, got_summary
from ftops.evaluation.bfcl_multi_turn import MultiTurnResult, evaluate_with_multi_turn
from ftops.evaluation.bfcl_multi_turn import failure_summaries as multi_turn_failure_summaries
from ftops.evaluation.models import EvalCase, EvalFailure, EvalRun, EvalSuite, RunStatus, SuiteKind

__all__ = [
    "EvalReport",
    "RunCancelled",
    "bfcl_suite_import",
    "eval_run_cancel",
    "eval_run_create",
    "eval_run_execute",
    "eval_run_store_report",
    "eval_runs_reap",
    "eval_suite_for_dataset",
    "evaluate_records",
]

log = logging.getLogger(__name__)

EVAL_SPLITS = ("train", "validation", "test", "holdout")
PROGRESS_EVERY = 64  # records per adapter call: the progress (and heartbeat) granularity


class RunCancelled(Exception):
    """Raised inside a run when its row was cancelled meanwhile, or its lease went to another worker."""


# --------------------------------------------------------------------------- suites


@transaction.atomic
def eval_suite_for_dataset(*, dataset_version: Any, split: str) -> EvalSuite:
    """The suite of one split of a dataset version (created once)."""
    if split not in EVAL_SPLITS:
        raise ValidationFailed(f"unknown split {split!r}", fields={"split": [f"one of {list(EVAL_SPLITS)}"]})
    status = getattr(dataset_version, "status", "ready")
    if status != "ready":
        raise ValidationFailed(f"{dataset_version} is {status}, not ready",
                               fields={"dataset_version": ["choose a built (ready) dataset version"]})
    suite, _ = EvalSuite.objects.get_or_create(
        kind=SuiteKind.DATASET, dataset_version=dataset_version, split=split,
        defaults={"name": f"dataset v{dataset_version.number} {split}",
                  "source": f"dataset version {dataset_version.pk}"},
    )
    return suite


@dataclass(frozen=True)
class SuiteImport:
    suite: EvalSuite
    created: bool
    unchanged: bool
    cases: int


def bfcl_suite_import(*, data_dir: Path, categories: Sequence[str] | None = None, name: str = "bfcl") -> SuiteImport:
    """Import BFCL question and answer files as a suite (idempotent). Without ``categories``
    every single-turn category; ``multi_turn_base`` when named (``Record``'s multi_turn kind).

    Importing the same files again changes nothing; different content under a name that
    runs already use is refused, since their scores would no longer match their cases.
    """
    from ftops.evaluation.bfcl import BfclDataError, available_categories, entry_record, load_category

    name = name.strip()
    if not name:
        raise ValidationFailed("a suite name is required", fields={"name": ["e.g. 'bfcl'"]})
    try:
        known = available_categories(data_dir, multi_turn=True)
        # Multi-turn categories are imported when named: scoring them needs bfcl-eval's back-ends,
        # and a default that grew would make re-importing the same folder under a used name fail.
        chosen = list(categories) if categories else available_categories(data_dir)
        unknown = [c for c in chosen if c not in known]
        if unknown:
            raise ValidationFailed(f"no BFCL files for {unknown} in {data_dir}",
                                   fields={"categories": [f"choose from {known}"]})
        records = [entry_record(entry) for category in chosen for entry in load_category(data_dir, category)]
    except BfclDataError as exc:
        raise ValidationFailed(str(exc), fields={"data_dir": [str(exc)]}) from exc
    if not records:
        raise ValidationFailed(f"no BFCL entries found in {data_dir}", fields={"data_dir": ["no question files"]})
    payload = [r.to_dict() for r in records]
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    counts = dict(Counter(str(r.meta["bfcl_category"]) for r in records))
    with transaction.atomic():
        suite = EvalSuite.objects.select_for_update().filter(name=name).first()
        if suite is not None:
            if suite.content_hash == digest:
                return SuiteImport(suite, created=False, unchanged=True, cases=suite.case_count)
            if suite.kind != SuiteKind.BFCL or suite.runs.exists():
                raise Conflict(f"suite {name!r} already exists with other content and is in use; "
                               "import under another --name", fields={"name": ["choose a new suite name"]})
            suite.cases.all().delete()
            created = False
        else:
            suite = EvalSuite(name=name, kind=SuiteKind.BFCL)
            created = True
        suite.source = str(data_dir)[:300]
        suite.content_hash = digest
        suite.case_count = len(records)
        suite.categories = counts
        suite.save()
        EvalCase.objects.bulk_create(
            [EvalCase(suite=suite, position=i, case_id=r.id, category=str(r.meta["bfcl_category"]), record=d)
             for i, (r, d) in enumerate(zip(records, payload, strict=True))],
            batch_size=500,
        )
    return SuiteImport(suite, created=created, unchanged=False, cases=len(records))


def suite_records(suite: EvalSuite, *, categories: Sequence[str] = (), limit: int | None = None) -> list[Record]:
    """The records a run on ``suite`` scores, in the suite's fixed order."""
    if suite.kind == SuiteKind.DATASET:
        from ftops.datasets.selectors import dataset_records

        if suite.dataset_version is None:
            raise ValidationFailed(f"suite {suite.name} has lost its dataset version")
        records = dataset_records(version=suite.dataset_version, split=suite.split,
                                  allow_holdout=suite.split == "holdout")
        if categories:
            from ftops.core.scoring import record_category

            records = [r for r in records if record_category(r) in categories]
    else:
        cases = suite.cases.order_by("position")
        if categories:
            cases = cases.filter(category__in=list(categories))
        if limit:
            cases = cases[:limit]
        records = [Record.from_dict(c.record) for c in cases]
    return records[:limit] if limit else records


# --------------------------------------------------------------------------- runs


# The registry sits above this app, so it cannot be imported here: it hands its resolver down
# when it starts (``registry.apps``). The resolver builds the config from the version's
# ``serving`` record, which registration wrote from the backend that trained it.
ModelVersionResolver = Callable[[int], tuple[dict[str, Any], str]]
_model_version_resolver: ModelVersionResolver | None = None


def model_version_resolver_set(resolver: ModelVersionResolver | None) -> None:
    global _model_version_resolver
    _model_version_resolver = resolver


def adapter_config_for_model_version(model_version_id: int) -> tuple[dict[str, Any], str]:
    """(adapter config, label) of a registry model version, as the registry resolves it."""
    if _model_version_resolver is None:
        raise ValidationFailed("the model registry is not available",
                               fields={"model_version_id": ["give adapter_config instead"]})
    return _model_version_resolver(model_version_id)


def adapter_label(config: dict[str, Any]) -> str:
    kind = config.get("kind")
    if kind == "openai":
        return f"{config['model']} via {config['credential']}"
    if kind == "hf_local":
        label = Path(str(config["model_path"])).name
        return label + (f" + {Path(str(config['adapter_path'])).name}" if config.get("adapter_path") else "")
    if kind == "fewshot":
        source = config.get("examples_from")
        origin = f" (dataset v{source['dataset_version']} {source['split']})" if source else ""
        return f"few-shot{origin}: {adapter_label(config['inner'])}"
    return f"replay: {Path(str(config.get('path', ''))).name}"


def eval_run_create(
    *,
    suite: EvalSuite,
    adapter_config: dict[str, Any] | None = None,
    model_version_id: int | None = None,
    name: str = "",
    limit: int | None = None,
    categories: Sequence[str] = (),
    created_by: str = "",
    by: Actor | None = None,
    enqueue: bool = True,
) -> EvalRun:
    """A queued run; its task starts once the transaction commits (with ``enqueue``).

    Checked here, where a caller's input enters: named credentials exist (an endpoint or a key
    cannot be named at all) and a replay file lies inside the artifacts folder. The adapter
    checks the file again when the run starts, since the folder may have changed meanwhile.
    """
    actor = by or Actor.system(created_by or "system")
    label = ""
    if model_version_id is not None and adapter_config:
        raise ValidationFailed("give either model_version_id or adapter_config, not both",
                               fields={"adapter_config": ["leave out when a model version is given"]})
    if model_version_id is not None:
        adapter_config, label = adapter_config_for_model_version(model_version_id)
    if not adapter_config:
        raise ValidationFailed("say which model to evaluate",
                               fields={"adapter_config": ["give adapter_config or model_version_id"]})
    try:
        clean = validate_adapter_config(adapter_config)
        _check_references(clean)
    except AdapterConfigError as exc:
        raise ValidationFailed(f"adapter_config is invalid: {exc}",
                               fields={f"adapter_config.{exc.field}": [exc.message]}) from None
    if limit is not None and limit < 1:
        raise ValidationFailed("limit must be at least 1", fields={"limit": ["a positive number of cases"]})
    categories = [str(c) for c in categories]
    if categories and suite.kind == SuiteKind.BFCL:
        unknown = [c for c in categories if c not in suite.categories]
        if unknown:
            raise ValidationFailed(f"suite {suite.name} has no categories {unknown}",
                                   fields={"categories": [f"choose from {sorted(suite.categories)}"]})
    _check_multi_turn_backends(suite, categories)
    with transaction.atomic():
        run = EvalRun.objects.create(
            name=name.strip()[:200], suite=suite, model_version_id=model_version_id,
            model_label=(label or adapter_label(clean))[:200], adapter_config=clean, case_limit=limit,
            category_filter=categories, created_by=(created_by or actor.label)[:200],
        )
        credentials = _credential_names(clean)
        audit_record(action=AuditAction.EVALUATION_RUN_CREATED, by=actor, object_type="evaluation_run",
                     object_id=run.pk, detail={"adapter_kind": clean["kind"], "credential": credentials[0] if
                                               credentials else "", "suite": suite.name,
                                               "model_version_id": model_version_id, "model_label": run.model_label})
        if enqueue:
            run_id = run.pk
            transaction.on_commit(lambda: _publish(run_id))
        else:
            # The caller runs it now: the reaper's sender leaves it alone unless it stays unclaimed.
            EvalRun.objects.filter(pk=run.pk).update(enqueued_at=timezone.now())
    return run


def _check_multi_turn_backends(suite: EvalSuite, categories: Sequence[str]) -> None:
    """Multi-turn cases run against bfcl-eval's back-end classes: without the package a run
    would only fail on the worker, so it is refused here, saying how to install it."""
    from ftops.evaluation.bfcl import MULTI_TURN_CATEGORIES
    from ftops.evaluation.bfcl_official import INSTALL_HINT, installed

    scored = categories or list(suite.categories or {})
    if suite.kind == SuiteKind.BFCL and any(c in MULTI_TURN_CATEGORIES for c in scored) and not installed():
        raise ValidationFailed(f"suite {suite.name} has multi-turn cases: {INSTALL_HINT}",
                               fields={"categories": ["leave out the multi-turn categories, or install bfcl-eval"]})


def _publish(run_id: int) -> None:
    from ftops.evaluation.tasks import eval_run_execute_task

    eval_run_execute_task.delay(run_id)
    job_mark_enqueued(EvalRun, pk=run_id)


def _credential_names(config: dict[str, Any]) -> list[str]:
    names = [config["credential"]] if config["kind"] == "openai" else []
    return names + (_credential_names(config["inner"]) if config["kind"] == "fewshot" else [])


def _check_references(config: dict[str, Any], prefix: str = "") -> None:
    """Named credentials exist; a replay path is a readable file inside the artifacts folder
    (stored relative to it). Raises ``AdapterConfigError``; mutates ``config`` in place."""
    if config["kind"] == "fewshot":
        _check_references(config["inner"], "inner.")
    elif config["kind"] == "openai" and not upstream_credential_exists(config["credential"]):
        raise AdapterConfigError(f"{prefix}credential", f"no upstream credential named {config['credential']!r}; "
                                               "ask an admin to register it (manage.py upstream_credential)")
    elif config["kind"] == "replay":
        root = Path(settings.ARTIFACTS_DIR)
        try:
            config["path"] = relative_to_root(root, confined_file(root, config["path"]))
        except AdapterConfigError as exc:
            raise AdapterConfigError(f"{prefix}path", exc.message) from None


def _resolve_credential(name: str) -> tuple[str, str]:
    credential = upstream_credential_get_secret(name)
    return credential.base_url, credential.value


def _adapter(config: dict[str, Any]) -> ModelAdapter:
    """Credentials resolve to the base URL they were registered for; replay files are checked
    against the artifacts folder again, as it is now."""
    return adapter_from_config(config, credentials=_resolve_credential, files_root=Path(settings.ARTIFACTS_DIR))


def eval_run_execute(*, run_id: int, adapter: ModelAdapter | None = None, owner: str | None = None) -> EvalRun:
    """Claim a queued run under a lease, evaluate and store the results. Running it twice is
    harmless: the second call finds the run claimed (or finished) and returns it unchanged.

    A transient database error gives the run back and is raised for the task's retry; any
    other error fails the run (the worker itself carries on).
    """
    if not EvalRun.objects.filter(pk=run_id).exists():
        raise NotFound(f"evaluation run {run_id} does not exist")
    owner = owner or worker_identity()
    if job_claim(EvalRun, pk=run_id, owner=owner, fields={"error": "", "progress_done": 0}) is None:
        return EvalRun.objects.get(pk=run_id)
    run = EvalRun.objects.select_related("suite", "suite__dataset_version").get(pk=run_id)
    lock = threading.Lock()  # progress writes and the heartbeat thread never write the row at once

    def beat(**fields: Any) -> None:
        with lock:
            held = job_heartbeat(EvalRun, pk=run_id, owner=owner, fields=fields)
        if not held:
            raise RunCancelled(run_id)

    try:
        with JobHeartbeat(EvalRun, pk=run_id, owner=owner, lock=lock):
            records = suite_records(run.suite, categories=run.category_filter, limit=run.case_limit)
            beat(progress_total=len(records))
            model = adapter or build_adapter(run.adapter_config)

            def progress(done: int, total: int) -> None:
                beat(progress_done=done, progress_total=total, progress=done / total if total else 0.0)

            # Several adapter batches per call: the HF adapter sorts each call's prompts by length.
            chunk = max(PROGRESS_EVERY, 4 * int(run.adapter_config.get("batch_size") or 0))
            report = evaluate_with_multi_turn(adapter=model, records=records, batch_size=chunk,
                                              on_progress=progress)
            if isinstance(model, FewShotAdapter):
                report.meta["fewshot_prompt"] = model.prompt
    except RunCancelled:
        return EvalRun.objects.get(pk=run_id)
    except TRANSIENT_ERRORS as exc:
        job_release(EvalRun, pk=run_id, owner=owner, error=error_dict("transient", f"{type(exc).__name__}: {exc}"))
        raise
    except Exception as exc:  # a run records why it failed; the worker itself carries on
        log.exception("evaluation run %s failed", run_id)
        job_fail(EvalRun, pk=run_id, owner=owner, error=error_dict("failed", f"{type(exc).__name__}: {exc}"))
        return EvalRun.objects.get(pk=run_id)
    return eval_run_store_report(run=run, report=report, owner=owner)


def eval_runs_reap() -> dict[str, Any]:
    """Re-queue runs whose worker died (or fail them after ``max_attempts``) and publish queued
    runs the broker never got; on beat, and in the embedded mode from the scheduler."""
    def publish(pk: int) -> None:
        from ftops.evaluation.tasks import eval_run_execute_task

        eval_run_execute_task.delay(pk)

    return jobs_reap(EvalRun, publish=publish, resend_after_s=900).as_dict()


def build_adapter(config: dict[str, Any]) -> ModelAdapter:
    """The adapter a stored config names; few-shot prompts drawn from a dataset are built here,
    since choosing their examples reads the dataset and the catalog's vocabulary."""
    if config.get("kind") != "fewshot" or "examples_from" not in config:
        return _adapter(config)
    from ftops.catalog.selectors import service_vocabularies
    from ftops.core.vocabulary import vocabulary_rules
    from ftops.datasets.selectors import dataset_records, version_get

    source = config["examples_from"]
    pool = dataset_records(version=version_get(number=source["dataset_version"]), split=source["split"])
    # The training backend's builder and rules: the prompt scored here is the one training ships.
    rules = vocabulary_rules(service_vocabularies(names={r.service for r in pool}))
    built = build_fewshot(pool, FewShotConfig(max_examples=source["max_examples"]), rules=rules)
    return FewShotAdapter(_adapter(config["inner"]), built.prompt)


def _failure_row(run: EvalRun, result: RecordResult) -> EvalFailure:
    record, score = result.record, result.score
    raw = "\n---\n".join(o.raw for o in result.outputs if o.raw)
    if isinstance(result, MultiTurnResult):
        expected, got = multi_turn_failure_summaries(result)
    else:
        expected, got = expected_summary(record), got_summary(result.outputs)
    return EvalFailure(
        run=run, record_id=record.id[:120], category=score.category[:40], service=record.service[:120],
        tool=record.tool[:200], dimension=record.dimension[:20], behavior=record.behavior[:20],
        error_type=(score.error_type or "unknown")[:80], error=score.error, user_query=record.user_query,
        expected=expected, got=got, raw=raw[:20000],
        partial={"tool": score.tool, "args": score.args, "values": score.values,
                 "steps_passed": score.steps_passed, "steps_total": score.steps_total},
    )


@transaction.atomic
def eval_run_store_report(*, run: EvalRun, report: EvalReport, owner: str) -> EvalRun:
    """Metrics and failures of a finished evaluation, stored once (replaces any earlier), and
    only while ``owner`` holds the run: a cancelled run, or one a new owner took, is left alone."""
    run = EvalRun.objects.select_for_update().get(pk=run.pk)
    if run.status != RunStatus.RUNNING or run.lease_owner != owner:
        return run
    run.failures.all().delete()
    EvalFailure.objects.bulk_create([_failure_row(run, r) for r in report.failures()], batch_size=500)
    job_finish(EvalRun, pk=run.pk, owner=owner, fields={
        "metrics": {**report.summary(), **report.meta}, "exact": report.exact,
        "progress_done": report.n, "progress_total": report.n,
    })
    run.refresh_from_db()
    return run


@transaction.atomic
def eval_run_cancel(*, run: EvalRun) -> EvalRun:
    """Cancel a run that has not finished (a queued one never starts)."""
    # Ends the lease too: the worker's next beat finds the run gone and stops.
    updated = EvalRun.objects.filter(pk=run.pk, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
        status=RunStatus.CANCELLED, finished_at=timezone.now(), lease_owner="", lease_expires_at=None)
    run.refresh_from_db()
    if not updated and run.status != RunStatus.CANCELLED:
        raise Conflict(f"run {run.pk} has already {run.status}")
    return run
