"""ftops: FT-Ops for LLM tool calling.

Importing the package loads nothing else: pure modules (the training loop, parsers, the
model adapters) stay free of Django and Celery. The Celery app is created where Django
starts (``ftops.common.apps.CommonConfig.ready``), and ``celery -A ftops`` finds
``ftops.celery`` by itself.
"""
