"""ftops: FT-Ops for LLM tool calling."""

from ftops.celery import app as celery_app

__all__ = ["celery_app"]
