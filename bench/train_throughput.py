"""Training throughput: our LoRA recipe (packing, loss on assistant positions only) against a
plain Hugging Face ``Trainer`` with peft and per-batch padding.

Same model (fresh copies of the same weights), same LoRA config, same examples in the same
order per optimizer step, same number of optimizer steps; the two run in turn in this
process. Tokens/s counts real (non-padding) tokens. The last line is ``ratio: <ours/baseline>``.

    .venv/bin/python bench/train_throughput.py            # tiny model, CPU
    .venv/bin/python bench/train_throughput.py --quick    # smoke run
    .venv/bin/python bench/train_throughput.py --gpu-config   # random ~0.5 B Qwen2-style model, bf16, CUDA:
                                                              # prints tokens/s and MFU (H100 bf16 dense peak)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

H100_BF16_PEAK = 989e12
CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.S)


def corpus_records(n: int, seed: int) -> list[Any]:
    """Records built from the generic corpus (the same data both recipes see)."""
    from ftops.core.ml.corpus import generate_corpus
    from ftops.core.records import Record

    records = []
    for i, ex in enumerate(generate_corpus(n, seed=seed)):
        calls = [json.loads(m) for m in CALL.findall(ex.target)]
        if calls:
            expected = {"calls": [{"name": c["name"], "arguments": {k: [v] for k, v in c["arguments"].items()}}
                                  for c in calls]}
            behavior = "call"
        else:
            expected, behavior = {"reason": ex.target}, "abstain"
        records.append(Record(id=str(i), service="bench", tool="", messages=ex.messages, tools=ex.tools,
                              behavior=behavior, expected=expected))
    return records


def tiny_model(workdir: Path, seed: int) -> tuple[Any, Any]:
    """A randomly initialised model with the tiny base model's shape, and a corpus tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftops.core.ml.base_model import BaseModelConfig, _render_corpus_text, build_tokenizer
    from ftops.core.ml.corpus import generate_corpus

    shape = BaseModelConfig()
    tokenizer = build_tokenizer(_render_corpus_text(None, generate_corpus(800, seed=seed)),
                                vocab_size=shape.vocab_size, seed=seed)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=shape.hidden_size,
                         intermediate_size=shape.intermediate_size, num_hidden_layers=shape.num_layers,
                         num_attention_heads=shape.num_heads, num_key_value_heads=shape.num_heads,
                         max_position_embeddings=shape.max_positions, tie_word_embeddings=True,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    model = LlamaForCausalLM(config)
    path = workdir / "tiny"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path, model


