"""The router's read-through cache: stale-while-revalidate, coalesced loads, failures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from ftops.gateway.routing import DatabaseThreads, TTLCache


@pytest.fixture
def threads() -> Iterator[DatabaseThreads]:
    pool = DatabaseThreads(workers=2)
    yield pool
    pool.executor.shutdown(wait=True)


def test_an_expired_value_is_served_while_one_refresh_runs(threads: DatabaseThreads) -> None:
    cache: TTLCache[str] = TTLCache(0.2, threads)
    loads: list[int] = []

    def load() -> str:
        time.sleep(0.05)
        loads.append(1)
        return f"v{len(loads)}"

    async def main() -> tuple[str, list[str], str]:
        first = await cache.get("k", load)
        await asyncio.sleep(0.25)  # expired, within a TTL of expiry: served stale
        stale = await asyncio.gather(*(cache.get("k", load) for _ in range(10)))
        await asyncio.sleep(0.1)  # the single refresh landed
        return first, list(stale), await cache.get("k", load)

    first, stale, fresh = asyncio.run(main())
    assert first == "v1" and stale == ["v1"] * 10 and fresh == "v2"
    assert len(loads) == 2


def test_long_expired_and_none_values_are_loaded_before_answering(threads: DatabaseThreads) -> None:
    cache: TTLCache[str | None] = TTLCache(0.1, threads)
    values = iter([None, "created", "old", "new"])

    async def main() -> list[str | None]:
        out = [await cache.get("key", lambda: next(values))]
        await asyncio.sleep(0.15)
        out.append(await cache.get("key", lambda: next(values)))  # None is never served stale
        out.append(await cache.get("other", lambda: next(values)))
        await asyncio.sleep(0.25)  # more than a TTL past expiry: waits for the load
        out.append(await cache.get("other", lambda: next(values)))
        return out

    assert asyncio.run(main()) == [None, "created", "old", "new"]


def test_a_failed_load_keeps_the_last_value_and_a_first_failure_raises(threads: DatabaseThreads) -> None:
    cache: TTLCache[str] = TTLCache(0.05, threads)
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) > 1:
            raise OSError("database away")
        return "kept"

    def broken() -> str:
        raise OSError("database away")

    async def main() -> list[str]:
        out = [await cache.get("k", flaky)]
        await asyncio.sleep(0.2)  # long expired: a synchronous load, which fails
        out.append(await cache.get("k", flaky))
        with pytest.raises(OSError):
            await cache.get("never-loaded", broken)
        return out

    assert asyncio.run(main()) == ["kept", "kept"]
