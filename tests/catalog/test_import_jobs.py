"""URL imports as jobs: the guarded client, one error for every unusable URL, audit rows, workers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from ftops.catalog.importers import UNAVAILABLE, ImportFailed
from ftops.catalog.models import CatalogImportJob, Service, Tool
from ftops.catalog.services import catalog_import, catalog_import_job_run, catalog_import_jobs_reap
from ftops.common.jobs import JobStatus
from ftops.common.models import AuditAction, AuditEvent
from ftops.datasets.models import TrainingExample
from tests.catalog.factories import shipping_doc
from tests.celery_fixtures import WorkerHandle, _use_broker, celery_worker  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db

IMPORT = "/api/v1/catalog/import"
TOOLS = ["acme-payments-mcp.create_payment", "acme-payments-mcp.get_payment_status",
         "acme-payments-mcp.refund_payment"]
MakeKey = Callable[..., tuple[APIClient, Any]]


def post_url(client: APIClient, url: str, capture: Any, **extra: Any) -> dict[str, Any]:
    """POST a URL import and let its on-commit publish run (tests hold one open transaction)."""
    with capture(execute=True):
        response = client.post(IMPORT, {"url": url, **extra}, format="json")
    assert response.status_code == 202, response.json()
    return response.json()


def job_status(client: APIClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.get(body["status_url"])
    assert response.status_code == 200
    return response.json()


class NotMcp(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "9")
        self.end_headers()
        self.wfile.write(b"not found")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def web_server_url() -> Iterator[str]:
    """A live HTTP server that is not an MCP server (the port scanner's 'open' case)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), NotMcp)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/mcp"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def silent_url() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"


def closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"


# ---------------------------------------------------------------- the happy path


def test_a_url_import_answers_202_and_the_job_imports(make_key: MakeKey, mcp_http_url: str, allow_loopback: None,
                                                      django_capture_on_commit_callbacks: Any) -> None:
    client, key = make_key("ml_orchestrator")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(IMPORT, {"url": mcp_http_url}, format="json")

    assert response.status_code == 202
    body = response.json()
    assert body["status_url"] == f"http://testserver/api/v1/catalog/imports/{body['id']}"
    assert response["Location"] == body["status_url"]
    assert (body["source"], body["actor"]) == (mcp_http_url, f"key:{key.prefix}")
    done = job_status(client, body)
    assert done["status"] == "succeeded"
    assert done["error"] is None
    assert (done["attempts"], done["result"]["format"]) == (1, "mcp-http")
    assert sorted(done["result"]["tools_created"]) == TOOLS
    assert Tool.objects.count() == 3
    audit = AuditEvent.objects.get(action=AuditAction.CATALOG_IMPORTED)
    assert (audit.api_key_id, audit.actor, audit.detail["job"]) == (key.pk, f"key:{key.prefix}", body["id"])

    again = job_status(client, post_url(client, mcp_http_url, django_capture_on_commit_callbacks))
    assert again["status"] == "succeeded"
    assert again["result"]["changed"] is False


def test_running_a_job_twice_imports_once(make_key: MakeKey, mcp_http_url: str, allow_loopback: None,
                                          django_capture_on_commit_callbacks: Any) -> None:
    client, _ = make_key("admin")
    body = post_url(client, mcp_http_url, django_capture_on_commit_callbacks)

    assert catalog_import_job_run(job_id=body["id"]) is None  # a second delivery finds it finished
    job = CatalogImportJob.objects.get(pk=body["id"])
    assert (job.status, job.attempts) == (JobStatus.SUCCEEDED, 1)
    assert AuditEvent.objects.filter(action=AuditAction.CATALOG_IMPORTED).count() == 1


# ---------------------------------------------------------------- unusable URLs


@pytest.mark.parametrize(("case", "kind"), [
    ("live-loopback-not-allowed", "refused"),
    ("ipv4-mapped-loopback", "refused"),
    ("metadata", "refused"),
    ("metadata-name", "refused"),
    ("private", "refused"),
    ("allowed-closed-port", "unreachable"),
    ("allowed-web-server-not-mcp", "unreachable"),
    ("allowed-never-answers", "timeout"),
])
def test_every_unusable_url_fails_with_the_same_error(
        case: str, kind: str, make_key: MakeKey, mcp_http_url: str, web_server_url: str, silent_url: str,
        settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    port = mcp_http_url.split(":")[2].split("/")[0]
    settings.FTOPS_OUTBOUND_TIMEOUT_S = 1  # the silent server: cut off after one second
    settings.FTOPS_OUTBOUND_ALLOW = ["127.0.0.1/32"] if case.startswith("allowed") else []
    url = {
        "live-loopback-not-allowed": mcp_http_url,  # a real MCP server that would answer
        "ipv4-mapped-loopback": f"http://[::ffff:127.0.0.1]:{port}/mcp",
        "metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "metadata-name": "http://metadata.google.internal/computeMetadata/v1/",
        "private": "http://10.11.12.13:8000/mcp",
        "allowed-closed-port": closed_url(),
        "allowed-web-server-not-mcp": web_server_url,
        "allowed-never-answers": silent_url,
    }[case]
    client, key = make_key("admin")

    job = job_status(client, post_url(client, url, django_capture_on_commit_callbacks))

    assert job["status"] == "failed"
    assert job["result"] is None
    assert job["error"] == {"code": "validation_failed",
                            "message": f"could not list the tools of the MCP server {url!r}: {UNAVAILABLE}",
                            "fields": {"url": [UNAVAILABLE]}}
    assert (Service.objects.count(), Tool.objects.count()) == (0, 0)
    failed = AuditEvent.objects.get(action=AuditAction.CATALOG_IMPORT_FAILED)
    assert (failed.api_key_id, failed.detail["kind"], failed.detail["job"]) == (key.pk, kind, job["id"])
    assert failed.detail["reason"]  # the real reason is kept for the operator
    refusals = AuditEvent.objects.filter(action=AuditAction.OUTBOUND_REFUSED)
    assert refusals.count() == (1 if kind == "refused" else 0)
    if kind == "refused":
        assert refusals.get().detail["purpose"] == "catalog_import"
        assert refusals.get().api_key_id == key.pk


def test_the_command_line_shows_the_operator_the_reason(mcp_http_url: str) -> None:
    with pytest.raises(CommandError) as caught:
        call_command("catalog_import", mcp_http_url)
    assert UNAVAILABLE in str(caught.value)
    assert "127.0.0.1 is a loopback address (allow it with FTOPS_OUTBOUND_ALLOW)" in str(caught.value)
    failed = AuditEvent.objects.get(action=AuditAction.CATALOG_IMPORT_FAILED)
    assert failed.actor.startswith("cli:")


# ---------------------------------------------------------------- the status endpoint


def test_job_status_needs_an_import_role_and_answers_404_in_the_envelope(make_key: MakeKey) -> None:
    admin, _ = make_key("admin")
    reviewer, _ = make_key("reviewer")

    for job_id in ("12345", "99999999999999999999999"):
        missing = admin.get(f"/api/v1/catalog/imports/{job_id}")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
    assert reviewer.get("/api/v1/catalog/imports/1").status_code == 403


# ---------------------------------------------------------------- text the database cannot store


def test_nul_and_lone_surrogates_in_content_are_a_422_naming_the_field(make_key: MakeKey) -> None:
    client, _ = make_key("admin")
    doc = shipping_doc()
    doc["training_examples"][1]["user_query"] = "Label for ORD-54321\u0000"

    nul = client.post(IMPORT, {"content": [doc]}, format="json")

    assert nul.status_code == 422
    assert list(nul.json()["error"]["fields"]) == ["content[0].training_examples[1].user_query"]
    assert "NUL" in nul.json()["error"]["fields"]["content[0].training_examples[1].user_query"][0]

    raw = json.dumps({"content": [shipping_doc()]}).replace('"create_label"', '"create_\\ud800label"', 1)
    surrogate = client.post(IMPORT, raw, content_type="application/json")

    assert surrogate.status_code == 422
    assert list(surrogate.json()["error"]["fields"]) == ["content[0].tool"]
    assert "surrogate" in surrogate.json()["error"]["fields"]["content[0].tool"][0]

    assert (Service.objects.count(), TrainingExample.objects.count()) == (0, 0)
    assert AuditEvent.objects.filter(action=AuditAction.CATALOG_IMPORT_FAILED).count() == 2


def test_the_service_refuses_unstorable_labels_and_still_audits() -> None:
    """The command line reaches the service without DRF's field checks."""
    for label, field in (("team-\ud800", "source"), ("team\x00", "source")):
        with pytest.raises(ImportFailed) as caught:
            catalog_import(source=label, content=[shipping_doc()])
        assert list(caught.value.fields) == [field]
    with pytest.raises(ImportFailed) as caught:
        catalog_import(source="x", content=[shipping_doc()], service="ship\x00ping")
    assert list(caught.value.fields) == ["service"]

    rows = AuditEvent.objects.filter(action=AuditAction.CATALOG_IMPORT_FAILED).order_by("id")
    assert [r.object_id for r in rows] == ["team-?", "team", "x"]
    assert Service.objects.count() == 0


# ---------------------------------------------------------------- broker outage and a real worker


def test_a_job_whose_publish_failed_is_sent_by_the_reaper(make_key: MakeKey, mcp_http_url: str, allow_loopback: None,
                                                          django_capture_on_commit_callbacks: Any) -> None:
    from ftops.celery import app

    client, _ = make_key("admin")
    saved = (app.conf.broker_url, app.conf.task_always_eager, app.conf.broker_connection_retry,
             app.conf.task_publish_retry)
    app.conf.broker_connection_retry = False
    app.conf.task_publish_retry = False
    _use_broker(app, closed_url().replace("http://", "redis://").replace("/mcp", "/0"), eager=False)
    try:
        body = post_url(client, mcp_http_url, django_capture_on_commit_callbacks)
    finally:
        _use_broker(app, saved[0], eager=saved[1])
        app.conf.broker_connection_retry, app.conf.task_publish_retry = saved[2], saved[3]

    job = CatalogImportJob.objects.get(pk=body["id"])
    assert (body["status"], job.status, job.enqueued_at) == ("pending", JobStatus.PENDING, None)

    sent = catalog_import_jobs_reap()

    assert sent["published"] == [job.pk]
    assert job_status(client, body)["status"] == "succeeded"
    assert Tool.objects.count() == 3


@pytest.fixture
def worker_allows_loopback(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    """The worker subprocess reads its settings from the environment: allow the test servers there."""
    monkeypatch.setenv("FTOPS_OUTBOUND_ALLOW", "127.0.0.1/32")
    settings.FTOPS_OUTBOUND_ALLOW = ["127.0.0.1/32"]


def test_a_url_import_runs_on_a_real_worker(worker_allows_loopback: None, celery_worker: WorkerHandle,  # noqa: F811
                                            make_key: MakeKey, mcp_http_url: str) -> None:
    client, key = make_key("admin")

    response = client.post(IMPORT, {"url": mcp_http_url}, format="json")
    refused = client.post(IMPORT, {"url": "http://169.254.169.254/latest/meta-data/"}, format="json")

    assert (response.status_code, refused.status_code) == (202, 202)
    ids = [response.json()["id"], refused.json()["id"]]
    celery_worker.wait_for(lambda: CatalogImportJob.objects.filter(pk__in=ids, status__in=[
        JobStatus.SUCCEEDED, JobStatus.FAILED]).count() == 2, timeout=90, what="both import jobs to finish")
    done, failed = (job_status(client, r.json()) for r in (response, refused))
    assert done["status"] == "succeeded"
    assert sorted(done["result"]["tools_created"]) == TOOLS
    assert failed["status"] == "failed"
    assert failed["error"]["fields"] == {"url": [UNAVAILABLE]}
    rows = AuditEvent.objects.filter(api_key=key)
    assert sorted(rows.values_list("action", flat=True)) == sorted([
        AuditAction.CATALOG_IMPORTED, AuditAction.CATALOG_IMPORT_FAILED, AuditAction.OUTBOUND_REFUSED])
