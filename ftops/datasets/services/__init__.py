"""Writes for curation: examples, production collection, dataset versions, schema evolution.

Retraining triggers moved to the loop (``ftops.loop.services``): they read evaluation rows.

Import from here (``ftops.datasets.services.example_create``); the submodules group the work.
"""

from ftops.datasets.services.collection import CollectReport, examples_collect_production
from ftops.datasets.services.examples import example_create, example_update, example_validate_and_prepare
from ftops.datasets.services.versions import (
    dataset_version_build,
    dataset_version_create,
    dataset_version_execute,
)

__all__ = [
    "CollectReport",
    "dataset_version_build",
    "dataset_version_create",
    "dataset_version_execute",
    "example_create",
    "example_update",
    "example_validate_and_prepare",
    "examples_collect_production",
]
