"""The int8 embedding backend: built offline from the packaged model, cached by hash, close to float."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ftops.datasets import embeddings
from ftops.datasets.dedup import greedy_select
from ftops.datasets.embeddings import (
    INT8_MODEL_NAME,
    MODEL_NAME,
    Embedder,
    Int8Model,
    MemoryStore,
    configured_backend,
    int8_model_dir,
    text_key,
)

# Not the calibration sentences: requests like the ones we curate, plus a long one past 128 tokens.
SAMPLE = [
    "Where is my order ORD-55120? It was due on Monday",
    "cancel order ORD-90211 because the address is wrong",
    "Refund 35 GBP on payment PAY-402918, it was a double charge",
    "how many oak desks are left in the Austin warehouse",
    "create a normal ticket about calendar sync",
    "Email invoice INV-7781 to lukas.77@example.com",
    "sorry to bother you, who is the customer with email priya.12@example.com?",
    "Bitte stornieren Sie meine Bestellung 4471",
    "The shipment left the depot at 06:40 and should reach the customer before noon on Thursday. " * 8,
]


def test_backend_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FTOPS_EMBEDDING_BACKEND", raising=False)
    assert configured_backend() == "float"
    monkeypatch.setenv("FTOPS_EMBEDDING_BACKEND", " INT8 ")
    assert configured_backend() == "int8"
    monkeypatch.setenv("FTOPS_EMBEDDING_BACKEND", "fp16")
    with pytest.raises(ValueError, match="float, int8"):
        configured_backend()


class FakeModel:
    def __init__(self, name: str) -> None:
        self.ftops_name = name
        self.calls = 0

    def encode(self, texts: list[str], **_: object) -> np.ndarray:
        self.calls += 1
        rows = np.array([[len(t), 1.0, 2.0] for t in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_cache_keys_name_the_backend_so_vectors_never_mix() -> None:
    store = MemoryStore()
    float_model, int8_model = FakeModel(MODEL_NAME), FakeModel(INT8_MODEL_NAME)
    Embedder(store, model=float_model).embed(["refund PAY-1"])
    Embedder(store, model=int8_model).embed(["refund PAY-1"])
    # the int8 embedder did not reuse the float vector: both are stored, under different keys
    assert (float_model.calls, int8_model.calls) == (1, 1)
    assert set(store.vectors) == {text_key("refund PAY-1"), text_key("refund PAY-1", INT8_MODEL_NAME)}
    Embedder(store, model=FakeModel(INT8_MODEL_NAME)).embed(["refund PAY-1"])
    assert len(store.vectors) == 2


def fake_source(folder: Path, weights: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "config.json", "sentence_bert_config.json"):
        (folder / name).write_text("{}")
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def test_export_cache_is_keyed_by_source_hash_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[Path] = []

    def fake_build(source: Path, out: Path) -> dict[str, Any]:
        builds.append(source)
        (out / "model.onnx").write_bytes(b"onnx")
        return {"max_seq_length": 256, "build_seconds": 0.0}

    monkeypatch.setattr(embeddings, "build_int8", fake_build)
    root = tmp_path / "models"
    one = fake_source(tmp_path / "one", b"weights-1")
    first = int8_model_dir(source=one, root=root)
    again = int8_model_dir(source=one, root=root)
    assert first == again and len(builds) == 1
    assert (first / "model.onnx").read_bytes() == b"onnx"
    assert not [p for p in root.iterdir() if p.name.startswith(".build-")]  # no scratch folder left behind
    # other weights (a new package version) -> another folder, built anew
    two = fake_source(tmp_path / "two", b"weights-2")
    assert int8_model_dir(source=two, root=root) != first and len(builds) == 2
    # a new export recipe invalidates the cached build too
    monkeypatch.setattr(embeddings, "INT8_RECIPE", "another-recipe")
    assert int8_model_dir(source=one, root=root) != first and len(builds) == 3
    int8_model_dir(source=one, root=root, rebuild=True)
    assert len(builds) == 4


def test_failed_build_falls_back_to_float_with_a_log_line(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken(**_: object) -> Path:
        raise RuntimeError("onnx export exploded")

    float_model = FakeModel(MODEL_NAME)
    monkeypatch.setattr(embeddings, "_models", {})
    monkeypatch.setattr(embeddings, "int8_model_dir", broken)
    monkeypatch.setattr(embeddings, "load_float_model", lambda device=None: float_model)
    with caplog.at_level(logging.WARNING, logger="ftops.datasets.embeddings"):
        model = embeddings.get_model(backend="int8")
    assert model is float_model
    assert "falling back to the float model" in caplog.text and "onnx export exploded" in caplog.text
    assert Embedder(model=model).model_name == MODEL_NAME  # float vectors keep float keys


@pytest.fixture(scope="module")
def int8_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real export into a fresh folder, with the hub off and every outbound connection refused."""

    def no_network(*_: object, **__: object) -> None:
        raise AssertionError("the int8 build tried to reach the network")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        mp.setattr(socket, "create_connection", no_network)
        mp.setattr(socket.socket, "connect", no_network)
        yield int8_model_dir(root=tmp_path_factory.mktemp("embedding-models"))


