"""Model adapters: messages and tools in, tool calls or text out (no Django imports).

Every adapter answers ``generate([(messages, tools), ...]) -> [ModelOutput, ...]`` in the
order asked, so evaluation code never cares what serves the model:

- ``OpenAICompatibleAdapter``: any chat-completions endpoint (OpenAI, vLLM, our gateway)
  through the official ``openai`` client; calls come from ``message.tool_calls``. Configs
  name an admin-registered upstream credential, which fixes both the endpoint and the key.
- ``HFLocalAdapter``: a local Hugging Face causal LM, optionally with a peft LoRA adapter,
  prompted with the same renderer training uses, batched greedy decoding with left padding.
- ``FewShotAdapter``: wraps either with a system prompt of worked examples and domain rules.
- ``ReplayAdapter``: answers recorded elsewhere (a JSON-lines results file inside the
  artifacts folder), so outputs of another harness can be scored and stored like any run.

torch, transformers and peft are imported on first use so that web processes start fast.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ftops.core.parsing import TOOL_CALL_CLOSE, TOOL_CALL_OPEN, parse_tool_calls
from ftops.core.strict_schema import strict_function, strip_null_optionals
from ftops.core.toolcalls import parse_tool_call

if TYPE_CHECKING:
    pass

__all__ = [
    "AdapterConfigError",
    "FewShotAdapter",
    "HFLocalAdapter",
    "ModelAdapter",
    "ModelOutput",
    "OpenAICompatibleAdapter",
    "ReplayAdapter",
    "adapter_from_config",
    "confined_file",
    "parse_tool_calls",
    "validate_adapter_config",
]

log = logging.getLogger(__name__)

Request = tuple[list[dict[str, Any]], list[dict[str, Any]]]
END_MARKERS = ("<|end|>", "<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<end_of_turn>")


@dataclass
class ModelOutput:
    calls: list[dict[str, Any]]
    text: str = ""
    raw: str = ""
    parse_error: str | None = None
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "text": self.text, "raw": self.raw, "parse_error": self.parse_error,
                "latency_ms": round(self.latency_ms, 2), "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens}


@runtime_checkable
class ModelAdapter(Protocol):
    name: str

    def generate(self, requests: list[Request]) -> list[ModelOutput]: ...


def output_from_text(raw: str, **extra: Any) -> ModelOutput:
    """Parse a model's text into calls; keep any prose around them as ``text``."""
    calls, error = parse_tool_calls(raw)
    text = raw.strip()
    if calls and not error:
        text = _prose_outside_calls(raw)
    return ModelOutput(calls=calls if not error else [], text=text, raw=raw, parse_error=error, **extra)


def _prose_outside_calls(raw: str) -> str:
    if TOOL_CALL_OPEN not in raw:
        return ""
    parts = [raw.split(TOOL_CALL_OPEN, 1)[0]]
    for chunk in raw.split(TOOL_CALL_OPEN)[1:]:
        if TOOL_CALL_CLOSE in chunk:
            parts.append(chunk.split(TOOL_CALL_CLOSE, 1)[1])
    return " ".join(p.strip() for p in parts if p.strip())


# --------------------------------------------------------------------------- config


