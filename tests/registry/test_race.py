"""100 promotions racing for one scope on PostgreSQL: one production version, 99 clear 409s."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import IntegrityError, connection, transaction

from ftops.common.actors import Actor
from ftops.common.errors import Conflict
from registry.models import Deployment, DeploymentState, ModelVersion, VersionStatus
from registry.services import model_version_approve, model_version_promote, model_version_register

N = 100
CONNECTIONS = 20  # the server allows ~100 connections, shared with other test runs


@pytest.mark.django_db(transaction=True)
def test_concurrent_promotions_leave_one_production_version_per_scope() -> None:
    if connection.vendor != "postgresql":
        # SQLite serialises writers on a file lock: there is no race for the index to settle.
        pytest.skip("real concurrent writers need PostgreSQL")
    ids = []
    for i in range(N):
        version = model_version_register(base_model="/models/race", artifact_path=f"/a/{i}",
                                         by=Actor(label="registrar"))
        ModelVersion.objects.filter(pk=version.pk).update(status=VersionStatus.GATES_PASSED)
        model_version_approve(model_version_id=version.pk, by=Actor(label="approver"), comment="race")
        ids.append(version.pk)
    queue = list(ids)
    lock = threading.Lock()
    outcomes: Counter[str] = Counter()
    winners: list[int] = []
    barrier = threading.Barrier(CONNECTIONS)

    def worker() -> None:
        try:
            connection.ensure_connection()
            barrier.wait()
            while True:
                with lock:
                    if not queue:
                        return
                    version_id = queue.pop()
                try:
                    # Every caller decided while production was empty (the API's "replaces": null).
                    model_version_promote(model_version_id=version_id, by=Actor(label="promoter"),
                                          expected_current=None)
                    result = "won"
                    winners.append(version_id)
                except Conflict:
                    result = "409"
                except Exception as exc:  # pragma: no cover - shown in the assertion
                    result = f"{type(exc).__name__}: {exc}"
                with lock:
                    outcomes[result] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == Counter({"won": 1, "409": N - 1})
    production = list(Deployment.objects.filter(state=DeploymentState.PRODUCTION).values_list("scope",
                                                                                               "model_version_id"))
    assert production == [("enterprise", winners[0])]
    assert ModelVersion.objects.filter(status=VersionStatus.PRODUCTION).count() == 1
    # The guard is the database's: a second production row for the scope cannot be written at all.
    with pytest.raises(IntegrityError), transaction.atomic():
        Deployment.objects.create(model_version_id=ids[0] if ids[0] != winners[0] else ids[1], scope="enterprise",
                                  state=DeploymentState.PRODUCTION)
