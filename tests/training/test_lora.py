from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ftops.core.ml.lora import (
    CARD_JSON,
    OWNER_FILE,
    LoraTrainConfig,
    TrainingStopped,
    _record_turns,
    _tokenize_records,
    latest_checkpoint,
    train_lora,
)
from ftops.core.records import Record
from tests.training.conftest import BOOK, WEATHER, make_records


def _cfg(base: Path, **overrides: object) -> LoraTrainConfig:
    values: dict[str, object] = {"base_model": str(base), "epochs": 2.0, "lr": 5e-3, "batch_examples": 4,
                                 "checkpoint_every": 3, "seed": 3, "threads": 1, "max_length": 256,
                                 "row_length": 256, "dataset_version": "7"}
    values.update(overrides)
    return LoraTrainConfig(**values)  # type: ignore[arg-type]


def test_defaults_are_the_documented_recipe() -> None:
    cfg = LoraTrainConfig(base_model="x")
    assert (cfg.r, cfg.alpha, cfg.dropout, cfg.lr) == (8, 16, 0.1, 1e-4)
    assert cfg.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert 1 <= cfg.epochs <= 2
    assert cfg.validate() == {}


def test_config_validation_names_each_bad_field() -> None:
    cfg = LoraTrainConfig(base_model="", r=0, dropout=1.5, lr=0, target_modules=[])
    assert set(cfg.validate()) == {"base_model", "r", "dropout", "lr", "target_modules"}
    with pytest.raises(ValueError, match="unknown LoRA config fields: rank"):
        LoraTrainConfig.from_dict({"rank": 8})


def record_target(record: Record) -> str:
    """The assistant text LoRA teaches for a record's first turn."""
    return _record_turns(record)[0][2]


def test_record_target_for_each_behaviour(records: list) -> None:
    assert record_target(records[0]) == '<tool_call>{"name":"get_weather","arguments":{"city":"Paris"}}</tool_call>'
    assert record_target(records[4]) == "Which room, and for how many hours?"
    assert record_target(records[5]) == "None of the available tools can do that."


def test_a_sequence_record_tokenises_into_one_example_per_step_and_a_closing_one(micro_tokenizer: Path) -> None:
    from transformers import AutoTokenizer

    from ftops.core.ml.data import IGNORE

    steps = [{"name": "get_weather", "arguments": {"city": "Paris"}, "result": {"room": "Atlas"}},
             {"name": "book_room", "arguments": {"room": "{prev.room}", "hours": 2}}]
    seq = Record(id="seq-1", service="weather", tool="get_weather", tools=[WEATHER, BOOK], behavior="sequence",
                 messages=[{"role": "user", "content": "Check Paris, then book the room it suggests for 2 hours"}],
                 expected={"steps": steps}, split="train")
    tokenizer = AutoTokenizer.from_pretrained(micro_tokenizer)
    data, skipped = _tokenize_records(tokenizer, [make_records(1)[0], seq], 512)
    assert (len(data), skipped) == (1 + 3, 0)
    targets = [tokenizer.decode([t for t in x.labels if t != IGNORE]) for x in data[1:]]
    assert '"get_weather"' in targets[0] and '"book_room"' in targets[1] and '"Atlas"' in targets[1]
    assert "tool_call" not in targets[2] and "Done: book_room returned" in targets[2]
    # Later turns carry the earlier ones: each prompt is longer, and all pack under one prefix group.
    prompts = [sum(1 for t in x.labels if t == IGNORE) for x in data[1:]]
    assert prompts[0] < prompts[1] < prompts[2]
    assert len({x.group for x in data}) == 1


