"""OpenAI fine-tuning through the official client: upload, create the job, poll it into the run.

The JSONL lines come from the curation export (``ftops.datasets.exports``, format "openai"),
which checks every line against the fine-tuning format and refuses bad records with reasons.

A re-delivered run finds its file and job ids in ``run.external_ids`` and goes on polling
the same job instead of starting a second one.

Events are listed newest first and ``after`` is a pagination cursor (the last, i.e. oldest,
event of the previous page), so each poll reads pages back from the newest event until it
meets one it has already seen: a burst of events between two polls is never cut off.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from ftops.core.ml.lora import TrainingStopped
from ftops.datasets.exports import export_records
from ftops.training.backends import BackendResult, Context, TransientBackendError

if TYPE_CHECKING:
    from ftops.core.records import Record
    from ftops.training.models import TrainingRun

DEFAULT_OPENAI_MODEL = "gpt-4o-mini-2024-07-18"
TERMINAL = ("succeeded", "failed", "cancelled")
EVENTS_PAGE = 100  # the API's largest page
MAX_EVENT_PAGES = 50  # per poll; a job's whole history fits in far fewer


@dataclass
class OpenAIFineTuneConfig:
    base_model: str = DEFAULT_OPENAI_MODEL
    n_epochs: int | str = "auto"
    batch_size: int | str = "auto"
    learning_rate_multiplier: float | str = "auto"
    suffix: str = "ftops"
    seed: int | None = None
    poll_interval_s: float = 15.0
    timeout_s: float = 12 * 3600
    # An upstream credential an admin registered (ftops.common.credentials): it fixes both the
    # endpoint and the key, so a caller can never send a key to a host of its choosing.
    credential: str = ""  # empty: the credential named "openai"
    service: str = ""
    dataset_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OpenAIFineTuneConfig:
        data = dict(data)
        # Runs stored before credentials held these two at their defaults, which chose nothing.
        if data.get("base_url") == "":
            data.pop("base_url")
        if data.get("api_key_env") == "OPENAI_API_KEY":
            data.pop("api_key_env")
        refused = sorted({"base_url", "api_key_env", "api_key"} & set(data))
        if refused:
            raise ValueError(f"{', '.join(refused)} not accepted: give credential, the name of an upstream "
                             "credential an admin registered (it fixes the endpoint and the key)")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown OpenAI config fields: {', '.join(unknown)}")
        return cls(**data)

    def validate(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        if not self.base_model:
            errors["base_model"] = "name the OpenAI model to fine-tune, e.g. gpt-4o-mini-2024-07-18"
        for name in ("n_epochs", "batch_size"):
            value = getattr(self, name)
            if value != "auto" and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                errors[name] = "'auto' or a positive integer"
        lr = self.learning_rate_multiplier
        if lr != "auto" and (not isinstance(lr, int | float) or isinstance(lr, bool) or lr <= 0):
            errors["learning_rate_multiplier"] = "'auto' or a positive number"
        if len(self.suffix) > 64:
            errors["suffix"] = "at most 64 characters"
        if self.poll_interval_s <= 0:
            errors["poll_interval_s"] = "must be > 0"
        if not isinstance(self.credential, str):
            errors["credential"] = "the name of an upstream credential"
        else:
            from ftops.common.credentials import upstream_credential_exists

            if not upstream_credential_exists(self.credential_name):
                errors["credential"] = (f"no upstream credential named {self.credential_name!r}; ask an admin to "
                                        f"register it (manage.py upstream_credential set {self.credential_name} "
                                        "--base-url URL)")
        return errors

    @property
    def credential_name(self) -> str:
        from ftops.common.credentials import DEFAULT_OPENAI_CREDENTIAL

        return self.credential or DEFAULT_OPENAI_CREDENTIAL

    def hyperparameters(self) -> dict[str, Any]:
        return {"n_epochs": self.n_epochs, "batch_size": self.batch_size,
                "learning_rate_multiplier": self.learning_rate_multiplier}


def _client(cfg: OpenAIFineTuneConfig) -> Any:
    from ftops.common.credentials import openai_client_for_credential

    # The key goes to the credential's base URL only (no redirects to another host).
    return openai_client_for_credential(cfg.credential_name, timeout=120, max_retries=2)


def _explain(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc)
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            message = str(inner["message"])
    return message


class OpenAIBackend:
    name = "openai"

    def default_base_model(self) -> str:
        return DEFAULT_OPENAI_MODEL

    def parse_config(self, data: dict[str, Any], *, base_model: str) -> OpenAIFineTuneConfig:
        cfg = OpenAIFineTuneConfig.from_dict({**data, "base_model": base_model})
        errors = cfg.validate()
        if errors:
            raise ValueError(errors)
        return cfg

    def run(self, *, run: TrainingRun, ctx: Context, train: list[Record], val: list[Record],
            rules: list[str]) -> BackendResult:
        import openai

        cfg = OpenAIFineTuneConfig.from_dict(run.config)
        client = _client(cfg)
        ids = dict(run.external_ids or {})
        try:
            if not ids.get("job_id"):
                ids.update(self._upload(client, ctx, train, val, ids))
                hyper = cfg.hyperparameters()
                job = client.fine_tuning.jobs.create(
                    model=cfg.base_model, training_file=ids["training_file"],
                    validation_file=ids.get("validation_file") or None,
                    method={"type": "supervised", "supervised": {"hyperparameters": hyper}},
                    suffix=cfg.suffix or None, seed=cfg.seed,
                    metadata={"ftops_run": str(run.pk)},
                )
                ids["job_id"] = job.id
                ctx.set_external_ids(job_id=job.id)
                ctx.log(f"openai: job {job.id} created ({job.status})")
            return self._poll(client, cfg, ctx, ids["job_id"], step=run.step, total_steps=run.total_steps)
        except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as exc:
            raise TransientBackendError(f"OpenAI is unreachable or busy: {_explain(exc)}") from exc
        except openai.APIStatusError as exc:
            raise RuntimeError(f"OpenAI refused the request ({exc.status_code}): {_explain(exc)}") from exc

    def _upload(self, client: Any, ctx: Context, train: list[Record], val: list[Record],
                ids: dict[str, str]) -> dict[str, str]:
        import openai

        out: dict[str, str] = {}
        for kind, records in (("training_file", train), ("validation_file", val)):
            if ids.get(kind) or not records:
                continue
            name = "train.jsonl" if kind == "training_file" else "validation.jsonl"
            exported = export_records(records, "openai")
            for record_id, reason in exported.refused[:20]:
                ctx.log(f"openai: record {record_id} left out of {name}: {reason}")
            if not exported.lines:
                raise RuntimeError(f"no record of the {kind.replace('_', ' ')} could be exported for OpenAI")
            body = ("\n".join(exported.lines) + "\n").encode()
            try:
                uploaded = client.files.create(file=(name, body, "application/jsonl"), purpose="fine-tune")
            except openai.BadRequestError as exc:
                raise RuntimeError(f"OpenAI refused the {kind.replace('_', ' ')}: {_explain(exc)}") from exc
            if getattr(uploaded, "status", "") == "error":
                detail = getattr(uploaded, "status_details", "") or "no reason given"
                raise RuntimeError(f"OpenAI refused the {kind.replace('_', ' ')}: {detail}")
            out[kind] = uploaded.id
            ctx.set_external_ids(**{kind: uploaded.id})
            ctx.log(f"openai: uploaded {name} ({len(exported.lines)} examples) as {uploaded.id}")
        if "training_file" not in out and not ids.get("training_file"):
            raise RuntimeError("no training examples to upload")
        return out

    def _poll(self, client: Any, cfg: OpenAIFineTuneConfig, ctx: Context, job_id: str, *, step: int = 0,
              total_steps: int = 0) -> BackendResult:
        try:
            return self._poll_loop(client, cfg, ctx, job_id, step=step, total_steps=total_steps)
        except TrainingStopped as stop:
            # A cancel noticed anywhere in the loop (a progress write or the heartbeat) stops the
            # remote job too; a lost lease does not: the new owner goes on polling it.
            if stop.args and stop.args[0] == "cancelled":
                job = client.fine_tuning.jobs.retrieve(job_id)
                if job.status not in TERMINAL:
                    client.fine_tuning.jobs.cancel(job_id)
                    ctx.log(f"openai: cancelled job {job_id}")
            raise

    def _poll_loop(self, client: Any, cfg: OpenAIFineTuneConfig, ctx: Context, job_id: str, *, step: int,
                   total_steps: int) -> BackendResult:
        seen: set[str] = set()
        deadline = time.monotonic() + cfg.timeout_s
        last_loss: float | None = None
        while True:
            job = client.fine_tuning.jobs.retrieve(job_id)
            eta = _eta_seconds(job)
            for event in _new_events(client, job_id, seen):
                data = event.data if isinstance(event.data, dict) else {}
                if event.type == "metrics" and "step" in data:
                    last_loss = data.get("train_loss", last_loss)
                    step, total_steps = int(data["step"]), int(data.get("total_steps") or total_steps)
                    ctx.progress(step=step, total_steps=total_steps, loss=data.get("train_loss"),
                                 val_loss=data.get("valid_loss"), eta_s=eta)
                else:
                    ctx.log(f"openai [{event.level}]: {event.message}")
            # Also between metrics events: the estimate moves while the job queues or validates.
            ctx.progress(step=step, total_steps=total_steps, eta_s=eta)
            if job.status == "succeeded":
                ctx.log(f"openai: job {job_id} succeeded -> {job.fine_tuned_model}")
                ctx.set_external_ids(fine_tuned_model=job.fine_tuned_model or "")
                return BackendResult(
                    artifact_path=job.fine_tuned_model or "", model_ref=job.fine_tuned_model or "",
                    artifact={"fine_tuned_model": job.fine_tuned_model, "job_id": job_id,
                              "result_files": list(job.result_files or [])},
                    metrics={"trained_tokens": job.trained_tokens, "final_loss": last_loss},
                    card={"kind": "openai-fine-tune", "base_model": cfg.base_model, "job_id": job_id,
                          "fine_tuned_model": job.fine_tuned_model, "config": cfg.to_dict()},
                )
            if job.status == "failed":
                error = job.error
                reason = f"{error.code}: {error.message}" if error else "no reason given"
                if error and error.param:
                    reason += f" (param {error.param})"
                raise RuntimeError(f"OpenAI fine-tuning job {job_id} failed: {reason}")
            if job.status == "cancelled":
                raise TrainingStopped("cancelled")
            ctx.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"OpenAI job {job_id} still {job.status} after {cfg.timeout_s:.0f}s")
            time.sleep(cfg.poll_interval_s)


def _eta_seconds(job: Any) -> float | None:
    """Seconds until the job's own ``estimated_finish`` (unix seconds; null unless running)."""
    finish = getattr(job, "estimated_finish", None)
    if not finish or job.status in TERMINAL:
        return None
    return max(0.0, float(finish) - time.time())


def _new_events(client: Any, job_id: str, seen: set[str]) -> list[Any]:
    """Events not in ``seen`` (which this adds them to), oldest first."""
    fresh: list[Any] = []
    after: str | None = None
    for _ in range(MAX_EVENT_PAGES):
        page = client.fine_tuning.jobs.list_events(job_id, limit=EVENTS_PAGE, **({"after": after} if after else {}))
        data = list(page.data)  # newest first
        new = list(itertools.takewhile(lambda e: e.id not in seen, data))
        fresh.extend(new)
        more = page.has_more if page.has_more is not None else len(data) >= EVENTS_PAGE
        if not data or len(new) < len(data) or not more:
            break  # reached what an earlier poll saw, or the job's first event
        after = data[-1].id
    seen.update(e.id for e in fresh)
    return fresh[::-1]
