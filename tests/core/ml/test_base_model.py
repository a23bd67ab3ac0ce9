"""The tiny base model is a pure function of its seed and config: a fixed number of steps."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ftops.core.ml.base_model import MARKER_FILE, BaseModelBuildTimeout, BaseModelConfig, build_base_model, mkl_strict

REDUCED = BaseModelConfig(seed=3, vocab_size=400, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2,
                          drill_steps=3, drill_batch=16, corpus_steps=5, batch_examples=16, row_length=256,
                          time_budget_s=0, threads=1)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.ml
def test_one_seed_builds_the_same_weights_twice(tmp_path: Path) -> None:
    first = build_base_model(tmp_path / "a", config=REDUCED, on_log=lambda _: None)
    second = build_base_model(tmp_path / "b", config=REDUCED, on_log=lambda _: None)
    assert first.steps == second.steps == REDUCED.drill_steps + REDUCED.corpus_steps
    assert _sha(tmp_path / "a" / "model.safetensors") == _sha(tmp_path / "b" / "model.safetensors")
    assert _sha(tmp_path / "a" / "tokenizer.json") == _sha(tmp_path / "b" / "tokenizer.json")
    assert first.weights_sha256 == second.weights_sha256 == _sha(tmp_path / "a" / "model.safetensors")
    marker = json.loads((tmp_path / "a" / MARKER_FILE).read_text())
    assert marker["report"]["weights_sha256"] == first.weights_sha256
    assert marker["report"]["environment"]["threads"] == "1"
    # The hash tells seeds apart (it is not a constant of the folder layout).
    other = build_base_model(tmp_path / "c", config=replace(REDUCED, seed=4), on_log=lambda _: None)
    assert other.weights_sha256 != first.weights_sha256


@pytest.mark.ml
def test_the_weights_do_not_depend_on_the_thread_count(tmp_path: Path) -> None:
    # The build follows the idle cores (threads=0), so a busy machine and a quiet one must
    # still build the same model. On AVX-512 CPUs that takes MKL's strict mode, which importing
    # ftops turns on (1 and 2 threads gave different weights there without it).
    assert mkl_strict(), os.environ.get("MKL_CBWR")
    one = build_base_model(tmp_path / "one", config=REDUCED, on_log=lambda _: None)
    two = build_base_model(tmp_path / "two", config=replace(REDUCED, threads=2), on_log=lambda _: None)
    assert json.loads((tmp_path / "two" / MARKER_FILE).read_text())["report"]["environment"]["threads"] == "2"
    assert one.weights_sha256 == two.weights_sha256


@pytest.mark.ml
def test_without_mkls_strict_mode_the_build_keeps_to_one_thread(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("MKL_CBWR", "AUTO")
    assert not mkl_strict()
    build_base_model(tmp_path / "m", config=replace(REDUCED, threads=0), on_log=lambda _: None)
    environment = json.loads((tmp_path / "m" / MARKER_FILE).read_text())["report"]["environment"]
    assert (environment["threads"], environment["mkl_cbwr"]) == ("1", "AUTO")


def test_importing_ftops_turns_on_mkls_strict_mode_unless_the_environment_says_otherwise() -> None:
    import subprocess
    import sys

    code = "import os, ftops; print(os.environ['MKL_CBWR'])"
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    default = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert default.stdout.strip() == "AUTO,STRICT"
    own = subprocess.run([sys.executable, "-c", code], env={**env, "MKL_CBWR": "AVX2"}, capture_output=True,
                         text=True, check=True)
    assert own.stdout.strip() == "AVX2"


@pytest.mark.ml
def test_the_time_guard_fails_the_build_and_saves_nothing(tmp_path: Path) -> None:
    with pytest.raises(BaseModelBuildTimeout, match=r"time guard: .* at step 1 of 8"):
        build_base_model(tmp_path / "m", config=replace(REDUCED, time_budget_s=1e-9), on_log=lambda _: None)
    assert not (tmp_path / "m").exists()


def test_a_lock_is_held_only_while_its_builder_runs(tmp_path: Path) -> None:
    import subprocess
    import sys

    from ftops.core.ml.base_model import _holder_alive

    lock = tmp_path / "model.lock"
    lock.write_text(str(os.getpid()))
    assert _holder_alive(lock)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    lock.write_text(finished.stdout.strip())
    assert not _holder_alive(lock)
    assert not _holder_alive(tmp_path / "missing.lock")
