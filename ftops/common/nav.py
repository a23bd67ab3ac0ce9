"""Navigation shown in the base layout; entries whose page is not installed are skipped."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

NAV = [
    ("review", "Review", "review:queue"),
    ("catalog", "Catalog", "catalog:services"),
    ("interactions", "Interactions", "interactions:list"),
    ("datasets", "Datasets", "datasets:versions"),
    ("training", "Training", "training:runs"),
    ("evaluation", "Evaluation", "evaluation:runs"),
    ("registry", "Registry", "registry:models"),
    ("loop", "Cycles", "loop:cycles"),
    ("discovery", "Publishing", "discovery:publishing_list"),
    ("notifications", "Notifications", "notifications"),
]


def nav_items(request: HttpRequest) -> dict[str, Any]:
    items = []
    for key, label, url_name in NAV:
        try:
            items.append({"key": key, "label": label, "url": reverse(url_name)})
        except NoReverseMatch:
            continue
    return {"nav_items": items}
