"""Tokenising chat examples and packing them into batches (no Django imports).

Packing puts several examples in one row, each with its own position ids (restarting at 0)
and a block-diagonal causal mask, so no example attends to another and no compute goes to
padding. Only assistant tokens carry labels: prompts are inputs, not targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ftops.core.ml.chat import render_example

if TYPE_CHECKING:
    import torch

IGNORE = -100


@dataclass(frozen=True)
class Tokenized:
    input_ids: list[int]
    labels: list[int]  # IGNORE on prompt tokens
    group: str = ""  # examples with the same group (same tools, same system prompt) may share a prefix

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def prompt_length(self) -> int:
        n = 0
        while n < len(self.labels) and self.labels[n] == IGNORE:
            n += 1
        return n

    @property
    def target_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def set_threads(threads: int) -> int:
    """Set torch's CPU threads: ``threads`` if > 0, else as many as there are idle cores.

    Small models' matrices are tiny, so intra-op threads spend much of a step waiting on each
    other; when other processes hold the cores that waiting dominates (five times slower
    with two contended threads than with one, measured here), so only idle cores are used.
    """
    import os

    import torch

    if threads <= 0:
        cores = os.cpu_count() or 1
        idle = idle_cores(cores)
        threads = cores if idle >= cores - 0.5 else max(1, int(idle + 0.5))
    torch.set_num_threads(threads)
    return threads


def idle_cores(cores: int, window_s: float = 0.3) -> float:
    """How many cores sat idle over a short window (/proc/stat), else from the load average.

    Measured now rather than from the load average, which lags by a minute and counts this
    process's own earlier work.
    """
    import os
    import time

    def sample() -> tuple[int, int] | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return idle, sum(fields)

    first = sample()
    if first is not None:
        time.sleep(window_s)
        second = sample()
        if second is not None and second[1] > first[1]:
            return cores * (second[0] - first[0]) / (second[1] - first[1])
    try:
        return max(0.0, cores - os.getloadavg()[0])
    except OSError:
        return float(cores)


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` exactly as a prompt is encoded at inference (no added BOS/EOS)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def tokenize_chat(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]], target: str,
                  max_length: int, group: str = "") -> Tokenized | None:
    """Prompt and completion encoded separately (as inference sees them); None when too long."""
    prompt, completion = render_example(tokenizer, messages, tools, target)
    prompt_ids = encode(tokenizer, prompt)
    completion_ids = encode(tokenizer, completion)
    if not completion_ids or len(prompt_ids) + len(completion_ids) > max_length:
        return None
    return Tokenized(prompt_ids + completion_ids, [IGNORE] * len(prompt_ids) + completion_ids, group)


def pack_rows(lengths: list[int], max_length: int) -> list[list[int]]:
    """Example indices per row: first-fit decreasing, so rows come out nearly full."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    free: list[int] = []
    for i in order:
        for r, space in enumerate(free):
            if lengths[i] <= space:
                rows[r].append(i)
                free[r] -= lengths[i]
                break
        else:
            rows.append([i])
            free.append(max_length - lengths[i])
    return rows


@dataclass(frozen=True)
class Row:
    members: list[int]  # indices into the examples
    prefix: int = 0  # leading tokens all members share, stored once at the start of the row


def shared_prefix(examples: list[Tokenized], members: list[int]) -> int:
    """Tokens every member starts with, stopping at least one token before any label.

    The token after the prefix must be a prompt token of every member: the prefix's last
    position then predicts nothing, as it cannot predict several different next tokens.
    """
    if len(members) < 2:
        return 0
    first = examples[members[0]].input_ids
    common = len(first)
    for i in members[1:]:
        ids = examples[i].input_ids
        n, limit = 0, min(common, len(ids))
        while n < limit and ids[n] == first[n]:
            n += 1
        common = n
    return max(0, min(common, min(examples[i].prompt_length for i in members) - 1))


def pack_shared(examples: list[Tokenized], indices: list[int], row_length: int) -> list[Row]:
    """Rows for ``indices``: examples of one group share their common prompt prefix.

    A row holds the prefix once, then each member's remainder; positions and the mask make
    that exactly equivalent to the members' separate sequences (tested), while the prefix
    (for tool-calling data, the tool list: two thirds of the tokens) is computed once per row.
    Examples without a group are packed plainly.
    """
    groups: dict[str, list[int]] = {}
    for i in indices:
        groups.setdefault(examples[i].group or f"#{i}", []).append(i)
    rows: list[Row] = []
    for members in groups.values():
        prefix = shared_prefix(examples, members)
        lengths = [len(examples[i]) - prefix for i in members]
        for row in pack_rows(lengths, max(row_length - prefix, max(lengths))):
            picked = [members[j] for j in row]
            rows.append(Row(picked, prefix if len(picked) > 1 else 0))
    return rows


