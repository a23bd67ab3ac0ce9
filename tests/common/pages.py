"""Helper for page tests: GET a page within a query budget (pytest-django's max-queries check)."""

from __future__ import annotations

from typing import Any


def get_within(client: Any, max_queries: Any, url: str, limit: int, **params: Any) -> str:
    """GET ``url`` in at most ``limit`` queries (``max_queries`` is the ``django_assert_max_num_queries``
    fixture; its failure lists the SQL with ``-v``); the page must answer 200. Returns the body.

    Page tests call it at two data sizes with the same limit: a page that does N+1 queries fails.
    """
    with max_queries(limit, info=url):
        response = client.get(url, params)
    assert response.status_code == 200, (url, response.status_code)
    return str(response.content.decode())
