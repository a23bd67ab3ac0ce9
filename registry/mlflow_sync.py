"""The call site of the MLflow mirror: build the record (a selector) and hand it over.

``registry.mlflow_mirror`` (the client side, optional ``mlflow-skinny``) takes a
``MirrorRecord``; ftops stays the source of truth, so a mirror failure is logged and retried
by the next registration, evaluation or promotion, never raised into the release.
"""

from __future__ import annotations

import logging

from django.conf import settings

from registry.selectors import mirror_record

log = logging.getLogger(__name__)


def model_version_mirror_now(*, model_version_id: int) -> bool:
    if not getattr(settings, "MLFLOW_TRACKING_URI", ""):
        return False
    try:
        from registry.mlflow_mirror import MirrorRecord, mirror_model_version
    except ImportError:  # TODO(notify helper): registry.mlflow_mirror lands with the MLflow issue work
        log.warning("MLFLOW_TRACKING_URI is set but registry.mlflow_mirror is not available")
        return False
    data = mirror_record(model_version_id=model_version_id)
    try:
        mirror_model_version(MirrorRecord(name=data.name, version=data.version, metrics=data.metrics,
                                          tags=data.tags, production=data.production))
    except Exception:
        log.exception("mirroring model version %s to MLflow failed", model_version_id)
        return False
    return True
