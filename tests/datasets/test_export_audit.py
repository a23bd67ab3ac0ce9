"""Exports and downloads of a split leave audit rows with who, which version and split, and how many
rows; a refused holdout read is audited; bad text in an example is a 422, never a 500."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ftops.catalog.models import Service
from ftops.common.models import AuditAction, AuditEvent
from ftops.datasets.models import DatasetVersion, TrainingExample
from ftops.datasets.services import dataset_version_build
from tests.datasets.conftest import refund_expected
from tests.datasets.factories import build_shop

MakeKey = Callable[..., tuple[Any, Any]]


@pytest.fixture
def version(db: Any) -> DatasetVersion:
    build_shop()
    built = dataset_version_build(seed=3)
    assert built.status == DatasetVersion.Status.READY
    return built


def _rows(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def test_api_download_is_audited_with_the_row_count(version: DatasetVersion, make_key: MakeKey) -> None:
    client, key = make_key("ml_orchestrator")
    response = client.get(f"/api/v1/datasets/{version.number}/export", {"split": "train", "format": "hf"})
    assert response.status_code == 200
    lines = int(response["X-Ftops-Lines"])
    assert lines > 0
    (row,) = _rows(AuditAction.DATASET_DOWNLOADED)
    assert (row.actor, row.api_key_id, row.object_type, row.object_id) == (
        f"key:{key.prefix}", key.pk, "dataset_version", str(version.number))
    assert row.detail == {"version": version.number, "split": "train", "format": "hf", "dimension": "",
                          "via": "api", "rows": lines, "refused": int(response["X-Ftops-Refused"])}
    assert row.ip == "127.0.0.1"


def test_a_refused_holdout_download_is_audited_and_nothing_is_served(version: DatasetVersion,
                                                                    make_key: MakeKey) -> None:
    client, key = make_key("ml_orchestrator")
    response = client.get(f"/api/v1/datasets/{version.number}/export", {"split": "holdout"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    (row,) = _rows(AuditAction.HOLDOUT_EXPORT_DENIED)
    assert (row.actor, row.detail["split"], row.detail["via"]) == (f"key:{key.prefix}", "holdout", "api")
    assert _rows(AuditAction.DATASET_DOWNLOADED) == []
    admin, _ = make_key("admin")
    allowed = admin.get(f"/api/v1/datasets/{version.number}/export", {"split": "holdout"})
    assert allowed.status_code == 200
    (download,) = _rows(AuditAction.DATASET_DOWNLOADED)
    assert download.detail["split"] == "holdout" and download.detail["rows"] == int(allowed["X-Ftops-Lines"])


def test_the_command_export_is_audited_as_the_cli(version: DatasetVersion, tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    call_command("dataset_export", "--version", "latest", "--split", "test", "--format", "openai",
                 "--out", str(out), stderr=io.StringIO())
    written = len(out.read_text().splitlines())
    (row,) = _rows(AuditAction.DATASET_EXPORTED)
    assert row.actor.startswith("cli:") and row.user_id is None and row.api_key_id is None
    assert (row.detail["version"], row.detail["split"], row.detail["rows"], row.detail["via"]) == (
        version.number, "test", written, "cli")
    with pytest.raises(CommandError, match="holdout"):
        call_command("dataset_export", "--version", "latest", "--split", "holdout", "--format", "openai",
                     "--out", str(tmp_path / "h.jsonl"), stderr=io.StringIO())
    (denied,) = _rows(AuditAction.HOLDOUT_EXPORT_DENIED)
    assert denied.actor.startswith("cli:") and denied.detail["via"] == "cli"
    assert not (tmp_path / "h.jsonl").exists()


BODY = {"service": "payments", "user_query": "Refund 20 euros on pay_1", "behavior": "call"}


@pytest.mark.parametrize("expected", [
    {"calls": [{"name": "refund_payment", "arguments": {"payment_id": ["pay\x001"], "amount": [20]}}]},
    {"calls": [{"name": "refund_payment", "arguments": {"payment_id": ["pay_1"], "amount": [20]}}], "note\x00": 1},
    {"calls": [{"name": "refund_payment", "arguments": {"payment_id": ["pay_\ud800"], "amount": [20]}}]},
])
def test_nul_or_a_lone_surrogate_in_expected_is_a_422(payments: Service, make_key: MakeKey,
                                                      expected: dict[str, Any]) -> None:
    client, _ = make_key("reviewer")
    # ASCII-escaped JSON: a lone surrogate travels as the escape "\\ud800", as an attacker sends it.
    raw = json.dumps({**BODY, "expected": expected}, ensure_ascii=True)
    response = client.post("/api/v1/examples", raw, content_type="application/json")
    assert response.status_code == 422, response.content
    assert list(response.json()["error"]["fields"]) == ["expected"]
    assert TrainingExample.objects.count() == 0


def test_nul_in_messages_or_common_mistakes_is_a_422(payments: Service, make_key: MakeKey) -> None:
    client, _ = make_key("reviewer")
    body = {**BODY, "expected": refund_expected(),
            "messages": [{"role": "system", "content": "be\x00brief"}, {"role": "user", "content": BODY["user_query"]}]}
    response = client.post("/api/v1/examples", body, format="json")
    assert response.status_code == 422 and list(response.json()["error"]["fields"]) == ["messages"]
    body = {**BODY, "expected": refund_expected(), "common_mistakes": ["a\x00b"]}
    response = client.post("/api/v1/examples", body, format="json")
    assert response.status_code == 422 and list(response.json()["error"]["fields"]) == ["common_mistakes"]
    assert TrainingExample.objects.count() == 0
    ok = client.post("/api/v1/examples", {**BODY, "expected": refund_expected()}, format="json")
    assert ok.status_code == 201
