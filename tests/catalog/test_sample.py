"""The generated acme enterprise: determinism, size, realism of the quirks and of the failures."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from ftops.catalog.sample import DEFAULT_NOW, FAILURE_KINDS, build_sample_enterprise, generate_interactions

ID_PATTERN = re.compile(r"\b(?:ORD-\d{5}|PAY-\d{6}|CUS-\d{5}|INV-\d{4,5}|TRK-[A-Z]{4}\d{4}|[A-Z]{3}-\d{4})\b")
MONEY_PATTERN = re.compile(r"[$€£]\d[\d,]*(?:\.\d\d)?")


@pytest.fixture(scope="module")
def enterprise() -> Any:
    return build_sample_enterprise(7)


@pytest.fixture(scope="module")
def interactions() -> list[dict[str, Any]]:
    return generate_interactions(seed=7)


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=FormatChecker())


def test_same_seed_same_data_other_seed_other_data(enterprise: Any, interactions: list[dict[str, Any]]) -> None:
    assert build_sample_enterprise(7).tool_documents == enterprise.tool_documents
    assert build_sample_enterprise(8).tool_documents != enterprise.tool_documents
    assert generate_interactions(seed=7) == interactions
    assert generate_interactions(seed=8, n=50) != interactions[:50]


def test_services_tools_and_example_counts(enterprise: Any) -> None:
    services = {s["name"] for s in enterprise.services}
    assert {"payments", "orders", "inventory", "customers"} <= services
    assert len(enterprise.tool_documents) >= 15
    assert len(set(enterprise.tool_names)) == len(enterprise.tool_names)
    sequences_with_refs = 0
    for doc in enterprise.tool_documents:
        assert set(doc) >= {"service", "version", "tool", "description", "parameters", "training_examples",
                            "edge_cases", "domain_vocabulary"}
        calls = [e for e in doc["training_examples"] if "correct_tool" in e]
        assert len(calls) >= 25, doc["tool"]
        assert len({e["template"] for e in calls}) >= 6, doc["tool"]
        assert all(e["explanation"] and e["common_mistakes"] for e in calls)
        actions = Counter(e["correct_behavior"]["action"] for e in doc["edge_cases"])
        assert actions["clarify"] + actions["ask_for_details"] >= 3, doc["tool"]
        if any("{prev." in str(e.get("correct_sequence")) for e in doc["training_examples"]):
            sequences_with_refs += 1
        queries = [e["user_query"] for e in doc["training_examples"] + doc["edge_cases"]]
        assert len(queries) == len(set(queries)), doc["tool"]
    assert sequences_with_refs >= 8
    for service in services:
        abstain = [e for d in enterprise.tool_documents if d["service"] == service for e in d["edge_cases"]
                   if e["correct_behavior"]["action"] == "abstain"]
        assert len(abstain) >= 6, service


def test_every_example_fits_its_schema(enterprise: Any) -> None:
    schemas = {d["tool"]: d["parameters"] for d in enterprise.tool_documents}
    for doc in enterprise.tool_documents:
        check = validator(doc["parameters"])
        for example in doc["training_examples"]:
            if "correct_tool" in example:
                assert list(check.iter_errors(example["correct_parameters"])) == [], example["user_query"]
                for param, values in example.get("acceptable_values", {}).items():
                    for value in values:
                        if value != "":
                            instance = {**example["correct_parameters"], param: value}
                            assert list(check.iter_errors(instance)) == []
            for call in example.get("correct_calls", []):
                assert list(validator(schemas[call["tool"]]).iter_errors(call["parameters"])) == []
            for step in example.get("correct_sequence", []):
                concrete = {k: v for k, v in step["parameters"].items() if not str(v).startswith("{prev.")}
                props = schemas[step["tool"]]["properties"]
                assert set(step["parameters"]) <= set(props)
                for name, value in concrete.items():
                    assert list(validator(props[name]).iter_errors(value)) == [], (step, name)
        for edge in doc["edge_cases"]:
            behavior = edge["correct_behavior"]
            if behavior["action"] == "ask_for_details":
                assert set(behavior["required_fields"]) <= set(doc["parameters"]["required"]), edge


def test_enterprise_quirks_are_in_the_data(enterprise: Any) -> None:
    payment = enterprise.document("create_payment")
    assert payment["parameters"]["properties"]["amount"]["type"] == "integer"
    for example in payment["training_examples"]:
        if "correct_tool" not in example:
            continue
        match = MONEY_PATTERN.search(example["user_query"])
        if match and match.group(0)[0] == "$":
            dollars = float(match.group(0)[1:].replace(",", ""))
            assert example["correct_parameters"]["amount"] == round(dollars * 100)
    states = enterprise.document("list_orders")["parameters"]["properties"]["fulfillment_state"]["enum"]
    assert "awaiting_shipment" in states and "pending" not in states
    pending = [e for e in enterprise.document("list_orders")["training_examples"]
               if "pending" in e["user_query"] and "correct_tool" in e]
    assert pending and all(e["correct_parameters"]["fulfillment_state"] == "awaiting_shipment" for e in pending)
    for doc in enterprise.tool_documents:
        customer = doc["parameters"]["properties"].get("customer_id")
        if customer:
            assert customer["pattern"] == r"^CUS-\d{5}$"
    name_only = [e for d in enterprise.tool_documents for e in d["edge_cases"]
                 if e.get("scenario") == "Customer named only by name"]
    assert len(name_only) >= 10


def test_interactions_volume_period_and_failure_share(interactions: list[dict[str, Any]]) -> None:
    assert len(interactions) == 2000
    assert len({i["id"] for i in interactions}) == 2000
    stamps = [datetime.fromisoformat(i["timestamp"].replace("Z", "+00:00")) for i in interactions]
    assert stamps == sorted(stamps)
    assert DEFAULT_NOW - timedelta(days=120) <= stamps[0] and stamps[-1] <= DEFAULT_NOW
    assert (stamps[-1] - stamps[0]).days >= 115
    failures = [i for i in interactions if i["metadata"]["simulated"]["failure"]]
    assert 0.12 <= len(failures) / len(interactions) <= 0.18
    assert set(Counter(i["metadata"]["simulated"]["failure"] for i in failures)) == set(FAILURE_KINDS)
    assert {i["service"] for i in interactions} == {"payments", "orders", "inventory", "customers"}
    assert len({i["model_version"] for i in interactions}) == 2


def test_feedback_latency_tokens_look_like_production(interactions: list[dict[str, Any]]) -> None:
    good = [i for i in interactions if not i["metadata"]["simulated"]["failure"]]
    bad = [i for i in interactions if i["metadata"]["simulated"]["failure"]]
    assert sum(1 for i in good if (i["user_feedback"] or 0) >= 4) / len(good) > 0.8
    assert sum(1 for i in bad if i["user_feedback"] in (1, 2)) / len(bad) > 0.7
    assert any(i["user_feedback"] not in (1, 2) for i in bad)  # not every failure gets a low score
    assert all(i["success"] for i in good)
    # Every failure shows somewhere a collector can see it: unsuccessful or low feedback.
    assert all(i["success"] is False or i["user_feedback"] in (1, 2) for i in bad)
    assert all(i["latency_ms"] > 0 and i["tokens_used"] > 0 for i in interactions)
    assert all(0 <= i["confidence"] <= 1 for i in interactions)


def test_payload_shapes(interactions: list[dict[str, Any]], enterprise: Any) -> None:
    schemas = {d["tool"]: d["parameters"] for d in enterprise.tool_documents}
    for item in interactions:
        assert item["messages"][-1]["role"] == "user"
        offered = [t["function"]["name"] for t in item["tools"]]
        assert all(t["type"] == "function" for t in item["tools"])
        assert offered == [d["tool"] for d in enterprise.tool_documents if d["service"] == item["service"]]
        for call in item["tool_calls"]:
            assert set(call) == {"name", "arguments"} and isinstance(call["arguments"], dict)
        sim = item["metadata"]["simulated"]
        assert sim["expected_behavior"] in ("call", "clarify", "ask_for_details", "abstain")
        if sim["expected_behavior"] == "call":
            for call in sim["expected_calls"]:
                assert list(validator(schemas[call["name"]]).iter_errors(call["arguments"])) == []
            if not sim["failure"]:
                assert item["tool_calls"] == sim["expected_calls"]
        else:
            assert sim["expected_calls"] is None
            assert (item["tool_calls"] == []) == (sim["failure"] is None)
    dollars = [i for i in interactions if i["metadata"]["simulated"]["failure"] == "dollars_not_cents"]
    for item in dollars:
        assert item["tool_calls"][0]["arguments"]["amount"] * 100 == pytest.approx(
            item["metadata"]["simulated"]["expected_calls"][0]["arguments"]["amount"])


def test_user_texts_carry_pii_but_ids_and_amounts_stay_intact(interactions: list[dict[str, Any]]) -> None:
    from ftops.interactions.pii import redact_text

    texts = [i["messages"][-1]["content"] for i in interactions]
    redacted = [redact_text(t) for t in texts]
    totals: Counter[str] = Counter()
    for _, counts in redacted:
        totals.update(counts)
    assert totals["email"] >= 50 and totals["phone"] >= 30
    assert set(totals) <= {"email", "phone"}
    for text, (clean, _) in zip(texts, redacted, strict=True):
        assert ID_PATTERN.findall(clean) == ID_PATTERN.findall(text)
        assert MONEY_PATTERN.findall(clean) == MONEY_PATTERN.findall(text)


def test_now_is_overridable() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    stamps = [datetime.fromisoformat(i["timestamp"].replace("Z", "+00:00"))
              for i in generate_interactions(seed=7, n=200, days=30, now=now)]
    assert now - timedelta(days=30) <= min(stamps) and max(stamps) <= now


def test_the_traffic_is_the_same_whatever_the_clock_says() -> None:
    """Only the timestamps follow ``now``: a demo run at 09:00 and one at 23:59 curate the same
    requests (drawn for ``now`` itself, the number of draws followed the time of day)."""
    def without_time(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in i.items() if k != "timestamp"} for i in items]

    morning = generate_interactions(seed=7, n=300, now=datetime(2030, 1, 1, 9, 0, tzinfo=UTC))
    night = generate_interactions(seed=7, n=300, now=datetime(2030, 3, 7, 23, 59, 59, tzinfo=UTC))
    assert without_time(morning) == without_time(night)
    gap = [datetime.fromisoformat(b["timestamp"].replace("Z", "+00:00"))
           - datetime.fromisoformat(a["timestamp"].replace("Z", "+00:00")) for a, b in zip(morning, night, strict=True)]
    assert len(set(gap)) == 1
