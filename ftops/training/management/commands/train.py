"""Start a training run on a dataset version (in this process, or queued for a training worker)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ftops.common.actors import Actor
from ftops.common.errors import FtopsError
from ftops.training.models import Backend


class Command(BaseCommand):
    help = ("Train on a dataset version: --backend lora|openai|fewshot. Runs here by default; "
            "--enqueue sends it to the 'training' queue (celery -A ftops worker -Q training --concurrency=1).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--backend", choices=Backend.values, default=Backend.LORA)
        parser.add_argument("--dataset-version", default="latest", help="version number or 'latest'")
        parser.add_argument("--base-model", default="", help="HF id, local folder or OpenAI model")
        parser.add_argument("--service", default="", help="train a per-service adapter on this service only")
        parser.add_argument("--name", default="")
        parser.add_argument("--config", default="{}", help='JSON overrides, e.g. \'{"epochs": 3, "lr": 2e-3}\'')
        parser.add_argument("--enqueue", action="store_true", help="queue the run instead of training here")

    def handle(self, *args: Any, **options: Any) -> None:
        from ftops.datasets.selectors import version_get
        from ftops.training.services import training_run_create, training_run_execute

        try:
            config = json.loads(options["config"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--config is not valid JSON: {exc.msg}") from exc
        if not isinstance(config, dict):
            raise CommandError("--config must be a JSON object")
        try:
            version = version_get(number=options["dataset_version"])
            run = training_run_create(backend=options["backend"], dataset_version=version, config=config,
                                      base_model=options["base_model"], service=options["service"],
                                      name=options["name"], actor=Actor.cli(), enqueue=options["enqueue"])
        except FtopsError as exc:
            detail = f" {exc.fields}" if exc.fields else ""
            raise CommandError(f"{exc.message}{detail}") from exc
        if options["enqueue"]:
            self.stdout.write(f"queued training run {run.pk} on the 'training' queue")
            return
        self.stdout.write(f"training run {run.pk} ({run.backend}, base {run.base_model}) ...")
        done = training_run_execute(run_id=run.pk)
        if done is None:
            raise CommandError(f"run {run.pk} is held by another worker")
        if done.status != "succeeded":
            raise CommandError(f"run {run.pk} {done.status}: {done.error}")
        self.stdout.write(self.style.SUCCESS(
            f"run {run.pk} succeeded: {done.artifact_path} ({done.metrics.get('final_loss', '')})"))
