"""Batched against one-at-a-time generation with a small local model, on the same prompts.

    .venv/bin/python bench/eval_generate.py [--prompts 256] [--batch-size 16] [--max-new-tokens 24]
                                            [--model PATH] [--threads N] [--quick]

The model is the embedded base model at settings.FTOPS_BASE_MODEL when it has been built,
else a tiny random Llama built in a temporary folder. Both sides render the same tool-calling
prompts and decode greedily with the HF adapter: the baseline one prompt per ``generate``
call, ours ``--batch-size`` prompts per call with left padding. The outputs must agree (they
are greedy decodes of the same prompts); the share that is identical is printed.
Last line: ``ratio: <batched prompts/s / sequential prompts/s>``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftops.core.adapters import HFLocalAdapter, ModelOutput

CITIES = ["Paris", "Rome", "Oslo", "Lima", "Kyoto", "Cairo", "Denver", "Lagos"]
TEMPLATES = ["What's the weather in {c}?", "Charge customer cus_{n} ${n}.00 for invoice INV-{n}",
             "Is it raining in {c} tomorrow?", "Refund order ORD-{n} please", "Book a table for {k} in {c} tonight",
             "How many units of SKU-{n} are left in the {c} warehouse?", "Send the invoice INV-{n} to ann@example.com",
             "Set the thermostat in {c} to {k} degrees"]
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "create_payment", "description": "Charge a customer in cents.",
                                      "parameters": {"type": "object", "properties": {
                                          "amount": {"type": "integer"}, "customer_id": {"type": "string"}},
                                          "required": ["amount", "customer_id"]}}},
]


def base_model_path() -> Path | None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ftops.settings")
    from django.conf import settings

    path = Path(settings.FTOPS_BASE_MODEL)
    return path if (path / "config.json").is_file() else None


def prompts(adapter: HFLocalAdapter, n: int) -> list[str]:
    out = []
    for i in range(n):
        text = TEMPLATES[i % len(TEMPLATES)].format(c=CITIES[(i * 3) % len(CITIES)], n=100 + i, k=2 + i % 5)
        out.append(adapter.render([{"role": "user", "content": text}], TOOLS[: 1 + i % 2]))
    return out


def timed(adapter: HFLocalAdapter, texts: list[str]) -> tuple[float, list[ModelOutput]]:
    started = time.perf_counter()
    outputs = adapter.generate_texts(texts)
    return time.perf_counter() - started, outputs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--model", default=None, help="a local model folder (default: the embedded base model)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default: torch's choice); 1 avoids thrashing on a busy machine")
    parser.add_argument("--quick", action="store_true", help="smoke run: 32 prompts, 8 new tokens")
    args = parser.parse_args()
    n, max_new = (32, 8) if args.quick else (args.prompts, args.max_new_tokens)

    scratch = None
    model = Path(args.model) if args.model else base_model_path()
    if model is None:
        from ftops.core.tiny_model import build_tiny_model

        scratch = tempfile.TemporaryDirectory(prefix="eval-generate-")
        from ftops.core.ml.chat import CHAT_TEMPLATE

        # The embedded base model's compact template (one signature line per tool), so prompt
        # lengths are those the product sees.
        model = build_tiny_model(Path(scratch.name) / "tiny", hidden_size=128, num_layers=4,
                                 chat_template=CHAT_TEMPLATE)
        label = "tiny random Llama (no base model built at FTOPS_BASE_MODEL)"
    else:
        label = str(model)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    sequential = HFLocalAdapter(model, batch_size=1, max_new_tokens=max_new)
    batched = HFLocalAdapter(model, batch_size=args.batch_size, max_new_tokens=max_new)
    texts = prompts(sequential, n)
    sequential.generate_texts(texts[:2])  # warm both up (first calls allocate)
    batched.generate_texts(texts[: args.batch_size])
    print(f"model: {label}; {n} prompts, up to {max_new} new tokens, {torch.get_num_threads()} threads")

    seq_s, seq_out = timed(sequential, texts)
    bat_s, bat_out = timed(batched, texts)
    same = sum(a.raw == b.raw for a, b in zip(seq_out, bat_out, strict=True))
    seq_tokens = sum(o.completion_tokens for o in seq_out)
    bat_tokens = sum(o.completion_tokens for o in bat_out)
    print(f"one at a time: {seq_s:7.2f} s  {n / seq_s:7.1f} prompts/s  {seq_tokens / seq_s:8.1f} new tokens/s")
    print(f"batch of {args.batch_size:<4} {bat_s:7.2f} s  {n / bat_s:7.1f} prompts/s  "
          f"{bat_tokens / bat_s:8.1f} new tokens/s")
    print(f"identical outputs: {same}/{n}")
    if scratch is not None:
        scratch.cleanup()
    print(f"ratio: {(n / bat_s) / (n / seq_s):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
