"""ASGI entry point of the gateway process: ``uvicorn ftops.gateway.asgi:application``."""

import gc
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

# The garbage collector stops every thread while it runs. Everything loaded so far (Django, the
# apps, the app) lives as long as the process: frozen, a full collection no longer walks it
# (tens of milliseconds each, a p95 spike for every request in flight). A request allocates a
# few hundred containers and frees nearly all of them by reference counting, so the young
# generation may grow larger before a collection than Python's default of 700 (measured on
# bench/gateway.py: a young collection every ~30 requests, each 1-8 ms, before).
gc.collect()
gc.freeze()
gc.set_threshold(5000, 10, 10)
