from django.apps import AppConfig


class ReportsConfig(AppConfig):
    """Periodic alerts and reports that read the apps below: the daily review digest, the
    stale-review-queue alert and the monthly production-vs-offline accuracy report."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "ftops.reports"
    label = "reports"
