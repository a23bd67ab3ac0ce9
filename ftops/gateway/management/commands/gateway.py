from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ftops.gateway.server import serve


class Command(BaseCommand):
    help = "Run the OpenAI-compatible gateway (uvicorn): POST /v1/chat/completions, GET /v1/models, /metrics"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", help="default FTOPS_GATEWAY_HOST (127.0.0.1)")
        parser.add_argument("--port", type=int, help="default FTOPS_GATEWAY_PORT (8100)")
        parser.add_argument("--workers", type=int, help="default FTOPS_GATEWAY_WORKERS (1)")
        parser.add_argument("--log-level", default="warning")

    def handle(self, *args: Any, **options: Any) -> None:
        serve(host=options["host"], port=options["port"], workers=options["workers"], log_level=options["log_level"])
