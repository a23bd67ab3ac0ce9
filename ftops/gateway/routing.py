"""Where a request goes: the ``model`` field to a version, the canary split, cached reads.

``model`` is one of
  * ``ftops/<service>``: what serves the service (its own deployment, else the enterprise
    one), split between production and the canary by a stable hash of the conversation;
  * ``production`` or ``canary``: that arm of the service named by the ``x-ftops-service``
    header or ``metadata.service``;
  * a version's name (``acme-tiny-v1.2.0``): that version, if it is approved or live.

Reads run in a worker thread and are cached for ``FTOPS_GATEWAY_CACHE_S``; when a refresh
fails (the database is briefly away) the last answer keeps serving, so an outage of the
database does not become an outage of the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import DatabaseError, OperationalError, close_old_connections, connection

from ftops.common.models import ApiKey, Role
from ftops.common.selectors import api_key_for_secret
from ftops.gateway.models import Arm
from ftops.gateway.selectors import ServiceRoutes, Target, service_names, service_routes, version_target
from registry.models import ENTERPRISE_SCOPE

logger = logging.getLogger(__name__)

V = TypeVar("V")
SERVICE_PREFIX = "ftops/"
ALIASES = (Arm.PRODUCTION.value, Arm.CANARY.value)


class RouteError(Exception):
    """A request the gateway cannot route; ``status`` and ``code`` become the OpenAI error."""

    def __init__(self, status: int, code: str, message: str, *, param: str | None = "model") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param


# SQLite (the embedded default) lets one writer in at a time and answers "database table is
# locked" / "database is locked" to the others instead of waiting; a short backoff lets a
# shadow comparison or a recorder batch land behind the writer that holds the lock.
LOCKED_RETRIES = 8
LOCKED_BACKOFF_S = 0.05


def _is_locked(error: DatabaseError) -> bool:
    return connection.vendor == "sqlite" and "locked" in str(error).lower()


def _db_read(function: Callable[[], V]) -> V:
    """Run an ORM call in this worker thread; a broken connection is closed so the next call reconnects."""
    close_old_connections()
    for attempt in range(LOCKED_RETRIES + 1):
        try:
            return function()
        except OperationalError as error:
            if attempt < LOCKED_RETRIES and _is_locked(error):
                time.sleep(LOCKED_BACKOFF_S * (attempt + 1))
                continue
            with contextlib.suppress(Exception):
                connection.close()
            raise
        except DatabaseError:
            with contextlib.suppress(Exception):
                connection.close()
            raise
    raise AssertionError("unreachable")  # the loop returns or raises


class DatabaseThreads:
    """The few threads the gateway's ORM reads run in, each with its own connection.

    Its own pool rather than asyncio's default one so that shutdown can close every thread's
    connection (a connection left open keeps PostgreSQL from dropping or renaming the database).
    """

    def __init__(self, workers: int = 4) -> None:
        self.workers = workers
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gateway-db")

    async def run(self, function: Callable[[], V]) -> V:
        return await asyncio.get_running_loop().run_in_executor(self.executor, _db_read, function)

    def close(self) -> None:
        barrier = threading.Barrier(self.workers, timeout=5)

        def close_here() -> None:
            with contextlib.suppress(Exception):
                connection.close()
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()  # holds this thread so the next task lands on another one

        for _ in range(self.workers):
            self.executor.submit(close_here)
        self.executor.shutdown(wait=True)


class TTLCache(Generic[V]):
    """Async read-through cache: one load per key at a time, stale values served when a load fails.

    A value that expired less than a TTL ago is served at once while one background load
    refreshes it (stale-while-revalidate): the requests in flight when an entry expires do not
    all wait for a database read, which at concurrency 32 showed as a p95 spike every TTL. A
    change (a revoked key, a new deployment) is still seen within two TTLs. ``None`` (an
    unknown key, an unknown version) is never served stale, and with a TTL of 0 every call loads.
    """

    def __init__(self, ttl_s: float, threads: DatabaseThreads) -> None:
        self.ttl_s = ttl_s
        self.threads = threads
        self._values: dict[Any, tuple[float, V]] = {}
        self._loading: dict[Any, asyncio.Future[V]] = {}
        self._refreshing: set[asyncio.Task[Any]] = set()

    async def get(self, key: Any, load: Callable[[], V]) -> V:
        now = time.monotonic()
        cached = self._values.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        pending = self._loading.get(key)
        if cached is not None and cached[1] is not None and self.ttl_s > 0 and now - cached[0] < self.ttl_s:
            if pending is None:
                self._loading[key] = asyncio.get_running_loop().create_future()  # taken before the task runs
                task = asyncio.get_running_loop().create_task(self._load(key, load, cached, now))
                self._refreshing.add(task)
                task.add_done_callback(self._refreshed)
            return cached[1]
        if pending is not None:
            return await asyncio.shield(pending)
        return await self._load(key, load, cached, now)

    def _refreshed(self, task: asyncio.Task[Any]) -> None:
        self._refreshing.discard(task)
        if not task.cancelled():
            task.exception()  # a failed refresh is logged in _load and the stale value kept

    async def _load(self, key: Any, load: Callable[[], V], cached: tuple[float, V] | None, now: float) -> V:
        future = self._loading.get(key)
        if future is None:
            future = self._loading[key] = asyncio.get_running_loop().create_future()
        try:
            value = await self.threads.run(load)
        except Exception as exc:
            if cached is not None:
                logger.warning("gateway: refreshing %r failed (%s); serving the cached answer", key, exc)
                value = cached[1]
                self._values[key] = (now + min(self.ttl_s, 1.0), value)
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
                raise
        else:
            self._values[key] = (time.monotonic() + self.ttl_s, value)
        finally:
            self._loading.pop(key, None)
        future.set_result(value)
        return value

    def peek(self, key: Any) -> V | None:
        """The cached value while it is fresh, else None (no load, no await: for the hot path)."""
        cached = self._values.get(key)
        return cached[1] if cached is not None and cached[0] > time.monotonic() else None

    def clear(self) -> None:
        self._values.clear()


@dataclass(frozen=True)
class Decision:
    service: str
    target: Target
    fallback: Target | None  # production, when the target is the canary and fallback is on
    sticky_key: str


def canary_bucket(deployment_id: int, sticky_key: str) -> float:
    """A stable number in [0, 1) per (canary deployment, conversation): the same conversation
    stays on one arm for the whole canary, and a new canary draws its sample afresh."""
    digest = hashlib.blake2b(f"{deployment_id}:{sticky_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class Router:
    def __init__(self, *, ttl_s: float, canary_fallback: bool, threads: DatabaseThreads) -> None:
        self.canary_fallback = canary_fallback
        self._routes: TTLCache[ServiceRoutes] = TTLCache(ttl_s, threads)
        self._versions: TTLCache[Target | None] = TTLCache(ttl_s, threads)
        self._services: TTLCache[set[str]] = TTLCache(ttl_s, threads)
        self._keys: TTLCache[ApiKey | None] = TTLCache(ttl_s, threads)

    def clear(self) -> None:
        for cache in (self._routes, self._versions, self._services, self._keys):
            cache.clear()

    async def api_key(self, secret: str) -> ApiKey | None:
        """The active key for a secret (cached by its hash, so revocation takes effect within the TTL)."""
        digest = hashlib.sha256(secret.encode()).hexdigest()
        key = await self._keys.get(digest, lambda: api_key_for_secret(secret))
        entry = self._keys._values.get(digest)
        if key is None and entry is not None:
            # An unknown key is remembered for a second only: enough that a flood of bad keys
            # costs one query per key per second, short enough that a new key works at once.
            self._keys._values[digest] = (min(entry[0], time.monotonic() + 1.0), None)
        return key

    @staticmethod
    def may_call(key: ApiKey) -> bool:
        return key.has_role(Role.GATEWAY)

    async def decide(self, *, model: str, service_hint: str, sticky_key: str) -> Decision:
        if model.startswith(SERVICE_PREFIX):
            service = model[len(SERVICE_PREFIX):]
            return await self._for_service(service, arm=None, sticky_key=sticky_key)
        if model in ALIASES:
            if not service_hint:
                raise RouteError(400, "service_required",
                                 f"model '{model}' needs a service: send the header x-ftops-service or "
                                 "metadata.service, or use model 'ftops/<service>'")
            return await self._for_service(service_hint, arm=model, sticky_key=sticky_key)
        target = await self._versions.get(("version", model), lambda: version_target(name=model))
        if target is None:
            raise RouteError(404, "model_not_found",
                             f"the model '{model}' does not exist or may not serve; use 'ftops/<service>', "
                             "'production', 'canary' or an approved version's name (GET /v1/models lists them)")
        service = service_hint or (target.scope if target.scope != ENTERPRISE_SCOPE else "")
        if not service:
            raise RouteError(400, "service_required",
                             f"{target.name} serves every service: name the one this call is for with the header "
                             "x-ftops-service or metadata.service")
        await self._known_service(service)
        return Decision(service=service, target=target, fallback=None, sticky_key=sticky_key)

    async def _known_service(self, service: str) -> None:
        if service not in await self._services.get("services", service_names):
            raise RouteError(404, "model_not_found",
                             f"no service named '{service}' in the catalog (GET /v1/models lists what is served)")

    async def _for_service(self, service: str, *, arm: str | None, sticky_key: str) -> Decision:
        await self._known_service(service)
        routes = await self._routes.get(("service", service), lambda: service_routes(service=service))
        production, canary = routes.production, routes.canary
        if arm == Arm.CANARY:
            if canary is None:
                raise RouteError(404, "model_not_found", f"no canary is running for {service}")
            return Decision(service=service, target=canary, fallback=self._fallback(production), sticky_key=sticky_key)
        if arm is None and canary is not None and routes.canary_deployment_id is not None:
            share = routes.canary_share
            if production is None or (share > 0 and (canary_bucket(routes.canary_deployment_id, sticky_key)
                                                     if sticky_key else random.random()) < share):
                return Decision(service=service, target=canary, fallback=self._fallback(production),
                                sticky_key=sticky_key)
        if production is None:
            raise RouteError(404, "model_not_found", f"no model version is in production for {service}")
        return Decision(service=service, target=production, fallback=None, sticky_key=sticky_key)

    def _fallback(self, production: Target | None) -> Target | None:
        return production if self.canary_fallback else None
