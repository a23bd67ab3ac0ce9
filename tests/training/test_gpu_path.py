"""The LoRA recipe's GPU path (ftops.core.ml.gpu), checked on the CPU against the plain recipe.

The GPU path packs a step's rows into fixed-length streams and replaces the dense
``[rows, 1, L, L]`` mask with per-token segment ids (a FlexAttention block mask on CUDA).
These tests pin that it computes exactly what the plain path computes: the same loss, the
same gradients, no attention across examples, and the same training run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ftops.core.ml import gpu
from ftops.core.ml.data import IGNORE, Row, Tokenized, collate_packed, packed_loss_sum
from ftops.core.ml.lora import LoraTrainConfig, _rows, _tokenize_records, train_lora
from tests.training.conftest import make_records

pytestmark = pytest.mark.ml


@pytest.fixture
def tokenized(micro_tokenizer: Path) -> list[Tokenized]:
    from transformers import AutoTokenizer

    data, skipped = _tokenize_records(AutoTokenizer.from_pretrained(micro_tokenizer), make_records(24), 512)
    assert skipped == 0
    return data


@pytest.fixture
def tiny_gqa(micro_tokenizer: Path) -> Any:
    """A random 2-layer Llama with grouped-query attention (4 query heads, 2 key/value heads)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(micro_tokenizer)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                         pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config).float()


def _plain_loss(model: Any, data: list[Tokenized]) -> Any:
    rows = _rows(data, LoraTrainConfig(base_model="x", row_length=256, micro_rows=1000))
    assert any(isinstance(r, Row) and r.prefix > 0 for r in rows), "the data must exercise shared prefixes"
    return packed_loss_sum(model, collate_packed(data, rows, pad_id=0))


def _runner(length: int = 1024) -> gpu.GpuRunner:
    import torch

    return gpu.GpuRunner(length, 0, torch.device("cpu"), 256, True, False)


