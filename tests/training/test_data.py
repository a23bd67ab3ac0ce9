from __future__ import annotations

from pathlib import Path

import pytest

from ftops.core.ml.data import IGNORE, Tokenized, collate_packed, pack_rows, packed_loss_sum, tokenize_chat


def test_pack_rows_first_fit_decreasing_keeps_rows_within_length() -> None:
    lengths = [90, 60, 50, 40, 30, 20]
    rows = pack_rows(lengths, 100)
    assert sorted(i for row in rows for i in row) == [0, 1, 2, 3, 4, 5]
    assert all(sum(lengths[i] for i in row) <= 100 for row in rows)
    assert len(rows) == 3  # 290 tokens in rows of 100


def test_collate_resets_positions_and_masks_across_examples() -> None:
    import torch

    a = Tokenized([1, 2, 3], [IGNORE, 2, 3])
    b = Tokenized([4, 5], [IGNORE, 5])
    batch = collate_packed([a, b], [[0, 1]], pad_id=0)
    assert batch.input_ids.tolist() == [[1, 2, 3, 4, 5]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 0, 1]]
    # position t predicts token t+1 of the same example only
    assert batch.targets.tolist() == [[2, 3, IGNORE, 5, IGNORE]]
    allowed = batch.attention_mask[0, 0] == 0
    assert allowed[3].tolist() == [False, False, False, True, False]  # b's first token sees only itself
    assert allowed[2].tolist() == [True, True, True, False, False]
    assert batch.tokens == 5 and batch.target_tokens == 3
    assert batch.attention_mask.dtype == torch.float32


@pytest.mark.ml
def test_packed_logits_equal_separate_forward_passes(micro_base: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(micro_base)
    model = AutoModelForCausalLM.from_pretrained(micro_base).eval()
    first = tokenize_chat(tokenizer, [{"role": "user", "content": "Weather in Oslo?"}], [], "Sunny", 256)
    second = tokenize_chat(tokenizer, [{"role": "user", "content": "Book Atlas for 2 hours"}], [], "Done", 256)
    assert first is not None and second is not None
    packed = collate_packed([first, second], [[0, 1]], pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        together = model(input_ids=packed.input_ids, attention_mask=packed.attention_mask,
                         position_ids=packed.position_ids).logits[0]
        alone_a = model(input_ids=torch.tensor([first.input_ids])).logits[0]
        alone_b = model(input_ids=torch.tensor([second.input_ids])).logits[0]
    n = len(first)
    assert torch.allclose(together[:n], alone_a, atol=1e-4)
    assert torch.allclose(together[n:n + len(second)], alone_b, atol=1e-4)


@pytest.mark.ml
def test_loss_over_target_positions_matches_full_logits(micro_base: Path) -> None:
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(micro_base)
    model = AutoModelForCausalLM.from_pretrained(micro_base).eval()
    ex = tokenize_chat(tokenizer, [{"role": "user", "content": "Weather in Lima?"}], [], "Cloudy today", 256)
    assert ex is not None
    batch = collate_packed([ex], [[0]], pad_id=tokenizer.pad_token_id)
    with torch.no_grad():
        fast = packed_loss_sum(model, batch)
        logits = model(input_ids=batch.input_ids).logits[0]
    mask = batch.targets[0] != IGNORE
    slow = F.cross_entropy(logits[mask], batch.targets[0][mask], reduction="sum")
    assert fast.item() == pytest.approx(slow.item(), rel=1e-5)


def test_too_long_examples_are_skipped(micro_tokenizer: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(micro_tokenizer)
    assert tokenize_chat(tokenizer, [{"role": "user", "content": "word " * 200}], [], "ok", 64) is None


@pytest.mark.ml
def test_shared_prefix_rows_equal_separate_sequences(micro_base: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftops.core.ml.data import Row, pack_shared, shared_prefix
    from tests.training.conftest import BOOK, WEATHER

    tokenizer = AutoTokenizer.from_pretrained(micro_base)
    model = AutoModelForCausalLM.from_pretrained(micro_base).eval()
    tools = [WEATHER, BOOK]
    texts = [("Weather in Oslo?", "Snow"), ("Book Atlas for 2 hours", "Booked"), ("Weather in Lima?", "Sun")]
    examples = [tokenize_chat(tokenizer, [{"role": "user", "content": q}], tools, a, 256, group="g") for q, a in texts]
    other = tokenize_chat(tokenizer, [{"role": "user", "content": "Hi"}], [], "Hello", 256, group="h")
    assert all(examples) and other is not None
    data = [*examples, other]
    prefix = shared_prefix(data, [0, 1, 2])
    assert 0 < prefix < data[0].prompt_length  # the tool list, not the question
    rows = pack_shared(data, [0, 1, 2, 3], 512)
    assert sorted((sorted(r.members), r.prefix) for r in rows) == [([0, 1, 2], prefix), ([3], 0)]
    packed = collate_packed(data, rows, pad_id=tokenizer.pad_token_id)
    plain = collate_packed(data, [Row([i]) for i in range(4)], pad_id=tokenizer.pad_token_id)
    assert packed.tokens == plain.tokens == sum(len(d) for d in data)
    assert packed.computed_tokens == plain.computed_tokens - 2 * prefix
    assert packed.target_tokens == plain.target_tokens
    with torch.no_grad():
        shared_loss = packed_loss_sum(model, packed)
        separate = sum(packed_loss_sum(model, collate_packed(data, [[i]], pad_id=tokenizer.pad_token_id))
                       for i in range(4))
    assert shared_loss.item() == pytest.approx(float(separate), rel=1e-5)
