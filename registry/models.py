"""Model versions and their release: gates, approvals, deployments and the timeline.

A ``ModelVersion`` is one trained model (LoRA adapter, OpenAI fine-tune or few-shot prompt)
with its lineage (training run -> dataset version), how to serve it (``serving``, written
once at registration) and its evaluation results. Its ``status`` walks

    registered -> evaluated -> gates_passed | gates_blocked -> approved | rejected
               -> canary -> production -> retired | rolled_back

and every step is one service in ``registry.services`` that locks the row, writes a
``ModelVersionEvent`` (the timeline) and an audit row.

What serves traffic is a ``Deployment`` per scope (the whole enterprise or one service). The
database, not only the code, keeps at most one production deployment per scope: a partial
unique index on ``scope`` where ``state = 'production'``. Two promotions racing for one scope
both try to insert; the index lets exactly one commit and the other gets an IntegrityError,
which the service turns into a 409.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from ftops.common.models import TimeStampedModel
from ftops.training.models import Backend

ENTERPRISE_SCOPE = "enterprise"


class VersionStatus(models.TextChoices):
    REGISTERED = "registered", "Registered"
    EVALUATED = "evaluated", "Evaluated"
    GATES_PASSED = "gates_passed", "Gates passed"
    GATES_BLOCKED = "gates_blocked", "Gates blocked"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CANARY = "canary", "Canary"
    PRODUCTION = "production", "Production"
    RETIRED = "retired", "Retired"
    ROLLED_BACK = "rolled_back", "Rolled back"


class SemverBump(models.TextChoices):
    INITIAL = "initial", "Initial"
    MAJOR = "major", "Major (breaking tool schema change)"
    MINOR = "minor", "Minor (tools added or extended)"
    PATCH = "patch", "Patch (data only)"


class ModelVersion(TimeStampedModel):
    """One trained model with lineage, serving config, cost and evaluation results.

    ``family`` is the series semantic versions count in (``<enterprise>-<base>`` or
    ``<enterprise>-<base>-<service>`` for a per-service adapter); ``name`` is the human name
    ``<family>-v<semver>``. ``predecessor`` is the version this one succeeds, and
    ``semver_bump`` with ``semver_reason`` say why its number moved as it did.
    """

    name = models.CharField(max_length=250, unique=True, help_text="<enterprise>-<base>-v<semver>")
    family = models.CharField(max_length=220, db_index=True, default="")
    semver = models.CharField(max_length=40)
    base_model = models.CharField(max_length=300)
    backend = models.CharField(max_length=10, choices=Backend.choices, default=Backend.LORA)
    scope = models.CharField(max_length=100, default=ENTERPRISE_SCOPE, db_index=True,
                             help_text="'enterprise' or the catalog service a per-service adapter serves")
    status = models.CharField(max_length=16, choices=VersionStatus.choices, default=VersionStatus.REGISTERED,
                              db_index=True)
    # What was produced and how to serve it (written at registration, never guessed from a path).
    artifact_path = models.CharField(max_length=500, blank=True, help_text="Adapter folder, prompt file or model id")
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    serving = models.JSONField(default=dict, blank=True,
                               help_text='e.g. {"kind": "hf_lora", "base_model": ..., "adapter_path": ...}')
    # Lineage.
    training_run = models.ForeignKey(
        "training.TrainingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="model_versions"
    )
    dataset_version = models.ForeignKey(
        "datasets.DatasetVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="model_versions"
    )
    predecessor = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="successors")
    semver_bump = models.CharField(max_length=10, choices=SemverBump.choices, default=SemverBump.INITIAL)
    semver_reason = models.JSONField(default=dict, blank=True, help_text="Tools added/changed since the predecessor")
    tool_manifest = models.JSONField(default=dict, blank=True,
                                     help_text="{'service/tool': schema version number} it was trained on")
    # Training metrics and the model card as training wrote them; cost of producing it.
    metrics = models.JSONField(default=dict, blank=True)
    card = models.JSONField(default=dict, blank=True)
    cost = models.JSONField(default=dict, blank=True,
                            help_text="{'cpu_seconds', 'gpu_seconds', 'fine_tune_usd'} as known")
    # Evaluation written back: overall, by_category/service/tool/dimension, latency p50/p95,
    # perplexity (when the backend gives log-probabilities), cost per 1k requests, suite version.
    eval_results = models.JSONField(default=dict, blank=True)
    eval_run = models.ForeignKey("evaluation.EvalRun", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+", help_text="The candidate's run the gates read")
    baseline_eval_run = models.ForeignKey("evaluation.EvalRun", null=True, blank=True, on_delete=models.SET_NULL,
                                          related_name="+", help_text="Production (or base model) on the same split")
    created_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["family", "semver"], name="uniq_model_family_semver"),
            # A training run registers at most one version (registration is idempotent).
            models.UniqueConstraint(fields=["training_run"], condition=models.Q(training_run__isnull=False),
                                    name="uniq_model_version_training_run"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def overall_exact(self) -> float | None:
        value = (self.eval_results or {}).get("overall", {}).get("exact")
        return float(value) if value is not None else None


class ModelVersionEvent(models.Model):
    """One step on a version's timeline: a status transition, a deployment change, a gate run."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=40, help_text="registered, evaluated, gates, approved, promoted, ...")
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    scope = models.CharField(max_length=100, blank=True)
    reason = models.TextField(blank=True)
    actor = models.CharField(max_length=200, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.model_version_id} {self.kind} {self.from_status}->{self.to_status}"


