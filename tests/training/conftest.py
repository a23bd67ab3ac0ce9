"""Fixtures for training tests: a micro base model, its tokenizer alone, records, dataset versions.

``micro_base`` trains a model (about 15 s on a busy machine): only tests marked ``ml`` use
it. A test that needs a tokenizer takes ``micro_tokenizer`` (no model); one that only stores
a base model's name takes ``base_path`` (nothing is built).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ftops.common.actors import Actor
from ftops.core.ml.base_model import BaseModelConfig, build_base_model, build_tokenizer
from ftops.core.records import Record

# Who creates and cancels runs in these tests (the services audit every such write).
TESTER = Actor(label="test")

MICRO = BaseModelConfig(seed=0, vocab_size=400, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2,
                        drill_steps=3, drill_batch=16, corpus_steps=4, batch_examples=16, row_length=256,
                        time_budget_s=120.0, threads=1)

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["c", "f"]}},
                   "required": ["city"]}}}
BOOK = {"type": "function", "function": {
    "name": "book_room", "description": "Book a meeting room.",
    "parameters": {"type": "object", "properties": {"room": {"type": "string"}, "hours": {"type": "integer"}},
                   "required": ["room", "hours"]}}}
CITIES = ("Paris", "Oslo", "Lima", "Rome", "Kyiv", "Lagos", "Quito", "Perth")
ROOMS = ("Atlas", "Birch", "Cedar", "Delta")


@pytest.fixture(scope="session")
def micro_base_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("micro-base") / "model"
    build_base_model(out, config=MICRO)
    return out


@pytest.fixture
def micro_base(request: pytest.FixtureRequest, micro_base_built: Path) -> Path:
    """The built micro model; a test that asks for it must be marked ``ml`` (it trains one)."""
    if request.node.get_closest_marker("ml") is None:
        pytest.fail(f"{request.node.nodeid} builds a model: mark it @pytest.mark.ml, or take base_path "
                    "(a name only) or micro_tokenizer (a tokenizer only)")
    return micro_base_built


@pytest.fixture(scope="session")
def micro_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the micro model's kind of tokenizer (BPE, chat template) and no model."""
    out = tmp_path_factory.mktemp("micro-tokenizer")
    build_tokenizer([], vocab_size=MICRO.vocab_size, seed=MICRO.seed).save_pretrained(out)
    return out


@pytest.fixture
def base_path(tmp_path: Path) -> Path:
    """A base model's name for runs that are created, claimed or cancelled but never trained."""
    return tmp_path / "base-model-never-built"


def make_records(n: int = 24, *, service: str = "weather", seed: int = 0) -> list[Record]:
    """Small call/ask/abstain records over two tools (deterministic)."""
    records = []
    for i in range(n):
        city = CITIES[(i + seed) % len(CITIES)]
        room = ROOMS[(i + seed) % len(ROOMS)]
        kind = i % 6
        expected: dict[str, Any]
        if kind in (0, 1, 2):
            messages = [{"role": "user", "content": f"Weather in {city}?"}]
            expected = {"calls": [{"name": "get_weather", "arguments": {"city": [city]}}]}
            behavior, tool = "call", "get_weather"
        elif kind == 3:
            messages = [{"role": "user", "content": f"Book {room} for {i % 5 + 1} hours"}]
            expected = {"calls": [{"name": "book_room", "arguments": {"room": [room], "hours": [i % 5 + 1]}}]}
            behavior, tool = "call", "book_room"
        elif kind == 4:
            messages = [{"role": "user", "content": "Book a room please"}]
            expected = {"required_fields": ["room", "hours"], "question": "Which room, and for how many hours?"}
            behavior, tool = "ask_for_details", "book_room"
        else:
            messages = [{"role": "user", "content": "Order me a pizza"}]
            expected = {"reason": "None of the available tools can do that."}
            behavior, tool = "abstain", ""
        records.append(Record(id=f"{service}-{seed}-{i}", service=service, tool=tool, messages=messages,
                              tools=[WEATHER, BOOK], behavior=behavior, expected=expected, split="train",
                              meta={"source": "correction" if i == 7 else "manual"}))
    return records


@pytest.fixture
def records() -> list[Record]:
    return make_records()


@pytest.fixture
def make_dataset_version(db: Any) -> Callable[..., Any]:
    """make_dataset_version(train=[Record], validation=[Record], test=[Record]) -> ready DatasetVersion."""
    from ftops.catalog.models import Service, Tool, ToolSchemaVersion
    from ftops.datasets.models import DatasetMembership, DatasetVersion, TrainingExample

    counter = {"n": 0}

    def _make(*, train: list[Record], validation: list[Record] | None = None, test: list[Record] | None = None,
              status: str = "ready") -> DatasetVersion:
        counter["n"] += 1
        version = DatasetVersion.objects.create(number=counter["n"] + 100, status=status, seed=0)
        position = 0
        for split, recs in (("train", train), ("validation", validation or []), ("test", test or [])):
            for record in recs:
                service, _ = Service.objects.get_or_create(name=record.service)
                tool = None
                for spec in record.tools:
                    fn = spec["function"]
                    t, created = Tool.objects.get_or_create(service=service, name=fn["name"],
                                                            defaults={"description": fn.get("description", "")})
                    if created:
                        v = ToolSchemaVersion.objects.create(
                            tool=t, number=1, parameters=fn["parameters"],
                            content_hash=hashlib.sha256(fn["name"].encode()).hexdigest())
                        Tool.objects.filter(pk=t.pk).update(current_version=v)
                    if fn["name"] == record.tool:
                        tool = t
                example = TrainingExample.objects.create(
                    service=service, tool=tool, user_query=record.user_query, messages=record.messages,
                    tools=[t["function"]["name"] for t in record.tools], behavior=record.behavior,
                    expected=record.expected, source=record.meta.get("source", "manual"), quality="high",
                    content_hash=hashlib.sha256(f"{split}{record.id}".encode()).hexdigest())
                snapshot = {**record.to_dict(), "split": split}
                DatasetMembership.objects.create(version=version, example=example, split=split,
                                                 dimension=record.dimension, position=position, snapshot=snapshot)
                position += 1
        return version

    return _make


FAST_LORA = {"epochs": 2.0, "lr": 5e-3, "batch_examples": 4, "checkpoint_every": 3, "seed": 3, "threads": 1,
             "max_length": 256, "row_length": 256}
