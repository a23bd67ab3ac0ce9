"""PII redaction: recall on a generated set per type, and quiet on enterprise identifiers."""

from __future__ import annotations

import ipaddress
import random
import string
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from ftops.interactions.pii import (
    IBAN_LENGTHS,
    PII_TYPES,
    iban_valid,
    luhn_valid,
    may_hold_pii,
    redact_text,
    redact_value,
    redactor,
    scrub_literals,
)

N_PER_TYPE = 400
TEMPLATES = [
    "{x}",
    "Please use {x} for this.",
    "contact: {x}, thanks",
    "The customer gave {x}.",
    "({x})",
    "value={x};",
    "Line one\n{x}\nline three",
    "refund to {x} and ship ORD-10293 today",
]


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable")


def gen_email(rng: random.Random) -> str:
    local = rng.choice(["jane", "j.doe", "mark_t", "ops+billing", "a1b2", "x"]) + str(rng.randint(0, 999))
    domain = rng.choice(["acme.example", "mail.acme.co.uk", "example.com", "corp-mail.io", "b.de"])
    return f"{local}@{domain}"


def gen_phone(rng: random.Random) -> str:
    a, b, c = rng.randint(200, 989), rng.randint(200, 999), rng.randint(0, 9999)
    return rng.choice(
        [
            f"+1 ({a}) {b}-{c:04d}",
            f"+1 {a}-{b}-{c:04d}",
            f"({a}) {b}-{c:04d}",
            f"{a}-{b}-{c:04d}",
            f"{a}.{b}.{c:04d}",
            f"+44 20 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
            f"+49 30 {rng.randint(1000000, 99999999)}",
            f"+33 1 {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
            f"+1{a}{b}{c:04d}",
        ]
    )


def gen_card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("34", 15), ("37", 15), ("6011", 16), ("4", 13)])
    number = _luhn_complete(prefix, length, rng)
    style = rng.choice(["compact", "spaces", "dashes"])
    if style == "compact" or length == 13:
        return number
    groups = [number[i : i + 4] for i in range(0, len(number), 4)] if length == 16 else [
        number[:4], number[4:10], number[10:]
    ]
    return (" " if style == "spaces" else "-").join(groups)


def gen_iban(rng: random.Random) -> str:
    country = rng.choice(["DE", "GB", "FR", "NL", "ES", "IT", "BE", "CH", "PL", "SE"])
    length = IBAN_LENGTHS[country]
    bank = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) if country in ("GB", "NL") else ""
    bban = bank + "".join(rng.choice(string.digits) for _ in range(length - 4 - len(bank)))
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    iban = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    assert iban_valid(iban)
    if rng.random() < 0.5:
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


def gen_ssn(rng: random.Random) -> str:
    sep = rng.choice(["-", "-", " "])
    return f"{rng.randint(100, 899):03d}{sep}{rng.randint(1, 99):02d}{sep}{rng.randint(1, 9999):04d}"


def gen_ip(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return str(ipaddress.IPv4Address(rng.randint(0x01000000, 0xDFFFFFFF)))
    address = ipaddress.IPv6Address(rng.getrandbits(128))
    if rng.random() < 0.3:
        address = ipaddress.IPv6Address(int(address) & ~0xFFFFFFFF0000)  # gives '::' compression a chance
    return address.compressed if rng.random() < 0.6 else address.exploded


GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "email": gen_email, "phone": gen_phone, "card": gen_card, "iban": gen_iban, "ssn": gen_ssn, "ip": gen_ip,
}  # fmt: skip


@pytest.mark.parametrize("kind", PII_TYPES)
def test_recall_on_generated_set_is_at_least_99_percent(kind: str) -> None:
    rng = random.Random(f"pii-{kind}")
    misses: list[str] = []
    for _ in range(N_PER_TYPE):
        value = GENERATORS[kind](rng)
        text = rng.choice(TEMPLATES).format(x=value)
        redacted, counts = redact_text(text)
        if value in redacted or counts.get(kind, 0) != 1 or f"[{kind.upper()}]" not in redacted:
            misses.append(f"{text!r} -> {redacted!r} {counts}")
    recall = 1 - len(misses) / N_PER_TYPE
    assert recall >= 0.99, f"{kind} recall {recall:.3f}; first misses: {misses[:5]}"


