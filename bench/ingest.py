"""Ingest throughput: the batch API path vs a raw PostgreSQL COPY of the same rows.

    .venv/bin/python bench/ingest.py                       # 100,000 interactions, batches of 1,000
    .venv/bin/python bench/ingest.py --n 5000              # quick smoke run
    .venv/bin/python bench/ingest.py --n 20000 --rounds 3  # best of 3 on a busy machine
    .venv/bin/python bench/ingest.py --bulk-create         # Django bulk_create instead of COPY
    .venv/bin/python bench/ingest.py --n 10000 --profile prof.txt   # where our time goes (pyinstrument)

Creates a scratch database (``ftops_bench_ingest``), migrates it, writes the sample
enterprise's tool schemas into the catalog and generates its traffic, then per round
  ours: POSTs pre-encoded batches through the real DRF view (Django test client: middleware,
        API-key auth, throttling, JSON parsing, validation, body hashes, schema verdicts, PII
        redaction, the idempotency lookup, one insert transaction per batch, queueing the
        batch's failures for review on its commit (in-process, as in the embedded mode), the
        response);
  COPY: reads back exactly the rows that were stored, truncates the table and times a
        ``COPY interactions_interaction FROM STDIN`` of them (same table, same indexes, one
        transaction).
Prints rows/s for both; the last line is ``ratio: <ours/COPY>`` (goal >= 0.5; at least 0.35). The scratch
database is dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COPY_COLUMNS = [
    "external_id", "body_hash", "service_id", "timestamp", "messages", "tools", "tool_calls", "response_text",
    "task_type", "user_feedback", "success", "confidence", "latency_ms", "tokens_used", "model_version", "metadata",
    "redactions", "call_verdict", "verdict_reason", "is_failure", "failure_kind", "api_key_id", "created_at",
]  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="interactions to ingest (default 100000)")
    parser.add_argument("--batch", type=int, default=1000, help="interactions per request (default 1000)")
    parser.add_argument("--pg", default=os.environ.get("FTOPS_BENCH_PG", "postgres://postgres@127.0.0.1:5432/test"),
                        help="PostgreSQL URL of an existing database used to create the scratch one")
    parser.add_argument("--db", default="ftops_bench_ingest", help="scratch database name (created and dropped)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat both measurements and keep each side's best (the machine is shared)")
    parser.add_argument("--profile", metavar="FILE", default="",
                        help="profile the first round of our path with pyinstrument; write its text report to FILE")
    parser.add_argument("--bulk-create", action="store_true",
                        help="insert with Django's bulk_create instead of the service's PostgreSQL COPY path")
    return parser.parse_args()


def scratch_url(base: str, name: str) -> str:
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}"


def create_database(base: str, name: str) -> None:
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(base: str, name: str) -> None:
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --- data -----------------------------------------------------------------------------------------

BUILTIN_TOOLS: dict[str, dict[str, dict[str, Any]]] = {
    "payments": {
        "create_payment": {"type": "object", "required": ["customer_id", "amount_cents", "currency"], "properties": {
            "customer_id": {"type": "string"}, "amount_cents": {"type": "integer", "minimum": 1},
            "currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]}, "description": {"type": "string"}}},
        "refund_payment": {"type": "object", "required": ["payment_id"], "properties": {
            "payment_id": {"type": "string"}, "amount_cents": {"type": "integer", "minimum": 1}}},
    },
    "orders": {
        "get_order": {"type": "object", "required": ["order_id"], "additionalProperties": False, "properties": {
            "order_id": {"type": "string", "pattern": "^ORD-[0-9]+$"}}},
        "list_orders": {"type": "object", "required": ["customer_id"], "properties": {
            "customer_id": {"type": "string"},
            "fulfillment_state": {"type": "string", "enum": ["awaiting_shipment", "shipped", "delivered"]}}},
    },
    "customers": {
        "find_customer": {"type": "object", "properties": {"customer_id": {"type": "string"},
                                                           "email": {"type": "string"}}},
    },
}  # fmt: skip


def make_catalog(tools_by_service: dict[str, dict[str, dict[str, Any]]]) -> None:
    from ftops.catalog.models import Service, Tool, ToolSchemaVersion
    from ftops.interactions.verdicts import schema_hash

    for service_name, tools in tools_by_service.items():
        service = Service.objects.create(name=service_name)
        for tool_name, params in tools.items():
            tool = Tool.objects.create(service=service, name=tool_name)
            version = ToolSchemaVersion.objects.create(tool=tool, number=1, parameters=params,
                                                       content_hash=schema_hash(params))
            tool.current_version = version
            tool.save(update_fields=["current_version"])


def builtin_payloads(n: int, seed: int) -> list[dict[str, Any]]:
    """Traffic shaped like the sample enterprise's: ~15% failures, PII in ~20% of turns."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        cust = f"cus_{rng.randint(1000, 99999)}"
        pii = rng.random() < 0.2
        contact = f" You can reach me at {cust[4:]}.user@example.com or +1 (555) {rng.randint(200, 999)}-4321." if pii \
            else ""
        kind = rng.randrange(5)
        if kind == 0:
            service, query = "payments", f"Charge customer {cust} ${rng.randint(1, 500)}.{rng.randint(0, 99):02d}"
            args: dict[str, Any] = {"customer_id": cust, "amount_cents": rng.randint(100, 50000), "currency": "USD"}
            name = "create_payment"
        elif kind == 1:
            service, query = "payments", "Refund payment pi_" + str(rng.randint(10**6, 10**7))
            name, args = "refund_payment", {"payment_id": f"pi_{rng.randint(10**6, 10**7)}"}
        elif kind == 2:
            oid = f"ORD-{rng.randint(10000, 99999)}"
            service, query, name, args = "orders", f"Where is order {oid}?", "get_order", {"order_id": oid}
        elif kind == 3:
            service, query = "orders", f"Show pending orders for {cust}"
            name, args = "list_orders", {"customer_id": cust, "fulfillment_state": "awaiting_shipment"}
        else:
            service, query = "customers", "Look up the customer with email jane.doe@example.com"
            name, args = "find_customer", {"email": "jane.doe@example.com"}
        failure = rng.random() < 0.15
        if failure and "amount_cents" in args:
            args = {**args, "amount_cents": args["amount_cents"] / 100}  # dollars instead of cents
        elif failure:
            args = {"id": next(iter(args.values()))}  # wrong parameter name
        out.append({
            "id": f"bench-{seed}-{i:07d}",
            "service": service,
            "timestamp": f"2025-0{1 + i % 9}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
            "messages": [{"role": "system", "content": f"You are the acme {service} assistant."},
                         {"role": "user", "content": query + contact}],
            "tools": list(BUILTIN_TOOLS[service]),
            "tool_calls": [{"name": name, "arguments": args}],
            "response_text": "",
            "task_type": "tool_call",
            "user_feedback": rng.choice([1, 2] if failure else [4, 5, 5, None]),
            "success": not failure,
            "confidence": round(rng.random(), 3),
            "latency_ms": rng.randint(150, 3000),
            "tokens_used": rng.randint(80, 900),
            "model_version": "acme-tools-1.2.0",
            "metadata": {"channel": rng.choice(["chat", "email", "voice"]), "region": "eu"},
        })  # fmt: skip
    return out


