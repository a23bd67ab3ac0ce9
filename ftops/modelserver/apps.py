from django.apps import AppConfig


class ModelServerConfig(AppConfig):
    name = "ftops.modelserver"
    label = "modelserver"
    verbose_name = "Model server"
