"""The loop takes over the trigger table with its rows: nothing is copied, nothing lost."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


@pytest.mark.django_db(transaction=True)
def test_trigger_rows_survive_the_move_to_the_loop(transactional_db: Any) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([("loop", None)])  # back to datasets owning TriggerEvent (datasets 0006 unapplied too)
    old = executor.loader.project_state(("datasets", "0005_example_search_trigram")).apps
    Service = old.get_model("catalog", "Service")
    service = Service.objects.create(name="payments")
    event = old.get_model("datasets", "TriggerEvent").objects.create(
        kind="error_pattern", service=service, fingerprint="payments:refund:missing_required", reason="10 similar")
    assert "datasets_triggerevent" in connection.introspection.table_names()

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    from ftops.loop.models import TriggerEvent

    tables = connection.introspection.table_names()
    assert "loop_triggerevent" in tables and "datasets_triggerevent" not in tables
    moved = TriggerEvent.objects.get()
    assert (moved.pk, moved.service_id, moved.fingerprint, moved.reason) == (
        event.pk, service.pk, "payments:refund:missing_required", "10 similar")
