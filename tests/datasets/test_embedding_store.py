from __future__ import annotations

from typing import Any

import numpy as np

from ftops.datasets.embedding_store import DbEmbeddingStore
from ftops.datasets.embeddings import Embedder, LayeredStore, MemoryStore, text_key
from ftops.datasets.models import EmbeddingCache


class CountingModel:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: list[str], **_: object) -> np.ndarray:
        self.seen.extend(texts)
        rows = np.array([[len(t), t.count("e") + 1.0, 1.0] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_database_cache_means_nothing_is_embedded_twice(db: Any) -> None:
    model = CountingModel()
    first = Embedder(DbEmbeddingStore(), model=model).embed(["refund pay_1", "where is ORD-1", "refund pay_1"])
    assert model.seen == ["refund pay_1", "where is ORD-1"]
    assert EmbeddingCache.objects.count() == 2
    row = EmbeddingCache.objects.get(key=text_key("refund pay_1"))
    assert (row.model, row.dim) == ("all-MiniLM-L6-v2", 3) and len(bytes(row.vector)) == 3 * 4
    # a new process (fresh front cache) reads the rows instead of computing again
    again = Embedder(LayeredStore(DbEmbeddingStore(), front=MemoryStore()), model=model).embed(
        ["where is ORD-1", "cancel ORD-2"])
    assert model.seen == ["refund pay_1", "where is ORD-1", "cancel ORD-2"]
    assert np.allclose(again[0], first[1])
    assert EmbeddingCache.objects.count() == 3
