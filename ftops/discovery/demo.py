"""Demo stage: publish the sample enterprise's services, then aggregate from this instance's own
endpoints through a real HTTP server on 127.0.0.1, as a central orchestrator would."""

from __future__ import annotations

import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.test.utils import override_settings

from ftops.catalog.models import Service
from ftops.common.actors import Actor
from ftops.common.credentials import upstream_credential_set
from ftops.common.services import api_key_create
from ftops.discovery.models import AggregationSource
from ftops.discovery.services import aggregate_all, aggregation_source_save, publishing_settings_update

SOURCE = "local-demo"


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def run(ctx: Any) -> None:
    by = Actor.system("demo")
    services = list(Service.objects.order_by("name"))
    if not services:
        ctx.log("discovery: no services to publish (the catalog stage did not run)")
        return
    for service in services:
        publishing_settings_update(
            service=service, by=by, share_with_orchestrators=True, public_model_training=False, opt_in_text="",
            restrictions=["Internal fine-tuning only", "Must be anonymized"], contact_team="ml-platform@acme.test",
            contact_documentation="")
    ctx.log(f"published: {len(services)} services at /.well-known/mcp-training-data.json")

    httpd = make_server("127.0.0.1", 0, get_wsgi_application(), server_class=_ThreadingServer,
                        handler_class=_QuietHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        secret = api_key_create(name="demo-orchestrator", roles=["ml_orchestrator"]).secret
        upstream_credential_set(name="demo-orchestrator", base_url=url, value=secret, by=by)
        aggregation_source_save(name=SOURCE, base_url=url, credential_name="demo-orchestrator", by=by, timeout_s=30)
        # Each demo run shows a full pull; a real source keeps its cursors and asks only for what is new.
        AggregationSource.objects.filter(name=SOURCE).update(cursors={})
        # The demo talks to itself on loopback, which an operator allows the same way for a local source.
        allow = [*getattr(settings, "FTOPS_OUTBOUND_ALLOW", []), "127.0.0.1/32"]
        with override_settings(FTOPS_OUTBOUND_ALLOW=allow, FTOPS_MCP_RATE_PER_HOUR=10_000):
            report = aggregate_all(by=by, sources=[SOURCE])
    finally:
        httpd.shutdown()
        httpd.server_close()
        # Its server (this demo's) is gone: left enabled, every later aggregation (the cycle's
        # aggregate stage, manage.py aggregate) would find it down and alert the admins.
        AggregationSource.objects.filter(name=SOURCE).update(enabled=False)
    outcome = report.outcomes[0]
    if outcome.status != "ok":
        ctx.fail(f"discovery: aggregation from {url} failed ({outcome.status}): {outcome.error}")
        return
    ctx.log(f"aggregated: {report.pulled} examples from {report.services} services "
            f"({report.created} new, {outcome.duplicates} already held here, {outcome.invalid} invalid)")
    ctx.summary["aggregated"] = {"examples": report.pulled, "services": report.services, "created": report.created}
