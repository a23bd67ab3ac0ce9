"""Producers wired to notify(): a breaking tool-schema change found on a catalog import reaches the
service's owner (real SMTP server) with how many older examples were migrated."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ftops.catalog.services import catalog_import, catalog_import_documents
from ftops.common.models import Notification, NotificationPreference
from ftops.datasets.models import TrainingExample
from tests.catalog.factories import SHIPPING_PARAMS, shipping_doc
from tests.common.test_notifications import Mailbox, Receiver, user

pytestmark = pytest.mark.django_db


def create_label_tool(parameters: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": "create_label", "description": "Create a shipping label.",
                                              "parameters": parameters}}]


def test_a_breaking_change_on_import_tells_the_owner_how_many_examples_moved(
        mailbox: Mailbox, receiver: Receiver, settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    settings.FTOPS_NOTIFY_SERVICE_OWNERS = {"shipping": ["ship-team@example.com"]}
    user("ada", groups=("admin",))  # admins hear about it only when nobody owns the service
    catalog_import_documents(documents=[shipping_doc()], source="v1.json")
    v1_examples = TrainingExample.objects.filter(status="active").count()
    narrowed = copy.deepcopy(SHIPPING_PARAMS)
    narrowed["properties"]["carrier"]["enum"] = ["ups", "fedex"]  # dhl is gone: a breaking change

    with django_capture_on_commit_callbacks(execute=True):
        report = catalog_import(source="https://tools.example.com/shipping.json", service="shipping",
                                content=create_label_tool(narrowed))

    assert report.versions_created == [{"tool": "shipping.create_label", "number": 2, "change": "breaking",
                                        "inferred": False}]
    # The dhl example no longer fits and is flagged; the other examples that call the tool move to v2.
    assert (v1_examples, report.examples_migrated, report.examples_flagged) == (6, 4, 1)
    [(rcpts, message)] = mailbox.messages
    assert rcpts == ["ship-team@example.com"]
    assert message["Subject"] == "Breaking tool-schema change in shipping: create_label"
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    lines = body.decode().splitlines()
    assert lines[0] == ("An import from https://tools.example.com/shipping.json changed tools of shipping "
                        "in a breaking way:")
    assert lines[1].startswith("- create_label: v1 -> v2 (")
    assert lines[-1] == "Examples migrated to the new schemas: 4; flagged for review (no longer valid): 1."
    [hook] = receiver.bodies
    assert hook["ftops"]["payload"] == {
        "kind": "schema_breaking", "service": "shipping", "tools": [{"tool": "create_label", "version": 2}],
        "examples_migrated": 4, "examples_flagged": 1,
        "source": "https://tools.example.com/shipping.json"}
    row = Notification.objects.get()
    assert (row.kind, row.audience, row.service, row.status) == ("schema_breaking", "service_owners", "shipping",
                                                                 "sent")


def test_an_additive_change_or_a_reimport_tells_nobody(mailbox: Mailbox, settings: Any,
                                                       django_capture_on_commit_callbacks: Any) -> None:
    settings.FTOPS_NOTIFY_SERVICE_OWNERS = {"shipping": ["ship-team@example.com"]}
    settings.FTOPS_NOTIFY_WEBHOOK_URL = ""
    catalog_import_documents(documents=[shipping_doc()], source="v1.json")
    wider = copy.deepcopy(SHIPPING_PARAMS)
    wider["properties"]["insured"] = {"type": "boolean"}
    with django_capture_on_commit_callbacks(execute=True):
        assert catalog_import(source="t.json", service="shipping", content=create_label_tool(wider)).versions_created
        assert not catalog_import(source="t.json", service="shipping",
                                  content=create_label_tool(wider)).versions_created
    assert mailbox.messages == [] and Notification.objects.count() == 0


def test_an_owner_who_opted_out_gets_nothing_and_a_rolled_back_import_sends_nothing(
        mailbox: Mailbox, settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    settings.FTOPS_NOTIFY_WEBHOOK_URL = ""
    owner = user("pat")
    settings.FTOPS_NOTIFY_SERVICE_OWNERS = {"shipping": ["pat@example.com"]}
    NotificationPreference.objects.create(user=owner, kind="schema_breaking", email=False)
    catalog_import_documents(documents=[shipping_doc()], source="v1.json")
    narrowed = copy.deepcopy(SHIPPING_PARAMS)
    narrowed["properties"]["carrier"]["enum"] = ["ups"]
    with django_capture_on_commit_callbacks(execute=True):
        catalog_import(source="t.json", service="shipping", content=create_label_tool(narrowed))
    assert mailbox.messages == []
    row = Notification.objects.get()
    assert (row.status, row.recipients, row.channels["email"]["declined"]) == ("skipped", [], 1)


def test_a_breaking_change_in_tool_documents_is_told_with_the_counts_too(
        mailbox: Mailbox, settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    settings.FTOPS_NOTIFY_SERVICE_OWNERS = {"shipping": ["ship-team@example.com"]}
    settings.FTOPS_NOTIFY_WEBHOOK_URL = ""
    catalog_import_documents(documents=[shipping_doc()], source="v1.json")
    breaking = copy.deepcopy(SHIPPING_PARAMS)
    breaking["properties"]["service_level"] = {"type": "string", "enum": ["standard", "express"]}
    breaking["required"].append("service_level")
    doc = shipping_doc(parameters=breaking)
    for example in doc["training_examples"][:2]:
        example["correct_parameters"]["service_level"] = "standard"
    doc["training_examples"][2]["correct_sequence"][1]["parameters"]["service_level"] = "express"

    with django_capture_on_commit_callbacks(execute=True):
        report = catalog_import_documents(documents=[doc], source="v2.json")

    assert (report.examples_migrated, report.examples_flagged) == (2, 3)
    [(rcpts, message)] = mailbox.messages
    assert rcpts == ["ship-team@example.com"]
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    lines = body.decode().splitlines()
    assert lines[1] == "- create_label: v1 -> v2 (new_required service_level: new required parameter 'service_level')"
    assert lines[-1] == "Examples migrated to the new schemas: 2; flagged for review (no longer valid): 3."


@pytest.mark.django_db(transaction=True)
def test_a_failed_cycle_stage_mails_the_admins_who_want_it(mailbox: Mailbox, settings: Any) -> None:
    from ftops.catalog.models import Service
    from ftops.common.actors import Actor
    from ftops.loop.cycles import cycle_start

    settings.FTOPS_NOTIFY_WEBHOOK_URL = ""
    user("ada", groups=("admin",))
    quinn = user("quinn", groups=("admin",))
    NotificationPreference.objects.create(user=quinn, kind="cycle_stage_failed", email=False)
    Service.objects.create(name="payments")

    cycle = cycle_start(actor=Actor(label="me"), scope="payments")  # no examples: curate fails

    cycle.refresh_from_db()
    assert cycle.status == "failed"
    [(rcpts, message)] = mailbox.messages
    assert rcpts == ["ada@example.com"]
    assert message["Subject"] == f"Cycle {cycle.pk} (payments) failed at curate"
    row = Notification.objects.get()
    assert (row.kind, row.status, row.recipients, row.channels["email"]["declined"]) == (
        "cycle_stage_failed", "sent", ["ada@example.com"], 1)
