"""The queue search: a case-insensitive substring of the request or the tool name, on both
backends; on PostgreSQL the trigram indexes of migration 0003 serve the SQL Django writes."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from review.models import ReviewItem
from review.selectors import queue_summary, review_queue
from review.services import review_items_enqueue_failures
from tests.review.factories import make_interaction


def _ids(q: str) -> list[str]:
    return [it.interaction.external_id for it in review_queue(status="all", q=q).select_related("interaction")]


def test_search_matches_substrings_of_the_request_and_the_tool_in_any_case(payments: Any, alice_actor: Any) -> None:
    make_interaction(payments, external_id="a", query="Refund the Parcel of order 42")
    make_interaction(payments, external_id="b", query="where is my parcel?",
                     calls=[{"name": "get_order", "arguments": {"order_id": "o1"}}])
    make_interaction(payments, external_id="c", query="change my e-mail",
                     calls=[{"name": "update_customer", "arguments": {"customer": {"id": 1}}}])
    review_items_enqueue_failures()
    assert sorted(_ids("PARCEL")) == ["a", "b"]
    assert _ids("cel of ord") == ["a"]
    assert _ids("ET_ORD") == ["b"]  # the tool name
    assert _ids("_customer") == ["c"]
    assert _ids("zz") == [] and _ids("%") == []
    assert queue_summary(filters={"status": "all", "q": "parcel"}, actor=alice_actor).total == 2


def test_like_wildcards_in_the_search_are_literal(payments: Any) -> None:
    make_interaction(payments, external_id="pct", query="refund 100% of pay_1")
    make_interaction(payments, external_id="plain", query="refund 100 of pay_2")
    review_items_enqueue_failures()
    assert _ids("100%") == ["pct"]
    assert sorted(_ids("pay_")) == ["pct", "plain"]
    assert _ids("pay%1") == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="trigram indexes are PostgreSQL's")
def test_postgresql_serves_the_search_from_the_trigram_indexes(payments: Any) -> None:
    make_interaction(payments, external_id="x", query="refund the parcel")
    review_items_enqueue_failures()
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexname LIKE %s ORDER BY 1",
                       [ReviewItem._meta.db_table, "%trgm"])
        assert [r[0] for r in cursor.fetchall()] == ["ix_review_query_trgm", "ix_review_tool_trgm"]
        # The plan of the query Django writes (not a hand-written one), with scans priced out
        # so the planner shows whether the indexes can serve it at all on a small table.
        sql, params = review_queue(status="all", q="parcel").query.sql_with_params()
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")  # the newest-first B-tree scan, filtered
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(r[0] for r in cursor.fetchall())
    assert "ix_review_query_trgm" in plan and "ix_review_tool_trgm" in plan, plan
