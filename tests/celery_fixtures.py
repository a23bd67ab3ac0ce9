"""A real Celery worker for queue tests (import the fixtures into a test module).

``celery_worker`` starts ``celery -A ftops worker -Q ingestion,default --pool=solo`` as a
subprocess against Redis db 15 and the *test* database of this pytest run, and points the
test process's Celery app at the same broker, so ``task.delay()`` (and
``transaction.on_commit`` enqueues) really travel through Redis to the worker.

Only meaningful on PostgreSQL: an in-memory SQLite test database cannot be shared with
another process, so the fixture skips there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUEUES = "ingestion,default"
START_TIMEOUT_S = 60


@dataclass
class WorkerHandle:
    process: subprocess.Popen[str]
    broker_url: str
    database_url: str
    output: list[str] = field(default_factory=list)

    def log(self) -> str:
        return "".join(self.output[-200:])

    def kill(self) -> None:
        """SIGKILL: no shutdown, no acknowledgement, exactly what a crashed host looks like."""
        self.process.kill()
        self.process.wait(timeout=10)

    def wait_for(self, predicate: Callable[[], bool], *, timeout: float = 60.0, what: str = "the condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.process.poll() is not None:
                pytest.fail(f"the Celery worker exited ({self.process.returncode}) before {what}:\n{self.log()}")
            time.sleep(0.2)
        pytest.fail(f"timed out after {timeout}s waiting for {what}; worker log:\n{self.log()}")


def shared_database_url() -> str:
    from django.db import connection

    sd = connection.settings_dict
    user = quote(sd.get("USER") or "", safe="")
    password = quote(sd.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = sd.get("HOST") or "127.0.0.1"
    port = sd.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{sd['NAME']}"


def _use_broker(app: Any, broker_url: str | None, eager: bool) -> None:
    app.conf.broker_url = broker_url
    app.conf.task_always_eager = eager
    # Connection and producer pools are built on first use and remember the broker; drop
    # them so the next send uses the URL just set.
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


@pytest.fixture
def celery_worker(transactional_db: Any, redis_url: str, tmp_path: Path) -> Iterator[WorkerHandle]:
    from django.db import connection

    from ftops.celery import app

    if connection.vendor != "postgresql":
        pytest.skip("the real-worker test shares the test database: run it on PostgreSQL (DATABASE_URL=postgres://…)")
    handle = start_worker(redis_url=redis_url, tmp_path=tmp_path)
    process = handle.process
    saved = (app.conf.broker_url, app.conf.task_always_eager)
    try:
        _use_broker(app, redis_url, eager=False)
        yield handle
    finally:
        _use_broker(app, saved[0], eager=saved[1])
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def start_worker(*, redis_url: str, tmp_path: Path, extra_env: dict[str, str] | None = None,
                 queues: str = QUEUES, label: str = "test") -> WorkerHandle:
    """Start one more worker process against this run's test database and ``redis_url``.

    ``queues`` is the worker's ``-Q`` list ("training", "curation", ...); ``label`` names it in
    the worker's hostname and in failure messages.
    """
    database_url = shared_database_url()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ftops.settings",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": redis_url,
        "FTOPS_VAR_DIR": str(tmp_path / "var"),
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    env.pop("REDIS_URL", None)
    name = f"ftops-{label}-{uuid.uuid4().hex[:8]}@%h"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "ftops", "worker", "-Q", queues, "--concurrency=1", "--pool=solo",
         "--loglevel=INFO", "-n", name, "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert process.stdout is not None
    handle = WorkerHandle(process=process, broker_url=redis_url, database_url=database_url)
    stream = process.stdout

    def pump() -> None:
        for line in stream:
            handle.output.append(line)

    threading.Thread(target=pump, daemon=True).start()
    handle.wait_for(lambda: any(" ready." in line for line in handle.output), timeout=START_TIMEOUT_S,
                    what=f"worker {label} ({queues}) to report ready")
    return handle


@pytest.fixture
def celery_workers(transactional_db: Any, redis_url: str, tmp_path: Path) -> Iterator[Callable[..., WorkerHandle]]:
    """A factory: ``celery_workers(FTOPS_INGEST_LEASE_S="3")`` starts a worker with extra settings.

    For tests that kill workers and start new ones. The test process's Celery app sends to the
    same Redis database; every worker still alive at the end is stopped.
    """
    from django.db import connection

    from ftops.celery import app

    if connection.vendor != "postgresql":
        pytest.skip("the real-worker test shares the test database: run it on PostgreSQL (DATABASE_URL=postgres://…)")
    # Messages left over from an earlier run in this Redis database would reach the new workers.
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    started: list[WorkerHandle] = []
    saved = (app.conf.broker_url, app.conf.task_always_eager)

    def start(**extra_env: str) -> WorkerHandle:
        handle = start_worker(redis_url=redis_url, tmp_path=tmp_path, extra_env=extra_env)
        started.append(handle)
        return handle

    _use_broker(app, redis_url, eager=False)
    try:
        yield start
    finally:
        _use_broker(app, saved[0], eager=saved[1])
        for handle in started:
            if handle.process.poll() is None:
                handle.process.terminate()
                try:
                    handle.process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    handle.kill()
