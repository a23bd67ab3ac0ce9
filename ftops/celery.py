"""Celery application. Without CELERY_BROKER_URL tasks run in-process (see settings)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ftops.settings")

app = Celery("ftops")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
