"""The local LoRA recipe: any Hugging Face causal LM, packed batches, assistant-only loss.

``train_lora(cfg, train, val, out_dir)`` fine-tunes LoRA adapters on ``Record``s and saves
the adapter with the tokenizer and a model card. It is plain torch/transformers/peft with
no Django imports; the Django side (``ftops.training.backends``) wraps it with the run
row, its lease and its cancel flag through ``on_progress``.

Durability: every ``checkpoint_every`` steps the adapter weights, optimizer, scheduler, RNG
states and step are written to ``out_dir/checkpoints/step-N``; a later call with the same
``out_dir`` resumes from the newest one and, because the data order is a pure function of
(seed, epoch) and the RNG state is restored, reproduces the uninterrupted run.

Each checkpoint names its owner (``owner.json``: the caller's run identity plus a hash of the
config). A checkpoint whose owner differs is never resumed: a reused folder (a run id handed
out again after a database reset, an edited config) would otherwise continue someone else's
weights and optimizer state without any error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ftops.core.ml.augment import augment_record, parse_kinds
from ftops.core.ml.chat import render_assistant
from ftops.core.records import Record
from ftops.core.scoring import teaching_turns

log = logging.getLogger(__name__)

CARD_JSON = "ftops_card.json"
STATE_FILE = "trainer_state.pt"
OWNER_FILE = "owner.json"


@dataclass
class LoraTrainConfig:
    """Everything that decides a LoRA run. Stored as JSON on the run row and in the card."""

    base_model: str = ""
    # LoRA (defaults from the design document: rank 8, alpha 16, dropout 0.1, attention projections)
    r: int = 8
    alpha: int = 16
    dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    # optimisation
    epochs: float = 2.0
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    min_lr_ratio: float = 0.1
    batch_examples: int = 16  # examples per optimizer step
    max_length: int = 1024  # longer examples are skipped and counted
    row_length: int = 512  # packed row length (grows to the longest example of a step)
    micro_rows: int = 8  # rows per forward pass (gradient accumulation beyond)
    share_prefix: bool = True  # examples with the same tools share one copy of the prompt prefix per row
    grad_clip: float = 1.0
    seed: int = 0
    # Per-epoch surface variants of the training records (ftops.core.ml.augment): a comma-separated
    # list of phrasing, tools, names; empty is off. Epoch 0 always trains on the records as they are
    # and the number of steps does not change.
    augment: str = ""
    # durability and reporting
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    eval_every: int = 0  # validation loss every N steps (0: at checkpoints and at the end)
    max_val_examples: int = 128
    # hardware: "auto" = bf16 + gradient checkpointing on CUDA, fp32 on CPU
    device: str = "auto"
    dtype: str = "auto"
    gradient_checkpointing: str = "auto"
    threads: int = 0  # CPU threads; 0: every core, one when the machine is already busy
    # lineage, copied into the model card
    dataset_version: str = ""
    service: str = ""  # non-empty: a per-service adapter (train on this service's records only)
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoraTrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown LoRA config fields: {', '.join(unknown)}")
        return cls(**data)

    def validate(self) -> dict[str, str]:
        """Field -> message for every bad value (empty when the config is usable)."""
        errors: dict[str, str] = {}
        if not self.base_model:
            errors["base_model"] = "set a Hugging Face model id or a local model folder"
        if self.r < 1:
            errors["r"] = "must be >= 1"
        if self.alpha <= 0:
            errors["alpha"] = "must be > 0"
        if not 0 <= self.dropout < 1:
            errors["dropout"] = "must be in [0, 1)"
        if not self.target_modules:
            errors["target_modules"] = "name at least one module, e.g. q_proj"
        if self.epochs <= 0:
            errors["epochs"] = "must be > 0"
        if not 0 < self.lr < 1:
            errors["lr"] = "must be in (0, 1)"
        if self.batch_examples < 1:
            errors["batch_examples"] = "must be >= 1"
        if self.max_length < 16:
            errors["max_length"] = "must be >= 16"
        if self.row_length < 16:
            errors["row_length"] = "must be >= 16"
        if self.micro_rows < 1:
            errors["micro_rows"] = "must be >= 1"
        if self.checkpoint_every < 1:
            errors["checkpoint_every"] = "must be >= 1"
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            errors["device"] = "auto, cpu, cuda or cuda:N"
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            errors["dtype"] = "auto, float32, bfloat16 or float16"
        if self.gradient_checkpointing not in ("auto", "on", "off"):
            errors["gradient_checkpointing"] = "auto, on or off"
        if not isinstance(self.augment, str):
            errors["augment"] = "a comma-separated list of phrasing, tools, names (empty: off)"
        elif (problem := parse_kinds(self.augment)[1]):
            errors["augment"] = problem
        return errors


@dataclass
class TrainProgress:
    step: int
    total_steps: int
    epoch: float
    loss: float
    val_loss: float | None
    tokens: int
    elapsed_s: float
    eta_s: float | None
    checkpoint: str | None = None


@dataclass
class TrainResult:
    adapter_dir: str
    steps: int
    total_steps: int
    final_loss: float
    final_val_loss: float | None
    losses: list[tuple[int, float]]
    val_losses: list[tuple[int, float]]
    train_examples: int
    val_examples: int
    skipped_examples: int
    tokens: int
    seconds: float
    tokens_per_second: float
    adapter_bytes: int
    trainable_parameters: int
    resumed_from_step: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TrainingStopped(Exception):
    """Raised by an ``on_progress`` callback to stop a run (cancel, lost lease)."""


def records_for_service(records: list[Record], service: str) -> list[Record]:
    return [r for r in records if r.service == service] if service else list(records)


def device_is_cpu(cfg: LoraTrainConfig) -> bool:
    import torch

    return cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())


def _resolve_device(cfg: LoraTrainConfig) -> tuple[Any, Any, bool]:
    import torch

    if cfg.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(cfg.device)
    on_gpu = device.type == "cuda"
    dtype = (torch.bfloat16 if on_gpu else torch.float32) if cfg.dtype == "auto" else getattr(torch, cfg.dtype)
    checkpointing = cfg.gradient_checkpointing == "on" or (cfg.gradient_checkpointing == "auto" and on_gpu)
    return device, dtype, checkpointing


def load_base(model_path: str, *, dtype: Any = None, device: Any = None) -> tuple[Any, Any]:
    """(tokenizer, model) for a hub id or a local folder; works for any causal LM."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    if device is not None:
        model.to(device)
    return tokenizer, model


