"""Dataset versions: curate (dedup, diversity), split three ways, check contamination, snapshot.

A build is a ``DatasetVersion`` row that goes pending -> running -> ready (or failed), a job
of the shared runtime (``ftops.common.jobs``): the queue task claims it under a lease, so a
redelivered task does nothing; a heartbeat thread keeps the lease while it embeds; members
and the "ready" are committed in one transaction only while the lease is still held, so a
worker that dies half-way leaves nothing behind, and the reaper re-queues its build for the
next worker. Database trouble releases the build for the task's retry; anything else fails
it. Once ready, a version never changes: members hold a snapshot of each record, and its content
hash covers the seed, the parameters and every (example content hash, split, dimension),
so the same inputs built with the same seed give the same hash.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.db.models.functions import Coalesce
from django.utils import timezone

from ftops.common.actors import Actor
from ftops.common.errors import Conflict, ValidationFailed
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
from ftops.core.records import argument_values
from ftops.datasets.config import CurationConfig, load_config
from ftops.datasets.dedup import components, diversity_score, greedy_select, nearest_similarity, similar_pairs
from ftops.datasets.embeddings import Embedder
from ftops.datasets.models import (
    DatasetMembership,
    DatasetVersion,
    ExampleStatus,
    Quality,
    RunStatus,
    Source,
    Split,
    TrainingExample,
)
from ftops.datasets.selectors import record_from_example, schema_maps
from ftops.datasets.splitting import (
    HOLDOUT,
    MULTI,
    SHARE_TOLERANCE,
    TEST,
    TRAIN,
    Item,
    SplitParams,
    assign_splits,
    phrasing_template,
)
from ftops.datasets.validation import stable_json

log = logging.getLogger(__name__)

DEFAULT_PARAMS: dict[str, Any] = {
    "dedup": True,  # drop near-duplicates (cosine >= dedup_threshold) with the same expected behaviour
    "diversity": True,  # greedy diversity selection (< diversity_threshold) over production/synthetic examples
    "rotation": 0,  # which window of the seeded tool order is held out as zero-shot tools
    "time_holdout_days": None,  # None: from the config file; N > 0: the last N days go to holdout
    "services": [],  # restrict to these services (empty: all)
    "min_quality": "low",
    "phrasing_threshold": 0.9,  # masked wordings at or above this cosine are one phrasing group
}
QUALITY_RANK: dict[str, int] = {Quality.HIGH: 0, Quality.MEDIUM: 1, Quality.LOW: 2}
SOURCE_RANK: dict[str, int] = {Source.CORRECTION: 0, Source.MANUAL: 1, Source.DISCOVERED: 2, Source.PRODUCTION: 3,
               Source.SYNTHETIC: 4}
MACHINE_SOURCES = {Source.PRODUCTION, Source.SYNTHETIC}


def normalise_params(params: dict[str, Any] | None, cfg: CurationConfig) -> dict[str, Any]:
    params = dict(params or {})
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise ValidationFailed(f"unknown build parameter(s) {unknown}",
                               fields={k: [f"known parameters are {sorted(DEFAULT_PARAMS)}"] for k in unknown})
    out = {**DEFAULT_PARAMS, **params}
    if out["time_holdout_days"] is None:
        out["time_holdout_days"] = cfg.splits.time_holdout_days
    errors: dict[str, list[str]] = {}
    for key in ("dedup", "diversity"):
        if not isinstance(out[key], bool):
            errors[key] = ["true or false"]
    for key in ("rotation", "time_holdout_days"):
        if isinstance(out[key], bool) or not isinstance(out[key], int) or out[key] < 0:
            errors[key] = ["a whole number >= 0"]
    if not isinstance(out["services"], list) or not all(isinstance(s, str) for s in out["services"]):
        errors["services"] = ["a list of service names"]
    if out["min_quality"] not in Quality.values:
        errors["min_quality"] = [f"one of {list(Quality.values)}"]
    pt = out["phrasing_threshold"]
    if isinstance(pt, bool) or not isinstance(pt, int | float) or not 0 < pt <= 1:
        errors["phrasing_threshold"] = ["a number in (0, 1]"]
    if errors:
        raise ValidationFailed("invalid build parameters; see 'fields'", fields=errors)
    out["services"] = sorted(set(out["services"]))
    # The thresholds and split shares in force are part of what the version is.
    out["config"] = {
        "dedup_threshold": cfg.dedup_threshold, "diversity_threshold": cfg.diversity_threshold,
        "splits": {"train": cfg.splits.train, "validation": cfg.splits.validation, "test": cfg.splits.test,
                   "holdout": cfg.splits.holdout, "zero_shot_tool_fraction": cfg.splits.zero_shot_tool_fraction,
                   "new_phrasing_fraction": cfg.splits.new_phrasing_fraction,
                   "sequence_train_share": cfg.splits.sequence_train_share,
                   "test_composition": dict(sorted(cfg.splits.test_composition.items()))},
    }
    return out


def expected_signature(example: TrainingExample) -> str:
    return hashlib.sha256(stable_json({"b": example.behavior, "e": example.expected}).encode()).hexdigest()


def _tool_key(service: str, tool: str) -> str:
    return f"{service}.{tool or '(none)'}"


def _called(example: TrainingExample) -> tuple[str, ...]:
    key = {"call": "calls", "sequence": "steps"}.get(example.behavior)
    items = example.expected.get(key, []) if key and isinstance(example.expected, dict) else []
    return tuple(sorted({_tool_key(example.service.name, c["name"]) for c in items
                         if isinstance(c, dict) and isinstance(c.get("name"), str)}))


_PUNCT = re.compile(r"[^\w]+")


def _normalised(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


@dataclass
class CurationResult:
    kept: list[TrainingExample]
    embeddings: np.ndarray  # rows aligned with ``kept``
    duplicates_removed: int = 0
    diversity_removed: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)


def curate(examples: Sequence[TrainingExample], *, embedder: Embedder, cfg: CurationConfig,
           dedup: bool = True, diversity: bool = True) -> CurationResult:
    """Dedup (tool-aware) and diversity selection over the examples' requests."""
    order = sorted(range(len(examples)), key=lambda k: (
        QUALITY_RANK.get(examples[k].quality, 9), SOURCE_RANK.get(examples[k].source, 9), examples[k].content_hash))
    examples = [examples[k] for k in order]  # type: ignore[assignment]  # a list from here on
    emb = embedder.embed([e.user_query for e in examples])
    sigs = [f"{e.service_id}:{expected_signature(e)}" for e in examples]
    conflicts: list[dict[str, Any]] = []
    keep = np.ones(len(examples), dtype=bool)
    duplicates = 0
    if dedup and len(examples):
        selection = greedy_select(emb, threshold=cfg.dedup_threshold, labels=sigs, conflict_labels=sigs)
        keep = selection.keep.copy()
        duplicates = int((~keep).sum())
        for a, b, cos in selection.conflicts:
            ea, eb = examples[a], examples[b]
            if ea.service_id != eb.service_id:
                continue  # each service offers its own tools: the same words may rightly mean other calls
            same_tools = _called(ea) == _called(eb) and ea.behavior == eb.behavior
            if same_tools and _normalised(ea.user_query) != _normalised(eb.user_query):
                # One template with other ids or amounts: two requests, not one request answered twice.
                continue
            conflicts.append({
                "examples": [ea.pk, eb.pk], "cosine": round(cos, 4),
                "queries": [ea.user_query, eb.user_query],
                "expected_tools": [sorted(_called(ea)) or [ea.behavior], sorted(_called(eb)) or [eb.behavior]],
                "kind": "different_arguments" if same_tools else "different_tool",
            })
    removed_by_diversity = 0
    if diversity and keep.any():
        idx = np.flatnonzero(keep)
        selection = greedy_select(emb[idx], threshold=cfg.diversity_threshold, labels=[sigs[k] for k in idx])
        # Only machine-made examples are thinned; people wrote the others on purpose.
        protected = np.array([examples[k].source not in MACHINE_SOURCES for k in idx], dtype=bool)
        drop = idx[~(selection.keep | protected)]
        keep[drop] = False
        removed_by_diversity = len(drop)
    kept_idx = np.flatnonzero(keep)
    return CurationResult(kept=[examples[k] for k in kept_idx], embeddings=emb[kept_idx],
                          duplicates_removed=duplicates, diversity_removed=removed_by_diversity,
                          conflicts=conflicts)


