from django.apps import AppConfig


class InteractionsConfig(AppConfig):
    name = "ftops.interactions"
    label = "interactions"
    default_auto_field = "django.db.models.BigAutoField"
