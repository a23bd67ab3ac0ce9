"""A tiny random Llama and tokenizer for adapter tests and benchmarks (no downloads, no Django).

Seconds to build, a few hundred kilobytes on disk, loadable with ``AutoModelForCausalLM`` and
``AutoTokenizer`` like any Hugging Face model. Its chat template renders tools as JSON, so
the local adapter's ``tools=`` path is exercised. It knows nothing: tests that need a model
to emit a particular call train it for a few steps first.
"""

from __future__ import annotations

import json
from pathlib import Path

PAD, END = "<|pad|>", "<|end|>"
ROLES = ("<|system|>", "<|tools|>", "<|user|>", "<|assistant|>", "<|tool|>")
TAGS = ("<tool_call>", "</tool_call>")
CHAT_TEMPLATE = (
    "{%- if tools -%}<|tools|>{{ tools | tojson }}<|end|>{%- endif -%}"
    "{%- for m in messages -%}<|{{ m.role }}|>{{ m.content }}<|end|>{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)
_WORDS = ("the weather in paris london tokyo berlin today tomorrow please book a table for two find flights "
          "from to send an email to bob about the meeting set an alarm at seven convert dollars euros "
          "create payment amount currency customer order invoice refund status pending completed failed "
          "get weather city unit celsius fahrenheit search query limit name id date time number true false")


def _corpus() -> list[str]:
    words = _WORDS.split()
    texts = [" ".join(words[i:i + 9]) for i in range(0, len(words), 3)]
    for i, word in enumerate(words):
        texts.append(json.dumps({"name": f"get_{word}", "arguments": {word: i, "city": words[(i * 7) % len(words)]}}))
    texts.append("0123456789 {}[]():,.\"'-_/")
    return texts * 3


def build_tiny_model(out_dir: Path | str, *, seed: int = 0, hidden_size: int = 64, num_layers: int = 2,
                     num_heads: int = 4, vocab_size: int = 512, chat_template: str = CHAT_TEMPLATE) -> Path:
    import torch
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, END, *ROLES], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.add_tokens([AddedToken(tag, normalized=False, special=False) for tag in TAGS])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=END, pad_token=PAD, model_max_length=2048,
                                        clean_up_tokenization_spaces=False)
    tokenizer.chat_template = chat_template
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_heads,
        max_position_embeddings=2048, tie_word_embeddings=False, initializer_range=0.3,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
    )
    # A wide initialisation gives varied greedy outputs; the default one repeats a single token,
    # which would hide padding bugs that batched-versus-sequential tests are there to catch.
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
