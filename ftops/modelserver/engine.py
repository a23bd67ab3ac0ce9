"""The model server's engine: one base causal LM, any number of LoRA adapters, batched generation.

No Django here (like ``ftops.core``): the engine is plain torch/transformers/peft, so the server
process can run on a GPU host without the rest of ftops' configuration.

Every adapter is loaded into one ``peft.PeftModel`` under its own name and never merged, so one
``generate`` call serves a batch whose rows use different adapters (peft's mixed-adapter
inference, ``adapter_names=[...]``, ``"__base__"`` for the base model alone). Prompts are
rendered with ``ftops.core.ml.chat.render_prompt``, the renderer training uses, so an adapter
sees at serving time the prompt it was trained on.

The engine is not thread-safe on purpose: the server runs every call on one worker thread
(``ModelServer``), so a load or unload never runs under a generation.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in a mixed batch
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+@-]{0,199}$")
END_MARKERS = ("<|end|>", "<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<end_of_turn>")
LORA_PATH_ERROR = ("lora_path must name a LoRA adapter folder (with adapter_config.json) inside the server's "
                   "adapters root")


class EngineError(Exception):
    """A request the engine refuses; ``status`` is the HTTP status the server answers with."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid_request", param: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.param = param


@dataclass(frozen=True)
class EngineConfig:
    base_model: str  # a local model folder (or a hub id already in the local cache)
    adapters_root: Path  # lora_path must resolve inside it (ARCHITECTURE rule 15)
    base_name: str = ""  # the model id of the base; default: the folder's name
    max_new_tokens: int = 512  # upper bound on max_tokens
    max_adapters: int = 32
    device: str = "auto"
    threads: int = 0  # CPU threads for torch; 0: torch's default

    @property
    def served_base_name(self) -> str:
        return self.base_name or Path(self.base_model).name


@dataclass
class GenRequest:
    """One chat completion to generate: a rendered prompt and its sampling options."""

    prompt: str
    adapter: str | None  # None: the base model
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    # Schema-constrained decoding (ftops.core.ml.constrained): the offered tools whose JSON Schemas
    # this row's calls must follow; None decodes freely.
    constrain_tools: list[dict[str, Any]] | None = None

    def sampling_key(self) -> tuple[float, float]:
        """Rows of one ``generate`` call share their sampling options; greedy rows all share one key."""
        if self.temperature <= 0:
            return (0.0, 1.0)
        return (round(self.temperature, 4), round(self.top_p, 4))


@dataclass
class GenResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" or "length"
    batch_size: int = 1
    seconds: float = 0.0


@dataclass
class LoadedAdapter:
    name: str
    path: Path
    key: str  # peft's name for it: version names hold dots, which peft's module names may not
    loaded_at: float = field(default_factory=time.time)


def confine_adapter_path(root: Path, lora_path: Any) -> Path:
    """``lora_path`` resolved (links followed) to an adapter folder inside ``root``, or EngineError.

    ``..`` is refused outright, even when it would land inside the root, and every failure
    gives one message, so the answer tells nothing about what exists outside the root.
    """
    if not isinstance(lora_path, str) or not lora_path.strip() or "\x00" in lora_path or len(lora_path) > 4096:
        raise EngineError(LORA_PATH_ERROR, param="lora_path")
    if ".." in Path(lora_path).parts:
        raise EngineError(LORA_PATH_ERROR, param="lora_path")
    try:
        base = Path(root).resolve(strict=True)
        target = (base / lora_path).resolve(strict=True)
        inside = target.is_relative_to(base) and target.is_dir() and (target / "adapter_config.json").is_file() \
            and os.access(target / "adapter_config.json", os.R_OK)
    except (OSError, RuntimeError, ValueError):
        inside = False
    if not inside:
        raise EngineError(LORA_PATH_ERROR, param="lora_path")
    return target


