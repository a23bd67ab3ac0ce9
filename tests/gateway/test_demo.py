"""The gateway's demo stage: model server and gateway in-process, one canary promoted and one rolled back.

The micro models of tests/modelserver stand in for the demo's: the "base" answers the weather
request with a call its schema refuses, the tuned adapter (served with schema-constrained calls)
with a valid one, so the checker promotes the tuned canary and rolls the free-decoding base back
on the schema verdicts of real generations.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from ftops.catalog.models import Service
from ftops.common.actors import Actor
from ftops.common.demo import STAGES, DemoContext
from ftops.datasets.models import DatasetMembership, DatasetVersion, TrainingExample
from ftops.evaluation.models import EvalRun
from ftops.evaluation.services import eval_suite_for_dataset
from ftops.gateway import demo
from ftops.gateway.app import upstream_body
from ftops.gateway.models import CanaryDecision
from ftops.gateway.selectors import Target
from ftops.gateway.upstream import plan_for
from ftops.interactions.models import Interaction
from registry.models import Deployment, DeploymentState, ModelVersion, VersionStatus
from registry.services import model_version_attach_evaluation, model_version_register
from tests.interactions.conftest import add_tool
from tests.modelserver.conftest import Built, built_models, weather_record  # noqa: F401  (a session fixture)
from tests.registry.factories import finished_run

DEMO = Actor.system("demo")


def test_the_gateway_stage_runs_after_the_registry() -> None:
    assert STAGES.index("ftops.loop.demo") > STAGES.index("ftops.gateway.demo") > STAGES.index("registry.demo")


def test_a_constrained_lora_version_asks_the_upstream_for_constrained_calls(settings: Any) -> None:
    settings.FTOPS_GATEWAY_LORA_UPSTREAM = "lora"
    body = {"model": "canary", "messages": [{"role": "user", "content": "hi"}], "tools": []}
    serving = {"kind": "hf_lora", "base_model": "/m/base", "adapter_path": "/a/tuned"}
    held = plan_for(Target(1, "acme-v1.0.1", {**serving, "constrained": True}, "weather", "canary"))
    free = plan_for(Target(2, "acme-v1.0.0", serving, "weather", "production"))
    assert (held.credential, held.model, held.constrained) == ("lora", "acme-v1.0.1", True)
    assert upstream_body(body, held) == {**body, "model": "acme-v1.0.1", "ftops_constrained": True}
    assert upstream_body(body, free) == {**body, "model": "acme-v1.0.0"}
    # Only a literal true asks for it; the base model as a version of its own decodes freely.
    assert not plan_for(Target(3, "x", {**serving, "constrained": "yes"}, "weather", "canary")).constrained
    assert not plan_for(Target(4, "y", {"kind": "hf_lora", "base_model": "/m/base"}, "weather", "canary")).constrained


@pytest.mark.django_db
def test_the_stage_skips_without_a_registered_version() -> None:
    lines: list[str] = []
    ctx = DemoContext(out=lines.append, shared={"base_model_path": "/m/base"})
    demo.run(ctx)
    assert lines == ["gateway skipped: earlier stages did not provide model_version, eval_runs, dataset_version"]
    assert ctx.summary == {} and ctx.failures == []


def weather_dataset() -> DatasetVersion:
    """A ready dataset version whose train and test splits are the weather request, against the weather catalog."""
    record = weather_record()
    service = Service.objects.create(name="weather", display_name="Weather")
    tools = {spec["function"]["name"]: add_tool(service, spec["function"]["name"], spec["function"]["parameters"])
             for spec in record.tools}
    version = DatasetVersion.objects.create(number=1, status="ready", content_hash="w" * 64)
    for position, split in enumerate(("train", "test")):
        example = TrainingExample.objects.create(
            service=service, tool=tools["get_weather"], user_query="Weather in Paris?", messages=record.messages,
            tools=sorted(tools), behavior="call", expected=record.expected, source="manual", quality="high",
            content_hash=hashlib.sha256(split.encode()).hexdigest())
        DatasetMembership.objects.create(version=version, example=example, split=split, dimension="seen_phrasing",
                                         position=position, snapshot={**record.to_dict(), "split": split})
    return version


@pytest.mark.ml
@pytest.mark.django_db(transaction=True)
def test_the_stage_promotes_the_tuned_canary_and_rolls_the_worse_one_back(
        built_models: Built, settings: Any, tmp_path: Path) -> None:  # noqa: F811
    config = tmp_path / "ft_ops_config.yaml"
    config.write_text("evaluation:\n  deployment_criteria:\n    min_cases: 1\n    min_group_cases: 1\n")
    settings.FTOPS_CONFIG_FILE = str(config)
    settings.ARTIFACTS_DIR = built_models.root
    data = weather_dataset()
    base, adapter = str(built_models.base), str(built_models.weather)
    suite = eval_suite_for_dataset(dataset_version=data, split="test")
    runs = {"base": finished_run(suite, exact=0.0, n=1, by_service={"weather": (0.0, 1)}),
            "tuned": finished_run(suite, exact=100.0, n=1, by_service={"weather": (100.0, 1)})}
    EvalRun.objects.filter(pk=runs["base"].pk).update(adapter_config={"kind": "hf_local", "model_path": base})
    EvalRun.objects.filter(pk=runs["tuned"].pk).update(
        adapter_config={"kind": "hf_local", "model_path": base, "adapter_path": adapter})
    # The evaluation stage scores the tuned adapter under constrained decoding too.
    runs["tuned_constrained"] = finished_run(suite, exact=100.0, n=1, by_service={"weather": (100.0, 1)})
    EvalRun.objects.filter(pk=runs["tuned_constrained"].pk).update(
        adapter_config={"kind": "hf_local", "model_path": base, "adapter_path": adapter, "constrained": True})
    tuned = model_version_register(base_model=base, artifact_path=adapter, dataset_version=data, by=DEMO)
    tuned = model_version_attach_evaluation(model_version_id=tuned.pk, candidate_run_id=runs["tuned"].pk,
                                            baseline_run_id=runs["base"].pk, by=DEMO)
    lines: list[str] = []
    ctx = DemoContext(out=lines.append, shared={"model_version": tuned, "base_model_path": base, "eval_runs": runs,
                                                "dataset_version": data})
    demo.run(ctx)
    assert ctx.failures == [], "\n".join(lines)
    # 30 + 30 requests while the tuned canary is judged, then 24 + 4 for the worse one: all answered.
    assert ctx.summary["gateway_calls"] == 88
    assert Interaction.objects.filter(service__name="weather").count() == 88
    # The tuned adapter went out registered again with schema-constrained calls, gated on its
    # constrained run (the free-decoding run would not stand for it).
    served = ModelVersion.objects.exclude(pk=tuned.pk).get(artifact_path=adapter)
    assert served.serving == {**tuned.serving, "constrained": True}
    assert served.eval_run_id == runs["tuned_constrained"].pk
    assert f"{served.name}: {tuned.name}'s adapter served with schema-constrained tool calls" in lines
    assert ctx.summary["canary_promoted"].startswith(f"{served.name} (not worse than production")
    worse = ModelVersion.objects.filter(status=VersionStatus.ROLLED_BACK).get()
    assert ctx.summary["canary_rolled_back"].startswith(f"{worse.name} (error rate 100.0% over 24 requests")
    assert worse.serving == {"kind": "hf_lora", "base_model": base}
    production = Deployment.objects.get(scope="weather", state=DeploymentState.PRODUCTION)
    assert production.model_version_id == served.pk
    assert list(CanaryDecision.objects.order_by("pk").values_list("model_version__name", "action", "automatic")) == [
        (served.name, "promote", True), (worse.name, "rollback", True)]
    # The enterprise scope the registry stage gates against was left alone.
    assert not Deployment.objects.filter(scope="enterprise").exists()
    assert any(line.startswith("model server on http://127.0.0.1:") for line in lines)