@pytest.mark.ml
def test_offline_build_is_close_to_float_and_reused(int8_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meta = json.loads((int8_folder / "meta.json").read_text())
    assert meta["fingerprint"] == embeddings.source_fingerprint() and meta["max_seq_length"] == 256
    # the encoder's weights are int8; the 47 MB word-embedding table stays float (it is a lookup, not a product)
    assert (int8_folder / "model.onnx").stat().st_size < 65_000_000
    int8 = Int8Model(int8_folder, threads=1)
    float_model = embeddings.load_float_model()
    got = int8.encode(SAMPLE, batch_size=4)  # batches mix short and long texts
    want = float_model.encode(SAMPLE, normalize_embeddings=True, convert_to_numpy=True)
    assert got.shape == (len(SAMPLE), 384) and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    cosine = (got * want).sum(axis=1)
    assert cosine.min() >= 0.99, cosine
    # one-word texts have the fewest tokens to average the quantisation noise over: measured 0.975-0.995
    words = ["ok", "thanks", "hi", "cancel"]
    short = (int8.encode(words) * float_model.encode(words, normalize_embeddings=True)).sum(axis=1)
    assert short.min() >= 0.96, short
    # batch composition does not change a text's vector beyond the quantisation noise
    alone = np.stack([int8.encode([t])[0] for t in SAMPLE[:3]])
    assert ((alone * got[:3]).sum(axis=1) >= 0.995).all()
    # paraphrase duplicates are still found, other intents kept (as with the float model)
    texts = ["Refund 20 euros on payment PAY-1", "refund 20 euros on payment PAY-1.",
             "Refund 20 euros on payment PAY-1 please", "Cancel order ORD-7 because it arrived late"]
    assert greedy_select(int8.encode(texts), threshold=0.95).keep.tolist() == [True, False, False, True]

    # reused: asking again finds the cached export instead of building
    def no_build(*_: object) -> dict[str, Any]:
        raise AssertionError("rebuilt although the cached export matches")

    monkeypatch.setattr(embeddings, "build_int8", no_build)
    before = (int8_folder / "model.onnx").stat().st_mtime_ns
    assert int8_model_dir(root=int8_folder.parent) == int8_folder
    assert (int8_folder / "model.onnx").stat().st_mtime_ns == before


@pytest.mark.ml
def test_embedder_uses_the_int8_backend_when_configured(
        int8_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTOPS_EMBEDDING_BACKEND", "int8")
    monkeypatch.setenv("FTOPS_EMBEDDING_MODELS_DIR", str(int8_folder.parent))
    monkeypatch.setattr(embeddings, "_models", {})
    embedder = Embedder()
    emb = embedder.embed(SAMPLE[:3] + SAMPLE[:1])
    assert isinstance(embedder.model, Int8Model) and embedder.model.folder == int8_folder
    assert embedder.model_name == INT8_MODEL_NAME and embedder.stats.computed == 3
    assert np.allclose(emb[0], emb[3])
