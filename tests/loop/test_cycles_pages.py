"""The cycles page (cycles table, schedule, data hygiene section) takes a fixed number of queries
whatever the cycles, stages and hygiene runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client

from ftops.catalog.models import Service
from ftops.datasets.models import DatasetVersion
from ftops.loop.models import Cycle, CycleStage, CycleStatus, HygieneKind, HygieneRun
from tests.common.pages import get_within

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("size", [1, 8])
def test_the_cycles_page_takes_the_same_queries_whatever_the_rows(
        size: int, admin_user: Any, django_assert_max_num_queries: Any) -> None:
    slot = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
    for n in range(size):
        service = Service.objects.create(name=f"svc-{n}")
        cycle = Cycle.objects.create(scope=service.name, service=service, origin="manual",
                                     status=CycleStatus.SUCCEEDED, reason=f"cycle {n}")
        for position, stage in enumerate(("collect", "aggregate", "curate")):
            CycleStage.objects.create(cycle=cycle, name=stage, position=position)
        version = DatasetVersion.objects.create(number=n + 1, status="ready")
        for kind in HygieneKind.values:
            HygieneRun.objects.create(kind=kind, slot=slot + timedelta(days=31 * n), dataset_version=version,
                                      base_version_number=n, note=f"{kind} run {n}")
    client = Client()
    client.force_login(admin_user)
    html = get_within(client, django_assert_max_num_queries, "/loop/cycles/", 10)
    assert html.count('title="collect: ') == size
    assert html.count("refresh run ") + html.count("rotation run ") == min(2 * size, 10)
    assert 'id="hygiene-runs"' in html and f'href="/datasets/{size}/"' in html
