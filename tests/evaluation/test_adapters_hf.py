"""The local Hugging Face adapter on a tiny random Llama (built here, no downloads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ftops.core.adapters import HFLocalAdapter, adapter_from_config
from ftops.core.harness import evaluate_records
from ftops.core.tiny_model import build_tiny_model
from tests.evaluation.helpers import WEATHER, record

pytestmark = pytest.mark.ml

CITIES = ["Paris", "Rome", "Oslo", "Lima"]
BROKEN = '<tool_call>{"name": "get_weather", "arguments": {"city": "Li'


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=3)


def weather_records() -> list[Any]:
    records = []
    for i, city in enumerate(CITIES):
        records.append(record(f"w{i}", query=f"What is the weather in {city} right now?", tools=[WEATHER],
                              tool="get_weather", service="weather",
                              expected={"calls": [{"name": "get_weather", "arguments": {"city": [city]}}]}))
    return records


def targets() -> list[str]:
    calls = [f'<tool_call>{{"name": "get_weather", "arguments": {{"city": "{city}"}}}}</tool_call>' for city in CITIES]
    calls[-1] = BROKEN  # the model learns to emit a call it never finishes
    return calls


@pytest.fixture(scope="module")
def lora_adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter trained (for real, a few hundred steps) to answer each weather request."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    renderer = HFLocalAdapter(tiny_model)
    tokenizer = renderer.tokenizer
    rows = []
    for rec, target in zip(weather_records(), targets(), strict=True):
        prompt = tokenizer(renderer.render(list(rec.messages), list(rec.tools)), add_special_tokens=False)["input_ids"]
        answer = tokenizer(target + "<|end|>", add_special_tokens=False)["input_ids"]
        rows.append((prompt + answer, [-100] * len(prompt) + answer))
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
    mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows])
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                             "up_proj", "down_proj"]))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-2)
    model.train()
    for _step in range(300):
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if float(loss.detach()) < 0.005:
            break
    out = tmp_path_factory.mktemp("lora") / "adapter"
    model.save_pretrained(out)
    return out


def test_prompt_uses_the_tokenizers_chat_template_with_tools(tiny_model: Path) -> None:
    adapter = HFLocalAdapter(tiny_model)
    prompt = adapter.render([{"role": "user", "content": "Weather in Paris?"}], [WEATHER])
    assert prompt.startswith('<|tools|>[{"type": "function", "function": {"name": "get_weather"')
    assert prompt.endswith("<|user|>Weather in Paris?<|end|><|assistant|>")


def test_batched_generation_with_left_padding_matches_one_at_a_time(tiny_model: Path) -> None:
    requests = [([{"role": "user", "content": "weather " * (1 + 3 * i)}], [WEATHER] if i % 2 else [])
                for i in range(6)]
    batched = HFLocalAdapter(tiny_model, batch_size=6, max_new_tokens=12).generate(requests)
    single = HFLocalAdapter(tiny_model, batch_size=1, max_new_tokens=12).generate(requests)
    assert [o.raw for o in batched] == [o.raw for o in single]
    assert len({o.raw for o in batched}) > 1
    assert [o.prompt_tokens for o in batched] == [o.prompt_tokens for o in single]
    assert len({o.prompt_tokens for o in batched}) == 6  # each row's own length, not the padded width
    assert all(0 < o.completion_tokens <= 12 for o in batched)


def test_base_model_gets_nothing_right(tiny_model: Path) -> None:
    report = evaluate_records(adapter=HFLocalAdapter(tiny_model, max_new_tokens=40), records=weather_records())
    assert report.exact == 0.0


def test_lora_adapter_calls_are_parsed_and_scored(tiny_model: Path, lora_adapter: Path) -> None:
    adapter = adapter_from_config({"kind": "hf_local", "model_path": str(tiny_model),
                                   "adapter_path": str(lora_adapter), "max_new_tokens": 40, "batch_size": 4})
    report = evaluate_records(adapter=adapter, records=weather_records())
    scores = [(r.score.exact, r.score.error_type) for r in report.results]
    assert scores == [(True, ""), (True, ""), (True, ""), (False, "ast_decoder:decoder_failed")]
    broken = report.results[3].outputs[0]
    assert broken.raw == BROKEN
    assert broken.calls == [] and broken.parse_error is not None
    assert report.results[0].outputs[0].calls == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    assert report.accuracy_by("service") == {"weather": {"n": 4, "exact": 75.0, "tool": 75.0, "args": 75.0,
                                                         "values": 75.0}}


def test_unmerged_adapter_gives_the_same_answers(tiny_model: Path, lora_adapter: Path) -> None:
    requests = [(list(r.messages), list(r.tools)) for r in weather_records()[:2]]
    merged = HFLocalAdapter(tiny_model, lora_adapter, max_new_tokens=40).generate(requests)
    unmerged = HFLocalAdapter(tiny_model, lora_adapter, max_new_tokens=40, merge_adapter=False).generate(requests)
    assert [o.raw for o in merged] == [o.raw for o in unmerged]
