"""Reads for training examples and dataset versions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from django.db.models import Exists, F, Max, OuterRef, Q, QuerySet

from ftops.catalog.models import Service, Tool, ToolSchemaVersion
from ftops.common.errors import Forbidden, NotFound, ValidationFailed
from ftops.core.records import Record
from ftops.datasets.models import (
    DatasetMembership,
    DatasetVersion,
    ExampleStatus,
    RunStatus,
    Split,
    TrainingExample,
)

SPLITS = tuple(Split.values)


def current_schemas(service: Service) -> dict[str, ToolSchemaVersion]:
    """Current schema version per tool name of ``service`` (tools without one are left out)."""
    tools = Tool.objects.filter(service=service, current_version__isnull=False).select_related(
        "current_version", "current_version__tool"
    )
    return {t.name: t.current_version for t in tools if t.current_version is not None}


def cross_service_schemas(tool_services: Any) -> dict[str, ToolSchemaVersion]:
    """Current schemas of the other services' tools an example calls (its provenance's
    ``tool_services``: bare tool name -> service), by bare name; missing ones are left out."""
    from ftops.catalog.selectors import tool_schema_versions

    if not isinstance(tool_services, dict) or not tool_services:
        return {}
    refs = {(str(svc), str(name)) for name, svc in tool_services.items()}
    found = tool_schema_versions(refs=refs)
    return {name: found[(str(svc), str(name))] for name, svc in tool_services.items() if (str(svc), str(name)) in found}


def example_schemas(example: TrainingExample, schemas: dict[str, ToolSchemaVersion] | None = None,
                    ) -> dict[str, ToolSchemaVersion]:
    """The schemas an example's tools have now: its service's, plus other services' tools it calls."""
    own = current_schemas(example.service) if schemas is None else schemas
    cross = cross_service_schemas((example.provenance or {}).get("tool_services"))
    return {**own, **cross} if cross else own


def schema_maps(service_ids: Iterable[int]) -> dict[int, dict[str, ToolSchemaVersion]]:
    """Current schema versions for several services in one query: {service_id: {tool: version}}."""
    out: dict[int, dict[str, ToolSchemaVersion]] = {}
    tools = Tool.objects.filter(service_id__in=set(service_ids), current_version__isnull=False).select_related(
        "current_version", "current_version__tool"
    )
    for tool in tools:
        if tool.current_version is not None:
            out.setdefault(tool.service_id, {})[tool.name] = tool.current_version
    return out


def openai_tool(version: ToolSchemaVersion) -> dict[str, Any]:
    description = version.description or version.tool.description
    return {"type": "function", "function": {"name": version.tool.name, "description": description,
                                             "parameters": version.parameters}}


def record_from_example(
    example: TrainingExample,
    *,
    split: str = "",
    dimension: str = "",
    schemas: dict[str, ToolSchemaVersion] | None = None,
) -> Record:
    """The plain ``Record`` of an example; tools come from their current schema versions.

    ``schemas`` (from ``schema_maps``) avoids one query per example when building many.
    """
    schemas = example_schemas(example, schemas)
    tools = [openai_tool(schemas[name]) for name in example.tools if name in schemas]
    return Record(
        id=str(example.pk),
        service=example.service.name,
        tool=example.tool.name if example.tool_id and example.tool else "",
        messages=[dict(m) for m in example.messages],
        tools=tools,
        behavior=example.behavior,
        expected=example.expected,
        split=split,
        dimension=dimension,
        meta={
            "example_id": example.pk,
            "source": example.source,
            "quality": example.quality,
            "content_hash": example.content_hash,
            "created_at": example.created_at.isoformat() if example.created_at else "",
            "provenance": example.provenance,
        },
    )


def examples_active() -> QuerySet[TrainingExample]:
    return TrainingExample.objects.filter(status=ExampleStatus.ACTIVE).select_related("service", "tool")


def example_get(*, example_id: int) -> TrainingExample:
    example = (
        TrainingExample.objects.select_related("service", "tool", "schema_version", "interaction", "parent")
        .filter(pk=example_id)
        .first()
    )
    if example is None:
        raise NotFound(f"training example {example_id} does not exist")
    return example


def examples_search(
    *,
    service: str = "",
    tool: str = "",
    source: str = "",
    quality: str = "",
    behavior: str = "",
    status: str = "",
    q: str = "",
) -> QuerySet[TrainingExample]:
    """Examples newest first, filtered; ``q`` matches the user query (case-insensitive)."""
    qs = TrainingExample.objects.select_related("service", "tool")
    if service:
        qs = qs.filter(service__name=service)
    if tool:
        qs = qs.filter(tool__name=tool)
    if source:
        qs = qs.filter(source=source)
    if quality:
        qs = qs.filter(quality=quality)
    if behavior:
        qs = qs.filter(behavior=behavior)
    if status:
        qs = qs.filter(status=status)
    if q:
        qs = qs.filter(Q(user_query__icontains=q) | Q(explanation__icontains=q))
    return qs.order_by("-created_at", "-id")


