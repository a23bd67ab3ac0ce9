"""Training run page in real headless Chromium (issue 16): the loss chart smooths the training
loss with a choice of strength and keeps the validation line on top in its split's colour; the
run links to its model version, evaluations and artifact; "New run" leads to the form.
Screenshot: test-artifacts/browser/training-run.png.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from django.urls import reverse

from ftops.training import services
from ftops.training.models import RunStatus, TrainingRun
from tests.browser.test_review_flow import PASSWORD, browser, login, shot  # noqa: F401  (fixture)
from tests.training.conftest import TESTER, make_records

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LOSS_CHART = """() => {
  const norm = (c) => {
    const x = document.createElement("canvas").getContext("2d"); x.fillStyle = c; return x.fillStyle;
  };
  const chart = Chart.getChart(document.getElementById("loss-chart"));
  const css = getComputedStyle(document.documentElement);
  return {
    datasets: chart.data.datasets.map((d) => ({label: d.label, y: d.data.map((p) => p.y), order: d.order,
                                               color: norm(d.borderColor), radius: d.pointRadius,
                                               hidden: !chart.isDatasetVisible(chart.data.datasets.indexOf(d))})),
    palette: {train: norm(css.getPropertyValue("--split-train").trim()),
              validation: norm(css.getPropertyValue("--split-validation").trim())},
  };
}"""


def _roughness(values: list[float]) -> float:
    return sum(abs(b - a) for a, b in itertools.pairwise(values))


def test_loss_smoothing_and_the_runs_links(browser: Any, live_server: Any, django_user_model: Any,  # noqa: F811
                                           make_dataset_version: Any) -> None:
    django_user_model.objects.create_user("mona", "m@example.com", PASSWORD, is_staff=True, is_superuser=True)
    version = make_dataset_version(train=make_records(6))
    run = services.training_run_create(actor=TESTER, backend="fewshot", dataset_version=version, enqueue=False)
    loss = [[step, round(2.0 * math.exp(-step / 60) + (0.3 if step % 2 else -0.3), 4)] for step in range(1, 201)]
    val = [[step, round(2.0 * math.exp(-step / 60) + 0.1, 4)] for step in range(20, 201, 20)]
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, loss_series=loss, val_loss_series=val,
                                                 artifact_path="/nowhere/run", progress=100)
    page = login(browser, live_server.url, "mona")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(f"{live_server.url}{reverse('training:runs')}")
    page.get_by_role("link", name="New run").click()
    page.wait_for_url(f"{live_server.url}{reverse('training:new')}")
    assert page.get_by_label("Backend").is_visible() and page.get_by_label("Dataset version").is_visible()

    page.goto(f"{live_server.url}{reverse('training:run', args=[run.pk])}")
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('loss-chart'))")
    seen = page.evaluate(LOSS_CHART)
    shot(page, "training-run")
    validation, smoothed, raw = seen["datasets"]
    assert [d["label"] for d in seen["datasets"]] == ["validation loss", "training loss (smoothed)",
                                                      "training loss (raw)"]
    # The validation line: every point, drawn on top (lowest order), in the validation split's colour.
    assert validation["y"] == [v for _, v in val] and validation["radius"] > 0 and not validation["hidden"]
    assert validation["order"] < smoothed["order"] < raw["order"]
    assert (validation["color"], smoothed["color"]) == (seen["palette"]["validation"], seen["palette"]["train"])
    assert raw["y"] == [v for _, v in loss]
    assert _roughness(smoothed["y"]) < _roughness(raw["y"]) / 3  # 0.6 by default
    assert abs(smoothed["y"][0] - raw["y"][0]) < 1e-9  # debiased: the first step is not pulled to 0

    page.get_by_label("Smoothing").select_option("0.9")
    stronger = page.evaluate(LOSS_CHART)["datasets"][1]["y"]
    assert _roughness(stronger) < _roughness(smoothed["y"])
    page.get_by_label("Smoothing").select_option("0")
    assert page.evaluate(LOSS_CHART)["datasets"][1]["y"] == raw["y"]

    links = page.locator("main a, body a")
    hrefs = {links.nth(k).inner_text().strip(): links.nth(k).get_attribute("href") for k in range(links.count())}
    assert hrefs.get("Model version and evaluations") == reverse("registry:run", args=[run.pk])
    assert hrefs.get(f"v{version.number}") == reverse("datasets:version", args=[version.number])
    assert errors == []
