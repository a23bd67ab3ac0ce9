from __future__ import annotations

import json
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
