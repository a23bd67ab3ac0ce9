"""The MLflow mirror against a real ``mlflow server`` on 127.0.0.1 with a local SQLite and file store.

The server runs from ``.venv-mlflow`` (``scripts/mlflow-server-venv``; it cannot share ftops'
venv), the client is ftops' ``mlflow`` extra. Without either the test is skipped and says which.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / ".venv-mlflow" / "bin" / "mlflow"



def _missing(what: str) -> None:
    if os.environ.get("FTOPS_REQUIRE_SERVICES") == "1":  # CI installs both: a skip there would hide a gap
        pytest.fail(what + " and FTOPS_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(what, allow_module_level=True)


if importlib.util.find_spec("mlflow") is None:
    _missing("the mlflow extra is not installed (pip install -e '.[mlflow]')")
if not SERVER.exists():
    _missing(f"no MLflow server at {SERVER}; build it with scripts/mlflow-server-venv")

from mlflow.tracking import MlflowClient  # noqa: E402

from registry.mlflow_mirror import MirrorRecord, mirror_model_version  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = (home / "server.log").open("w")
    process = subprocess.Popen(
        [str(SERVER), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
         "--artifacts-destination", str(home / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, cwd=home, start_new_session=True)  # its own group: see below
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # the first start migrates the SQLite schema
        while True:
            if process.poll() is not None:
                pytest.fail(f"mlflow server exited with {process.returncode}: "
                            f"{(home / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not answer: {(home / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield uri
    finally:
        # The CLI starts the web server as a child; signal the whole group so none is left behind.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def record(version: str, *, production: bool = False, exact: float = 0.9,
           extra: dict[str, str] | None = None) -> MirrorRecord:
    return MirrorRecord(name="ftops-tiny-base", version=version,
                        metrics={"overall_exact": exact, "category.simple.exact": 0.95, "latency_p95_ms": 41.0,
                                 "service.orders/v2.exact": 0.8},
                        tags={"ftops.model_version_id": "7", "ftops.status": "production" if production else "approved",
                              "ftops.dataset_hash": "ab" * 32, "ftops.training_run_id": "3", **(extra or {})},
                        production=production)


def versions(client: MlflowClient) -> dict[str, Any]:
    return {mv.tags["ftops.version"]: mv for mv in client.search_model_versions("name = 'ftops-tiny-base'")}


def test_a_version_is_mirrored_once_with_metrics_lineage_and_the_production_alias(tracking_uri: str) -> None:
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    mirror_model_version(record("1.0.0", production=True), tracking_uri=tracking_uri)
    mirror_model_version(record("1.0.0", production=True), tracking_uri=tracking_uri)  # a resync

    model = client.get_registered_model("ftops-tiny-base")
    assert model.tags == {"ftops.mirror": "true"}
    [mv] = versions(client).values()
    assert mv.version == "1" and model.aliases == {"production": "1"}
    assert {k: v for k, v in mv.tags.items()} == {
        "ftops.model_version_id": "7", "ftops.status": "production", "ftops.dataset_hash": "ab" * 32,
        "ftops.training_run_id": "3", "ftops.model_name": "ftops-tiny-base", "ftops.version": "1.0.0"}
    experiment = client.get_experiment_by_name("ftops")
    assert experiment is not None
    [run] = client.search_runs([experiment.experiment_id])
    assert mv.run_id == run.info.run_id and run.info.run_name == "ftops-tiny-base-v1.0.0"
    assert run.data.metrics == {"overall_exact": 0.9, "category.simple.exact": 0.95, "latency_p95_ms": 41.0,
                                "service.orders/v2.exact": 0.8}
    # the resync logged nothing again: one value per metric
    assert [m.value for m in client.get_metric_history(run.info.run_id, "overall_exact")] == [0.9]

    # 1.1.0 is evaluated (new numbers on a resync), then promoted: the alias moves to it.
    mirror_model_version(record("1.1.0", exact=0.93), tracking_uri=tracking_uri)
    mirror_model_version(record("1.1.0", exact=0.94, extra={"ftops.test_suite_version": "2"}),
                         tracking_uri=tracking_uri)
    assert client.get_registered_model("ftops-tiny-base").aliases == {"production": "1"}
    mirror_model_version(record("1.1.0", production=True, exact=0.94), tracking_uri=tracking_uri)
    mirror_model_version(record("1.0.0"), tracking_uri=tracking_uri)  # retired: it no longer holds the alias
    by_version = versions(client)
    assert sorted(by_version) == ["1.0.0", "1.1.0"] and by_version["1.1.0"].version == "2"
    assert by_version["1.1.0"].tags["ftops.status"] == "production"
    assert by_version["1.1.0"].tags["ftops.test_suite_version"] == "2"
    assert client.get_registered_model("ftops-tiny-base").aliases == {"production": "2"}
    second = client.get_run(by_version["1.1.0"].run_id)
    assert [m.value for m in client.get_metric_history(second.info.run_id, "overall_exact")] == [0.93, 0.94]
    assert len(client.search_runs([experiment.experiment_id])) == 2

    # Rollback: 1.1.0 leaves production, 1.0.0 returns; the alias follows ftops.
    mirror_model_version(record("1.1.0", exact=0.94), tracking_uri=tracking_uri)
    assert client.get_registered_model("ftops-tiny-base").aliases == {}
    mirror_model_version(record("1.0.0", production=True), tracking_uri=tracking_uri)
    assert client.get_registered_model("ftops-tiny-base").aliases == {"production": "1"}
    assert len(client.search_model_versions("name = 'ftops-tiny-base'")) == 2


def test_the_tracking_uri_defaults_to_the_setting(tracking_uri: str, settings: Any) -> None:
    settings.MLFLOW_TRACKING_URI = tracking_uri
    mirror_model_version(MirrorRecord(name="ftops-other", version="0.1.0", metrics={}, tags={}, production=False))
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    [mv] = client.search_model_versions("name = 'ftops-other'")
    assert mv.tags["ftops.version"] == "0.1.0" and client.get_registered_model("ftops-other").aliases == {}
    settings.MLFLOW_TRACKING_URI = ""
    with pytest.raises(ValueError, match="set MLFLOW_TRACKING_URI"):
        mirror_model_version(MirrorRecord(name="x", version="1", metrics={}, tags={}, production=False))
