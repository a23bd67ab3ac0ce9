"""python manage.py evaluate --suite NAME (--hf-model PATH [--adapter DIR] | --credential NAME
--openai-model M | --model-version ID | --adapter-config JSON | --replay FILE) [--limit N] [--queue]

An OpenAI-compatible endpoint is reached through a named upstream credential, as from the API
(register one with ``manage.py upstream_credential set NAME --base-url URL``). A replay file
outside the artifacts folder is copied into it first (the terminal user may read it; the
worker and the API only read files inside that folder).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ftops.common.actors import Actor
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
        model.add_argument("--credential", help="an upstream credential (fixes endpoint and key): upstream_credential")
        model.add_argument("--openai-model", help="with --credential: the model name the endpoint serves")
        model.add_argument("--model-version", type=int, help="registry model version id")
        model.add_argument("--adapter-config", help="adapter config as JSON (see ftops.core.adapters)")
        model.add_argument("--replay", help="score recorded answers: JSON lines {id, result} or {id, calls, text}")
        parser.add_argument("--name", default="")
        parser.add_argument("--limit", type=int, help="score only the first N cases")
        parser.add_argument("--category", action="append", dest="categories", default=[], metavar="CAT")
        parser.add_argument("--queue", action="store_true",
                            help="enqueue on the evaluation queue instead of running here")

    def _adapter_config(self, opts: dict[str, Any]) -> dict[str, Any] | None:
        chosen = [k for k in ("hf_model", "credential", "model_version", "adapter_config", "replay") if opts[k]]
        if len(chosen) != 1:
            raise CommandError("name exactly one model: --hf-model, --credential, --model-version, "
                               "--adapter-config or --replay")
        if opts["hf_model"]:
            config: dict[str, Any] = {"kind": "hf_local", "model_path": opts["hf_model"],
                                      "batch_size": opts["batch_size"], "max_new_tokens": opts["max_new_tokens"]}
            if opts["adapter"]:
                config["adapter_path"] = opts["adapter"]
            return config
        if opts["credential"]:
            if not opts["openai_model"]:
                raise CommandError("--credential needs --openai-model")
            return {"kind": "openai", "credential": opts["credential"], "model": opts["openai_model"]}
        if opts["replay"]:
            return {"kind": "replay", "path": self._replay_inside_artifacts(Path(opts["replay"]))}
        if opts["adapter_config"]:
            try:
                parsed = json.loads(opts["adapter_config"])
            except json.JSONDecodeError as exc:
                raise CommandError(f"--adapter-config is not JSON: {exc.msg}") from exc
            return parsed if isinstance(parsed, dict) else {"kind": None}
        return None

    def _replay_inside_artifacts(self, path: Path) -> str:
        """The path to give the run: the file itself when it already lies in the artifacts folder,
        else a copy under evaluation/replays/ named by its content (copying twice is harmless)."""
        root = Path(settings.ARTIFACTS_DIR).resolve()
        try:
            source = path.expanduser().resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            raise CommandError(f"--replay: cannot read {path}: {exc}") from exc
        if not source.is_file():
            raise CommandError(f"--replay: {path} is not a file")
        if source.is_relative_to(root):
            return str(source.relative_to(root))
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
        target = root / "evaluation" / "replays" / f"{digest}-{source.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file():
            partial = target.with_name(target.name + ".part")
            shutil.copyfile(source, partial)
            partial.replace(target)  # atomic: a worker never reads a half-copied file
        return str(target.relative_to(root))

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
                limit=opts["limit"], categories=opts["categories"], created_by="cli", by=Actor.cli(),
                enqueue=opts["queue"],
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
