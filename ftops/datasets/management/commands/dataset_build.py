"""Build a dataset version from the collected examples and print its number."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ftops.common.errors import FtopsError
from ftops.datasets.config import ConfigError
from ftops.datasets.services import dataset_version_build, examples_collect_production


class Command(BaseCommand):
    help = "Collect production examples (unless --no-collect), build a dataset version, print its number."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--rotation", type=int, default=0, help="Which zero-shot tool window to hold out")
        parser.add_argument("--time-holdout-days", type=int, default=None,
                            help="Put examples of the last N days in the holdout (default: config file)")
        parser.add_argument("--service", action="append", default=[], help="Only this service (repeatable)")
        parser.add_argument("--no-collect", action="store_true", help="Do not collect production examples first")
        parser.add_argument("--no-dedup", action="store_true")
        parser.add_argument("--no-diversity", action="store_true")
        parser.add_argument("--report", action="store_true", help="Also print the quality report as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        params: dict[str, Any] = {"rotation": options["rotation"], "services": options["service"],
                                  "dedup": not options["no_dedup"], "diversity": not options["no_diversity"]}
        if options["time_holdout_days"] is not None:
            params["time_holdout_days"] = options["time_holdout_days"]
        try:
            if not options["no_collect"]:
                collected = examples_collect_production()
                self.stderr.write(f"collected {collected.created} production examples "
                                  f"({collected.considered} considered, rejected {collected.rejected})")
            version = dataset_version_build(seed=options["seed"], params=params, actor="cli")
        except (FtopsError, ConfigError) as exc:
            detail = f" {exc.fields}" if isinstance(exc, FtopsError) and exc.fields else ""
            raise CommandError(f"{exc}{detail}") from exc
        self.stderr.write(f"dataset version {version.number}: {version.counts} hash {version.content_hash[:12]}")
        if options["report"]:
            self.stderr.write(json.dumps(version.quality_report, indent=2))
        self.stdout.write(str(version.number))
