"""Demo stage: register the tuned model, gate it against the base model, ask an approver.

The evaluation stage already scored the base model and the tuned adapter on the test split;
those runs are attached to the version rather than run again. Summary lines:
``model_version``, ``gates`` (passed/blocked, n of m checks) and ``release`` (where it stands).
"""

from __future__ import annotations

from ftops.common.actors import Actor
from ftops.common.demo import DemoContext


def run(ctx: DemoContext) -> None:
    training_run = ctx.shared.get("training_run")
    runs = ctx.shared.get("eval_runs") or {}
    if training_run is None:
        ctx.log("registry skipped: no training run from the earlier stages")
        return
    from ftops.common.errors import FtopsError
    from registry.selectors import gate_report_latest
    from registry.services import model_version_attach_evaluation, model_version_register_for_run

    actor = Actor.system("demo")
    version = model_version_register_for_run(training_run_id=training_run.pk, by=actor)
    ctx.summary["model_version"] = f"{version.name} ({version.semver_bump}, {version.backend}, scope {version.scope})"
    ctx.log(f"registered {version.name}: serving {version.serving.get('kind')}, sha256 {version.artifact_sha256[:12]}")
    if "base" not in runs or "tuned" not in runs:
        ctx.log("gates skipped: the evaluation stage stored no base and tuned runs")
        return
    try:
        version = model_version_attach_evaluation(model_version_id=version.pk, candidate_run_id=runs["tuned"].pk,
                                                  baseline_run_id=runs["base"].pk, by=actor)
    except FtopsError as exc:
        ctx.fail(f"registry: could not gate {version.name}: {exc.message}")
        return
    report = gate_report_latest(model_version=version)
    if report is None:
        ctx.fail(f"registry: {version.name} has no gate report")
        return
    verdict = "passed" if report.passed else "blocked"
    ctx.summary["gates"] = f"{verdict} ({report.checks_passed} of {report.checks_total} checks vs " \
                           f"{report.baseline_label}; {report.decision})"
    for check in report.checks.all():
        ctx.log(f"  [{check.outcome}] {check.name} {check.subject}: {check.message}")
    ctx.summary["release"] = f"{version.status}: awaiting an approver (python manage.py release approve " \
                             f"{version.name}{' --override REASON' if not report.passed else ''})"
    ctx.shared["model_version"] = version
