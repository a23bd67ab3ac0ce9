"""python manage.py demo [--no-serve]: set up the sample enterprise, run the pipeline, serve."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ftops.common.demo import DemoContext, run_demo

DEMO_USER = "admin"
DEMO_PASSWORD = "ftops-demo"


class Command(BaseCommand):
    help = "Migrate, load the sample enterprise, run the pipeline end to end, then serve the dashboard."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-serve", action="store_true", help="run the pipeline, print the summary, exit")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--quick", action="store_true", help="smaller data and shorter training")
        parser.add_argument("--addr", default="127.0.0.1:8000")

    def handle(self, *args: Any, **opts: Any) -> None:
        call_command("migrate", verbosity=0, interactive=False)
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username=DEMO_USER, defaults={"is_staff": True, "is_superuser": True, "email": "admin@acme.example"}
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        ctx = DemoContext(seed=opts["seed"], quick=opts["quick"], out=lambda m: self.stdout.write(m))
        run_demo(ctx)
        self.stdout.write("")
        self.stdout.write("== ftops demo summary ==")
        for key, value in ctx.summary.items():
            if key == "stage_seconds":
                continue
            self.stdout.write(f"{key}: {value}")
        total = sum(ctx.summary.get("stage_seconds", {}).values())
        self.stdout.write(f"pipeline_seconds: {total:.1f}")
        self.stdout.write(f"login: http://{opts['addr']}/  user '{DEMO_USER}'  password '{DEMO_PASSWORD}'")
        if ctx.failures:
            failed = "; ".join(ctx.failures)
            if opts["no_serve"]:
                # Scripts read the exit status: a pipeline that did not finish is not a success.
                raise CommandError(f"the demo pipeline did not finish: {failed}")
            self.stderr.write(f"warning: the demo pipeline did not finish ({failed}); serving what it made")
        if opts["no_serve"]:
            return
        call_command("runserver", opts["addr"], use_reloader=False, insecure_serving=True)