class Engine:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.adapters: dict[str, LoadedAdapter] = {}
        self._base: Any = None
        self._peft: Any = None  # the PeftModel once an adapter is loaded
        self._tokenizer: Any = None
        self._stop_ids: list[int] = []
        self._device = "cpu"
        self._loads = 0

    @property
    def base_name(self) -> str:
        return self.config.served_base_name

    def is_base(self, model: str) -> bool:
        """The base answers to its served name and, as in vLLM, to the path it was loaded from
        (a few-shot version on a local base names the base by its path)."""
        return model in (self.base_name, self.config.base_model, str(Path(self.config.base_model).resolve()))

    @property
    def tokenizer(self) -> Any:
        self.load()
        return self._tokenizer

    def load(self) -> None:
        if self._base is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        tokenizer = AutoTokenizer.from_pretrained(cfg.base_model)
        tokenizer.padding_side = "left"  # a batch must end where generation starts
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        device = cfg.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        model: Any = AutoModelForCausalLM.from_pretrained(cfg.base_model, dtype=dtype)
        model.to(device)
        model.eval()
        stop_ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
        vocab = tokenizer.get_vocab()
        stop_ids.update(vocab[m] for m in END_MARKERS if m in vocab)
        self._stop_ids = sorted(stop_ids)
        self._tokenizer = tokenizer
        self._device = device
        self._base = model

    # --- adapters -------------------------------------------------------------------------------

    def load_adapter(self, name: str, lora_path: str) -> tuple[LoadedAdapter, bool]:
        """Load ``lora_path`` as ``name``; (adapter, False) when that name already serves that folder."""
        self.load()
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise EngineError("lora_name must be 1-200 letters, digits and ._:/+@- (starting with a letter or digit)",
                              param="lora_name")
        if self.is_base(name) or name == BASE_ADAPTER:
            raise EngineError(f"lora_name {name!r} is the base model's name", param="lora_name")
        path = confine_adapter_path(self.config.adapters_root, lora_path)
        current = self.adapters.get(name)
        if current is not None:
            if current.path == path:
                return current, False
            raise EngineError(f"The lora adapter '{name}' has already been loaded.", param="lora_name")
        if len(self.adapters) >= self.config.max_adapters:
            raise EngineError(f"{len(self.adapters)} adapters are loaded, the most this server holds "
                              f"(FTOPS_MODEL_SERVER_MAX_ADAPTERS); unload one first", param="lora_name")
        self._check_vocabulary(path)
        self._loads += 1
        key = f"lora{self._loads}"
        try:
            if self._peft is None:
                from peft import PeftModel

                self._peft = PeftModel.from_pretrained(self._base, str(path), adapter_name=key)
            else:
                self._peft.load_adapter(str(path), adapter_name=key)
        except Exception as exc:  # a folder that is not an adapter for this base
            self._drop(key)
            raise EngineError(f"the adapter at lora_path cannot be loaded on {self.base_name}: "
                              f"{type(exc).__name__}: {str(exc)[:300]}", param="lora_path") from exc
        self._peft.eval()
        adapter = LoadedAdapter(name=name, path=path, key=key)
        self.adapters[name] = adapter
        return adapter, True

    def _check_vocabulary(self, path: Path) -> None:
        """An adapter trained with added tokens needs its own embeddings: it cannot share this base."""
        config = path / "tokenizer_config.json"
        if not config.is_file():
            return
        try:
            from transformers import AutoTokenizer

            size = len(AutoTokenizer.from_pretrained(str(path)))
        except Exception:
            return
        if size > self._base.get_input_embeddings().weight.shape[0]:
            raise EngineError(f"the adapter's tokenizer has {size} tokens, more than {self.base_name}'s embeddings; "
                              "it was trained with added tokens and cannot share this base model", param="lora_path")

    def unload_adapter(self, name: str) -> None:
        if name not in self.adapters:
            raise EngineError(f"The lora adapter '{name}' cannot be found.", status=404, code="adapter_not_found",
                              param="lora_name")
        self._drop(self.adapters[name].key)
        del self.adapters[name]

    def _drop(self, key: str) -> None:
        if self._peft is None or key not in self._peft.peft_config:
            return
        if len(self._peft.peft_config) == 1:
            # The last adapter: take the LoRA layers out and serve the plain base again.
            self._base = self._peft.unload()
            self._peft = None
            return
        if self._peft.active_adapter == key:
            self._peft.set_adapter(next(n for n in self._peft.peft_config if n != key))
        self._peft.delete_adapter(key)

    # --- generation -----------------------------------------------------------------------------

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
        from ftops.core.ml.chat import render_prompt

        return render_prompt(self.tokenizer, messages, tools)

    def generate(self, requests: list[GenRequest]) -> list[GenResult]:
        """One ``generate`` call per sampling key: rows of different adapters share it."""
        self.load()
        results: list[GenResult | None] = [None] * len(requests)
        groups: dict[tuple[float, float], list[int]] = {}
        for index, request in enumerate(requests):
            if request.adapter is not None and request.adapter not in self.adapters:
                raise EngineError(f"The model `{request.adapter}` does not exist.", status=404,
                                  code="model_not_found", param="model")
            groups.setdefault(request.sampling_key(), []).append(index)
        for key, indices in groups.items():
            for index, result in zip(indices, self._generate_group([requests[i] for i in indices], key), strict=True):
                results[index] = result
        return [r for r in results if r is not None]

    def _generate_group(self, requests: list[GenRequest], key: tuple[float, float]) -> list[GenResult]:
        import torch

        tokenizer = self._tokenizer
        encoded = tokenizer([r.prompt for r in requests], return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = {k: v.to(self._device) for k, v in encoded.items() if k in ("input_ids", "attention_mask")}
        max_new = max(r.max_tokens for r in requests)
        options: dict[str, Any] = {"max_new_tokens": max_new, "pad_token_id": tokenizer.pad_token_id,
                                   "eos_token_id": self._stop_ids or None}
        temperature, top_p = key
        if temperature > 0:
            options.update(do_sample=True, temperature=temperature, top_p=top_p)
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        constrained = self._constraint(requests, int(encoded["input_ids"].shape[1]), greedy=temperature <= 0)
        if constrained is not None:
            options["logits_processor"] = constrained
        model = self._base
        if self._peft is not None:
            model = self._peft
            options["adapter_names"] = [self.adapters[r.adapter].key if r.adapter else BASE_ADAPTER
                                        for r in requests]
        started = time.perf_counter()
        with torch.inference_mode():
            generated = model.generate(**encoded, **options)
        seconds = time.perf_counter() - started
        width = encoded["input_ids"].shape[1]
        stops = set(self._stop_ids)
        out: list[GenResult] = []
        for row, request in enumerate(requests):
            new_ids = generated[row, width:].tolist()[: request.max_tokens]
            cut = next((i for i, token in enumerate(new_ids) if token in stops), None)
            finish = "stop" if cut is not None else "length"
            kept = new_ids[:cut] if cut is not None else new_ids
            text = tokenizer.decode(kept, skip_special_tokens=False)
            if tokenizer.pad_token:
                text = text.replace(tokenizer.pad_token, "")
            for stop in request.stop:
                if stop and stop in text:
                    text, finish = text.split(stop, 1)[0], "stop"
            out.append(GenResult(text=text, prompt_tokens=int(encoded["attention_mask"][row].sum()),
                                 completion_tokens=len(kept), finish_reason=finish, batch_size=len(requests),
                                 seconds=seconds))
        return out

    def _constraint(self, requests: list[GenRequest], prompt_width: int, *, greedy: bool) -> Any:
        """A logits processor list that holds each constrained row to its tools' schemas, or None.

        Rows of one batch may differ: the processor has one enforcer per row, and a row asked to
        decode freely is marked as one its enforcer gave up on, which the processor leaves alone.
        """
        if all(r.constrain_tools is None for r in requests):
            return None
        from transformers import LogitsProcessorList

        from ftops.core.ml.constrained import ToolCallLogitsProcessor

        processor = ToolCallLogitsProcessor(self._tokenizer, [r.constrain_tools or [] for r in requests],
                                            prompt_width, self._stop_ids, greedy=greedy)
        processor.failed.update(row for row, r in enumerate(requests) if r.constrain_tools is None)
        return LogitsProcessorList([processor])


def adapter_card(path: Path) -> dict[str, Any]:
    """What the adapter folder says about itself (for /v1/models), or {}."""
    try:
        return dict(json.loads((path / "adapter_config.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return {}