def _template_id(example: TrainingExample) -> str:
    prov = example.provenance if isinstance(example.provenance, dict) else {}
    value = prov.get("template_id") or prov.get("template") or ""
    return str(value)


def phrasing_groups(examples: list[TrainingExample], *, embedder: Embedder, threshold: float) -> list[str]:
    """A phrasing group per example, per tool: one family of wordings (a template).

    Examples whose generator recorded a template id share its group; on top of that, requests
    whose wording with the argument values masked out is nearly the same (cosine >=
    ``threshold``) are joined, so an unlabelled production request written from the same
    template as a labelled example lands in that example's group. Paraphrases join their
    original's group.
    """
    groups = [""] * len(examples)
    by_tool: dict[str, list[int]] = defaultdict(list)
    for k, e in enumerate(examples):
        by_tool[_tool_key(e.service.name, e.tool.name if e.tool else "")].append(k)
    by_pk = {e.pk: k for k, e in enumerate(examples)}
    for tool, members in sorted(by_tool.items()):
        local = {k: n for n, k in enumerate(members)}
        templates = [phrasing_template(examples[k].user_query, argument_values(examples[k].expected)) for k in members]
        emb = embedder.embed(templates)
        a, b, _ = similar_pairs(emb, threshold=threshold)
        edges_a, edges_b = list(a.tolist()), list(b.tolist())
        first_of: dict[str, int] = {}
        for n, k in enumerate(members):
            template_id = _template_id(examples[k])
            if template_id:
                edges_a.append(first_of.setdefault(template_id, n))
                edges_b.append(n)
            parent = examples[k].parent_id
            if parent in by_pk and by_pk[parent] in local:
                edges_a.append(local[by_pk[parent]])
                edges_b.append(n)
        comp = components(len(members), np.array(edges_a, dtype=np.int64), np.array(edges_b, dtype=np.int64))
        for n, root in enumerate(comp):
            key = f"{tool}\x00{examples[members[root]].content_hash}"
            groups[members[n]] = "p:" + hashlib.sha256(key.encode()).hexdigest()[:16]
    return groups