def latest_version() -> DatasetVersion | None:
    return DatasetVersion.objects.filter(status=DatasetVersion.Status.READY).order_by("-number").first()


def version_get(*, number: int | str) -> DatasetVersion:
    """A ready version by number, or the latest one for ``"latest"``."""
    if str(number) == "latest":
        version = latest_version()
        if version is None:
            raise NotFound("no dataset version has been built yet; run `python manage.py dataset_build`")
        return version
    try:
        num = int(number)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"version must be a number or 'latest', not {number!r}",
                               fields={"version": ["a number or 'latest'"]}) from exc
    version = DatasetVersion.objects.filter(number=num).first()
    if version is None:
        raise NotFound(f"dataset version {num} does not exist")
    return version


def versions_list() -> QuerySet[DatasetVersion]:
    return DatasetVersion.objects.order_by("-number")


def _members(
    *, version: DatasetVersion, split: str, dimension: str | None = None, allow_holdout: bool = False
) -> QuerySet[DatasetMembership]:
    if split not in SPLITS:
        raise ValidationFailed(f"unknown split {split!r}; choose one of {list(SPLITS)}",
                               fields={"split": [f"one of {list(SPLITS)}"]})
    if split == Split.HOLDOUT and not allow_holdout:
        raise Forbidden("the holdout split is reserved for final evaluation; pass allow_holdout=True to read it")
    if version.status != DatasetVersion.Status.READY:
        raise ValidationFailed(f"dataset version {version.number} is {version.status}, not ready")
    members = DatasetMembership.objects.filter(version=version, split=split)
    if dimension:
        members = members.filter(dimension=dimension)
    return members.order_by("position")


def dataset_examples(
    *, version: DatasetVersion, split: str, dimension: str | None = None, allow_holdout: bool = False
) -> list[DatasetMembership]:
    """Memberships of one split with their examples (for pages and exports)."""
    members = _members(version=version, split=split, dimension=dimension, allow_holdout=allow_holdout)
    return list(members.select_related("example", "example__service", "example__tool"))


def dataset_records(
    *, version: DatasetVersion, split: str, dimension: str | None = None, allow_holdout: bool = False
) -> list[Record]:
    """The records of one split of a version, in the version's fixed order.

    Training never passes ``allow_holdout``: the holdout is for final evaluation only.
    """
    members = _members(version=version, split=split, dimension=dimension, allow_holdout=allow_holdout)
    # Snapshots, not the live rows: a built version never changes when an example is edited later.
    return [Record.from_dict(snapshot) for snapshot in members.values_list("snapshot", flat=True)]


def split_sizes(version: DatasetVersion) -> dict[str, dict[str, int]]:
    """{split: {dimension or "all": count}} for a version."""
    from django.db.models import Count

    out: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
    rows = DatasetMembership.objects.filter(version=version).values("split", "dimension").annotate(n=Count("id"))
    for row in rows:
        out.setdefault(row["split"], {})[row["dimension"] or "all"] = row["n"]
    return out


DIFF_METRICS = ("total_examples", "tools_covered", "unique_queries", "diversity_score", "high_quality_count",
                "duplicates_removed", "contamination_removed", "conflicts_count")


DIFF_CACHE_SECONDS = 3600


def _changed_hashes(*, a: DatasetVersion, b: DatasetVersion) -> QuerySet[TrainingExample]:
    """The content hashes of the examples that may differ between ``a`` and ``b`` (a subquery).

    A membership whose example sits in the other version too, in the same split and dimension,
    cannot change the diff: the same example has the same content hash on both sides, and equal
    rows leave both sides' aggregates alike. Only the rest (found with two anti-joins on the
    membership table's (version, example) index, without reading the examples) are matched by
    content hash, and only their hash groups are aggregated. Versions built from the same pool
    share most members, so the join to the examples shrinks from every member to the changes.
    """
    def unmatched(x: DatasetVersion, y: DatasetVersion) -> QuerySet[DatasetMembership]:
        twin = DatasetMembership.objects.filter(version_id=y.pk, example_id=OuterRef("example_id"),
                                                split=OuterRef("split"), dimension=OuterRef("dimension"))
        return DatasetMembership.objects.filter(version_id=x.pk).filter(~Exists(twin)).values("example_id")

    return (TrainingExample.objects.filter(Q(pk__in=unmatched(a, b)) | Q(pk__in=unmatched(b, a)))
            .order_by().values("content_hash"))


