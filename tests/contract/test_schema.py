"""The generated OpenAPI document describes paged lists and the error envelope as the API sends them."""

from __future__ import annotations

from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

# Every list endpoint that pages with the default paginator (curation/triggers is a short plain list).
PAGED = {
    ("/api/v1/audit", "get"), ("/api/v1/keys", "get"), ("/api/v1/catalog/services", "get"),
    ("/api/v1/catalog/services/{service}/tools", "get"),
    ("/api/v1/catalog/services/{service}/tools/{tool}/versions", "get"),
    ("/api/v1/examples", "get"), ("/api/v1/datasets", "get"), ("/api/v1/evaluation/suites", "get"),
    ("/api/v1/evaluation/runs", "get"), ("/api/v1/evaluation/runs/{run_id}/failures", "get"),
    ("/api/v1/interactions", "get"), ("/api/v1/training/runs", "get"), ("/api/v1/review/items", "get"),
}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else schema


def _ok_schema(spec: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    code = min(c for c in operation["responses"] if c.startswith("2"))
    return _resolve(spec, operation["responses"][code]["content"]["application/json"]["schema"])


def test_paged_lists_document_the_envelope_and_their_query_parameters(spec: dict[str, Any]) -> None:
    for path, method in PAGED:
        operation = spec["paths"][path][method]
        body = _ok_schema(spec, operation)
        assert set(body["properties"]) == {"count", "next", "previous", "results"}, path
        assert body["properties"]["results"]["type"] == "array", path
        assert body["properties"]["next"]["nullable"] is True, path
        query = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
        assert {"limit", "offset"} <= query, path


def test_no_other_operation_answers_a_bare_array_except_the_triggers(spec: dict[str, Any]) -> None:
    arrays = {(path, method) for path, ops in spec["paths"].items() for method, op in ops.items()
              if "application/json" in op["responses"][min(c for c in op["responses"] if c.startswith("2"))]
              .get("content", {}) and _ok_schema(spec, op).get("type") == "array"}
    assert arrays == {("/api/v1/curation/triggers", "get")}


def test_errors_are_documented_with_the_envelope(spec: dict[str, Any]) -> None:
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert set(error["properties"]["error"]["properties"]) == {"code", "message", "fields"}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert {"401", "403", "429"} <= codes, (path, method)
            if "{" in path:
                assert "404" in codes, (path, method)
            if method in {"post", "patch", "put", "delete"}:
                assert "409" in codes, (path, method)
            if "requestBody" in op:
                assert {"400", "422"} <= codes, (path, method)
    keys_create = spec["paths"]["/api/v1/keys"]["post"]["responses"]
    assert keys_create["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