def _edge_case(example: TrainingExample) -> bool:
    prov = example.provenance if isinstance(example.provenance, dict) else {}
    return example.behavior != "call" or bool(prov.get("edge_case")) or len(example.expected.get("calls", [])) > 1


def quality_report(*, members: list[tuple[TrainingExample, str, str]], curation: CurationResult,
                   contamination_removed: int, zero_shot_tools: list[str], notes: list[str],
                   new_phrasing_groups: dict[str, list[str]], emb: np.ndarray,
                   share_targets: dict[str, float] | None = None,
                   composition_target: dict[str, float] | None = None) -> dict[str, Any]:
    """The version's quality report.

    ``test_composition`` holds, for seen_phrasing / new_phrasing / zero_shot_tool, their
    shares of the *single-step* test examples (what the configured 40/40/20 is about), and
    for multi_step its share of the *whole* test split: multi-step examples are a separate
    dimension that sits beside that composition inside the test's size. ``test_dimensions``
    has the counts. When a split's share ends further than ``SHARE_TOLERANCE`` from its
    target, a note says so; the split notes before it say why.
    """
    per_tool: dict[str, dict[str, Any]] = {}
    sources: Counter[str] = Counter()
    qualities: Counter[str] = Counter()
    behaviors: Counter[str] = Counter()
    splits: Counter[str] = Counter()
    test_dims: Counter[str] = Counter()
    for example, split, dimension in members:
        tool = _tool_key(example.service.name, example.tool.name if example.tool else "")
        row = per_tool.setdefault(tool, {"total": 0, "train": 0, "validation": 0, "test": 0, "holdout": 0,
                                         "edge_cases": 0, "behaviors": {}})
        row["total"] += 1
        row[split] += 1
        row["behaviors"][example.behavior] = row["behaviors"].get(example.behavior, 0) + 1
        if _edge_case(example):
            row["edge_cases"] += 1
        sources[example.source] += 1
        qualities[example.quality] += 1
        behaviors[example.behavior] += 1
        splits[split] += 1
        if split == TEST:
            test_dims[dimension] += 1
    for row in per_tool.values():
        row["edge_case_coverage"] = round(row["edge_cases"] / row["total"], 3)
    real_tools = {t: r for t, r in per_tool.items() if not t.endswith(".(none)")}
    average = sum(r["total"] for r in real_tools.values()) / len(real_tools) if real_tools else 0.0
    total = len(members)
    test_total = sum(test_dims.values())
    single_test = test_total - test_dims.get(MULTI, 0)
    composition = {k: round(v / single_test, 3) for k, v in sorted(test_dims.items()) if k != MULTI and single_test}
    if test_total:
        composition[MULTI] = round(test_dims.get(MULTI, 0) / test_total, 3)
    shares = {s: round(splits.get(s, 0) / total, 3) if total else 0.0 for s in Split.values}
    targets = dict(share_targets or {})
    drift = {s: shares[s] - targets[s] for s in Split.values if s in targets}
    if total and any(abs(d) > SHARE_TOLERANCE + 1e-9 for d in drift.values()):
        notes = [*notes, "split shares drift more than {:g} points from their targets: {}".format(
            SHARE_TOLERANCE * 100, ", ".join(f"{s} {shares[s]:.3f} (target {targets[s]:g})" for s in drift))]
    return {
        "total_examples": total,
        "tools_covered": len(real_tools),
        "examples_per_tool": {t: r["total"] for t, r in sorted(per_tool.items())},
        "average_per_tool": round(average, 2),
        "imbalanced_tools": sorted(t for t, r in real_tools.items() if r["total"] < average / 2),
        "per_tool": dict(sorted(per_tool.items())),
        "unique_queries": len({_normalised(e.user_query) for e, _, _ in members}),
        "diversity_score": round(diversity_score(emb), 4) if len(emb) else 0.0,
        "source_mix": dict(sorted(sources.items())),
        "quality_mix": dict(sorted(qualities.items())),
        "behavior_mix": dict(sorted(behaviors.items())),
        "high_quality_count": qualities.get(Quality.HIGH, 0),
        "split_sizes": {s: splits.get(s, 0) for s in Split.values},
        "split_shares": shares,
        "split_targets": targets,
        "test_dimensions": dict(sorted(test_dims.items())),
        "test_composition": composition,
        "test_composition_target": dict(sorted((composition_target or {}).items())),
        "zero_shot_tools": zero_shot_tools,
        "new_phrasing_groups": {t: len(g) for t, g in sorted(new_phrasing_groups.items()) if g},
        "duplicates_removed": curation.duplicates_removed,
        "diversity_removed": curation.diversity_removed,
        "contamination_removed": contamination_removed,
        "conflicts_count": len(curation.conflicts),
        "conflicts": curation.conflicts[:100],
        "notes": notes,
    }


