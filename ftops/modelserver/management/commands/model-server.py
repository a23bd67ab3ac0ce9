"""``python manage.py model-server``: ftops' OpenAI-compatible server for a base model with LoRA adapters."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = ("Serve the local base model and its LoRA adapters with OpenAI's protocol (uvicorn): /v1/chat/completions, "
            "/v1/models and vLLM's /v1/load_lora_adapter and /v1/unload_lora_adapter")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", help="default FTOPS_MODEL_SERVER_HOST (127.0.0.1)")
        parser.add_argument("--port", type=int, help="default FTOPS_MODEL_SERVER_PORT (8200)")
        parser.add_argument("--base-model", help="default FTOPS_MODEL_SERVER_BASE_MODEL (FTOPS_BASE_MODEL)")
        parser.add_argument("--served-model-name", default="", help="the base model's id (default: its folder name)")
        parser.add_argument("--lora-modules", nargs="*", default=[], metavar="NAME=PATH",
                            help="adapters to load at start (paths inside FTOPS_MODEL_SERVER_ADAPTERS_ROOT), as vLLM")
        parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
        parser.add_argument("--constrained", action="store_true", default=None,
                            help="hold tool calls to the offered tools' schemas unless a request says "
                                 "ftops_constrained: false (default FTOPS_MODEL_SERVER_CONSTRAINED, off)")
        parser.add_argument("--log-level", default="warning")

    def handle(self, *args: Any, **options: Any) -> None:
        import uvicorn

        from ftops.modelserver.engine import EngineError
        from ftops.modelserver.server import server_from_settings

        if not settings.FTOPS_MODEL_SERVER_API_KEY:
            raise CommandError("set FTOPS_MODEL_SERVER_API_KEY: every request must carry it as a bearer token")
        server = server_from_settings(base_model=options["base_model"], base_name=options["served_model_name"],
                                      device=options["device"], constrained=options["constrained"])
        server.engine.load()
        for module in options["lora_modules"]:
            name, sep, path = module.partition("=")
            if not sep:
                raise CommandError(f"--lora-modules takes NAME=PATH, got {module!r}")
            try:
                server.engine.load_adapter(name, path)
            except EngineError as exc:
                raise CommandError(f"{name}: {exc.message}") from exc
        host = options["host"] or settings.FTOPS_MODEL_SERVER_HOST
        port = options["port"] or settings.FTOPS_MODEL_SERVER_PORT
        self.stdout.write(f"model server: {server.engine.base_name} with {len(server.engine.adapters)} adapter(s) "
                          f"on http://{host}:{port}/v1")
        uvicorn.run(server, host=host, port=port, lifespan="on", access_log=False, log_level=options["log_level"],
                    timeout_graceful_shutdown=30)
