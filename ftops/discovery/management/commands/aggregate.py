"""python manage.py aggregate [--source NAME ...] [--add NAME --url URL [--credential NAME]] [--json]"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ftops.common.actors import Actor
from ftops.common.errors import FtopsError
from ftops.discovery.services import aggregate_all, aggregation_source_save


class Command(BaseCommand):
    help = "Pull training examples from the configured aggregation sources (partial failure is reported)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", action="append", default=[], help="Only this source (repeatable)")
        parser.add_argument("--add", metavar="NAME", help="Register (or update) a source first")
        parser.add_argument("--url", help="Base URL of the source given with --add")
        parser.add_argument("--credential", default="", help="Upstream credential name for --add")
        parser.add_argument("--timeout", type=float, default=10.0, help="Per-request timeout (s) for --add")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        by = Actor.cli()
        if options["add"]:
            if not options["url"]:
                raise CommandError("--add needs --url")
            try:
                aggregation_source_save(name=options["add"], base_url=options["url"], by=by,
                                        credential_name=options["credential"], timeout_s=options["timeout"])
            except FtopsError as exc:
                raise CommandError(f"{exc}: {getattr(exc, 'fields', '')}") from None
        report = aggregate_all(by=by, sources=options["source"] or None)
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
            return
        for o in report.outcomes:
            line = (f"{o.source}: {o.status} services={len(o.services)} pulled={o.pulled} created={o.created} "
                    f"duplicates={o.duplicates} invalid={o.invalid} tools={o.tools_imported}")
            self.stdout.write(line + (f" error={o.error}" if o.error else ""))
        self.stdout.write(f"aggregated: {report.pulled} examples from {report.services} services "
                          f"({report.created} new, {len(report.failed)} source(s) failed)")
