"""Exports of a dataset version's split, audited: who took which version and split, how many rows.

Training data is what the platform exists to protect, so every read of a whole split leaves an
audit row, whichever door it left by: the API download, the page's download link, or the
``dataset_export`` command (``Actor.cli()``). A refused holdout read is audited too.
"""

from __future__ import annotations

from ftops.common.actors import Actor
from ftops.common.errors import Forbidden
from ftops.common.models import AuditAction
from ftops.common.services import audit_record
from ftops.datasets.exports import ExportResult, export_records
from ftops.datasets.models import DatasetVersion, Split
from ftops.datasets.selectors import dataset_records


def dataset_export(
    *,
    version: DatasetVersion,
    split: str,
    fmt: str,
    by: Actor,
    dimension: str | None = None,
    allow_holdout: bool = False,
    action: AuditAction = AuditAction.DATASET_DOWNLOADED,
    via: str = "api",
) -> ExportResult:
    """The JSONL lines of one split in ``fmt``, with one audit row (``action``) saying how many.

    ``DATASET_DOWNLOADED`` when the lines go to an HTTP client, ``DATASET_EXPORTED`` when the
    command writes them to a file. Not in a transaction: a refusal's audit row must stay."""
    where = {"version": version.number, "split": split, "format": fmt, "dimension": dimension or "", "via": via}
    if split == Split.HOLDOUT and not allow_holdout:
        audit_record(action=AuditAction.HOLDOUT_EXPORT_DENIED, by=by, object_type="dataset_version",
                     object_id=version.number, detail=where)
        raise Forbidden("the holdout split is reserved for final evaluation; only an admin may export it")
    records = dataset_records(version=version, split=split, dimension=dimension, allow_holdout=allow_holdout)
    result = export_records(records, fmt)
    audit_record(action=action, by=by, object_type="dataset_version", object_id=version.number,
                 detail={**where, "rows": len(result.lines), "refused": len(result.refused)})
    return result
