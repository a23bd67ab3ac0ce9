from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from ftops.common.actors import Actor
from ftops.common.credentials import upstream_credential_delete, upstream_credential_set
from ftops.training import services
from ftops.training.models import RunStatus, TrainingRun
from registry.models import ModelVersion
from tests.training.conftest import TESTER, make_records
from tests.training.openai_server import API_KEY, FakeOpenAI

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    # The backend reaches OpenAI through the default upstream credential, bound to the fake.
    upstream_credential_set(name="openai", base_url=fake.url, value=API_KEY, by=Actor.system("test"))
    yield fake
    fake.stop()


def _run(version: Any, fake: FakeOpenAI, **config: Any) -> TrainingRun:
    return services.training_run_create(actor=TESTER,
        backend="openai", dataset_version=version, base_model="gpt-4o-mini-2024-07-18", enqueue=False,
        config={"poll_interval_s": 0.01, "n_epochs": 3, "suffix": "acme-v1", **config})


def test_success_uploads_files_creates_the_job_and_records_the_model(
        make_dataset_version: Any, fake_openai: FakeOpenAI, django_capture_on_commit_callbacks: Any) -> None:
    version = make_dataset_version(train=make_records(24), validation=make_records(12, seed=1))
    run = _run(version, fake_openai)
    with django_capture_on_commit_callbacks(execute=True):  # registration is a registry task sent on commit
        done = services.training_run_execute(run_id=run.pk, owner="w1")
    assert done is not None and done.status == RunStatus.SUCCEEDED, done.error if done else None
    train_id, val_id = done.external_ids["training_file"], done.external_ids["validation_file"]
    lines = [json.loads(x) for x in fake_openai.contents[train_id].decode().splitlines()]
    assert len(lines) == 24 and len(fake_openai.contents[val_id].decode().splitlines()) == 12
    call = lines[0]["messages"][-1]["tool_calls"][0]["function"]
    assert call == {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}
    job = fake_openai.jobs[done.external_ids["job_id"]]
    assert job["training_file"] == train_id and job["validation_file"] == val_id
    assert job["hyperparameters"] == {"n_epochs": 3, "batch_size": "auto", "learning_rate_multiplier": "auto"}
    assert job["suffix"] == "acme-v1" and job["model"] == "gpt-4o-mini-2024-07-18"
    model_id = "ft:gpt-4o-mini-2024-07-18:ftops:acme-v1:abc123"
    assert done.external_ids["fine_tuned_model"] == model_id and done.artifact_path == model_id
    assert done.loss_series == [[1, 2.0], [2, 1.0], [3, 0.666667]]
    assert done.val_loss_series == [[1, 2.5], [2, 1.25], [3, 0.833333]]
    assert done.progress == 100.0 and done.metrics["trained_tokens"] == 12345
    assert "Fine-tuning job started" in done.log_tail
    assert ModelVersion.objects.get(training_run=done).serving["model"] == model_id


