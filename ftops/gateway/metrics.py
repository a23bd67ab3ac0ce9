"""Prometheus metrics of the gateway process (``GET /metrics``).

A registry of its own rather than the global one, so importing this module in a web or
worker process registers nothing there. Labels are bounded: a deployment is a scope, an arm
is production/canary/direct, an upstream is an admin-registered credential name.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)
LABELS = ("deployment", "arm", "upstream")

REQUESTS = Counter("ftops_gateway_requests", "Chat completion requests routed, by outcome",
                   [*LABELS, "status"], registry=REGISTRY)
ERRORS = Counter("ftops_gateway_errors", "Upstream failures (error, timeout) and canary fallbacks",
                 [*LABELS, "kind"], registry=REGISTRY)
LATENCY = Histogram("ftops_gateway_request_seconds", "Time from request to the last byte of the answer",
                    LABELS, registry=REGISTRY,
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120))
REJECTED = Counter("ftops_gateway_rejected", "Requests refused before routing (auth, bad request, unknown model)",
                   ["status"], registry=REGISTRY)
LOGGED = Counter("ftops_gateway_logged_calls", "Calls stored as interactions", registry=REGISTRY)
SPOOLED = Counter("ftops_gateway_spooled_calls", "Call records spooled to disk while the database was away",
                  registry=REGISTRY)
LOG_PENDING = Gauge("ftops_gateway_log_pending", "Call records buffered in memory, not yet written",
                    registry=REGISTRY)
SPOOL_FILES = Gauge("ftops_gateway_spool_files", "Spool files waiting for replay", registry=REGISTRY)


# ``labels()`` validates and locks on every call; the label sets are few and bounded, so the
# request path looks each child up once.
@lru_cache(maxsize=4096)
def requests(deployment: str, arm: str, upstream: str, status: str) -> Any:
    return REQUESTS.labels(deployment, arm, upstream, status)


@lru_cache(maxsize=4096)
def latency(deployment: str, arm: str, upstream: str) -> Any:
    return LATENCY.labels(deployment, arm, upstream)
