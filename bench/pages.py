"""Page latency on a large PostgreSQL: 1,000,000 interactions, 100,000 review items, 100,000 examples.

Creates a scratch database, migrates it, seeds it with COPY, then requests each main page
repeatedly through Django's test client as a logged-in staff user and prints p50/p95 per page.
Besides the interactions, review items and examples it seeds two dataset versions (the newer
one holds every example, the older one 95% of them with a few in other splits), a few training
runs with loss curves and logs, and evaluation runs on the newer version's test split with
their failures, so the dataset, training, evaluation and catalog pages are timed on real sizes.
The last line is ``ratio: <200 ms / worst p95>`` (>= 1 means every page's p95 is under 200 ms),
also with --keep/--reuse. The scratch database is dropped at the end unless --keep.

    .venv/bin/python bench/pages.py              # full size (a few minutes to seed)
    .venv/bin/python bench/pages.py --scale 0.01 # quick smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BUDGET_MS = 200.0
KINDS = ["type_error", "missing_required", "unknown_parameter", "value_error", "unknown_tool", "negative_feedback"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full data size (1.0 = 1M rows)")
    parser.add_argument("--repeat", type=int, default=30, help="timed requests per page")
    parser.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
                        help="a PostgreSQL URL of a database to connect to while creating the scratch one")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (for EXPLAIN)")
    parser.add_argument("--reuse", default="", help="measure a database kept by --keep instead of seeding a new one")
    parser.add_argument("--only", default="", help="time only the pages whose label contains this text "
                        "(e.g. 'dataset diff'); the ratio then covers those pages only")
    return parser.parse_args()


def scratch_url(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", 1)[0] + "/" + name


def setup_django(db_url: str) -> None:
    os.environ["DATABASE_URL"] = db_url
    os.environ.setdefault("FTOPS_VAR_DIR", tempfile.mkdtemp(prefix="ftops-bench-pages-"))
    os.environ.pop("CELERY_BROKER_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "ftops.settings"
    import django

    django.setup()


def copy_model(conn: psycopg.Connection, model: Any, rows: Iterable[dict[str, Any]]) -> int:
    """COPY rows into ``model``'s table; columns not given take the field's default (or NULL)."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = [f.column for f in fields]
    count = 0
    sql = f'COPY "{model._meta.db_table}" ({", ".join(chr(34) + c + chr(34) for c in columns)}) FROM STDIN'
    with conn.cursor() as cur, cur.copy(sql) as copy:
        for row in rows:
            values = []
            for f in fields:
                key = f.attname if f.attname in row else f.name
                if key in row:
                    value = row[key]
                elif f.has_default():
                    value = f.get_default()
                elif f.null:
                    value = None
                elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                    value = datetime.now(UTC)
                else:
                    raise SystemExit(f"bench: no value for {model.__name__}.{f.name}; add it to the seeder")
                if f.get_internal_type() == "JSONField" and value is not None:
                    value = json.dumps(value)
                values.append(value)
            copy.write_row(values)
            count += 1
    return count