def load_traffic(n: int, seed: int) -> tuple[list[dict[str, Any]], str]:
    """The sample enterprise's traffic when it is importable, else the built-in traffic.

    Only the current schemas matter to ingest, so the catalog rows are written directly from
    the tool documents rather than through the catalog importer.
    """
    try:
        from ftops.catalog import sample
    except ImportError:
        make_catalog(BUILTIN_TOOLS)
        return builtin_payloads(n, seed), "built-in traffic (ftops.catalog.sample not importable)"
    tools: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in sample.build_sample_enterprise(seed=seed).tool_documents:
        tools.setdefault(doc["service"], {})[doc["tool"]] = doc["parameters"]
    make_catalog(tools)
    return sample.generate_interactions(seed=seed, n=n), "sample enterprise (ftops.catalog.sample)"


# --- runs -----------------------------------------------------------------------------------------


def run_ours(bodies: list[bytes], secret: str) -> float:
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    started = time.perf_counter()
    for body in bodies:
        response = client.post("/api/v1/interactions", data=body, content_type="application/json")
        if response.status_code != 201:
            raise SystemExit(f"ingest failed with {response.status_code}: {response.content[:500]!r}")
    return time.perf_counter() - started


def stored_rows(url: str) -> list[tuple[Any, ...]]:
    """Every stored row, each value in its text form, as a loader would hand them to COPY."""
    with psycopg.connect(url) as conn:
        select = sql.SQL("SELECT {} FROM interactions_interaction ORDER BY id").format(
            sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in COPY_COLUMNS)
        )
        return conn.execute(select).fetchall()


