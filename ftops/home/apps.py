from django.apps import AppConfig


class HomeConfig(AppConfig):
    name = "ftops.home"
    label = "home"
