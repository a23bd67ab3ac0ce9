"""A real uvicorn gateway on 127.0.0.1 in a thread, in front of a fake OpenAI-compatible upstream."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from django.db import connection
from django.db.backends.signals import connection_created

from ftops.catalog.models import Service
from ftops.common.actors import Actor
from ftops.common.credentials import upstream_credential_set
from ftops.common.services import api_key_create
from ftops.gateway.app import GatewayApp
from ftops.gateway.recorder import CallRecorder
from ftops.interactions.models import Interaction
from registry.models import Deployment, DeploymentState, ModelVersion
from tests.gateway.fake_upstream import FakeUpstreamServer
from tests.interactions.conftest import PAYMENT_SCHEMA, add_tool


@dataclass
class Gateway:
    url: str
    app: GatewayApp
    key: str
    upstream: FakeUpstreamServer

    def client(self, **kwargs: Any) -> Any:
        from openai import OpenAI

        return OpenAI(base_url=self.url + "/v1", api_key=kwargs.pop("api_key", self.key), max_retries=0, **kwargs)

    def wait_logged(self, count: int, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        found = Interaction.objects.count()
        while found < count and time.monotonic() < deadline:
            time.sleep(0.05)
            found = Interaction.objects.count()
        self.app.recorder.flush_once()  # the arm outcomes of those calls are written too
        return found


def make_version(name: str, *, model: str = "fake-text", credential: str = "fake", status: str = "production",
                 scope: str = "enterprise", serving: dict[str, Any] | None = None) -> ModelVersion:
    semver = f"1.0.{ModelVersion.objects.count()}"
    return ModelVersion.objects.create(
        name=name, family="acme-gpt", semver=semver, base_model="gpt-base", backend="openai", scope=scope,
        status=status, serving=serving or {"kind": "openai", "credential": credential, "model": model})


def deploy(version: ModelVersion, *, scope: str = "enterprise", state: str = DeploymentState.PRODUCTION) -> Deployment:
    return Deployment.objects.create(model_version=version, scope=scope, state=state)


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # a thread cannot own signals
        return


def _sqlite_read_uncommitted(sender: Any = None, connection: Any = None, **kwargs: Any) -> None:
    if connection is not None and connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA read_uncommitted = 1")


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstreamServer]:
    server = FakeUpstreamServer().start()
    yield server
    server.stop()


@pytest.fixture
def gateway_factory(transactional_db: Any, settings: Any, tmp_path: Path,
                    fake_upstream: FakeUpstreamServer) -> Iterator[Callable[..., Gateway]]:
    settings.FTOPS_OUTBOUND_ALLOW = ["127.0.0.1/32"]
    settings.FTOPS_GATEWAY_CACHE_S = 0  # every request sees the deployments as the test left them
    settings.FTOPS_GATEWAY_RETRIES = 0
    settings.FTOPS_GATEWAY_UPSTREAM_OPTIONS = {"slow": (1, 0)}
    started: list[tuple[_Server, threading.Thread]] = []
    # SQLite's test database is in memory with a shared cache, whose table locks no busy timeout
    # covers: a test reading while the gateway's writer thread commits a batch got "database
    # table is locked". Readers in read-uncommitted mode take no table read locks.
    connection_created.connect(_sqlite_read_uncommitted)
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        _sqlite_read_uncommitted(connection=connection)

    def start(*, spool_dir: Path | None = None) -> Gateway:
        payments = Service.objects.get_or_create(name="payments", defaults={"display_name": "Payments"})[0]
        if not payments.tools.exists():
            add_tool(payments, "create_payment", PAYMENT_SCHEMA)
        system = Actor.system("test")
        upstream_credential_set(name="fake", base_url=fake_upstream.base_url, value="sk-upstream", by=system)
        upstream_credential_set(name="slow", base_url=fake_upstream.base_url, value="sk-upstream", by=system)
        key = api_key_create(name="gateway-test", roles=["gateway"]).secret
        recorder = CallRecorder(spool_dir=spool_dir or tmp_path / "spool", flush_s=0.05, batch=50)
        app = GatewayApp(recorder=recorder)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning",
                                access_log=False, loop="asyncio")
        server = _Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started, "the gateway did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        started.append((server, thread))
        return Gateway(url=f"http://127.0.0.1:{port}", app=app, key=key, upstream=fake_upstream)

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(30)
    connection_created.disconnect(_sqlite_read_uncommitted)
    asyncio.set_event_loop(None)
