import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ftops.settings")
application = get_wsgi_application()

# The embedded default has no beat: this process runs the job reapers itself (a no-op with a broker).
from ftops.common.jobs import jobs_scheduler_start  # noqa: E402

jobs_scheduler_start()
