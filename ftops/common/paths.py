"""Where a caller may point the server at a model on disk (ARCHITECTURE.md rule 15).

An API caller names a base model or an adapter by path (``hf_local`` evaluation configs, a
training run's ``base_model``). Left open, that lets a caller make the server read any folder
it can reach; so a path must resolve, links and ``..`` followed, inside one of the model roots:
the artifacts folder (trained adapters), the folder of the built base model, and whatever an
operator lists in ``FTOPS_MODEL_ROOTS``. A bare Hugging Face id (``org/name``) is still
accepted: nothing is downloaded at run time, so it only resolves from the local cache.
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


def confined_model_location(value: str, *, field: str) -> str:
    """``value`` if it is a hub id or a folder inside a model root; else a 422 naming ``field``."""
    value = value.strip()
    if not value or _is_hub_id(value):
        return value
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
