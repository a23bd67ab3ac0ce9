"""python manage.py catalog_import SOURCE [--format ...] [--service NAME] [--skip-invalid]."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ftops.catalog.importers import FORMATS, SourceUnavailable
from ftops.catalog.services import catalog_import
from ftops.common.actors import Actor
from ftops.common.errors import FtopsError


class Command(BaseCommand):
    help = (
        "Import tools into the catalog from a file (per-tool training documents, OpenAI tools, BFCL function "
        "docs), an MCP server command (stdio) or an MCP streamable-HTTP URL. Prints what was created."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", help="file path, MCP server command (quoted) or http(s):// MCP URL")
        parser.add_argument("--format", choices=FORMATS, default=None, help="detected when left out")
        parser.add_argument("--service", default=None, help="service name (default: from the source)")
        parser.add_argument("--skip-invalid", action="store_true",
                            help="import the valid examples and list the invalid ones instead of refusing all")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            report = catalog_import(source=opts["source"], fmt=opts["format"], service=opts["service"],
                                    skip_invalid=opts["skip_invalid"], by=Actor.cli())
        except FtopsError as exc:
            details = [f"  {field}: {messages}" for field, messages in list(exc.fields.items())[:20]]
            if isinstance(exc, SourceUnavailable):
                # The operator at the console may see the real reason; API callers never do.
                details.append(f"  reason: {exc.reason}" + (
                    " (allow it with FTOPS_OUTBOUND_ALLOW)" if exc.kind == "refused" else ""))
            raise CommandError("\n".join([exc.message, *details])) from None
        for line in report.lines():
            self.stdout.write(line)
        if not report.changed:
            self.stdout.write("nothing changed: the catalog already had this content")