class AdapterConfigError(ValueError):
    """An adapter config that cannot work; ``field`` names the key to fix."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


ADAPTER_KINDS = ("openai", "hf_local", "fewshot", "replay")
ALLOWED_KEYS: dict[str, frozenset[str]] = {
    "openai": frozenset({"kind", "credential", "model", "temperature", "max_tokens", "concurrency", "constrained"}),
    "hf_local": frozenset({"kind", "model_path", "adapter_path", "batch_size", "max_new_tokens", "threads",
                           "constrained"}),
    "fewshot": frozenset({"kind", "prompt", "examples_from", "inner"}),
    "replay": frozenset({"kind", "path"}),
}
_USE_CREDENTIAL = ("give credential: the name of an upstream credential an admin registered "
                   "(manage.py upstream_credential set NAME --base-url URL)")
# Keys a caller might try for an endpoint or a key: each says what to use instead.
REFUSED_KEYS = {
    "base_url": f"not accepted: the endpoint comes from the credential, which is bound to it; {_USE_CREDENTIAL}",
    "api_key_env": f"not accepted: keys are never read from environment variables a caller names; {_USE_CREDENTIAL}",
    "api_key": f"not accepted: keys are never sent in a config; {_USE_CREDENTIAL}",
}
REPLAY_PATH_ERROR = "no readable results file at this path inside the artifacts folder"
MAX_REPLAY_BYTES = 256 * 1024 * 1024

CredentialResolver = Callable[[str], tuple[str, str]]  # name -> (base_url, key)


def validate_adapter_config(config: Any, *, prefix: str = "") -> dict[str, Any]:
    """A clean copy of ``config`` or ``AdapterConfigError``. Strict: a key this kind does not
    use is refused, so a misspelt option is never silently ignored, and neither endpoints nor
    secrets can be named: an OpenAI-compatible model is reached through a named credential."""
    if not isinstance(config, Mapping):
        raise AdapterConfigError(prefix or "adapter_config", "must be an object with a 'kind'")
    kind = config.get("kind")
    if kind not in ADAPTER_KINDS:
        raise AdapterConfigError(f"{prefix}kind", f"must be one of {list(ADAPTER_KINDS)}, got {kind!r}")
    for key in sorted(map(str, config)):
        if key in REFUSED_KEYS:
            raise AdapterConfigError(f"{prefix}{key}", REFUSED_KEYS[key])
        if key not in ALLOWED_KEYS[kind]:
            raise AdapterConfigError(f"{prefix}{key}", f"unknown key for kind {kind!r}; "
                                                       f"use {sorted(ALLOWED_KEYS[kind] - {'kind'})}")
    clean: dict[str, Any] = {"kind": kind}
    if kind == "openai":
        for key in ("credential", "model"):
            value = config.get(key)
            if not isinstance(value, str) or not value.strip() or len(value) > 200:
                hint = _USE_CREDENTIAL if key == "credential" else "the model name the endpoint serves"
                raise AdapterConfigError(f"{prefix}{key}", f"is required (a non-empty string): {hint}")
            clean[key] = value.strip()
        clean.update(_numbers(config, prefix, {"max_tokens": (1, 32768), "concurrency": (1, 64)}))
        if "temperature" in config:
            clean["temperature"] = _number(config, prefix, "temperature", 0.0, 2.0)
        if "constrained" in config:
            clean["constrained"] = _flag(config, prefix, "constrained", "strict tool schemas: OpenAI decodes "
                                                                        "the calls under each tool's schema")
    elif kind == "hf_local":
        model_path = config.get("model_path")
        if not isinstance(model_path, str) or not model_path.strip():
            raise AdapterConfigError(f"{prefix}model_path", "is required: a local model folder or hub id")
        clean["model_path"] = model_path.strip()
        adapter_path = config.get("adapter_path")
        if adapter_path not in (None, ""):
            if not isinstance(adapter_path, str):
                raise AdapterConfigError(f"{prefix}adapter_path", "must be a folder path")
            clean["adapter_path"] = adapter_path
        clean.update(_numbers(config, prefix, {"batch_size": (1, 1024), "max_new_tokens": (1, 8192),
                                               "threads": (0, 256)}))
        if "constrained" in config:
            clean["constrained"] = _flag(config, prefix, "constrained", "schema-constrained calls")
    elif kind == "fewshot":
        prompt, source = config.get("prompt"), config.get("examples_from")
        if (prompt is None) == (source is None):
            raise AdapterConfigError(f"{prefix}prompt", "give either prompt (the system prompt) or examples_from")
        if prompt is not None:
            if not isinstance(prompt, str) or not prompt.strip():
                raise AdapterConfigError(f"{prefix}prompt", "must be a non-empty string")
            clean["prompt"] = prompt
        else:
            clean["examples_from"] = _examples_from(source, f"{prefix}examples_from.")
        clean["inner"] = validate_adapter_config(config.get("inner"), prefix=f"{prefix}inner.")
        if clean["inner"]["kind"] == "fewshot":
            raise AdapterConfigError(f"{prefix}inner.kind", "a few-shot adapter wraps a model, not another prompt")
    else:
        path = config.get("path")
        if not isinstance(path, str) or not path.strip():
            raise AdapterConfigError(f"{prefix}path", "is required: a JSON-lines file of {id, result|calls|text} "
                                                      "inside the artifacts folder")
        clean["path"] = path
    return clean


FEWSHOT_SPLITS = ("train", "validation")  # examples never come from the data a run is scored on


def _examples_from(source: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(source, Mapping):
        raise AdapterConfigError(prefix.rstrip("."), "must be an object: {dataset_version, split, max_examples}")
    for key in sorted(map(str, source)):
        if key not in ("dataset_version", "split", "max_examples"):
            raise AdapterConfigError(f"{prefix}{key}", "unknown key; use dataset_version, split, max_examples")
    version = source.get("dataset_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise AdapterConfigError(f"{prefix}dataset_version", "must be a dataset version number")
    split = source.get("split", "train")
    if split not in FEWSHOT_SPLITS:
        raise AdapterConfigError(f"{prefix}split", f"must be one of {list(FEWSHOT_SPLITS)} (never test or holdout)")
    out = {"dataset_version": version, "split": split, "max_examples": 8}
    out.update(_numbers(source, prefix, {"max_examples": (1, 64)}))
    return out


def _numbers(config: Mapping[str, Any], prefix: str, bounds: dict[str, tuple[int, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, (low, high) in bounds.items():
        if key in config and config[key] is not None:
            value = config[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise AdapterConfigError(f"{prefix}{key}", f"must be an integer from {low} to {high}")
            out[key] = value
    return out


def _flag(config: Mapping[str, Any], prefix: str, key: str, meaning: str) -> bool:
    if not isinstance(config[key], bool):
        raise AdapterConfigError(f"{prefix}{key}", f"must be true or false ({meaning}), got {config[key]!r}")
    return bool(config[key])


def _number(config: Mapping[str, Any], prefix: str, key: str, low: float, high: float) -> float:
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise AdapterConfigError(f"{prefix}{key}", f"must be a number from {low} to {high}")
    return float(value)


def adapter_from_config(config: Mapping[str, Any], *, credentials: CredentialResolver | None = None,
                        files_root: Path | None = None) -> ModelAdapter:
    """The adapter ``config`` names. ``credentials`` turns a credential name into the one base
    URL its key may go to and the key; ``files_root`` is the folder replay files must lie in
    (the artifacts folder). Without them, configs that need them are refused."""
    clean = validate_adapter_config(config)
    kind = clean["kind"]
    if kind == "openai":
        if credentials is None:
            raise AdapterConfigError("credential", "cannot be resolved here: build the adapter through the "
                                                   "evaluation services")
        base_url, api_key = credentials(clean["credential"])
        return OpenAICompatibleAdapter(
            base_url, api_key, clean["model"],
            temperature=clean.get("temperature", 0.0), max_tokens=clean.get("max_tokens", 512),
            concurrency=clean.get("concurrency", 4), constrained=clean.get("constrained", False),
        )
    if kind == "hf_local":
        return HFLocalAdapter(clean["model_path"], clean.get("adapter_path"), batch_size=clean.get("batch_size", 16),
                              max_new_tokens=clean.get("max_new_tokens", 128), threads=clean.get("threads", 0),
                              constrained=clean.get("constrained", False))
    if kind == "fewshot":
        if "prompt" not in clean:
            raise AdapterConfigError("examples_from", "needs the dataset: build it with the evaluation services")
        return FewShotAdapter(adapter_from_config(clean["inner"], credentials=credentials, files_root=files_root),
                              clean["prompt"])
    if files_root is None:
        raise AdapterConfigError("path", REPLAY_PATH_ERROR)
    return ReplayAdapter.from_file(confined_file(files_root, clean["path"]))


def confined_file(root: Path, path: str) -> Path:
    """``path`` (relative to ``root``, or absolute) resolved, with ``..`` and links followed, to
    a readable regular file inside ``root``; anything else raises one and the same error, so
    the answer tells nothing about which files exist outside (or inside) the folder."""
    try:
        base = Path(root).resolve(strict=True)
        target = (base / path).resolve(strict=True)
        inside = target.is_relative_to(base) and target.is_file() and os.access(target, os.R_OK)
    except (OSError, RuntimeError, ValueError):  # missing, a link loop, a NUL byte, a name too long
        inside = False
    if not inside:
        raise AdapterConfigError("path", REPLAY_PATH_ERROR)
    return target


def relative_to_root(root: Path, path: Path) -> str:
    """How a confined file is stored: relative to the artifacts folder, so a moved folder still works."""
    return str(path.relative_to(Path(root).resolve()))


# --------------------------------------------------------------------------- OpenAI-compatible


def to_openai_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages the API accepts: assistant calls get ids and JSON-string arguments, tool
    results name the call they answer."""
    out: list[dict[str, Any]] = []
    pending_ids: list[str] = []
    counter = 0
    for message in messages:
        role = str(message.get("role") or "user")
        if role == "assistant" and message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                function = call.get("function") if isinstance(call.get("function"), Mapping) else call
                arguments = function.get("arguments", {})
                counter += 1
                call_id = str(call.get("id") or f"call_{counter}")
                calls.append({"id": call_id, "type": "function", "function": {
                    "name": str(function.get("name", "")),
                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                }})
                pending_ids.append(call_id)
            out.append({"role": "assistant", "content": message.get("content") or None, "tool_calls": calls})
            continue
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            content = json.dumps(content)
        if role == "tool":
            call_id = str(message.get("tool_call_id") or (pending_ids.pop(0) if pending_ids else f"call_{counter}"))
            if message.get("tool_call_id") and call_id in pending_ids:
                pending_ids.remove(call_id)
            out.append({"role": "tool", "tool_call_id": call_id, "content": content or ""})
            continue
        out.append({"role": role, "content": content or ""})
    return out


