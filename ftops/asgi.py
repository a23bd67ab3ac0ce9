import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ftops.settings")
django_application = get_asgi_application()

# The tool catalog as an MCP server (streamable HTTP, the mcp SDK) at /mcp/server/; the rest is Django's.
from ftops.catalog.mcp_server import catalog_mcp_wrap  # noqa: E402

application = catalog_mcp_wrap(django_application)  # type: ignore[arg-type]

# The embedded default has no beat: this process runs the job reapers itself (a no-op with a broker).
from ftops.common.jobs import jobs_scheduler_start  # noqa: E402

jobs_scheduler_start()