def seed(conn: psycopg.Connection, *, scale: float, rng: random.Random) -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    from ftops.catalog.models import Service, Tool, ToolSchemaVersion
    from ftops.datasets.models import TrainingExample
    from ftops.interactions.models import Interaction
    from review.models import ReviewItem

    n_interactions = max(200, int(1_000_000 * scale))
    n_review = max(50, int(100_000 * scale))
    n_examples = max(50, int(100_000 * scale))
    now = datetime.now(UTC)

    tools: list[tuple[Service, Tool, dict[str, Any]]] = []
    for s in ("payments", "orders", "inventory", "customers"):
        service = Service.objects.create(name=s, display_name=s.title())
        for t in range(5):
            params = {"type": "object", "properties": {
                "id": {"type": "string", "description": f"{s} id"},
                "amount_cents": {"type": "integer", "minimum": 0},
                "state": {"type": "string", "enum": ["awaiting_shipment", "shipped", "delivered"]},
            }, "required": ["id"]}
            tool = Tool.objects.create(service=service, name=f"{s}_tool_{t}", description=f"Tool {t} of {s}")
            version = ToolSchemaVersion.objects.create(tool=tool, number=1, parameters=params,
                                                       content_hash=f"{s}-{t}".ljust(64, "0"))
            tool.current_version = version
            tool.save(update_fields=["current_version"])
            tools.append((service, tool, params))
    offered = {s.pk: [{"type": "function", "function": {"name": t.name, "parameters": p}}
                      for s2, t, p in tools if s2.pk == s.pk] for s, _, _ in tools}

    started = time.monotonic()

    def interactions() -> Iterator[dict[str, Any]]:
        for i in range(n_interactions):
            service, tool, _ = tools[rng.randrange(len(tools))]
            failure = rng.random() < 0.15
            ts = now - timedelta(seconds=rng.randrange(120 * 86400))
            query = f"please handle request {i} for {service.name}: amount {rng.randrange(1, 500)} dollars"
            yield {
                "external_id": f"bench-{i}", "body_hash": f"{i:064d}", "service_id": service.pk, "timestamp": ts,
                "messages": [{"role": "user", "content": query}], "tools": offered[service.pk],
                "tool_calls": [{"name": tool.name, "arguments": {"id": f"x{i}", "amount_cents": 12.5 if failure
                                                                 else 1250}}],
                "response_text": "", "task_type": "tool_call", "user_feedback": rng.choice([1, 2]) if failure else 5,
                "success": not failure, "latency_ms": rng.randrange(80, 2000), "tokens_used": rng.randrange(50, 900),
                "model_version": "base-1", "metadata": {}, "redactions": {},
                "call_verdict": "invalid" if failure else "valid", "verdict_reason": "",
                "is_failure": failure, "failure_kind": rng.choice(KINDS) if failure else "", "created_at": ts,
            }

    copy_model(conn, Interaction, interactions())
    conn.commit()
    t_interactions = time.monotonic() - started

    with conn.cursor() as cur:
        cur.execute(
            f'SELECT id, service_id, timestamp, failure_kind, tool_calls->0->>\'name\', messages->0->>\'content\' '
            f'FROM "{Interaction._meta.db_table}" WHERE is_failure ORDER BY timestamp DESC LIMIT %s', [n_review])
        failures = cur.fetchall()
    copy_model(conn, ReviewItem, (
        {"interaction_id": pk, "service_id": sid, "tool_name": tool or "", "failure_kind": kind,
         "user_query": (query or "")[:500], "occurred_at": ts, "status": "pending", "version": 1, "holder": "",
         "required_reviews": 1, "reviews_done": 0, "first_reviewer": "", "resolved_by": "",
         "created_at": now, "updated_at": now}
        for pk, sid, ts, kind, tool, query in failures))
    conn.commit()

    def examples() -> Iterator[dict[str, Any]]:
        sources = ["manual", "production", "correction", "synthetic"]
        for i in range(n_examples):
            service, tool, _ = tools[rng.randrange(len(tools))]
            query = f"example {i}: refund {rng.randrange(1, 900)} cents on {service.name} id x{i}"
            yield {
                "service_id": service.pk, "tool_id": tool.pk, "schema_version_id": tool.current_version_id,
                "user_query": query, "messages": [{"role": "user", "content": query}], "tools": [tool.name],
                "behavior": "call", "expected": {"calls": [{"name": tool.name, "arguments": {"id": [f"x{i}"]}}]},
                "explanation": "", "common_mistakes": [], "source": sources[i % 4],
                "quality": "high" if i % 3 else "medium", "status": "active", "provenance": {},
                "content_hash": f"{i:064x}", "created_at": now - timedelta(seconds=i), "updated_at": now,
            }

    copy_model(conn, TrainingExample, examples())
    conn.commit()
    pipeline = seed_pipeline(conn, tools=tools, rng=rng, now=now)
    # What autovacuum does in production soon after a bulk load: statistics and the visibility
    # map that index-only scans need.
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    user = get_user_model().objects.create_user("bench", "bench@example.com", "bench-pw", is_staff=True)
    return {
        "user": user, "interactions": n_interactions, "review_items": len(failures), "examples": n_examples,
        "seed_seconds": round(time.monotonic() - started, 1), "interactions_seconds": round(t_interactions, 1),
        **pipeline,
    }


SPLIT_OF = ["train"] * 6 + ["validation", "test", "test", "holdout"]
TEST_DIMENSIONS = ["seen_phrasing", "new_phrasing", "zero_shot_tool"]


