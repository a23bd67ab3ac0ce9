from __future__ import annotations

from typing import Any

import pytest

from ftops.common.errors import Forbidden, ValidationFailed
from ftops.datasets.models import DatasetMembership, DatasetVersion, TrainingExample
from ftops.datasets.selectors import dataset_records, latest_version, versions_diff
from ftops.datasets.services import dataset_version_build, example_create, example_update
from tests.datasets.factories import build_shop


@pytest.fixture
def shop(db: Any) -> list[TrainingExample]:
    return build_shop()[1]


def members(version: DatasetVersion) -> dict[int, tuple[str, str]]:
    return {m.example_id: (m.split, m.dimension) for m in DatasetMembership.objects.filter(version=version)}


def test_build_splits_three_ways_with_a_report(shop: list[TrainingExample]) -> None:
    version = dataset_version_build(seed=3)
    assert version.status == "ready" and version.progress == 100 and len(version.content_hash) == 64
    report = version.quality_report
    assert report["total_examples"] == len(shop) == 125
    assert sum(report["split_sizes"].values()) == 125
    assert report["tools_covered"] == 6
    assert report["zero_shot_tools"] and len(report["zero_shot_tools"]) == 1
    zero_tool = report["zero_shot_tools"][0]
    rows = DatasetMembership.objects.filter(version=version).select_related("example__tool", "example__service")
    for m in rows:
        called = {c["name"] for c in m.example.expected.get("calls", []) + m.example.expected.get("steps", [])}
        if m.split in ("train", "validation"):
            assert f"shop.{m.example.tool.name if m.example.tool else '(none)'}" != zero_tool
            assert f"shop.{zero_tool.split('.')[1]}" not in {f"shop.{c}" for c in called}
            assert m.example.behavior != "sequence"
    train_tools = {r.tool for r in dataset_records(version=version, split="train")}
    test = dataset_records(version=version, split="test")
    new = [r for r in test if r.dimension == "new_phrasing"]
    assert new and {r.tool for r in new} <= train_tools
    assert {r.dimension for r in test} >= {"seen_phrasing", "new_phrasing", "zero_shot_tool"}
    assert report["source_mix"] == {"manual": 125}
    assert report["high_quality_count"] == 125
    assert report["per_tool"]["shop.get_order"]["edge_cases"] == 3  # the three sequences start there
    assert report["per_tool"]["shop.cancel_order"]["edge_cases"] == 0
    assert report["per_tool"]["shop.(none)"]["edge_cases"] == 2  # the abstain and the clarify
    assert latest_version() == version


def test_same_inputs_and_seed_give_the_same_hash(shop: list[TrainingExample]) -> None:
    first = dataset_version_build(seed=5)
    second = dataset_version_build(seed=5)
    other = dataset_version_build(seed=6)
    assert second.number == first.number + 1
    assert second.content_hash == first.content_hash
    assert members(first) == members(second)
    assert other.content_hash != first.content_hash
    assert f"identical content to version {first.number}" in second.quality_report["notes"]
    diff = versions_diff(a=first, b=other)
    assert diff["added_count"] == diff["removed_count"] == 0 and diff["moved_count"] > 0
    assert not diff["same_content"] and diff["seed"] == {"a": 5, "b": 6}


def test_holdout_is_refused_without_allow_holdout_and_disjoint(shop: list[TrainingExample]) -> None:
    version = dataset_version_build(seed=1)
    with pytest.raises(Forbidden, match="holdout split is reserved"):
        dataset_records(version=version, split="holdout")
    holdout = dataset_records(version=version, split="holdout", allow_holdout=True)
    other = [r for s in ("train", "validation", "test") for r in dataset_records(version=version, split=s)]
    assert holdout and not {r.id for r in holdout} & {r.id for r in other}
    assert len({r.id for r in other}) == len(other)
    with pytest.raises(ValidationFailed, match="unknown split"):
        dataset_records(version=version, split="dev")


def test_version_is_a_snapshot_unchanged_by_later_edits(shop: list[TrainingExample]) -> None:
    version = dataset_version_build(seed=2)
    record = dataset_records(version=version, split="train")[0]
    example = TrainingExample.objects.get(pk=int(record.id))
    example_update(example=example, changes={"user_query": example.user_query + " right now"})
    again = next(r for r in dataset_records(version=version, split="train") if r.id == record.id)
    assert again.user_query == record.user_query
    assert again.tools == record.tools and again.tools[0]["type"] == "function"


