"""``manage.py release``: the same services as the API, as the terminal user."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from registry.models import ModelVersion, VersionStatus
from tests.registry.factories import approved, force_status, version

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("release", *args, stdout=out)
    return out.getvalue()


def test_list_approve_promote_and_rollback_from_the_terminal() -> None:
    old = approved()
    run("--as", "alice", "promote", old.name)
    new = force_status(version(artifact_path="/a/2"), VersionStatus.GATES_PASSED)
    assert "ftops-tiny-base-v1.0.1" in run("list") and "production: enterprise=ftops-tiny-base-v1.0.0" in run("list")
    assert "approved" in run("--as", "alice", "approve", new.name, "--comment", "good")
    assert "in production for enterprise" in run("--as", "alice", "promote", str(new.pk))
    assert f"rolled back to {old.name}" in run("--as", "bob", "rollback", "enterprise", "--reason", "errors")
    assert ModelVersion.objects.get(pk=new.pk).status == VersionStatus.ROLLED_BACK


def test_refusals_are_command_errors_and_change_nothing() -> None:
    mv = force_status(version(), VersionStatus.GATES_BLOCKED)
    with pytest.raises(CommandError, match="justification"):
        run("--as", "alice", "approve", mv.name)
    with pytest.raises(CommandError, match="two-person rule"):
        run("--as", "carol", "approve", mv.name, "--override", "x")
    with pytest.raises(CommandError, match="no model version named"):
        run("gates", "nope-v9.9.9")
    with pytest.raises(CommandError, match="no gate report"):
        run("gates", mv.name)
    assert ModelVersion.objects.get(pk=mv.pk).status == VersionStatus.GATES_BLOCKED
