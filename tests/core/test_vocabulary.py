"""A service's vocabulary: folded from the service's and its tools' documents, stated as rules."""

from __future__ import annotations

from ftops.core.vocabulary import service_vocabulary, vocabulary_rules

VOCABULARY = {
    "amounts": {"rule": "ALL amounts in cents, never dollars", "examples": {"$10": 1000, "$1": 100, "$5": 500,
                                                                            "$7": 700}},
    "payment_states": {"our_values": ["pending", "completed"],
                       "user_might_say": {"completed": ["done", "went through"]}},
    "customer_identification": {"never_use_alone": ["name"], "reason": "Names are not unique"},
}


def test_every_entry_shape_becomes_a_sentence() -> None:
    assert vocabulary_rules({"payments": VOCABULARY}) == [
        'amounts: ALL amounts in cents, never dollars (e.g. $10 -> 1000, $1 -> 100, $5 -> 500)',
        "customer identification: Names are not unique",
        "customer identification: never identify by name alone",
        "payment states: use only pending, completed",
        "payment states: users saying 'done', 'went through' mean 'completed'",
    ]
    odd = {"currency": "ISO codes", "limits": [1, 2], "dates": {"examples": {"tomorrow": "2026-01-02"}},
           "regions": {"acceptable": ["eu", "us"]}, "empty": {}}
    assert vocabulary_rules({"s": odd}) == [
        "currency: ISO codes", 'dates, for example: tomorrow -> "2026-01-02"', "limits: [1, 2]",
        "regions: use only eu, us"]


def test_several_services_are_told_apart_and_empty_ones_left_out() -> None:
    rules = vocabulary_rules({"shop": {"amounts": "in euros"}, "payments": {"amounts": "in cents"},
                              "weather": {}, "maps": None})
    assert rules == ["payments / amounts: in cents", "shop / amounts: in euros"]
    assert vocabulary_rules({}) == []


def test_a_service_and_its_tools_fold_into_one_document() -> None:
    folded = service_vocabulary(
        {"amounts": {"rule": "in cents"}},
        {"refund": {"amounts": {"rule": "in cents"}, "reasons": {"our_values": ["fraud", "duplicate"]}},
         "legacy_charge": {"amounts": {"rule": "in dollars for legacy charges"}},
         "ping": None},
    )
    # The service's own meaning stays; a tool repeating it adds nothing; a tool meaning
    # something else keeps its entry under its own name; tools are read in name order.
    assert list(folded) == ["amounts", "amounts (legacy_charge)", "reasons"]
    assert folded["amounts (legacy_charge)"] == {"rule": "in dollars for legacy charges"}
    assert vocabulary_rules({"payments": folded}) == [
        "amounts: in cents", "amounts (legacy_charge): in dollars for legacy charges",
        "reasons: use only fraud, duplicate"]
    assert service_vocabulary(None) == {} and service_vocabulary({}, {"t": {"a": "b"}}) == {"a": "b"}
