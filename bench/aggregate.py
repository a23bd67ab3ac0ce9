"""Aggregator throughput: examples pulled over HTTP, validated and stored, against creating the
same examples one by one through the examples API (``POST /api/v1/examples``).

    .venv/bin/python bench/aggregate.py            # 2,000 examples
    .venv/bin/python bench/aggregate.py --n 500    # quick smoke run

A scratch SQLite database in a temporary folder is migrated; ``--n`` examples of six tools are
generated for one service that shares them. Then
  publish: this app's own views serve them (WSGI on a 127.0.0.1 thread); the aggregator's HTTP
           requests are replayed through them once to record the answers (pages of 200, format hf),
  ours:    the local service and its examples are deleted and ``aggregate_all`` pulls the recorded
           answers from a real 127.0.0.1 HTTP server: tool import, validation against the tools,
           dedup, provenance, one transaction per page;
  API:     the examples are deleted again and the same examples are POSTed one per request
           through the real DRF view (Django test client: auth, serializers, validation, audit).
Prints examples/s for both; the last line is ``ratio: <ours/API>``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TOOLS: dict[str, dict[str, Any]] = {
    "get_order": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
    "cancel_order": {"type": "object", "properties": {"order_id": {"type": "string"}, "reason": {"type": "string"}},
                     "required": ["order_id"]},
    "refund_payment": {"type": "object", "properties": {"payment_id": {"type": "string"},
                                                        "amount": {"type": "number"}},
                       "required": ["payment_id", "amount"]},
    "check_stock": {"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]},
    "create_ticket": {"type": "object", "properties": {"subject": {"type": "string"}}, "required": ["subject"]},
    "send_invoice": {"type": "object", "properties": {"invoice_id": {"type": "string"}}, "required": ["invoice_id"]},
}


def generate(n: int) -> list[dict[str, Any]]:
    names = list(TOOLS)
    out = []
    for i in range(n):
        tool = names[i % len(names)]
        first = next(iter(TOOLS[tool]["properties"]))
        args: dict[str, list[Any]] = {first: [f"ID-{i:06d}"]}
        if tool == "refund_payment":
            args["amount"] = [float(i % 97 + 1)]
        out.append({"service": "bench", "user_query": f"Please {tool.replace('_', ' ')} for ID-{i:06d} (req {i})",
                    "behavior": "call", "expected": {"calls": [{"name": tool, "arguments": args}]},
                    "source": "manual", "quality": "high"})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="ftops-bench-aggregate-")
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "ftops.settings",
        "DATABASE_URL": f"sqlite:///{folder}/bench.sqlite3",
        "FTOPS_VAR_DIR": folder,
        "FTOPS_API_KEY_RATE": "1000000/min",
        "FTOPS_MCP_RATE_PER_HOUR": "1000000",
        "FTOPS_OUTBOUND_ALLOW": "127.0.0.1/32",
        "FTOPS_DEBUG": "0",
    })  # fmt: skip
    os.environ.pop("CELERY_BROKER_URL", None)
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from rest_framework.test import APIClient

    from ftops.catalog.models import Service
    from ftops.common.actors import Actor
    from ftops.common.credentials import upstream_credential_set
    from ftops.common.services import api_key_create
    from ftops.datasets.models import TrainingExample
    from ftops.datasets.services.examples import example_create
    from ftops.discovery.services import aggregate_all, aggregation_source_save, publishing_settings_update
    from tests.datasets.conftest import add_tool
    from tests.discovery.conftest import ProtocolServer, Served, _handler, route_key

    call_command("migrate", verbosity=0, interactive=False)
    by = Actor.system("bench")
    examples = generate(args.n)

    def make_service() -> Service:
        service = Service.objects.create(name="bench")
        for name, params in TOOLS.items():
            add_tool(service, name, f"The {name} operation.", params)
        publishing_settings_update(service=service, by=by, share_with_orchestrators=True, public_model_training=False,
                                   opt_in_text="", restrictions=[], contact_team="", contact_documentation="")
        return service

    service = make_service()
    for body in examples:
        example_create(**{**body, "service": service})
    secret = api_key_create(name="orchestrator", roles=["ml_orchestrator"]).secret

    # Record every answer the aggregator asks for, produced by this app's own views.
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    routes: dict[str, Served] = {}

    def put(path: str) -> Any:
        answer = client.get(path)
        routes[route_key(path)] = Served(answer.status_code, answer.content)
        return json.loads(answer.content)

    put("/.well-known/mcp-training-data.json")
    put("/.well-known/mcp-training-data/bench.json")
    put("/mcp/schema?service=bench")
    cursor = ""
    while True:
        page = put("/mcp/training-dataset?service=bench&format=hf&limit=200" + (f"&cursor={cursor}" if cursor else ""))
        cursor = page["next_cursor"] or ""
        if not cursor:
            break

    from http.server import ThreadingHTTPServer

    spec = ProtocolServer(routes=routes)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(spec))
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    upstream_credential_set(name="bench-token", base_url=url, value=secret, by=by)
    aggregation_source_save(name="bench", base_url=url, credential_name="bench-token", by=by, timeout_s=60)

    TrainingExample.objects.all().delete()
    Service.objects.all().delete()
    started = time.perf_counter()
    report = aggregate_all(by=by)
    ours_s = time.perf_counter() - started
    httpd.shutdown()
    outcome = report.outcomes[0]
    assert outcome.status == "ok" and outcome.created == args.n, outcome
    ours = args.n / ours_s
    print(f"examples: {args.n} (pages of 200, format hf)")
    print(f"aggregator: {ours_s:.2f} s, {ours:.0f} examples/s pulled, validated and stored "
          f"(pulled {outcome.pulled}, created {outcome.created})")

    TrainingExample.objects.all().delete()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='curator', roles=['admin']).secret}")
    bodies = [json.dumps(body) for body in examples]
    started = time.perf_counter()
    for raw in bodies:
        answer = api.post("/api/v1/examples", raw, content_type="application/json")
        assert answer.status_code == 201, answer.content[:300]
    api_s = time.perf_counter() - started
    api_rate = args.n / api_s
    print(f"examples API: {api_s:.2f} s, {api_rate:.0f} examples/s (one POST per example)")
    print(f"ratio: {ours / api_rate:.2f}")


if __name__ == "__main__":
    main()
