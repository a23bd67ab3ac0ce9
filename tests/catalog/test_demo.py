from __future__ import annotations

import pytest

from ftops.catalog import demo
from ftops.catalog.sample import build_sample_enterprise
from ftops.common.demo import DemoContext

pytestmark = pytest.mark.django_db


def test_demo_stage_loads_the_sample_enterprise() -> None:
    lines: list[str] = []
    ctx = DemoContext(seed=7, out=lines.append)
    enterprise = build_sample_enterprise(7)
    n_examples = sum(len(d["training_examples"]) + len(d["edge_cases"]) for d in enterprise.tool_documents)

    demo.run(ctx)

    assert ctx.summary == {"services": 4, "tools": 18, "examples": n_examples}
    assert lines == [f"sample enterprise (seed 7): 4 services, 18 tools, 18 schema versions created; "
                     f"{n_examples} examples created, 0 already present"]

    demo.run(ctx)  # a second demo run on the same database adds nothing
    assert ctx.summary == {"services": 4, "tools": 18, "examples": n_examples}
