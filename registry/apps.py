from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    label = "registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Lower apps reach the registry only through what it hands down here: the evaluation
        # app resolves a model version id through this function, and tasks sent by name
        # (training's registration) must be registered in every process, eager mode included.
        from ftops.evaluation.services import model_version_resolver_set
        from registry import tasks  # noqa: F401
        from registry.services import model_version_adapter_config

        model_version_resolver_set(model_version_adapter_config)