@pytest.mark.parametrize("attention", ["flex", "sdpa"])
def test_streams_compute_the_same_loss_as_the_dense_rows(tiny_gqa: Any, tokenized: list[Tokenized], attention: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(gpu.OPTIONS, "attention", attention)
    gpu.register_attention()
    with torch.no_grad():  # FlexAttention has no backward on the CPU
        expected = float(_plain_loss(tiny_gqa, tokenized))
        gpu.set_attention(tiny_gqa, gpu.ATTENTION_NAME if attention == "flex" else "sdpa")
        runner = _runner()
        streams = runner.streams(tokenized)
        got = sum(float(runner.loss_sum(tiny_gqa, s)) for s in streams)
    assert len(streams) > 1  # several streams, each holding several examples
    assert got == pytest.approx(expected, rel=1e-5)


def test_streams_give_the_same_gradients_as_the_dense_rows(tiny_gqa: Any, tokenized: list[Tokenized],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(gpu.OPTIONS, "attention", "sdpa")
    _plain_loss(tiny_gqa, tokenized).backward()
    expected = {n: p.grad.clone() for n, p in tiny_gqa.named_parameters()}
    tiny_gqa.zero_grad()
    runner = _runner()
    for stream in runner.streams(tokenized):
        runner.loss_sum(tiny_gqa, stream).backward()
    for name, param in tiny_gqa.named_parameters():
        torch.testing.assert_close(param.grad, expected[name], rtol=1e-4, atol=1e-5, msg=name)


def test_no_token_attends_to_another_example_or_to_padding(tokenized: list[Tokenized]) -> None:
    """Each token sees its own example's earlier tokens (and its row's shared prefix) only."""
    from ftops.core.ml.data import pack_shared

    examples = tokenized[:6]
    rows = [Row([i]) for i in range(len(examples))]  # no shared prefix: fully separate examples
    stream = gpu.collate_stream(examples, rows, 2048, pad_id=0)
    dense = gpu.allowed_dense(stream.segment, stream.prefix)
    flex = gpu.block_mask(stream.segment, stream.prefix)
    assert flex.to_dense().shape[-1] == 2048 // 128
    seg = stream.segment
    for q in (0, len(examples[0]) - 1, len(examples[0]), stream.computed_tokens - 1, 2047):
        seen = dense[q].nonzero().flatten()
        assert bool((seg[seen] == seg[q]).all()), q
        assert int(seen.max()) <= q
    # Padding sees only itself.
    assert dense[2047].sum() == 1 and dense[stream.computed_tokens].sum() == 1
    # With a shared prefix, members see the prefix and themselves, not each other.
    shared = pack_shared(tokenized, list(range(len(tokenized))), 512)
    row = next(r for r in shared if r.prefix > 0 and len(r.members) > 1)
    s2 = gpu.collate_stream(tokenized, [row], 1024, pad_id=0)
    d2 = gpu.allowed_dense(s2.segment, s2.prefix)
    second = row.prefix + len(tokenized[row.members[0]]) - row.prefix  # first token of the second member
    assert bool(d2[second, : row.prefix].all())  # sees the whole prefix
    assert not bool(d2[second, row.prefix:second].any())  # not the first member
    assert int(s2.position_ids[0, second]) == row.prefix  # its positions continue after the prefix
    # The block mask skips what no token may see: far fewer blocks than a causal mask computes.
    computed = int(flex.kv_num_blocks.sum()) + int(flex.full_kv_num_blocks.sum())
    assert computed < (16 * 17 // 2) // 2, computed


def test_collate_stream_layout(tokenized: list[Tokenized]) -> None:
    examples = tokenized[:5]
    stream = gpu.collate_stream(examples, [Row([i]) for i in range(5)], 1024, pad_id=7)
    at = 0
    for ex in examples:
        n = len(ex)
        assert stream.input_ids[0, at:at + n].tolist() == ex.input_ids
        assert stream.position_ids[0, at:at + n].tolist() == list(range(n))
        # Position t predicts token t+1 of the same example; the last position predicts nothing.
        assert stream.targets[0, at:at + n - 1].tolist() == ex.labels[1:]
        assert int(stream.targets[0, at + n - 1]) == IGNORE
        at += n
    assert stream.computed_tokens == stream.tokens == at
    assert stream.input_ids[0, at:].eq(7).all() and stream.targets[0, at:].eq(IGNORE).all()
    assert len(set(stream.segment[at:].tolist())) == 1024 - at  # each padding token alone
    assert stream.target_tokens == sum(ex.target_tokens for ex in examples)
    assert stream.picked_targets.tolist() == stream.targets[0, stream.picked].tolist()
    with pytest.raises(ValueError, match="more than the stream"):
        gpu.collate_stream(examples, [Row([i]) for i in range(5)], 16, pad_id=7)


def test_choose_stream_length_fits_rows_and_wastes_little() -> None:
    steps = [[900, 800, 700, 600], [1000, 500, 400, 300, 200]]
    length = gpu.choose_stream_length(steps, limit=8192)
    assert length % gpu.STREAM_MULTIPLE == 0 and 1024 <= length <= 8192
    assert all(len(gpu.pack_streams(sizes, length)) >= 1 for sizes in steps)
    assert gpu.choose_stream_length([[5000]], limit=2048) == 5120  # a row longer than the limit still fits
    for sizes in steps:
        for stream in gpu.pack_streams(sizes, length):
            assert sum(sizes[i] for i in stream) <= length


def test_train_lora_on_the_gpu_path_matches_the_plain_recipe(micro_base: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole run through GpuRunner (SDPA with the stream masks, on the CPU) = the plain run."""
    cfg = LoraTrainConfig(base_model=str(micro_base), epochs=1.0, lr=1e-3, batch_examples=8, max_length=512,
                          row_length=256, checkpoint_every=1000, seed=0, dropout=0.0, device="cpu", threads=1)
    records, val = make_records(32), make_records(8, seed=1)
    plain = train_lora(cfg, records, val, tmp_path / "plain")
    monkeypatch.setattr(gpu.OPTIONS, "on_cpu", True)
    monkeypatch.setattr(gpu.OPTIONS, "attention", "sdpa")
    lines: list[str] = []
    fast = train_lora(cfg, records, val, tmp_path / "fast", on_log=lines.append)
    assert any("gpu path: streams of" in line for line in lines), lines
    assert fast.tokens == plain.tokens and fast.steps == plain.steps == 4
    assert [s for s, _ in fast.losses] == [s for s, _ in plain.losses]
    for (_, a), (_, b) in zip(fast.losses, plain.losses, strict=True):
        assert a == pytest.approx(b, rel=1e-4)
    assert fast.final_val_loss == pytest.approx(plain.final_val_loss, rel=1e-4)
