"""ASGI entry point of the gateway process: ``uvicorn ftops.gateway.asgi:application``."""

import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ftops.settings")
django.setup()

from ftops.gateway.app import create_app  # noqa: E402  (needs the apps loaded)

# The call writer thread is CPU-bound while it validates and redacts a batch; with Python's
# default 5 ms GIL switch interval each of its turns could add 5 ms to a request in flight.
sys.setswitchinterval(0.0005)
application = create_app()
