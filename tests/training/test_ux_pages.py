"""Training pages (issue 16): a "new run" action, the artifact as a download (confined to the
artifacts folder), links to the dataset version, the loss chart's smoothing."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from ftops.common.models import AuditEvent
from ftops.training import services
from ftops.training.models import RunStatus, TrainingRun
from tests.training.conftest import TESTER, make_records

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Any, admin_user: Any) -> Any:
    client.force_login(admin_user)
    return client


def test_a_new_run_from_the_browser(staff: Any, make_dataset_version: Any, django_capture_on_commit_callbacks: Any
                                    ) -> None:
    version = make_dataset_version(train=make_records(6))
    assert '<a class="button primary" href="/training/new">New run</a>' in staff.get("/training/").content.decode()
    form = staff.get(reverse("training:new")).content.decode()
    assert f'<option value="{version.number}" selected>v{version.number}</option>' in form
    with django_capture_on_commit_callbacks(execute=False):
        response = staff.post(reverse("training:new"), {"backend": "fewshot", "dataset_version": version.number,
                                                        "service": "", "name": "from the browser"})
    run = TrainingRun.objects.get()
    assert (response.status_code, response["Location"]) == (302, reverse("training:run", args=[run.pk]))
    assert (run.backend, run.name, run.dataset_version_id, run.created_by) == (
        "fewshot", "from the browser", version.pk, "admin")
    bad = staff.post(reverse("training:new"), {"backend": "fewshot", "dataset_version": "999"})
    assert bad.status_code == 422 and "a dataset version is required" in bad.content.decode()
    unknown = staff.post(reverse("training:new"), {"backend": "quantum", "dataset_version": version.number})
    assert unknown.status_code == 422 and "unknown backend" in unknown.content.decode()
    assert TrainingRun.objects.count() == 1


def test_new_run_needs_the_orchestrator_role(client: Any, django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("rita", "r@example.com", "pw-rita-123")
    user.groups.add(Group.objects.create(name="reviewer"))
    client.force_login(user)
    assert "New run" not in client.get("/training/").content.decode()
    assert client.get(reverse("training:new")).status_code == 403
    assert client.post(reverse("training:new"), {"backend": "fewshot", "dataset_version": "1"}).status_code == 403
    assert TrainingRun.objects.count() == 0


def _succeeded(make_dataset_version: Any, artifact: Path) -> TrainingRun:
    version = make_dataset_version(train=make_records(6))
    run = services.training_run_create(actor=TESTER, backend="fewshot", dataset_version=version, enqueue=False)
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, artifact_path=str(artifact),
                                                 loss_series=[[1, 2.0], [2, 1.5]], val_loss_series=[[2, 1.7]])
    run.refresh_from_db()
    return run


def test_the_artifact_downloads_as_a_zip_and_only_from_the_artifacts_folder(
        staff: Any, make_dataset_version: Any, settings: Any, tmp_path: Path) -> None:
    settings.ARTIFACTS_DIR = str(tmp_path / "artifacts")
    adapter = tmp_path / "artifacts" / "training" / "run-x"
    (adapter / "nested").mkdir(parents=True)
    (adapter / "adapter_config.json").write_text('{"r": 8}')
    (adapter / "nested" / "weights.bin").write_bytes(b"\x00\x01")
    (tmp_path / "secret.txt").write_text("not yours")
    (adapter / "escape").symlink_to(tmp_path / "secret.txt")
    run = _succeeded(make_dataset_version, adapter)
    page = staff.get(reverse("training:run", args=[run.pk])).content.decode()
    assert f'<a class="button" href="/training/runs/{run.pk}/artifact" download>Download the artifact</a>' in page
    assert f'dataset <a href="/datasets/{run.dataset_version.number}/">' in page  # type: ignore[union-attr]
    assert 'id="loss-smoothing"' in page
    response = staff.get(reverse("training:artifact", args=[run.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="training-run-{run.pk}-artifact.zip"'
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(archive.namelist()) == ["adapter_config.json", "nested/weights.bin"]
    assert AuditEvent.objects.filter(action="training.artifact_downloaded", object_id=str(run.pk)).count() == 1
    # A path outside the artifacts folder is never served.
    TrainingRun.objects.filter(pk=run.pk).update(artifact_path=str(tmp_path / "secret.txt"))
    assert staff.get(reverse("training:artifact", args=[run.pk])).status_code == 404
    TrainingRun.objects.filter(pk=run.pk).update(artifact_path=str(adapter / ".." / ".." / ".." / "secret.txt"))
    assert staff.get(reverse("training:artifact", args=[run.pk])).status_code == 404
    assert AuditEvent.objects.filter(action="training.artifact_downloaded").count() == 1


@pytest.mark.parametrize("versions", [1, 12])
def test_new_run_page_takes_the_same_queries_whatever_the_rows(staff: Any, make_dataset_version: Any,
                                                               versions: int, django_assert_max_num_queries: Any
                                                               ) -> None:
    from tests.common.pages import get_within

    for _ in range(versions):
        make_dataset_version(train=make_records(2))
    get_within(staff, django_assert_max_num_queries, reverse("training:new"), 4)  # session, user, versions, services