def _report(members: list[tuple[int, str, str, str]], tools: list[Any], n_conflicts: int) -> dict[str, Any]:
    """A quality report shaped like the curation's, for ``members`` (example id, tool, split, dimension)."""
    from collections import Counter

    per_tool: dict[str, dict[str, Any]] = {}
    for _, tool, split, _ in members:
        row = per_tool.setdefault(tool, {"total": 0, "train": 0, "validation": 0, "test": 0, "holdout": 0,
                                         "edge_cases": 0, "edge_case_coverage": 0.0, "behaviors": {"call": 0}})
        row["total"] += 1
        row[split] += 1
        row["behaviors"]["call"] += 1
    for row in per_tool.values():
        row["edge_cases"] = row["total"] // 20
        row["edge_case_coverage"] = 0.05
    splits = Counter(split for _, _, split, _ in members)
    ids = [m[0] for m in members]
    return {
        "split_sizes": {s: splits.get(s, 0) for s in ("train", "validation", "test", "holdout")},
        "per_tool": per_tool, "examples_per_tool": {t: r["total"] for t, r in per_tool.items()},
        "tools_covered": len(per_tool), "unique_queries": len(members), "diversity_score": 0.41,
        "high_quality_count": len(members) * 2 // 3, "duplicates_removed": 12, "contamination_removed": 3,
        "conflicts_count": n_conflicts, "average_per_tool": len(members) // max(1, len(per_tool)),
        "imbalanced_tools": [], "zero_shot_tools": [tools[-1][1].name], "source_mix": {"manual": len(members)},
        "test_dimensions": {d: splits.get("test", 0) // 3 for d in TEST_DIMENSIONS},
        "conflicts": [{"examples": [ids[i], ids[-i - 1]], "cosine": 0.97, "queries": [f"q {i}", f"r {i}"],
                       "expected_tools": [["a"], ["b"]], "kind": "different_tool"} for i in range(n_conflicts)],
        "notes": [],
    }


def seed_pipeline(conn: psycopg.Connection, *, tools: list[Any], rng: random.Random,
                  now: datetime) -> dict[str, Any]:
    """Two dataset versions over the examples, training runs, and evaluation runs with failures."""
    from ftops.datasets.models import DatasetMembership, DatasetVersion, TrainingExample
    from ftops.evaluation.models import EvalFailure, EvalRun, EvalSuite
    from ftops.training.models import TrainingRun

    started = time.monotonic()
    tool_names = {t.pk: t.name for _, t, _ in tools}
    with conn.cursor() as cur:
        cur.execute(f'SELECT id, tool_id, user_query FROM "{TrainingExample._meta.db_table}" ORDER BY id')
        rows = [(pk, tool_names.get(tool_id, ""), query) for pk, tool_id, query in cur.fetchall()]
    newer: list[tuple[int, str, str, str]] = []
    for i, (pk, tool, _) in enumerate(rows):
        split = SPLIT_OF[i % 10]
        newer.append((pk, tool, split, TEST_DIMENSIONS[i % 3] if split == "test" else ""))
    # The older version lacks the newest 5% of the examples and had 3% of the others elsewhere.
    older = [(pk, tool, "train" if split != "train" and rng.random() < 0.03 else split,
              "" if split != "train" else dim) for pk, tool, split, dim in newer[: int(len(newer) * 0.95)]]
    queries = {pk: query for pk, _, query in rows}
    versions = []
    for number, members in ((1, older), (2, newer)):
        version = DatasetVersion.objects.create(
            number=number, status="ready", seed=number, params={"rotation": 0}, content_hash=f"{number:064x}",
            quality_report=_report(members, tools, n_conflicts=120), built_at=now, created_by="bench")
        copy_model(conn, DatasetMembership, (
            {"version_id": version.pk, "example_id": pk, "split": split, "dimension": dim, "position": position,
             "snapshot": {"id": str(pk), "tool": tool, "messages": [{"role": "user", "content": queries[pk]}],
                          "behavior": "call", "split": split, "dimension": dim}}
            for position, (pk, tool, split, dim) in enumerate(members)))
        conn.commit()
        versions.append(version)

    runs = []
    for n in range(6):
        steps = 2000
        runs.append(TrainingRun.objects.create(
            name=f"bench lora {n}", backend="lora", base_model="ftops-tiny-base", dataset_version=versions[n % 2],
            status="succeeded" if n else "running", progress=100.0 if n else 42.0, step=steps, total_steps=steps,
            loss_series=[[s, round(2.5 / (1 + s / 100), 4)] for s in range(0, steps, 2)],
            val_loss_series=[[s, round(2.7 / (1 + s / 100), 4)] for s in range(0, steps, 50)],
            log_tail="".join(f"step {s} loss {2.5 / (1 + s / 100):.4f}\n" for s in range(steps - 200, steps)),
            metrics={"final_loss": 0.12}, config={"lora_r": 16, "epochs": 3}, created_by="bench"))

    test_cases = [(pk, tool, dim) for pk, tool, split, dim in newer if split == "test"]
    suite = EvalSuite.objects.create(name="bench v2 test", kind="dataset", dataset_version=versions[1], split="test",
                                     case_count=len(test_cases), categories={"simple": len(test_cases)})

    def metrics(failed: set[int]) -> dict[str, Any]:
        def group(key_of: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for case in test_cases:
                row = out.setdefault(key_of(case), {"n": 0, "ok": 0})
                row["n"] += 1
                row["ok"] += case[0] not in failed
            return {k: {"n": r["n"], "exact": round(100.0 * r["ok"] / r["n"], 2), "tool": 98.0, "args": 95.0,
                        "values": round(100.0 * r["ok"] / r["n"], 2)} for k, r in out.items()}
        overall = group(lambda c: "all")["all"]
        return {"overall": overall, "by_category": group(lambda c: "simple"),
                "by_service": group(lambda c: c[1].split("_tool_")[0]), "by_tool": group(lambda c: c[1]),
                "by_dimension": group(lambda c: c[2]), "latency_ms": {"p50": 180, "p95": 420},
                "tokens": {"prompt": 1_200_000, "completion": 90_000}, "parse_errors": 3}

    eval_runs = []
    for n, share in enumerate((0.35, 0.30, 0.22, 0.18)):
        failed = {pk for pk, _, _ in test_cases if rng.random() < share}
        m = metrics(failed)
        run = EvalRun.objects.create(
            name=f"bench eval {n}", suite=suite, model_label=f"bench-model-{n}", status="succeeded",
            adapter_config={"kind": "replay", "path": "bench"}, progress_done=len(test_cases),
            progress_total=len(test_cases), exact=m["overall"]["exact"], metrics=m, created_by="bench",
            started_at=now, finished_at=now)
        copy_model(conn, EvalFailure, (
            {"run_id": run.pk, "record_id": str(pk), "category": "simple", "service": tool.split("_tool_")[0],
             "tool": tool, "dimension": dim, "behavior": "call",
             "error_type": rng.choice(["value_error:int", "missing_required", "wrong_tool", "type_error:str"]),
             "error": "amount_cents: expected 4999, got 49.99", "user_query": queries[pk],
             "expected": {"calls": [{"name": tool, "arguments": {"id": [f"x{pk}"]}}]},
             "got": {"calls": [{"name": tool, "arguments": {"id": f"y{pk}"}}]}, "raw": "",
             "partial": {"tool": True, "args": False}}
            for pk, tool, dim in test_cases if pk in failed))
        conn.commit()
        eval_runs.append(run)
    return {"versions": [v.number for v in versions], "members": len(older) + len(newer),
            "training_runs": [r.pk for r in runs], "eval_runs": [r.pk for r in eval_runs],
            "eval_cases": len(test_cases), "pipeline_seconds": round(time.monotonic() - started, 1)}


def pages(user: Any) -> list[tuple[str, str]]:
    from django.urls import NoReverseMatch, reverse

    from ftops.common.actors import Actor
    from ftops.evaluation.models import EvalRun
    from ftops.training.models import TrainingRun
    from review.models import ReviewItem
    from review.services import review_item_claim

    newest = ReviewItem.objects.order_by("-occurred_at", "-id").values_list("pk", flat=True)
    viewed = newest[10]
    claimed = review_item_claim(item_id=newest[20], actor=Actor(label=user.username, user=user)).pk
    found = [
        ("home", "/"),
        ("home, cache cleared", "/#cold"),
        ("review queue", reverse("review:queue")),
        ("review queue, filtered", reverse("review:queue") + "?service=orders&kind=type_error"),
        ("review queue, page 100", reverse("review:queue") + "?page=100"),
        ("review item", reverse("review:item", args=[viewed])),
        ("review item with form", reverse("review:item", args=[claimed])),
        ("review queue, search", reverse("review:queue") + "?q=request+4242"),
        ("reviewer statistics", reverse("review:stats")),
    ]
    training = list(TrainingRun.objects.order_by("-id").values_list("pk", flat=True)[:1])
    evals = list(EvalRun.objects.order_by("id").values_list("pk", flat=True))
    wanted: list[tuple[str, str, list[Any], str]] = [
        ("dataset examples", "datasets:examples", [], ""),
        ("dataset examples, search", "datasets:examples", [], "?q=refund+77"),
        ("dataset versions", "datasets:versions", [], ""),
        ("dataset version detail", "datasets:version", [2], ""),
        ("dataset diff", "datasets:diff", [], "?a=1&b=2"),
        ("dataset diff, cache cleared", "datasets:diff", [], "?a=1&b=2&added_page=3#cold"),
        ("training runs", "training:runs", [], ""),
        ("interactions list", "interactions:list", [], ""),
        ("catalog services", "catalog:services", [], ""),
        ("catalog service", "catalog:service", ["payments"], ""),
        ("catalog tool", "catalog:tool", ["payments", "payments_tool_0"], ""),
        ("evaluation runs", "evaluation:runs", [], ""),
    ]
    if training:
        wanted.append(("training run detail", "training:run", training, ""))
    if len(evals) >= 2:
        wanted += [
            ("evaluation run detail", "evaluation:run", [evals[0]], ""),
            ("evaluation failures", "evaluation:failures", [evals[0]], ""),
            ("evaluation failures, page 20", "evaluation:failures", [evals[0]], "?error_type=wrong_tool&page=20"),
            ("evaluation compare", "evaluation:compare", [], f"?base={evals[0]}&other={evals[-1]}"),
            ("evaluation compare, page 5", "evaluation:compare", [],
             f"?base={evals[0]}&other={evals[-1]}&fixed_page=5&regressed_page=2"),
        ]
    for label, name, args, query in wanted:
        try:
            found.append((label, reverse(name, args=args) + query))
        except NoReverseMatch:
            print(f"(skipped {label}: no page named {name} yet)")
    return found


def measure(client: Any, url: str, repeat: int, *, cold: bool = False) -> list[float]:
    from django.core.cache import cache

    for _ in range(3):  # warm connections and PostgreSQL's buffers
        if cold:
            cache.clear()
        response = client.get(url)
        if response.status_code != 200:
            raise SystemExit(f"bench: GET {url} answered {response.status_code}")
    times = []
    for _ in range(repeat):
        if cold:
            cache.clear()  # measure the computation, not the one-minute cache of the dashboard
        start = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    args = parse_args()
    name = args.reuse or f"ftops_bench_pages_{os.getpid()}"
    admin = psycopg.connect(args.pg, autocommit=True)
    if not args.reuse:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = scratch_url(args.pg, name)
        setup_django(url)
        from django.contrib.auth import get_user_model
        from django.core.management import call_command
        from django.db import connections
        from django.test import Client

        call_command("migrate", verbosity=0, interactive=False)
        if args.reuse:
            info: dict[str, Any] = {"user": get_user_model().objects.get(username="bench")}
            print(f"reusing {name}")
        else:
            with psycopg.connect(url) as conn:
                info = seed(conn, scale=args.scale, rng=random.Random(args.seed))
            print(f"seeded {info['interactions']:,} interactions, {info['review_items']:,} review items, "
                  f"{info['examples']:,} examples in {info['seed_seconds']} s "
                  f"(interactions COPY {info['interactions_seconds']} s); dataset versions {info['versions']} "
                  f"with {info['members']:,} members, {len(info['training_runs'])} training runs, "
                  f"{len(info['eval_runs'])} evaluation runs on {info['eval_cases']:,} cases "
                  f"({info['pipeline_seconds']} s)")
        client = Client()
        client.force_login(info["user"])
        results = []
        for label, page_url in pages(info["user"]):
            if args.only and args.only not in label:
                continue
            times = measure(client, page_url.removesuffix("#cold"), args.repeat, cold=page_url.endswith("#cold"))
            results.append((label, statistics.median(times), p95(times)))
            print(f"{label:30s} p50 {results[-1][1]:8.1f} ms   p95 {results[-1][2]:8.1f} ms   {page_url}")
        worst = max(r[2] for r in results)
        print(f"worst p95: {worst:.1f} ms ({max(results, key=lambda r: r[2])[0]}); budget {BUDGET_MS:.0f} ms")
        connections.close_all()
    finally:
        if not args.keep and not args.reuse:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            print(f"kept database {name}")
        admin.close()
    print(f"ratio: {BUDGET_MS / worst:.3f}")  # always the last line, also with --keep/--reuse


if __name__ == "__main__":
    main()
