"""The MLflow call site: with MLFLOW_TRACKING_URI set, registration and promotion hand the
mirror a record after commit (the mirror module itself is tested with a real server)."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from typing import Any

import pytest

from registry import services
from registry.mlflow_sync import model_version_mirror_now
from tests.registry.factories import APPROVER, approved, version

pytestmark = pytest.mark.django_db


@dataclass
class FakeRecord:
    name: str
    version: str
    metrics: dict[str, float]
    tags: dict[str, str]
    production: bool


@pytest.fixture
def mirrored(monkeypatch: pytest.MonkeyPatch, settings: Any) -> list[FakeRecord]:
    seen: list[FakeRecord] = []
    module = types.ModuleType("registry.mlflow_mirror")
    module.MirrorRecord = FakeRecord  # type: ignore[attr-defined]
    module.mirror_model_version = seen.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "registry.mlflow_mirror", module)
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:5000"
    return seen


def test_registration_and_promotion_are_mirrored_after_commit(
        mirrored: list[FakeRecord], django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        mv = version()
    assert [(r.name, r.version, r.production) for r in mirrored] == [("ftops-tiny-base", "1.0.0", False)]
    assert mirrored[0].tags["ftops.model_version_id"] == str(mv.pk)
    live = approved(artifact_path="/a/2")
    mirrored.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.model_version_promote(model_version_id=live.pk, by=APPROVER)
    assert [(r.version, r.production, r.tags["ftops.status"]) for r in mirrored] == [("1.0.1", True, "production")]


def test_nothing_is_mirrored_without_a_tracking_uri(mirrored: list[FakeRecord], settings: Any,
                                                     django_capture_on_commit_callbacks: Any) -> None:
    settings.MLFLOW_TRACKING_URI = ""
    with django_capture_on_commit_callbacks(execute=True):
        mv = version()
    assert mirrored == [] and model_version_mirror_now(model_version_id=mv.pk) is False


def test_a_failing_mirror_never_fails_the_release(mirrored: list[FakeRecord], monkeypatch: pytest.MonkeyPatch,
                                                  django_capture_on_commit_callbacks: Any) -> None:
    def broken(record: Any) -> None:
        raise ConnectionError("mlflow is down")

    monkeypatch.setattr(sys.modules["registry.mlflow_mirror"], "mirror_model_version", broken)
    with django_capture_on_commit_callbacks(execute=True):
        mv = version()
    assert model_version_mirror_now(model_version_id=mv.pk) is False
