"""Small template filters for the review and dashboard pages."""

from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()


@register.filter
def get_item_or_raw(mapping: Any, key: Any) -> Any:
    """``mapping[key]`` when present, else ``key`` itself (labels for codes, objects by name)."""
    try:
        return mapping[key]
    except (KeyError, TypeError, IndexError):
        return key


# One word per state across the review pages: an item nobody has decided on is "Open", as in the
# queue's "Open" tab (the stored status is "pending").
STATUS_WORDS = {"pending": "Open", "claimed": "Claimed", "corrected": "Corrected", "rejected": "Rejected",
                "skipped": "Skipped"}


@register.filter
def status_word(status: Any) -> str:
    """The word the review pages use for a stored item status."""
    return STATUS_WORDS.get(str(status), str(status).capitalize())


@register.filter
def json_text(value: Any) -> str:
    """Pretty JSON for showing calls and schemas (escaped by the template like any text)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)
