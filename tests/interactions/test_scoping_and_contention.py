"""Idempotency scoped to the key (issue 10 item 9) and contention at insert (item 4).

The opposite-order race needs PostgreSQL (SQLite serialises writers); the rest runs on both.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from django.db import OperationalError, connection

from ftops.interactions import services
from ftops.interactions.models import IngestBatch, Interaction

URL = "/api/v1/interactions"


def post(client: Any, body: Any, url: str = URL, **headers: Any) -> Any:
    return client.post(url, data=json.dumps(body), content_type="application/json", **headers)


# --- item 9: ids are scoped to the sending key ---------------------------------------------------


def test_another_key_replaying_an_id_neither_learns_it_nor_blocks_it(
    catalog: Any, payload: Any, make_key: Any
) -> None:
    first, key_a = make_key("ingest", name="team-a")
    second, key_b = make_key("ingest", name="team-b")
    assert post(first, payload("order-42", user_feedback=5)).status_code == 201

    # Same id, other body: a new interaction for the second key, not a 409 that would reveal it.
    response = post(second, payload("order-42", user_feedback=1))
    assert response.status_code == 201, response.content
    assert response.json()["replayed"] is False
    # Same id, same body as the first key sent: still new (a replay would say "it exists").
    third, key_c = make_key("ingest", name="team-c")
    response = post(third, payload("order-42", user_feedback=5))
    assert (response.status_code, response.json()["replayed"]) == (201, False)

    rows = dict(Interaction.objects.filter(external_id="order-42").values_list("api_key_id", "user_feedback"))
    assert rows == {key_a.pk: 5, key_b.pk: 1, key_c.pk: 5}
    # Each key reads its own row; the first key's replays and conflicts are unchanged.
    assert second.get(f"{URL}/order-42").json()["user_feedback"] == 1
    assert first.get(f"{URL}/order-42").json()["user_feedback"] == 5
    assert post(first, payload("order-42", user_feedback=5)).status_code == 200
    assert post(first, payload("order-42", user_feedback=2)).status_code == 409


def test_reading_another_keys_interaction_is_a_plain_404_and_audited(
    catalog: Any, payload: Any, make_key: Any
) -> None:
    from ftops.common.models import AuditEvent

    first, _ = make_key("ingest", name="team-a")
    second, _ = make_key("ingest", name="team-b")
    assert post(first, payload("order-7")).status_code == 201
    probe = second.get(f"{URL}/order-7")
    missing = second.get(f"{URL}/order-8")
    assert (probe.status_code, missing.status_code) == (404, 404)
    # The same body for both: the probe learns nothing...
    assert probe.json()["error"]["message"].replace("7", "8") == missing.json()["error"]["message"]
    # ...but the probe of an existing id leaves an audit row, and the missing id none.
    rows = AuditEvent.objects.filter(action="access.not_found")
    assert [(r.object_type, r.object_id) for r in rows] == [("interaction", "order-7")]


def post_async(client: Any, body: Any, capture: Any, **headers: Any) -> Any:
    # The batch's task is published on commit; the test's transaction never commits, so run
    # the callbacks (in-process, eager) when the request is done.
    with capture(execute=True):
        return post(client, body, f"{URL}?async=1", **headers)


def test_queued_batches_are_scoped_to_the_key_too(
    catalog: Any, payload: Any, make_key: Any, django_capture_on_commit_callbacks: Any
) -> None:
    first, _ = make_key("ingest", name="team-a")
    second, _ = make_key("ingest", name="team-b")
    body = [payload("q-1"), payload("q-2")]
    one = post_async(first, body, django_capture_on_commit_callbacks)
    two = post_async(second, body, django_capture_on_commit_callbacks)
    assert (one.status_code, two.status_code) == (202, 202)
    assert one.json()["id"] != two.json()["id"]  # the same content from another key is its own batch
    assert Interaction.objects.filter(external_id="q-1").count() == 2


# --- item 6 (service level): the batch key finds the first batch --------------------------------


def test_same_batch_key_finds_the_first_batch_and_other_content_is_409(
    catalog: Any, payload: Any, make_key: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client, _ = make_key("ingest")
    body = [payload("k-1"), payload("k-2")]
    capture = django_capture_on_commit_callbacks
    first = post_async(client, body, capture, HTTP_IDEMPOTENCY_KEY="batch-7")
    again = post_async(client, body, capture, HTTP_IDEMPOTENCY_KEY="batch-7")
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["id"] == first.json()["id"]
    assert (again["Idempotent-Replayed"], again.json()["status"]) == ("true", "succeeded")
    assert IngestBatch.objects.count() == 1

    other = post_async(client, [payload("k-3")], capture, HTTP_IDEMPOTENCY_KEY="batch-7")
    assert other.status_code == 409
    assert other.json()["error"]["fields"] == {"Idempotency-Key": ["already used with other content"]}
    # Without a header the content is the key: an identical retry is the same batch.
    no_key = post_async(client, body, capture)
    assert post_async(client, body, capture).json()["id"] == no_key.json()["id"]
    assert IngestBatch.objects.count() == 2


# --- item 4: contention ends in a bounded retry, then JSON with Retry-After ---------------------


class FakeDeadlock(Exception):
    sqlstate = "40P01"


def deadlock() -> OperationalError:
    error = OperationalError("deadlock detected")
    error.__cause__ = FakeDeadlock()
    return error


def test_a_deadlock_is_retried_and_then_stored(
    catalog: Any, payload: Any, make_key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = make_key("ingest")
    real, failures = services._insert, [2]
    monkeypatch.setattr(services, "_backoff", lambda attempt: None)

    def flaky(*args: Any) -> Any:
        if failures[0]:
            failures[0] -= 1
            raise deadlock()
        return real(*args)

    monkeypatch.setattr(services, "_insert", flaky)
    response = post(client, [payload("d-1"), payload("d-2")])
    assert response.status_code == 201, response.content
    assert Interaction.objects.count() == 2


def test_contention_that_outlasts_the_retries_is_a_json_503_with_retry_after(
    catalog: Any, payload: Any, make_key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = make_key("ingest")
    monkeypatch.setattr(services, "_backoff", lambda attempt: None)
    calls: list[int] = []

    def always(*args: Any) -> Any:
        calls.append(1)
        raise deadlock()

    monkeypatch.setattr(services, "_insert", always)
    response = post(client, [payload("d-1")])
    assert (response.status_code, response["Retry-After"]) == (503, "2")
    assert response.json()["error"]["code"] == "ingest_busy"
    assert len(calls) == services.STORE_ATTEMPTS
    assert Interaction.objects.count() == 0


def test_repeated_unique_races_are_a_json_409_with_retry_after(
    catalog: Any, payload: Any, make_key: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import IntegrityError

    client, _ = make_key("ingest")

    def race(*args: Any) -> Any:
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(services, "_insert", race)
    response = post(client, [payload("r-1")])
    assert (response.status_code, response["Retry-After"]) == (409, "1")
    assert response.json()["error"]["code"] == "ingest_contended"


def test_other_database_errors_are_not_retried(catalog: Any, payload: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def broken(*args: Any) -> Any:
        calls.append(1)
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(services, "_insert", broken)
    with pytest.raises(OperationalError):
        services.interactions_ingest(payloads=[payload("x-1")])
    assert calls == [1]


@pytest.mark.services
@pytest.mark.parametrize("use_copy", [True, False])
def test_opposite_order_overlapping_batches_never_deadlock(
    transactional_db: Any, catalog: Any, payload: Any, make_key: Any, monkeypatch: pytest.MonkeyPatch,
    use_copy: bool,
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the deadlock needs PostgreSQL's row-level waits (run with DATABASE_URL=postgres://…)")
    monkeypatch.setattr(services, "COPY_ON_POSTGRES", use_copy)
    _, key = make_key("ingest")
    errors: list[BaseException] = []
    for race in range(8):
        ids = [f"race{race}-{i:03d}" for i in range(200)]
        bodies = [[payload(i) for i in ids], [payload(i) for i in reversed(ids)]]
        start = threading.Barrier(2)
        results: list[Any] = [None, None]

        def send(which: int, bodies: list[list[dict[str, Any]]] = bodies, start: threading.Barrier = start,
                 results: list[Any] = results) -> None:
            from django.db import connections

            try:
                start.wait(timeout=30)
                results[which] = services.interactions_ingest(payloads=bodies[which], api_key=key)
            except BaseException as exc:  # reported below, with the race number
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=send, args=(which,)) for which in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == [], f"race {race}: {errors!r}"
        assert results[0].created + results[1].created == 200
        assert results[0].replayed + results[1].replayed == 200
        assert Interaction.objects.filter(external_id__startswith=f"race{race}-").count() == 200
