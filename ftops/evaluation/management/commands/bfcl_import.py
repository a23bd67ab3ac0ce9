"""python manage.py bfcl_import --data-dir DIR [--category CAT ...] [--name bfcl]"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ftops.common.errors import FtopsError
from ftops.evaluation.bfcl import default_data_dir
from ftops.evaluation.services import bfcl_suite_import


class Command(BaseCommand):
    help = ("Import BFCL question and answer files as an evaluation suite (every single-turn category, "
            "or those named; multi_turn_base when named).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--data-dir", default=None, help="BFCL data folder (default ../shared/bfcl when present)")
        parser.add_argument("--category", action="append", dest="categories", default=[], metavar="CAT",
                            help="import only this category (repeatable); default every single-turn category. "
                                 "multi_turn_base is imported when named (its runs need bfcl-eval)")
        parser.add_argument("--name", default="bfcl", help="suite name (default 'bfcl')")

    def handle(self, *args: Any, **opts: Any) -> None:
        data_dir = Path(opts["data_dir"]) if opts["data_dir"] else default_data_dir()
        if data_dir is None:
            raise CommandError("no BFCL data folder found; pass --data-dir DIR")
        try:
            result = bfcl_suite_import(data_dir=data_dir, categories=opts["categories"] or None, name=opts["name"])
        except FtopsError as exc:
            raise CommandError(exc.message) from exc
        suite = result.suite
        state = "unchanged" if result.unchanged else ("created" if result.created else "replaced")
        self.stdout.write(f"suite '{suite.name}' (id {suite.pk}) {state}: {result.cases} cases")
        for category, count in suite.categories.items():
            self.stdout.write(f"  {category}: {count}")
