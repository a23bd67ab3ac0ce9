"""The demo stage publishes the sample services and aggregates from this instance's own views
over a real 127.0.0.1 server (committed data: the server's threads read it on their connections)."""

from __future__ import annotations

import pytest

from ftops.catalog import demo as catalog_demo
from ftops.common.demo import DemoContext
from ftops.datasets.models import TrainingExample
from ftops.discovery import demo
from ftops.discovery.models import AggregationSource

pytestmark = pytest.mark.django_db(transaction=True)


def test_demo_publishes_and_aggregates_from_itself() -> None:
    lines: list[str] = []
    ctx = DemoContext(seed=7, out=lines.append)
    catalog_demo.run(ctx)
    held = TrainingExample.objects.count()

    demo.run(ctx)

    assert ctx.failures == []
    assert lines[1] == "published: 4 services at /.well-known/mcp-training-data.json"
    # Everything pulled is already here (it is the same instance): nothing is stored twice.
    assert lines[2] == (f"aggregated: {held} examples from 4 services (0 new, {held} already held here, 0 invalid)")
    assert ctx.summary["aggregated"] == {"examples": held, "services": 4, "created": 0}
    assert TrainingExample.objects.count() == held
    # The demo's own server is gone afterwards: its source is left disabled, so no later pull finds it down.
    assert list(AggregationSource.objects.values_list("name", "enabled")) == [(demo.SOURCE, False)]
