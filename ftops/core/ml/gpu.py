"""The LoRA recipe's fast path on a CUDA GPU (no Django imports).

The CPU recipe packs each prompt-sharing group into its own rows and pads every micro-batch
to its longest row, with a dense ``[rows, 1, L, L]`` float mask built on the host. On a GPU
that wastes most of the work (the corpus' examples average ~130 tokens, so rows are short and
ragged) and the dense mask forces a slow attention kernel. Here instead:

* every micro-batch is ONE stream of exactly ``tokens_per_micro`` tokens (a fixed shape, so a
  compiled graph is reused): the step's rows (``pack_shared``: a group's shared prompt
  prefix stored once) are packed first-fit into streams, padding only the tail;
* attention is FlexAttention with a block mask built from per-token segment ids: a token sees
  the earlier tokens of its own example and of its row's shared prefix, nothing else (no
  cross-contamination; tested against the dense-mask path), and blocks with nothing to see are
  skipped, so attention costs what the examples need, not ``L^2``;
* position ids restart for every example (after a shared prefix), as in the CPU path;
* the vocabulary projection and cross-entropy run only on assistant positions (liger-kernel's
  fused linear cross-entropy on request: measured slower here, see ``GpuOptions.fused_ce``);
* the decoder layers are compiled (``torch.compile``, one graph shared by every layer);
* gradient checkpointing is left off when the activations of one micro-batch fit easily.

``OPTIONS`` switches each of these (the benchmark uses it to measure and to fall back).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ftops.core.ml.data import IGNORE, Row, Tokenized, pack_shared

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

ATTENTION_NAME = "ftops_flex"
STREAM_MULTIPLE = 1024  # stream lengths are multiples of this (flex blocks are 128)


@dataclass
class GpuOptions:
    enabled: bool = True  # False: the plain recipe (dense masks, rows) on CUDA too
    compile: bool = True  # torch.compile the decoder layers
    compile_mask: bool = True  # build block masks with a compiled kernel (CUDA)
    attention: str = "flex"  # "flex": block mask; "sdpa": dense boolean mask (fallback)
    # liger-kernel's fused linear cross-entropy when importable. Off by default: measured on an
    # H200 (0.5 B Qwen2, ~4.9k target positions per stream) it was 15% slower end to end than
    # the plain head + cross-entropy on the target positions (its chunk loop syncs the host).
    fused_ce: bool = False
    tokens_per_micro: int = 0  # 0: chosen per run from the steps' sizes and free memory
    max_tokens_per_micro: int = 32768
    memory_fraction: float = 0.6  # share of free GPU memory activations may take without checkpointing
    on_cpu: bool = False  # take this path on the CPU too (tests and dry runs; use attention "sdpa" there)


OPTIONS = GpuOptions()


@dataclass
class Stream:
    """One micro-batch: a single row of ``length`` tokens holding several examples."""

    input_ids: torch.Tensor  # [1, length]
    position_ids: torch.Tensor  # [1, length]
    targets: torch.Tensor  # [1, length]: the token each position predicts, IGNORE elsewhere
    segment: torch.Tensor  # [length]: id of the example (or shared prefix) a token belongs to
    prefix: torch.Tensor  # [length]: id of the shared prefix the token's example may see (-1: none)
    picked: torch.Tensor  # [target_tokens]: positions that carry a target (known here: no device sync)
    picked_targets: torch.Tensor  # [target_tokens]
    tokens: int  # tokens of the examples, as if each were its own sequence
    target_tokens: int
    computed_tokens: int  # tokens actually run (shared prefixes once, no padding)


def row_size(examples: list[Tokenized], row: Row) -> int:
    return row.prefix + sum(len(examples[i]) - row.prefix for i in row.members)


def step_rows(examples: list[Tokenized], row_length: int, share_prefix: bool) -> list[Row]:
    """The step's rows as the CPU path builds them (without sharing: one example per row)."""
    if share_prefix:
        return pack_shared(examples, list(range(len(examples))), row_length)
    return [Row([i]) for i in range(len(examples))]


def pack_streams(sizes: list[int], capacity: int) -> list[list[int]]:
    """Row indices per stream, first-fit decreasing (rows never split)."""
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))
    bins: list[list[int]] = []
    free: list[int] = []
    for i in order:
        for b, space in enumerate(free):
            if sizes[i] <= space:
                bins[b].append(i)
                free[b] -= sizes[i]
                break
        else:
            bins.append([i])
            free.append(capacity - sizes[i])
    return bins


