"""A real model server (uvicorn on 127.0.0.1, in a thread) over a micro base model and two LoRA adapters.

Built here in about a minute on CPU (only ``ml`` tests use them):

- the base: the micro model with an adapter merged in that answers "Weather in Paris?" with
  ``get_weather {"town": "Paris"}``, a call the schema refuses (``city`` is required, ``town``
  unknown): a deliberately bad model whose calls are real generations;
- ``weather``: trained on that base until it answers the same prompt with the valid
  ``get_weather {"city": "Paris"}`` (so tool calls are parsed from a real generation);
- ``rooms``: a few steps on other records, so the two adapters answer differently.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from ftops.core.ml.base_model import build_base_model
from ftops.core.ml.lora import LoraTrainConfig, train_lora
from ftops.core.records import Record
from ftops.modelserver.app import ModelServer
from ftops.modelserver.server import build_server
from tests.training.conftest import MICRO, make_records

KEY = "ms-test-key"
ALL_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def weather_record() -> Record:
    return next(r for r in make_records(24) if r.tool == "get_weather")


def bad_weather_record() -> Record:
    """The same request answered with a call its schema refuses."""
    return replace(weather_record(), expected={"calls": [{"name": "get_weather", "arguments": {"town": ["Paris"]}}]})


@dataclass
class Built:
    base: Path
    root: Path  # the adapters root the server confines lora_path to

    @property
    def weather(self) -> Path:
        return self.root / "adapters" / "weather"

    @property
    def rooms(self) -> Path:
        return self.root / "adapters" / "rooms"


@pytest.fixture(scope="session")
def built_models(tmp_path_factory: pytest.TempPathFactory) -> Built:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("modelserver")
    micro = out / "micro"
    build_base_model(micro, config=MICRO)
    base = out / "base"
    built = Built(base=base, root=out / "artifacts")
    common: dict[str, Any] = {"batch_examples": 4, "checkpoint_every": 1000, "seed": 1, "threads": 1,
                              "max_length": 256, "row_length": 256, "dropout": 0.0, "warmup_ratio": 0.0}
    # Measured: 80 epochs over 16 copies of one record make the micro model answer it with its call.
    memorize = {**common, "epochs": 80.0, "lr": 1e-2, "r": 16, "alpha": 32, "target_modules": ALL_MODULES}
    train_lora(LoraTrainConfig(base_model=str(micro), **memorize), [bad_weather_record()] * 16, [], out / "bad")
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(micro), str(out / "bad"))
    merged.merge_and_unload().save_pretrained(base)
    AutoTokenizer.from_pretrained(micro).save_pretrained(base)
    train_lora(LoraTrainConfig(base_model=str(base), **memorize), [weather_record()] * 16, [], built.weather)
    rooms = [r for r in make_records(24) if r.tool != "get_weather"]
    train_lora(LoraTrainConfig(base_model=str(base), **common, epochs=3.0, lr=2e-2, r=4, alpha=8), rooms, [],
               built.rooms)
    return built


@pytest.fixture
def models(request: pytest.FixtureRequest, built_models: Built) -> Built:
    if request.node.get_closest_marker("ml") is None:
        pytest.fail(f"{request.node.nodeid} builds models: mark it @pytest.mark.ml")
    return built_models


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # a thread cannot own signals
        return


@dataclass
class Running:
    url: str  # ends in /v1
    app: ModelServer
    server: _Server
    thread: threading.Thread

    def client(self, **kwargs: Any) -> Any:
        from openai import OpenAI

        return OpenAI(base_url=self.url, api_key=kwargs.pop("api_key", KEY), max_retries=0, **kwargs)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def start_model_server(app: Any) -> Running:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning", access_log=False,
                            loop="asyncio")
    server = _Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.02)
    assert server.started, "the model server did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    return Running(url=f"http://127.0.0.1:{port}/v1", app=app, server=server, thread=thread)


@pytest.fixture
def model_server(models: Built) -> Iterator[Running]:
    # A generous batch window: requests the tests send together must meet in one batch even on a busy machine.
    app = build_server(base_model=str(models.base), adapters_root=models.root, api_key=KEY, base_name="micro-base",
                       batch_wait_ms=300, max_batch=8, max_new_tokens=64, threads=1)
    running = start_model_server(app)
    yield running
    running.stop()
    asyncio.set_event_loop(None)
