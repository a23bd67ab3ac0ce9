"""The loop's summary selectors for the home dashboard."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from ftops.loop.models import Cycle, CycleStatus
from ftops.loop.selectors import cycles_attention

pytestmark = pytest.mark.django_db


def test_cycles_attention_counts_running_cycles_and_the_week_s_failures(django_assert_num_queries: Any) -> None:
    now = timezone.now()
    assert cycles_attention(now=now) == {"running": 0, "failed": 0}
    Cycle.objects.create(scope="payments", status=CycleStatus.RUNNING, origin="manual")
    Cycle.objects.create(scope="enterprise", status=CycleStatus.FAILED, origin="manual", error="boom")
    Cycle.objects.create(scope="orders", status=CycleStatus.FAILED, origin="schedule", error="boom")
    old = Cycle.objects.create(scope="orders", status=CycleStatus.FAILED, origin="manual")
    Cycle.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=8))
    Cycle.objects.create(scope="inventory", status=CycleStatus.SUCCEEDED, origin="manual")
    with django_assert_num_queries(1):
        assert cycles_attention(now=now) == {"running": 1, "failed": 2}
    assert cycles_attention(now=now, days=9) == {"running": 1, "failed": 3}
