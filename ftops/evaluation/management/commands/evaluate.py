"""python manage.py evaluate --suite NAME (--hf-model PATH [--adapter DIR] | --openai-base-url URL
--openai-model M | --model-version ID | --adapter-config JSON | --replay FILE) [--limit N] [--queue]"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ftops.common.errors import FtopsError
from ftops.evaluation import selectors, services


class Command(BaseCommand):
    help = "Evaluate a model on a suite (an imported BFCL suite or a dataset version split) and store the run."

    def add_arguments(self, parser: CommandParser) -> None:
        suite = parser.add_argument_group("suite (one of)")
        suite.add_argument("--suite", help="suite id or name, e.g. 'bfcl' after bfcl_import")
        suite.add_argument("--dataset-version", type=int, help="dataset version number (with --split)")
        suite.add_argument("--split", default="test", choices=services.EVAL_SPLITS)
        model = parser.add_argument_group("model (one of)")
        model.add_argument("--hf-model", help="local Hugging Face model folder (or hub id)")
        model.add_argument("--adapter", help="with --hf-model: a peft LoRA adapter folder")
        model.add_argument("--batch-size", type=int, default=16)
        model.add_argument("--max-new-tokens", type=int, default=128)
        model.add_argument("--openai-base-url", help="an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
        model.add_argument("--openai-model", help="with --openai-base-url: the model name")
        model.add_argument("--api-key-env", default="OPENAI_API_KEY", help="variable holding the endpoint's key")
        model.add_argument("--model-version", type=int, help="registry model version id")
        model.add_argument("--adapter-config", help="adapter config as JSON (see ftops.core.adapters)")
        model.add_argument("--replay", help="score recorded answers: JSON lines {id, result} or {id, calls, text}")
        parser.add_argument("--name", default="")
        parser.add_argument("--limit", type=int, help="score only the first N cases")
        parser.add_argument("--category", action="append", dest="categories", default=[], metavar="CAT")
        parser.add_argument("--queue", action="store_true",
                            help="enqueue on the evaluation queue instead of running here")

    def _adapter_config(self, opts: dict[str, Any]) -> dict[str, Any] | None:
        chosen = [k for k in ("hf_model", "openai_base_url", "model_version", "adapter_config", "replay") if opts[k]]
        if len(chosen) != 1:
            raise CommandError("name exactly one model: --hf-model, --openai-base-url, --model-version, "
                               "--adapter-config or --replay")
        if opts["hf_model"]:
            config: dict[str, Any] = {"kind": "hf_local", "model_path": opts["hf_model"],
                                      "batch_size": opts["batch_size"], "max_new_tokens": opts["max_new_tokens"]}
            if opts["adapter"]:
                config["adapter_path"] = opts["adapter"]
            return config
        if opts["openai_base_url"]:
            if not opts["openai_model"]:
                raise CommandError("--openai-base-url needs --openai-model")
            return {"kind": "openai", "base_url": opts["openai_base_url"], "model": opts["openai_model"],
                    "api_key_env": opts["api_key_env"]}
        if opts["replay"]:
            return {"kind": "replay", "path": opts["replay"]}
        if opts["adapter_config"]:
            try:
                parsed = json.loads(opts["adapter_config"])
            except json.JSONDecodeError as exc:
                raise CommandError(f"--adapter-config is not JSON: {exc.msg}") from exc
            return parsed if isinstance(parsed, dict) else {"kind": None}
        return None

    def handle(self, *args: Any, **opts: Any) -> None:
        config = self._adapter_config(opts)
        try:
            if bool(opts["suite"]) == bool(opts["dataset_version"]):
                raise CommandError("name exactly one suite: --suite or --dataset-version")
            if opts["suite"]:
                suite = selectors.suite_get(ref=opts["suite"])
            else:
                from ftops.datasets.selectors import version_get

                suite = services.eval_suite_for_dataset(
                    dataset_version=version_get(number=opts["dataset_version"]), split=opts["split"])
            run = services.eval_run_create(
                suite=suite, adapter_config=config, model_version_id=opts["model_version"], name=opts["name"],
                limit=opts["limit"], categories=opts["categories"], created_by="cli", enqueue=opts["queue"],
            )
            if opts["queue"]:
                self.stdout.write(f"queued evaluation run {run.pk} ({run.model_label} on {suite.name})")
                return
            run = services.eval_run_execute(run_id=run.pk)
        except FtopsError as exc:
            problems = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in exc.fields.items())
            raise CommandError(exc.message + (f" ({problems})" if problems else "")) from exc
        if run.status != run.Status.SUCCEEDED:
            raise CommandError(f"evaluation run {run.pk} {run.status}: {run.error}")
        metrics = run.metrics
        self.stdout.write(f"evaluation run {run.pk}: {run.model_label} on {suite.name}")
        latency = metrics["latency_ms"]
        self.stdout.write(f"exact match: {run.exact:.1f}% of {metrics['overall']['n']} cases "
                          f"(latency p50 {latency['p50']:.0f} ms, p95 {latency['p95']:.0f} ms)")
        for category, row in metrics["by_category"].items():
            self.stdout.write(f"  {category}: {row['exact']:.1f}% of {row['n']} (tool {row['tool']:.1f}%, "
                              f"args {row['args']:.1f}%)")
