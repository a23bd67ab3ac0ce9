""""multi_step" names two groups: the category (every sequence case) and the split dimension
(sequences over seen tools only). Pages and the API name them apart; stored names stay."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.urls import reverse

from ftops.datasets.splitting import MULTI, ZERO, Item, SplitParams, assign_splits
from ftops.evaluation.models import EvalFailure, EvalRun, EvalSuite

pytestmark = pytest.mark.django_db


def test_the_dimension_holds_only_the_sequences_that_call_no_zero_shot_tool() -> None:
    """Why the counts differ: a sequence that calls a held-out tool is a zero-shot case.

    (A share of the sequences over seen tools trains, ``sequence_train_share``; those have no
    evaluation dimension.)"""
    tools = [f"shop.t{n}" for n in range(6)]
    items = [Item(key=f"c{t}{k}", tool=tool, tools_called=(tool,), behavior="call", group=f"g{k % 4}")
             for t, tool in enumerate(tools) for k in range(12)]
    items += [Item(key=f"s{n}", tool=tools[n % 6], tools_called=(tools[n % 6], tools[(n + 1) % 6]),
                   behavior="sequence", group=f"s{n}") for n in range(12)]
    out = assign_splits(items, SplitParams(), seed=3)
    assert out.zero_shot_tools
    sequences = [i for i in items if i.behavior == "sequence"]
    trained = [i for i in sequences if out.split[i.key] == "train"]
    assert all(out.dimension[i.key] == "" and not set(i.tools_called) & set(out.zero_shot_tools) for i in trained)
    sequences = [i for i in sequences if i not in trained]
    by_dimension = {i.key: out.dimension[i.key] for i in sequences}
    for item in sequences:
        assert by_dimension[item.key] == (ZERO if set(item.tools_called) & set(out.zero_shot_tools) else MULTI)
    assert {ZERO, MULTI} <= set(by_dimension.values())  # so the category outnumbers the dimension


def _group(n: int, exact: float) -> dict[str, Any]:
    return {"n": n, "exact": exact, "tool": 100.0, "args": 100.0, "values": exact}


def _run(suite: EvalSuite, name: str, seq_exact: float) -> EvalRun:
    metrics = {"overall": _group(13, 50.0),
               "by_category": {"simple": _group(10, 60.0), "multi_step": _group(3, seq_exact)},
               "by_service": {"shop": _group(13, 50.0)},
               "by_tool": {"t1": _group(13, 50.0)},
               "by_dimension": {"multi_step": _group(1, seq_exact), "zero_shot_tool": _group(2, seq_exact),
                                "seen_phrasing": _group(10, 60.0)}}
    run = EvalRun.objects.create(suite=suite, name=name, model_label=name, status="succeeded", exact=50.0,
                                 metrics=metrics, adapter_config={"kind": "replay", "path": "x"})
    EvalFailure.objects.create(run=run, record_id="7", category="multi_step", dimension="zero_shot_tool",
                               service="shop", tool="t1", behavior="sequence", error_type="wrong_step",
                               error="step 2", user_query="pay for the latest order", expected={}, got={})
    return run


def test_pages_name_the_category_and_the_dimension_apart(client: Any, admin_user: Any) -> None:
    client.force_login(admin_user)
    suite = EvalSuite.objects.create(name="labels", kind="bfcl")
    base, other = _run(suite, "base", 0.0), _run(suite, "tuned", 100.0)

    page = client.get(reverse("evaluation:run", args=[other.pk])).content.decode()
    failures = reverse("evaluation:failures", args=[other.pk])
    assert f'<a href="{failures}?category=multi_step" title="every multi-step sequence case' in page
    assert '>sequence</a><br><span class="muted">every multi-step sequence case (ordered calls), whatever its ' \
           'split dimension</span>' in page
    assert f'<a href="{failures}?dimension=multi_step" title="multi-step sequences over tools seen' in page
    assert '>multi-step, seen tools</a>' in page
    assert ">multi_step</a>" not in page
    charts = json.loads(page.split('id="eval-charts" type="application/json">')[1].split("</script>")[0])
    # (PostgreSQL's jsonb keeps its own key order: compare the labels as sets.)
    assert sorted(charts["category"]["labels"]) == ["sequence", "simple"]
    assert sorted(charts["dimension"]["labels"]) == ["multi-step, seen tools", "seen_phrasing", "zero_shot_tool"]

    listed = client.get(failures).content.decode()
    assert '<option value="multi_step" >sequence</option>' in listed
    assert '<option value="multi_step" >multi-step, seen tools</option>' in listed
    assert "<td>sequence</td>" in listed and ">zero_shot_tool</span>" in listed
    filtered = client.get(failures, {"category": "multi_step"}).content.decode()
    assert '<option value="multi_step" selected>sequence</option>' in filtered
    assert "pay for the latest order" in filtered

    compared = client.get(reverse("evaluation:compare"), {"base": base.pk, "other": other.pk}).content.decode()
    assert "<td>sequence<br><span class=\"muted\">every multi-step" in compared
    assert "<td>multi-step, seen tools<br><span class=\"muted\">multi-step sequences over tools seen" in compared


def test_the_api_keeps_the_stored_names_and_adds_the_labels(make_key: Any) -> None:
    api, _key = make_key("approver")
    suite = EvalSuite.objects.create(name="labels", kind="bfcl")
    base, other = _run(suite, "base", 0.0), _run(suite, "tuned", 100.0)
    detail = api.get(f"/api/v1/evaluation/runs/{other.pk}").json()
    assert set(detail["metrics"]["by_category"]) == {"simple", "multi_step"}
    assert {k: {n: v["label"] for n, v in names.items()} for k, names in detail["group_labels"].items()} == {
        "category": {"multi_step": "sequence"},
        "dimension": {"multi_step": "multi-step, seen tools", "zero_shot_tool": "zero_shot_tool"}}
    compared = api.get("/api/v1/evaluation/compare", {"base": base.pk, "other": other.pk}).json()
    rows = {key: {r["name"]: r["label"] for r in rows} for key, rows in compared["groups"].items()}
    assert rows["category"] == {"multi_step": "sequence", "simple": "simple"}
    assert rows["dimension"]["multi_step"] == "multi-step, seen tools"
