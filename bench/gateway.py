"""Gateway overhead: the same chat completions sent straight to an upstream and through the gateway.

    .venv/bin/python bench/gateway.py                  # 5 rounds of 1,500 requests per side at concurrency 32
    .venv/bin/python bench/gateway.py --n 500 --rounds 1   # quick smoke run
    .venv/bin/python bench/gateway.py --sqlite         # the embedded default instead of PostgreSQL

Starts three processes on 127.0.0.1:
  upstream  an OpenAI-compatible server that answers at once (uvicorn, a canned answer with two
            parallel tool calls), so what is measured is the gateway, not a model;
  gateway   ``python -m ftops.gateway`` over a scratch database (``ftops_bench_gateway`` on the
            PostgreSQL of --pg, created, migrated, seeded with a service, a gateway key, an
            upstream credential and a production deployment, dropped at the end unless --keep);
  client    this process: asyncio + one pooled httpx2 client, ``--concurrency`` requests in flight.
Each round sends ``--n`` requests per side, both sides back to back in alternating order, and
takes what the gateway added in that round; the median of ``--rounds`` rounds is reported (the
machine is shared: a side's best round on its own would compare a quiet moment with a busy
one). Prints throughput and latency of both, the latency the gateway adds at p50 and p95,
``logged: N/N`` (every call through the gateway stored as an interaction, waited for after the
traffic) and last ``ratio: <8 ms / added p95>`` (>= 1: at most 8 ms added at p95, LiteLLM's
published figure).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ANSWER = json.dumps({
    "id": "up-1", "object": "chat.completion", "created": 0, "model": "bench-model",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": None,
                 "tool_calls": [
                     {"id": "c1", "type": "function", "function": {
                         "name": "create_payment", "arguments": "{\"amount_cents\": 500, \"currency\": \"USD\"}"}},
                     {"id": "c2", "type": "function", "function": {
                         "name": "create_payment", "arguments": "{\"amount_cents\": 700, \"currency\": \"EUR\"}"}}]}}],
    "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
}).encode()
TOOLS: list[dict[str, Any]] = [{"type": "function", "function": {
    "name": "create_payment", "description": "Charge a customer",
    "parameters": {"type": "object", "properties": {"amount_cents": {"type": "integer", "minimum": 1},
                                                    "currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]}},
                   "required": ["amount_cents", "currency"]}}}]


async def upstream_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The instant upstream: drain the body, answer the canned completion."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]})
    await send({"type": "http.response.body", "body": ANSWER})


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1500, help="requests per side per round (default 1500)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--pg", default=os.environ.get("FTOPS_BENCH_PG", "postgres://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--db", default="ftops_bench_gateway")
    parser.add_argument("--sqlite", action="store_true", help="a scratch SQLite file instead of PostgreSQL")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--profile", metavar="FILE", default="",
                        help="run the gateway under cProfile and write its stats to FILE (pstats format)")
    parser.add_argument("--serve-upstream", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def setup_database(args: argparse.Namespace, var_dir: str) -> dict[str, str]:
    """Create and seed the scratch database; returns the environment the gateway runs under."""
    env = {"FTOPS_VAR_DIR": var_dir, "FTOPS_OUTBOUND_ALLOW": "127.0.0.1/32", "DJANGO_SETTINGS_MODULE": "ftops.settings"}
    env.pop("CELERY_BROKER_URL", None)
    if args.sqlite:
        env["DATABASE_URL"] = f"sqlite:///{var_dir}/bench.sqlite3"
    else:
        import psycopg
        from psycopg import sql

        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.db)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(args.db)))
        env["DATABASE_URL"] = f"{args.pg.rpartition('/')[0]}/{args.db}"
    os.environ.update(env)
    return env


def seed(upstream_port: int) -> str:
    import django

    django.setup()
    from django.core.management import call_command

    from ftops.catalog.models import Service, Tool, ToolSchemaVersion
    from ftops.common.actors import Actor
    from ftops.common.credentials import upstream_credential_set
    from ftops.common.services import api_key_create
    from ftops.interactions.verdicts import schema_hash
    from registry.models import Deployment, DeploymentState, ModelVersion, VersionStatus

    call_command("migrate", verbosity=0)
    payments = Service.objects.create(name="payments", display_name="Payments")
    parameters = TOOLS[0]["function"]["parameters"]
    tool = Tool.objects.create(service=payments, name="create_payment", description="Charge a customer")
    tool.current_version = ToolSchemaVersion.objects.create(tool=tool, number=1, parameters=parameters,
                                                            content_hash=schema_hash(parameters))
    tool.save(update_fields=["current_version"])
    upstream_credential_set(name="bench", base_url=f"http://127.0.0.1:{upstream_port}/v1", value="sk-bench",
                            by=Actor.system("bench"))
    version = ModelVersion.objects.create(name="bench-v1.0.0", family="bench", semver="1.0.0", base_model="m",
                                          backend="openai", status=VersionStatus.PRODUCTION,
                                          serving={"kind": "openai", "credential": "bench", "model": "bench-model"})
    Deployment.objects.create(model_version=version, scope="enterprise", state=DeploymentState.PRODUCTION)
    return api_key_create(name="bench", roles=["gateway"]).secret


def body(i: int, model: str) -> bytes:
    return json.dumps({"model": model, "tools": TOOLS, "tool_choice": "auto",
                       "messages": [{"role": "system", "content": "You call payment tools."},
                                    {"role": "user", "content": f"Charge customer {i} five dollars and seven euros"}],
                       }).encode()


async def run_side(url: str, headers: dict[str, str], model: str, n: int, concurrency: int,
                   offset: int) -> tuple[float, list[float], int]:
    """(wall seconds, per-request latencies in ms, failures) for n requests at the given concurrency."""
    import httpx2

    bodies = [body(offset + i, model) for i in range(n)]
    latencies: list[float] = []
    failures = 0
    next_index = 0
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(limits=limits, timeout=30, headers=headers, trust_env=False) as client:
        async def worker() -> None:
            nonlocal next_index, failures
            while next_index < n:
                index = next_index
                next_index += 1
                started = time.perf_counter()
                response = await client.post(url, content=bodies[index])
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return wall, latencies, failures


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU time a process (or one of its threads) has used (Linux /proc): what a
    request costs, whatever the load."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        fields = Path(path).read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    args = parse_args()
    if args.serve_upstream:
        import uvicorn

        uvicorn.run(upstream_app, host="127.0.0.1", port=args.serve_upstream, log_level="warning", access_log=False,
                    lifespan="off")
        return
    var_dir = tempfile.mkdtemp(prefix="ftops-bench-gateway-")
    upstream_port, gateway_port = free_port(), free_port()
    env = setup_database(args, var_dir)
    python = sys.executable
    upstream = subprocess.Popen([python, __file__, "--serve-upstream", str(upstream_port)], cwd=ROOT)
    gateway = None
    try:
        secret = seed(upstream_port)
        profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
        gateway = subprocess.Popen([python, *profile, "-m", "ftops.gateway", "--port", str(gateway_port)], cwd=ROOT,
                                   env={**os.environ, **env})
        wait_port(upstream_port)
        wait_port(gateway_port)
        direct = (f"http://127.0.0.1:{upstream_port}/v1/chat/completions", {"authorization": "Bearer sk-bench",
                                                                            "content-type": "application/json"},
                  "bench-model")
        through = (f"http://127.0.0.1:{gateway_port}/v1/chat/completions", {"authorization": f"Bearer {secret}",
                                                                            "content-type": "application/json"},
                   "ftops/payments")
        sent_through = 0
        for side in (direct, through):  # warm pools, caches and the database's first writes
            asyncio.run(run_side(*side, args.warmup, args.concurrency, 0))
        sent_through += args.warmup
        # Each round measures both sides back to back (the order alternating, so a load that
        # drifts during a round favours neither), and what the gateway adds is taken per round:
        # on a shared machine the load changes between rounds, and a side's best round taken on
        # its own would compare a quiet moment with a busy one. The median round is reported.
        pooled: dict[str, list[float]] = {"direct": [], "gateway": []}
        walls = {"direct": 0.0, "gateway": 0.0}
        failed = {"direct": 0, "gateway": 0}
        added: list[tuple[float, float]] = []
        # CPU seconds per side of: the gateway, the upstream, this client; and the wall time.
        cpu = {name: {"gateway": 0.0, "event_loop": 0.0, "upstream": 0.0, "client": 0.0, "wall": 0.0}
               for name in ("direct", "gateway")}
        for round_no in range(args.rounds):
            sides = [("direct", direct), ("gateway", through)]
            measured: dict[str, list[float]] = {}
            for name, side in (sides if round_no % 2 == 0 else sides[::-1]):
                before = (cpu_seconds(gateway.pid), cpu_seconds(upstream.pid), time.process_time(),
                          cpu_seconds(gateway.pid, gateway.pid))
                wall, latencies, failures = asyncio.run(run_side(*side, args.n, args.concurrency,
                                                                 (round_no + 1) * args.n))
                used = cpu[name]
                used["gateway"] += cpu_seconds(gateway.pid) - before[0]
                used["event_loop"] += cpu_seconds(gateway.pid, gateway.pid) - before[3]
                used["upstream"] += cpu_seconds(upstream.pid) - before[1]
                used["client"] += time.process_time() - before[2]
                used["wall"] += wall
                walls[name] += wall
                failed[name] += failures
                pooled[name] += latencies
                measured[name] = latencies
                if name == "gateway":
                    sent_through += args.n
            added.append((pct(measured["gateway"], 0.5) - pct(measured["direct"], 0.5),
                          pct(measured["gateway"], 0.95) - pct(measured["direct"], 0.95)))
            print(f"round {round_no + 1}: added p50 {added[-1][0]:7.2f} ms   p95 {added[-1][1]:7.2f} ms   "
                  f"load average {os.getloadavg()[0]:.1f}")
        for name in ("direct", "gateway"):
            latencies = pooled[name]
            print(f"{name:8s} {len(latencies) / walls[name]:8.0f} req/s   p50 {pct(latencies, 0.5):6.2f} ms   "
                  f"p95 {pct(latencies, 0.95):6.2f} ms   mean {statistics.fmean(latencies):6.2f} ms   "
                  f"failed {failed[name]}")
        added_p50 = statistics.median(a[0] for a in added)
        added_p95 = statistics.median(a[1] for a in added)
        print(f"added latency: p50 {added_p50:.2f} ms   p95 {added_p95:.2f} ms   (concurrency {args.concurrency}, "
              f"{args.n} requests per side per round, median of {args.rounds} paired rounds)")
        # The gateway's own CPU per request (event loop and call writer, both included): what it
        # costs on an idle machine too; on a saturated one latency grows with it.
        sent = args.n * args.rounds
        per_request = cpu["gateway"]["gateway"] / sent * 1000
        loop_share = cpu["gateway"]["event_loop"] / sent * 1000
        print(f"gateway CPU: {per_request:.2f} ms per request (event loop {loop_share:.2f}, call writer and "
              f"database threads {per_request - loop_share:.2f}); load average {os.getloadavg()[0]:.1f} "
              f"on {os.cpu_count()} CPUs")
        # Who is busy: CPU per request of each process, and the share of one core it used. The
        # upstream must stay far from a full core, or the bench measures the upstream.
        for name in ("direct", "gateway"):
            used = cpu[name]
            print(f"CPU per request ({name:7s}): " + "   ".join(
                f"{who} {used[who] / sent * 1000:.2f} ms ({used[who] / used['wall']:.0%} of a core)"
                for who in ("client", "gateway", "upstream")))
        if cpu["direct"]["upstream"] / cpu["direct"]["wall"] > 0.8:
            print("warning: the upstream used over 80% of a core; it may be what limits both sides")

        from ftops.interactions.models import Interaction

        deadline = time.monotonic() + 120
        logged = Interaction.objects.count()
        while logged < sent_through and time.monotonic() < deadline:
            time.sleep(0.25)
            logged = Interaction.objects.count()
        print(f"logged: {logged}/{sent_through}")
        print(f"ratio: {8.0 / max(added_p95, 0.01):.2f}")
    finally:
        for process in (gateway, upstream):
            if process is not None:
                if process is gateway and args.profile:
                    process.send_signal(signal.SIGINT)  # uvicorn re-raises it; cProfile then writes its stats
                else:
                    process.terminate()
                process.wait(30)
        if not args.sqlite and not args.keep:
            from django.db import connections

            connections.close_all()
            import psycopg
            from psycopg import sql

            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(args.db)))


if __name__ == "__main__":
    main()
