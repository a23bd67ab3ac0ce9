"""The core imports neither Django, Celery nor any ftops app, even transitively."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import ftops.core

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("django", "celery", "kombu", "rest_framework")
APPS = ("ftops.common", "ftops.catalog", "ftops.interactions", "ftops.datasets", "ftops.training",
        "ftops.evaluation", "ftops.discovery", "review", "registry")


def core_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(ftops.core.__path__, prefix="ftops.core."))


def test_the_core_has_the_modules_the_apps_rely_on() -> None:
    names = set(core_modules())
    for expected in ("ftops.core.records", "ftops.core.checker", "ftops.core.parsing", "ftops.core.scoring",
                     "ftops.core.adapters", "ftops.core.fewshot", "ftops.core.ml.lora", "ftops.core.ml.chat"):
        assert expected in names


def test_importing_every_core_module_loads_no_django_celery_or_app() -> None:
    # A fresh interpreter: this test process has Django loaded already.
    program = (
        "import importlib, json, sys\n"
        f"for name in {core_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    leaked = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN or m.startswith(APPS))
    assert leaked == []
