from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "ftops.common"
    label = "common"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Create the Celery app (and make it current) as Django starts, so every
        # ``shared_task`` binds to it and sends with the project's broker settings. The
        # package's ``__init__`` does not do this: pure modules must import without Celery.
        from ftops import celery  # noqa: F401
