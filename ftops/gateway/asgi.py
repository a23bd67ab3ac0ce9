"""ASGI entry point of the gateway process: ``uvicorn ftops.gateway.asgi:application``."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ftops.settings")
django.setup()

from ftops.gateway.app import create_app  # noqa: E402  (needs the apps loaded)

application = create_app()
