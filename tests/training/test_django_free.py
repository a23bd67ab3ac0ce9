"""The training loop imports without Django, Celery or kombu (a fresh interpreter proves it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = ("django", "celery", "kombu")

PROBE = """
import json, sys
import {module}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {frameworks!r})))
"""


def _frameworks_loaded_by(module: str) -> list[str]:
    # A fresh interpreter: this test process already has Django loaded, so only a clean
    # sys.modules can show what the import itself pulls in.
    code = PROBE.format(module=module, frameworks=FRAMEWORKS)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_lora_trainer_loads_no_django_celery_or_kombu() -> None:
    assert _frameworks_loaded_by("ftops.core.ml.lora") == []


def test_the_probe_sees_a_framework_when_one_is_imported() -> None:
    # Guards the probe itself: were it blind, the test above could never fail.
    assert "celery" in _frameworks_loaded_by("ftops.celery")
