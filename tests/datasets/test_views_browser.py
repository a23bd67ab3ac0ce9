"""Dataset version page in real headless Chromium (issue 16): the per-tool charts span the page
and name every tool, a split has one colour on every chart and in the table (the palette of
ftops.css), sources never borrow a split's colour, and the diff is one click away.
Screenshot: test-artifacts/browser/dataset-version.png.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.test_review_flow import PASSWORD, browser, login, shot  # noqa: F401  (fixture)
from tests.datasets.test_views import plain_examples, ready_version

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SPLITS = ("train", "validation", "test", "holdout")
TOOLS = [f"warehouse-operations.reserve_inventory_slot_{n:02d}" for n in range(24)]


def _report() -> dict[str, Any]:
    per_tool = {t: {"total": 10 + n, "train": 6 + n, "validation": 1, "test": 1, "holdout": 2,
                    "edge_case_coverage": round(n / 30, 2)} for n, t in enumerate(TOOLS)}
    return {"per_tool": per_tool, "examples_per_tool": {t: r["total"] for t, r in per_tool.items()},
            "split_sizes": {s: sum(r[s] for r in per_tool.values()) for s in SPLITS},
            "source_mix": {"manual": 40, "production": 200, "correction": 30, "synthetic": 50},
            "test_dimensions": {"seen_phrasing": 10, "new_phrasing": 9, "zero_shot_tool": 5},
            "average_per_tool": 21.5, "tools_covered": len(TOOLS)}


# Colours as the canvas normalises them, so "rgb(41, 87, 216)" and "#2957d8" compare equal.
CHART_COLOURS = """() => {
  const norm = (c) => {
    const x = document.createElement("canvas").getContext("2d"); x.fillStyle = c; return x.fillStyle;
  };
  const perTool = Chart.getChart(document.getElementById("chart-per-tool"));
  const sources = Chart.getChart(document.getElementById("chart-sources"));
  const test = Chart.getChart(document.getElementById("chart-test"));
  const edge = Chart.getChart(document.getElementById("chart-edge"));
  const grid = document.querySelector(".dataset-charts").getBoundingClientRect().width;
  const swatches = {};
  for (const s of ["train", "validation", "test", "holdout"]) {
    const el = document.querySelector(".split-swatch.split-" + s);
    swatches[s] = el ? norm(getComputedStyle(el).backgroundColor) : null;
  }
  return {
    ticks: perTool.scales.y.ticks.map((t) => perTool.scales.y.getLabelForValue(t.value)),
    edgeTicks: edge.scales.y.ticks.length,
    splits: Object.fromEntries(perTool.data.datasets.map((d) => [d.label, norm(d.backgroundColor)])),
    sources: sources.data.datasets[0].backgroundColor.map(norm),
    test: norm(test.data.datasets[0].backgroundColor),
    edge: norm(edge.data.datasets[0].backgroundColor),
    swatches,
    perToolWidth: document.getElementById("chart-per-tool").closest(".card").getBoundingClientRect().width / grid,
    edgeWidth: document.getElementById("chart-edge").closest(".card").getBoundingClientRect().width / grid,
    sourcesWidth: document.getElementById("chart-sources").closest(".card").getBoundingClientRect().width / grid,
  };
}"""


def test_charts_name_every_tool_and_keep_one_colour_per_meaning(browser: Any, live_server: Any,  # noqa: F811
                                                                django_user_model: Any) -> None:
    django_user_model.objects.create_user("dana", "d@example.com", PASSWORD, is_staff=True, is_superuser=True)
    examples = plain_examples(6)
    ready_version(1, [(e, "train", "") for e in examples[:4]], quality_report=_report())
    ready_version(2, [(e, ("train", "validation", "test")[n % 3], "seen_phrasing" if n % 3 == 2 else "")
                      for n, e in enumerate(examples)], quality_report=_report())
    page = login(browser, live_server.url, "dana")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server.url}/datasets/2/")
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('chart-edge'))")
    seen = page.evaluate(CHART_COLOURS)
    shot(page, "dataset-version")

    assert seen["ticks"] == TOOLS and seen["edgeTicks"] == len(TOOLS)  # every tool named, none skipped
    assert seen["perToolWidth"] > 0.97 and seen["edgeWidth"] > 0.97  # the per-tool charts span the page
    assert seen["sourcesWidth"] < 0.6
    splits = seen["splits"]
    assert set(splits) == set(SPLITS) and len(set(splits.values())) == 4
    assert seen["swatches"] == {s: splits[s] for s in SPLITS if seen["swatches"][s] is not None}
    assert seen["swatches"]["train"] == splits["train"]
    assert seen["test"] == splits["test"]  # the test composition is drawn in the test split's colour
    others = set(seen["sources"]) | {seen["edge"]}
    assert len(set(seen["sources"])) == 4 and not others & set(splits.values())
    assert errors == []

    page.get_by_role("link", name="What changed since v1").click()
    page.wait_for_url(f"{live_server.url}/datasets/diff?a=1&b=2")
    assert page.locator("h1").inner_text() == "Dataset v1 → v2"
    page.locator('select[name="a"]').select_option("2")
    page.locator('select[name="b"]').select_option("1")
    page.locator('select[name="b"]').evaluate("el => el.form.requestSubmit()")
    page.wait_for_url(f"{live_server.url}/datasets/diff?a=2&b=1")
    assert page.locator("h1").inner_text() == "Dataset v2 → v1"
    assert errors == []
