"""Fixtures for catalog tests: real MCP servers started with the SDK's server API."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SERVER = Path(__file__).with_name("mcp_server.py")
SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def stdio_command(*extra: str) -> str:
    return shlex.join([sys.executable, str(SERVER), "stdio", *extra])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_http(*extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    # A file, not a pipe: nobody reads the server's log while it runs, and a full pipe blocks it.
    log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server; closed by _stop
    proc = subprocess.Popen([sys.executable, str(SERVER), "http", str(port), *extra],
                            stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"MCP test server exited early: {log.read().decode(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                proc.log = log  # type: ignore[attr-defined]  # closed by _stop
                return proc, f"http://127.0.0.1:{port}/mcp"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    proc.wait(timeout=10)
    log.close()
    raise RuntimeError("MCP test server did not open its port within 60 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    proc.log.close()  # type: ignore[attr-defined]


@pytest.fixture
def allow_loopback(settings: Any) -> None:
    """The test MCP servers listen on 127.0.0.1, which the outbound policy refuses unless allowed."""
    settings.FTOPS_OUTBOUND_ALLOW = ["127.0.0.1/32"]


@pytest.fixture(scope="module")
def mcp_http_url() -> Iterator[str]:
    proc, url = _start_http()
    yield url
    _stop(proc)


@pytest.fixture
def mcp_http_v2_url() -> Iterator[str]:
    proc, url = _start_http("--v2")
    yield url
    _stop(proc)


@pytest.fixture
def bfcl_simple_path() -> Path:
    from ftops.evaluation.bfcl import default_data_dir  # ../shared/bfcl, else bfcl-eval's own copy

    path = (default_data_dir() or SHARED / "bfcl") / "BFCL_v4_simple_python.json"
    if not path.is_file():
        pytest.skip(f"BFCL data not found at {path}")
    return path
