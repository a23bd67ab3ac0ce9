"""The API keeps the contract its OpenAPI schema states, checked against a live server.

schemathesis reads the schema the server serves at /api/v1/schema and sends every operation a
bounded number of generated requests, valid and invalid, with a key that holds every role, over
a seeded database. A test fails on any 5xx and on any answer whose status code is documented but
whose body breaks the documented schema.

The server is pytest-django's ``live_server`` (a real HTTP server in a thread, on a free port).
Celery publishes to an in-memory broker that nothing consumes, as a web tier does whose workers
live elsewhere: a generated request that starts a training or evaluation run must not run it
inside this test.

Budget: ``FTOPS_CONTRACT_EXAMPLES`` generated requests per operation (15 by default; the whole
module takes about a minute on two cores). Generation is deterministic, so CI sees the same cases
every run; raise the number and set ``FTOPS_CONTRACT_RANDOM=1`` locally to search harder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from django.test import override_settings
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from ftops.celery import app as celery_app
from ftops.common.models import Role
from ftops.common.services import api_key_create
from tests.celery_fixtures import _use_broker

pytestmark = [pytest.mark.contract]

EXAMPLES = int(os.environ.get("FTOPS_CONTRACT_EXAMPLES", "15"))
# CI replays the same cases each run; FTOPS_CONTRACT_RANDOM=1 explores new ones (a local search).
DETERMINISTIC = os.environ.get("FTOPS_CONTRACT_RANDOM") != "1"
CHECKS = [not_a_server_error, response_schema_conformance]
# The catalog import fetches a URL; generated hosts would be looked up and contacted. Point every
# generated URL at a closed loopback port: the code path is the same, and no traffic leaves.
CLOSED_LOOPBACK_URL = "http://127.0.0.1:9/tools.json"

CONFIG = schemathesis.Config.from_dict({
    "generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": DETERMINISTIC, "database": "none"},
    # The coverage phase enumerates every boundary of every field: thousands of requests here.
    "phases": {"coverage": {"enabled": False}},
})


def _seed(tmp_path: Path) -> str:
    """A small but complete world: a catalog, examples, a dataset version, an evaluation with
    failures and a review queue; returns the secret of a key that holds every role."""
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
    return api_key_create(name="contract", roles=[role.value for role in Role]).secret


@pytest.fixture
def api(live_server: Any, transactional_db: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:
    secret = _seed(tmp_path)
    previous = celery_app.conf.broker_url, celery_app.conf.task_always_eager
    _use_broker(celery_app, "memory://", eager=False)
    try:
        with override_settings(CELERY_TASK_ALWAYS_EAGER=False):
            yield {"url": live_server.url, "headers": {"Authorization": f"Bearer {secret}"}}
    finally:
        _use_broker(celery_app, previous[0], eager=previous[1])


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
