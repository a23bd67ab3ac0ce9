"""Evaluation failures shown as JSON side by side, and the two actions on a failed case."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from ftops.common.models import AuditEvent
from ftops.datasets.models import TrainingExample
from ftops.evaluation.models import EvalFailure, EvalSuite
from review.models import ReviewItem
from tests.evaluation.factories import dataset_version, scored_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client: Any, admin_user: Any) -> Any:
    client.force_login(admin_user)
    return client


def _bfcl_failure() -> EvalFailure:
    """A case of an imported suite (no training example behind it) on the payments catalog."""
    dataset_version()  # the payments service and its tools
    suite = EvalSuite.objects.create(name="bfcl", kind="bfcl")
    run = scored_run(suite, failed=["simple_7"])
    failure = EvalFailure.objects.get(run=run)
    failure.user_query = "Charge cus_9 $336.50"
    failure.behavior = "call"
    failure.expected = {"calls": [{"name": "create_payment",
                                   "arguments": {"amount": [33650], "customer_id": ["cus_9"]}}]}
    failure.got = {"calls": [{"name": "create_payment", "arguments": {"amount": 336.5, "customer_id": "cus_9",
                                                                      "capture": True}}]}
    failure.save()
    return failure


def test_failures_show_json_side_by_side_with_the_differing_keys_marked(staff: Any) -> None:
    failure = _bfcl_failure()
    page = staff.get(reverse("evaluation:failures", args=[failure.run_id])).content.decode()
    assert "{&#x27;amount&#x27;" not in page and "True" not in page
    assert '&quot;amount&quot;: [\n' in page and "&quot;capture&quot;: true" in page
    assert "2 keys differ (marked)" in page
    rows = page.split('<table class="json-keys">')[1].split("</table>")[0]
    assert ('<tr class="key-differs">\n    <th scope="row"><code>calls[0].arguments.amount</code>'
            ' <span class="badge bad">differs</span></th>') in rows
    assert '<tr class="key-same">\n    <th scope="row"><code>calls[0].arguments.customer_id</code></th>' in rows
    assert "<code>calls[0].arguments.capture</code> <span" in rows
    assert "acceptable values" in page


def test_make_an_example_of_a_failed_case(staff: Any) -> None:
    failure = _bfcl_failure()
    url = reverse("evaluation:failure-example", args=[failure.run_id, failure.pk])
    assert staff.get(url).status_code == 405
    response = staff.post(url)
    example = TrainingExample.objects.get(user_query="Charge cus_9 $336.50")
    assert (response.status_code, response["Location"]) == (302, reverse("datasets:example", args=[example.pk]))
    assert example.expected["calls"][0]["arguments"]["amount"] == [33650]
    assert example.provenance == {"evaluation_run": failure.run_id, "case": "simple_7"}
    assert AuditEvent.objects.filter(action="example.created", object_id=str(example.pk)).count() == 1
    again = staff.post(url)
    assert again["Location"] == response["Location"]
    assert TrainingExample.objects.filter(user_query="Charge cus_9 $336.50").count() == 1


def test_an_invalid_case_is_refused_with_the_reason_and_nothing_is_made(staff: Any) -> None:
    failure = _bfcl_failure()
    failure.expected = {"calls": [{"name": "create_payment", "arguments": {"amount": ["lots"]}}]}
    failure.save()
    before = TrainingExample.objects.count()
    response = staff.post(reverse("evaluation:failure-example", args=[failure.run_id, failure.pk]))
    assert response.status_code == 422
    assert "No example made" in response.content.decode()
    assert TrainingExample.objects.count() == before
    assert staff.post(reverse("evaluation:failure-example", args=[failure.run_id, 99999])).status_code == 404


def test_send_to_review_opens_the_item_of_the_interaction_behind_the_case(staff: Any) -> None:
    from ftops.common.actors import Actor
    from review.services import review_items_accept_suggested, review_items_enqueue_failures
    from tests.review.factories import make_interaction, make_payments

    make_interaction(make_payments(), external_id="int-eval")
    review_items_enqueue_failures()
    item = ReviewItem.objects.get()
    review_items_accept_suggested(item_ids=[item.pk], actor=Actor(label="alice"))
    example = TrainingExample.objects.get()
    from ftops.datasets.models import DatasetVersion

    suite = EvalSuite.objects.create(name="v3-test", kind="dataset",
                                     dataset_version=DatasetVersion.objects.create(number=3, status="ready"),
                                     split="test")
    run = scored_run(suite, failed=[str(example.pk), "99999"])
    page = staff.get(reverse("evaluation:failures", args=[run.pk])).content.decode()
    assert page.count(">Send to review</button>") == 2
    ours = EvalFailure.objects.get(run=run, record_id=str(example.pk))
    response = staff.post(reverse("evaluation:failure-review", args=[run.pk, ours.pk]))
    assert (response.status_code, response["Location"]) == (302, reverse("review:item", args=[item.pk]))
    orphan = EvalFailure.objects.get(run=run, record_id="99999")
    refused = staff.post(reverse("evaluation:failure-review", args=[run.pk, orphan.pk]))
    assert refused.status_code == 409 and "does not come from a production interaction" in refused.content.decode()
    assert ReviewItem.objects.count() == 1


def test_the_actions_need_a_role_that_may_act(client: Any, django_user_model: Any) -> None:
    failure = _bfcl_failure()
    approver = django_user_model.objects.create_user("ann", "ann@example.com", "pw-ann-123")
    approver.groups.add(Group.objects.create(name="approver"))
    client.force_login(approver)
    page = client.get(reverse("evaluation:failures", args=[failure.run_id]))
    assert page.status_code == 200 and "Make an example" not in page.content.decode()
    before = TrainingExample.objects.count()
    assert client.post(reverse("evaluation:failure-example", args=[failure.run_id, failure.pk])).status_code == 403
    assert client.post(reverse("evaluation:failure-review", args=[failure.run_id, failure.pk])).status_code == 403
    assert TrainingExample.objects.count() == before


def _with_categories(run: Any, categories: dict[str, tuple[float, int]]) -> Any:
    run.metrics["by_category"] = {name: {"n": n, "exact": exact, "tool": exact, "args": exact, "values": exact}
                                  for name, (exact, n) in categories.items()}
    run.save(update_fields=["metrics"])
    return run


def test_compare_puts_regressions_first_sorts_case_ids_numerically_and_flags_thin_groups(staff: Any) -> None:
    version = dataset_version()
    suite = EvalSuite.objects.create(name="v1-test", kind="dataset", dataset_version=version, split="test")
    base = _with_categories(scored_run(suite, failed=["10", "9", "100"], name="base"),
                            {"simple": (80.0, 40), "multiple": (90.0, 30), "parallel": (100.0, 1)})
    other = _with_categories(scored_run(suite, failed=["2", "30", "11"], name="other"),
                             {"simple": (85.0, 40), "multiple": (70.0, 30), "parallel": (0.0, 1)})
    page = staff.get(reverse("evaluation:compare"), {"base": base.pk, "other": other.pk}).content.decode()
    assert page.index('id="cases-regressed"') < page.index('id="cases-fixed"')
    regressed = page.split('id="cases-regressed"')[1].split('id="cases-fixed"')[0]
    assert [int(n) for n in re.findall(r"<code>(\d+)</code>", regressed)] == [2, 11, 30]
    fixed = page.split('id="cases-fixed"')[1]
    assert [int(n) for n in re.findall(r"<code>(\d+)</code>", fixed)] == [9, 10, 100]
    table = page.split('id="table-category"')[1].split("</table>")[0]
    names = re.findall(r"<tr(?: class=\"regressed\")?><td>([a-z_]+)", table)
    assert names == ["parallel", "multiple", "simple"]  # -100, -20, +5
    assert table.count('<span class="badge warn">few cases</span>') == 1
    assert re.search(r'<td>parallel <span class="badge warn">few cases</span></td>', table)
    detail = staff.get(reverse("evaluation:run", args=[base.pk])).content.decode()
    assert re.search(r"<td>1 <span class=\"badge warn\" title=\"Fewer than 10 cases", detail)


def test_a_run_names_its_dataset_version(staff: Any) -> None:
    version = dataset_version()
    suite = EvalSuite.objects.create(name="v1-test", kind="dataset", dataset_version=version, split="test")
    run = scored_run(suite, failed=[])
    page = staff.get(reverse("evaluation:run", args=[run.pk])).content.decode()
    assert f'(<a href="/datasets/{version.number}/">dataset v{version.number}</a>, test split)' in page
