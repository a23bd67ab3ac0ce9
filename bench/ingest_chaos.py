"""Ingest under fault injection: nothing lost, nothing stored twice, no unexplained 5xx.

    .venv/bin/python bench/ingest_chaos.py              # 100,000 interactions
    .venv/bin/python bench/ingest_chaos.py --n 20000    # a run of a few minutes

A production-style deployment on this machine: a PostgreSQL database of its own (created,
migrated and dropped), Redis (one database, flushed at start), gunicorn with 2 workers on
a free port, a Celery worker (prefork, 2 processes) and Celery beat (which runs the ingest
reaper and outbox sender). Two client threads send the interactions in batches, half of
them synchronous and half queued (``?async=1`` with an ``Idempotency-Key``), with replays
of earlier ids and ids shared between the clients (same bodies, so they are replays, not
conflicts). A chaos thread meanwhile SIGKILLs a gunicorn worker (the master starts a new
one) and the whole Celery worker (started again a moment later), in turn.

A client retries a request until it gets an answer: 503/409/429 after ``Retry-After``, a
dropped connection (its web worker was killed) at once. At the end every queued batch must
be final, and every id sent must be stored exactly once. Prints sent, stored, duplicates,
the 5xx answers (and whether each carried Retry-After); the last line is
``lost_or_duplicated: 0`` when it all holds.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import requests
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCHEMA = {
    "type": "object",
    "required": ["customer_id", "amount_cents", "currency"],
    "properties": {
        "customer_id": {"type": "string"}, "amount_cents": {"type": "integer", "minimum": 1},
        "currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]},
    },
}  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="interactions sent in all (default 100000)")
    parser.add_argument("--batch", type=int, default=250, help="interactions per request (default 250)")
    parser.add_argument("--replays", type=float, default=0.2, help="share of sends that repeat an earlier id")
    parser.add_argument("--async-share", type=float, default=0.5, help="share of batches sent with ?async=1")
    parser.add_argument("--chaos-every", type=float, default=6.0, help="seconds between kills (default 6)")
    parser.add_argument("--pg", default=os.environ.get("FTOPS_BENCH_PG", "postgres://postgres@127.0.0.1:5432/test"),
                        help="PostgreSQL URL of an existing database used to create the scratch one")
    parser.add_argument("--db", default="ftops_bench_chaos", help="scratch database name (created and dropped)")
    parser.add_argument("--redis", default=os.environ.get("FTOPS_BENCH_REDIS", "redis://127.0.0.1:6379/3"),
                        help="Redis database for the broker (flushed at start)")
    parser.add_argument("--lease", type=int, default=10, help="ingest batch lease in seconds (default 10)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--seed", type=int, default=11)
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scratch_url(base: str, name: str) -> str:
    return f"{base.rpartition('/')[0]}/{name}"


def recreate_database(base: str, name: str, *, drop_only: bool = False) -> None:
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if not drop_only:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def body(i: int) -> dict[str, Any]:
    """The one body of id ``i``: a replay sends exactly this again."""
    rng = random.Random(i)
    cust = f"cus_{rng.randint(1000, 99999)}"
    contact = f" Mail me at {cust[4:]}.user@example.com." if i % 5 == 0 else ""
    args: dict[str, Any] = {"customer_id": cust, "amount_cents": rng.randint(100, 50000), "currency": "USD"}
    if i % 7 == 0:
        del args["currency"]  # a schema failure now and then
    return {
        "id": f"chaos-{i:07d}", "service": "payments", "timestamp": f"2025-03-01T10:{i % 60:02d}:00Z",
        "messages": [{"role": "user", "content": f"Charge {cust} please.{contact}"}],
        "tools": ["create_payment"], "tool_calls": [{"name": "create_payment", "arguments": args}],
        "response_text": "Done.", "user_feedback": 1 + i % 5, "latency_ms": 100 + i % 400,
    }


# --- the deployment ---------------------------------------------------------------------------------


class Deployment:
    def __init__(self, env: dict[str, str], port: int, logs: Path) -> None:
        self.env, self.port, self.logs = env, port, logs
        self.gunicorn: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.beat: subprocess.Popen[bytes] | None = None

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        out = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115  (owned by the child for its life)
        # A session of its own, so a kill reaches the process group (prefork children too).
        return subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def start_web(self) -> None:
        self.gunicorn = self._spawn("gunicorn", [
            str(Path(sys.executable).with_name("gunicorn")), "ftops.wsgi:application", "--workers", "2",
            "--bind", f"127.0.0.1:{self.port}", "--timeout", "120", "--graceful-timeout", "5"])

    def start_worker(self) -> None:
        self.worker = self._spawn("worker", [
            sys.executable, "-m", "celery", "-A", "ftops", "worker", "-Q", "ingestion,default", "--concurrency=2",
            "--loglevel=WARNING", "-n", f"chaos-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle"])

    def start_beat(self) -> None:
        self.beat = self._spawn("beat", [
            sys.executable, "-m", "celery", "-A", "ftops", "beat", "--loglevel=WARNING",
            "-s", str(self.logs / "beat-schedule")])

    def web_workers(self) -> list[int]:
        if self.gunicorn is None:
            return []
        path = Path(f"/proc/{self.gunicorn.pid}/task/{self.gunicorn.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except OSError:
            return []

    def kill_web_worker(self, rng: random.Random) -> bool:
        workers = self.web_workers()
        if not workers:
            return False
        os.kill(rng.choice(workers), signal.SIGKILL)  # the master starts a replacement
        return True

    def kill_worker(self) -> None:
        if self.worker is not None:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait(timeout=30)

    def stop(self) -> None:
        for proc in (self.gunicorn, self.worker, self.beat):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in (self.gunicorn, self.worker, self.beat):
            if proc is None:
                continue
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


# --- clients ----------------------------------------------------------------------------------------


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.status: collections.Counter[int] = collections.Counter()
        self.five_xx_without_retry_after = 0
        self.connection_errors = 0
        self.sent = 0
        self.requests = 0
        self.batch_ids: set[int] = set()
        self.refused: list[str] = []

    def add(self, **kwargs: Any) -> None:
        with self.lock:
            for name, value in kwargs.items():
                setattr(self, name, getattr(self, name) + value)


def client(base_url: str, secret: str, chunks: list[tuple[list[int], bool]], tally: Tally) -> None:
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
    for ids, queued in chunks:
        data = json.dumps([body(i) for i in ids])
        headers = {"Idempotency-Key": f"chaos-{uuid.uuid4().hex}"} if queued else {}
        url = f"{base_url}/api/v1/interactions" + ("?async=1" if queued else "")
        while True:
            tally.add(requests=1)
            try:
                response = session.post(url, data=data, headers=headers, timeout=120)
            except requests.RequestException:
                tally.add(connection_errors=1)  # the web worker died with the request: send it again
                session.close()
                time.sleep(0.2)
                continue
            with tally.lock:
                tally.status[response.status_code] += 1
                if response.status_code >= 500 and "Retry-After" not in response.headers:
                    tally.five_xx_without_retry_after += 1
            if response.status_code in (200, 201, 202):
                if response.status_code == 202:
                    with tally.lock:
                        tally.batch_ids.add(int(response.json()["id"]))
                tally.add(sent=len(ids))
                break
            if response.status_code in (409, 429, 503) or response.status_code >= 500:
                time.sleep(min(float(response.headers.get("Retry-After", "1")), 10.0))
                continue
            with tally.lock:  # a 4xx that a retry cannot fix: a bug the run must show
                tally.refused.append(f"{response.status_code} {response.text[:300]}")
            break


# --- the run ----------------------------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    rng = random.Random(args.seed)
    db_url = scratch_url(args.pg, args.db)
    logs = Path(tempfile.mkdtemp(prefix="ftops-chaos-"))
    port = free_port()
    env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "ftops.settings", "DATABASE_URL": db_url,
        "CELERY_BROKER_URL": args.redis, "FTOPS_VAR_DIR": str(logs / "var"), "PYTHONUNBUFFERED": "1",
        "FTOPS_INGEST_LEASE_S": str(args.lease), "FTOPS_INGEST_REAP_EVERY_S": "2",
        "FTOPS_INGEST_RESEND_AFTER_S": str(2 * args.lease), "FTOPS_API_KEY_RATE": "100000/min",
        "FTOPS_INGEST_MAX_BATCH": str(max(1000, args.batch)), "FTOPS_LOG_LEVEL": "WARNING",
    }
    env.pop("REDIS_URL", None)
    os.environ.update(env)

    recreate_database(args.pg, args.db)
    import django

    django.setup()
    import redis
    from django.core.management import call_command

    from ftops.catalog.models import Service, Tool, ToolSchemaVersion
    from ftops.common.services import api_key_create
    from ftops.interactions.models import BatchStatus, IngestBatch, Interaction, idempotency_scope
    from ftops.interactions.verdicts import schema_hash

    call_command("migrate", verbosity=0)
    service = Service.objects.create(name="payments")
    tool = Tool.objects.create(service=service, name="create_payment")
    version = ToolSchemaVersion.objects.create(tool=tool, number=1, parameters=SCHEMA, content_hash=schema_hash(SCHEMA))
    tool.current_version = version
    tool.save(update_fields=["current_version"])
    issued = api_key_create(name="chaos", roles=["ingest"])
    redis.Redis.from_url(args.redis).flushdb()

    # Every id once, plus replays of earlier ones; the two clients take turns from one
    # shuffled stream, so each sees ids the other also sends.
    unique = max(1, int(args.n * (1 - args.replays)))
    stream = list(range(unique)) + [rng.randrange(unique) for _ in range(args.n - unique)]
    rng.shuffle(stream)
    chunks = [(stream[i : i + args.batch], rng.random() < args.async_share) for i in range(0, len(stream), args.batch)]
    plans: list[list[tuple[list[int], bool]]] = [chunks[0::2], chunks[1::2]]
    for plan in plans[1::2]:
        for ids, _ in plan:
            ids.reverse()  # opposite order within a batch, as the deadlock report had it

    deployment = Deployment(env, port, logs)
    tally = Tally()
    kills = collections.Counter[str]()
    started = time.monotonic()
    try:
        deployment.start_web()
        deployment.start_worker()
        deployment.start_beat()
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                ready = requests.get(f"{base_url}/api/v1/interactions?limit=1", timeout=5,
                                     headers={"Authorization": f"Bearer {issued.secret}"})
                if ready.status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"gunicorn did not answer in 120 s; see {logs}/gunicorn.log")
            time.sleep(0.5)

        threads = [threading.Thread(target=client, args=(base_url, issued.secret, plan, tally)) for plan in plans]
        for thread in threads:
            thread.start()
        turn = 0
        while any(thread.is_alive() for thread in threads):
            pause_until = time.monotonic() + args.chaos_every
            while time.monotonic() < pause_until and any(thread.is_alive() for thread in threads):
                time.sleep(0.2)
            if not any(thread.is_alive() for thread in threads):
                break
            if turn % 2 == 0:
                if deployment.kill_web_worker(rng):
                    kills["web worker"] += 1
            else:
                deployment.kill_worker()
                kills["celery worker"] += 1
                time.sleep(1.0)
                deployment.start_worker()
            turn += 1
        sent_s = time.monotonic() - started

        # Every queued batch must end: the reaper (on beat) re-queues what a killed worker held.
        open_statuses = [BatchStatus.PENDING.value, BatchStatus.RUNNING.value]
        deadline = time.monotonic() + 60 + 6 * args.lease
        while IngestBatch.objects.filter(status__in=open_statuses).exists() and time.monotonic() < deadline:
            time.sleep(1)
        drained_s = time.monotonic() - started
    finally:
        deployment.stop()

    scope = idempotency_scope(issued.api_key)
    stored_ids = list(Interaction.objects.filter(scope=scope).values_list("external_id", flat=True))
    expected = {body(i)["id"] for i in stream}
    stored_set = set(stored_ids)
    duplicates = len(stored_ids) - len(stored_set)
    lost = len(expected - stored_set)
    extra = len(stored_set - expected)
    batches = collections.Counter(str(s) for s in IngestBatch.objects.values_list("status", flat=True))
    attempts = collections.Counter(IngestBatch.objects.values_list("attempts", flat=True))
    five_xx = sum(count for code, count in tally.status.items() if code >= 500)

    print(f"deployment: gunicorn -w 2 on :{port}, celery worker -c 2 + beat, PostgreSQL {args.db}, {args.redis}")
    print(f"sent: {tally.sent} interactions ({len(expected)} distinct ids, {tally.sent - len(expected)} replays) "
          f"in {len(chunks)} batches; {tally.requests} requests in {sent_s:.0f} s, all settled after {drained_s:.0f} s")
    print(f"kills (SIGKILL): {dict(kills)}; dropped connections retried: {tally.connection_errors}")
    print(f"answers: {dict(sorted(tally.status.items()))}")
    print(f"5xx: {five_xx} (without Retry-After: {tally.five_xx_without_retry_after})")
    print(f"queued batches: {dict(batches)}; claims per batch: {dict(sorted(attempts.items()))}")
    if tally.refused:
        print(f"refused (not retried): {len(tally.refused)}; first: {tally.refused[0]}")
    print(f"stored: {len(stored_ids)} (distinct {len(stored_set)}, unexpected {extra})")
    print(f"duplicates: {duplicates}")
    print(f"lost: {lost}")
    if not args.keep:
        from django.db import connections

        connections.close_all()
        recreate_database(args.pg, args.db, drop_only=True)
    failed = batches.get(BatchStatus.FAILED.value, 0) + sum(batches.get(s, 0) for s in open_statuses)
    bad = lost + duplicates + extra + failed + len(tally.refused) + tally.five_xx_without_retry_after
    print(f"lost_or_duplicated: {bad}")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
