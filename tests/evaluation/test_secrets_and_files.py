"""Issue 10, items 1 and 2: a caller can neither send a server secret to a host of its choice
nor read files outside the artifacts folder, and learns nothing about which files exist."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from ftops.common.models import AuditEvent, UpstreamCredential
from ftops.evaluation.models import EvalRun, EvalSuite, RunStatus
from ftops.evaluation.services import bfcl_suite_import, eval_run_create, eval_run_execute
from tests.common.test_paths import hub_cache, hub_cache_with  # noqa: F401  (fixture)
from tests.evaluation.helpers import write_mini_bfcl
from tests.evaluation.openai_server import FakeOpenAI, tool_calls

pytestmark = pytest.mark.django_db
RUNS = "/api/v1/evaluation/runs"
SECRET = "sk-upstream-7f3c9a1e5b2d4c6a8e0f"
PATH_ERROR = "no readable results file at this path inside the artifacts folder"
RIGHT = [{"id": "simple_python_0", "result": [{"calc.area": {"base": 10, "height": 5.0}}]},
         {"id": "simple_python_1", "result": [{"calc.area": {"base": 3, "height": 4.0, "unit": "cm"}}]},
         {"id": "irrelevance_0", "result": []}]


@pytest.fixture
def suite(tmp_path: Path) -> EvalSuite:
    return bfcl_suite_import(data_dir=write_mini_bfcl(tmp_path / "bfcl"), name="mini").suite


@pytest.fixture
def listener() -> Iterator[FakeOpenAI]:
    """A host the attacker controls: it records whatever reaches it."""
    server = FakeOpenAI()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _answer_area(body: dict[str, Any]) -> dict[str, Any]:
    return tool_calls(("calc.area", {"base": 10, "height": 5.0}))


# --------------------------------------------------------------------------- item 1: secrets


@pytest.mark.parametrize(("adapter_config", "field"), [
    ({"kind": "openai", "base_url": "LISTENER", "model": "m", "api_key_env": "FTOPS_SECRET_KEY"}, "api_key_env"),
    ({"kind": "openai", "base_url": "LISTENER", "model": "m", "api_key_env": "DATABASE_URL"}, "api_key_env"),
    ({"kind": "openai", "credential": "openai-prod", "model": "m", "base_url": "LISTENER"}, "base_url"),
    ({"kind": "openai", "base_url": "LISTENER", "model": "m"}, "base_url"),
    ({"kind": "openai", "credential": "openai-prod", "model": "m", "api_key": "sk-mine"}, "api_key"),
    ({"kind": "openai", "credential": "openai-prod", "model": "m", "default_headers": {"x": "LISTENER"}},
     "default_headers"),
    ({"kind": "fewshot", "prompt": "p", "inner": {"kind": "openai", "credential": "openai-prod", "model": "m",
                                                   "base_url": "LISTENER"}}, "inner.base_url"),
])
def test_an_exfiltration_attempt_is_refused_and_nothing_is_sent(
        make_key: Any, make_credential: Any, suite: EvalSuite, listener: FakeOpenAI, fake_openai: FakeOpenAI,
        django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch, adapter_config: dict[str, Any],
        field: str) -> None:
    monkeypatch.setenv("FTOPS_SECRET_KEY", settings.SECRET_KEY)
    make_credential("openai-prod", fake_openai.base_url, SECRET)
    config = json.loads(json.dumps(adapter_config).replace("LISTENER", listener.base_url))
    client, _ = make_key("ml_orchestrator")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(RUNS, {"suite": "mini", "adapter_config": config}, format="json")
    assert response.status_code == 422
    problems = response.json()["error"]["fields"][f"adapter_config.{field}"]
    assert "credential" in problems[0]  # says what to use instead
    assert listener.requests == [] and fake_openai.requests == []
    assert EvalRun.objects.count() == 0
    assert not AuditEvent.objects.filter(action="evaluation_run.created").exists()


def test_a_credential_goes_only_to_its_registered_base_url(
        make_key: Any, make_credential: Any, suite: EvalSuite, listener: FakeOpenAI, fake_openai: FakeOpenAI,
        django_capture_on_commit_callbacks: Any, caplog: pytest.LogCaptureFixture) -> None:
    make_credential("openai-prod", fake_openai.base_url, SECRET)
    make_credential("elsewhere", listener.base_url, "sk-other")
    fake_openai.policy = _answer_area
    client, key = make_key("ml_orchestrator")
    caplog.set_level(logging.DEBUG)
    with django_capture_on_commit_callbacks(execute=True):
        created = client.post(RUNS, {"suite": "mini", "adapter_config": {
            "kind": "openai", "credential": "openai-prod", "model": "tiny", "concurrency": 1}}, format="json")
    assert created.status_code == 201, created.json()
    run = EvalRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert len(fake_openai.requests) == 3
    assert {h["authorization"] for h in fake_openai.headers} == {f"Bearer {SECRET}"}
    assert listener.requests == []
    assert run.adapter_config == {"kind": "openai", "credential": "openai-prod", "model": "tiny", "concurrency": 1}
    # The value shows nowhere: API answers, the stored run, audit rows, logs.
    shown = [created.content.decode(), client.get(f"{RUNS}/{run.pk}").content.decode(),
             client.get(RUNS).content.decode(),
             json.dumps(list(EvalRun.objects.values()), default=str),
             json.dumps(list(AuditEvent.objects.values()), default=str), caplog.text]
    assert [SECRET in text for text in shown] == [False] * len(shown)
    encrypted = UpstreamCredential.objects.get(name="openai-prod").encrypted_value
    assert not any(encrypted in text for text in shown)
    audit = AuditEvent.objects.get(action="evaluation_run.created")
    assert (audit.actor, audit.api_key_id, audit.object_type, audit.object_id) == (
        f"key:{key.prefix}", key.pk, "evaluation_run", str(run.pk))
    assert audit.detail == {"adapter_kind": "openai", "credential": "openai-prod", "suite": "mini",
                            "model_version_id": None, "model_label": "tiny via openai-prod"}


def test_an_unknown_credential_is_422_and_creates_nothing(make_key: Any, suite: EvalSuite) -> None:
    client, _ = make_key("ml_orchestrator")
    response = client.post(RUNS, {"suite": "mini", "adapter_config": {"kind": "openai", "credential": "nope",
                                                                      "model": "m"}}, format="json")
    assert response.status_code == 422
    assert "no upstream credential named 'nope'" in response.json()["error"]["fields"]["adapter_config.credential"][0]
    assert EvalRun.objects.count() == 0


class _Redirect(BaseHTTPRequestHandler):
    target = ""

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(307)
        self.send_header("Location", self.target + "/chat/completions")
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_a_redirect_from_the_upstream_is_not_followed(make_credential: Any, suite: EvalSuite,
                                                      listener: FakeOpenAI) -> None:
    handler = type("Handler", (_Redirect,), {"target": listener.base_url})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        make_credential("redirecting", f"http://127.0.0.1:{server.server_address[1]}/v1", SECRET)
        run = eval_run_create(suite=suite, adapter_config={"kind": "openai", "credential": "redirecting",
                                                           "model": "m"}, enqueue=False)
        run = eval_run_execute(run_id=run.pk)
    finally:
        server.shutdown()
        server.server_close()
    # Every request failed at the redirect; only the case whose right answer is no call passes.
    assert (run.status, run.exact) == (RunStatus.SUCCEEDED, 33.33)
    assert listener.requests == []


def test_a_credential_deleted_after_creation_fails_the_run_without_a_request(
        make_credential: Any, suite: EvalSuite, fake_openai: FakeOpenAI) -> None:
    from ftops.common.actors import Actor
    from ftops.common.credentials import upstream_credential_delete

    make_credential("openai-prod", fake_openai.base_url, SECRET)
    run = eval_run_create(suite=suite, adapter_config={"kind": "openai", "credential": "openai-prod", "model": "m"},
                          enqueue=False)
    upstream_credential_delete(name="openai-prod", by=Actor.cli("admin"))
    run = eval_run_execute(run_id=run.pk)
    assert run.status == RunStatus.FAILED
    assert "no upstream credential named 'openai-prod'" in run.error
    assert fake_openai.requests == []


# --------------------------------------------------------------------------- item 2: files


@pytest.fixture
def artifacts(tmp_path: Path, settings: Any) -> Path:
    """An artifacts folder with one good results file, and files and links around it."""
    root = tmp_path / "artifacts"
    (root / "replays").mkdir(parents=True)
    (root / "replays" / "good.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RIGHT))
    (tmp_path / "outside.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RIGHT))
    (root / "replays" / "escape.jsonl").symlink_to(tmp_path / "outside.jsonl")
    (root / "replays" / "escape-dir").symlink_to(tmp_path)
    settings.ARTIFACTS_DIR = root
    return root


def _bad_paths(tmp_path: Path) -> list[str]:
    return [
        "../../etc/passwd",
        "../outside.jsonl",
        "replays/../../outside.jsonl",
        "/etc/passwd",
        str(tmp_path / "outside.jsonl"),  # absolute, outside
        "replays/escape.jsonl",  # a link inside that points outside
        "replays/escape-dir/outside.jsonl",  # through a linked folder
        "replays/missing.jsonl",
        "/etc/no-such-file",
        "replays",  # a folder
        "replays/good.jsonl\x00.txt",
        "a" * 5000,
    ]


def test_replay_paths_outside_the_artifacts_folder_all_get_the_same_answer(
        make_key: Any, suite: EvalSuite, artifacts: Path, tmp_path: Path) -> None:
    client, _ = make_key("ml_orchestrator")
    answers = []
    for path in _bad_paths(tmp_path):
        response = client.post(RUNS, {"suite": "mini", "adapter_config": {"kind": "replay", "path": path}},
                               format="json")
        answers.append((response.status_code, response.json()))
    expected = (422, {"error": {"code": "validation_failed",
                                "message": f"adapter_config is invalid: path: {PATH_ERROR}",
                                "fields": {"adapter_config.path": [PATH_ERROR]}}})
    assert answers == [expected] * len(answers)
    assert EvalRun.objects.count() == 0


def test_replay_inside_the_artifacts_folder_works_and_is_stored_relative(
        make_key: Any, suite: EvalSuite, artifacts: Path, django_capture_on_commit_callbacks: Any) -> None:
    client, _ = make_key("ml_orchestrator")
    for path in ("replays/good.jsonl", "replays/./good.jsonl", str(artifacts / "replays" / "good.jsonl")):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(RUNS, {"suite": "mini", "adapter_config": {"kind": "replay", "path": path}},
                                   format="json")
        assert response.status_code == 201, response.json()
        assert response.json()["adapter_config"] == {"kind": "replay", "path": "replays/good.jsonl"}
    assert list(EvalRun.objects.values_list("status", "exact")) == [(RunStatus.SUCCEEDED, 100.0)] * 3


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_replay_file_gets_the_same_answer(make_key: Any, suite: EvalSuite, artifacts: Path) -> None:
    locked = artifacts / "replays" / "locked.jsonl"
    locked.write_text("{}\n")
    locked.chmod(0)
    client, _ = make_key("ml_orchestrator")
    config = {"kind": "replay", "path": "replays/locked.jsonl"}
    response = client.post(RUNS, {"suite": "mini", "adapter_config": config}, format="json")
    assert (response.status_code, response.json()["error"]["fields"]) == (422, {"adapter_config.path": [PATH_ERROR]})


def test_the_worker_checks_the_path_again_when_the_run_starts(suite: EvalSuite, artifacts: Path,
                                                              tmp_path: Path) -> None:
    run = eval_run_create(suite=suite, adapter_config={"kind": "replay", "path": "replays/good.jsonl"},
                          enqueue=False)
    good = artifacts / "replays" / "good.jsonl"
    good.unlink()
    good.symlink_to(tmp_path / "outside.jsonl")  # swapped for a link out after the run was accepted
    run = eval_run_execute(run_id=run.pk)
    assert (run.status, run.error, run.exact) == (RunStatus.FAILED, f"AdapterConfigError: path: {PATH_ERROR}", None)


def test_the_adapter_refuses_paths_outside_its_root(artifacts: Path, tmp_path: Path) -> None:
    from ftops.core.adapters import AdapterConfigError, adapter_from_config

    for path in _bad_paths(tmp_path):
        with pytest.raises(AdapterConfigError) as caught:
            adapter_from_config({"kind": "replay", "path": path}, files_root=artifacts)
        assert str(caught.value) == f"path: {PATH_ERROR}"
    with pytest.raises(AdapterConfigError):  # no root given: nothing is read
        adapter_from_config({"kind": "replay", "path": str(artifacts / "replays" / "good.jsonl")})
    built = adapter_from_config({"kind": "replay", "path": "replays/good.jsonl"}, files_root=artifacts)
    assert built.name == "replay:good.jsonl"


# --------------------------------------------------------------------------- model folders (rule 15)


@pytest.mark.parametrize(("adapter_config", "field"), [
    ({"kind": "hf_local", "model_path": "/etc"}, "model_path"),
    ({"kind": "hf_local", "model_path": "ARTIFACTS/../../.."}, "model_path"),
    ({"kind": "hf_local", "model_path": "ARTIFACTS/base", "adapter_path": "/root"}, "adapter_path"),
    ({"kind": "fewshot", "prompt": "p", "inner": {"kind": "hf_local", "model_path": "/usr/lib"}}, "inner.model_path"),
])
def test_a_model_folder_outside_the_model_roots_is_refused(
        make_key: Any, suite: EvalSuite, adapter_config: dict[str, Any], field: str) -> None:
    config = json.loads(json.dumps(adapter_config).replace("ARTIFACTS", str(settings.ARTIFACTS_DIR)))
    client, _ = make_key("ml_orchestrator")
    response = client.post(RUNS, {"suite": "mini", "adapter_config": config}, format="json")
    assert response.status_code == 422
    assert "FTOPS_MODEL_ROOTS" in response.json()["error"]["fields"][f"adapter_config.{field}"][0]
    assert not EvalRun.objects.exists()


def test_a_model_folder_inside_the_artifacts_folder_or_a_hub_id_is_accepted(make_key: Any, suite: EvalSuite,
                                                                           hub_cache: Path) -> None:  # noqa: F811
    hub_cache_with(hub_cache, "org/base-model")  # a hub id is accepted once it is in the local cache
    client, _ = make_key("ml_orchestrator")
    inside = Path(settings.ARTIFACTS_DIR) / "runs" / "7" / "adapter"
    for config in ({"kind": "hf_local", "model_path": "org/base-model"},
                   {"kind": "hf_local", "model_path": str(Path(settings.FTOPS_BASE_MODEL)),
                    "adapter_path": str(inside)}):
        response = client.post(RUNS, {"suite": "mini", "adapter_config": config}, format="json")
        assert response.status_code == 201, response.json()

