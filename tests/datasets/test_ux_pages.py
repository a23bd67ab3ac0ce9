"""Dataset pages (issue 16): one row per split with that split's downloads, parameters as a
table, a link to what changed since the previous version, the build form below the list."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.datasets.factories import build_shop
from tests.datasets.test_views import ready_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Client, admin_user: Any) -> Client:
    client.force_login(admin_user)
    return client


def test_version_page_rows_download_their_split_and_show_parameters_as_a_table(staff: Client) -> None:
    _service, examples = build_shop(with_sequences=False)
    members = [(e, ("train", "test")[n % 2], ("seen_phrasing", "new_phrasing")[n % 3 == 0])
               for n, e in enumerate(examples[:6])]
    ready_version(1, members[:2], quality_report={"split_sizes": {"train": 1, "test": 1}})
    ready_version(2, members, params={"rotation": 2, "dedup_threshold": 0.92, "holdout": True},
                  quality_report={"split_sizes": {"train": 3, "test": 3}})
    body = staff.get("/datasets/2/").content.decode()
    rows = body.split('<table class="splits">')[1].split("</table>")[0]
    train = rows.split('split-train')[1].split("</tr>")[0]
    assert "<td>3</td>" in train
    assert '<a href="/api/v1/datasets/2/export?split=train&amp;format=openai" download>train, OpenAI JSONL</a>' in train
    assert "split=test" not in train
    params = body.split('<table class="params">')[1].split("</table>")[0]
    assert '<th scope="row"><code>holdout</code></th><td><code>true</code></td>' in params
    assert '<th scope="row"><code>dedup_threshold</code></th><td><code>0.92</code></td>' in params
    assert "{&#x27;" not in body and "True" not in params
    assert '<a href="/datasets/diff?a=1&amp;b=2">What changed since v1 &rarr;</a>' in body
    assert "What changed since" not in staff.get("/datasets/1/").content.decode()


def test_the_build_form_is_explained_and_below_the_list(staff: Client) -> None:
    ready_version(1, [], quality_report={"split_sizes": {}})
    body = staff.get("/datasets/").content.decode()
    assert body.index("<table>") < body.index('id="build"')
    assert '<label for="build-seed">Seed</label>' in body and "immutable snapshot" in body
    assert '<a href="#build">Build a new version</a>' in body
