"""The monthly report: production numbers from interaction rows next to the registry's offline
results for the same version, on the page, from the command and by mail."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.test import Client

from ftops.catalog.models import Service
from ftops.common.models import Notification
from ftops.interactions.models import CallVerdict, Interaction
from ftops.reports.selectors import month_parse, monthly_report_build
from ftops.reports.services import monthly_report_send
from registry.models import Deployment, DeploymentState, ModelVersion
from tests.common.test_notifications import Mailbox, user
from tests.registry.factories import version
from tests.review.factories import make_interaction, make_payments

pytestmark = pytest.mark.django_db
NOV = month_parse("2026-11")
REFUND = [{"name": "refund_payment", "arguments": {"payment_id": "pay_1", "amount_cents": 100}}]
ORDER = [{"name": "get_order", "arguments": {"order_id": "o1"}}]


def at(day: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, 12, 0, tzinfo=UTC)


def traffic(service: Service, label: str, when: datetime, calls: list[dict[str, Any]], verdict: str,
            failure: bool, n: int = 1) -> None:
    for _ in range(n):
        row = make_interaction(service, calls=calls, is_failure=failure, when=when,
                               failure_kind="type_error" if failure else "")
        Interaction.objects.filter(pk=row.pk).update(call_verdict=verdict, model_version=label)


def deploy(mv: ModelVersion, *, since: datetime, until: datetime | None = None, scope: str = "enterprise") -> None:
    d = Deployment.objects.create(model_version=mv, scope=scope,
                                  state=DeploymentState.RETIRED if until else DeploymentState.PRODUCTION)
    Deployment.objects.filter(pk=d.pk).update(created_at=since, ended_at=until)


@pytest.fixture
def month_of_traffic() -> dict[str, Any]:
    payments = make_payments()
    orders = Service.objects.create(name="orders")
    old = version()
    new = version()
    ModelVersion.objects.filter(pk=old.pk).update(eval_results={
        "test_suite": "acme-test", "overall": {"exact": 70.0, "n": 40}, "by_service": {"payments": {"exact": 70.0}}})
    ModelVersion.objects.filter(pk=new.pk).update(eval_results={
        "test_suite": "acme-test", "overall": {"exact": 80.0, "n": 50},
        "by_service": {"payments": {"exact": 82.0, "n": 40}, "orders": {"exact": 70.0, "n": 10}},
        "by_tool": {"refund_payment": {"exact": 90.0, "n": 20}, "get_order": {"exact": 75.0, "n": 20}}})
    deploy(old, since=at(1, 9), until=at(10))  # production until November 10th
    deploy(new, since=at(10))  # then the new version
    old.refresh_from_db()
    new.refresh_from_db()
    V, X, NO = CallVerdict.VALID, CallVerdict.INVALID, CallVerdict.NO_CALL
    # The new version in November.
    traffic(payments, new.name, at(12), REFUND, V, False, n=6)
    traffic(payments, new.name, at(13), REFUND, X, True, n=2)
    traffic(payments, new.name, at(14), ORDER, V, True)  # valid call, reported unsuccessful
    traffic(payments, new.name, at(15), [], NO, True)  # no call at all
    traffic(orders, new.name, at(20), ORDER, V, False, n=2)
    # The old version while it served, and a straggler after it was replaced (not production then).
    traffic(payments, old.name, at(3), REFUND, V, False, n=3)
    traffic(payments, old.name, at(11), REFUND, X, True)
    # Not counted: a canary's label, October, December.
    traffic(payments, "canary-x", at(16), REFUND, X, True)
    traffic(payments, new.name, at(31, 10), REFUND, X, True)
    traffic(payments, new.name, at(1, 12), REFUND, X, True)
    return {"old": old, "new": new}


def test_production_accuracy_next_to_offline_accuracy(month_of_traffic: dict[str, Any]) -> None:
    report = monthly_report_build(month=NOV)
    old, new = month_of_traffic["old"], month_of_traffic["new"]
    assert [v.version for v in report.versions] == sorted([old.name, new.name])
    by_name = {v.version: v for v in report.versions}
    v = by_name[new.name]
    assert (v.scopes, v.test_suite) == (["enterprise"], "acme-test")
    assert v.overall.as_dict() == {"name": "overall", "n": 12, "schema_valid_pct": 81.8, "failure_pct": 33.3,
                                   "offline_exact": 80.0, "offline_n": 50, "gap": -13.3}
    assert [r.as_dict() for r in v.services] == [
        {"name": "orders", "n": 2, "schema_valid_pct": 100.0, "failure_pct": 0.0, "offline_exact": 70.0,
         "offline_n": 10, "gap": 30.0},
        {"name": "payments", "n": 10, "schema_valid_pct": 77.8, "failure_pct": 40.0, "offline_exact": 82.0,
         "offline_n": 40, "gap": -22.0},
    ]
    assert [(r.name, r.n, r.schema_valid_pct, r.failure_pct, r.offline_exact, r.gap, r.warn) for r in v.tools] == [
        ("orders.get_order", 2, 100.0, 0.0, 75.0, 25.0, False),
        ("payments.(no call)", 1, None, 100.0, None, None, False),
        ("payments.get_order", 1, 100.0, 100.0, 75.0, -75.0, True),
        ("payments.refund_payment", 8, 75.0, 25.0, 90.0, -15.0, True),
    ]
    o = by_name[old.name].overall
    assert (o.n, o.schema_valid_pct, o.failure_pct, o.offline_exact, o.gap) == (3, 100.0, 0.0, 70.0, 30.0)
    assert report.unattributed == 2  # the straggler after the old version was retired, the canary


def test_a_per_service_deployment_counts_only_its_service(month_of_traffic: dict[str, Any]) -> None:
    Deployment.objects.filter(model_version=month_of_traffic["new"]).update(scope="orders")
    v = {v.version: v for v in monthly_report_build(month=NOV).versions}[month_of_traffic["new"].name]
    assert (v.scopes, v.overall.n, [r.name for r in v.services]) == (["orders"], 2, ["orders"])


def test_a_month_without_production_says_so() -> None:
    report = monthly_report_build(month=month_parse("2026-06"))
    assert report.versions == [] and report.text() == "No model version served production in 2026-06."


def test_the_command_prints_the_report(month_of_traffic: dict[str, Any]) -> None:
    out = StringIO()
    call_command("monthly-report", "--month", "2026-11", stdout=out)
    text = out.getvalue()
    new = month_of_traffic["new"].name
    assert text.splitlines()[0] == "Monthly report 2026-11: production vs offline accuracy"
    assert (f"{new} (enterprise; test suite acme-test): 12 interactions, schema-valid 81.8%, failures 33.3%, "
            "offline 80.0%, gap -13.3 pts") in text
    assert ("  tool payments.refund_payment: 8 interactions, schema-valid 75.0%, failures 25.0%, offline 90.0%, "
            "gap -15.0 pts  <- below the test split") in text
    assert "2 interaction(s) of the month came from no production version" in text
    with pytest.raises(CommandError, match="month 'November' is not YYYY-MM"):
        call_command("monthly-report", "--month", "November")


def test_the_report_is_mailed_once_to_approvers(month_of_traffic: dict[str, Any], mailbox: Mailbox, settings: Any,
                                                django_capture_on_commit_callbacks: Any) -> None:
    settings.FTOPS_NOTIFY_WEBHOOK_URL = ""
    user("ann", groups=("approver",))
    user("rita", groups=("reviewer",))
    with django_capture_on_commit_callbacks(execute=True):
        assert monthly_report_send(month=NOV) is not None
        assert monthly_report_send(month=NOV) is None
    [(rcpts, message)] = mailbox.messages
    assert rcpts == ["ann@example.com"]
    assert message["Subject"] == "Monthly report 2026-11: production vs offline accuracy"
    row = Notification.objects.get()
    assert row.kind == "monthly_report" and row.payload["versions"][1]["overall"]["n"] == 12
    out = StringIO()
    call_command("monthly-report", "--month", "2026-11", "--send", stdout=out)
    assert out.getvalue().startswith("the report for 2026-11 was sent already")


def test_the_page(month_of_traffic: dict[str, Any]) -> None:
    ann = User.objects.create_user("ann", "ann@example.com", "pw")
    ann.groups.add(Group.objects.get_or_create(name="approver")[0])
    client = Client()
    assert client.get("/reports/monthly/?month=2026-11").status_code == 302  # login first
    client.force_login(ann)
    page = client.get("/reports/monthly/?month=2026-11")
    html = page.content.decode()
    assert page.status_code == 200 and "Monthly report 2026-11" in html
    assert month_of_traffic["new"].name in html and "tool payments.refund_payment" in html
    assert '<tr class="warn"><th scope="row">service payments</th><td>10</td><td>77.8</td><td>40.0</td>' in html
    bad = client.get("/reports/monthly/?month=2026-13")
    assert bad.status_code == 400 and "is not YYYY-MM" in bad.content.decode()
    nobody = User.objects.create_user("eve", "eve@example.com", "pw")
    client.force_login(nobody)
    assert client.get("/reports/monthly/?month=2026-11").status_code == 403


@pytest.mark.parametrize("text", ["9999-12", "0000-01", "10000-01"])
def test_a_month_past_the_calendar_is_a_400_and_a_command_error(text: str) -> None:
    ann = User.objects.create_user("ann", "ann@example.com", "pw")
    ann.groups.add(Group.objects.get_or_create(name="approver")[0])
    client = Client(raise_request_exception=False)
    client.force_login(ann)
    page = client.get("/reports/monthly/", {"month": text})
    assert page.status_code == 400 and f"month {text!r}" in page.content.decode().replace("&#x27;", "'")
    with pytest.raises(CommandError, match="month"):
        call_command("monthly-report", "--month", text, stdout=StringIO())


def _november_page_as_admin(django_assert_max_num_queries: Any) -> str:
    """The monthly report page for November, fetched by an admin within 5 queries."""
    from tests.common.pages import get_within

    admin = User.objects.create_user("ada", "ada@example.com", "pw", is_staff=True)
    client = Client()
    client.force_login(admin)
    return get_within(client, django_assert_max_num_queries, "/reports/monthly/", 5, month="2026-11")


@pytest.mark.parametrize("services", [1, 6])
def test_the_page_takes_the_same_queries_whatever_the_services_and_traffic(
        services: int, django_assert_max_num_queries: Any) -> None:
    mv = version()
    deploy(mv, since=at(1))
    for n in range(services):
        service = Service.objects.create(name=f"svc-{n}")
        traffic(service, mv.name, at(5), REFUND, CallVerdict.VALID, False, n=services)
        traffic(service, mv.name, at(6), ORDER, CallVerdict.INVALID, True)
    html = _november_page_as_admin(django_assert_max_num_queries)
    assert html.count('<th scope="row">service svc-') == services


@pytest.mark.parametrize("versions", [1, 6])
def test_the_page_takes_the_same_queries_whatever_the_versions(versions: int,
                                                               django_assert_max_num_queries: Any) -> None:
    for n in range(versions):
        service = Service.objects.create(name=f"svc-{n}")
        mv = version()
        deploy(mv, since=at(1), scope=service.name)
        traffic(service, mv.name, at(5), REFUND, CallVerdict.VALID, False, n=2)
        traffic(service, mv.name, at(6), ORDER, CallVerdict.INVALID, True)
    html = _november_page_as_admin(django_assert_max_num_queries)
    assert html.count('<section class="version-report">') == versions
    assert html.count('<th scope="row">overall</th><td>3</td>') == versions
