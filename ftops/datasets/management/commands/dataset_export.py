"""Export one split of a dataset version as fine-tuning JSONL (OpenAI or Hugging Face format)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ftops.common.actors import Actor
from ftops.common.errors import FtopsError
from ftops.common.models import AuditAction
from ftops.datasets.exports import FORMATS
from ftops.datasets.models import Split
from ftops.datasets.selectors import version_get
from ftops.datasets.services.export import dataset_export


class Command(BaseCommand):
    help = "Write --split of --version (a number or 'latest') as --format openai|hf JSONL to --out."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # Our --version names a dataset version; it replaces Django's "--version" (print Django's).
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--version", dest="dataset_version", required=True, help="A number or 'latest'")
        parser.add_argument("--split", required=True, choices=Split.values)
        parser.add_argument("--format", dest="fmt", required=True, choices=FORMATS)
        parser.add_argument("--out", required=True, help="Output file ('-' for stdout)")
        parser.add_argument("--dimension", default="", help="Only this evaluation dimension")
        parser.add_argument("--allow-holdout", action="store_true", help="Needed to export the holdout split")
        parser.add_argument("--strict", action="store_true", help="Fail when any example is refused")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            version = version_get(number=options["dataset_version"])
            # Audited as an export by whoever runs the command, with the row count.
            result = dataset_export(version=version, split=options["split"], fmt=options["fmt"], by=Actor.cli(),
                                    dimension=options["dimension"] or None, allow_holdout=options["allow_holdout"],
                                    action=AuditAction.DATASET_EXPORTED, via="cli")
        except FtopsError as exc:
            raise CommandError(str(exc)) from exc
        for record_id, reason in result.refused:
            self.stderr.write(f"refused example {record_id}: {reason}")
        if result.refused and options["strict"]:
            raise CommandError(f"{len(result.refused)} example(s) refused; nothing written")
        body = "\n".join(result.lines) + ("\n" if result.lines else "")
        if options["out"] == "-":
            sys.stdout.write(body)
        else:
            out = Path(options["out"])
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(out.suffix + ".tmp")
            tmp.write_text(body, encoding="utf-8")
            tmp.replace(out)  # never leave a half-written file behind
        self.stderr.write(f"dataset v{version.number} {options['split']}: wrote {len(result.lines)} lines "
                          f"({options['fmt']}), refused {len(result.refused)}")
