"""Mirror a model version into an MLflow model registry, for teams that already browse MLflow.

ftops stays the source of truth: this writes what ftops knows and never reads decisions back.
Needs the ``mlflow`` extra (``mlflow-skinny``, the client only); importing this module without
it raises ImportError, which the call site (``registry.mlflow_sync``) treats as "not installed".

How ftops maps onto MLflow:

- the version's family (``ftops-tiny-base``) is the registered model;
- each ftops version (``1.2.0``) is one MLflow model version (MLflow numbers its own, 1, 2, …),
  found again by its ``ftops.version`` tag; its run (experiment ``ftops``, run name
  ``<family>-v<semver>``) holds the metrics, and its tags the lineage;
- the ``production`` alias points at the version ftops has in production; when ftops takes a
  version out of production the alias is removed from it.

Running it twice changes nothing: the run, the model version and the registered model are
looked up before they are created, a metric is logged only when its value changed (so a run's
metric history does not grow on every resync), and tags and aliases are set, not appended.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mlflow.entities import Metric, RunTag
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient

EXPERIMENT = "ftops"
PRODUCTION_ALIAS = "production"
VERSION_TAG = "ftops.version"
NAME_TAG = "ftops.model_name"
_METRIC_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")  # the characters MLflow accepts in a metric key
_TAG_VALUE_MAX = 5000  # MLflow refuses longer tag values on some backends


@dataclass(frozen=True)
class MirrorRecord:
    name: str
    version: str
    metrics: dict[str, float]
    tags: dict[str, str]
    production: bool


def mirror_model_version(record: MirrorRecord, *, tracking_uri: str | None = None) -> None:
    """Create or update ``record`` in the MLflow registry at ``tracking_uri`` (settings when omitted).

    Raises what the MLflow client raises (the call site logs it and the next registration,
    evaluation or promotion mirrors again).
    """
    if tracking_uri is None:
        from django.conf import settings

        tracking_uri = str(settings.MLFLOW_TRACKING_URI)
    if not tracking_uri:
        raise ValueError("no MLflow tracking URI: set MLFLOW_TRACKING_URI")
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    tags = {**{k: v[:_TAG_VALUE_MAX] for k, v in record.tags.items()}, NAME_TAG: record.name,
            VERSION_TAG: record.version}
    run_id = _run(client, record, tags)
    _registered_model(client, record.name)
    number = _model_version(client, record, run_id, tags)
    _alias(client, record, number)


def _run(client: MlflowClient, record: MirrorRecord, tags: dict[str, str]) -> str:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        experiment_id = experiment.experiment_id
    else:
        try:
            experiment_id = client.create_experiment(EXPERIMENT, tags={"ftops.mirror": "true"})
        except MlflowException as exc:  # another worker created it in between
            if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
            found = client.get_experiment_by_name(EXPERIMENT)
            assert found is not None
            experiment_id = found.experiment_id
    runs = client.search_runs(
        [experiment_id], max_results=1, order_by=["attributes.start_time ASC"],
        filter_string=f"tags.`{NAME_TAG}` = {_quote(record.name)} and tags.`{VERSION_TAG}` = {_quote(record.version)}")
    if runs:
        run = runs[0]
        run_id = str(run.info.run_id)
        logged: dict[str, Any] = dict(run.data.metrics)
        have_tags: dict[str, Any] = dict(run.data.tags)
    else:
        run = client.create_run(experiment_id, tags=tags, run_name=f"{record.name}-v{record.version}")
        run_id = str(run.info.run_id)
        client.set_terminated(run_id, status="FINISHED")
        logged, have_tags = {}, dict(tags)
    timestamp = int(run.info.start_time or 0)
    metrics = [Metric(key=_METRIC_KEY.sub("_", key), value=float(value), timestamp=timestamp, step=0)
               for key, value in sorted(record.metrics.items())]
    changed = [m for m in metrics if logged.get(m.key) != m.value]
    new_tags = [RunTag(key, value) for key, value in sorted(tags.items()) if have_tags.get(key) != value]
    if changed or new_tags:
        client.log_batch(run_id, metrics=changed, tags=new_tags)
    return run_id


def _registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
        return
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            raise
    try:
        client.create_registered_model(name, tags={"ftops.mirror": "true"},
                                       description="Mirrored from ftops, which stays the source of truth.")
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise


def _model_version(client: MlflowClient, record: MirrorRecord, run_id: str, tags: dict[str, str]) -> str:
    found = client.search_model_versions(
        f"name = {_quote(record.name)} and tags.`{VERSION_TAG}` = {_quote(record.version)}")
    if found:
        existing = min(found, key=lambda mv: int(mv.version))  # a lost race leaves a second; keep the first
        number = str(existing.version)
        for key, value in sorted(tags.items()):
            if existing.tags.get(key) != value:
                client.set_model_version_tag(record.name, number, key, value)
        return number
    run = client.get_run(run_id)
    created = client.create_model_version(record.name, source=f"{run.info.artifact_uri}/model", run_id=run_id,
                                          tags=tags, description=f"ftops {record.name} v{record.version}")
    return str(created.version)


def _alias(client: MlflowClient, record: MirrorRecord, number: str) -> None:
    current = client.get_registered_model(record.name).aliases.get(PRODUCTION_ALIAS)
    if record.production and str(current) != number:
        client.set_registered_model_alias(record.name, PRODUCTION_ALIAS, number)
    elif not record.production and current is not None and str(current) == number:
        client.delete_registered_model_alias(record.name, PRODUCTION_ALIAS)


def _quote(value: str) -> str:
    """A string literal for MLflow's filter syntax (single quotes, backslash escapes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