def _prefix_group(record: Record) -> str:
    """Records offering the same tools after the same system prompt start with the same tokens."""
    system = [m.get("content") for m in record.messages[:1] if m.get("role") == "system"]
    return json.dumps([record.tools, system], sort_keys=True)


def _rows(chunk: list[Any], cfg: LoraTrainConfig) -> list[Any]:
    from ftops.core.ml.data import pack_rows, pack_shared

    row_length = max(cfg.row_length, max(len(x) for x in chunk))
    if cfg.share_prefix:
        return pack_shared(chunk, list(range(len(chunk))), row_length)
    return pack_rows([len(x) for x in chunk], row_length)


def _record_turns(record: Record) -> list[tuple[list[dict[str, Any]], list[dict[str, Any]], str, str]]:
    """(messages, tools, target, prefix group) per turn the record teaches."""
    # A sequence teaches every step (and the closing answer), not only its first call; its
    # turns share the record's tools and system prompt, so they pack under one prefix.
    group = _prefix_group(record)
    return [(turn.messages, record.tools, render_assistant(turn.calls, turn.text), group)
            for turn in teaching_turns(record)]


def _tokenize_turns(tokenizer: Any, turns: list[tuple[list[dict[str, Any]], list[dict[str, Any]], str, str]],
                    max_length: int) -> list[Any]:
    """One example per turn (None when too long or empty), as ``tokenize_chat`` makes it, encoded in one batch."""
    from ftops.core.ml.chat import render_example
    from ftops.core.ml.data import IGNORE, Tokenized

    texts: list[str] = []
    for messages, tools, target, _ in turns:
        texts.extend(render_example(tokenizer, messages, tools, target) if target else ("", ""))
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    out: list[Any] = []
    for k, (_, _, target, group) in enumerate(turns):
        prompt, completion = list(ids[2 * k]), list(ids[2 * k + 1])
        if not target or not completion or len(prompt) + len(completion) > max_length:
            out.append(None)
        else:
            out.append(Tokenized(prompt + completion, [IGNORE] * len(prompt) + completion, group))
    return out