def test_duplicates_dropped_conflicts_reported_and_contamination_removed(db: Any) -> None:
    service, examples = build_shop(with_sequences=False)
    original = next(e for e in examples if e.user_query == "Where is order ORD-1001?")
    # the same request again, worded almost identically, same answer: a duplicate
    example_create(service=service, user_query="where is order ORD-1001?", behavior="call",
                   expected=original.expected, source="production", quality="medium")
    # the same request with a different call: a conflict, kept and reported
    cancel = {"calls": [{"name": "cancel_order", "arguments": {"order_id": ["ORD-1001"]}}]}
    conflicting = example_create(service=service, user_query="Where is order ORD-1001 ?", behavior="call",
                                 expected=cancel, source="manual", quality="medium")
    version = dataset_version_build(seed=0)  # a seed that splits the pair between train and test
    report = version.quality_report
    assert report["duplicates_removed"] == 1
    assert report["conflicts_count"] >= 1
    pairs = [set(c["examples"]) for c in report["conflicts"]]
    assert {original.pk, conflicting.pk} in pairs
    assert any(c["kind"] == "different_tool" for c in report["conflicts"])
    # Of the conflicting pair, one landed in evaluation; its near-twin was taken out of train.
    placed = members(version)
    assert report["contamination_removed"] == 1
    kept = [placed[pk] for pk in (original.pk, conflicting.pk) if pk in placed]
    assert len(kept) == 1 and kept[0][0] in ("test", "holdout")
    assert report["total_examples"] + report["duplicates_removed"] + report["contamination_removed"] == 124


def test_bad_params_are_refused_before_anything_is_written(shop: list[TrainingExample]) -> None:
    with pytest.raises(ValidationFailed) as exc:
        dataset_version_build(seed=1, params={"rotaton": 1})
    assert "rotaton" in exc.value.fields
    with pytest.raises(ValidationFailed) as exc:
        dataset_version_build(seed=1, params={"rotation": -1, "min_quality": "great"})
    assert set(exc.value.fields) == {"rotation", "min_quality"}
    assert DatasetVersion.objects.count() == 0


def test_conflicts_are_same_request_different_answer_not_same_template(db: Any) -> None:
    from ftops.datasets.config import CurationConfig
    from ftops.datasets.embedding_store import db_embedder
    from ftops.datasets.services.versions import curate

    service, examples = build_shop(with_sequences=False)
    same_text = example_create(service=service, user_query="Where is order ORD-1001?", behavior="call",
                               expected={"calls": [{"name": "get_order", "arguments": {"order_id": ["ORD-1009"]}}]},
                               source="production", quality="medium")
    result = curate([*examples, same_text], embedder=db_embedder(), cfg=CurationConfig())
    kinds = [(set(c["examples"]), c["kind"]) for c in result.conflicts]
    original = next(e for e in examples if e.user_query == "Where is order ORD-1001?")
    assert kinds == [({original.pk, same_text.pk}, "different_arguments")]
    # "Where is order ORD-2002?" is the same template with another id: neither duplicate nor conflict
    assert result.duplicates_removed == 0 and len(result.kept) == len(examples) + 1


def test_report_shows_shares_against_targets_and_multi_step_beside_the_composition(
        shop: list[TrainingExample]) -> None:
    report = dataset_version_build(seed=3).quality_report
    assert report["split_sizes"] == {"train": 76, "validation": 12, "test": 12, "holdout": 25}
    assert report["split_targets"] == {"train": 0.6, "validation": 0.1, "test": 0.1, "holdout": 0.2}
    assert all(abs(report["split_shares"][s] - report["split_targets"][s]) <= 0.03 for s in report["split_targets"])
    # 12 test examples: one multi-step sequence inside the test's size, 11 single-step ones at
    # 40/40/20 by largest remainder (5/4/2).
    assert report["test_dimensions"] == {"multi_step": 1, "new_phrasing": 4, "seen_phrasing": 5, "zero_shot_tool": 2}
    assert report["test_composition"] == {"new_phrasing": 0.364, "seen_phrasing": 0.455, "zero_shot_tool": 0.182,
                                          "multi_step": 0.083}
    assert report["test_composition_target"] == {"new_phrasing": 0.4, "seen_phrasing": 0.4, "zero_shot_tool": 0.2}
    assert report["notes"] == []


def test_a_version_whose_shares_drift_says_so(db: Any) -> None:
    from tests.datasets.factories import SHOP

    # Three tools: the one zero-shot tool is a third of the examples, more than test + holdout
    # can take as its share, so the holdout grows and the report says by how much and why.
    build_shop(with_sequences=False)
    TrainingExample.objects.exclude(tool__name__in=list(SHOP)[:3]).delete()
    report = dataset_version_build(seed=1).quality_report
    assert report["tools_covered"] == 3 and len(report["zero_shot_tools"]) == 1
    assert report["split_shares"]["holdout"] > 0.23
    assert any(n.startswith("holdout holds") and "zero-shot-tool" in n for n in report["notes"])
    assert any(n.startswith("split shares drift more than 3 points from their targets: train") for n in report["notes"])
