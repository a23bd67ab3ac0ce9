"""``manage.py cycle start [--service X]`` / ``cycle list`` / ``cycle tick`` / ``cycle hygiene KIND``: improvement
cycles (and scheduled data hygiene) from the shell."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ftops.common.actors import Actor
from ftops.common.errors import FtopsError
from ftops.loop.cycles import STAGE_NAMES, cycle_start, cycles_tick
from ftops.loop.hygiene import hygiene_run
from ftops.loop.models import ENTERPRISE_SCOPE, Cycle, CycleOrigin, HygieneKind


class Command(BaseCommand):
    help = "Start an improvement cycle, list cycles, or run one pass of the loop's clock."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        start = sub.add_parser("start", help="start a cycle now (runs here in the embedded default)")
        start.add_argument("--service", default="", help="a catalog service; default: the enterprise")
        start.add_argument("--reason", default="", help="why (shown on the cycle page)")
        sub.add_parser("list", help="the latest cycles")
        sub.add_parser("tick", help="reap stages, start a due scheduled cycle, start cycles for waiting firings")
        hygiene = sub.add_parser("hygiene", help="rebuild the latest dataset version now (holdout refresh or "
                                                 "zero-shot rotation), as the schedule would")
        hygiene.add_argument("kind", choices=list(HygieneKind.values))

    def handle(self, *args: Any, **opts: Any) -> None:
        action = opts["action"]
        if action == "list":
            for cycle in Cycle.objects.prefetch_related("stages").order_by("-created_at")[:20]:
                done = sum(1 for s in cycle.stages.all() if s.status == "succeeded")
                self.stdout.write(f"{cycle.pk}\t{cycle.scope}\t{cycle.origin}\t{cycle.status}\t"
                                  f"{done}/{len(STAGE_NAMES)}\t{cycle.backend or '-'}")
            return
        if action == "hygiene":
            run = hygiene_run(kind=opts["kind"], actor=Actor.cli())
            self.stdout.write(run.note)
            return
        if action == "tick":
            self.stdout.write(str(cycles_tick()))
            return
        actor = Actor.cli()
        try:
            cycle = cycle_start(actor=actor, scope=opts["service"] or ENTERPRISE_SCOPE, origin=CycleOrigin.MANUAL,
                                reason=opts["reason"] or f"started from the command line by {actor.label}")
        except FtopsError as exc:
            raise CommandError(exc.message) from None
        cycle.refresh_from_db()
        done = cycle.stages.filter(status="succeeded").count()
        self.stdout.write(f"cycle {cycle.pk} ({cycle.scope}): {cycle.status}, {done}/{len(STAGE_NAMES)} stages done")
        if cycle.error:
            self.stdout.write(f"error: {cycle.error}")
