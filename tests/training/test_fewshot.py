"""The few-shot backend: its prompt is the one evaluation builds from the same records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ftops.core.adapters import FewShotAdapter
from ftops.core.fewshot import FewShotConfig, build_fewshot
from ftops.core.records import Record
from ftops.training import services
from ftops.training.models import RunStatus
from tests.training.conftest import BOOK, TESTER, WEATHER, make_records

EXTRA = {"type": "function", "function": {"name": "cancel_booking", "description": "Cancel a booking.",
                                          "parameters": {"type": "object", "properties": {"booking_id": {
                                              "type": "string"}}, "required": ["booking_id"]}}}


def _with_third_tool() -> list[Record]:
    records = make_records(18)
    records.append(Record(id="cancel-1", service="weather", tool="cancel_booking",
                          messages=[{"role": "user", "content": "Cancel booking BK-12"}],
                          tools=[WEATHER, BOOK, EXTRA], behavior="call",
                          expected={"calls": [{"name": "cancel_booking", "arguments": {"booking_id": ["BK-12"]}}]}))
    return records


def test_prompt_cost_is_counted_with_the_target_tokenizer(micro_tokenizer: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(micro_tokenizer)
    built = build_fewshot(_with_third_tool(), FewShotConfig(), rules=["amounts: ALL amounts in cents"],
                          tokenizer=tokenizer)
    assert "- amounts: ALL amounts in cents" in built.prompt
    assert 'User: Cancel booking BK-12\nAssistant: <tool_call>{"name":"cancel_booking"' in built.prompt
    assert built.prompt_tokens == len(tokenizer(built.prompt, add_special_tokens=False)["input_ids"])
    assert built.token_count_method == "tokenizer" and built.failures_included == 1
    assert built.tools_covered == ["book_room", "cancel_booking", "get_weather"] and built.tools_missing == []


@pytest.mark.django_db
def test_training_backend_and_evaluation_adapter_write_the_same_prompt(make_dataset_version: Any) -> None:
    from ftops.catalog.models import Service, Tool
    from ftops.evaluation.services import build_adapter

    version = make_dataset_version(train=_with_third_tool(), validation=make_records(4, seed=3))
    # Vocabulary on the service and on one tool: both paths must gather both.
    Service.objects.filter(name="weather").update(domain_vocabulary={
        "temperatures": {"rule": "Celsius unless the user says otherwise", "our_values": ["c", "f"]}})
    Tool.objects.filter(name="book_room").update(domain_vocabulary={
        "durations": {"rule": "hours, whole numbers", "examples": {"half a day": 4}}})

    run = services.training_run_create(actor=TESTER, backend="fewshot", dataset_version=version,
                                       config={"max_examples": 6}, enqueue=False)
    done = services.training_run_execute(run_id=run.pk)
    assert done is not None and done.status == RunStatus.SUCCEEDED, done.error if done else None
    trained = Path(done.artifact_path).read_text()

    adapter = build_adapter({"kind": "fewshot", "inner": {"kind": "hf_local", "model_path": "never-loaded"},
                             "examples_from": {"dataset_version": version.number, "split": "train",
                                               "max_examples": 6}})
    assert isinstance(adapter, FewShotAdapter)
    assert adapter.prompt == trained
    assert "- temperatures: Celsius unless the user says otherwise" in trained
    assert "- durations: hours, whole numbers (e.g. half a day -> 4)" in trained
    assert "- get_weather.unit is one of c, f" in trained
    assert done.metrics["prompt_chars"] == len(trained) and done.metrics["tools_missing"] == []


def test_bad_fewshot_config_is_refused_by_the_backend() -> None:
    from ftops.training.backends.fewshot import FewShotBackend

    with pytest.raises(ValueError, match="per_tool"):
        FewShotBackend().parse_config({"per_tool": 0}, base_model="m")
    with pytest.raises(ValueError, match="unknown few-shot config fields: shots"):
        FewShotBackend().parse_config({"shots": 3}, base_model="m")