@dataclass
class PackedBatch:
    input_ids: torch.Tensor  # [rows, length]
    position_ids: torch.Tensor  # [rows, length], restarting for every example (after a shared prefix)
    attention_mask: torch.Tensor  # [rows, 1, length, length] additive float mask
    targets: torch.Tensor  # [rows, length]: the token each position must predict, IGNORE elsewhere
    tokens: int  # tokens of the examples in the batch (as if each were its own sequence)
    target_tokens: int
    computed_tokens: int = 0  # tokens actually run through the model (shared prefixes once)


def collate_packed(examples: list[Tokenized], rows: list[list[int]] | list[Row], *, pad_id: int,
                   dtype: Any = None, device: Any = None) -> PackedBatch:
    """Tensors for ``rows`` (index lists, or ``Row``s with a shared prefix), padded to the longest row."""
    import torch

    dtype = dtype or torch.float32
    spec = [r if isinstance(r, Row) else Row(list(r)) for r in rows]
    sizes = [row.prefix + sum(len(examples[i]) - row.prefix for i in row.members) for row in spec]
    length = max(sizes)
    n = len(spec)
    input_ids = torch.full((n, length), pad_id, dtype=torch.long)
    position_ids = torch.zeros((n, length), dtype=torch.long)
    targets = torch.full((n, length), IGNORE, dtype=torch.long)
    # Segment 0 is a shared prefix (visible to the whole row); members are 1..k.
    segments = torch.full((n, length), -1, dtype=torch.long)
    tokens = 0
    for r, row in enumerate(spec):
        p = row.prefix
        at = 0
        if p:
            input_ids[r, :p] = torch.tensor(examples[row.members[0]].input_ids[:p])
            position_ids[r, :p] = torch.arange(p)
            segments[r, :p] = 0
            at = p
        for s, i in enumerate(row.members, start=1):
            ex = examples[i]
            k = len(ex) - p
            input_ids[r, at:at + k] = torch.tensor(ex.input_ids[p:])
            position_ids[r, at:at + k] = torch.arange(p, p + k)
            # Position t predicts token t+1 of the same example; an example's last position
            # predicts nothing, so no loss crosses into the next packed example.
            targets[r, at:at + k - 1] = torch.tensor(ex.labels[p + 1:])
            segments[r, at:at + k] = s
            at += k
            tokens += len(ex)
        # Padding gets its own segment and attends only to itself, keeping softmax finite.
        segments[r, at:] = torch.arange(length - at) + len(row.members) + 1
        position_ids[r, at:] = 0
    same = segments[:, :, None] == segments[:, None, :]
    shared = (segments == 0)[:, None, :]
    causal = torch.ones((length, length), dtype=torch.bool).tril()
    allowed = (same | shared) & causal
    mask = torch.zeros((n, 1, length, length), dtype=dtype)
    mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)
    target_tokens = int((targets != IGNORE).sum())
    batch = PackedBatch(input_ids, position_ids, mask, targets, tokens, target_tokens, sum(sizes))
    if device is not None:
        batch.input_ids = batch.input_ids.to(device)
        batch.position_ids = batch.position_ids.to(device)
        batch.attention_mask = batch.attention_mask.to(device)
        batch.targets = batch.targets.to(device)
    return batch


def packed_loss_sum(model: Any, batch: PackedBatch) -> torch.Tensor:
    """Summed cross-entropy over target positions only.

    The vocabulary projection runs only on positions that carry a label (assistant tokens,
    a fraction of each row): for small models that projection is a large share of the FLOPs.
    Models whose head does more than a linear map (logit soft-capping, scaling) take the
    plain full-logits path.
    """
    import torch.nn.functional as F

    core = _core_model(model)
    select = batch.targets != IGNORE
    if core is not None:
        decoder, head = core
        hidden = decoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                         position_ids=batch.position_ids, use_cache=False).last_hidden_state
        logits = head(hidden[select])
    else:
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                    position_ids=batch.position_ids, use_cache=False)
        logits = out.logits[select]
    return F.cross_entropy(logits.float(), batch.targets[select], reduction="sum")


def _core_model(model: Any) -> tuple[Any, Any] | None:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "logit_scale", None):
        return None
    get_decoder = getattr(base, "get_decoder", None)
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    decoder = get_decoder() if callable(get_decoder) else None
    if decoder is None or head is None or decoder is base:
        return None
    return decoder, head
