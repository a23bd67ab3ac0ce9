"""CappedPaginator: exact below the cap, "more than N" above it, without counting every row."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ftops.common.models import AuditEvent
from ftops.common.selectors import CappedPaginator


def _events(n: int) -> None:
    AuditEvent.objects.bulk_create([AuditEvent(action=f"bench.{i}", object_type="t", object_id=str(i))
                                    for i in range(n)])


@pytest.mark.django_db
def test_below_the_cap_the_count_is_exact() -> None:
    _events(12)
    paginator = CappedPaginator(AuditEvent.objects.order_by("id"), 5, cap=20)
    assert (paginator.count, paginator.num_pages, paginator.capped) == (12, 3, False)
    assert [e.object_id for e in paginator.get_page(3).object_list] == ["10", "11"]


@pytest.mark.django_db
def test_above_the_cap_it_stops_counting() -> None:
    _events(12)
    paginator = CappedPaginator(AuditEvent.objects.order_by("id"), 5, cap=10)
    with CaptureQueriesContext(connection) as ctx:
        assert (paginator.count, paginator.num_pages, paginator.capped) == (10, 2, True)
    assert len(ctx.captured_queries) == 1
    assert "LIMIT 11" in ctx.captured_queries[0]["sql"]
    page = paginator.get_page(2)
    assert ([e.object_id for e in page.object_list], page.has_next()) == (["5", "6", "7", "8", "9"], False)
