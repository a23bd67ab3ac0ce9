"""Inputs schemathesis found that answered 500, kept as fixed regression cases.

Each one is a number past what the database column holds (PostgreSQL raised "integer out of
range", SQLite "Python int too large"); now the serializer bounds it and the answer is a 422
naming the field, before anything is written.
"""

from __future__ import annotations

from typing import Any

import pytest

from ftops.common.models import Role
from ftops.datasets.models import DatasetVersion
from ftops.evaluation.models import EvalRun

HUGE = 2**40
BEYOND_INT64 = 99_999_999_999_999_999_999


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("post", "/api/v1/datasets", {"seed": HUGE}, "seed"),
    ("post", "/api/v1/datasets", {"seed": -83641668497556635648}, "seed"),
    ("post", "/api/v1/evaluation/runs", {"suite": "x", "adapter_config": {"kind": "replay", "path": "x"},
                                         "limit": HUGE}, "limit"),
    ("post", "/api/v1/evaluation/runs", {"dataset_version": HUGE, "adapter_config": {"kind": "replay", "path": "x"}},
     "dataset_version"),
    ("get", f"/api/v1/evaluation/runs?suite={BEYOND_INT64}", None, "suite"),
])
def test_numbers_beyond_the_column_are_422_naming_the_field(make_key: Any, method: str, path: str,
                                                           body: dict[str, Any] | None, field: str) -> None:
    client, _ = make_key(*[role.value for role in Role])
    response = getattr(client, method)(path, body, format="json") if body else client.get(path)
    assert response.status_code == 422, response.content
    assert response.json()["error"]["code"] == "validation_failed"
    assert field in response.json()["error"]["fields"]
    assert (DatasetVersion.objects.count(), EvalRun.objects.count()) == (0, 0)


def test_the_largest_seed_a_column_holds_is_accepted(make_key: Any) -> None:
    client, _ = make_key(Role.ML_ORCHESTRATOR.value, Role.ADMIN.value)
    response = client.post("/api/v1/datasets", {"seed": 2**31 - 1}, format="json")
    assert response.status_code == 202, response.content
    assert DatasetVersion.objects.get().seed == 2**31 - 1