def test_eta_comes_from_the_jobs_estimated_finish(make_dataset_version: Any, fake_openai: FakeOpenAI,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.training.openai_server import ESTIMATED_RUNTIME_S

    version = make_dataset_version(train=make_records(24))
    run = _run(version, fake_openai)
    original = services.RunContext.progress
    stored: list[float | None] = []

    def record_eta(self: Any, **kwargs: Any) -> None:
        original(self, **{**kwargs, "force": True})
        stored.append(TrainingRun.objects.get(pk=run.pk).eta_seconds)

    monkeypatch.setattr(services.RunContext, "progress", record_eta)
    done = services.training_run_execute(run_id=run.pk, owner="w1")
    assert done is not None and done.status == RunStatus.SUCCEEDED, done.error if done else None
    running = [eta for eta in stored if eta is not None]
    # Every poll while the job runs (start, three metrics polls) counts down to the job's
    # created_at + ESTIMATED_RUNTIME_S; nothing before the first poll, nothing once finished.
    assert len(running) >= 4
    assert all(ESTIMATED_RUNTIME_S - 10 < eta <= ESTIMATED_RUNTIME_S for eta in running)
    assert stored[0] is None and stored[-1] is None and done.eta_seconds is None


def test_events_between_polls_are_all_read_across_pages(make_dataset_version: Any,
                                                        fake_openai: FakeOpenAI) -> None:
    fake_openai.burst = True  # three metrics events and a message arrive between two polls
    fake_openai.max_page = 2  # and the server pages them two at a time
    version = make_dataset_version(train=make_records(24))
    done = services.training_run_execute(run_id=_run(version, fake_openai).pk, owner="w1")
    assert done is not None and done.status == RunStatus.SUCCEEDED, done.error if done else None
    assert done.loss_series == [[1, 2.0], [2, 1.0], [3, 0.666667]]
    assert done.val_loss_series == [[1, 2.5], [2, 1.25], [3, 0.833333]]
    log = done.log_tail
    assert log.index("Fine-tuning job started") < log.index("Checkpoint saved at step 3")
    assert "successfully completed" in log
    cursors = [q["after"][0] for q in fake_openai.event_queries if "after" in q]
    assert cursors and all(c.startswith("ftevent-ftjob-0001-") for c in cursors)


def test_failed_job_shows_its_reason_on_the_run(make_dataset_version: Any, fake_openai: FakeOpenAI) -> None:
    fake_openai.scenario = "fail"
    version = make_dataset_version(train=make_records(24))
    done = services.training_run_execute(run_id=_run(version, fake_openai).pk, owner="w1")
    assert done is not None and done.status == RunStatus.FAILED
    assert "invalid_training_file" in done.error and "too many tokens per example" in done.error
    assert not ModelVersion.objects.filter(training_run=done).exists()


def test_refused_file_shows_the_reason_and_creates_no_job(make_dataset_version: Any,
                                                          fake_openai: FakeOpenAI) -> None:
    version = make_dataset_version(train=make_records(6))  # OpenAI needs at least 10 examples
    done = services.training_run_execute(run_id=_run(version, fake_openai).pk, owner="w1")
    assert done is not None and done.status == RunStatus.FAILED
    assert "refused the training file" in done.error and "must have at least 10 examples" in done.error
    assert fake_openai.jobs == {}


def test_redelivered_run_keeps_polling_its_job_without_uploading_again(make_dataset_version: Any,
                                                                       fake_openai: FakeOpenAI) -> None:
    version = make_dataset_version(train=make_records(24))
    first = _run(version, fake_openai)
    services.training_run_execute(run_id=first.pk, owner="w1")
    uploads = sum(1 for m, p in fake_openai.requests if p == "/v1/files")
    second = _run(version, fake_openai)
    TrainingRun.objects.filter(pk=second.pk).update(external_ids={"job_id": "ftjob-0001"})
    done = services.training_run_execute(run_id=second.pk, owner="w2")
    assert done is not None and done.status == RunStatus.SUCCEEDED
    assert sum(1 for m, p in fake_openai.requests if p == "/v1/files") == uploads
    assert len(fake_openai.jobs) == 1


def test_cancel_cancels_the_remote_job(make_dataset_version: Any, fake_openai: FakeOpenAI,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    version = make_dataset_version(train=make_records(24))
    run = _run(version, fake_openai)
    original = services.RunContext.progress

    def cancel_on_first_metrics(self: Any, **kwargs: Any) -> None:
        if kwargs.get("step") == 1 and kwargs.get("loss") is not None:
            services.training_run_cancel(run_id=run.pk, actor=Actor(label="carol"))
        original(self, **{**kwargs, "force": True})

    monkeypatch.setattr(services.RunContext, "progress", cancel_on_first_metrics)
    done = services.training_run_execute(run_id=run.pk, owner="w1")
    assert done is not None and done.status == RunStatus.CANCELLED
    assert ("POST", "/v1/fine_tuning/jobs/ftjob-0001/cancel") in fake_openai.requests
    assert fake_openai.jobs["ftjob-0001"]["status"] == "cancelled"


def test_a_credential_deleted_after_creation_fails_the_run_with_a_clear_message(make_dataset_version: Any,
                                                                                  fake_openai: FakeOpenAI) -> None:
    version = make_dataset_version(train=make_records(24))
    run = _run(version, fake_openai)
    upstream_credential_delete(name="openai", by=Actor.system("test"))
    done = services.training_run_execute(run_id=run.pk, owner="w1")
    assert done is not None and done.status == RunStatus.FAILED
    assert "no upstream credential named 'openai'" in done.error
    assert fake_openai.requests == []


@pytest.mark.parametrize("config", [{"base_url": "http://127.0.0.1:9/v1"}, {"api_key_env": "FTOPS_SECRET_KEY"},
                                    {"credential": "missing"}])
def test_an_endpoint_or_key_variable_cannot_be_chosen(make_dataset_version: Any, fake_openai: FakeOpenAI,
                                                      config: dict[str, Any]) -> None:
    from ftops.common.errors import ValidationFailed

    version = make_dataset_version(train=make_records(4))
    with pytest.raises(ValidationFailed) as info:
        _run(version, fake_openai, **config)
    assert list(info.value.fields) == (["config.credential"] if "credential" in config else ["config"])
    assert "credential" in str(info.value.fields)
    assert TrainingRun.objects.count() == 0 and fake_openai.requests == []


def test_bad_openai_config_is_rejected_at_creation(make_dataset_version: Any) -> None:
    from ftops.common.errors import ValidationFailed

    version = make_dataset_version(train=make_records(4))
    with pytest.raises(ValidationFailed) as info:
        services.training_run_create(actor=TESTER, backend="openai", dataset_version=version,
                                     config={"n_epochs": 0, "suffix": "x" * 65})
    assert set(info.value.fields) == {"config.n_epochs", "config.suffix", "config.credential"}
