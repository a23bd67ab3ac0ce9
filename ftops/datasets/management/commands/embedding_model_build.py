"""python manage.py embedding_model_build [--rebuild]: build (or find) the cached int8 embedding export."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ftops.datasets.embeddings import INT8_RECIPE, int8_model_dir


class Command(BaseCommand):
    help = (
        "Export the packaged all-MiniLM-L6-v2 to int8 ONNX under var/models/embeddings/ (offline; keyed by the "
        "model's hash), so the first curation with FTOPS_EMBEDDING_BACKEND=int8 does not pay for the build."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rebuild", action="store_true", help="build again even when a cached export exists")

    def handle(self, *args: Any, **opts: Any) -> None:
        started = time.perf_counter()
        try:
            folder = int8_model_dir(rebuild=opts["rebuild"])
        except Exception as exc:  # the export touches torch, onnx and onnxruntime: report any failure plainly
            raise CommandError(f"the int8 embedding export failed: {exc}") from exc
        meta = json.loads((folder / "meta.json").read_text())
        self.stdout.write(f"int8 embedding model: {folder}")
        self.stdout.write(f"  recipe {INT8_RECIPE}, built in {meta['build_seconds']}s, "
                          f"ready after {time.perf_counter() - started:.1f}s")
