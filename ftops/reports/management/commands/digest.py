"""``manage.py digest [--dry-run] [--force]``: the daily review digest from the shell."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from ftops.reports.selectors import digest_build
from ftops.reports.services import digest_send, stale_hours


class Command(BaseCommand):
    help = "Print (--dry-run) or send today's review digest to the reviewers who opted in."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="print the digest; send nothing")
        parser.add_argument("--force", action="store_true", help="send even if today's digest went out already")

    def handle(self, *args: Any, **opts: Any) -> None:
        now = timezone.now()
        if opts["dry_run"]:
            digest = digest_build(now=now, stale_hours=stale_hours())
            self.stdout.write(digest.subject)
            self.stdout.write(digest.text(now=now))
            return
        sent = digest_send(now=now, force=opts["force"])
        if sent is None:
            self.stdout.write("today's digest was sent already (use --force to send it again)")
        elif not sent.total:
            self.stdout.write("the review queue is empty: nothing sent")
        else:
            self.stdout.write(f"sent: {sent.subject}")
