"""The database-backed embedding cache (``EmbeddingCache`` rows keyed by sha256 of model + text)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ftops.datasets.embeddings import MODEL_NAME, Embedder, LayeredStore, MemoryStore
from ftops.datasets.models import EmbeddingCache

CHUNK = 500


class DbEmbeddingStore:
    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        keys = list(keys)
        for start in range(0, len(keys), CHUNK):
            rows = EmbeddingCache.objects.filter(key__in=keys[start : start + CHUNK]).values_list("key", "vector")
            for key, vector in rows:
                out[key] = np.frombuffer(bytes(vector), dtype="<f4").copy()
        return out

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        rows = [
            EmbeddingCache(key=k, model=MODEL_NAME, dim=len(v), vector=np.asarray(v, dtype="<f4").tobytes())
            for k, v in vectors.items()
        ]
        # Another process may have embedded the same text meanwhile: the first row wins.
        EmbeddingCache.objects.bulk_create(rows, batch_size=CHUNK, ignore_conflicts=True)


# Vectors only depend on the text, so one process-wide front cache is safe to share.
_front = MemoryStore()


def db_embedder() -> Embedder:
    return Embedder(LayeredStore(DbEmbeddingStore(), front=_front))
