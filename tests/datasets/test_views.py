from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from ftops.datasets.models import DatasetVersion
from ftops.datasets.services import dataset_version_build, example_create
from tests.datasets.factories import build_shop


@pytest.fixture
def staff(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client


@pytest.fixture
def reviewer(client: Client, django_user_model: Any) -> Client:
    user = django_user_model.objects.create_user("rita", "rita@example.com", "pw-rita-123")
    user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    client.force_login(user)
    return client


def test_example_browser_finds_the_newest_example_by_search(db: Any, reviewer: Client) -> None:
    service, _ = build_shop(with_sequences=False)
    fresh = example_create(service=service, user_query="Please cancel order ORD-7777 because the box is crushed",
                           behavior="call", source="correction", quality="high",
                           expected={"calls": [{"name": "cancel_order", "arguments": {
                               "order_id": ["ORD-7777"], "reason": ["the box is crushed"]}}]})
    page = reviewer.get("/datasets/examples/", {"q": "box is crushed"})
    assert page.status_code == 200
    body = page.content.decode()
    assert "Please cancel order ORD-7777 because the box is crushed" in body
    assert body.count('class="example-row"') == 1 and "1 examples" in body
    first_page = reviewer.get("/datasets/examples/").content.decode()
    first_row = first_page.split('class="example-row"')[1].split("</tr>")[0]
    assert "ORD-7777" in first_row  # newest first
    filtered = reviewer.get("/datasets/examples/", {"source": "correction", "tool": "cancel_order"}).content.decode()
    assert filtered.count('class="example-row"') == 1
    assert reviewer.get("/datasets/examples/", {"page": 3}).status_code == 200
    detail = reviewer.get(f"/datasets/examples/{fresh.pk}/")
    assert detail.status_code == 200 and "Review correction" in detail.content.decode()
    assert reviewer.get("/datasets/examples/999999/").status_code == 404


def test_version_pages_show_the_report_charts_and_diff(db: Any, staff: Client) -> None:
    build_shop()
    a = dataset_version_build(seed=1)
    b = dataset_version_build(seed=2)
    listing = staff.get("/datasets/").content.decode()
    assert f'href="/datasets/{a.number}/"' in listing and "Build a new version" in listing
    detail = staff.get(f"/datasets/{b.number}/").content.decode()
    assert "vendor/chart-4.6.1.umd.min.js" in detail and 'id="chart-per-tool"' in detail
    charts = json.loads(detail.split('<script id="dataset-charts" type="application/json">')[1].split("</script>")[0])
    assert len(charts["tools"]) == 7 and set(charts["splits"]) == {"train", "validation", "test", "holdout"}
    assert "zero-shot" in detail
    diff = staff.get("/datasets/diff", {"a": a.number, "b": b.number}).content.decode()
    assert f"Dataset v{a.number} &rarr; v{b.number}" in diff and "examples that changed split" in diff
    assert staff.get("/datasets/diff", {"a": 1, "b": 99}).status_code == 404
    assert staff.get("/datasets/99/").status_code == 404


def test_build_from_the_page_and_progress_partial(db: Any, staff: Client,
                                                   django_capture_on_commit_callbacks: Any) -> None:
    build_shop()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = staff.post("/datasets/build", {"seed": "4", "rotation": "1"})
    assert response.status_code == 302
    version = DatasetVersion.objects.get()
    assert (version.status, version.seed, version.params["rotation"]) == ("pending", 4, 1)
    partial = staff.get(f"/datasets/{version.number}/", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="build-progress"' in partial and "<html" not in partial and 'hx-trigger="every 2s"' in partial
    for callback in callbacks:
        callback()
    done = staff.get(f"/datasets/{version.number}/", HTTP_HX_REQUEST="true")
    assert done.status_code == 204 and done["HX-Refresh"] == "true"
    bad = staff.post("/datasets/build", {"seed": "x"})
    assert bad.status_code == 302 and DatasetVersion.objects.count() == 1


def test_pages_need_a_curation_role(db: Any, client: Client, django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("ingo", "i@example.com", "pw-ingo-123")
    client.force_login(user)
    assert client.get("/datasets/").status_code == 403
    assert client.get("/datasets/examples/").status_code == 403
    client.logout()
    assert client.get("/datasets/").status_code == 302


# --- paginated diff and report tables, empty states --------------------------------------------

def ready_version(number: int, members: list[tuple[Any, str, str]], **fields: Any) -> DatasetVersion:
    """A ready version written straight through the ORM: ``members`` are (example, split, dimension)."""
    from ftops.datasets.models import DatasetMembership

    # A unique hash: the diff cache is keyed on it (and on the pk, which a test database may reuse).
    version = DatasetVersion.objects.create(number=number, status="ready", content_hash=uuid.uuid4().hex, **fields)
    DatasetMembership.objects.bulk_create([
        DatasetMembership(version=version, example=example, split=split, dimension=dim, position=n,
                          snapshot={"id": str(example.pk)})
        for n, (example, split, dim) in enumerate(members)])
    return version


def plain_examples(n: int, *, start: int = 0) -> list[Any]:
    from ftops.catalog.models import Service
    from ftops.datasets.models import TrainingExample

    service = Service.objects.get_or_create(name="shop")[0]
    return TrainingExample.objects.bulk_create([
        TrainingExample(service=service, user_query=f"request number {i}", behavior="call",
                        expected={"calls": []}, content_hash=f"{i:064d}") for i in range(start, start + n)])


def test_diff_lists_every_change_a_page_at_a_time(db: Any, staff: Client) -> None:
    shared = plain_examples(40)
    dropped = plain_examples(30, start=100)
    fresh = plain_examples(60, start=200)
    ready_version(1, [(e, "train", "") for e in shared] + [(e, "train", "") for e in dropped])
    ready_version(2, [(e, "test", "new_phrasing") if i < 27 else (e, "train", "") for i, e in enumerate(shared)]
                      + [(e, "validation", "") for e in fresh])
    page = staff.get("/datasets/diff", {"a": 1, "b": 2}).content.decode()
    assert "+60</div>" in page and "&minus;30</div>" in page and ">27</div>" in page
    added = page.split('<h2 id="added">')[1].split('<h2 id="removed">')[0]
    assert "Added (60)" in added and added.count('<a href="/datasets/examples/') == 25
    assert f'<a href="/datasets/examples/{fresh[0].pk}/">#{fresh[0].pk}</a>' in added
    assert "request number 200" in added and "request number 225" not in added
    assert 'href="?a=1&amp;b=2&amp;added_page=2#added"' in added and "page 1 of 3 &middot; 60 examples" in added
    moved = page.split('<h2 id="moved">')[1]
    assert moved.count('<a href="/datasets/examples/') == 25 and "train &rarr; test new_phrasing" in moved
    third = staff.get("/datasets/diff", {"a": 1, "b": 2, "added_page": 3, "moved_page": 2}).content.decode()
    assert third.split('<h2 id="added">')[1].split('<h2 id="removed">')[0].count("/datasets/examples/") == 10
    assert third.split('<h2 id="moved">')[1].count('<a href="/datasets/examples/') == 2
    same = staff.get("/datasets/diff", {"a": 2, "b": 2}).content.decode()
    assert "No example was added, removed or moved between v2 and v2." in same
    assert "You compared a version with itself." in same and "Compare two other versions" in same


def test_version_detail_paginates_the_per_tool_and_conflict_tables(db: Any, staff: Client) -> None:
    per_tool = {f"tool_{t:02d}": {"total": t, "train": t, "validation": 0, "test": 0, "holdout": 0,
                                  "edge_cases": 0, "edge_case_coverage": 0.0, "behaviors": {"call": t}}
                for t in range(70)}
    conflicts = [{"examples": [n, n + 1000], "cosine": 0.99, "queries": [f"q{n}", f"r{n}"],
                  "expected_tools": [["a"], ["b"]], "kind": "different_tool"} for n in range(55)]
    ready_version(4, [], quality_report={"per_tool": per_tool, "conflicts": conflicts, "split_sizes": {}})
    page = staff.get("/datasets/4/").content.decode()
    tools = page.split('<h2 id="per-tool">')[1].split('<h2 id="conflicts">')[0]
    assert tools.count("<tr><td>tool_") == 50 and "page 1 of 2 &middot; 70 tools" in tools
    assert 'href="?tool_page=2#per-tool"' in tools
    listed = page.split('<h2 id="conflicts">')[1]
    assert listed.count('<a href="/datasets/examples/') == 100 and 'href="?conflict_page=2#conflicts"' in listed
    both = staff.get("/datasets/4/", {"tool_page": 2, "conflict_page": 2}).content.decode()
    assert both.split('<h2 id="per-tool">')[1].split('<h2 id="conflicts">')[0].count("<tr><td>tool_") == 20
    assert 'href="?tool_page=2&amp;conflict_page=1#conflicts"' in both


@pytest.mark.parametrize("size", [3, 40])
def test_dataset_pages_take_the_same_queries_whatever_the_rows(db: Any, staff: Client, size: int,
                                                                django_assert_max_num_queries: Any) -> None:
    from django.core.cache import cache

    from ftops.datasets.models import TrainingExample
    from tests.common.pages import get_within

    examples = plain_examples(size)
    parent = examples[0]
    TrainingExample.objects.filter(pk__in=[e.pk for e in examples[1:]]).update(parent=parent)
    report = {"per_tool": {f"t{n}": {"total": 1, "behaviors": {"call": 1}} for n in range(size)},
              "conflicts": [{"examples": [e.pk], "queries": ["q"], "expected_tools": [["a"]]} for e in examples],
              "split_sizes": {"train": size}}
    for number in range(1, size + 1):
        ready_version(number, [(e, "train", "") for e in examples] if number >= size - 1 else [],
                      quality_report=report if number == size else {"split_sizes": {"train": 1}})
    b = DatasetVersion.objects.get(number=size)
    b.members.filter(example__in=examples[::2]).update(split="test", dimension="new_phrasing")
    # session and user, then: versions page + count, triggers, versions to diff
    get_within(staff, django_assert_max_num_queries, "/datasets/", 6)
    get_within(staff, django_assert_max_num_queries, f"/datasets/{size}/", 4)  # version, split sizes
    get_within(staff, django_assert_max_num_queries, "/datasets/examples/", 6)
    get_within(staff, django_assert_max_num_queries, "/datasets/examples/", 6, q="request", source="manual")
    cache.clear()  # the diff's uncached path: a, b, one grouped pass, the page's requests, versions to diff
    get_within(staff, django_assert_max_num_queries, "/datasets/diff", 7, a=size - 1, b=size)
    get_within(staff, django_assert_max_num_queries, f"/datasets/examples/{parent.pk}/", 5)