def _tokenize_by_record(tokenizer: Any, records: list[Record], max_length: int) -> list[list[Any]]:
    """Per record, one tokenised example (or None when too long / empty) per turn it teaches;
    every record's turns encoded in one tokenizer call."""
    per_record = [_record_turns(record) for record in records]
    toks = iter(_tokenize_turns(tokenizer, [turn for turns in per_record for turn in turns], max_length))
    return [[next(toks) for _ in turns] for turns in per_record]


def _kept(per_record: list[list[Any]]) -> tuple[list[Any], list[tuple[int, int]], int]:
    """(examples, (record index, turn index) of each, how many turns were skipped as too long or empty)."""
    out: list[Any] = []
    owners: list[tuple[int, int]] = []
    skipped = 0
    for r, toks in enumerate(per_record):
        for t, tok in enumerate(toks):
            if tok is None:
                skipped += 1
            else:
                out.append(tok)
                owners.append((r, t))
    return out, owners, skipped


def _tokenize_records(tokenizer: Any, records: list[Record], max_length: int) -> tuple[list[Any], int]:
    out, _owners, skipped = _kept(_tokenize_by_record(tokenizer, records, max_length))
    return out, skipped


class _EpochExamples:
    """The training examples of each epoch: epoch 0 as tokenised, later epochs augmented.

    Example i of every epoch comes from the same record and turn as in epoch 0, so the step
    plan (built once on epoch 0's count) holds for every epoch. A variant that tokenises to a
    different number of turns, or runs past ``max_length``, falls back to the original example.
    Epochs are tokenised when first reached; only the latest two are kept besides epoch 0.
    """

    def __init__(self, tokenizer: Any, records: list[Record], cfg: LoraTrainConfig) -> None:
        self.tokenizer, self.records, self.cfg = tokenizer, records, cfg
        self.kinds = parse_kinds(cfg.augment)[0]
        per_record = _tokenize_by_record(tokenizer, records, cfg.max_length)
        self.turns = [len(toks) for toks in per_record]  # turns per record
        # owners: (record index, turn index) per example
        self.base, self.owners, self.skipped = _kept(per_record)
        self.cache: dict[int, list[Any]] = {}

    def __call__(self, epoch: int) -> list[Any]:
        if epoch == 0 or not self.kinds:
            return self.base
        if epoch not in self.cache:
            for old in sorted(self.cache)[:-1]:
                del self.cache[old]
            self.cache[epoch] = self._tokenize(epoch)
        return self.cache[epoch]

    def _tokenize(self, epoch: int) -> list[Any]:
        # All variants' turns in one tokenizer call: the batch call is much faster than one per text.
        starts: dict[int, int] = {}  # record index -> its variant's first turn in ``turns``
        turns: list[tuple[list[dict[str, Any]], list[dict[str, Any]], str, str]] = []
        for r in dict.fromkeys(r for r, _ in self.owners):
            record = self.records[r]
            variant = augment_record(record, self.kinds, seed=self.cfg.seed, epoch=epoch)
            if variant is record:
                continue
            own = _record_turns(variant)
            if len(own) == self.turns[r]:  # a variant that teaches other turns keeps the original
                starts[r] = len(turns)
                turns.extend(own)
        toks = _tokenize_turns(self.tokenizer, turns, self.cfg.max_length)
        out = []
        for i, (r, t) in enumerate(self.owners):
            start = starts.get(r)
            tok = toks[start + t] if start is not None else None
            out.append(tok if tok is not None else self.base[i])
        return out


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    order = list(range(n))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def _steps_plan(n: int, cfg: LoraTrainConfig) -> list[tuple[int, list[int]]]:
    """(epoch, example indices) per optimizer step, for all epochs; fractional epochs cut the last."""
    per_epoch = math.ceil(n / cfg.batch_examples)
    total = max(1, math.ceil(per_epoch * cfg.epochs))
    plan: list[tuple[int, list[int]]] = []
    epoch = 0
    while len(plan) < total:
        order = _epoch_order(n, cfg.seed, epoch)
        for start in range(0, n, cfg.batch_examples):
            if len(plan) >= total:
                break
            plan.append((epoch, order[start:start + cfg.batch_examples]))
        epoch += 1
    return plan


