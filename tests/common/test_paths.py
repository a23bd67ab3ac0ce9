"""Where a caller may point the server at a model (ARCHITECTURE.md rule 15): a folder inside the
model roots, or a Hugging Face id only when the model is in the local cache, since nothing may be
downloaded at run time (a process without HF_HUB_OFFLINE would otherwise fetch whatever it names)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ftops.common.errors import ValidationFailed
from ftops.common.paths import confine_adapter_config, confined_model_location


def hub_cache_with(cache: Path, repo_id: str, filename: str = "config.json") -> None:
    """What ``huggingface-cli download repo_id`` leaves in the cache."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / filename).write_text("{}")


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_a_hub_id_in_the_local_cache_is_accepted(hub_cache: Path) -> None:
    hub_cache_with(hub_cache, "org/base-model")
    hub_cache_with(hub_cache, "org/an-adapter", filename="adapter_config.json")
    assert confined_model_location("org/base-model", field="base_model") == "org/base-model"
    config: dict[str, Any] = {"kind": "hf_local", "model_path": "org/base-model", "adapter_path": "org/an-adapter"}
    confine_adapter_config(config)
    assert config == {"kind": "hf_local", "model_path": "org/base-model", "adapter_path": "org/an-adapter"}


@pytest.mark.parametrize("value", ["someorg/some-70b-model", "gpt2", "org/base-model-other"])
def test_a_hub_id_not_in_the_cache_is_refused_not_downloaded(hub_cache: Path, value: str) -> None:
    hub_cache_with(hub_cache, "org/base-model")
    with pytest.raises(ValidationFailed) as caught:
        confined_model_location(value, field="base_model")
    assert "local Hugging Face cache" in caught.value.fields["base_model"][0]
    with pytest.raises(ValidationFailed) as nested:
        confine_adapter_config({"kind": "fewshot", "inner": {"kind": "hf_local", "model_path": value}})
    assert list(nested.value.fields) == ["adapter_config.inner.model_path"]


def test_folders_still_follow_the_model_roots(settings: Any, hub_cache: Path) -> None:
    inside = Path(settings.ARTIFACTS_DIR) / "runs" / "7" / "adapter"
    assert confined_model_location(str(inside), field="f") == str(inside.resolve())
    for outside in ("/etc", f"{settings.ARTIFACTS_DIR}/../../..", "../../../../usr"):
        with pytest.raises(ValidationFailed, match="FTOPS_MODEL_ROOTS"):
            confined_model_location(outside, field="f")
