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
from tests.evaluation.helpers import write_mini_bfcl

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
        eval_run_create(suite=suite, adapter_config={"kind": "replay", "path": "x"}, name=f"queued {i}",
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
                                  "tool": [100.0, 100.0], "args": [100.0, 100.0], "n": [1, 2]}
    assert "value_error:string" in page
    assert "66.7%" in page


def test_progress_partial_polls_until_finished(staff: Any, suite: EvalSuite) -> None:
    run = eval_run_create(suite=suite, adapter_config={"kind": "replay", "path": "x"}, enqueue=False)
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
    assert "&#x27;inches&#x27;" in page
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
    queued = eval_run_create(suite=suite, adapter_config={"kind": "replay", "path": "x"}, enqueue=False)
    bad = staff.get(reverse("evaluation:compare"), {"base": base.pk, "other": queued.pk})
    assert bad.status_code == 422
    assert "only finished runs can be compared" in bad.content.decode()