def versions_diff_changes(*, a: DatasetVersion, b: DatasetVersion) -> dict[str, list[tuple[int, str, str]]]:
    """Examples added, removed and moved (split or dimension changed) from ``a`` to ``b``, by example id.

    ``{"added": [(example id, split, dimension)], "removed": [...], "moved": [(id in b, from, to)]}``.
    Examples are matched by content hash. One query: the members not found unchanged in the other
    version (``_changed_hashes``) pick the hash groups, and one grouped pass over those groups
    returns the changed ones; built versions never change, so the answer is cached.
    """
    from django.core.cache import cache

    ready = a.status == RunStatus.READY and b.status == RunStatus.READY
    key = "ftops:dataset-diff:" + ":".join(f"{v.pk}-{v.content_hash}-{v.created_at.timestamp()}" for v in (a, b))
    if ready:
        found = cache.get(key)
        if found is not None:
            return cast(dict[str, list[tuple[int, str, str]]], found)
    in_a, in_b = Q(version_id=a.pk), Q(version_id=b.pk)
    rows = (
        DatasetMembership.objects.filter(version_id__in=[a.pk, b.pk],
                                         example__content_hash__in=_changed_hashes(a=a, b=b))
        .values("example__content_hash")
        .annotate(a_split=Max("split", filter=in_a), a_dim=Max("dimension", filter=in_a),
                  a_id=Max("example_id", filter=in_a), b_split=Max("split", filter=in_b),
                  b_dim=Max("dimension", filter=in_b), b_id=Max("example_id", filter=in_b))
        .filter(Q(a_split__isnull=True) | Q(b_split__isnull=True) | ~Q(a_split=F("b_split"))
                | ~Q(a_dim=F("b_dim")))
        .order_by()
        .values_list("a_split", "a_dim", "a_id", "b_split", "b_dim", "b_id")
    )
    changes: dict[str, list[tuple[int, str, str]]] = {"added": [], "removed": [], "moved": []}
    for a_split, a_dim, a_id, b_split, b_dim, b_id in rows:
        if a_split is None:
            changes["added"].append((b_id, b_split, b_dim or ""))
        elif b_split is None:
            changes["removed"].append((a_id, a_split, a_dim or ""))
        else:
            changes["moved"].append((b_id, f"{a_split} {a_dim or ''}".strip(), f"{b_split} {b_dim or ''}".strip()))
    for values in changes.values():
        values.sort()
    if ready:
        cache.set(key, changes, DIFF_CACHE_SECONDS)
    return changes


def diff_rows(kind: str, rows: Iterable[tuple[int, str, str]], queries: dict[int, str]) -> list[dict[str, Any]]:
    """Rows of ``versions_diff_changes`` as the diff page shows them (``queries``: example id → request)."""
    if kind == "moved":
        return [{"id": pk, "query": queries.get(pk, ""), "from": old, "to": new} for pk, old, new in rows]
    return [{"id": pk, "query": queries.get(pk, ""), "split": split, "dimension": dim} for pk, split, dim in rows]


def example_queries(ids: Iterable[int]) -> dict[int, str]:
    """{example id: user query} for a page of ids, in one query."""
    return dict(TrainingExample.objects.filter(pk__in=set(ids)).values_list("pk", "user_query"))


def versions_diff(*, a: DatasetVersion, b: DatasetVersion, sample: int = 25,
                  changes: dict[str, list[tuple[int, str, str]]] | None = None) -> dict[str, Any]:
    """What changed from version ``a`` to ``b``: examples added/removed/moved (the first ``sample`` of
    each; pages use ``versions_diff_changes``, passed in as ``changes`` when already read), per-tool
    counts, metrics."""
    changes = changes if changes is not None else versions_diff_changes(a=a, b=b)
    heads = {kind: rows[:sample] for kind, rows in changes.items()}
    queries = example_queries(pk for rows in heads.values() for pk, _, _ in rows) if sample else {}
    ra, rb = a.quality_report or {}, b.quality_report or {}
    tools = sorted(set(ra.get("examples_per_tool", {})) | set(rb.get("examples_per_tool", {})))
    per_tool = [
        {"tool": t, "a": ra.get("examples_per_tool", {}).get(t, 0), "b": rb.get("examples_per_tool", {}).get(t, 0)}
        for t in tools
    ]
    for row in per_tool:
        row["delta"] = row["b"] - row["a"]
    params_changed = sorted(k for k in set(a.params) | set(b.params) if a.params.get(k) != b.params.get(k))
    return {
        "same_content": a.content_hash == b.content_hash,
        "added_count": len(changes["added"]), "removed_count": len(changes["removed"]),
        "moved_count": len(changes["moved"]),
        **{kind: diff_rows(kind, rows, queries) for kind, rows in heads.items()},
        "per_tool": per_tool,
        "metrics": [{"name": m, "a": ra.get(m), "b": rb.get(m)} for m in DIFF_METRICS],
        "splits": [{"split": s, "a": (ra.get("split_sizes") or {}).get(s, 0),
                    "b": (rb.get("split_sizes") or {}).get(s, 0)} for s in SPLITS],
        "zero_shot_tools": {"a": ra.get("zero_shot_tools", []), "b": rb.get("zero_shot_tools", [])},
        "params_changed": [{"name": k, "a": a.params.get(k), "b": b.params.get(k)} for k in params_changed],
        "seed": {"a": a.seed, "b": b.seed},
    }
