"""ftops loads a LoRA version's adapter on the LoRA upstream when it starts serving (vLLM's endpoint, our server)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ftops.common.actors import Actor
from ftops.common.credentials import upstream_credential_set
from registry.models import ModelVersion
from registry.services import canary_promote, canary_start, model_version_promote
from registry.serving import lora_adapter_unload, model_version_adapter_load, serving_adapters_load
from tests.modelserver.conftest import KEY, Built, Running
from tests.registry.factories import approved

pytestmark = [pytest.mark.ml, pytest.mark.django_db(transaction=True)]
SYSTEM = Actor.system("test")


@pytest.fixture
def lora_upstream(model_server: Running, settings: Any) -> Iterator[Running]:
    """The model server registered as the credential FTOPS_GATEWAY_LORA_UPSTREAM names."""
    settings.FTOPS_OUTBOUND_ALLOW = ["127.0.0.1/32"]
    upstream_credential_set(name=settings.FTOPS_GATEWAY_LORA_UPSTREAM, base_url=model_server.url, value=KEY, by=SYSTEM)
    yield model_server


def served(running: Running) -> list[str]:
    return [m.id for m in running.client().models.list()]


def lora_version(adapter: str, **kwargs: Any) -> ModelVersion:
    return approved(base=kwargs.pop("base", "/models/micro-base"), artifact_path=adapter, **kwargs)


def test_a_canary_loads_its_adapter_and_answers_under_its_name(lora_upstream: Running, models: Built) -> None:
    version = lora_version(str(models.weather))
    assert version.serving["kind"] == "hf_lora"
    assert served(lora_upstream) == ["micro-base"]
    canary_start(model_version_id=version.pk, by=SYSTEM)  # the task runs in-process once this commits
    assert served(lora_upstream) == ["micro-base", version.name]
    answer = lora_upstream.client().chat.completions.create(
        model=version.name, messages=[{"role": "user", "content": "Weather in Paris?"}], max_tokens=8)
    assert answer.model == version.name
    # Promoting the canary loads it again: the server says it holds it already, nothing changes.
    canary_promote(model_version_id=version.pk, by=SYSTEM)
    assert served(lora_upstream) == ["micro-base", version.name]


def test_promotion_loads_and_a_restarted_server_catches_up(lora_upstream: Running, models: Built) -> None:
    first = lora_version(str(models.weather))
    model_version_promote(model_version_id=first.pk, by=SYSTEM)
    assert served(lora_upstream) == ["micro-base", first.name]
    assert lora_adapter_unload(credential="model-server", name=first.name) is True  # as if it restarted empty
    assert lora_adapter_unload(credential="model-server", name=first.name) is False
    assert [(load.name, load.outcome) for load in serving_adapters_load()] == [(first.name, "loaded")]
    assert served(lora_upstream) == ["micro-base", first.name]


def test_an_adapter_outside_the_servers_root_is_refused_and_nothing_loads(lora_upstream: Running, models: Built,
                                                                          tmp_path: Any) -> None:
    from registry.serving import AdapterRefused

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "adapter_config.json").write_text("{}")
    version = lora_version(str(outside))
    with pytest.raises(AdapterRefused, match="lora_path must name a LoRA adapter folder"):
        model_version_adapter_load(model_version_id=version.pk)
    canary_start(model_version_id=version.pk, by=SYSTEM)  # the task logs the refusal; the canary still starts
    assert served(lora_upstream) == ["micro-base"]


def test_without_the_credential_or_for_other_kinds_there_is_nothing_to_load(model_server: Running,
                                                                            models: Built) -> None:
    version = lora_version(str(models.weather))
    load = model_version_adapter_load(model_version_id=version.pk)
    assert (load.outcome, load.detail) == ("skipped", "no upstream credential named 'model-server'")
    other = approved(base="gpt-base", artifact_path="ft:gpt-4o-mini:acme", backend="openai")
    assert model_version_adapter_load(model_version_id=other.pk).outcome == "skipped"
    assert served(model_server) == ["micro-base"]
