"""Per-category accuracy targets: configured in ft_ops_config.yaml, drawn on the accuracy charts
and judged met or not met on each evaluation run page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from ftops.datasets.config import DEFAULT_TARGETS, ConfigError, load_config, parse_config
from ftops.evaluation.models import EvalSuite
from ftops.evaluation.selectors import category_targets, target_key
from ftops.evaluation.services import bfcl_suite_import
from tests.evaluation.helpers import write_mini_bfcl
from tests.evaluation.test_views import finished_run


@pytest.mark.parametrize(("category", "key"), [
    ("simple_python", "simple"), ("live_simple", "simple"), ("simple_java", "simple"), ("simple", "simple"),
    ("multiple", "multiple"), ("live_multiple", "multiple"),
    ("parallel", "parallel"), ("parallel_multiple", "parallel"), ("live_parallel_multiple", "parallel"),
    ("irrelevance", "relevance"), ("live_irrelevance", "relevance"), ("live_relevance", "relevance"),
    ("multi_turn_base", "multi_turn"), ("multi_step", "multi_turn"),
    ("clarify", None), ("ask_for_details", None),
])
def test_every_category_finds_its_family(category: str, key: str | None) -> None:
    assert target_key(category, DEFAULT_TARGETS) == key


def test_a_category_of_its_own_overrides_its_family() -> None:
    targets = {**DEFAULT_TARGETS, "live_simple": 0.7}
    assert target_key("live_simple", targets) == "live_simple"
    assert target_key("simple_python", targets) == "simple"
    assert target_key("parallel", {"simple": 0.9}) is None


def test_the_seed_targets_are_the_configured_defaults() -> None:
    assert load_config().evaluation.targets == {"simple": 0.95, "multiple": 0.90, "parallel": 0.85,
                                                 "relevance": 0.80, "multi_turn": 0.70}
    assert parse_config("evaluation: {}").evaluation.targets == DEFAULT_TARGETS
    with pytest.raises(ConfigError, match=r"evaluation.targets.simple: 95.0 is out of range"):
        parse_config("evaluation:\n  targets: {simple: 95}\n")
    with pytest.raises(ConfigError, match=r"evaluation.targets.simple: expected a number"):
        parse_config("evaluation:\n  targets: {simple: high}\n")


pytestmark = pytest.mark.django_db


@pytest.fixture
def suite(tmp_path: Path) -> EvalSuite:
    return bfcl_suite_import(data_dir=write_mini_bfcl(tmp_path / "bfcl"), name="mini").suite


@pytest.fixture
def staff(client: Any, admin_user: Any) -> Any:
    client.force_login(admin_user)
    return client


def _charts(page: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        page.split('<script id="eval-charts" type="application/json">')[1].split("</script>")[0])
    return data


def test_run_page_lists_each_target_as_met_or_not(staff: Any, suite: EvalSuite, tmp_path: Path) -> None:
    run = finished_run(suite, tmp_path, "inches")  # irrelevance 100%, simple_python 50%
    assert [(t["category"], t["target"], t["exact"], t["met"]) for t in category_targets(run)] == [
        ("irrelevance", 80.0, 100.0, True), ("simple_python", 95.0, 50.0, False)]
    page = staff.get(reverse("evaluation:run", args=[run.pk])).content.decode()
    section = page.split('id="h-targets"')[1].split("</section>")[0]
    rows = section.split("<tr>")[2:]
    assert "irrelevance" in rows[0] and "&ge; 80%" in rows[0] and "(relevance)" in rows[0]
    assert '<span class="badge good">met</span>' in rows[0]
    assert "simple_python" in rows[1] and "&ge; 95%" in rows[1] and "50.0%" in rows[1]
    assert '<span class="badge bad">not met</span>' in rows[1]
    assert _charts(page)["category"]["target"] == [80.0, 95.0]
    assert 'label: "target %"' in page  # the chart script draws the series as target lines


def test_targets_come_from_the_configuration(staff: Any, suite: EvalSuite, tmp_path: Path, settings: Any) -> None:
    config = tmp_path / "ft_ops_config.yaml"
    config.write_text("evaluation:\n  targets: {simple_python: 0.5, multi_turn: 0.7}\n")
    settings.FTOPS_CONFIG_FILE = str(config)
    run = finished_run(suite, tmp_path, "inches")
    page = staff.get(reverse("evaluation:run", args=[run.pk])).content.decode()
    section = page.split('id="h-targets"')[1].split("</section>")[0]
    assert "irrelevance" not in section  # no relevance target configured
    assert "&ge; 50%" in section and '<span class="badge good">met</span>' in section
    assert _charts(page)["category"]["target"] == [None, 50.0]


def test_no_targets_no_section(staff: Any, suite: EvalSuite, tmp_path: Path, settings: Any) -> None:
    config = tmp_path / "ft_ops_config.yaml"
    config.write_text("evaluation:\n  targets: {}\n")
    settings.FTOPS_CONFIG_FILE = str(config)
    run = finished_run(suite, tmp_path, "inches")
    page = staff.get(reverse("evaluation:run", args=[run.pk])).content.decode()
    assert 'id="h-targets"' not in page
    assert "target" not in _charts(page)["category"]


def test_compare_chart_carries_the_targets(staff: Any, suite: EvalSuite, tmp_path: Path) -> None:
    base = finished_run(suite, tmp_path, "inches")
    other = finished_run(suite, tmp_path, "cm")
    page = staff.get(reverse("evaluation:compare"), {"base": base.pk, "other": other.pk}).content.decode()
    charts = json.loads(page.split('<script id="compare-charts" type="application/json">')[1].split("</script>")[0])
    assert charts["category"]["labels"] == ["irrelevance", "simple_python"]
    assert charts["category"]["target"] == [80.0, 95.0]


def test_the_run_api_lists_the_targets(make_key: Any, suite: EvalSuite, tmp_path: Path) -> None:
    run = finished_run(suite, tmp_path, "inches")
    client, _ = make_key("reviewer")
    body = client.get(f"/api/v1/evaluation/runs/{run.pk}").json()
    assert body["targets"] == [
        {"category": "irrelevance", "target_key": "relevance", "target": 80.0, "exact": 100.0, "n": 1, "met": True},
        {"category": "simple_python", "target_key": "simple", "target": 95.0, "exact": 50.0, "n": 2, "met": False},
    ]
    schema = client.get("/api/v1/schema", HTTP_ACCEPT="application/json").json()
    assert "TargetOut" in schema["components"]["schemas"]
