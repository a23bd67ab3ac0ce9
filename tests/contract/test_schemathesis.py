"""The API keeps the contract its OpenAPI schema states, checked against a live server.

schemathesis takes the schema /api/v1/schema serves (built in-process at collection so there is
one pytest test per operation; a test checks the server serves the same) and sends every operation a
bounded number of generated requests, valid and invalid, with a key that holds every role, over
a seeded database. A test fails on any 5xx and on any answer whose status code is documented but
whose body breaks the documented schema.

The server is pytest-django's live server (a real HTTP server in a thread, on a free port), started
once for the module over one seeded database, so operations also see each other's writes.
Celery publishes to an in-memory broker that nothing consumes, as a web tier does whose workers
live elsewhere: a generated request that starts a training or evaluation run must not run it
inside this test.

Budget: ``FTOPS_CONTRACT_EXAMPLES`` generated requests per operation (20 by default; the whole
module takes about a minute on two cores). Generation is deterministic, so CI sees the same cases
every run; raise the number and set ``FTOPS_CONTRACT_RANDOM=1`` locally to search harder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
import schemathesis
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connection
from django.test import override_settings
from django.test.utils import setup_databases, teardown_databases
from hypothesis import HealthCheck, settings
from pytest_django.live_server_helper import LiveServer
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from ftops.celery import app as celery_app
from ftops.common.models import Role
from ftops.common.services import api_key_create
from tests.celery_fixtures import _use_broker

pytestmark = [pytest.mark.contract]

EXAMPLES = int(os.environ.get("FTOPS_CONTRACT_EXAMPLES", "20"))
# CI replays the same cases each run; FTOPS_CONTRACT_RANDOM=1 explores new ones (a local search).
DETERMINISTIC = os.environ.get("FTOPS_CONTRACT_RANDOM") != "1"


def no_unplanned_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """``not_a_server_error``, except a 503 the application chose: the documented envelope with
    its own code (a feature not configured here, a write it could not make durable). Anything
    else at 5xx, the catch-all "server_error" included, fails."""
    if response.status_code == 503:
        try:
            code = response.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = None
        if isinstance(code, str) and code != "server_error":
            return None
    return not_a_server_error(ctx, response, case)


CHECKS = [no_unplanned_server_error, response_schema_conformance]
# The catalog import fetches a URL; generated hosts would be looked up and contacted. Point every
# generated URL at a closed loopback port: the code path is the same, and no traffic leaves.
CLOSED_LOOPBACK_URL = "http://127.0.0.1:9/tools.json"

CONFIG = schemathesis.Config.from_dict({
    "generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": DETERMINISTIC, "database": "none"},
    # The coverage phase enumerates every boundary of every field: thousands of requests here.
    "phases": {"coverage": {"enabled": False}},
})


def _seed() -> tuple[str, int]:
    """A small but complete world: a catalog, examples, a dataset version, an evaluation with
    failures and a review queue; returns the secret and id of a key that holds every role."""
    from ftops.catalog.models import Service
    from ftops.evaluation.models import EvalSuite
    from review.services import review_items_enqueue_failures
    from tests.datasets.factories import build_shop
    from tests.evaluation.factories import dataset_version, scored_run
    from tests.review.factories import make_interaction

    build_shop()
    version = dataset_version(1)  # with the "payments" service it builds
    payments = Service.objects.get(name="payments")
    suite = EvalSuite.objects.create(name="contract", kind="dataset", dataset_version=version, split="test")
    scored_run(suite, failed=["1", "2"], name="baseline")
    for failure in ("type_error", "unknown_tool", "missing_required"):
        make_interaction(payments, failure_kind=failure)
    make_interaction(payments, is_failure=False)
    review_items_enqueue_failures()
    # A second key for the revoke operation to hit instead of the one the run uses.
    api_key_create(name="contract-spare", roles=[Role.INGEST.value])
    issued = api_key_create(name="contract", roles=[role.value for role in Role])
    return issued.secret, issued.api_key.pk


@contextmanager
def _test_database() -> Iterator[None]:
    """The test database, made here when pytest-django made none.

    pytest-django creates it only if a collected test is marked for the database, and marking
    these tests would make it run them among the other database tests, splitting this module
    around them while its server and seed are up. So the tests stay unmarked (they run together,
    after the database tests), and run alone they make the database themselves.
    """
    test_name = connection.creation._get_test_db_name()  # type: ignore[attr-defined]
    if connection.settings_dict["NAME"] == test_name:
        yield
        return
    created = setup_databases(verbosity=0, interactive=False, aliases={DEFAULT_DB_ALIAS: True})
    try:
        yield
    finally:
        teardown_databases(created, verbosity=0)


@pytest.fixture(scope="module")
def api(django_db_setup: Any, django_db_blocker: Any) -> Iterator[dict[str, Any]]:
    """A live server over one seeded database for the whole module.

    pytest-django's ``live_server`` fixture flushes and would need a reseed before every
    operation's test (most of the run's time); this starts the same server class once, and
    flushes once at the end so later tests find the empty database they expect.
    """
    with django_db_blocker.unblock(), _test_database():
        secret, key_id = _seed()
        server = LiveServer("localhost")
        server._live_server_modified_settings.enable()
        previous = celery_app.conf.broker_url, celery_app.conf.task_always_eager
        _use_broker(celery_app, "memory://", eager=False)
        try:
            with override_settings(CELERY_TASK_ALWAYS_EAGER=False):
                yield {"url": server.url, "headers": {"Authorization": f"Bearer {secret}"}, "key_id": key_id}
        finally:
            _use_broker(celery_app, previous[0], eager=previous[1])
            server._live_server_modified_settings.disable()
            server.stop()
            call_command("flush", interactive=False, verbosity=0)


def _generated_schema() -> dict[str, Any]:
    """The document /api/v1/schema serves, built in-process so pytest can parametrize one test per
    operation at collection time (schemathesis' fixture-based loader needs a live server first);
    ``test_the_server_serves_this_schema`` proves the two are the same."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    document = SchemaGenerator().get_schema(request=None, public=True)
    parsed: dict[str, Any] = json.loads(OpenApiJsonRenderer().render(document))
    return parsed


DOCUMENT = _generated_schema()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


def test_the_server_serves_this_schema(api: dict[str, Any]) -> None:
    served = requests.get(f"{api['url']}/api/v1/schema?format=json", headers=api["headers"], timeout=60)
    assert served.status_code == 200
    assert served.json() == DOCUMENT


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_api_keeps_its_documented_contract(case: Any, api: dict[str, Any]) -> None:
    if case.operation.path == "/api/v1/catalog/import" and isinstance(case.body, dict) and "url" in case.body:
        case.body["url"] = CLOSED_LOOPBACK_URL
    if case.operation.path == "/api/v1/keys/{key_id}/revoke" and case.path_parameters.get("key_id") == api["key_id"]:
        case.path_parameters["key_id"] = api["key_id"] - 1  # the spare key, not the one in use
    case.call_and_validate(base_url=api["url"], headers=api["headers"], checks=CHECKS, timeout=60)


def test_seeded_objects_conform_to_their_schemas(api: dict[str, Any]) -> None:
    """Generated ids rarely name a real row; walk the seeded lists and read each object they
    name, so every detail answer of a real object is checked too."""
    session = requests.Session()
    session.headers.update(api["headers"])

    def check(path: str, method: str = "GET", **parameters: Any) -> Any:
        operation = schema[path][method]
        case = operation.Case(path_parameters=parameters or None)
        response = case.call_and_validate(base_url=api["url"], session=session, checks=CHECKS, timeout=60)
        assert response.status_code == 200, (path, parameters, response.text[:300])
        return response.json()

    lists = ["/api/v1/keys", "/api/v1/audit", "/api/v1/catalog/services", "/api/v1/examples", "/api/v1/datasets",
             "/api/v1/evaluation/suites", "/api/v1/evaluation/runs", "/api/v1/interactions",
             "/api/v1/review/items", "/api/v1/training/runs", "/api/v1/curation/triggers"]
    pages = {path: check(path) for path in lists}
    for path in lists[:-1]:
        assert set(pages[path]) == {"count", "next", "previous", "results"}, path

    for service in pages["/api/v1/catalog/services"]["results"]:
        tools = check("/api/v1/catalog/services/{service}/tools", service=service["name"])
        assert tools["count"] > 0
        for tool in tools["results"][:2]:
            check("/api/v1/catalog/services/{service}/tools/{tool}/versions", service=service["name"],
                  tool=tool["name"])
    for example in pages["/api/v1/examples"]["results"][:5]:
        check("/api/v1/examples/{example_id}", example_id=example["id"])
    for version in pages["/api/v1/datasets"]["results"]:
        check("/api/v1/datasets/{number}", number=version["number"])
    for run in pages["/api/v1/evaluation/runs"]["results"]:
        check("/api/v1/evaluation/runs/{run_id}", run_id=run["id"])
        assert check("/api/v1/evaluation/runs/{run_id}/failures", run_id=run["id"])["count"] == 2
    for interaction in pages["/api/v1/interactions"]["results"]:
        check("/api/v1/interactions/{external_id}", external_id=interaction["id"])
    items = pages["/api/v1/review/items"]["results"]
    assert items, "the seed queues failures for review"
    for item in items:
        check("/api/v1/review/items/{item_id}", item_id=item["id"])
