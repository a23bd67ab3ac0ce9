"""The example search is served by pg_trgm indexes on PostgreSQL (the migration is a no-op elsewhere)."""

from __future__ import annotations

import pytest
from django.db import connection

from ftops.datasets.selectors import examples_search


@pytest.mark.django_db
def test_trigram_indexes_exist_on_postgresql_only() -> None:
    with connection.cursor() as cur:
        if connection.vendor != "postgresql":
            pytest.skip("pg_trgm indexes exist only on PostgreSQL")
        cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'datasets_trainingexample' "
                    "AND indexname LIKE %s ORDER BY indexname", ["%trgm"])
        rows = cur.fetchall()
    assert [name for name, _ in rows] == ["ix_example_explanation_trgm", "ix_example_query_trgm"]
    assert all("gin_trgm_ops" in definition and "upper(" in definition for _, definition in rows)


@pytest.mark.django_db
def test_search_plan_uses_the_trigram_index_on_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("query plans are PostgreSQL's")
    with connection.cursor() as cur:
        # An empty test table is cheapest to scan whole: make every plan but a bitmap scan look
        # dear, so the assertion is about whether the indexes can serve the LIKE at all.
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute("SET LOCAL enable_indexscan = off")
        plan = examples_search(q="refund 77").explain()
    assert "ix_example_query_trgm" in plan
    assert "ix_example_explanation_trgm" in plan
