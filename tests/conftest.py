"""Shared fixtures. App-specific fixtures live in tests/<app>/conftest.py."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from ftops.common.services import api_key_create

PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a local service is down, unless CI demands the services (then fail)."""
    if port_open(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("FTOPS_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " and FTOPS_REQUIRE_SERVICES=1")
    pytest.skip(message)


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    # Parallel local runs need distinct Redis databases, as they need distinct test databases.
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{os.environ.get('FTOPS_TEST_REDIS_DB', '15')}"


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def make_key(db: Any) -> Callable[..., tuple[APIClient, Any]]:
    """make_key("ingest", "reviewer") -> (client authenticated with a new key, ApiKey)."""

    def _make(*roles: str, name: str = "test-key") -> tuple[APIClient, Any]:
        issued = api_key_create(name=name, roles=list(roles))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
        return client, issued.api_key

    return _make


@pytest.fixture
def admin_user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("admin", "admin@example.com", "ftops-admin-pw", is_staff=True,
                                                 is_superuser=True)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """Each test starts with an empty cache: failed-authentication counters, aggregated audit
    rows and cached dashboards must not leak from one test into the next."""
    from django.core.cache import cache

    cache.clear()
