from pathlib import Path
from typing import Any

import pytest

from ftops.common.actors import Actor
from ftops.common.credentials import upstream_credential_set
from ftops.common.models import UpstreamCredential
from tests.evaluation.helpers import NO_ANSWERS_FILE
from tests.evaluation.openai_server import fake_openai

__all__ = ["artifacts_in_tmp", "fake_openai", "make_credential"]


@pytest.fixture(autouse=True)
def artifacts_in_tmp(settings: Any, tmp_path: Path) -> Path:
    """Replay files must lie in the artifacts folder; tests write theirs under tmp_path."""
    settings.ARTIFACTS_DIR = tmp_path
    (tmp_path / NO_ANSWERS_FILE).write_text("")
    return tmp_path


@pytest.fixture
def make_credential(db: Any) -> Any:
    """make_credential(name, base_url, value) registers an upstream credential as an admin would."""

    def _make(name: str, base_url: str, value: str = "sk-test-upstream") -> UpstreamCredential:
        return upstream_credential_set(name=name, base_url=base_url, value=value, by=Actor.cli("admin"))[0]

    return _make
