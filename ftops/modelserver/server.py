"""Building and running the model server from settings (``manage.py model-server``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftops.modelserver.app import ModelServer, ServerOptions
from ftops.modelserver.engine import Engine, EngineConfig


def build_server(*, base_model: str, adapters_root: Path, api_key: str, base_name: str = "", max_batch: int = 16,
                 batch_wait_ms: float = 5.0, max_adapters: int = 32, max_new_tokens: int = 512,
                 device: str = "auto", threads: int = 0, constrained: bool = False) -> ModelServer:
    engine = Engine(EngineConfig(base_model=base_model, adapters_root=Path(adapters_root), base_name=base_name,
                                 max_new_tokens=max_new_tokens, max_adapters=max_adapters, device=device,
                                 threads=threads))
    return ModelServer(engine, ServerOptions(api_key=api_key, batch_wait_ms=batch_wait_ms, max_batch=max_batch,
                                             default_max_tokens=min(256, max_new_tokens), constrained=constrained))


def server_from_settings(**overrides: object) -> ModelServer:
    from django.conf import settings

    options: dict[str, object] = {
        "base_model": str(settings.FTOPS_MODEL_SERVER_BASE_MODEL),
        "adapters_root": Path(settings.FTOPS_MODEL_SERVER_ADAPTERS_ROOT),
        "api_key": settings.FTOPS_MODEL_SERVER_API_KEY,
        "max_batch": settings.FTOPS_MODEL_SERVER_MAX_BATCH,
        "batch_wait_ms": float(settings.FTOPS_MODEL_SERVER_BATCH_WAIT_MS),
        "max_adapters": settings.FTOPS_MODEL_SERVER_MAX_ADAPTERS,
        "max_new_tokens": settings.FTOPS_MODEL_SERVER_MAX_TOKENS,
        "constrained": bool(getattr(settings, "FTOPS_MODEL_SERVER_CONSTRAINED", False)),
    }
    options.update({k: v for k, v in overrides.items() if v not in (None, "")})
    return build_server(**options)  # type: ignore[arg-type]


class ThreadedServer:
    """An ASGI app under uvicorn on 127.0.0.1 in a daemon thread (the demo and the tests use it)."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0, start_timeout_s: float = 120.0) -> None:
        import threading
        import time

        import uvicorn

        class _Server(uvicorn.Server):
            def install_signal_handlers(self) -> None:  # a thread cannot own signals
                return

        config = uvicorn.Config(app, host=host, port=port, lifespan="on", log_level="warning", access_log=False,
                                loop="asyncio")
        self.server = _Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="uvicorn-in-thread")
        self.thread.start()
        deadline = time.monotonic() + start_timeout_s
        while not self.server.started and time.monotonic() < deadline and self.thread.is_alive():
            time.sleep(0.02)
        if not self.server.started:
            self.stop()
            raise RuntimeError("the server did not start")
        self.port = int(self.server.servers[0].sockets[0].getsockname()[1])
        self.url = f"http://{host}:{self.port}"

    def stop(self, timeout_s: float = 30.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)