@pytest.mark.ml
def test_adapter_weights_change_and_base_weights_do_not(micro_base: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    before = {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(micro_base).state_dict().items()}
    result = train_lora(_cfg(micro_base), make_records(16), make_records(4, seed=1), tmp_path / "adapter")
    out = Path(result.adapter_dir)
    assert (out / "adapter_model.safetensors").exists() and (out / "tokenizer_config.json").exists()
    adapter = load_file(out / "adapter_model.safetensors")
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # lora_B starts at zero: training moved it
    base_after = AutoModelForCausalLM.from_pretrained(micro_base).state_dict()
    assert all(torch.equal(before[k], base_after[k]) for k in before)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(micro_base), out)
    merged = tuned.merge_and_unload().state_dict()
    changed = [k for k in before if "q_proj" in k and not torch.equal(before[k], merged[k])]
    assert changed  # the adapter really changes the model's function
    assert result.trainable_parameters < sum(v.numel() for v in before.values()) / 5


@pytest.mark.ml
def test_card_holds_lineage_config_and_metrics(micro_base: Path, tmp_path: Path) -> None:
    result = train_lora(_cfg(micro_base, name="acme", epochs=1.0), make_records(8), make_records(4, seed=2),
                        tmp_path / "a")
    card = json.loads((Path(result.adapter_dir) / CARD_JSON).read_text())
    assert card["dataset_version"] == "7"
    assert card["base_model"] == str(micro_base)
    assert card["config"]["r"] == 8 and card["config"]["lr"] == 5e-3
    assert card["metrics"]["train_examples"] == 8 and card["metrics"]["val_examples"] == 4
    assert card["metrics"]["final_loss"] == result.final_loss
    assert "dataset version `7`" in (Path(result.adapter_dir) / "README.md").read_text()
    assert not (Path(result.adapter_dir) / "checkpoints").exists()


@pytest.mark.ml
def test_killed_run_resumes_from_checkpoint_and_matches_uninterrupted(micro_base: Path, tmp_path: Path) -> None:
    train, val = make_records(24), make_records(4, seed=1)
    full = train_lora(_cfg(micro_base), train, val, tmp_path / "full")

    def kill_after_seven(progress: object) -> None:
        if progress.step == 7:  # type: ignore[attr-defined]
            raise TrainingStopped("simulated worker death")

    with pytest.raises(TrainingStopped):
        train_lora(_cfg(micro_base), train, val, tmp_path / "killed", on_progress=kill_after_seven)
    checkpoint = latest_checkpoint(tmp_path / "killed")
    assert checkpoint is not None and checkpoint.name == "step-6"
    resumed = train_lora(_cfg(micro_base), train, val, tmp_path / "killed")
    assert resumed.resumed_from_step == 6
    assert resumed.steps == full.steps == 12
    assert abs(resumed.final_loss - full.final_loss) < 1e-3
    assert resumed.final_val_loss == pytest.approx(full.final_val_loss, abs=1e-3)
    assert [round(x[1], 3) for x in resumed.losses] == [round(x[1], 3) for x in full.losses]


@pytest.mark.ml
def test_checkpoint_resumes_only_for_its_owner(micro_base: Path, tmp_path: Path) -> None:
    train, val = make_records(24), make_records(4, seed=1)
    run_a = {"run_id": "5", "run_token": "a"}
    fresh = train_lora(_cfg(micro_base), train, val, tmp_path / "fresh")

    def kill_after_seven(progress: object) -> None:
        if progress.step == 7:  # type: ignore[attr-defined]
            raise TrainingStopped("simulated worker death")

    with pytest.raises(TrainingStopped):
        train_lora(_cfg(micro_base), train, val, tmp_path / "a", on_progress=kill_after_seven, identity=run_a)
    written = latest_checkpoint(tmp_path / "a")
    assert written is not None
    assert json.loads((written / OWNER_FILE).read_text())["run_token"] == "a"

    # The same folder seen by: another run with the same id, run A with an edited config, and
    # a checkpoint from before owners were recorded. None of them may continue A's weights.
    legacy = tmp_path / "legacy"
    shutil.copytree(tmp_path / "a", legacy)
    (legacy / "checkpoints" / "step-6" / OWNER_FILE).unlink()
    cases = [("run_b", {"run_id": "5", "run_token": "b"}, {}, "it names a different run_token"),
             ("edited", run_a, {"lr": 4e-3}, "it names a different config_sha256"),
             ("legacy", run_a, {}, "it records no owner")]
    for name, identity, overrides, reason in cases:
        folder = legacy if name == "legacy" else tmp_path / name
        if name != "legacy":
            shutil.copytree(tmp_path / "a", folder)
        lines: list[str] = []
        result = train_lora(_cfg(micro_base, **overrides), train, val, folder, identity=identity,
                            on_log=lines.append)
        assert result.resumed_from_step == 0, name
        assert any(f"ignoring checkpoint step-6 in {folder}: {reason}" in line for line in lines), (name, lines)
        if not overrides:
            assert result.final_loss == pytest.approx(fresh.final_loss, abs=1e-6)  # a clean start, not a blend

    resumed = train_lora(_cfg(micro_base), train, val, tmp_path / "a", identity=run_a)
    assert resumed.resumed_from_step == 6


