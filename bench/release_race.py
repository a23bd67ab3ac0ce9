"""Concurrent promotions on PostgreSQL: at most one production version per scope, held by the database.

    .venv/bin/python bench/release_race.py [--n 100] [--workers 32] [--scopes 1]

A scratch database is created and migrated (``--db``, dropped afterwards unless ``--keep``),
``--n`` approved versions are registered, then promoted all at once: ``--workers`` threads,
each with its own PostgreSQL connection, start together behind a barrier and take the
promotions from one queue (PostgreSQL allows about 100 connections, which other processes
share). Two rounds:

1. compare-and-swap, as the API's ``replaces`` field: every promotion says production was
   empty when it decided. Exactly one may win; every other must get a 409 (Conflict) -
   either its conditional UPDATE or its INSERT lost to the winner on the partial unique index
   ``uniq_production_per_scope``, or it saw the winner already there.
2. last-writer-wins (no ``replaces``): promotions that run after the winner committed replace
   it in turn, so several may succeed, but at no moment are two versions in production for
   one scope; promotions that overlap still collide on the index and get a 409.

After each round the database is asked directly how many production deployments each scope
holds. Any answer other than success or 409 (a 500, a deadlock surfacing) is counted as an error.
Last line: ``production_per_scope: <max over scopes>`` (1 when it holds).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="promotions (and versions) per round")
    parser.add_argument("--workers", type=int, default=32, help="threads, one database connection each")
    parser.add_argument("--scopes", type=int, default=1, help="spread promotions over this many service scopes "
                                                               "(1: the enterprise scope only)")
    parser.add_argument("--pg", default=os.environ.get("FTOPS_BENCH_PG", "postgres://postgres@127.0.0.1:5432/test"),
                        help="PostgreSQL URL of an existing database used to create the scratch one")
    parser.add_argument("--db", default="ftops_bench_release_race", help="scratch database (created and dropped)")
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args()


def recreate_database(base: str, name: str, *, drop_only: bool = False) -> None:
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if not drop_only:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def race(jobs: list[tuple[int, str]], *, workers: int, cas: bool) -> tuple[Counter[str], float]:
    """Run the promotions; outcome counts ("won", "409 ...", "error ...") and seconds."""
    from django.db import connection

    from ftops.common.actors import Actor
    from ftops.common.errors import Conflict
    from registry.services import model_version_promote

    queue = list(reversed(jobs))
    lock = threading.Lock()
    outcomes: Counter[str] = Counter()
    barrier = threading.Barrier(workers)

    def worker(n: int) -> None:
        actor = Actor(label=f"approver-{n}")
        try:
            connection.ensure_connection()  # connect before the start line, not in the race
            barrier.wait()
            while True:
                with lock:
                    if not queue:
                        return
                    version_id, scope = queue.pop()
                try:
                    extra: dict[str, Any] = {"expected_current": None} if cas else {}
                    model_version_promote(model_version_id=version_id, by=actor, scope=scope, reason="race",
                                          **extra)
                    result = "won"
                except Conflict as exc:
                    result = "409 " + ("stale view" if "changed meanwhile" in exc.message else "lost the insert/update")
                except Exception as exc:  # anything else is a bug the bench must show
                    result = f"error {type(exc).__name__}: {str(exc)[:80]}"
                with lock:
                    outcomes[result] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes, time.perf_counter() - started


def production_counts() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT scope, count(*) FROM registry_deployment WHERE state = 'production' GROUP BY scope")
        return {scope: int(count) for scope, count in cursor.fetchall()}


def main() -> int:
    args = parse_args()
    db_url = f"{args.pg.rpartition('/')[0]}/{args.db}"
    os.environ.update({"DJANGO_SETTINGS_MODULE": "ftops.settings", "DATABASE_URL": db_url,
                       "FTOPS_VAR_DIR": tempfile.mkdtemp(prefix="ftops-race-"), "FTOPS_LOG_LEVEL": "ERROR"})
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    recreate_database(args.pg, args.db)
    try:
        import django

        django.setup()
        from django.core.management import call_command

        from ftops.catalog.models import Service
        from ftops.common.actors import Actor
        from registry.models import ModelVersion, VersionStatus
        from registry.services import model_version_approve, model_version_register

        call_command("migrate", verbosity=0)
        scopes = ["enterprise"] if args.scopes <= 1 else [f"svc{i}" for i in range(args.scopes)]
        for scope in scopes:
            if scope != "enterprise":
                Service.objects.create(name=scope)
        worst = 0
        for round_no, cas in ((1, True), (2, False)):
            registrar, approver = Actor(label="registrar"), Actor(label="approver")
            jobs: list[tuple[int, str]] = []
            for i in range(args.n):
                scope = scopes[i % len(scopes)]
                version = model_version_register(base_model=f"/models/race-{round_no}", artifact_path=f"/a/{i}",
                                                 scope="enterprise", by=registrar)
                ModelVersion.objects.filter(pk=version.pk).update(status=VersionStatus.GATES_PASSED)
                model_version_approve(model_version_id=version.pk, by=approver, comment="race")
                jobs.append((version.pk, scope))
            if round_no == 2:
                from registry.models import Deployment

                Deployment.objects.filter(state="production").update(state="retired")  # start round 2 empty
            outcomes, seconds = race(jobs, workers=min(args.workers, args.n), cas=cas)
            counts = production_counts()
            worst = max([worst, *counts.values()]) if counts else worst
            label = "compare-and-swap" if cas else "last-writer-wins"
            print(f"round {round_no} ({label}): {args.n} promotions over {len(scopes)} scope(s), "
                  f"{min(args.workers, args.n)} connections, {seconds:.2f} s")
            for outcome, count in sorted(outcomes.items()):
                print(f"  {outcome}: {count}")
            print(f"  production deployments per scope: {counts}")
            errors = sum(c for o, c in outcomes.items() if o.startswith("error"))
            if cas and outcomes["won"] != len(scopes):
                print(f"  FAIL: {outcomes['won']} winners, expected {len(scopes)}")
                worst = max(worst, 2)
            if errors or set(counts) != set(scopes):
                print("  FAIL: unexpected errors or a scope without production")
                worst = max(worst, 2)
        print(f"production_per_scope: {worst}")
        return 0 if worst == 1 else 1
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            recreate_database(args.pg, args.db, drop_only=True)


if __name__ == "__main__":
    raise SystemExit(main())