def gen_negative(rng: random.Random) -> str:
    return rng.choice(
        [
            f"ORD-{rng.randint(10000, 99999)}",
            f"order ORD-{rng.randint(100000, 9999999)} is awaiting_shipment",
            f"SKU-{rng.choice(string.ascii_uppercase)}{rng.choice(string.ascii_uppercase)}{rng.randint(10, 99)}-"
            f"{rng.randint(1000, 9999)}",
            f"sku {''.join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(10))}",
            f"amount_cents {rng.randint(1, 10**9)}",
            f"charge {rng.randint(1, 10**7)} cents",
            f"${rng.randint(1, 99999):,}.{rng.randint(0, 99):02d}",
            f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
            f"{rng.randint(0, 59):02d}Z",
            f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
            f"at {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
            f"epoch {rng.randint(1_600_000_000, 1_900_000_000)}",
            f"ts_ms {rng.randint(1_600_000_000_000, 1_900_000_000_000)}",
            f"cus_{rng.randint(1000, 99999)}",
            f"customer cus_{''.join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(14))}",
            f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/2025",
            f"qty {rng.randint(1, 500)} of {rng.randint(1, 500)}",
            f"v{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 50)}",
            f"INV-2025-{rng.randint(1, 99999):05d}",
            f"pi_{''.join(rng.choice(string.ascii_letters + string.digits) for _ in range(24))}",
            f"warehouse WH-{rng.randint(1, 99)} bin {rng.randint(1, 999)}",
        ]
    )


def false_positives(generate: Callable[[random.Random], Any], redact: Callable[[Any], tuple[Any, dict[str, int]]],
                    *, seed: str, n: int = 3000) -> list[str]:
    """Generated values holding no PII that ``redact`` changed anyway."""
    rng = random.Random(seed)
    hits = []
    for _ in range(n):
        value = generate(rng)
        redacted, counts = redact(value)
        if counts or redacted != value:
            hits.append(f"{value!r} -> {redacted!r}")
    return hits


def test_no_false_positive_on_order_ids_skus_amounts_and_timestamps() -> None:
    assert false_positives(gen_negative, redact_text, seed="negatives") == []


def test_redact_value_walks_nested_arguments_and_keeps_numbers_and_keys() -> None:
    value = {
        "customer": {"email": "jane@acme.example", "customer_id": "cus_1001"},
        "amount_cents": 129900,
        "notes": ["call +1 (555) 201-3344", "card 4111 1111 1111 1111"],
        "jane@acme.example": True,
    }
    redacted, counts = redact_value(value)
    assert redacted == {
        "customer": {"email": "[EMAIL]", "customer_id": "cus_1001"},
        "amount_cents": 129900,
        "notes": ["call [PHONE]", "card [CARD]"],
        "jane@acme.example": True,
    }
    assert counts == {"email": 1, "phone": 1, "card": 1}
    assert value["customer"]["email"] == "jane@acme.example"  # the input is not modified


def test_card_numbers_must_pass_luhn_and_ibans_mod_97() -> None:
    assert redact_text("card 4111 1111 1111 1112") == ("card 4111 1111 1111 1112", {})
    assert redact_text("iban DE89 3704 0044 0532 0130 01") == ("iban DE89 3704 0044 0532 0130 01", {})
    assert redact_text("iban DE89 3704 0044 0532 0130 00 ok") == ("iban [IBAN] ok", {"iban": 1})


def test_trailing_digits_after_a_card_are_kept_and_rescanned() -> None:
    assert redact_text("4111 1111 1111 1111 12/27 from 10.0.0.7") == ("[CARD] 12/27 from [IP]", {"card": 1, "ip": 1})


def test_only_the_chosen_types_are_redacted() -> None:
    text = "jane@acme.example from 10.0.0.7"
    assert redact_text(text, frozenset({"ip"})) == ("jane@acme.example from [IP]", {"ip": 1})
    with pytest.raises(ValueError, match="unknown PII type"):
        redact_text(text, frozenset({"passport"}))


# --- PII sent as JSON numbers -------------------------------------------------------------------

PHONE_KEYS = ["phone", "phone_number", "customerPhone", "mobile", "tel", "contact_phone", "msisdn"]
CARD_KEYS = ["card_number", "card", "cardNumber", "pan", "cc", "credit_card"]
PLAIN_KEYS = ["value", "number", "n", "data"]


def gen_phone_number(rng: random.Random) -> int:
    a, b, c = rng.randint(200, 989), rng.randint(200, 999), rng.randint(0, 9999)
    return int(rng.choice([f"1{a}{b}{c:04d}", f"{a}{b}{c:04d}", f"4930{rng.randint(1000000, 99999999)}",
                           f"44207{rng.randint(1000000, 9999999)}", f"{rng.randint(1000000, 9999999)}"]))


def gen_card_number(rng: random.Random) -> int:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("34", 15), ("37", 15), ("6011", 16), ("4", 13)])
    return int(_luhn_complete(prefix, length, rng))


def _number_cases(rng: random.Random, kind: str) -> tuple[dict[str, object], str]:
    """A nested value holding one PII number, and that number's digits."""
    if kind == "phone":
        number = gen_phone_number(rng)
        key = rng.choice(PHONE_KEYS)
        return rng.choice([{key: number}, {"customer": {key: [number]}}]), str(number)
    number = gen_card_number(rng)
    key = rng.choice(CARD_KEYS + PLAIN_KEYS)  # known issuer prefixes: found under any key
    return rng.choice([{key: number}, {"payment": {key: number, "amount_cents": 1250}}, {key: [number]}]), str(number)


