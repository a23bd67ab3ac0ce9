"""``manage.py monthly-report --month 2026-11 [--send] [--force]``: production vs offline accuracy."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from ftops.reports.selectors import month_parse, monthly_report_build, previous_month
from ftops.reports.services import monthly_report_send


class Command(BaseCommand):
    help = "Print a month's production-vs-offline accuracy report, or send it (--send) to approvers and admins."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--month", default="", help="YYYY-MM; default: last month")
        parser.add_argument("--send", action="store_true", help="send it through the notifications")
        parser.add_argument("--force", action="store_true", help="with --send: send even if it went out already")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            month = month_parse(opts["month"]) if opts["month"] else previous_month(timezone.now().date())
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if opts["send"]:
            report = monthly_report_send(month=month, force=opts["force"])
            if report is None:
                self.stdout.write(f"the report for {month:%Y-%m} was sent already (use --force to send it again)")
                return
            self.stdout.write(f"sent: {report.subject}")
        else:
            report = monthly_report_build(month=month)
            self.stdout.write(report.subject)
        self.stdout.write(report.text())
