"""Named upstream credentials: encrypted at rest, bound to one base URL, write-only, audited."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from ftops.common.actors import Actor
from ftops.common.credentials import (
    CredentialUnavailable,
    upstream_credential_delete,
    upstream_credential_get_secret,
    upstream_credential_set,
)
from ftops.common.errors import NotFound, ValidationFailed
from ftops.common.models import AuditEvent, UpstreamCredential

pytestmark = pytest.mark.django_db
VALUE = "sk-live-0c1d2e3f4a5b6c7d8e9f"
ADMIN = Actor.cli("admin")
URL = "https://api.openai.com/v1"


def audit_rows() -> list[tuple[str, str, dict[str, Any]]]:
    return [(e.action, e.actor, e.detail) for e in AuditEvent.objects.order_by("id")]


def everything_stored() -> str:
    return json.dumps([list(UpstreamCredential.objects.values()), list(AuditEvent.objects.values())], default=str)


def test_set_encrypts_the_value_and_audits_without_it() -> None:
    credential, outcome = upstream_credential_set(name="openai-prod", base_url=URL + "/", value=VALUE, by=ADMIN)
    assert (outcome, credential.base_url, credential.created_by) == ("created", URL, "cli:admin")
    assert VALUE not in everything_stored()
    assert VALUE not in repr(upstream_credential_get_secret("openai-prod"))
    resolved = upstream_credential_get_secret("openai-prod")
    assert (resolved.name, resolved.base_url, resolved.value) == ("openai-prod", URL, VALUE)
    assert audit_rows() == [("upstream_credential.created", "cli:admin", {"name": "openai-prod", "base_url": URL})]


def test_setting_again_is_idempotent_and_rotation_is_audited() -> None:
    upstream_credential_set(name="openai-prod", base_url=URL, value=VALUE, by=ADMIN)
    before = UpstreamCredential.objects.get().encrypted_value
    assert upstream_credential_set(name="openai-prod", base_url=URL, value=VALUE, by=ADMIN)[1] == "unchanged"
    assert UpstreamCredential.objects.get().encrypted_value == before and AuditEvent.objects.count() == 1
    assert upstream_credential_set(name="openai-prod", base_url=URL, value="sk-rotated", by=ADMIN)[1] == "updated"
    assert upstream_credential_get_secret("openai-prod").value == "sk-rotated"
    assert audit_rows()[-1] == ("upstream_credential.updated", "cli:admin",
                                {"name": "openai-prod", "base_url": URL, "value_changed": True})


def test_a_new_base_url_needs_the_value_again() -> None:
    upstream_credential_set(name="openai-prod", base_url=URL, value=VALUE, by=ADMIN)
    with pytest.raises(ValidationFailed) as caught:
        upstream_credential_set(name="openai-prod", base_url="https://elsewhere.example/v1", value=None, by=ADMIN)
    assert list(caught.value.fields) == ["value"]
    assert upstream_credential_get_secret("openai-prod").base_url == URL and AuditEvent.objects.count() == 1
    upstream_credential_set(name="openai-prod", base_url="https://elsewhere.example/v1", value="sk-2", by=ADMIN)
    assert audit_rows()[-1][2] == {"name": "openai-prod", "base_url": "https://elsewhere.example/v1",
                                   "value_changed": True, "previous_base_url": URL}
    # Same URL, no value: nothing to change.
    assert upstream_credential_set(name="openai-prod", base_url="https://elsewhere.example/v1", value=None,
                                   by=ADMIN)[1] == "unchanged"


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"name": "Bad Name"}, "name"),
    ({"name": ""}, "name"),
    ({"base_url": "ftp://host/v1"}, "base_url"),
    ({"base_url": "https://user:pw@host/v1"}, "base_url"),
    ({"base_url": "https://host/v1?key=x"}, "base_url"),
    ({"base_url": "https:///v1"}, "base_url"),
    ({"base_url": "https://host:99999/v1"}, "base_url"),
    ({"value": ""}, "value"),
    ({"value": "sk\nInjected: header"}, "value"),
    ({"value": None}, "value"),  # a new credential needs a value
])
def test_bad_input_is_refused_and_nothing_is_written(kwargs: dict[str, Any], field: str) -> None:
    args = {"name": "openai-prod", "base_url": URL, "value": VALUE, **kwargs}
    with pytest.raises(ValidationFailed) as caught:
        upstream_credential_set(by=ADMIN, **args)
    assert list(caught.value.fields) == [field]
    assert not UpstreamCredential.objects.exists() and not AuditEvent.objects.exists()


def test_delete_is_audited_and_a_missing_name_is_not_found() -> None:
    upstream_credential_set(name="openai-prod", base_url=URL, value=VALUE, by=ADMIN)
    upstream_credential_delete(name="openai-prod", by=ADMIN)
    assert audit_rows()[-1] == ("upstream_credential.deleted", "cli:admin", {"name": "openai-prod", "base_url": URL})
    with pytest.raises(NotFound):
        upstream_credential_delete(name="openai-prod", by=ADMIN)
    with pytest.raises(NotFound, match="no upstream credential named 'openai-prod'"):
        upstream_credential_get_secret("openai-prod")


def test_the_value_is_bound_to_the_secret_key(settings: Any) -> None:
    upstream_credential_set(name="openai-prod", base_url=URL, value=VALUE, by=ADMIN)
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    with pytest.raises(CredentialUnavailable, match="cannot be decrypted"):
        upstream_credential_get_secret("openai-prod")
    settings.SECRET_KEY_FALLBACKS = [old_key]  # a key rotation keeps old values readable
    assert upstream_credential_get_secret("openai-prod").value == VALUE


# --------------------------------------------------------------------------- management command


def command(*args: str) -> str:
    out = io.StringIO()
    call_command("upstream_credential", *args, stdout=out)
    return out.getvalue()


def test_command_reads_the_value_from_stdin_or_a_named_variable(monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr("sys.stdin", io.StringIO(VALUE + "\n"))
    outputs = [command("set", "openai-prod", "--base-url", URL)]
    assert upstream_credential_get_secret("openai-prod").value == VALUE
    monkeypatch.setenv("LOCAL_VLLM_KEY", "sk-local")
    outputs.append(command("set", "vllm", "--base-url", "http://127.0.0.1:8000/v1", "--value-env", "LOCAL_VLLM_KEY"))
    assert upstream_credential_get_secret("vllm").value == "sk-local"
    outputs.append(command("list"))
    assert outputs[0] == f"upstream credential openai-prod created (sent only to {URL})\n"
    assert [line.split("\t")[:2] for line in outputs[2].splitlines()] == [
        ["openai-prod", URL], ["vllm", "http://127.0.0.1:8000/v1"]]
    outputs.append(command("delete", "vllm"))
    assert not any(secret in text for secret in (VALUE, "sk-local") for text in [*outputs, caplog.text])
    assert [a for a, _, _ in audit_rows()] == ["upstream_credential.created", "upstream_credential.created",
                                               "upstream_credential.deleted"]


def test_command_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(CommandError, match="NOT_SET_ANYWHERE is not set"):
        command("set", "x", "--base-url", URL, "--value-env", "NOT_SET_ANYWHERE")
    monkeypatch.setattr("sys.stdin", io.StringIO("sk"))
    with pytest.raises(CommandError, match="base_url must be an http"):
        command("set", "x", "--base-url", "file:///etc/passwd")
    with pytest.raises(CommandError, match="no upstream credential named 'x'"):
        command("delete", "x")
    assert not UpstreamCredential.objects.exists()


# --------------------------------------------------------------------------- admin


@pytest.fixture
def admin_client(client: Any, admin_user: Any) -> Any:
    client.force_login(admin_user)
    return client


ADD = "/admin/common/upstreamcredential/add/"


def test_admin_creates_rotates_and_deletes_with_a_write_only_value(admin_client: Any) -> None:
    form = admin_client.get(ADD).content.decode()
    assert 'type="password"' in form
    response = admin_client.post(ADD, {"name": "openai-prod", "base_url": URL, "value": VALUE})
    assert response.status_code == 302, response.content.decode()[:2000]
    credential = UpstreamCredential.objects.get()
    change = f"/admin/common/upstreamcredential/{credential.pk}/change/"
    pages = [admin_client.get("/admin/common/upstreamcredential/").content.decode(),
             admin_client.get(change).content.decode(),
             admin_client.get(f"/admin/common/upstreamcredential/{credential.pk}/history/").content.decode()]
    assert "openai-prod" in pages[0] and URL in pages[1]
    assert not any(VALUE in page or credential.encrypted_value in page for page in pages)

    # Blank value keeps the current one; a new URL without it is refused on the form.
    assert admin_client.post(change, {"base_url": URL, "value": ""}).status_code == 302
    assert upstream_credential_get_secret("openai-prod").value == VALUE
    refused = admin_client.post(change, {"base_url": "https://elsewhere.example/v1", "value": ""})
    assert refused.status_code == 200 and "a new base URL needs the value again" in refused.content.decode()
    assert VALUE not in refused.content.decode()
    assert admin_client.post(change, {"base_url": URL, "value": "sk-rotated"}).status_code == 302
    assert upstream_credential_get_secret("openai-prod").value == "sk-rotated"

    delete = f"/admin/common/upstreamcredential/{credential.pk}/delete/"
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302
    assert not UpstreamCredential.objects.exists()
    assert [(a, actor) for a, actor, _ in audit_rows()] == [
        ("upstream_credential.created", "admin"), ("upstream_credential.updated", "admin"),
        ("upstream_credential.deleted", "admin")]
    assert AuditEvent.objects.filter(user__username="admin").count() == 3
    assert VALUE not in everything_stored() and "sk-rotated" not in everything_stored()


def test_admin_bulk_delete_is_audited_per_credential(admin_client: Any) -> None:
    for name in ("a-one", "a-two"):
        upstream_credential_set(name=name, base_url=URL, value=VALUE, by=ADMIN)
    ids = [str(pk) for pk in UpstreamCredential.objects.values_list("pk", flat=True)]
    response = admin_client.post("/admin/common/upstreamcredential/", {
        "action": "delete_selected", "_selected_action": ids, "post": "yes"})
    assert response.status_code == 302
    assert not UpstreamCredential.objects.exists()
    deleted = AuditEvent.objects.filter(action="upstream_credential.deleted")
    assert sorted(e.detail["name"] for e in deleted) == ["a-one", "a-two"]
