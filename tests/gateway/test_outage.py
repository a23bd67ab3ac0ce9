"""The database goes away mid-traffic: every call is still answered, and every call is logged."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from django.db import connection

from ftops.interactions.models import Interaction
from tests.gateway.conftest import deploy, make_version

USER = [{"role": "user", "content": "Charge 5 dollars"}]


def _admin(settings_dict: dict[str, Any]) -> psycopg.Connection[Any]:
    return psycopg.connect(host=settings_dict["HOST"] or "127.0.0.1", port=int(settings_dict["PORT"] or 5432),
                           user=settings_dict["USER"] or "postgres", password=settings_dict["PASSWORD"] or None,
                           dbname="postgres", autocommit=True)


@pytest.mark.services
def test_calls_survive_a_database_outage(gateway_factory: Any, settings: Any, tmp_path: Any) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("drops PostgreSQL connections (run with DATABASE_URL=postgres://...)")
    settings.FTOPS_GATEWAY_CACHE_S = 60  # keys and routes keep serving from memory while the database is away
    deploy(make_version("acme-gpt-v1.0.0", model="fake-tools"))
    gw = gateway_factory(spool_dir=tmp_path / "spool")
    client = gw.client(timeout=30)
    answered: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            try:
                answered.append(client.chat.completions.create(model="ftops/payments", messages=USER).id)
            except BaseException as exc:  # counted below: an outage must not fail a call
                failures.append(exc)
            time.sleep(0.005)

    client.chat.completions.create(model="ftops/payments", messages=USER)  # warm the caches
    warm = 1
    senders = [threading.Thread(target=traffic) for _ in range(4)]
    for sender in senders:
        sender.start()
    name = connection.settings_dict["NAME"]
    with _admin(connection.settings_dict) as admin:
        time.sleep(0.5)
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                      "AND pid <> pg_backend_pid()", [name])
        during = len(answered)
        time.sleep(2.0)
        during = len(answered) - during
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        time.sleep(0.5)
    stop.set()
    for sender in senders:
        sender.join(30)
    connection.close()  # this thread's connection was terminated too

    assert failures == []
    assert during > 0, "no traffic was sent while the database was away"
    assert gw.app.recorder.spooled > 0, "the outage never reached the writer"
    total = warm + len(answered)
    assert gw.wait_logged(total, timeout=60) == total
    assert set(answered) <= set(Interaction.objects.values_list("external_id", flat=True))
    assert list((tmp_path / "spool").glob("*.jsonl")) == []
