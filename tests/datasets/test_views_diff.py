"""The version diff (issue 16): only the members not found unchanged in the other version are
matched by content hash, and the answer is the same as grouping every member by content hash."""

from __future__ import annotations

import random
from typing import Any

import pytest
from django.db.models import F, Max, Q
from django.test import Client

from ftops.datasets.models import DatasetMembership, DatasetVersion, TrainingExample
from ftops.datasets.selectors import versions_diff_changes
from tests.datasets.test_views import plain_examples, ready_version

pytestmark = pytest.mark.django_db

SPLITS = ["train", "validation", "test", "holdout"]
DIMENSIONS = ["", "seen_phrasing", "new_phrasing", "zero_shot_tool"]


def grouped_over_every_member(a: DatasetVersion, b: DatasetVersion) -> dict[str, list[tuple[int, str, str]]]:
    """The oracle: every member of both versions grouped by its example's content hash."""
    in_a, in_b = Q(version_id=a.pk), Q(version_id=b.pk)
    rows = (
        DatasetMembership.objects.filter(version_id__in=[a.pk, b.pk]).values("example__content_hash")
        .annotate(a_split=Max("split", filter=in_a), a_dim=Max("dimension", filter=in_a),
                  a_id=Max("example_id", filter=in_a), b_split=Max("split", filter=in_b),
                  b_dim=Max("dimension", filter=in_b), b_id=Max("example_id", filter=in_b))
        .filter(Q(a_split__isnull=True) | Q(b_split__isnull=True) | ~Q(a_split=F("b_split"))
                | ~Q(a_dim=F("b_dim")))
        .order_by().values_list("a_split", "a_dim", "a_id", "b_split", "b_dim", "b_id"))
    out: dict[str, list[tuple[int, str, str]]] = {"added": [], "removed": [], "moved": []}
    for a_split, a_dim, a_id, b_split, b_dim, b_id in rows:
        if a_split is None:
            out["added"].append((b_id, b_split, b_dim or ""))
        elif b_split is None:
            out["removed"].append((a_id, a_split, a_dim or ""))
        else:
            out["moved"].append((b_id, f"{a_split} {a_dim or ''}".strip(), f"{b_split} {b_dim or ''}".strip()))
    return {kind: sorted(rows) for kind, rows in out.items()}


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_diff_matches_grouping_every_member_by_content_hash(seed: int) -> None:
    rng = random.Random(seed)
    examples = plain_examples(160)
    # Copies: other rows with the content of an existing one (the same request stored again under
    # a new id), and an example edited after the versions were built (its hash changed, the
    # versions did not). A build keeps one row per content hash, so a version holds a copy or its
    # original, never both.
    copies = dict(zip(examples[120:140], examples[:20], strict=True))
    for copy, original in copies.items():
        copy.content_hash = original.content_hash
    TrainingExample.objects.bulk_update(list(copies), ["content_hash"])

    def place() -> tuple[str, str]:
        split = rng.choice(SPLITS)
        return split, rng.choice(DIMENSIONS) if split == "test" else ""

    def one_per_hash(members: dict[Any, tuple[str, str]]) -> dict[Any, tuple[str, str]]:
        return {e: p for e, p in members.items() if not (e in copies and copies[e] in members)}

    old = one_per_hash({e: place() for e in rng.sample(examples, 110)})
    new = {}
    for e in examples:
        if e in old and rng.random() < 0.8:
            new[e] = old[e] if rng.random() < 0.85 else place()
        elif e not in old and rng.random() < 0.5:
            new[e] = place()
    new = one_per_hash(new)
    a = ready_version(1, [(e, s, d) for e, (s, d) in old.items()])
    b = ready_version(2, [(e, s, d) for e, (s, d) in new.items()])
    TrainingExample.objects.filter(pk=examples[5].pk).update(content_hash="f" * 64)

    expected = grouped_over_every_member(a, b)
    assert versions_diff_changes(a=a, b=b) == expected
    assert versions_diff_changes(a=b, b=a) == grouped_over_every_member(b, a)
    assert expected["added"] and expected["removed"] and expected["moved"]  # every kind is exercised
    assert versions_diff_changes(a=a, b=a) == {"added": [], "removed": [], "moved": []}


def test_content_stored_again_under_a_new_id_is_not_new() -> None:
    first, second, third, copy_of_first, copy_of_third = plain_examples(5)
    TrainingExample.objects.filter(pk=copy_of_first.pk).update(content_hash=first.content_hash)
    TrainingExample.objects.filter(pk=copy_of_third.pk).update(content_hash=third.content_hash)
    a = ready_version(1, [(first, "train", ""), (second, "train", ""), (third, "train", "")])
    b = ready_version(2, [(copy_of_first, "train", ""), (second, "test", "new_phrasing"),
                          (copy_of_third, "test", "seen_phrasing")])
    assert versions_diff_changes(a=a, b=b) == {
        "added": [], "removed": [],
        "moved": sorted([(second.pk, "train", "test new_phrasing"), (copy_of_third.pk, "train", "test seen_phrasing")]),
    }


def test_the_uncached_diff_takes_one_query_or_two(django_assert_num_queries: Any) -> None:
    examples = plain_examples(30)
    a = ready_version(1, [(e, "train", "") for e in examples[:20]])
    b = ready_version(2, [(e, "test" if n % 7 == 0 else "train", "seen_phrasing" if n % 7 == 0 else "")
                          for n, e in enumerate(examples)])
    c = ready_version(3, [(e, "train", "") for e in examples[5:]])
    DatasetVersion.objects.update(status="running")  # not cached
    a, b, c = (DatasetVersion.objects.get(pk=v.pk) for v in (a, b, c))
    with django_assert_num_queries(1):  # only added: nothing to match by content hash
        changes = versions_diff_changes(a=a, b=b)
    assert [len(changes[k]) for k in ("added", "removed", "moved")] == [10, 0, 3]
    with django_assert_num_queries(2):  # added and removed: their hashes, in one more query
        changes = versions_diff_changes(a=a, b=c)
    assert [len(changes[k]) for k in ("added", "removed", "moved")] == [10, 5, 0]


def test_the_version_page_links_to_the_previous_version_and_the_picker(staff_client: Client) -> None:
    examples = plain_examples(4)
    ready_version(1, [(e, "train", "") for e in examples[:2]])
    ready_version(2, [(e, "train", "") for e in examples])
    body = staff_client.get("/datasets/2/").content.decode()
    assert '<a href="/datasets/diff?a=1&amp;b=2">' in body
    diff = staff_client.get("/datasets/diff", {"a": 1, "b": 2}).content.decode()
    assert '<select name="a"' in diff and '<select name="b"' in diff
    assert staff_client.get("/datasets/diff", {"a": 1, "b": "x"}).status_code == 404


def test_each_ready_version_in_the_list_links_to_the_changes_since_the_ready_one_before(
        staff_client: Client) -> None:
    examples = plain_examples(3)
    ready_version(1, [(e, "train", "") for e in examples[:1]])
    DatasetVersion.objects.create(number=2, status="failed", content_hash="")
    ready_version(3, [(e, "train", "") for e in examples])
    body = staff_client.get("/datasets/").content.decode()
    rows = {n: body.split(f'href="/datasets/{n}/"')[1].split("</tr>")[0] for n in (1, 2, 3)}
    assert '<a href="/datasets/diff?a=1&amp;b=3" aria-label="What changed from v1 to v3">since v1</a>' in rows[3]
    assert "/datasets/diff" not in rows[2] and "/datasets/diff" not in rows[1]


@pytest.fixture
def staff_client(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client
