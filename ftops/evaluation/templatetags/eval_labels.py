"""``{{ name|group_label:"category" }}``: the display name of a stored evaluation group name."""

from __future__ import annotations

from django import template

from ftops.evaluation.selectors import group_label as _group_label
from ftops.evaluation.selectors import group_meaning as _group_meaning

register = template.Library()


@register.filter
def group_label(name: str, key: str) -> str:
    return _group_label(str(key), str(name or ""))


@register.filter
def group_meaning(name: str, key: str) -> str:
    return _group_meaning(str(key), str(name or ""))
