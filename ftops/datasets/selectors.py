"""Reads for training examples and dataset versions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from django.db.models import Exists, OuterRef, Q, QuerySet

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


Place = tuple[str, str]  # (split, dimension)


def _members_changed_by_id(*, a: DatasetVersion, b: DatasetVersion
                           ) -> list[tuple[int, str | None, str | None, str | None, str | None]]:
    """(example id, split in a, dimension in a, split in b, dimension in b) of every example that is
    in only one of the versions, or in both but placed differently; ``None`` where it is absent.

    One full outer join of the two versions' memberships on the example id: both sides are read
    in example order from the (version, example) index with split and dimension included (an
    index-only scan, merged), and neither the examples nor their content hashes are read.
    Django's ORM has no full outer join.
    """
    from django.db import connection

    table = connection.ops.quote_name(DatasetMembership._meta.db_table)
    # Ordered sides: PostgreSQL then merges the two index scans as they come, without a hash table.
    side = f"(SELECT example_id, split, dimension FROM {table} WHERE version_id = %s ORDER BY example_id)"
    sql = (f"SELECT COALESCE(x.example_id, y.example_id), x.split, x.dimension, y.split, y.dimension"
           f" FROM {side} x FULL OUTER JOIN {side} y"
           f" ON x.example_id = y.example_id"
           f" WHERE x.example_id IS NULL OR y.example_id IS NULL OR x.split <> y.split OR x.dimension <> y.dimension")
    with connection.cursor() as cursor:
        cursor.execute(sql, [a.pk, b.pk])
        return cast(list[tuple[int, str | None, str | None, str | None, str | None]], cursor.fetchall())


def _one_sided_hashes(*, a: DatasetVersion, b: DatasetVersion) -> dict[int, str]:
    """{example id: content hash} of the examples that are members of only one of the versions."""
    def only(x: DatasetVersion, y: DatasetVersion) -> QuerySet[DatasetMembership, Any]:
        there = DatasetMembership.objects.filter(version_id=y.pk, example_id=OuterRef("example_id"))
        return DatasetMembership.objects.filter(version_id=x.pk).filter(~Exists(there)).values("example_id")

    return dict(TrainingExample.objects.filter(Q(pk__in=only(a, b)) | Q(pk__in=only(b, a)))
                .order_by().values_list("pk", "content_hash"))


def versions_diff_changes(*, a: DatasetVersion, b: DatasetVersion) -> dict[str, list[tuple[int, str, str]]]:
    """Examples added, removed and moved (split or dimension changed) from ``a`` to ``b``, by example id.

    ``{"added": [(example id, split, dimension)], "removed": [...], "moved": [(id in b, from, to)]}``.
    Examples are matched by content hash: an example in both versions is itself on both sides
    (one example, one hash), and what is left on one side only is matched by content hash with
    what is left on the other (the same content stored again under a new id is not new). A built
    version holds each content hash once, so this is the same answer as grouping every member
    of both versions by content hash, without reading the examples of the members the versions
    share: one query over the membership index, and a second, for the hashes of the one-sided
    members, only when both sides have some. Built versions never change: the answer is cached.
    """
    from django.core.cache import cache

    ready = a.status == RunStatus.READY and b.status == RunStatus.READY
    key = "ftops:dataset-diff:" + ":".join(f"{v.pk}-{v.content_hash}-{v.created_at.timestamp()}" for v in (a, b))
    if ready:
        found = cache.get(key)
        if found is not None:
            return cast(dict[str, list[tuple[int, str, str]]], found)

    labels: dict[tuple[str, str], str] = {}  # a few (split, dimension) pairs, many rows

    def where(split: str, dim: str) -> str:
        label = labels.get((split, dim))
        if label is None:
            label = labels[(split, dim)] = f"{split} {dim}".strip()
        return label

    changes: dict[str, list[tuple[int, str, str]]] = {"added": [], "removed": [], "moved": []}
    moved = changes["moved"]
    only_a: dict[int, Place] = {}
    only_b: dict[int, Place] = {}
    for pk, a_split, a_dim, b_split, b_dim in _members_changed_by_id(a=a, b=b):
        if a_split is None:
            only_b[pk] = (str(b_split), b_dim or "")
        elif b_split is None:
            only_a[pk] = (a_split, a_dim or "")
        else:
            moved.append((pk, where(a_split, a_dim or ""), where(str(b_split), b_dim or "")))
    if only_a and only_b:
        hashes = _one_sided_hashes(a=a, b=b)
        groups: dict[str, tuple[list[tuple[int, Place]], list[tuple[int, Place]]]] = {}
        for side, members in ((0, only_a), (1, only_b)):
            for pk, place in members.items():
                groups.setdefault(hashes.get(pk, f"id:{pk}"), ([], []))[side].append((pk, place))
        only_a, only_b = {}, {}
        for in_a, in_b in groups.values():
            if in_a and in_b:  # the same content on both sides: moved, or not changed at all
                old = (max(p[0] for _, p in in_a), max(p[1] for _, p in in_a))
                new = (max(p[0] for _, p in in_b), max(p[1] for _, p in in_b))
                if old != new:
                    changes["moved"].append((max(pk for pk, _ in in_b), where(*old), where(*new)))
            elif in_a:
                only_a[max(pk for pk, _ in in_a)] = (max(p[0] for _, p in in_a), max(p[1] for _, p in in_a))
            else:
                only_b[max(pk for pk, _ in in_b)] = (max(p[0] for _, p in in_b), max(p[1] for _, p in in_b))
    changes["added"] = [(pk, split, dim) for pk, (split, dim) in only_b.items()]
    changes["removed"] = [(pk, split, dim) for pk, (split, dim) in only_a.items()]
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
