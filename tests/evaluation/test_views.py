"""Pages: run list, run detail with charts, failure drill-down, comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from ftops.evaluation.models import EvalRun, EvalSuite, RunStatus
from ftops.evaluation.services import bfcl_suite_import, eval_run_create, eval_run_execute
from tests.evaluation.helpers import NO_ANSWERS, write_mini_bfcl

pytestmark = pytest.mark.django_db


@pytest.fixture
def suite(tmp_path: Path) -> EvalSuite:
    return bfcl_suite_import(data_dir=write_mini_bfcl(tmp_path / "bfcl"), name="mini").suite


def finished_run(suite: EvalSuite, tmp_path: Path, unit: str) -> EvalRun:
    path = tmp_path / f"{unit}.jsonl"
    rows = [{"id": "simple_python_0", "result": [{"calc.area": {"base": 10, "height": 5.0}}]},
            {"id": "simple_python_1", "result": [{"calc.area": {"base": 3, "height": 4.0, "unit": unit}}]},
            {"id": "irrelevance_0", "result": "no"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = eval_run_create(suite=suite, adapter_config={"kind": "replay", "path": str(path)}, name=unit, enqueue=False)
    return eval_run_execute(run_id=run.pk)


@pytest.fixture
def staff(client: Any, admin_user: Any) -> Any:
    client.force_login(admin_user)
    return client


def test_pages_need_login_and_a_role(client: Any, django_user_model: Any, suite: EvalSuite, tmp_path: Path) -> None:
    run = finished_run(suite, tmp_path, "cm")
    url = reverse("evaluation:run", args=[run.pk])
    assert client.get(url).status_code == 302
    user = django_user_model.objects.create_user("ann", "ann@example.com", "pw-ann-123456")
    client.force_login(user)
    assert client.get(url).status_code == 403
    user.groups.add(Group.objects.create(name="approver"))
    assert client.get(url).status_code == 200


def test_run_list_with_pagination(staff: Any, suite: EvalSuite, tmp_path: Path) -> None:
    finished_run(suite, tmp_path, "cm")
    for i in range(25):
        eval_run_create(suite=suite, adapter_config=NO_ANSWERS, name=f"queued {i}",
                        enqueue=False)
    page = staff.get(reverse("evaluation:runs")).content.decode()
    assert "page 1 of 2" in page and "26 runs" in page
    assert "queued 24" in page and "nightly" not in page
    second = staff.get(reverse("evaluation:runs"), {"page": 2}).content.decode()
    assert "100.0%" in second and "replay: cm.jsonl" in second
    only_done = staff.get(reverse("evaluation:runs"), {"status": "succeeded"}).content.decode()
    assert "1 runs" in only_done


def test_empty_list_explains_how_to_start(staff: Any) -> None:
    page = staff.get(reverse("evaluation:runs")).content.decode()
    assert "No evaluation runs" in page and "manage.py bfcl_import" in page


def test_run_detail_has_charts_and_error_types(staff: Any, suite: EvalSuite, tmp_path: Path) -> None:
    run = finished_run(suite, tmp_path, "inches")
    page = staff.get(reverse("evaluation:run", args=[run.pk])).content.decode()
    assert '<canvas data-chart="category"' in page
    assert "/static/vendor/chart-4.6.1.umd.min.js" in page
    assert "cdn" not in page.lower()
    charts = json.loads(page.split('<script id="eval-charts" type="application/json">')[1].split("</script>")[0])
    assert charts["category"] == {"labels": ["irrelevance", "simple_python"], "exact": [100.0, 50.0],
                                  "tool": [100.0, 100.0], "args": [100.0, 100.0], "n": [1, 2],
                                  "target": [80.0, 95.0]}
    assert "value_error:string" in page
    assert "66.7%" in page


def test_progress_partial_polls_until_finished(staff: Any, suite: EvalSuite) -> None:
    run = eval_run_create(suite=suite, adapter_config=NO_ANSWERS, enqueue=False)
    EvalRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, progress_done=1, progress_total=4)
    url = reverse("evaluation:run", args=[run.pk])
    partial = staff.get(url, HTTP_HX_REQUEST="true")
    body = partial.content.decode()
    assert body.strip().startswith('<div id="run-progress"') and 'hx-trigger="every 2s"' in body
    assert "1 / 4 cases" in body and "HX-Refresh" not in partial.headers
    EvalRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, error="boom")
    done = staff.get(url, HTTP_HX_REQUEST="true")
    assert done.headers["HX-Refresh"] == "true"


def test_failures_drill_down(staff: Any, suite: EvalSuite, tmp_path: Path) -> None:
    run = finished_run(suite, tmp_path, "inches")
    url = reverse("evaluation:failures", args=[run.pk])
    page = staff.get(url).content.decode()
    assert "simple_python_1" in page and "Triangle 3 by 4 in cm" in page and "1 failures" in page
    assert "&quot;inches&quot;" in page  # JSON, not a Python repr
    filtered = staff.get(url, {"category": "irrelevance"}).content.decode()
    assert "No failures match" in filtered
    assert staff.get(reverse("evaluation:failures", args=[9999])).status_code == 404


def test_compare_page(staff: Any, suite: EvalSuite, tmp_path: Path) -> None:
    base = finished_run(suite, tmp_path, "inches")
    other = finished_run(suite, tmp_path, "cm")
    page = staff.get(reverse("evaluation:compare"), {"base": base.pk, "other": other.pk}).content.decode()
    assert "+33.3" in page and "+50.0" in page
    assert "Fixed</strong> (1)" in page and "<code>simple_python_1</code>" in page
    assert '<canvas data-chart="category" data-series="base,other"' in page
    queued = eval_run_create(suite=suite, adapter_config=NO_ANSWERS, enqueue=False)
    bad = staff.get(reverse("evaluation:compare"), {"base": base.pk, "other": queued.pk})
    assert bad.status_code == 422
    assert "only finished runs can be compared" in bad.content.decode()


# --- drill-down to the example, paginated case lists and tool tables, empty states ---------------

def test_failures_of_a_dataset_suite_link_to_the_example_and_on_to_the_review_item(staff: Any) -> None:
    from ftops.common.actors import Actor
    from ftops.datasets.models import DatasetVersion, TrainingExample
    from review.models import ReviewItem
    from review.services import review_items_accept_suggested, review_items_enqueue_failures
    from tests.evaluation.factories import scored_run
    from tests.review.factories import make_interaction, make_payments

    make_interaction(make_payments(), external_id="int-drill")
    review_items_enqueue_failures()
    item = ReviewItem.objects.get()
    review_items_accept_suggested(item_ids=[item.pk], actor=Actor(label="alice"))
    example = TrainingExample.objects.get()
    version = DatasetVersion.objects.create(number=3, status="ready")
    suite = EvalSuite.objects.create(name="v3-test", kind="dataset", dataset_version=version, split="test")
    run = scored_run(suite, failed=[str(example.pk)])
    page = staff.get(reverse("evaluation:failures", args=[run.pk])).content.decode()
    assert f'<a href="/datasets/examples/{example.pk}/" title="The training example this case comes from">' in page
    detail = staff.get(f"/datasets/examples/{example.pk}/").content.decode()
    assert f'<a href="{reverse("review:item", args=[item.pk])}">review item #{item.pk}</a> (alice)' in detail
    assert f'<a href="{reverse("interactions:detail", args=["int-drill"])}">int-drill</a>' in detail


def test_compare_lists_fixed_and_regressed_cases_as_links_a_page_at_a_time(staff: Any) -> None:
    from tests.evaluation.factories import dataset_version, scored_run

    version = dataset_version()
    suite = EvalSuite.objects.create(name="v1-test", kind="dataset", dataset_version=version, split="test")
    base = scored_run(suite, failed=[str(n) for n in range(1000, 1070)] + ["5"], name="base")
    other = scored_run(suite, failed=[str(n) for n in range(2000, 2003)] + ["5"], name="other")
    url = reverse("evaluation:compare")
    page = staff.get(url, {"base": base.pk, "other": other.pk}).content.decode()
    assert '<strong>Fixed</strong> (70)' in page and '<strong>Regressed</strong> (3)' in page
    fixed = page.split('id="cases-fixed"')[1].split('id="cases-regressed"')[0]
    assert fixed.count('<a href="/datasets/examples/') == 50
    assert '<a href="/datasets/examples/1000/"><code>1000</code></a>' in fixed and "1050" not in fixed
    assert f'href="?base={base.pk}&amp;other={other.pk}&amp;fixed_page=2#cases-fixed"' in fixed
    regressed = page.split('id="cases-regressed"')[1]
    assert '<a href="/datasets/examples/2002/"><code>2002</code></a>' in regressed
    second = staff.get(url, {"base": base.pk, "other": other.pk, "fixed_page": 2}).content.decode()
    fixed2 = second.split('id="cases-fixed"')[1].split('id="cases-regressed"')[0]
    assert fixed2.count('<a href="/datasets/examples/') == 20 and "1069" in fixed2 and "1000/" not in fixed2


def test_tool_tables_are_paginated_weakest_first(staff: Any, suite: EvalSuite) -> None:
    from tests.evaluation.factories import scored_run

    run = scored_run(suite, failed=[], tools=120)
    url = reverse("evaluation:run", args=[run.pk])
    first = staff.get(url).content.decode()
    table = first.split('id="table-tool"')[1].split("</details>")[0]
    assert table.count('?tool=tool_') == 50 and "Table (120)" in table
    assert table.index("tool=tool_000") < table.index("tool=tool_100") < table.index("tool=tool_001")
    assert 'href="?tool_page=2#table-tool"' in table and "page 1 of 3 &middot; 120 tools" in table
    last = staff.get(url, {"tool_page": 3}).content.decode().split('id="table-tool"')
    assert "<details open" in last[0][-60:] and last[1].split("</details>")[0].count("?tool=tool_") == 20
    other = scored_run(suite, failed=[], tools=120)
    compare = staff.get(reverse("evaluation:compare"), {"base": run.pk, "other": other.pk, "tool_page": 3})
    assert compare.content.decode().split('id="table-tool"')[1].split("</details>")[0].count("<tr><td>tool_") == 20


def test_failures_page_empty_states_say_what_to_do(staff: Any, suite: EvalSuite) -> None:
    from tests.evaluation.factories import scored_run

    perfect = scored_run(suite, failed=[])
    body = staff.get(reverse("evaluation:failures", args=[perfect.pk])).content.decode()
    assert "This run got every case right." in body and f"/evaluation/compare/?base={perfect.pk}" in body
    assert "<label>&nbsp;</label>" not in body and '<div class="filter-submit"><button type="submit">' in body
    some = scored_run(suite, failed=["x1"])
    none = staff.get(reverse("evaluation:failures", args=[some.pk]), {"category": "parallel"}).content.decode()
    assert "No failures match these filters." in none and "Clear the filters" in none
    queued = eval_run_create(suite=suite, adapter_config=NO_ANSWERS, enqueue=False)
    waiting = staff.get(reverse("evaluation:failures", args=[queued.pk])).content.decode()
    assert "No failures recorded yet." in waiting and "Follow its progress" in waiting


@pytest.mark.parametrize("size", [3, 40])
def test_evaluation_pages_take_the_same_queries_whatever_the_rows(staff: Any, size: int,
                                                                   django_assert_max_num_queries: Any) -> None:
    from ftops.datasets.models import DatasetVersion
    from tests.common.pages import get_within
    from tests.evaluation.factories import scored_run

    version = DatasetVersion.objects.create(number=1, status="ready")
    suite = EvalSuite.objects.create(name="v1-test", kind="dataset", dataset_version=version, split="test")
    for n in range(size):
        EvalSuite.objects.create(name=f"bfcl-{n}", kind="bfcl")
    base = scored_run(suite, failed=[str(n) for n in range(size)], tools=size)
    for _ in range(size - 2):
        scored_run(suite, failed=["1"])
    other = scored_run(suite, failed=[str(n) for n in range(size // 2, size + 5)], tools=size)
    get_within(staff, django_assert_max_num_queries, reverse("evaluation:runs"), 6)
    get_within(staff, django_assert_max_num_queries, reverse("evaluation:run", args=[base.pk]), 4)
    get_within(staff, django_assert_max_num_queries, reverse("evaluation:failures", args=[base.pk]), 6)
    get_within(staff, django_assert_max_num_queries, reverse("evaluation:compare"), 3)
    get_within(staff, django_assert_max_num_queries, reverse("evaluation:compare"), 9, base=base.pk, other=other.pk)
