from __future__ import annotations

import pytest

from ftops.common.errors import ValidationFailed
from registry.models import ModelVersion
from registry.selectors import model_version_get, model_versions_list
from registry.services import model_version_add_metrics, model_version_register

pytestmark = pytest.mark.django_db


def test_versions_count_up_per_name() -> None:
    first = model_version_register(name="acme", base_model="tiny", adapter_path="/a/1", card={"kind": "lora"})
    second = model_version_register(name="acme", base_model="tiny", adapter_path="/a/2")
    other = model_version_register(name="billing", base_model="tiny")
    assert (first.semver, second.semver, other.semver) == ("0.1.0", "0.2.0", "0.1.0")
    assert [m.semver for m in model_versions_list(name="acme")] == ["0.2.0", "0.1.0"]
    assert model_version_get(model_version_id=first.pk).card == {"kind": "lora"}


def test_explicit_semver_is_checked() -> None:
    model_version_register(name="acme", base_model="tiny", semver="1.0.0")
    with pytest.raises(ValidationFailed, match="already exists"):
        model_version_register(name="acme", base_model="tiny", semver="1.0.0")
    with pytest.raises(ValidationFailed, match=r"MAJOR\.MINOR\.PATCH"):
        model_version_register(name="acme", base_model="tiny", semver="v2")
    with pytest.raises(ValidationFailed, match="name is required"):
        model_version_register(name=" ", base_model="tiny")
    assert ModelVersion.objects.count() == 1
    assert model_version_register(name="acme", base_model="tiny").semver == "1.1.0"


def test_metrics_are_merged() -> None:
    mv = model_version_register(name="acme", base_model="tiny", metrics={"final_loss": 0.5})
    model_version_add_metrics(model_version=mv, metrics={"exact_new_phrasings": 71.0})
    assert model_version_get(model_version_id=mv.pk).metrics == {"final_loss": 0.5, "exact_new_phrasings": 71.0}
