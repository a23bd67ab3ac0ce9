"""Quality filters for production interactions (pure; thresholds from ``FilterConfig``)."""

from __future__ import annotations

from typing import Any

from ftops.core.toolcalls import stored_calls
from ftops.datasets.config import FilterConfig


def rejection_reason(
    *,
    query: str,
    response_text: str,
    latency_ms: int | None,
    call_valid: bool,
    has_calls: bool,
    cfg: FilterConfig,
) -> str | None:
    """Why an interaction must not become an example, or None when it passes every filter."""
    length = len(query.strip())
    if length < cfg.min_query_chars:
        return "query_too_short"
    if length > cfg.max_query_chars:
        return "query_too_long"
    if len(response_text) > cfg.max_response_chars:
        return "response_too_long"
    lowered = response_text.lower()
    if any(word.lower() in lowered for word in cfg.error_text):
        return "error_text"
    if latency_ms is not None and latency_ms > cfg.max_latency_ms:
        return "too_slow"
    if not has_calls:
        return "no_call"
    if cfg.schema_valid_calls_only and not call_valid:
        return "invalid_call"
    return None


def normalise_calls(tool_calls: Any) -> list[dict[str, Any]]:
    """The stored calls in canonical form (``ftops.core.toolcalls``); unreadable ones keep ``arguments_raw``."""
    return stored_calls(tool_calls)


def has_unreadable_call(calls: list[dict[str, Any]]) -> bool:
    return any("arguments_raw" in call for call in calls)


def expected_from_calls(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """A production call becomes the expected call with each value its single acceptable value."""
    return {"calls": [{"name": c["name"], "arguments": {k: [v] for k, v in c["arguments"].items()}} for c in calls]}
