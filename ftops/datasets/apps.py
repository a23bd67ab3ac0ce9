from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "ftops.datasets"
    label = "datasets"
    default_auto_field = "django.db.models.BigAutoField"