def qwen_like_model(workdir: Path, seed: int) -> tuple[Path, int]:
    """A random Qwen2-style model of about 0.5 B parameters (Qwen2.5-0.5B's shape), saved in bf16."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from ftops.core.ml.base_model import BaseModelConfig, _render_corpus_text, build_tokenizer
    from ftops.core.ml.corpus import generate_corpus

    tokenizer = build_tokenizer(_render_corpus_text(None, generate_corpus(800, seed=seed)),
                                vocab_size=BaseModelConfig().vocab_size, seed=seed)
    config = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=4096,
                         tie_word_embeddings=True, rope_theta=1_000_000.0, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    with torch.device("cuda"):
        model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    path = workdir / "qwen-like"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    del model
    torch.cuda.empty_cache()
    return path, params


def run_ours(model_path: Path, records: list[Any], args: argparse.Namespace, out: Path) -> dict[str, float]:
    from ftops.core.ml.lora import LoraTrainConfig, train_lora

    epochs = args.steps * args.batch / len(records)
    cfg = LoraTrainConfig(base_model=str(model_path), epochs=epochs, lr=args.lr, batch_examples=args.batch,
                          checkpoint_every=10**9, seed=args.seed, max_length=args.max_length,
                          row_length=args.row_length, micro_rows=args.micro_rows, threads=args.threads,
                          dropout=0.0, gradient_checkpointing="off" if not args.gpu_config else "auto",
                          device="cuda" if args.gpu_config else "cpu")
    result = train_lora(cfg, records, [], out)
    assert result.steps == args.steps, (result.steps, args.steps)
    return {"tokens": result.tokens, "tokens_per_s": result.tokens_per_second, "steps": result.steps,
            "final_loss": result.final_loss}


def run_baseline(model_path: Path, records: list[Any], args: argparse.Namespace, out: Path) -> dict[str, float]:
    """HF Trainer + peft, examples padded to the longest of each batch, labels -100 on prompts."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from ftops.core.ml.data import IGNORE
    from ftops.core.ml.lora import _tokenize_records

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    dtype = torch.bfloat16 if args.gpu_config else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    model = get_peft_model(model, LoraConfig(task_type=TaskType.CAUSAL_LM, r=8, lora_alpha=16, lora_dropout=0.0,
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    data, _ = _tokenize_records(tokenizer, records, args.max_length)
    # The same per-step example groups as our recipe: its epoch order, in order, no shuffling.
    from ftops.core.ml.lora import LoraTrainConfig, _steps_plan

    plan = _steps_plan(len(data), LoraTrainConfig(base_model="x", batch_examples=args.batch, seed=args.seed,
                                                  epochs=args.steps * args.batch / len(data)))
    ordered = [data[i] for _, idx in plan for i in idx]
    rows = [{"input_ids": d.input_ids, "labels": [x if x != IGNORE else -100 for x in d.labels],
             "attention_mask": [1] * len(d)} for d in ordered]
    real_tokens = {"n": 0}
    pad = DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=-100, return_tensors="pt")

    def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
        real_tokens["n"] += sum(len(f["input_ids"]) for f in features)
        return pad(features)

    class Sequential(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return len(rows)

        def __getitem__(self, i: int) -> dict[str, Any]:
            return rows[i]

    timing: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_train_begin(self, *a: Any, **k: Any) -> None:
            timing["start"] = time.perf_counter()

        def on_train_end(self, *a: Any, **k: Any) -> None:
            if args.gpu_config:
                torch.cuda.synchronize()
            timing["end"] = time.perf_counter()

    training_args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=args.batch, max_steps=args.steps, learning_rate=args.lr,
        lr_scheduler_type="cosine", warmup_steps=max(1, int(0.05 * args.steps)), logging_steps=10**9,
        save_strategy="no", report_to=[], seed=args.seed, dataloader_num_workers=0, use_cpu=not args.gpu_config,
        bf16=bool(args.gpu_config), gradient_checkpointing=bool(args.gpu_config), disable_tqdm=True,
        remove_unused_columns=False,
    )

    class InOrderTrainer(Trainer):
        def _get_train_sampler(self, *a: Any, **k: Any) -> Any:
            return torch.utils.data.SequentialSampler(self.train_dataset)

    trainer = InOrderTrainer(model=model, args=training_args, train_dataset=Sequential(), data_collator=collate,
                             callbacks=[Clock()])
    trainer.train()
    seconds = timing["end"] - timing["start"]
    return {"tokens": real_tokens["n"], "tokens_per_s": real_tokens["n"] / seconds, "steps": trainer.state.global_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps (smoke run)")
    parser.add_argument("--gpu-config", action="store_true", help="random ~0.5 B Qwen2-style model, bf16, CUDA")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch", type=int, default=16, help="examples per optimizer step")
    parser.add_argument("--examples", type=int, default=None)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--row-length", type=int, default=None)
    parser.add_argument("--micro-rows", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.steps is None:
        args.steps = 4 if args.quick else (30 if args.gpu_config else 40)
    if args.row_length is None:
        args.row_length = 2048 if args.gpu_config else 384
    if args.gpu_config:
        args.batch = max(args.batch, 64)
        if not torch.cuda.is_available():
            sys.exit("--gpu-config needs a CUDA GPU")
    n = args.examples or max(args.steps * args.batch, 64)
    records = corpus_records(n, args.seed)
    with tempfile.TemporaryDirectory(prefix="ftops-bench-train-") as tmp:
        work = Path(tmp)
        params = 0
        if args.gpu_config:
            model_path, params = qwen_like_model(work, args.seed)
        else:
            model_path, model = tiny_model(work, args.seed)
            params = sum(p.numel() for p in model.parameters())
        print(f"model: {model_path.name}, {params / 1e6:.1f}M parameters; {len(records)} examples, "
              f"{args.steps} steps of {args.batch} examples, torch threads {torch.get_num_threads()}")
        ours = run_ours(model_path, records, args, work / "ours")
        print(f"ours (packed, assistant-only logits): {ours['tokens_per_s']:.0f} tokens/s "
              f"({ours['tokens']} tokens, loss {ours['final_loss']:.3f})")
        base = run_baseline(model_path, records, args, work / "baseline")
        print(f"baseline (HF Trainer + peft, per-batch padding): {base['tokens_per_s']:.0f} tokens/s "
              f"({base['tokens']} tokens)")
        if args.gpu_config:
            mfu = ours["tokens_per_s"] * 4 * params / H100_BF16_PEAK
            print(f"ours MFU: {100 * mfu:.1f}% (tokens/s x 4 x {params / 1e6:.0f}M params / 989e12)")
            print(f"baseline MFU: {100 * base['tokens_per_s'] * 4 * params / H100_BF16_PEAK:.1f}%")
        print(f"ratio: {ours['tokens_per_s'] / base['tokens_per_s']:.2f}")


if __name__ == "__main__":
    main()