ProgressFn = Callable[[int, str], None]


def build_members(*, seed: int, params: dict[str, Any], cfg: CurationConfig, embedder: Embedder,
                  progress: ProgressFn) -> tuple[list[tuple[TrainingExample, str, str]], dict[str, Any]]:
    """The (example, split, dimension) members and the quality report for a build."""
    # When it happened: the interaction's time for collected examples, else when it was written.
    qs = (TrainingExample.objects.filter(status=ExampleStatus.ACTIVE).select_related("service", "tool")
          .annotate(event_time=Coalesce("interaction__timestamp", "created_at")))
    if params["services"]:
        qs = qs.filter(service__name__in=params["services"])
    allowed = [q for q in Quality.values if QUALITY_RANK[q] <= QUALITY_RANK[params["min_quality"]]]
    examples = sorted(qs.filter(quality__in=allowed), key=lambda e: e.content_hash)
    progress(10, f"embedding {len(examples)} examples")
    curation = curate(examples, embedder=embedder, cfg=cfg, dedup=params["dedup"], diversity=params["diversity"])
    kept = curation.kept
    progress(40, "grouping phrasings")
    groups = phrasing_groups(kept, embedder=embedder, threshold=float(params["phrasing_threshold"]))
    items = [
        Item(key=e.content_hash,
             tool=_tool_key(e.service.name, e.tool.name if e.tool else ""), tools_called=_called(e),
             behavior=e.behavior, group=g, created_at=getattr(e, "event_time", None) or e.created_at)
        for e, g in zip(kept, groups, strict=True)
    ]
    if len({i.key for i in items}) != len(items):
        # Identical content in two rows (e.g. two sources): keep the first by curation order.
        first: dict[str, int] = {}
        for k, item in enumerate(items):
            first.setdefault(item.key, k)
        uniq = sorted(first.values())
        kept = [kept[k] for k in uniq]
        items = [items[k] for k in uniq]
        curation.embeddings = curation.embeddings[uniq]
    sp = cfg.splits
    comp = sp.test_composition
    split_params = SplitParams(
        train=sp.train, validation=sp.validation, test=sp.test, holdout=sp.holdout,
        zero_shot_tool_fraction=sp.zero_shot_tool_fraction, new_phrasing_fraction=sp.new_phrasing_fraction,
        sequence_train_share=sp.sequence_train_share,
        composition=(comp["seen_phrasing"], comp["new_phrasing"], comp["zero_shot_tool"]),
        rotation=params["rotation"], time_holdout_days=params["time_holdout_days"], now=timezone.now(),
    )
    progress(55, "assigning splits")
    assignment = assign_splits(items, split_params, seed=seed)
    # Contamination: a train example nearly identical to an evaluation example leaks the answer.
    splits = np.array([assignment.split[i.key] for i in items], dtype=object)
    train_idx = np.flatnonzero(splits == TRAIN)
    eval_idx = np.flatnonzero((splits == TEST) | (splits == HOLDOUT))
    contaminated: set[int] = set()
    if len(train_idx) and len(eval_idx):
        nearest = nearest_similarity(curation.embeddings[train_idx], curation.embeddings[eval_idx])
        contaminated = {int(train_idx[k]) for k in np.flatnonzero(nearest >= cfg.dedup_threshold)}
    members = [(e, assignment.split[i.key], assignment.dimension[i.key])
               for k, (e, i) in enumerate(zip(kept, items, strict=True)) if k not in contaminated]
    emb = curation.embeddings[[k for k in range(len(kept)) if k not in contaminated]]
    progress(75, "writing the quality report")
    report = quality_report(members=members, curation=curation, contamination_removed=len(contaminated),
                            zero_shot_tools=assignment.zero_shot_tools, notes=assignment.notes,
                            new_phrasing_groups=assignment.new_phrasing_groups, emb=emb,
                            share_targets={"train": sp.train, "validation": sp.validation, "test": sp.test,
                                           "holdout": sp.holdout},
                            composition_target=dict(comp))
    return members, report


