"""DPO on top of a LoRA run: pairs from corrections and from the adapter's own mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftops.core.ml.dpo import (
    DpoTrainConfig,
    PreferencePair,
    correction_pair,
    dpo_loss,
    self_pairs_from,
    train_dpo,
)
from ftops.core.ml.lora import LoraTrainConfig, train_lora
from ftops.core.records import Record
from tests.training.conftest import BOOK, WEATHER, make_records


def _correction(model_calls: list, **provenance: object) -> Record:
    return Record(id="c1", service="weather", tool="get_weather", messages=[{"role": "user", "content": "Oslo?"}],
                  tools=[WEATHER, BOOK], behavior="call",
                  expected={"calls": [{"name": "get_weather", "arguments": {"city": ["Oslo"]}}]},
                  meta={"source": "correction", "provenance": {"model_calls": model_calls, **provenance}})


def test_correction_pair_takes_the_reviewers_and_the_models_answer() -> None:
    pair = correction_pair(_correction([{"type": "function", "function": {
        "name": "book_room", "arguments": '{"room": "Oslo"}'}}]))
    assert pair is not None
    assert pair.chosen == '<tool_call>{"name":"get_weather","arguments":{"city":"Oslo"}}</tool_call>'
    assert pair.rejected == '<tool_call>{"name":"book_room","arguments":{"room":"Oslo"}}</tool_call>'
    assert correction_pair(make_records(1)[0]) is None  # not a correction
    with pytest.raises(ValueError, match="no model answer"):
        correction_pair(_correction([]))
    with pytest.raises(ValueError, match="prefers nothing"):
        correction_pair(_correction([{"name": "get_weather", "arguments": {"city": "Oslo"}}]))
    text = correction_pair(_correction([], model_text="I don't know."))
    assert text is not None and text.rejected == "I don't know."


def test_dpo_loss_is_log_two_at_the_reference_and_falls_with_the_margin() -> None:
    ref = ([-5.0, -6.0], [-5.0, -4.0])
    loss, accuracy = dpo_loss(ref, ref, 0.1)
    assert loss == pytest.approx(0.693147, abs=1e-6) and accuracy == 0.0
    better = ([-3.0, -4.0], [-9.0, -8.0])
    loss_better, accuracy_better = dpo_loss(better, ref, 0.1)
    assert loss_better < loss and accuracy_better == 1.0


def test_config_validation() -> None:
    assert set(DpoTrainConfig().validate()) == {"base_model", "adapter_path"}
    assert "beta" in DpoTrainConfig(base_model="b", adapter_path="a", beta=0).validate()
    with pytest.raises(ValueError, match="unknown DPO config fields: gamma"):
        DpoTrainConfig.from_dict({"gamma": 1})


def _pairs(records: list[Record]) -> list[PreferencePair]:
    """Each call record against a wrong-tool answer; each ask against a premature call."""
    pairs = []
    for r in records:
        if r.behavior == "call" and r.tool == "get_weather":
            city = r.expected["calls"][0]["arguments"]["city"][0]
            pairs.append(PreferencePair(r.id, r.messages, r.tools,
                                        [{"name": "get_weather", "arguments": {"city": city}}], "",
                                        [{"name": "book_room", "arguments": {"room": city}}], ""))
        elif r.behavior == "ask_for_details":
            pairs.append(PreferencePair(r.id, r.messages, r.tools, [], r.expected["question"],
                                        [{"name": "book_room", "arguments": {"room": "Atlas", "hours": 1}}], ""))
    return pairs


@pytest.mark.ml
def test_dpo_changes_the_adapter_and_lowers_the_dpo_loss(micro_base: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from ftops.core.adapters import HFLocalAdapter

    records = make_records(16)
    lora = train_lora(LoraTrainConfig(base_model=str(micro_base), epochs=1.0, lr=5e-3, batch_examples=4, seed=3,
                                      threads=1, max_length=256, row_length=256), records, [], tmp_path / "sft")
    pairs = _pairs(records)
    own = self_pairs_from(HFLocalAdapter(micro_base, lora.adapter_dir, batch_size=8, max_new_tokens=24, threads=1),
                          records, limit=4)
    assert len(own) <= 4 and all(p.origin == "self" and p.chosen != p.rejected for p in own)
    cfg = DpoTrainConfig(base_model=str(micro_base), adapter_path=lora.adapter_dir, beta=0.5, lr=5e-3, epochs=3.0,
                         batch_pairs=4, max_length=256, threads=1, self_pairs=False)
    result = train_dpo(cfg, pairs + own, tmp_path / "dpo")
    assert result.pairs == len(pairs + own) and result.steps > 0
    assert result.loss_before == pytest.approx(0.693147, abs=1e-4)  # the policy starts as the reference
    assert result.loss_after < result.loss_before - 0.05
    assert result.reward_accuracy_after > 0.5
    before = load_file(Path(lora.adapter_dir) / "adapter_model.safetensors")
    after = load_file(tmp_path / "dpo" / "adapter_model.safetensors")
    assert set(before) == set(after)  # the same adapter, continued (no "ref" copy saved)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert not (tmp_path / "dpo" / "ref").exists()
    # It loads like any adapter and answers.
    tuned = HFLocalAdapter(micro_base, tmp_path / "dpo", batch_size=4, max_new_tokens=16, threads=1)
    assert len(tuned.generate([(r.messages, r.tools) for r in records[:2]])) == 2


def _with_corrections(records: list[Record]) -> list[Record]:
    """Every ask-for-details record turned into a correction of a premature call."""
    out = []
    for r in records:
        if r.behavior == "ask_for_details":
            r = Record(**{**r.to_dict(), "meta": {"source": "correction", "provenance": {
                "model_calls": [{"name": "book_room", "arguments": {"room": "Atlas", "hours": 2}}]}}})
        out.append(r)
    return out


@pytest.mark.django_db
def test_a_dpo_run_names_its_lora_run_never_a_path(make_dataset_version: object, base_path: Path) -> None:
    from ftops.common.errors import ValidationFailed
    from ftops.training import services
    from ftops.training.models import TrainingRun
    from tests.training.conftest import FAST_LORA, TESTER

    version = make_dataset_version(train=make_records(8))  # type: ignore[operator]
    queued = services.training_run_create(backend="lora", dataset_version=version, config=FAST_LORA,
                                          base_model=str(base_path), enqueue=False, actor=TESTER)
    cases = [({"adapter_path": "/etc"}, "config.adapter_path"), ({}, "config.from_run"),
             ({"from_run": queued.pk}, "config.from_run"), ({"from_run": 99999}, "config.from_run")]
    for extra, field_name in cases:
        with pytest.raises(ValidationFailed) as info:
            services.training_run_create(backend="lora", dataset_version=version, config={"method": "dpo", **extra},
                                         enqueue=False, actor=TESTER)
        assert field_name in info.value.fields, (extra, info.value.fields)
    TrainingRun.objects.filter(pk=queued.pk).update(status="succeeded", artifact_path=str(base_path / "adapter"))
    with pytest.raises(ValidationFailed) as other_base:
        services.training_run_create(backend="lora", dataset_version=version, base_model="/tmp/other", enqueue=False,
                                     config={"method": "dpo", "from_run": queued.pk}, actor=TESTER)
    assert "config.base_model" in other_base.value.fields
    dpo = services.training_run_create(backend="lora", dataset_version=version, enqueue=False, actor=TESTER,
                                       config={"method": "dpo", "from_run": queued.pk})
    assert dpo.base_model == str(base_path) and dpo.config["adapter_path"] == str(base_path / "adapter")
    assert TrainingRun.objects.count() == 2


@pytest.mark.ml
@pytest.mark.django_db
def test_dpo_run_continues_a_lora_run(make_dataset_version: object, micro_base: Path) -> None:
    from ftops.training import services
    from ftops.training.models import RunStatus
    from tests.training.conftest import FAST_LORA, TESTER

    version = make_dataset_version(train=_with_corrections(make_records(12)))  # type: ignore[operator]
    lora = services.training_run_create(backend="lora", dataset_version=version, config=FAST_LORA,
                                        base_model=str(micro_base), enqueue=False, actor=TESTER)
    lora = services.training_run_execute(run_id=lora.pk, owner="w1")
    assert lora is not None and lora.status == RunStatus.SUCCEEDED, lora.error if lora else None
    run = services.training_run_create(
        backend="lora", dataset_version=version, enqueue=False, actor=TESTER,
        config={"method": "dpo", "from_run": lora.pk, "beta": 0.5, "lr": 5e-3, "epochs": 2.0, "batch_pairs": 4,
                "threads": 1, "max_self_pairs": 4, "max_new_tokens": 24, "max_length": 256})
    assert run.base_model == lora.base_model and run.config["adapter_path"] == lora.artifact_path
    done = services.training_run_execute(run_id=run.pk, owner="w1")
    assert done is not None and done.status == RunStatus.SUCCEEDED, done.error
    assert done.metrics["correction_pairs"] == 2 and done.metrics["pairs"] >= 2
    assert done.metrics["loss_after"] < done.metrics["loss_before"]
    assert Path(done.artifact_path, "adapter_model.safetensors").exists()
    assert done.artifact_path != lora.artifact_path and done.loss_series
    assert "preference pairs from review corrections" in done.log_tail
