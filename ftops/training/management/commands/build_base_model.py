"""Build the embedded tiny base model (tokenizer + small Llama) from the generic tool-calling corpus."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ftops.core.ml.base_model import BaseModelBuildTimeout, BaseModelConfig, build_base_model, is_built


class Command(BaseCommand):
    help = "Train the offline tiny base model (a few minutes on CPU) and save it with save_pretrained."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", default=str(settings.FTOPS_BASE_MODEL),
                            help="output folder (default: settings.FTOPS_BASE_MODEL)")
        parser.add_argument("--force", action="store_true", help="rebuild even when the folder holds a model")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--time-budget", type=float, default=None,
                            help="fail (saving nothing) if the build has not finished its fixed number of steps "
                                 "after this many seconds; 0: no guard (default from the config)")

    def handle(self, *args: Any, **options: Any) -> None:
        out = Path(options["out"])
        if is_built(out) and not options["force"]:
            self.stdout.write(f"base model already built at {out} (use --force to rebuild)")
            return
        if out.exists() and not is_built(out) and any(out.iterdir()) and not options["force"]:
            raise CommandError(f"{out} exists and is not an ftops base model; choose another --out or use --force")
        config = BaseModelConfig(seed=options["seed"])
        if options["time_budget"] is not None:
            if options["time_budget"] < 0:
                raise CommandError("--time-budget must be >= 0 seconds (0: no guard)")
            config = BaseModelConfig(seed=options["seed"], time_budget_s=options["time_budget"])
        tmp = out.parent / (out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            report = build_base_model(tmp, config=config, on_log=self.stdout.write)
        except BaseModelBuildTimeout as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise CommandError(str(exc)) from exc
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        self.stdout.write(self.style.SUCCESS(
            f"built {report.parameters / 1e6:.2f}M-parameter base model in {report.seconds:.0f}s "
            f"(loss {report.final_loss}, weights sha256 {report.weights_sha256[:16]}) -> {out}"))