def version_hash(*, seed: int, params: dict[str, Any], members: list[tuple[TrainingExample, str, str]]) -> str:
    rows = sorted([e.content_hash, split, dim] for e, split, dim in members)
    return hashlib.sha256(stable_json({"seed": seed, "params": params, "members": rows}).encode()).hexdigest()


def _next_number() -> int:
    return (DatasetVersion.objects.aggregate(m=Max("number"))["m"] or 0) + 1


def dataset_version_create(*, seed: int = 0, params: dict[str, Any] | None = None, actor: Any = None,
                           enqueue: bool = True) -> DatasetVersion:
    """A pending version row; with ``enqueue`` the build runs on the curation queue after commit."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValidationFailed("seed must be a whole number", fields={"seed": ["a whole number"]})
    cfg = load_config().curation
    normalised = normalise_params(params, cfg)
    for _attempt in range(5):
        try:
            with transaction.atomic():
                # Not enqueued: the caller builds it now, so the reaper's sender leaves it alone.
                by = actor if isinstance(actor, Actor) else None
                label = by.label if by else str(actor or "system")
                version = DatasetVersion.objects.create(number=_next_number(), seed=seed, params=normalised,
                                                        created_by=label,
                                                        enqueued_at=None if enqueue else timezone.now())
                audit_record(action=AuditAction.DATASET_BUILD_REQUESTED, by=by, actor=label,
                             object_type="dataset_version", object_id=version.pk,
                             detail={"number": version.number, "seed": seed, "params": normalised,
                                     "queued": enqueue})
                if enqueue:
                    transaction.on_commit(partial(_publish_build, version.pk))
                return version
        except IntegrityError:
            continue  # another build took the number; take the next one
    raise Conflict("could not allocate a dataset version number; try again")


def _publish_build(version_id: int) -> None:
    from ftops.datasets.tasks import dataset_version_build_task

    dataset_version_build_task.delay(version_id)
    job_mark_enqueued(DatasetVersion, pk=version_id)


class _LeaseLost(Exception):
    """This worker no longer holds the build: its writes roll back, the new owner builds."""


def dataset_version_execute(*, version_id: int, embedder: Embedder | None = None,
                            owner: str | None = None) -> DatasetVersion:
    """Claim the build under a lease and run it; a redelivered task (or a live owner) does nothing.

    Raises what failed it (the error is on the row), and a transient database error after
    giving the build back, for the task's retry.
    """
    from ftops.datasets.embedding_store import db_embedder

    owner = owner or worker_identity()
    version = job_claim(DatasetVersion, pk=version_id, owner=owner,
                        fields={"progress": 1, "progress_message": "starting", "error": ""})
    if version is None:
        return DatasetVersion.objects.get(pk=version_id)
    cfg = load_config().curation
    lock = threading.Lock()  # progress writes and the heartbeat thread never write the row at once

    def progress(percent: int, message: str) -> None:
        with lock:
            held = job_heartbeat(DatasetVersion, pk=version_id, owner=owner,
                                 fields={"progress": percent, "progress_message": message[:200]})
        if not held:
            raise _LeaseLost

    try:
        with JobHeartbeat(DatasetVersion, pk=version_id, owner=owner, lock=lock):
            members, report = build_members(seed=version.seed, params=version.params, cfg=cfg,
                                            embedder=embedder or db_embedder(), progress=progress)
            progress(85, f"saving {len(members)} members")
            with transaction.atomic():
                _write_members(version, members)
                digest = version_hash(seed=version.seed, params=version.params, members=members)
                twin = (DatasetVersion.objects.filter(content_hash=digest, status=RunStatus.READY)
                        .exclude(pk=version.pk).order_by("number").first())
                if twin is not None:
                    report["notes"] = [*report["notes"], f"identical content to version {twin.number}"]
                finished = job_finish(DatasetVersion, pk=version_id, owner=owner, fields={
                    "content_hash": digest, "quality_report": report, "source_mix": report["source_mix"],
                    "counts": _counts(members), "progress": 100, "progress_message": "ready",
                    "built_at": timezone.now(),
                })
                if not finished:
                    raise _LeaseLost
    except _LeaseLost:
        log.warning("dataset version %s: the lease went to another worker; this build is dropped", version_id)
    except TRANSIENT_ERRORS as exc:
        job_release(DatasetVersion, pk=version_id, owner=owner,
                    error=error_dict("transient", f"{type(exc).__name__}: {exc}"),
                    fields={"progress_message": "waiting to retry"})
        raise
    except Exception as exc:
        job_fail(DatasetVersion, pk=version_id, owner=owner,
                 error=error_dict("build_failed", f"{type(exc).__name__}: {exc}"[:2000]),
                 fields={"progress_message": "failed"})
        raise
    return DatasetVersion.objects.get(pk=version_id)


def dataset_versions_reap() -> dict[str, Any]:
    """Re-queue builds whose worker died (or fail them after ``max_attempts``) and publish
    pending builds the broker never got; on beat, and in the embedded mode from the scheduler."""
    def publish(pk: int) -> None:
        from ftops.datasets.tasks import dataset_version_build_task

        dataset_version_build_task.delay(pk)

    return jobs_reap(DatasetVersion, publish=publish, resend_after_s=600).as_dict()


def _counts(members: list[tuple[TrainingExample, str, str]]) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = {s: {} for s in Split.values}
    for _e, split, dim in members:
        counts[split][dim or "all"] = counts[split].get(dim or "all", 0) + 1
    return counts


def _write_members(version: DatasetVersion, members: list[tuple[TrainingExample, str, str]]) -> None:
    rng = random.Random(f"order:{version.seed}")
    ordered = sorted(members, key=lambda m: (Split.values.index(m[1]), m[0].content_hash))
    # A fixed, shuffled order inside each split so consumers need not shuffle to avoid tool runs.
    by_split: dict[str, list[tuple[TrainingExample, str, str]]] = defaultdict(list)
    for member in ordered:
        by_split[member[1]].append(member)
    maps = schema_maps({e.service_id for e, _, _ in members})
    rows = []
    position = 0
    for split in Split.values:
        chunk = by_split.get(split, [])
        rng.shuffle(chunk)
        for example, _split, dim in chunk:
            record = record_from_example(example, split=split, dimension=dim, schemas=maps.get(example.service_id, {}))
            rows.append(DatasetMembership(version=version, example=example, split=split, dimension=dim,
                                          position=position, snapshot=record.to_dict()))
            position += 1
    DatasetMembership.objects.bulk_create(rows, batch_size=500)


def dataset_version_build(*, seed: int = 0, params: dict[str, Any] | None = None, actor: Any = None,
                          embedder: Embedder | None = None) -> DatasetVersion:
    """Build a version now, in this process (the demo, the CLI and tests); returns it ready."""
    version = dataset_version_create(seed=seed, params=params, actor=actor, enqueue=False)
    return dataset_version_execute(version_id=version.pk, embedder=embedder)
