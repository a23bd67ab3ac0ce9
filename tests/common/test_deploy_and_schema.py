"""Production settings pass `check --deploy`; the OpenAPI schema builds cleanly and is served."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from drf_spectacular.generators import SchemaGenerator

ROOT = Path(__file__).resolve().parents[2]


def test_check_deploy_is_clean_under_production_settings(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ftops.settings",
        "FTOPS_SECURE": "1",
        "FTOPS_SECRET_KEY": secrets.token_urlsafe(64),
        "FTOPS_ALLOWED_HOSTS": "ftops.example.com",
        "FTOPS_VAR_DIR": str(tmp_path),
    }
    env.pop("FTOPS_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_secure_mode_refuses_the_dev_secret_key(tmp_path: Path) -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "ftops.settings", "FTOPS_SECURE": "1",
           "FTOPS_VAR_DIR": str(tmp_path)}
    env.pop("FTOPS_SECRET_KEY", None)
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    assert "FTOPS_SECURE=1 requires FTOPS_SECRET_KEY" in result.stderr


def test_openapi_schema_generates_without_warnings(capsys: Any) -> None:
    from drf_spectacular.drainage import GENERATOR_STATS

    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert not GENERATOR_STATS, capsys.readouterr().err
    paths = schema["paths"]
    assert set(paths["/api/v1/interactions"]) == {"get", "post"}
    assert "/api/v1/interactions/{external_id}/feedback" in paths
    assert {"/api/v1/keys", "/api/v1/keys/{key_id}/revoke", "/api/v1/audit"} <= set(paths)
    assert "ApiKey" in schema["components"]["securitySchemes"]


def test_schema_endpoint_serves_the_ingest_path(make_key: Any) -> None:
    client, _ = make_key("reviewer")
    response = client.get("/api/v1/schema")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["paths"]["/api/v1/interactions"]["post"]["operationId"] == "interactions_ingest"


def test_a_fresh_checkout_migrates_into_a_var_folder_it_creates(tmp_path: Path) -> None:
    # var/ is gitignored: the embedded default must create it, or `make demo` fails at migrate.
    var_dir = tmp_path / "not" / "yet" / "there"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "ftops.settings", "FTOPS_VAR_DIR": str(var_dir)}
    env.pop("DATABASE_URL", None)
    result = subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (var_dir / "ftops.sqlite3").is_file()