def _rng_state() -> dict[str, Any]:
    import torch

    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def latest_checkpoint(out_dir: Path) -> Path | None:
    root = Path(out_dir) / "checkpoints"
    if not root.is_dir():
        return None
    done = [p for p in root.glob("step-*") if (p / STATE_FILE).exists()]
    return max(done, key=lambda p: int(p.name.split("-")[1])) if done else None


def checkpoint_owner(cfg: LoraTrainConfig, identity: dict[str, str] | None = None) -> dict[str, str]:
    """Who may resume a checkpoint: the caller's identity plus a hash of the config."""
    config_hash = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()
    return {**(identity or {}), "config_sha256": config_hash}


def foreign_checkpoint_reason(checkpoint: Path, owner: dict[str, str]) -> str:
    """Why ``checkpoint`` belongs to someone else ('' when ``owner`` wrote it)."""
    try:
        found = json.loads((checkpoint / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return "it records no owner"
    if not isinstance(found, dict):
        return "it records no owner"
    differ = sorted(k for k in set(owner) | set(found) if owner.get(k) != found.get(k))
    return f"it names a different {', '.join(differ)}" if differ else ""


def _save_checkpoint(out_dir: Path, model: Any, optimizer: Any, scheduler: Any, step: int,
                     history: dict[str, Any], keep: int, owner: dict[str, str]) -> Path:
    import torch
    from peft import get_peft_model_state_dict

    root = Path(out_dir) / "checkpoints"
    final = root / f"step-{step}"
    tmp = root / f".step-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save({
        "step": step,
        "adapter": get_peft_model_state_dict(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": _rng_state(),
        "history": history,
    }, tmp / STATE_FILE)
    # Written before the rename, so a checkpoint folder never exists without its owner.
    (tmp / OWNER_FILE).write_text(json.dumps(owner, sort_keys=True))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)  # a crash mid-write leaves only a .tmp folder, never a half checkpoint
    olds = sorted((p for p in root.glob("step-*")), key=lambda p: int(p.name.split("-")[1]))
    for old in olds[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _val_loss(model: Any, examples: list[Any], cfg: LoraTrainConfig, pad_id: int, device: Any,
              dtype: Any, fast: Any = None) -> float | None:
    import torch

    from ftops.core.ml.data import collate_packed, packed_loss_sum

    if not examples:
        return None
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), cfg.batch_examples):
            chunk = examples[start:start + cfg.batch_examples]
            if fast is not None:  # the GPU path (ftops.core.ml.gpu)
                part, n = fast.val_loss_sum(model, chunk)
                total, count = total + part, count + n
                continue
            rows = _rows(chunk, cfg)
            for r0 in range(0, len(rows), cfg.micro_rows):
                batch = collate_packed(chunk, rows[r0:r0 + cfg.micro_rows], pad_id=pad_id, dtype=dtype, device=device)
                total += float(packed_loss_sum(model, batch))
                count += batch.target_tokens
    if was_training:
        model.train()
    return total / max(1, count)


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def train_lora(cfg: LoraTrainConfig, train: list[Record], val: list[Record], out_dir: Path | str,
               on_progress: Callable[[TrainProgress], None] | None = None, resume: bool = True,
               on_log: Callable[[str], None] | None = None, identity: dict[str, str] | None = None) -> TrainResult:
    """Train LoRA adapters on ``train`` (validation loss on ``val``); save to ``out_dir``.

    ``on_progress`` is called after every step (and may raise ``TrainingStopped``).
    ``identity`` (e.g. a run id and token) is stored in every checkpoint; only a call with the
    same identity and config resumes from it, any other starts fresh.
    """
    import torch
    from peft import LoraConfig, TaskType, get_peft_model, set_peft_model_state_dict

    from ftops.core.ml.data import collate_packed, packed_loss_sum, set_threads

    errors = cfg.validate()
    if errors:
        raise ValueError("invalid LoRA config: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    say = on_log or log.info
    started = time.monotonic()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if device_is_cpu(cfg):
        set_threads(cfg.threads)
    train = records_for_service(train, cfg.service)
    val = records_for_service(val, cfg.service)[: cfg.max_val_examples]
    if not train:
        raise ValueError("no training records" + (f" for service {cfg.service!r}" if cfg.service else ""))

    device, dtype, checkpointing = _resolve_device(cfg)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    tokenizer, model = load_base(cfg.base_model, dtype=dtype, device=device)
    examples = _EpochExamples(tokenizer, train, cfg)
    train_data, skipped = examples.base, examples.skipped
    val_data, _ = _tokenize_records(tokenizer, val, cfg.max_length)
    if not train_data:
        raise ValueError(f"every training record is longer than max_length={cfg.max_length} tokens")
    plan = _steps_plan(len(train_data), cfg)
    fast = None
    from ftops.core.ml.gpu import OPTIONS as GPU_OPTIONS
    from ftops.core.ml.gpu import GpuRunner

    if device.type == "cuda" or GPU_OPTIONS.on_cpu:  # packed streams, block-mask attention (ftops.core.ml.gpu)
        fast = GpuRunner.plan(model, [[train_data[i] for i in idx] for _, idx in plan],
                              pad_id=int(tokenizer.pad_token_id), device=device, row_length=cfg.row_length,
                              share_prefix=cfg.share_prefix, checkpointing=cfg.gradient_checkpointing)
        if fast is not None:
            checkpointing = fast.checkpointing
            fast.attach(model)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.config.use_cache = False
    lora_config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                             target_modules=list(cfg.target_modules), bias="none")
    model = get_peft_model(model, lora_config)
    if fast is not None:
        fast.compile(model)
        say(f"lora: {fast.describe()}")
    trainable = [p for p in model.parameters() if p.requires_grad]
    trainable_count = sum(p.numel() for p in trainable)
    # On CUDA one fused kernel updates every adapter tensor (the same AdamW arithmetic).
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  fused=device.type == "cuda" or None)
    total = len(plan)
    warmup = max(1, int(total * cfg.warmup_ratio))

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    history: dict[str, Any] = {"losses": [], "val_losses": [], "tokens": 0, "seconds": 0.0}
    start_step = 0
    owner = checkpoint_owner(cfg, identity)
    checkpoint = latest_checkpoint(out_dir) if resume else None
    if checkpoint is not None and (reason := foreign_checkpoint_reason(checkpoint, owner)):
        say(f"lora: ignoring checkpoint {checkpoint.name} in {out_dir}: {reason} "
            "(another run or config wrote it); starting fresh")
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
        checkpoint = None
    if checkpoint is not None:
        state = torch.load(checkpoint / STATE_FILE, map_location=device, weights_only=False)
        set_peft_model_state_dict(model, state["adapter"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        history = state["history"]
        start_step = int(state["step"])
        say(f"lora: resumed from {checkpoint.name}")
    elif not resume:
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    say(f"lora: {len(train_data)} train / {len(val_data)} val examples ({skipped} skipped as too long), "
        f"{total} steps, {trainable_count} trainable parameters on {device.type} ({str(dtype).split('.')[-1]})")

    pad_id = int(tokenizer.pad_token_id)
    model.train()
    run_started = time.monotonic()
    run_tokens = 0
    last_loss = history["losses"][-1][1] if history["losses"] else float("nan")
    for step in range(start_step, total):
        epoch, indices = plan[step]
        epoch_data = examples(epoch)
        chunk = [epoch_data[i] for i in indices]
        rows = _rows(chunk, cfg) if fast is None else []
        target_tokens = sum(x.target_tokens for x in chunk)
        step_loss = 0.0
        if fast is not None:
            upcoming = ([examples(plan[step + 1][0])[i] for i in plan[step + 1][1]]
                        if step + 1 < total else None)
            step_loss, step_tokens = fast.step(model, chunk, target_tokens, upcoming)
            run_tokens += step_tokens
            history["tokens"] += step_tokens
        for r0 in range(0, len(rows), cfg.micro_rows):
            batch = collate_packed(chunk, rows[r0:r0 + cfg.micro_rows], pad_id=pad_id, dtype=dtype, device=device)
            loss = packed_loss_sum(model, batch) / max(1, target_tokens)
            loss.backward()
            step_loss += float(loss.detach())
            run_tokens += batch.tokens
            history["tokens"] += batch.tokens
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        last_loss = step_loss
        history["losses"].append((done, round(step_loss, 6)))
        val_loss = None
        saved = None
        at_checkpoint = done % cfg.checkpoint_every == 0 and done < total
        if (cfg.eval_every and done % cfg.eval_every == 0) or at_checkpoint or done == total:
            val_loss = _val_loss(model, val_data, cfg, pad_id, device, dtype, fast)
            if val_loss is not None:
                history["val_losses"].append((done, round(val_loss, 6)))
        elapsed = time.monotonic() - run_started
        if at_checkpoint:
            history_snapshot = dict(history, seconds=history.get("seconds", 0.0) + elapsed)
            saved = str(_save_checkpoint(out_dir, model, optimizer, scheduler, done, history_snapshot,
                                         cfg.keep_checkpoints, owner))
        rate = (done - start_step) / elapsed if elapsed > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else None
        if on_progress is not None:
            on_progress(TrainProgress(step=done, total_steps=total, epoch=round(epoch + 1, 3), loss=step_loss,
                                      val_loss=val_loss, tokens=history["tokens"], elapsed_s=elapsed, eta_s=eta,
                                      checkpoint=saved))

    seconds = history.get("seconds", 0.0) + (time.monotonic() - run_started)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    final_val = history["val_losses"][-1][1] if history["val_losses"] else None
    result = TrainResult(
        adapter_dir=str(out_dir), steps=total, total_steps=total, final_loss=round(float(last_loss), 6),
        final_val_loss=final_val, losses=[tuple(x) for x in history["losses"]],  # type: ignore[misc]
        val_losses=[tuple(x) for x in history["val_losses"]],  # type: ignore[misc]
        train_examples=len(train_data), val_examples=len(val_data), skipped_examples=skipped,
        tokens=int(history["tokens"]), seconds=round(seconds, 2),
        tokens_per_second=round(run_tokens / max(1e-9, time.monotonic() - run_started), 1),
        adapter_bytes=0, trainable_parameters=trainable_count, resumed_from_step=start_step,
    )
    write_model_card(out_dir, cfg, result, extra={"total_seconds": round(time.monotonic() - started, 2)})
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    result.adapter_bytes = dir_size(out_dir)
    say(f"lora: done, loss {result.final_loss:.4f}, val {final_val}, {result.seconds:.1f}s, "
        f"{result.tokens_per_second:.0f} tokens/s")
    return result


def write_model_card(out_dir: Path, cfg: LoraTrainConfig, result: TrainResult,
                     extra: dict[str, Any] | None = None) -> None:
    """README.md for people and ftops_card.json for tools: lineage, config, metrics."""
    card = {
        "kind": "lora-adapter",
        "name": cfg.name,
        "base_model": cfg.base_model,
        "dataset_version": cfg.dataset_version,
        "service": cfg.service or None,
        "config": cfg.to_dict(),
        "augment": parse_kinds(cfg.augment)[0] if isinstance(cfg.augment, str) else [],
        "metrics": {"final_loss": result.final_loss, "final_val_loss": result.final_val_loss,
                    "steps": result.steps, "train_examples": result.train_examples,
                    "val_examples": result.val_examples, "skipped_examples": result.skipped_examples,
                    "tokens": result.tokens, "seconds": result.seconds,
                    "tokens_per_second": result.tokens_per_second,
                    "trainable_parameters": result.trainable_parameters},
        **(extra or {}),
    }
    Path(out_dir, CARD_JSON).write_text(json.dumps(card, indent=2, sort_keys=True))
    scope = f"service `{cfg.service}`" if cfg.service else "all services"
    Path(out_dir, "README.md").write_text(
        f"# {cfg.name or 'ftops LoRA adapter'}\n\n"
        f"LoRA adapter for `{cfg.base_model}`, trained by ftops on dataset version "
        f"`{cfg.dataset_version or 'n/a'}` ({scope}).\n\n"
        f"- LoRA r={cfg.r}, alpha={cfg.alpha}, dropout={cfg.dropout}, modules {', '.join(cfg.target_modules)}\n"
        f"- {cfg.epochs} epochs, lr {cfg.lr}, {result.steps} steps of {cfg.batch_examples} examples\n"
        f"- augmentation per epoch after the first: {cfg.augment or 'none'}\n"
        f"- {result.train_examples} training / {result.val_examples} validation examples\n"
        f"- final loss {result.final_loss:.4f}, validation loss {result.final_val_loss}\n\n"
        "Load with `PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), this_folder)`; "
        "the full lineage is in `ftops_card.json`.\n"
    )