def truncate(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE interactions_interaction CASCADE")


def run_copy(url: str, rows: list[tuple[Any, ...]]) -> tuple[float, int]:
    cols = sql.SQL(", ").join(map(sql.Identifier, COPY_COLUMNS))
    truncate(url)
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        statement = sql.SQL("COPY interactions_interaction ({}) FROM STDIN").format(cols)
        with conn.cursor() as cur, cur.copy(statement) as cp:
            for row in rows:
                cp.write_row(row)
        conn.commit()
        elapsed = time.perf_counter() - started
        copied = conn.execute("SELECT count(*) FROM interactions_interaction").fetchone()
    return elapsed, int(copied[0]) if copied else 0


def main() -> None:
    args = parse_args()
    url = scratch_url(args.pg, args.db)
    create_database(args.pg, args.db)
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "ftops.settings",
        "DATABASE_URL": url,
        "FTOPS_API_KEY_RATE": "1000000/min",
        "FTOPS_VAR_DIR": os.environ.get("FTOPS_VAR_DIR", tempfile.mkdtemp(prefix="ftops-bench-")),
        "FTOPS_DEBUG": "0",
    })  # fmt: skip
    os.environ.pop("CELERY_BROKER_URL", None)
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections

        from ftops.common.services import api_key_create
        from ftops.interactions import services
        from ftops.interactions.models import Interaction

        services.COPY_ON_POSTGRES = not args.bulk_create
        call_command("migrate", verbosity=0, interactive=False)
        payloads, source = load_traffic(args.n + args.batch, args.seed)
        warmup, payloads = payloads[: args.batch], payloads[args.batch : args.batch + args.n]
        secret = api_key_create(name="bench", roles=["ingest"]).secret
        bodies = [json.dumps(payloads[i : i + args.batch]).encode() for i in range(0, len(payloads), args.batch)]
        print(f"traffic: {source}")
        print(f"interactions: {len(payloads)} in {len(bodies)} batches of {args.batch}")
        print(f"insert: {'bulk_create' if args.bulk_create else 'COPY (the service on PostgreSQL)'}")
        run_ours([json.dumps(warmup).encode()], secret)  # imports, validator cache, connection
        ours_times, copy_times = [], []
        for round_no in range(1, args.rounds + 1):
            connections.close_all()
            truncate(url)
            if args.profile and round_no == 1:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.001)
                with profiler:
                    ours_s = run_ours(bodies, secret)
                Path(args.profile).write_text(profiler.output_text(unicode=True, show_all=False))
                print(f"profile: {args.profile}")
            else:
                ours_s = run_ours(bodies, secret)
            stored = Interaction.objects.count()
            failures = Interaction.objects.filter(is_failure=True).count()
            redacted = Interaction.objects.exclude(redactions={}).count()
            connections.close_all()
            rows = stored_rows(url)
            copy_s, copied = run_copy(url, rows)
            if copied != stored or stored != len(payloads):
                raise SystemExit(f"stored {stored} rows and COPY loaded {copied}; expected {len(payloads)}")
            print(f"round {round_no}: ours {ours_s:.2f} s, COPY {copy_s:.2f} s "
                  f"({stored} rows, {failures} failures, {redacted} with PII redacted)")
            ours_times.append(ours_s)
            copy_times.append(copy_s)
        ours_rate, copy_rate = stored / min(ours_times), copied / min(copy_times)
        print(f"ours (batch API path): {min(ours_times):.2f} s, {ours_rate:,.0f} rows/s")
        print(f"raw PostgreSQL COPY:   {min(copy_times):.2f} s, {copy_rate:,.0f} rows/s")
        print(f"ratio: {ours_rate / copy_rate:.3f}")
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
        if not args.keep:
            drop_database(args.pg, args.db)


if __name__ == "__main__":
    main()
