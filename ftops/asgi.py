import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ftops.settings")
application = get_asgi_application()

# The embedded default has no beat: this process runs the job reapers itself (a no-op with a broker).
from ftops.common.jobs import jobs_scheduler_start  # noqa: E402

jobs_scheduler_start()