class CriticalScenario(TimeStampedModel):
    """A test case a service marks critical: it must pass, and the service's critical cases
    together must reach its ``min_accuracy_required``. Keyed by the evaluation record id
    (a training example's id for dataset suites, the case id for imported suites)."""

    record_id = models.CharField(max_length=120, unique=True)
    service = models.CharField(max_length=100, db_index=True)
    example = models.ForeignKey("datasets.TrainingExample", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="+")
    note = models.CharField(max_length=300, blank=True)
    created_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["service", "record_id"]

    def __str__(self) -> str:
        return f"{self.service}:{self.record_id}"


class GateOutcome(models.TextChoices):
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    NOT_COMPUTABLE = "not_computable", "Not computable"
    NOT_APPLICABLE = "not_applicable", "Not applicable"


class ReleaseDecision(models.TextChoices):
    DEPLOY_ALL = "deploy_all", "Deploy to every service"
    PARTIAL = "partial", "Deploy to passing services only"
    BLOCKED = "blocked", "Blocked (show the failure pattern)"
    BLOCKED_CRITICAL = "blocked_critical", "Blocked with a critical alert"


class GateReport(TimeStampedModel):
    """One computation of the deployment gates for a version against its baseline."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="gate_reports")
    baseline_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="+")
    baseline_label = models.CharField(max_length=300, blank=True, help_text="Production version or base model")
    candidate_run = models.ForeignKey("evaluation.EvalRun", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")
    baseline_run = models.ForeignKey("evaluation.EvalRun", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    passed = models.BooleanField(default=False)
    checks_passed = models.PositiveIntegerField(default=0)
    checks_total = models.PositiveIntegerField(default=0)
    criteria = models.JSONField(default=dict, blank=True, help_text="The thresholds used")
    decision = models.CharField(max_length=20, choices=ReleaseDecision.choices, default=ReleaseDecision.BLOCKED)
    failing_services = models.JSONField(default=list, blank=True)
    passing_services = models.JSONField(default=list, blank=True)
    failure_pattern = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"gates for {self.model_version_id}: {'passed' if self.passed else 'blocked'}"


class GateCheck(models.Model):
    """One check with its numbers: what was observed, against what, and the limit."""

    report = models.ForeignKey(GateReport, on_delete=models.CASCADE, related_name="checks")
    name = models.CharField(max_length=60, help_text="overall_improvement, category_regression, ...")
    subject = models.CharField(max_length=200, blank=True, help_text="The category, service or tool checked")
    outcome = models.CharField(max_length=16, choices=GateOutcome.choices)
    observed = models.FloatField(null=True, blank=True)
    baseline = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    n = models.PositiveIntegerField(null=True, blank=True, help_text="Cases the check was computed on")
    needed = models.PositiveIntegerField(null=True, blank=True, help_text="Cases it needed when not computable")
    message = models.TextField(blank=True)
    failing_cases = models.JSONField(default=list, blank=True, help_text="Record ids that failed the check")

    class Meta:
        ordering = ["report_id", "id"]

    def __str__(self) -> str:
        return f"{self.name} {self.subject}: {self.outcome}"

    @property
    def blocks(self) -> bool:
        return self.outcome in (GateOutcome.FAILED, GateOutcome.NOT_COMPUTABLE)


class ApprovalDecision(models.TextChoices):
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class Approval(models.Model):
    """An approver's decision; an override approves despite failed gates, with a justification."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="approvals")
    decision = models.CharField(max_length=10, choices=ApprovalDecision.choices)
    comment = models.TextField(blank=True)
    override = models.BooleanField(default=False)
    justification = models.TextField(blank=True)
    gate_report = models.ForeignKey(GateReport, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    actor = models.CharField(max_length=200)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.decision} {self.model_version_id} by {self.actor}"


class DeploymentState(models.TextChoices):
    CANARY = "canary", "Canary"
    PRODUCTION = "production", "Production"
    RETIRED = "retired", "Retired"
    ROLLED_BACK = "rolled_back", "Rolled back"


class Deployment(TimeStampedModel):
    """A version serving one scope. ``previous`` is the production deployment it replaced,
    which a rollback restores. Ended deployments stay as history."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="deployments")
    scope = models.CharField(max_length=100, db_index=True)
    state = models.CharField(max_length=12, choices=DeploymentState.choices, db_index=True)
    previous = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField(blank=True)
    created_by = models.CharField(max_length=200, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["scope"], condition=models.Q(state="production"),
                                    name="uniq_production_per_scope"),
            models.UniqueConstraint(fields=["scope"], condition=models.Q(state="canary"),
                                    name="uniq_canary_per_scope"),
        ]

    def __str__(self) -> str:
        return f"{self.model_version_id} {self.state} in {self.scope}"
