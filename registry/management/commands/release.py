"""python manage.py release list|show|gates|evaluate|approve|reject|promote|rollback ...

For people who live in a terminal; each subcommand calls the same service the API and the
pages call, as ``cli:<login>`` (or ``--as NAME``), so the two-person rule and the audit log
apply unchanged. A version is named by id or by its human name (``acme-tiny-base-v1.2.0``).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ftops.common.actors import Actor
from ftops.common.errors import FtopsError
from registry import selectors, services


class Command(BaseCommand):
    help = "Release model versions: list, gates, evaluate, approve, reject, promote, rollback."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as", dest="who", default=None, help="act as this name (default: your login)")
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="versions, newest first, and production per scope")
        listing.add_argument("--status", default=None)
        listing.add_argument("--scope", default=None)
        listing.add_argument("--limit", type=int, default=30)
        show = sub.add_parser("show", help="one version: serving, lineage, results, timeline")
        show.add_argument("version")
        gates = sub.add_parser("gates", help="the gate checklist with its numbers")
        gates.add_argument("version")
        gates.add_argument("--recompute", action="store_true", help="compute the gates again first")
        evaluate = sub.add_parser("evaluate", help="evaluate against production (or the base model)")
        evaluate.add_argument("version")
        evaluate.add_argument("--split", default="test", choices=["test", "holdout"])
        approve = sub.add_parser("approve", help="approve (or --override with a justification)")
        approve.add_argument("version")
        approve.add_argument("--comment", default="")
        approve.add_argument("--override", default="", metavar="JUSTIFICATION",
                             help="approve despite failed gates, saying why")
        reject = sub.add_parser("reject")
        reject.add_argument("version")
        reject.add_argument("--comment", required=True)
        promote = sub.add_parser("promote", help="put an approved version in production")
        promote.add_argument("version")
        promote.add_argument("--scope", default="", help="'enterprise' or a service (default: the version's)")
        promote.add_argument("--partial", action="store_true", help="only to services passing their gates")
        promote.add_argument("--reason", default="")
        rollback = sub.add_parser("rollback", help="restore the previous production version of a scope")
        rollback.add_argument("scope", help="'enterprise' or a service")
        rollback.add_argument("--reason", required=True)

    def handle(self, *args: Any, **opts: Any) -> None:
        actor = Actor.cli(opts["who"])
        try:
            getattr(self, f"_{opts['action']}")(actor, opts)
        except FtopsError as exc:
            raise CommandError(exc.message) from exc

    def _version(self, ref: str) -> Any:
        return selectors.model_version_get_by_name(name=ref)

    def _list(self, actor: Actor, opts: dict[str, Any]) -> None:
        versions = selectors.model_versions_list(status=opts["status"], scope=opts["scope"])[: opts["limit"]]
        self.stdout.write(f"{'id':>5}  {'name':<40} {'status':<14} {'scope':<14} {'exact':>7}")
        for v in versions:
            exact = f"{v.overall_exact:.2f}" if v.overall_exact is not None else "-"
            self.stdout.write(f"{v.pk:>5}  {v.name:<40} {v.status:<14} {v.scope:<14} {exact:>7}")
        production = selectors.production_by_scope()
        self.stdout.write("production: " + (", ".join(f"{s}={v.name}" for s, v in production.items()) or "none"))

    def _show(self, actor: Actor, opts: dict[str, Any]) -> None:
        v = self._version(opts["version"])
        self.stdout.write(f"{v.name} ({v.status}, scope {v.scope}, {v.backend}, bump {v.semver_bump})")
        self.stdout.write(f"serving: {v.serving}")
        self.stdout.write(f"artifact: {v.artifact_path} sha256 {v.artifact_sha256}")
        self.stdout.write(f"lineage: {selectors.lineage(model_version=v)}")
        results = v.eval_results or {}
        self.stdout.write(f"results: overall {results.get('overall')}, p95 {results.get('latency_p95_ms')} ms")
        for event in selectors.model_version_events(model_version=v):
            self.stdout.write(f"  {event.at:%Y-%m-%d %H:%M:%S} {event.kind:<20} {event.from_status}->{event.to_status}"
                              f" {event.scope} {event.actor}: {event.reason}")

    def _gates(self, actor: Actor, opts: dict[str, Any]) -> None:
        from registry.gates import model_version_gates_compute

        v = self._version(opts["version"])
        if opts["recompute"]:
            v = model_version_gates_compute(model_version_id=v.pk, by=actor)
        report = selectors.gate_report_latest(model_version=v)
        if report is None:
            raise CommandError(f"{v.name} has no gate report yet; run `release evaluate {v.name}`")
        verdict = "passed" if report.passed else "blocked"
        self.stdout.write(f"gates: {verdict} ({report.checks_passed} of {report.checks_total} checks) against "
                          f"{report.baseline_label}; decision {report.decision}")
        for check in report.checks.all():
            mark = {"passed": "ok ", "failed": "FAIL", "not_computable": "N/C", "not_applicable": "n/a"}[check.outcome]
            needed = f" (needs {check.needed} cases)" if check.needed and check.outcome == "not_computable" else ""
            self.stdout.write(f"  [{mark}] {check.name} {check.subject}: {check.message}{needed}")
        if report.failing_services:
            self.stdout.write(f"failing services: {', '.join(report.failing_services)}")

    def _evaluate(self, actor: Actor, opts: dict[str, Any]) -> None:
        v = services.model_version_evaluate(model_version_id=self._version(opts["version"]).pk, by=actor,
                                            split=opts["split"])
        self.stdout.write(f"evaluating {v.name}: candidate run {v.eval_run_id}, baseline run {v.baseline_eval_run_id}")

    def _approve(self, actor: Actor, opts: dict[str, Any]) -> None:
        v = services.model_version_approve(model_version_id=self._version(opts["version"]).pk, by=actor,
                                           comment=opts["comment"], override_justification=opts["override"])
        self.stdout.write(f"{v.name} approved" + (" (gate override)" if opts["override"] else ""))

    def _reject(self, actor: Actor, opts: dict[str, Any]) -> None:
        v = services.model_version_reject(model_version_id=self._version(opts["version"]).pk, by=actor,
                                          comment=opts["comment"])
        self.stdout.write(f"{v.name} rejected")

    def _promote(self, actor: Actor, opts: dict[str, Any]) -> None:
        version_id = self._version(opts["version"]).pk
        if opts["partial"]:
            v = services.model_version_promote_partial(model_version_id=version_id, by=actor, reason=opts["reason"])
        else:
            v = services.model_version_promote(model_version_id=version_id, by=actor, scope=opts["scope"],
                                               reason=opts["reason"])
        scopes = [d.scope for d in selectors.deployments_list(model_version=v, active_only=True)]
        self.stdout.write(f"{v.name} in production for {', '.join(scopes)}")

    def _rollback(self, actor: Actor, opts: dict[str, Any]) -> None:
        v = services.deployment_rollback(scope=opts["scope"], by=actor, reason=opts["reason"])
        self.stdout.write(f"{opts['scope']} rolled back to {v.name}")