def choose_stream_length(step_sizes: list[list[int]], limit: int, overhead_tokens: int = 1024) -> int:
    """The stream length that wastes least: padding plus a fixed cost per micro-batch.

    ``step_sizes`` holds each step's row sizes; the answer is a multiple of ``STREAM_MULTIPLE``
    at least as long as the longest row and at most ``limit`` (unless a row is longer).
    """
    longest = max(max(s) for s in step_sizes if s)
    low = max(STREAM_MULTIPLE, math.ceil(longest / STREAM_MULTIPLE) * STREAM_MULTIPLE)
    high = max(low, limit // STREAM_MULTIPLE * STREAM_MULTIPLE)
    best, best_cost = low, float("inf")
    for length in range(low, high + 1, STREAM_MULTIPLE):
        cost = 0
        for sizes in step_sizes:
            n = len(pack_streams(sizes, length))
            cost += n * (length + overhead_tokens)
        if cost < best_cost:
            best, best_cost = length, cost
    return best


def collate_stream(examples: list[Tokenized], rows: list[Row], length: int, *, pad_id: int,
                   device: Any = None) -> Stream:
    """One stream of ``length`` tokens for ``rows``; padding only at the end.

    Built as Python lists and turned into tensors once (slice assignments into tensors cost
    more host time than the GPU spends on a step's small examples).
    """
    import torch

    ids: list[int] = []
    pos: list[int] = []
    tgt: list[int] = []
    seg: list[int] = []
    pre: list[int] = []
    next_id, tokens = 0, 0
    for row in rows:
        p = row.prefix
        shared = -1
        if p:
            shared = next_id
            next_id += 1
            ids.extend(examples[row.members[0]].input_ids[:p])
            pos.extend(range(p))
            tgt.extend([IGNORE] * p)
            seg.extend([shared] * p)
            pre.extend([-1] * p)
        for i in row.members:
            ex = examples[i]
            k = len(ex) - p
            ids.extend(ex.input_ids[p:])
            pos.extend(range(p, p + k))
            # Position t predicts token t+1 of the same example; the last predicts nothing.
            tgt.extend(ex.labels[p + 1:])
            tgt.append(IGNORE)
            seg.extend([next_id] * k)
            pre.extend([shared] * k)
            next_id += 1
            tokens += len(ex)
    at = len(ids)
    if at > length:
        raise ValueError(f"rows hold {at} tokens, more than the stream's {length}")
    pad = length - at
    ids.extend([pad_id] * pad)
    pos.extend([0] * pad)
    tgt.extend([IGNORE] * pad)
    seg.extend(range(-2, -2 - pad, -1))  # padding tokens see only themselves: no dense block over the tail
    pre.extend([-1] * pad)
    picked = [t for t, label in enumerate(tgt) if label != IGNORE]
    stream = Stream(torch.tensor([ids]), torch.tensor([pos]), torch.tensor([tgt]),
                    torch.tensor(seg, dtype=torch.int32), torch.tensor(pre, dtype=torch.int32),
                    torch.tensor(picked, dtype=torch.long), torch.tensor([tgt[t] for t in picked], dtype=torch.long),
                    tokens, len(picked), at)
    return to_device(stream, device) if device is not None else stream


def to_device(stream: Stream, device: Any) -> Stream:
    for name in ("input_ids", "position_ids", "targets", "segment", "prefix", "picked", "picked_targets"):
        setattr(stream, name, getattr(stream, name).to(device))
    return stream


def allowed_dense(segment: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
    """[L, L] boolean: query q may attend key k (causal, same example or the row's shared prefix)."""
    import torch

    n = segment.shape[0]
    causal = torch.ones((n, n), dtype=torch.bool, device=segment.device).tril()
    same = segment[:, None] == segment[None, :]
    shared = prefix[:, None] == segment[None, :]
    return causal & (same | shared)


def block_mask(segment: torch.Tensor, prefix: torch.Tensor) -> Any:
    """FlexAttention block mask with the same rule as ``allowed_dense``."""
    from torch.nn.attention.flex_attention import create_block_mask

    def mask_mod(b: Any, h: Any, q: Any, kv: Any) -> Any:
        seen = segment[kv]
        return (kv <= q) & ((seen == segment[q]) | (seen == prefix[q]))

    n = segment.shape[0]
    # Compiled on CUDA: the eager version materialises several [L, L] index tensors.
    compiled = segment.device.type == "cuda" and OPTIONS.compile and OPTIONS.compile_mask
    return create_block_mask(mask_mod, None, None, n, n, device=segment.device, _compile=compiled)


_compiled_flex: Any = None


def _flex_forward(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, scaling: float | None = None,
                  dropout: float = 0.0, **kwargs: Any) -> tuple[Any, None]:
    """Attention through FlexAttention with the stream's block mask (registered with transformers)."""
    import torch
    from torch.nn.attention.flex_attention import flex_attention

    global _compiled_flex
    fn = flex_attention
    if query.device.type == "cuda" and not torch.compiler.is_compiling():
        # Outside a compiled layer (compilation off, or gradient checkpointing on), flex
        # attention runs its fused kernel only when compiled itself; eagerly it would
        # materialise every score.
        if _compiled_flex is None:
            _compiled_flex = torch.compile(flex_attention, dynamic=False)
        fn = _compiled_flex
    out = fn(query, key, value, block_mask=attention_mask, scale=scaling,
             enable_gqa=query.shape[1] != key.shape[1])
    return out.transpose(1, 2).contiguous(), None


def register_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, _flex_forward)


def set_attention(model: Any, name: str) -> None:
    try:
        model.set_attn_implementation(name)
    except (AttributeError, ValueError, KeyError):
        model.config._attn_implementation = name


def fused_linear_ce() -> Any:
    """liger-kernel's fused linear cross-entropy (sum), or None when it is not installed."""
    if not OPTIONS.fused_ce:
        return None
    try:
        from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss
    except Exception as exc:
        log.info("liger-kernel unavailable (%s): plain cross-entropy", exc)
        return None
    return LigerFusedLinearCrossEntropyLoss(reduction="sum")


def activation_bytes_per_token(config: Any) -> int:
    """A generous estimate of the activations one token keeps for backward (bf16, LoRA inputs in fp32)."""
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    inter = int(getattr(config, "intermediate_size", 0) or 4 * hidden)
    layers = int(getattr(config, "num_hidden_layers", 0) or 0)
    return layers * (48 * hidden + 8 * inter)


def supports(model: Any) -> bool:
    """The fast path needs a decoder with an AttentionInterface-based attention and a linear head."""
    from ftops.core.ml.data import _core_model

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return bool(getattr(base, "_supports_attention_backend", False)) and _core_model(model) is not None \
        and activation_bytes_per_token(getattr(base, "config", None)) > 0


class GpuRunner:
    """Runs one optimizer step's forward and backward passes as fixed-length streams."""

    def __init__(self, length: int, pad_id: int, device: Any, row_length: int, share_prefix: bool,
                 checkpointing: bool) -> None:
        self.length = length
        self.pad_id = pad_id
        self.device = device
        self.row_length = row_length
        self.share_prefix = share_prefix
        self.checkpointing = checkpointing
        self.ce = fused_linear_ce()
        self.compiled = False
        self.computed_tokens = 0
        self.padded_tokens = 0
        self._ahead: tuple[tuple[int, ...], list[Stream]] | None = None  # the next step's streams, on the host

    @classmethod
    def plan(cls, model: Any, steps: list[list[Tokenized]], *, pad_id: int, device: Any, row_length: int,
             share_prefix: bool, checkpointing: str) -> GpuRunner | None:
        """A runner for ``model`` (the base, before peft) and the run's steps, or None when unsupported."""
        import torch

        if not OPTIONS.enabled or not supports(model):
            return None
        sample = steps[: min(len(steps), 64)]
        sizes = [[row_size(chunk, r) for r in step_rows(chunk, row_length, share_prefix)] for chunk in sample]
        per_token = activation_bytes_per_token(model.config)
        free = torch.cuda.mem_get_info(device)[0] if torch.device(device).type == "cuda" else 64 * 2**30
        budget = int(free * OPTIONS.memory_fraction)
        limit = min(OPTIONS.max_tokens_per_micro, max(STREAM_MULTIPLE, budget // per_token))
        length = OPTIONS.tokens_per_micro or choose_stream_length(sizes, limit)
        length = max(length, max(max(s) for s in sizes if s))
        use_checkpointing = length * per_token > budget if checkpointing == "auto" else checkpointing == "on"
        return cls(length, pad_id, device, row_length, share_prefix, use_checkpointing)

    def attach(self, model: Any) -> None:
        """Switch ``model`` (the base, before peft) to this path's attention; compile its layers."""
        import torch

        register_attention()
        set_attention(model, ATTENTION_NAME if OPTIONS.attention == "flex" else "sdpa")
        if self.device.type == "cuda":
            # The LoRA adapters stay fp32 (their optimizer state too): let their matmuls use TF32.
            torch.backends.cuda.matmul.allow_tf32 = True

    def compile(self, model: Any) -> None:
        """Compile each decoder layer (after peft has wrapped the projections)."""
        from ftops.core.ml.data import _core_model

        if not OPTIONS.compile or self.checkpointing or self.device.type != "cuda":
            return
        core = _core_model(model)
        layers = getattr(core[0], "layers", None) if core else None
        if layers is None:
            return
        for layer in layers:
            layer.compile(dynamic=False)
        self.compiled = True

    def describe(self) -> str:
        return (f"gpu path: streams of {self.length} tokens, attention {OPTIONS.attention}, "
                f"compiled {self.compiled}, fused CE {self.ce is not None}, "
                f"gradient checkpointing {self.checkpointing}")

    def streams(self, chunk: list[Tokenized], on_device: bool = True) -> list[Stream]:
        rows = step_rows(chunk, self.row_length, self.share_prefix)
        sizes = [row_size(chunk, r) for r in rows]
        # A row longer than the planned stream (a validation example, say) gets a longer stream.
        length = max(self.length, math.ceil(max(sizes) / STREAM_MULTIPLE) * STREAM_MULTIPLE)
        bins = pack_streams(sizes, length)
        return [collate_stream(chunk, [rows[i] for i in b], length, pad_id=self.pad_id,
                               device=self.device if on_device else None) for b in bins]

    def loss_sum(self, model: Any, stream: Stream) -> torch.Tensor:
        """Summed cross-entropy over the stream's target positions."""
        import torch.nn.functional as F

        from ftops.core.ml.data import _core_model

        core = _core_model(model)
        assert core is not None
        decoder, head = core
        if OPTIONS.attention == "flex":
            mask: Any = block_mask(stream.segment, stream.prefix)
        else:
            mask = allowed_dense(stream.segment, stream.prefix)[None, None]
        hidden = decoder(input_ids=stream.input_ids, attention_mask=mask, position_ids=stream.position_ids,
                         use_cache=False).last_hidden_state
        picked = hidden[0].index_select(0, stream.picked)
        targets = stream.picked_targets
        if self.ce is not None and getattr(head, "bias", None) is None:
            return self.ce(head.weight, picked, targets)
        return F.cross_entropy(head(picked).float(), targets, reduction="sum")

    def step(self, model: Any, chunk: list[Tokenized], target_tokens: int,
             upcoming: list[Tokenized] | None = None) -> tuple[float, int]:
        """Forward and backward for one optimizer step's examples: (loss, example tokens).

        ``upcoming`` (the next step's examples) is packed on the host while the GPU works on
        this step's first stream, so the GPU does not wait for it at the next step.
        """
        import torch

        total = torch.zeros((), device=self.device)
        tokens = 0
        key = tuple(id(x) for x in chunk)
        if self._ahead is not None and self._ahead[0] == key:
            streams = self._ahead[1]
        else:
            streams = self.streams(chunk, on_device=False)
        self._ahead = None
        for n, stream in enumerate(streams):
            stream = to_device(stream, self.device)
            loss = self.loss_sum(model, stream) / max(1, target_tokens)
            loss.backward()
            if n == 0 and upcoming is not None:
                self._ahead = (tuple(id(x) for x in upcoming), self.streams(upcoming, on_device=False))
            total += loss.detach().float()
            tokens += stream.tokens
            self.computed_tokens += stream.computed_tokens
            self.padded_tokens += stream.input_ids.shape[1]
        return float(total), tokens

    def val_loss_sum(self, model: Any, chunk: list[Tokenized]) -> tuple[float, int]:
        import torch

        total, count = 0.0, 0
        with torch.no_grad():
            for stream in self.streams(chunk):
                total += float(self.loss_sum(model, stream))
                count += stream.target_tokens
        return total, count
