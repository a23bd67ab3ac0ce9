"""Typed readers for environment variables that fail loudly on malformed values."""

from __future__ import annotations

import os
import re
from collections.abc import Collection


class SettingsError(RuntimeError):
    """A setting's environment variable holds a value ftops cannot use."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean; use one of 1/0, true/false, yes/no, on/off")


def env_int(name: str, default: int, *, minimum: int | None = 0, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name}={value} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name}={value} must be at most {maximum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


# DRF reads only the first letter of the unit (``parse_rate``), so "10/fast" would pass as
# "per forever" only to fail on the first request; accept the spellings people write.
_RATE_RE = re.compile(
    r"([0-9]+)/(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?)", re.IGNORECASE
)


def env_rate(name: str, default: str) -> str:
    """A DRF throttle rate such as ``6000/min``, checked now rather than on the first request."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip()
    match = _RATE_RE.fullmatch(value)
    if match is None or int(match.group(1)) < 1:
        raise SettingsError(
            f"{name}={raw!r} is not a request rate; use <count>/<unit> with a count of at least 1 and a unit "
            "of sec, min, hour or day, e.g. 6000/min"
        )
    # DRF looks at the unit's first letter only, and only in lower case.
    return f"{int(match.group(1))}/{match.group(2).lower()}"


def env_url(name: str, default: str, *, schemes: Collection[str], example: str, several: bool = False) -> str:
    """A URL whose scheme is one of ``schemes``; ``several``: a ``;``-separated failover list.

    ``scheme+driver://`` (kombu's ``sqla+postgresql://``, ``redis+socket://``) counts by its
    first part. Errors name the scheme only: the rest of a broker URL may hold a password.
    """
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip()
    known = sorted(schemes)
    for url in value.split(";") if several else [value]:
        scheme, sep, _ = url.strip().partition("://")
        if not sep or not scheme:
            raise SettingsError(f"{name} is not a URL (no scheme://); expected e.g. {example}")
        if scheme.lower() not in schemes and scheme.lower().split("+", 1)[0] not in schemes:
            raise SettingsError(f"{name} has the unsupported scheme {scheme!r}; use one of {known}, e.g. {example}")
    return value
