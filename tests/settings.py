"""Test settings: the embedded default unless DATABASE_URL points at PostgreSQL."""

import os
import tempfile

os.environ.setdefault("FTOPS_VAR_DIR", os.path.join(tempfile.gettempdir(), "ftops-test-var"))
# Tests never reach a broker through settings; queue tests start their own worker.
os.environ.pop("CELERY_BROKER_URL", None)
# Tests never download a model: a missing local model folder fails at once instead of
# being looked up on the Hugging Face Hub (seconds of network retries per test).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from ftops.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "100000/min"}}  # noqa: F405
LOGGING = {"version": 1, "disable_existing_loggers": False}

# Parallel local runs against the one PostgreSQL need distinct test databases. SQLite keeps
# its in-memory test database (a name there would leave a file in the working tree).
if os.environ.get("FTOPS_TEST_DB_NAME") and "sqlite" not in DATABASES["default"]["ENGINE"]:  # noqa: F405
    DATABASES["default"].setdefault("TEST", {})["NAME"] = os.environ["FTOPS_TEST_DB_NAME"]  # noqa: F405
