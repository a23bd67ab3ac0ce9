from __future__ import annotations

from typing import Any

from ftops.catalog.schema import content_hash, infer_schema, normalize_schema, schema_diff

BASE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "amount": {"type": "integer", "minimum": 1, "description": "cents"},
        "currency": {"type": "string", "enum": ["USD", "EUR"]},
        "invoice_id": {"type": "string", "pattern": r"^INV-\d{4,5}$"},
        "customer_id": {"type": "string"},
    },
    "required": ["amount", "customer_id"],
}


def variant(**changes: Any) -> dict[str, Any]:
    props = {k: dict(v) for k, v in BASE["properties"].items()}
    required = list(BASE["required"])
    for name, value in changes.pop("props", {}).items():
        if value is None:
            props.pop(name)
        else:
            props[name] = value
    return {"type": "object", "properties": props, "required": changes.pop("required", required)}


def kinds(diff: Any) -> list[tuple[str, str]]:
    return [(c.kind, c.path) for c in diff.details]


def test_identical_schemas_have_no_change() -> None:
    diff = schema_diff(BASE, variant())
    assert diff.change == "none"
    assert diff.details == []


def test_removed_parameter_is_breaking() -> None:
    diff = schema_diff(BASE, variant(props={"invoice_id": None}))
    assert diff.change == "breaking"
    assert kinds(diff) == [("removed", "invoice_id")]


def test_renamed_parameter_is_breaking() -> None:
    new = variant(props={"invoice_id": None, "invoice": {"type": "string", "pattern": r"^INV-\d{4,5}$"}})
    diff = schema_diff(BASE, new)
    assert diff.change == "breaking"
    assert kinds(diff) == [("renamed", "invoice_id")]
    assert diff.details[0].detail == "'invoice_id' is now 'invoice'"
    assert diff.renames == {"invoice_id": "invoice"}
    assert diff.as_dict()["details"][0]["new_name"] == "invoice"


def test_retyped_parameter_is_breaking() -> None:
    diff = schema_diff(BASE, variant(props={"amount": {"type": "string", "description": "cents"}}))
    assert diff.change == "breaking"
    assert kinds(diff) == [("retyped", "amount")]


def test_widened_type_is_additive() -> None:
    diff = schema_diff(BASE, variant(props={"amount": {"type": "number", "minimum": 1, "description": "cents"}}))
    assert diff.change == "additive"
    assert kinds(diff) == [("constraint_loosened", "amount")]


def test_new_required_parameter_is_breaking() -> None:
    new = variant(props={"reason": {"type": "string"}}, required=["amount", "customer_id", "reason"])
    diff = schema_diff(BASE, new)
    assert diff.change == "breaking"
    assert kinds(diff) == [("new_required", "reason")]


def test_existing_parameter_made_required_is_breaking() -> None:
    diff = schema_diff(BASE, variant(required=["amount", "customer_id", "currency"]))
    assert diff.change == "breaking"
    assert kinds(diff) == [("made_required", "currency")]


def test_new_optional_parameter_is_additive() -> None:
    diff = schema_diff(BASE, variant(props={"description": {"type": "string"}}))
    assert diff.change == "additive"
    assert kinds(diff) == [("added", "description")]


def test_enum_values_added_is_additive_and_removed_is_breaking() -> None:
    wider = schema_diff(BASE, variant(props={"currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]}}))
    assert (wider.change, kinds(wider)) == ("additive", [("enum_widened", "currency")])
    narrower = schema_diff(BASE, variant(props={"currency": {"type": "string", "enum": ["USD"]}}))
    assert (narrower.change, kinds(narrower)) == ("breaking", [("enum_narrowed", "currency")])


def test_parameter_no_longer_required_is_additive() -> None:
    diff = schema_diff(BASE, variant(required=["amount"]))
    assert diff.change == "additive"
    assert kinds(diff) == [("made_optional", "customer_id")]


def test_bounds_and_patterns() -> None:
    tighter = schema_diff(BASE, variant(props={"amount": {"type": "integer", "minimum": 100, "description": "cents"}}))
    assert (tighter.change, kinds(tighter)) == ("breaking", [("constraint_tightened", "amount")])
    looser = schema_diff(BASE, variant(props={"amount": {"type": "integer", "description": "cents"}}))
    assert (looser.change, kinds(looser)) == ("additive", [("constraint_loosened", "amount")])
    pattern = schema_diff(BASE, variant(props={"invoice_id": {"type": "string", "pattern": r"^INV-\d{6}$"}}))
    assert (pattern.change, kinds(pattern)) == ("breaking", [("constraint_tightened", "invoice_id")])


def test_description_only_change_is_additive() -> None:
    diff = schema_diff(BASE, BASE, old_description="Charge.", new_description="Charge a customer in cents.")
    assert diff.change == "additive"
    assert kinds(diff) == [("description_changed", "")]


def test_nested_object_changes_are_found_by_path() -> None:
    old = {"type": "object", "properties": {"address": {"type": "object", "properties": {
        "city": {"type": "string"}, "zip": {"type": "string"}}, "required": ["city"]}}}
    new = {"type": "object", "properties": {"address": {"type": "object", "properties": {
        "city": {"type": "integer"}}, "required": ["city"]}}}
    diff = schema_diff(old, new)
    assert diff.change == "breaking"
    assert sorted(kinds(diff)) == [("removed", "address.zip"), ("retyped", "address.city")]


def test_mixed_changes_report_breaking_with_every_detail() -> None:
    new = variant(props={"invoice_id": None, "note": {"type": "string"}})
    diff = schema_diff(BASE, new)
    assert diff.change == "breaking"
    # 'note' has another type shape and an unrelated name: not a rename.
    assert sorted(kinds(diff)) == [("added", "note"), ("removed", "invoice_id")]
    assert [c["breaking"] for c in diff.as_dict()["details"]] == [True, False]


def test_content_hash_ignores_key_order() -> None:
    reordered = {"required": BASE["required"], "properties": dict(reversed(list(BASE["properties"].items()))),
                 "type": "object"}
    assert content_hash(parameters=BASE) == content_hash(parameters=reordered)
    assert content_hash(parameters=BASE) != content_hash(parameters=BASE, description="x")


def test_normalize_maps_bfcl_types() -> None:
    bfcl = {"type": "dict", "properties": {
        "x": {"type": "float"}, "xs": {"type": "array", "items": {"type": "float"}}, "t": {"type": "tuple"},
        "anything": {"type": "any"}, "type": {"type": "string"}}, "required": ["x"]}
    assert normalize_schema(bfcl) == {"type": "object", "properties": {
        "x": {"type": "number"}, "xs": {"type": "array", "items": {"type": "number"}}, "t": {"type": "array"},
        "anything": {}, "type": {"type": "string"}}, "required": ["x"]}


def test_infer_schema_unions_types_and_requires_what_every_example_has() -> None:
    schema = infer_schema([
        {"amount": 5000, "currency": "USD", "invoice_id": "INV-123"},
        {"amount": 12.5, "customer_id": "{prev.customer_id}"},
        {"amount": 100, "tags": ["a", "b"]},
    ])
    assert schema == {"type": "object", "required": ["amount"], "properties": {
        "amount": {"type": "number"}, "currency": {"type": "string"}, "customer_id": {},
        "invoice_id": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}}}
