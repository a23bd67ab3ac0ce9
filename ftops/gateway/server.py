"""Running the gateway under uvicorn (``python -m ftops.gateway`` and ``manage.py gateway``)."""

from __future__ import annotations

import uvicorn
from django.conf import settings


def serve(*, host: str | None = None, port: int | None = None, workers: int | None = None,
          log_level: str = "warning") -> None:
    workers = workers or settings.FTOPS_GATEWAY_WORKERS
    # uvloop and httptools when installed (the pinned defaults); access logs off: the metrics
    # and the call log already count every request, and a log line per call costs latency.
    uvicorn.run("ftops.gateway.asgi:application", host=host or settings.FTOPS_GATEWAY_HOST,
                port=port or settings.FTOPS_GATEWAY_PORT, workers=workers, loop="auto", http="auto",
                lifespan="on", access_log=False, log_level=log_level, timeout_graceful_shutdown=30)
