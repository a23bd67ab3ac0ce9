"""The ingest API: validation, idempotency, atomicity, PII, verdicts, roles, feedback, reads."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import override_settings

from ftops.common.models import AuditEvent
from ftops.interactions.models import FeedbackEvent, Interaction

URL = "/api/v1/interactions"
Payload = Callable[..., dict[str, Any]]


@pytest.fixture
def ingest(make_key: Any) -> Any:
    client, _key = make_key("ingest", name="payments-gateway")
    return client


def post(client: Any, body: Any, url: str = URL) -> Any:
    return client.post(url, data=json.dumps(body), content_type="application/json")


def test_single_interaction_is_stored_with_verdict_and_201(ingest: Any, catalog: Any, payload: Payload) -> None:
    response = post(ingest, payload("int-1"))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["id"] == "int-1"
    assert body["replayed"] is False
    assert body["service"] == "payments"
    assert body["call_verdict"] == "valid"
    assert body["is_failure"] is False
    stored = Interaction.objects.get(external_id="int-1")
    assert stored.tool_calls == [
        {"name": "create_payment", "arguments": {"amount_cents": 1250, "currency": "USD", "customer_id": "cus_1001"}}
    ]
    assert stored.user_feedback == 5
    assert stored.latency_ms == 420
    assert stored.timestamp.isoformat() == "2025-03-01T10:00:00+00:00"


def test_prompt_is_turned_into_a_user_message(ingest: Any, catalog: Any, payload: Payload) -> None:
    response = post(ingest, payload("int-p", messages=..., prompt="Refund ORD-10293"))
    assert response.status_code == 201, response.json()
    assert Interaction.objects.get(external_id="int-p").messages == [{"role": "user", "content": "Refund ORD-10293"}]


def test_openai_tool_call_format_is_normalised(ingest: Any, catalog: Any, payload: Payload) -> None:
    calls = [{"id": "call_1", "type": "function",
              "function": {"name": "create_payment", "arguments": '{"amount_cents": 500, "currency": "EUR"}'}}]
    response = post(ingest, payload("int-oa", tool_calls=calls))
    assert response.status_code == 201
    stored = Interaction.objects.get(external_id="int-oa")
    assert stored.tool_calls == [{"name": "create_payment", "arguments": {"amount_cents": 500, "currency": "EUR"}}]
    assert stored.call_verdict == "valid"


def test_validation_errors_name_each_field(ingest: Any, catalog: Any, payload: Payload) -> None:
    bad = payload("int-bad", user_feedback=9, success="yes", confidence=1.5, latency_ms=-1, timestamp="yesterday",
                  messages=[{"role": "robot", "content": "hi"}], color="red")
    response = post(ingest, bad)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    fields = error["fields"]
    assert fields["user_feedback"] == ["must be from 1 to 5 (got 9)"]
    assert fields["success"] == ["must be true, false or null (got string 'yes')"]
    assert fields["confidence"] == ["must be a number from 0 to 1 (got 1.5)"]
    assert fields["latency_ms"] == ["must be from 0 to 2147483647 (got -1)"]
    assert "is not an ISO 8601 timestamp" in fields["timestamp"][0]
    assert "role must be one of" in fields["messages"][0]
    assert "unknown field(s) ['color']" in fields["non_field_errors"][0]
    assert Interaction.objects.count() == 0


def test_wrong_types_are_4xx_not_500(ingest: Any, catalog: Any, payload: Payload) -> None:
    for body in (payload("x", id=...), payload(7), payload("x", tool_calls="create_payment"),
                 payload("x", user_feedback=True), payload("x", metadata=[1]), payload("x", messages=[]),
                 payload("x", tool_calls=[{"arguments": {}}]), payload("a/b"), "just a string", 42, [[]],
                 payload("x", timestamp="0001-01-01T00:00:00+14:00"), payload("x", timestamp=10**20),
                 payload("x", latency_ms=2**40)):
        response = post(ingest, body)
        assert response.status_code == 422, (body, response.content)
        assert response.json()["error"]["message"]
    assert Interaction.objects.count() == 0


def test_malformed_json_is_400_with_a_hint(ingest: Any, catalog: Any, payload: Payload) -> None:
    response = ingest.post(URL, data='{"id": "x", ', content_type="application/json")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]
    nan = post(ingest, payload("x", confidence=float("nan")))
    assert nan.status_code == 400
    assert "NaN" in nan.json()["error"]["message"]


def test_unknown_service_says_to_import_its_tools(ingest: Any, catalog: Any, payload: Payload) -> None:
    response = post(ingest, payload("int-u", service="shipping"))
    assert response.status_code == 422
    assert response.json()["error"]["fields"]["service"] == [
        "unknown service 'shipping'; import its tools first (python manage.py catalog_import FILE)"
    ]


def test_same_id_same_body_is_replayed_and_stores_nothing(ingest: Any, catalog: Any, payload: Payload) -> None:
    first = post(ingest, payload("int-r"))
    again = post(ingest, payload("int-r"))
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["replayed"] is True
    assert again.json()["id"] == "int-r"
    assert Interaction.objects.count() == 1


def test_same_id_other_body_is_409_naming_the_id(ingest: Any, catalog: Any, payload: Payload) -> None:
    post(ingest, payload("int-c"))
    response = post(ingest, payload("int-c", user_feedback=1))
    assert response.status_code == 409
    error = response.json()["error"]
    assert "'int-c'" in error["message"]
    assert error["fields"]["id"][0].startswith("interaction 'int-c' was already stored with a different body")
    assert Interaction.objects.get(external_id="int-c").user_feedback == 5


def test_batch_is_all_or_nothing_and_names_the_bad_item(ingest: Any, catalog: Any, payload: Payload) -> None:
    batch = [payload(f"b-{i}") for i in range(10)]
    batch[7]["user_feedback"] = 0
    response = post(ingest, batch)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["fields"] == {"interactions[7].user_feedback": ["must be from 1 to 5 (got 0)"]}
    assert "1 of 10 interactions are invalid (items 7); nothing was stored" in error["message"]
    assert Interaction.objects.count() == 0


def test_batch_in_wrapper_object_is_stored_with_per_item_results(ingest: Any, catalog: Any, payload: Payload) -> None:
    post(ingest, payload("w-0"))
    response = post(ingest, {"interactions": [payload("w-0"), payload("w-1", user_feedback=2)]})
    assert response.status_code == 201
    body = response.json()
    assert body["created"] == 1
    assert body["replayed"] == 1
    assert [(r["index"], r["id"], r["replayed"], r["is_failure"], r["failure_kind"]) for r in body["results"]] == [
        (0, "w-0", True, False, ""),
        (1, "w-1", False, True, "negative_feedback"),
    ]
    assert Interaction.objects.count() == 2


def test_batch_conflict_stores_nothing(ingest: Any, catalog: Any, payload: Payload) -> None:
    post(ingest, payload("k-0"))
    response = post(ingest, [payload("k-1"), payload("k-0", response_text="other")])
    assert response.status_code == 409
    assert list(response.json()["error"]["fields"]) == ["interactions[1].id"]
    assert set(Interaction.objects.values_list("external_id", flat=True)) == {"k-0"}


def test_duplicate_ids_inside_a_batch(ingest: Any, catalog: Any, payload: Payload) -> None:
    same = post(ingest, [payload("d-1"), payload("d-2"), payload("d-1")])
    assert same.status_code == 201
    results = same.json()["results"]
    assert (results[2]["replayed"], results[2]["pk"]) == (True, results[0]["pk"])
    assert Interaction.objects.count() == 2
    different = post(ingest, [payload("d-3"), payload("d-3", user_feedback=1)])
    assert different.status_code == 422
    assert different.json()["error"]["fields"] == {
        "interactions[1].id": ["id 'd-3' is also used by interactions[0] with a different body; ids must be unique"]
    }
    assert Interaction.objects.count() == 2


@override_settings(FTOPS_INGEST_MAX_BATCH=3)
def test_oversized_batch_is_413(ingest: Any, catalog: Any, payload: Payload) -> None:
    response = post(ingest, [payload(f"o-{i}") for i in range(4)])
    assert response.status_code == 413
    assert response.json()["error"]["message"] == (
        "a batch holds at most 3 interactions (got 4); split it into smaller batches"
    )
    assert post(ingest, []).status_code == 422
    assert Interaction.objects.count() == 0


def test_pii_is_redacted_before_storage_in_text_and_arguments(ingest: Any, catalog: Any, payload: Payload) -> None:
    body = payload(
        "int-pii",
        messages=[{"role": "user", "content": "I'm jane@acme.example, call +1 (555) 201-3344"}],
        tool_calls=[{"name": "create_payment", "arguments": {"amount_cents": 1250, "currency": "USD",
                                                             "customer_id": "cus_1001",
                                                             "customer_email": "jane@acme.example"}}],
        response_text="Charged card 4111 1111 1111 1111 from 10.0.0.7",
        metadata={"client": {"ip": "2001:db8::1"}},
    )
    response = post(ingest, body)
    assert response.status_code == 201
    stored = Interaction.objects.get(external_id="int-pii")
    assert stored.messages[0]["content"] == "I'm [EMAIL], call [PHONE]"
    assert stored.tool_calls[0]["arguments"]["customer_email"] == "[EMAIL]"
    assert stored.tool_calls[0]["arguments"]["customer_id"] == "cus_1001"
    assert stored.response_text == "Charged card [CARD] from [IP]"
    assert stored.metadata == {"client": {"ip": "[IP]"}}
    assert stored.redactions == {"email": 2, "phone": 1, "card": 1, "ip": 2}
    assert stored.call_verdict == "valid"  # the schema saw the real values, not placeholders
    assert "jane@acme.example" not in json.dumps(response.json())


@override_settings(FTOPS_PII_REDACTION=False)
def test_redaction_can_be_switched_off(ingest: Any, catalog: Any, payload: Payload) -> None:
    post(ingest, payload("int-off", response_text="mail jane@acme.example"))
    stored = Interaction.objects.get(external_id="int-off")
    assert (stored.response_text, stored.redactions) == ("mail jane@acme.example", {})


@override_settings(FTOPS_PII_TYPES=["ip"])
def test_redaction_types_come_from_settings(ingest: Any, catalog: Any, payload: Payload) -> None:
    post(ingest, payload("int-ip", response_text="mail jane@acme.example from 10.0.0.7"))
    assert Interaction.objects.get(external_id="int-ip").response_text == "mail jane@acme.example from [IP]"


@pytest.mark.parametrize(
    ("service", "calls", "kind", "reason"),
    [
        ("payments", [{"name": "refund_everything", "arguments": {}}], "unknown_tool",
         "refund_everything: no such tool in this service's catalog"),
        ("payments", [{"name": "create_payment", "arguments": {"amount_usd": 12.5, "currency": "USD"}}],
         "unknown_parameter",
         "create_payment: unknown parameter 'amount_usd'; create_payment: 'amount_cents' is a required property"),
        ("payments", [{"name": "create_payment", "arguments": {"currency": "USD"}}], "missing_required",
         "create_payment: 'amount_cents' is a required property"),
        ("payments", [{"name": "create_payment", "arguments": {"amount_cents": 12.5, "currency": "USD"}}],
         "type_error", "create_payment.amount_cents: 12.5 is not of type 'integer'"),
        ("payments", [{"name": "create_payment", "arguments": {"amount_cents": 100, "currency": "JPY"}}],
         "value_error", "create_payment.currency: 'JPY' is not one of ['USD', 'EUR', 'GBP']"),
        ("orders", [{"name": "get_order", "arguments": {"order_id": "ORD-1", "state": "pending"}}],
         "unknown_parameter", "get_order: Additional properties are not allowed ('state' was unexpected)"),
        ("payments", [{"name": "create_payment", "arguments": "{not json"}], "type_error",
         "create_payment: arguments are not valid JSON"),
    ],
)
def test_invalid_calls_are_logged_with_verdict_and_marked(
    ingest: Any, catalog: Any, payload: Payload, service: str, calls: list[Any], kind: str, reason: str
) -> None:
    response = post(ingest, payload("v-1", service=service, tool_calls=calls))
    assert response.status_code == 201
    stored = Interaction.objects.get(external_id="v-1")
    assert (stored.call_verdict, stored.is_failure, stored.failure_kind) == ("invalid", True, kind)
    assert stored.verdict_reason == reason


def test_no_call_and_tools_without_schema(ingest: Any, catalog: Any, payload: Payload) -> None:
    post(ingest, [payload("n-1", tool_calls=[]), payload("n-2", tool_calls=[{"name": "legacy_refund",
                                                                            "arguments": {"x": 1}}])])
    verdicts = dict(Interaction.objects.values_list("external_id", "call_verdict"))
    assert verdicts == {"n-1": "no_call", "n-2": "valid"}


def test_unsuccessful_and_low_feedback_are_failures(ingest: Any, catalog: Any, payload: Payload) -> None:
    post(ingest, [payload("f-1", success=False), payload("f-2", user_feedback=2), payload("f-3", user_feedback=3)])
    marks = {i.external_id: (i.is_failure, i.failure_kind) for i in Interaction.objects.all()}
    assert marks == {"f-1": (True, "unsuccessful"), "f-2": (True, "negative_feedback"), "f-3": (False, "")}


def test_feedback_later_adds_event_and_marks_failure(ingest: Any, catalog: Any, payload: Payload) -> None:
    post(ingest, payload("fb-1", user_feedback=None))
    response = post(ingest, {"score": 1, "comment": "wrong amount, mail me at jane@acme.example"},
                    url=f"{URL}/fb-1/feedback")
    assert response.status_code == 201, response.json()
    assert response.json() | {"feedback_id": 0} == {
        "id": "fb-1", "feedback_id": 0, "user_feedback": 1, "is_failure": True, "failure_kind": "negative_feedback"
    }
    event = FeedbackEvent.objects.get()
    assert event.comment == "wrong amount, mail me at [EMAIL]"
    # A better score later clears a feedback-only failure.
    post(ingest, {"score": 5}, url=f"{URL}/fb-1/feedback")
    stored = Interaction.objects.get(external_id="fb-1")
    assert (stored.user_feedback, stored.is_failure, stored.failure_kind) == (5, False, "")
    assert FeedbackEvent.objects.count() == 2


def test_feedback_keeps_a_schema_failure(ingest: Any, catalog: Any, payload: Payload) -> None:
    post(ingest, payload("fb-s", tool_calls=[{"name": "create_payment", "arguments": {"currency": "USD"}}]))
    post(ingest, {"score": 5}, url=f"{URL}/fb-s/feedback")
    stored = Interaction.objects.get(external_id="fb-s")
    assert (stored.is_failure, stored.failure_kind) == (True, "missing_required")


def test_feedback_validation_and_unknown_id(ingest: Any, catalog: Any, payload: Payload) -> None:
    post(ingest, payload("fb-v"))
    bad = post(ingest, {"score": 6}, url=f"{URL}/fb-v/feedback")
    assert bad.status_code == 422
    assert bad.json()["error"]["fields"] == {"score": ["Ensure this value is less than or equal to 5."]}
    missing = post(ingest, {"score": 3}, url=f"{URL}/nope/feedback")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "no interaction with id 'nope'"
    assert FeedbackEvent.objects.count() == 0


def test_reviewer_cannot_ingest_and_leaves_one_audit_row(make_key: Any, catalog: Any, payload: Payload) -> None:
    client, key = make_key("reviewer")
    response = post(client, payload("r-1"))
    assert response.status_code == 403
    assert Interaction.objects.count() == 0
    denied = AuditEvent.objects.filter(action="permission.denied")
    assert denied.count() == 1
    row = denied.get()
    assert (row.api_key_id, row.object_id, row.detail["needed_roles"]) == (key.pk, "InteractionsApi", ["ingest"])


def test_anonymous_is_401_and_admin_may_ingest(api_client: Any, make_key: Any, catalog: Any, payload: Payload) -> None:
    assert post(api_client, payload("a-1")).status_code == 401
    admin, _ = make_key("admin")
    assert post(admin, payload("a-1")).status_code == 201


def test_list_filters_and_paginates(make_key: Any, ingest: Any, catalog: Any, payload: Payload) -> None:
    post(ingest, [payload(f"l-{i}", user_feedback=1 if i % 3 == 0 else 5,
                          timestamp=f"2025-03-01T10:{i:02d}:00Z") for i in range(7)])
    post(ingest, payload("l-o", service="orders", tool_calls=[{"name": "get_order",
                                                              "arguments": {"order_id": "ORD-10293"}}]))
    reviewer, _ = make_key("reviewer")
    page = reviewer.get(URL, {"limit": 3}).json()
    assert page["count"] == 8
    assert [r["id"] for r in page["results"]] == ["l-6", "l-5", "l-4"]
    failures = reviewer.get(URL, {"failure_kind": "negative_feedback"}).json()
    assert [r["id"] for r in failures["results"]] == ["l-6", "l-3", "l-0"]
    orders = reviewer.get(URL, {"service": "orders"}).json()
    assert [r["id"] for r in orders["results"]] == ["l-o"]
    bad = reviewer.get(URL, {"failure_kind": "bogus"})
    assert bad.status_code == 422
    assert "failure_kind" in bad.json()["error"]["fields"]
    detail = reviewer.get(f"{URL}/l-o").json()
    assert (detail["id"], detail["service"], detail["call_verdict"]) == ("l-o", "orders", "valid")


def test_ingest_keys_only_see_their_own_interactions(make_key: Any, catalog: Any, payload: Payload) -> None:
    team_a, _ = make_key("ingest", name="a")
    team_b, _ = make_key("ingest", name="b")
    post(team_a, payload("own-a"))
    post(team_b, payload("own-b"))
    assert [r["id"] for r in team_a.get(URL).json()["results"]] == ["own-a"]
    assert team_a.get(f"{URL}/own-b").status_code == 404
    assert post(team_a, {"score": 1}, url=f"{URL}/own-b/feedback").status_code == 404


def test_queued_batch_is_stored_by_the_task(ingest: Any, catalog: Any, payload: Payload,
                                            django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post(ingest, [payload("q-1"), payload("q-2", response_text="jane@acme.example")],
                        url=f"{URL}?async=1")
    assert response.status_code == 202
    batch_url = response.json()["url"]
    batch = ingest.get(batch_url).json()
    assert (batch["status"], batch["result"]["created"], batch["size"]) == ("succeeded", 2, 2)
    assert Interaction.objects.get(external_id="q-2").response_text == "[EMAIL]"


def test_a_full_batch_of_large_interactions_fits(ingest: Any, catalog: Any, payload: Payload) -> None:
    batch = [payload(f"big-{i}", response_text="x" * 3000) for i in range(1000)]
    response = post(ingest, batch)
    assert response.status_code == 201
    assert response.json()["created"] == 1000


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024 * 1024)
def test_an_oversized_body_is_413_with_the_limit(ingest: Any, catalog: Any, payload: Payload) -> None:
    response = post(ingest, [payload(f"huge-{i}", response_text="x" * 3000) for i in range(400)])
    assert response.status_code == 413
    assert response.json()["error"]["message"] == (
        "the request body is larger than 1 MB (FTOPS_MAX_REQUEST_MB); send smaller batches"
    )
    assert Interaction.objects.count() == 0


def test_non_json_content_type_is_415(ingest: Any, catalog: Any) -> None:
    response = ingest.post(URL, data="id=1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_nul_characters_are_refused_not_a_500(ingest: Any, catalog: Any, payload: Payload) -> None:
    response = post(ingest, payload("nul-1", response_text="bad\u0000byte"))
    assert response.status_code == 422
    assert response.json()["error"]["fields"]["non_field_errors"] == [
        "strings must not contain NUL (\\u0000) characters; the database cannot store them"
    ]


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_a_body_nested_past_the_parser_is_400_not_500(ingest: Any, catalog: Any) -> None:
    for body in ("[" * 100_000 + "]" * 100_000, '{"id": "deep", "metadata": ' + '{"a": ' * 50_000 + "1" + "}" * 50_001):
        response = ingest.post(URL, data=body, content_type="application/json")
        assert response.status_code == 400, response.content
        assert response.json()["error"] == {
            "code": "nesting_too_deep",
            "message": "the JSON body is nested too deeply to parse; a field may nest objects and arrays at most 32 "
                       "levels deep",
        }
    feedback = ingest.post(f"{URL}/x/feedback", data="[" * 100_000, content_type="application/json")
    assert feedback.status_code == 400
    assert Interaction.objects.count() == 0


@pytest.mark.parametrize("field", ["metadata", "tool_calls", "messages", "tools"])
def test_fields_nested_deeper_than_32_levels_are_422_naming_the_field(
    ingest: Any, catalog: Any, payload: Payload, field: str
) -> None:
    deep = {
        "metadata": _nested(33),
        "tool_calls": [{"name": "create_payment", "arguments": _nested(31)}],
        "messages": [{"role": "user", "content": [_nested(31)]}],
        "tools": [_nested(32)],
    }[field]
    for depth_label, body in (("33", payload("deep-1", **{field: deep})),
                              ("900", payload("deep-2", metadata=_nested(900)))):
        response = post(ingest, body)
        assert response.status_code == 422, (depth_label, response.content)
        fields = response.json()["error"]["fields"]
        name = field if depth_label == "33" else "metadata"
        assert fields == {name: ["nests objects and arrays more than 32 levels deep; send a flatter value"]}
    assert post(ingest, payload("deep-ok", metadata=_nested(32))).status_code == 201
    assert Interaction.objects.count() == 1


def test_deeply_nested_string_arguments_are_kept_and_judged_invalid(
    ingest: Any, catalog: Any, payload: Payload
) -> None:
    calls = [{"name": "create_payment", "arguments": "[" * 5000 + "]" * 5000},
             {"name": "create_payment", "arguments": json.dumps(_nested(40))}]
    response = post(ingest, payload("deep-args", tool_calls=calls))
    assert response.status_code == 201, response.content
    stored = Interaction.objects.get(external_id="deep-args")
    assert stored.call_verdict == "invalid"
    assert stored.verdict_reason == (
        "create_payment: arguments are nested more than 32 levels deep; "
        "create_payment: arguments are nested more than 32 levels deep"
    )
    assert [call["arguments_raw"] for call in stored.tool_calls] == [calls[0]["arguments"], calls[1]["arguments"]]


@pytest.mark.parametrize("where", ["response_text", "messages", "metadata", "tool_calls", "tools"])
def test_a_lone_surrogate_is_refused_naming_the_field_not_a_500(
    ingest: Any, catalog: Any, payload: Payload, where: str
) -> None:
    marker = "SURROGATE-HERE"
    values: dict[str, Any] = {
        "response_text": marker,
        "messages": [{"role": "user", "content": marker}],
        "metadata": {marker: 1},  # a key, too
        "tool_calls": [{"name": "create_payment", "arguments": {"amount_cents": 1, "currency": marker}}],
        "tools": [{"type": "function", "function": {"name": marker}}],
    }
    body = payload("sur-1", **{where: values[where]})
    raw = json.dumps(body).replace(marker, "\\ud800")  # JSON's escape for a lone high surrogate
    response = ingest.post(URL, data=raw, content_type="application/json")
    assert response.status_code == 422, response.content
    assert response.json()["error"]["fields"] == {where: [
        "holds a lone UTF-16 surrogate (such as \\ud800), which is not valid Unicode and cannot be stored; "
        "send well-formed text"]}
    assert Interaction.objects.count() == 0


@pytest.mark.parametrize(("arguments", "raw", "got"), [([1, 2], "[1, 2]", "array"), (7, "7", "number"),
                                                       (True, "true", "boolean")])
def test_arguments_that_are_not_an_object_are_stored_with_an_invalid_verdict(
    ingest: Any, catalog: Any, payload: Payload, arguments: Any, raw: str, got: str
) -> None:
    response = post(ingest, payload("arr-1", tool_calls=[{"name": "create_payment", "arguments": arguments}]))
    assert response.status_code == 201, response.content
    stored = Interaction.objects.get(external_id="arr-1")
    assert stored.tool_calls == [{"name": "create_payment", "arguments": {}, "arguments_raw": raw,
                                  "arguments_error": f"arguments must be a JSON object (got {got})"}]
    assert (stored.call_verdict, stored.is_failure, stored.failure_kind) == ("invalid", True, "type_error")
    assert stored.verdict_reason == f"create_payment: arguments must be a JSON object (got {got})"


def test_pii_sent_as_numbers_is_redacted_and_kept_out_of_the_reason(
    ingest: Any, catalog: Any, payload: Payload
) -> None:
    # The model put the card number in the wrong parameter: the schema's reason quotes it.
    arguments = {"amount_cents": 1250, "currency": 4111111111111111, "customer_id": 5552013344}
    body = payload("pii-num", tool_calls=[{"name": "create_payment", "arguments": arguments}],
                   metadata={"customer": {"phone": 15552013344}, "order_id": 4111111111111111})
    response = post(ingest, body)
    assert response.status_code == 201, response.content
    stored = Interaction.objects.get(external_id="pii-num")
    assert stored.tool_calls[0]["arguments"] == {"amount_cents": 1250, "currency": "[CARD]", "customer_id": 5552013344}
    assert stored.metadata == {"customer": {"phone": "[PHONE]"}, "order_id": 4111111111111111}
    assert stored.redactions == {"card": 1, "phone": 1}
    assert (stored.call_verdict, stored.failure_kind) == ("invalid", "type_error")
    # Sorted: jsonschema reports in the stored schema's key order, which PostgreSQL's jsonb changes.
    assert sorted(stored.verdict_reason.split("; ")) == [
        "create_payment.currency: [CARD] is not of type 'string'",
        "create_payment.currency: [CARD] is not one of ['USD', 'EUR', 'GBP']",
        "create_payment.customer_id: 5552013344 is not of type 'string'",
    ]


def test_feedback_comment_with_nul_or_surrogate_is_422(ingest: Any, catalog: Any, payload: Payload) -> None:
    post(ingest, payload("fb-bad"))
    for comment in ('"bad\\u0000byte"', '"bad\\ud800"'):
        response = ingest.post(f"{URL}/fb-bad/feedback", data='{"score": 2, "comment": ' + comment + "}",
                               content_type="application/json")
        assert response.status_code == 422, response.content
        assert set(response.json()["error"]["fields"]) == {"comment"}
    assert FeedbackEvent.objects.count() == 0
