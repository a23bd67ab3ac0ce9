from __future__ import annotations

import numpy as np
import pytest

from ftops.datasets.dedup import (
    components,
    diversity_score,
    greedy_select,
    nearest_similarity,
    similar_pairs,
)
from ftops.datasets.embeddings import Embedder, MemoryStore, NpyFolderStore, text_key


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def vectors() -> np.ndarray:
    rng = np.random.default_rng(0)
    base = unit(rng.normal(size=(300, 24)))
    near = unit(base[:40] + 0.02 * rng.normal(size=(40, 24)))
    return np.vstack([base, near])


def test_blocked_pairs_equal_the_full_matrix(vectors: np.ndarray) -> None:
    i, j, s = similar_pairs(vectors, threshold=0.9, block=64)
    full = vectors @ vectors.T
    fi, fj = np.nonzero(np.triu(full >= 0.9, k=1))
    assert sorted(zip(i.tolist(), j.tolist(), strict=True)) == sorted(zip(fi.tolist(), fj.tolist(), strict=True))
    assert np.allclose(s, full[i, j])
    a, _b, _ = similar_pairs(vectors[:100], vectors[250:], threshold=0.9, block=32)
    cross = vectors[:100] @ vectors[250:].T
    assert len(a) == int((cross >= 0.9).sum())


def test_nearest_similarity_ignores_self(vectors: np.ndarray) -> None:
    full = vectors @ vectors.T
    np.fill_diagonal(full, -1)
    assert np.allclose(nearest_similarity(vectors, block=50), full.max(axis=1))


def test_greedy_select_keeps_first_of_each_near_duplicate_group(vectors: np.ndarray) -> None:
    selection = greedy_select(vectors, threshold=0.95, block=64)
    assert selection.keep[:300].all()
    assert not selection.keep[300:].any()
    assert selection.duplicate_of[300:].tolist() == list(range(40))
    # a reversed order keeps the late copies instead
    reverse = greedy_select(vectors, threshold=0.95, order=list(range(339, -1, -1)), block=64)
    assert reverse.keep[300:].all() and not reverse.keep[:40].any()


def test_labels_make_selection_tool_aware(vectors: np.ndarray) -> None:
    labels = ["a"] * 300 + ["b"] * 40
    selection = greedy_select(vectors, threshold=0.95, labels=labels, conflict_labels=labels, block=64)
    assert selection.keep.all()
    assert sorted((a, b) for a, b, _ in selection.conflicts) == [(k, 300 + k) for k in range(40)]


def test_components_and_diversity() -> None:
    comp = components(5, np.array([0, 1, 3]), np.array([1, 2, 4]))
    assert comp.tolist() == [0, 0, 0, 3, 3]
    same = unit(np.ones((4, 3)))
    assert diversity_score(same) == pytest.approx(0.0, abs=1e-6)
    assert diversity_score(unit(np.eye(4))) == pytest.approx(1.0)


def test_embedder_caches_by_text_hash(tmp_path) -> None:  # type: ignore[no-untyped-def]
    class CountingModel:
        calls: list[list[str]] = []

        def encode(self, texts: list[str], **_: object) -> np.ndarray:
            self.calls.append(list(texts))
            return unit(np.array([[len(t), 1.0, t.count("a")] for t in texts], dtype=np.float32))

    model = CountingModel()
    store = NpyFolderStore(tmp_path / "cache")
    embedder = Embedder(store, model=model)
    first = embedder.embed(["alpha", "beta", "alpha"])
    assert model.calls == [["alpha", "beta"]]
    again = Embedder(NpyFolderStore(tmp_path / "cache"), model=model).embed(["beta", "gamma"])
    assert model.calls == [["alpha", "beta"], ["gamma"]]
    assert np.allclose(again[0], first[1])
    assert text_key("alpha") != text_key("alpha ")
    memory = MemoryStore()
    Embedder(memory, model=model).embed(["x"])
    assert list(memory.vectors) == [text_key("x")]


def test_real_model_catches_paraphrase_duplicates_and_keeps_other_intents() -> None:
    embedder = Embedder()
    texts = [
        "Refund 20 euros on payment PAY-1",  # 0
        "refund 20 euros on payment PAY-1.",  # 1 near-identical rewording -> duplicate
        "Refund 20 euros on payment PAY-1 please",  # 2 paraphrase -> duplicate
        "Cancel order ORD-7 because it arrived late",  # 3 different intent
        "What is the stock level of DSK-1040 in Seattle?",  # 4 different intent
        "Refund 35 euros on payment PAY-9",  # 5 same tool, other values: not a duplicate
    ]
    emb = embedder.embed(texts)
    assert emb.shape == (6, 384)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    selection = greedy_select(emb, threshold=0.95)
    assert selection.keep.tolist() == [True, False, False, True, True, True]
    assert selection.duplicate_of[1] == 0 and selection.duplicate_of[2] == 0
    assert embedder.stats.computed == 6
    embedder.embed(texts[:3])
    assert embedder.stats.computed == 6 and embedder.stats.cached == 3


def test_incremental_selection_matches_a_full_rerun(vectors: np.ndarray) -> None:
    from ftops.datasets.dedup import greedy_extend

    labels = [f"l{k % 3}" for k in range(len(vectors))]
    full = greedy_select(vectors, threshold=0.95, labels=labels, block=64)
    old, new = vectors[:320], vectors[320:]
    first = greedy_select(old, threshold=0.95, labels=labels[:320], block=64)
    kept_idx = np.flatnonzero(first.keep)
    extra = greedy_extend(old[kept_idx], new, threshold=0.95, kept_labels=[labels[k] for k in kept_idx],
                          new_labels=labels[320:], block=64)
    assert first.keep.tolist() == full.keep[:320].tolist()
    assert extra.tolist() == full.keep[320:].tolist()
