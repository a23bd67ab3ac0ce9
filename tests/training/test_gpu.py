"""LoRA on a CUDA GPU in bf16: a few real steps, and the throughput they reach (skipped without CUDA)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from ftops.core.ml.lora import LoraTrainConfig, train_lora
from tests.training.conftest import make_records

pytestmark = [pytest.mark.gpu, pytest.mark.ml]


@pytest.fixture
def cuda() -> Any:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch


@pytest.fixture
def gpu_sized_base(cuda: Any, micro_tokenizer: Path, tmp_path: Path) -> Path:
    """A randomly initialised ~26 M-parameter Llama with the micro tokenizer.

    Big enough that throughput means something on a GPU (the CPU micro model is not), and no
    training needed to build it: LoRA's throughput does not depend on what the base knows.
    """
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(micro_tokenizer)
    cuda.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=512, intermediate_size=1408, num_hidden_layers=8,
                         num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=1024,
                         tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None)
    out = tmp_path / "gpu-base"
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_lora_trains_in_bf16_on_cuda_and_reports_tokens_per_second(cuda: Any, gpu_sized_base: Path,
                                                                     tmp_path: Path, capsys: Any) -> None:
    cfg = LoraTrainConfig(base_model=str(gpu_sized_base), device="cuda", dtype="auto", epochs=2.0, lr=1e-3,
                          batch_examples=16, max_length=512, row_length=512, checkpoint_every=1000, seed=0)
    lines: list[str] = []
    cuda.cuda.reset_peak_memory_stats()
    result = train_lora(cfg, make_records(160), make_records(16, seed=1), tmp_path / "adapter",
                        on_log=lines.append)
    # "auto" on a CUDA device means bf16 weights and gradient checkpointing.
    assert any("on cuda (bfloat16)" in line for line in lines), lines
    assert result.steps == result.total_steps == 20
    first_loss = result.losses[0][1]
    assert math.isfinite(result.final_loss) and result.final_loss < first_loss, result.losses
    assert result.tokens > 0 and result.tokens_per_second > 0
    assert cuda.cuda.max_memory_allocated() > 0
    assert Path(result.adapter_dir, "adapter_model.safetensors").exists()
    with capsys.disabled():
        print(f"\nLoRA bf16 on {cuda.cuda.get_device_name(0)}: {result.steps} steps, {result.tokens} tokens, "
              f"{result.tokens_per_second:.0f} tokens/s, loss {first_loss:.3f} -> {result.final_loss:.3f}, "
              f"peak {cuda.cuda.max_memory_allocated() / 2**20:.0f} MiB")