@pytest.mark.ml
def test_per_service_adapter_trains_on_that_service_only(micro_base: Path, tmp_path: Path) -> None:
    train = make_records(8, service="weather") + make_records(12, service="rooms")
    result = train_lora(_cfg(micro_base, service="rooms", epochs=1.0), train, [], tmp_path / "rooms")
    assert result.train_examples == 12
    card = json.loads((Path(result.adapter_dir) / CARD_JSON).read_text())
    assert card["service"] == "rooms"
    with pytest.raises(ValueError, match="no training records for service 'billing'"):
        train_lora(_cfg(micro_base, service="billing"), train, [], tmp_path / "none")


def test_augmented_epochs_keep_the_example_count_and_epoch_zero(micro_tokenizer: Path) -> None:
    from transformers import AutoTokenizer

    from ftops.core.ml.data import tokenize_chat
    from ftops.core.ml.lora import _EpochExamples, _prefix_group

    tokenizer = AutoTokenizer.from_pretrained(micro_tokenizer)
    records = make_records(12)
    plain, _ = _tokenize_records(tokenizer, records, 256)
    examples = _EpochExamples(tokenizer, records, _cfg(micro_tokenizer, augment="phrasing,tools,names"))
    assert examples(0) == plain
    # One batched tokenizer call gives exactly what tokenize_chat gives one example at a time.
    assert plain == [tokenize_chat(tokenizer, r.messages, r.tools, record_target(r), 256,
                                  group=_prefix_group(r)) for r in records]
    changed = 0
    for epoch in range(1, 5):
        data = examples(epoch)
        assert len(data) == len(plain)
        changed += sum(a.input_ids != b.input_ids for a, b in zip(data, plain, strict=True))
    assert changed > len(plain)  # later epochs see other surfaces of most examples
    assert _EpochExamples(tokenizer, records, _cfg(micro_tokenizer))(3) == plain


@pytest.mark.ml
def test_augmented_run_trains_the_same_number_of_steps(micro_base: Path, tmp_path: Path) -> None:
    train, val = make_records(8), make_records(4, seed=1)
    plain = train_lora(_cfg(micro_base, epochs=3.0), train, val, tmp_path / "plain")
    augmented = train_lora(_cfg(micro_base, epochs=3.0, augment="phrasing,tools,names"), train, val,
                           tmp_path / "augmented")
    assert augmented.steps == plain.steps == 6 and augmented.train_examples == plain.train_examples
    # The first epoch trains on the records as they are; later ones on other surfaces.
    assert augmented.losses[:2] == plain.losses[:2]
    assert augmented.losses[2:] != plain.losses[2:]
    card = json.loads((tmp_path / "augmented" / CARD_JSON).read_text())
    assert card["augment"] == ["phrasing", "tools", "names"]
    readme = (tmp_path / "augmented" / "README.md").read_text()
    assert "augmentation per epoch after the first: phrasing,tools,names" in readme