@pytest.mark.parametrize("kind", ["phone", "card"])
def test_recall_on_numbers_is_at_least_99_percent(kind: str) -> None:
    rng = random.Random(f"pii-number-{kind}")
    misses: list[str] = []
    for _ in range(N_PER_TYPE):
        value, literal = _number_cases(rng, kind)
        redacted, counts = redact_value(value)
        if literal in repr(redacted) or counts != {kind: 1} or f"'[{kind.upper()}]'" not in repr(redacted):
            misses.append(f"{value!r} -> {redacted!r} {counts}")
    recall = 1 - len(misses) / N_PER_TYPE
    assert recall >= 0.99, f"{kind} recall {recall:.3f}; first misses: {misses[:5]}"


def gen_negative_number(rng: random.Random) -> dict[str, object]:
    big = rng.randint(10**12, 10**19 - 1)  # card-length: sometimes Luhn-valid with an issuer prefix
    return rng.choice(
        [
            {"order_id": big},
            {"orderId": big},
            {"id": big},
            {"ids": [big, rng.randint(10**12, 10**19 - 1)]},
            {"invoice_number": big},
            {"order_number": big},
            {"card_id": big},
            {"amount_cents": rng.randint(1, 10**9)},
            {"amount": rng.randint(10**12, 10**15)},
            {"total_cents": big},
            {"ts_ms": rng.randint(1_600_000_000_000, 1_900_000_000_000)},
            {"created_at": rng.randint(1_600_000_000, 1_900_000_000)},
            {"phone_verified_at": rng.randint(1_600_000_000, 1_900_000_000)},
            {"timestamp_ns": rng.randint(10**18, 2 * 10**18)},
            {"quantity": rng.randint(1, 10**7)},
            {"sku": rng.randint(10**6, 10**13)},
            {"value": rng.randint(1, 10**12)},  # under 13 digits a plain number is never a card
            {"customer": {"phone_count": rng.randint(10**6, 10**9)}},
        ]
    )


def test_no_false_positive_on_numeric_ids_amounts_and_times() -> None:
    assert false_positives(gen_negative_number, redact_value, seed="negative-numbers") == []


def test_numbers_and_bare_digit_phones_are_redacted_by_their_key() -> None:
    value = {
        "card_number": 4111111111111111,
        "phone": 15552013344,
        "mobile": "5552013344",
        "order_id": 4111111111111111,
        "amount_cents": 129900,
        "note": "5552013344",  # a bare run of digits outside a phone key stays: amounts look the same
        "flag": True,
    }
    literals: dict[str, str] = {}
    counts: dict[str, int] = {}
    redacted = redactor().value_into(value, counts, literals)
    assert redacted == {"card_number": "[CARD]", "phone": "[PHONE]", "mobile": "[PHONE]",
                        "order_id": 4111111111111111, "amount_cents": 129900, "note": "5552013344", "flag": True}
    assert counts == {"card": 1, "phone": 2}
    assert literals == {"4111111111111111": "[CARD]", "15552013344": "[PHONE]", "5552013344": "[PHONE]"}
    reason = "create_payment.phone: 15552013344 is not of type 'string'; order 115552013344 kept"
    assert scrub_literals(reason, literals) == (
        "create_payment.phone: [PHONE] is not of type 'string'; order 115552013344 kept"
    )


def test_only_chosen_types_apply_to_numbers() -> None:
    value = {"card_number": 4111111111111111, "phone": 15552013344}
    assert redact_value(value, frozenset({"email"})) == (value, {})
    assert redact_value(value, frozenset({"card"})) == ({"card_number": "[CARD]", "phone": 15552013344}, {"card": 1})


def test_the_json_pre_check_never_skips_a_value_that_redaction_would_change() -> None:
    # Ingest skips the walk when the value's JSON text fails this check: it may say "maybe" too
    # often, never "no" for a value the walk changes. PII next to escaped characters (a newline
    # before a card, a quote after a phone), under phone and card keys, and as numbers.
    rng = random.Random(5)
    escapes = ["\n", "\t", '"', "\\", "\u2028", "é", " ", ""]
    keys = PHONE_KEYS + CARD_KEYS + PLAIN_KEYS + ["order_id", "amount_cents"]
    changed = skipped_clean = 0
    for _ in range(6000):
        kind = rng.choice(list(GENERATORS))
        text = rng.choice(escapes) + GENERATORS[kind](rng) + rng.choice(escapes)
        number_value: Any = gen_phone_number(rng) if rng.random() < 0.5 else gen_card_number(rng)
        value = rng.choice([
            text, {rng.choice(keys): text}, {rng.choice(keys): number_value},
            [{"role": "user", "content": text}], {rng.choice(keys): str(gen_phone_number(rng))},
            gen_negative(rng), {"k": gen_negative_number(rng)},
        ])
        redacted, _ = redact_value(value)
        if redacted != value:
            changed += 1
            assert may_hold_pii(orjson.dumps(value)), value
        elif not may_hold_pii(orjson.dumps(value)):
            skipped_clean += 1
    assert changed > 2000 and skipped_clean > 0