def to_openai_tools(tools: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        function = tool.get("function") if tool.get("type") == "function" else tool
        if not isinstance(function, Mapping):
            continue
        out.append({"type": "function", "function": {
            "name": str(function.get("name", "")),
            "description": str(function.get("description") or ""),
            "parameters": dict(function.get("parameters") or function.get("inputSchema") or
                               {"type": "object", "properties": {}}),
        }})
    return out


class OpenAICompatibleAdapter:
    """A chat-completions endpoint through the official client, greedy (temperature 0).

    ``constrained``: each tool goes out with ``"strict": true`` and its schema in strict form
    (``ftops.core.strict_schema``), so the endpoint decodes the arguments under the schema; the
    ``null`` it then gives for optional arguments left out is removed from the calls read back.
    A tool whose schema has no strict form goes out as it is (logged once per tool, with why)."""

    def __init__(self, base_url: str, api_key: str, model: str, *, temperature: float = 0.0,
                 max_tokens: int = 512, timeout: float = 60.0, max_retries: int = 2, concurrency: int = 4,
                 constrained: bool = False) -> None:
        from openai import DefaultHttpxClient, OpenAI

        self.name = f"openai:{model}" + ("+constrained" if constrained else "")
        self.model = model
        self.constrained = constrained
        self.not_strict: dict[str, str] = {}  # tool name -> why it went out without strict
        self._lock = threading.Lock()
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.concurrency = max(1, concurrency)
        # No redirects: the key goes to ``base_url`` only, never to a host a response points at.
        self._client = OpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=timeout,
                              max_retries=max_retries, http_client=DefaultHttpxClient(follow_redirects=False))

    def generate(self, requests: list[Request]) -> list[ModelOutput]:
        if self.concurrency == 1 or len(requests) <= 1:
            return [self._one(messages, tools) for messages, tools in requests]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(lambda req: self._one(*req), requests))

    def _one(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelOutput:
        import openai

        kwargs: dict[str, Any] = {"model": self.model, "messages": to_openai_messages(messages),
                                  "temperature": self.temperature, "max_tokens": self.max_tokens}
        openai_tools = to_openai_tools(tools)
        # The schemas strict calls are read back against: the originals, by tool name.
        originals: dict[str, Any] = {}
        if self.constrained:
            openai_tools, originals = self._strict(openai_tools)
        if openai_tools:
            kwargs["tools"] = openai_tools
        started = time.perf_counter()
        try:
            response = self._client.chat.completions.create(**kwargs)
        except openai.OpenAIError as exc:
            # One failed request must not sink a whole run; it is scored and shown as such.
            return ModelOutput(calls=[], raw="", parse_error=f"request failed: {type(exc).__name__}: {exc}",
                               latency_ms=(time.perf_counter() - started) * 1000)
        latency = (time.perf_counter() - started) * 1000
        usage = response.usage
        tokens: dict[str, Any] = {"prompt_tokens": usage.prompt_tokens if usage else 0,
                                  "completion_tokens": usage.completion_tokens if usage else 0}
        if not response.choices:
            return ModelOutput(calls=[], parse_error="the endpoint returned no choices", latency_ms=latency, **tokens)
        message = response.choices[0].message
        text = message.content or ""
        calls: list[dict[str, Any]] = []
        raw_calls: list[dict[str, Any]] = []
        error: str | None = None
        for call in message.tool_calls or []:
            function = getattr(call, "function", None)
            if function is None:
                continue
            raw_calls.append({"name": function.name, "arguments": function.arguments})
            tool_call = parse_tool_call({"name": function.name, "arguments": function.arguments})
            if tool_call is None or not tool_call.parsed:
                why = tool_call.arguments_error if tool_call is not None else "arguments name no tool"
                error = f"arguments of {function.name!r} {why.removeprefix('arguments ')}"
                continue
            arguments = tool_call.arguments
            if tool_call.name in originals:
                arguments = strip_null_optionals(arguments, originals[tool_call.name])
            calls.append({"name": tool_call.name, "arguments": arguments})
        raw = json.dumps({"content": text, "tool_calls": raw_calls}, ensure_ascii=False) if raw_calls else text
        if error:
            return ModelOutput(calls=[], text=text, raw=raw, parse_error=error, latency_ms=latency, **tokens)
        if not calls and text:
            # Endpoints without a tool parser return the call as text; read it the same way.
            parsed = output_from_text(text, latency_ms=latency, **tokens)
            if parsed.calls or parsed.parse_error:
                return parsed
        return ModelOutput(calls=calls, text=text, raw=raw, latency_ms=latency, **tokens)

    def _strict(self, tools: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        out: list[dict[str, Any]] = []
        originals: dict[str, Any] = {}
        for tool in tools:
            function, reason = strict_function(tool["function"])
            name = function["name"]
            if reason:
                with self._lock:
                    first = name not in self.not_strict
                    self.not_strict[name] = reason
                if first:
                    log.info("%s: tool %r goes out without strict: %s", self.name, name, reason)
            else:
                originals[name] = tool["function"]["parameters"]
            out.append({**tool, "function": function})
        return out, originals


# --------------------------------------------------------------------------- local Hugging Face


@dataclass(frozen=True)
class HFLocalConfig:
    model_path: str
    adapter_path: str | None = None
    batch_size: int = 16
    max_new_tokens: int = 128
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    merge_adapter: bool = True  # fold LoRA weights in once: faster decoding, same outputs
    threads: int = 0  # torch CPU threads for the process (0: torch's default); 1 avoids thrashing on busy hosts
    # Tool calls forced to the offered tools' JSON Schemas (ftops.core.ml.constrained); free text stays allowed.
    constrained: bool = False


class HFLocalAdapter:
    """A local causal LM (plus optional LoRA adapter), batched greedy decoding."""

    def __init__(self, model_path: str | Path, adapter_path: str | Path | None = None, batch_size: int = 16,
                 max_new_tokens: int = 128, *, device: str = "auto", merge_adapter: bool = True,
                 threads: int = 0, constrained: bool = False) -> None:
        self.config = HFLocalConfig(str(model_path), str(adapter_path) if adapter_path else None,
                                    max(1, batch_size), max(1, max_new_tokens), device, merge_adapter, threads,
                                    constrained)
        self.name = f"hf:{Path(self.config.model_path).name}" + (
            f"+{Path(self.config.adapter_path).name}" if self.config.adapter_path else "") + (
            "+constrained" if constrained else "")
        self._model: Any = None
        self._tokenizer: Any = None
        self._stop_ids: list[int] = []
        self._lock = threading.Lock()

    # Loading is lazy so that building an adapter (e.g. to validate a run) costs nothing.
    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            cfg = self.config
            if cfg.threads:
                torch.set_num_threads(cfg.threads)
            tokenizer_source = cfg.model_path
            if cfg.adapter_path and (Path(cfg.adapter_path) / "tokenizer_config.json").is_file():
                tokenizer_source = cfg.adapter_path  # training may have added tokens
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
            tokenizer.padding_side = "left"  # decoder-only batches must end where generation starts
            if tokenizer.pad_token_id is None:
                tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
            device = cfg.device
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
            model: Any = AutoModelForCausalLM.from_pretrained(cfg.model_path, dtype=dtype)
            if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
                model.resize_token_embeddings(len(tokenizer))
            if cfg.adapter_path:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, cfg.adapter_path)
                if cfg.merge_adapter:
                    model = model.merge_and_unload()
            model.to(device)
            model.eval()
            stop_ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
            vocab = tokenizer.get_vocab()
            stop_ids.update(vocab[m] for m in END_MARKERS if m in vocab)
            self._stop_ids = sorted(stop_ids)
            self._device = device
            self._tokenizer = tokenizer
            self._model = model

    @property
    def tokenizer(self) -> Any:
        self.load()
        return self._tokenizer

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
        from ftops.core.ml.chat import render_prompt

        return render_prompt(self.tokenizer, messages, tools)

    def generate(self, requests: list[Request]) -> list[ModelOutput]:
        self.load()
        prompts = [self.render(messages, tools) for messages, tools in requests]
        if self.config.constrained:
            return self.generate_texts(prompts, tools=[list(tools) for _, tools in requests])
        return self.generate_texts(prompts)

    def generate_texts(self, prompts: list[str], tools: list[list[dict[str, Any]]] | None = None) -> list[ModelOutput]:
        """Outputs for already-rendered prompts, in their order, ``batch_size`` per forward pass.

        With ``tools`` (one list per prompt) tool calls are constrained to those tools' schemas.
        """
        self.load()
        # Similar lengths share a batch: less padding, and left padding stays short.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: list[ModelOutput | None] = [None] * len(prompts)
        size = self.config.batch_size
        for start in range(0, len(order), size):
            chunk = order[start:start + size]
            row_tools = [tools[i] for i in chunk] if tools is not None else None
            for index, output in zip(chunk, self._generate_batch([prompts[i] for i in chunk], row_tools), strict=True):
                results[index] = output
        return [r for r in results if r is not None]

    def _generate_batch(self, prompts: list[str], tools: list[list[dict[str, Any]]] | None = None) -> list[ModelOutput]:
        import torch

        tokenizer, model = self._tokenizer, self._model
        encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = {k: v.to(self._device) for k, v in encoded.items() if k in ("input_ids", "attention_mask")}
        extra: dict[str, Any] = {}
        if tools is not None:
            from transformers import LogitsProcessorList

            from ftops.core.ml.constrained import ToolCallLogitsProcessor

            extra["logits_processor"] = LogitsProcessorList([ToolCallLogitsProcessor(
                tokenizer, tools, int(encoded["input_ids"].shape[1]), self._stop_ids, greedy=True)])
        started = time.perf_counter()
        with torch.inference_mode():
            generated = model.generate(
                **encoded, max_new_tokens=self.config.max_new_tokens, do_sample=False,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=self._stop_ids or None, **extra,
            )
        latency = (time.perf_counter() - started) * 1000
        width = encoded["input_ids"].shape[1]
        outputs = []
        stops = set(self._stop_ids)
        for row in range(generated.shape[0]):
            new_ids = generated[row, width:].tolist()
            cut = next((i for i, token in enumerate(new_ids) if token in stops), len(new_ids))
            raw = tokenizer.decode(new_ids[:cut], skip_special_tokens=False)
            if tokenizer.pad_token:
                raw = raw.replace(tokenizer.pad_token, "")
            outputs.append(output_from_text(
                raw, latency_ms=latency, prompt_tokens=int(encoded["attention_mask"][row].sum()),
                completion_tokens=cut,
            ))
        return outputs


# --------------------------------------------------------------------------- few-shot


class FewShotAdapter:
    """Prepends a system prompt of examples and rules to every request of ``inner``."""

    def __init__(self, inner: ModelAdapter, prompt: str) -> None:
        self.inner = inner
        self.prompt = prompt
        self.name = f"fewshot:{inner.name}"

    def generate(self, requests: list[Request]) -> list[ModelOutput]:
        return self.inner.generate([(with_system_prompt(messages, self.prompt), tools) for messages, tools in requests])


def with_system_prompt(messages: Sequence[Mapping[str, Any]], prompt: str) -> list[dict[str, Any]]:
    out = [dict(m) for m in messages]
    if out and out[0].get("role") == "system":
        out[0]["content"] = f"{prompt}\n\n{out[0].get('content') or ''}".strip()
        return out
    return [{"role": "system", "content": prompt}, *out]


# --------------------------------------------------------------------------- replay


@dataclass
class ReplayAdapter:
    """Recorded answers keyed by the last user message or by record id.

    A results line is ``{"id", "result"}`` (BFCL's shape: a call list, anything else = no
    call) or ``{"id", "calls": [{"name", "arguments"}], "text"}``. Requests are matched by
    ``key_for`` (default: the record id passed through ``meta``/``id`` of the first message).
    """

    answers: dict[str, ModelOutput] = field(default_factory=dict)
    name: str = "replay"

    @classmethod
    def from_file(cls, path: Path) -> ReplayAdapter:
        """Answers from a results file the caller has already confined (``confined_file``)."""
        try:
            # O_NOFOLLOW: a link swapped in after the path was checked is not followed.
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            raise AdapterConfigError("path", REPLAY_PATH_ERROR) from None
        answers: dict[str, ModelOutput] = {}
        with os.fdopen(fd, encoding="utf-8") as handle:
            if os.fstat(handle.fileno()).st_size > MAX_REPLAY_BYTES:
                raise AdapterConfigError("path", f"results file {path.name} is larger than "
                                                 f"{MAX_REPLAY_BYTES // 2**20} MiB")
            try:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        item = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise AdapterConfigError(
                            "path", f"line {number} of {path.name} is not JSON: {exc.msg}") from None
                    if not isinstance(item, dict):
                        raise AdapterConfigError("path", f"line {number} of {path.name} is not a JSON object")
                    answers[str(item.get("id"))] = replay_output(item)
            except (OSError, UnicodeDecodeError):  # a directory, unreadable bytes: the same answer as missing
                raise AdapterConfigError("path", REPLAY_PATH_ERROR) from None
        return cls(answers=answers, name=f"replay:{path.name}")

    def generate(self, requests: list[Request]) -> list[ModelOutput]:
        out = []
        for messages, _tools in requests:
            key = request_key(messages)
            answer = self.answers.get(key)
            out.append(answer if answer is not None else
                       ModelOutput(calls=[], parse_error=f"no recorded answer for {key!r}"))
        return out


def replay_output(item: Mapping[str, Any]) -> ModelOutput:
    if "result" in item:
        result = item["result"]
        if isinstance(result, list) and all(isinstance(c, dict) and len(c) == 1 for c in result):
            calls = [{"name": name, "arguments": args} for c in result for name, args in c.items()]
            return ModelOutput(calls=calls, raw=json.dumps(result))
        return ModelOutput(calls=[], text=result if isinstance(result, str) else "", raw=json.dumps(result))
    calls = [c for c in item.get("calls") or [] if isinstance(c, dict) and "name" in c]
    return ModelOutput(calls=calls, text=str(item.get("text") or ""), raw=json.dumps(item))


RECORD_ID_KEY = "ftops_record_id"


def request_key(messages: Sequence[Mapping[str, Any]]) -> str:
    """The record id a request was built from (evaluation tags the first message)."""
    for message in messages:
        if RECORD_ID_KEY in message:
            return str(message[RECORD_ID_KEY])
    return ""
