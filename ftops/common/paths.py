"""Where a caller may point the server at a model on disk (ARCHITECTURE.md rule 15).

An API caller names a base model or an adapter by path (``hf_local`` evaluation configs, a
training run's ``base_model``). Left open, that lets a caller make the server read any folder
it can reach; so a path must resolve, links and ``..`` followed, inside one of the model roots:
the artifacts folder (trained adapters), the folder of the built base model, and whatever an
operator lists in ``FTOPS_MODEL_ROOTS``. A bare Hugging Face id (``org/name``) is accepted
only when the model is already in the local Hugging Face cache: nothing may be downloaded at run
time, and a process without ``HF_HUB_OFFLINE`` would otherwise fetch whatever a caller names
(from outside the outbound allow-list, of any size).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.conf import settings

from ftops.common.errors import ValidationFailed

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


def model_roots() -> list[Path]:
    roots = [Path(settings.ARTIFACTS_DIR), Path(settings.FTOPS_BASE_MODEL).parent]
    roots += [Path(p) for p in getattr(settings, "FTOPS_MODEL_ROOTS", [])]
    return [r.resolve() for r in roots]


def _is_hub_id(value: str) -> bool:
    # A relative name that exists on disk is a folder to transformers, whatever it looks like.
    return bool(HUB_ID.match(value)) and ".." not in value and not Path(value).exists()


def _in_hub_cache(repo_id: str) -> bool:
    """The id's model (``config.json``) or adapter (``adapter_config.json``) is in the local cache."""
    from huggingface_hub import try_to_load_from_cache

    for filename in ("config.json", "adapter_config.json"):
        try:
            if isinstance(try_to_load_from_cache(repo_id, filename), str):
                return True
        except Exception:  # an id the hub library refuses is simply not cached
            return False
    return False


def confined_model_location(value: str, *, field: str) -> str:
    """``value`` if it is a cached hub id or a folder inside a model root; else a 422 naming ``field``."""
    value = value.strip()
    if not value:
        return value
    if _is_hub_id(value):
        if _in_hub_cache(value):
            return value
        message = (f"{value!r} is not in the local Hugging Face cache, and nothing is downloaded at run time: "
                   "download it ahead (huggingface-cli download) or give a folder inside the artifacts folder, "
                   "the base-model folder or FTOPS_MODEL_ROOTS")
        raise ValidationFailed(f"{field}: {message}", fields={field: [message]})
    try:
        target = Path(value).resolve()
    except (OSError, RuntimeError, ValueError):
        target = None
    if target is not None and any(target.is_relative_to(root) for root in model_roots()):
        return str(target)
    message = ("must be a Hugging Face id (org/name) or a folder inside the artifacts folder, the base-model "
               "folder or FTOPS_MODEL_ROOTS (ask an admin to list another folder there)")
    raise ValidationFailed(f"{field} {message}", fields={field: [message]})


def confine_adapter_config(config: Any, *, field: str = "adapter_config") -> None:
    """Check every model path in an evaluation adapter config, nested few-shot configs included."""
    if not isinstance(config, dict):
        return
    if config.get("kind") == "hf_local":
        for key in ("model_path", "adapter_path"):
            if isinstance(config.get(key), str) and config[key]:
                config[key] = confined_model_location(config[key], field=f"{field}.{key}")
    confine_adapter_config(config.get("inner"), field=f"{field}.inner")
    confine_adapter_config(config.get("base"), field=f"{field}.base")
