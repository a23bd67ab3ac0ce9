"""PII redaction for free text and for nested values (tool arguments, messages, metadata).

Pure Python, no Django: the ingest service decides *whether* to redact and *which* types
(``FTOPS_PII_REDACTION``, ``FTOPS_PII_TYPES``) and passes ``types`` here.

Each match becomes a placeholder such as ``[EMAIL]`` and is counted by type. Patterns are
chosen to stay quiet on what tool-calling traffic is full of: order ids (``ORD-10293``),
SKUs, amounts in cents, ISO timestamps and epoch numbers. That is why

- card numbers must be 13-19 digits, start with an issuer digit (2-6) and pass Luhn;
- IBANs must carry a known country code, that country's length and a valid mod-97 check;
- phone numbers need a leading ``+`` or the grouped ``(555) 123-4567`` shape: a bare run of
  ten digits is far more often an amount or an epoch than a phone number;
- IP addresses are confirmed by :mod:`ipaddress`, so ``12:30:00`` is never an IPv6 address.

Greedy candidates are cut back to the longest valid prefix at a group boundary and the rest
of the candidate is scanned again, so "card 4111 1111 1111 1111 12/27" loses only the card.

Nested values also hold PII as JSON *numbers* (``{"card_number": 4111111111111111}``,
``{"phone": 15552013344}``). A bare number has no separators or ``+`` to go by, so the key
it sits under decides (the nearest dict key; list items inherit it):

- under a key naming an identifier, an amount, a count or a time (``order_id``,
  ``amount_cents``, ``created_at``, ``ts_ms`` ...) a number is never PII;
- under a phone key (``phone``, ``mobile``, ``customerPhone`` ...) 7-15 digits are a phone
  number, and so is a string of bare digits;
- under a card key (``card_number``, ``pan``, ``cc`` ...) a Luhn-valid 13-19 digit number is
  a card; under any other key it must also start with a real issuer prefix at that issuer's
  length (Visa 4, Mastercard 51-55/2221-2720, Amex 34/37 ...).

Such a number becomes its placeholder string; the literals redacted this way can be
collected to scrub messages that quote them (a schema verdict's reason does).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

PII_TYPES: tuple[str, ...] = ("email", "phone", "card", "iban", "ssn", "ip")
PLACEHOLDERS: dict[str, str] = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "card": "[CARD]",
    "iban": "[IBAN]",
    "ssn": "[SSN]",
    "ip": "[IP]",
}

# Registered IBAN lengths by country (ISO 13616 registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip

_EMAIL_RE = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b")
_IPV6_RE = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")

# Digit-bearing patterns share one scan. Alternation order matters only for candidates that
# start at the same position; the callback validates and falls back to re-scanning.
_DIGIT_PATTERNS: dict[str, str] = {
    "iban": r"(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}(?:[ ]?[A-Za-z0-9]){11,30}",
    "card": r"(?<![\w+-])[2-6](?:[ -]?[0-9]){12,18}(?![0-9])",
    "ssn": r"(?<![\w-])[0-9]{3}(?P<ssn_sep>[- ])[0-9]{2}(?P=ssn_sep)[0-9]{4}(?![\w-])",
    "phone": (
        r"(?<![\w+])\+[0-9]{1,3}(?:[ .-]?\([0-9]{1,4}\)|[ .-][0-9]{1,8}){1,6}(?![\w-])"
        r"|(?<![\w+])\+[0-9]{8,15}(?![\w-])"
        r"|(?<!\w)(?:\([0-9]{3}\)[ .-]?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}(?![\w-])"
    ),
    "ip": r"(?<![\w.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![\w]|\.[0-9])",
}
# Cheap pre-checks. Every digit-bearing match holds a run of >= 7 digits and separators
# (an IPv4 address is the shortest: 1.1.1.1), or starts like an IBAN; a string with neither
# skips the full alternation, which costs ~10x more per character.
_DIGIT_RUN = re.compile(r"[0-9][0-9 .()+\-]{5,}[0-9]")
_IBAN_START = re.compile(r"[A-Za-z]{2}[0-9]{2}")
_TRIGGER = re.compile(r"[0-9@:]")  # every pattern needs a digit, an '@' or a ':'; most strings have none
_NON_ALNUM = re.compile(r"[^A-Za-z0-9]")
_NON_DIGIT = re.compile(r"[^0-9]")
_BARE_PHONE = re.compile(r"\+?[0-9]{7,15}")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_WORD = re.compile(r"[a-z]+|[0-9]+")

Counts = dict[str, int]

# What any redaction needs somewhere in a value's JSON text: a run of 7+ digits and separators
# (every digit pattern, a number or a bare phone string under a key), an '@' (email), two colons
# with only hex digits between (IPv6) or two letters then two digits (an IBAN's start). JSON
# escapes none of these characters, so a value whose text holds none of them comes out of the
# walk unchanged, and the walk (the costliest step of ingest) is skipped. Both digit cases start
# at a digit (the IBAN one looks back for its letters), which the engine finds ~4x faster than
# trying a letter-led alternative at every letter.
_MAY_HOLD_DIGIT_PII = re.compile(rb"[0-9](?:[0-9 .()+\-]{5,}[0-9]|(?<=[A-Za-z][A-Za-z][0-9])[0-9])")
_MAY_HOLD_IPV6 = re.compile(rb":[0-9A-Fa-f]{0,4}:")


def may_hold_pii(json_text: bytes) -> bool:
    """False when redacting the value serialised as ``json_text`` (UTF-8) cannot change it."""
    return (b"@" in json_text or _MAY_HOLD_DIGIT_PII.search(json_text) is not None
            or _MAY_HOLD_IPV6.search(json_text) is not None)

# What a dict key says about the numbers under it (see the module docstring).
PHONE_KEY, CARD_KEY, SAFE_KEY, PLAIN_KEY = "phone", "card", "safe", ""
_PHONE_WORDS = frozenset({"tel", "telephone", "mobile", "cell", "fax", "msisdn", "whatsapp", "sms"})
_CARD_WORDS = frozenset({"cc", "ccn", "pan", "creditcard"})
_SAFE_WORDS = frozenset({
    "id", "ids", "uuid", "guid", "key", "ref", "reference", "order", "invoice", "sku", "amount", "cents",
    "total", "subtotal", "price", "cost", "fee", "balance", "qty", "quantity", "count", "ts", "timestamp",
    "time", "at", "epoch", "ms", "ns", "date", "seq", "sequence", "version", "size", "bytes", "length",
})  # fmt: skip
_KEY_KINDS: dict[str, str] = {}

# Card issuer prefixes (IIN ranges) and their lengths, for numbers under keys that do not
# say "card": (first prefix, last prefix, lengths). Mostly-Maestro ranges are left out.
_IIN_RANGES: tuple[tuple[int, int, frozenset[int]], ...] = (
    (4, 4, frozenset({13, 16, 19})),  # Visa
    (51, 55, frozenset({16})),  # Mastercard
    (2221, 2720, frozenset({16})),  # Mastercard 2-series
    (34, 34, frozenset({15})), (37, 37, frozenset({15})),  # American Express
    (6011, 6011, frozenset(range(16, 20))), (644, 649, frozenset(range(16, 20))), (65, 65, frozenset(range(16, 20))),
    (300, 305, frozenset(range(14, 20))), (36, 36, frozenset(range(14, 20))), (38, 39, frozenset(range(16, 20))),
    (3528, 3589, frozenset(range(16, 20))),  # JCB
    (62, 62, frozenset(range(16, 20))),  # UnionPay
    (2200, 2204, frozenset(range(16, 20))),  # Mir
)  # fmt: skip


def key_kind(key: str) -> str:
    """PHONE_KEY, CARD_KEY, SAFE_KEY or PLAIN_KEY for a dict key such as ``customerPhone``."""
    found = _KEY_KINDS.get(key)
    if found is not None:
        return found
    words = _WORD.findall(_CAMEL.sub(r"\1_\2", key).lower())
    if any(w in _SAFE_WORDS for w in words):
        kind = SAFE_KEY  # "phone_verified_at" holds a time, "card_id" an identifier
    elif any("phone" in w or w in _PHONE_WORDS for w in words):
        kind = PHONE_KEY
    elif any("card" in w or w in _CARD_WORDS for w in words):
        kind = CARD_KEY
    else:
        kind = PLAIN_KEY
    if len(_KEY_KINDS) < 10_000:  # keys come from clients: bound the memo
        _KEY_KINDS[key] = kind
    return kind


def issuer_length_ok(digits: str) -> bool:
    """Does ``digits`` start with a card issuer's prefix and have one of that issuer's lengths?"""
    for low, high, lengths in _IIN_RANGES:
        width = len(str(low))
        if low <= int(digits[:width]) <= high and len(digits) in lengths:
            return True
    return False


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_valid(compact: str) -> bool:
    """``compact``: upper-case letters and digits only, no spaces."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    numeric = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(numeric) % 97 == 1


def _cut_after(text: str, n_chars: int, keep: Callable[[str], bool]) -> int:
    """Index in ``text`` just after the ``n_chars``-th character for which ``keep`` holds."""
    seen = 0
    for i, ch in enumerate(text):
        if keep(ch):
            seen += 1
            if seen == n_chars:
                return i + 1
    return len(text)


class Redactor:
    """Redaction for one set of PII types; build through :func:`redactor` (cached)."""

    def __init__(self, types: Iterable[str]) -> None:
        chosen = frozenset(types)
        unknown = chosen - set(PII_TYPES)
        if unknown:
            raise ValueError(f"unknown PII type(s) {sorted(unknown)}; known: {list(PII_TYPES)}")
        self.types = chosen
        self._email = "email" in chosen
        self._ipv6 = "ip" in chosen
        self._want_phone = "phone" in chosen
        self._want_card = "card" in chosen
        parts = [f"(?P<{name}>{pat})" for name, pat in _DIGIT_PATTERNS.items() if name in chosen]
        self._digits: re.Pattern[str] | None = re.compile("|".join(parts)) if parts else None

    # -- text ------------------------------------------------------------------------------
    def redact_text(self, text: str) -> tuple[str, Counts]:
        counts: Counts = {}
        return self.text_into(text, counts), counts

    def text_into(self, text: str, counts: Counts) -> str:
        if _TRIGGER.search(text) is None:
            return text
        if self._ipv6 and text.count(":") >= 2:
            text = _IPV6_RE.sub(lambda m: self._ipv6_sub(m, counts), text)
        if self._email and "@" in text:
            text = _EMAIL_RE.sub(lambda m: self._count("email", counts), text)
        if self._digits is not None and (_DIGIT_RUN.search(text) or _IBAN_START.search(text)):
            text = self._digits.sub(lambda m: self._digit_sub(m, counts), text)
        return text

    @staticmethod
    def _count(kind: str, counts: Counts) -> str:
        counts[kind] = counts.get(kind, 0) + 1
        return PLACEHOLDERS[kind]

    def _ipv6_sub(self, m: re.Match[str], counts: Counts) -> str:
        candidate = m.group(0)
        try:
            ipaddress.IPv6Address(candidate)
        except ValueError:
            return candidate
        return self._count("ip", counts)

    def _digit_sub(self, m: re.Match[str], counts: Counts) -> str:
        kind = m.lastgroup  # the outer named group closes last, so never "ssn_sep"
        text = m.group(0)
        if kind == "iban":
            return self._iban(text, counts)
        if kind == "card":
            return self._card(text, counts)
        if kind == "ip":
            try:
                ipaddress.IPv4Address(text)
            except ValueError:
                return text
            return self._count("ip", counts)
        if kind == "phone":
            n_digits = len(_NON_DIGIT.sub("", text))
            if not 7 <= n_digits <= 15:
                return text
            return self._count("phone", counts)
        return self._count("ssn", counts)

    def _iban(self, text: str, counts: Counts) -> str:
        country = text[:2].upper()
        length = IBAN_LENGTHS.get(country)
        compact = _NON_ALNUM.sub("", text).upper()
        if length is not None and len(compact) >= length:
            end = _cut_after(text, length, str.isalnum)
            if iban_valid(compact[:length]):
                return self._count("iban", counts) + self.text_into(text[end:], counts)
            # IBAN-shaped but failing its check: an account-like reference, not card digits.
            return text[:end] + self.text_into(text[end:], counts)
        # Not IBAN-shaped: keep the first characters and give the rest to the other patterns.
        return text[:4] + self.text_into(text[4:], counts)

    def _card(self, text: str, counts: Counts) -> str:
        # Try cut points at group boundaries only (and the end), longest first: every extra
        # cut point would be another 10% chance of a Luhn false positive.
        cuts: list[int] = []
        n = 0
        for i, ch in enumerate(text):
            if ch.isdigit():
                n += 1
                if (i + 1 == len(text) or not text[i + 1].isdigit()) and 13 <= n <= 19:
                    cuts.append(i + 1)
        for end in reversed(cuts):
            digits = _NON_DIGIT.sub("", text[:end])
            if luhn_valid(digits):
                return self._count("card", counts) + self.text_into(text[end:], counts)
        return text

    # -- nested values ---------------------------------------------------------------------
    def redact_value(self, value: Any) -> tuple[Any, Counts]:
        counts: Counts = {}
        return self.value_into(value, counts), counts

    def value_into(self, value: Any, counts: Counts, literals: dict[str, str] | None = None) -> Any:
        """Redact ``value``; ``literals`` collects {redacted number or bare-digit string: placeholder}."""
        return self._walk(value, counts, "", literals)

    def _walk(self, value: Any, counts: Counts, key: str, literals: dict[str, str] | None) -> Any:
        kind = type(value)  # exact types first: JSON only produces these, and it is the hot path
        if kind is str:
            if not value:
                return value
            out = self.text_into(value, counts)
            # "5552013344" under "phone": the text patterns need a "+" or groups to be sure.
            if (key and self._want_phone and out == value and key_kind(key) == PHONE_KEY
                    and _BARE_PHONE.fullmatch(value)):
                return self._literal("phone", value, counts, literals)
            return out
        if kind is dict:
            return {k: self._walk(v, counts, k, literals) for k, v in value.items()}
        if kind is list:
            return [self._walk(v, counts, key, literals) for v in value]
        if kind is int:
            # A phone has 7-15 digits, a card 13-19: anything outside cannot be either.
            return self._number(value, key, counts, literals) if 1_000_000 <= value < 10**19 else value
        if isinstance(value, str):
            return self.text_into(value, counts)
        if isinstance(value, dict):
            return {k: self._walk(v, counts, str(k), literals) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._walk(v, counts, key, literals) for v in value]
        return value  # floats, booleans, None; amounts in cents stay numbers

    def _number(self, value: int, key: str, counts: Counts, literals: dict[str, str] | None) -> Any:
        kind = key_kind(key) if key else PLAIN_KEY
        if kind == SAFE_KEY:
            return value
        digits = str(value)
        if kind == PHONE_KEY:
            return self._literal("phone", digits, counts, literals) if self._want_phone and len(digits) <= 15 else value
        if (self._want_card and 13 <= len(digits) <= 19 and luhn_valid(digits)
                and (kind == CARD_KEY or issuer_length_ok(digits))):
            return self._literal("card", digits, counts, literals)
        return value

    def _literal(self, kind: str, literal: str, counts: Counts, literals: dict[str, str] | None) -> str:
        if literals is not None:
            literals[literal] = PLACEHOLDERS[kind]
        return self._count(kind, counts)


@lru_cache(maxsize=64)
def redactor(types: frozenset[str] | None = None) -> Redactor:
    return Redactor(PII_TYPES if types is None else types)


def redact_text(text: str, types: frozenset[str] | None = None) -> tuple[str, Counts]:
    """Redact PII of ``types`` (all types when None) in one string."""
    return redactor(types).redact_text(text)


def redact_value(value: Any, types: frozenset[str] | None = None) -> tuple[Any, Counts]:
    """Redact PII in every string nested in dicts and lists; keys are left alone."""
    return redactor(types).redact_value(value)


def scrub_literals(text: str, literals: dict[str, str]) -> str:
    """Replace whole-number occurrences of ``literals`` (from ``value_into``) in ``text``."""
    for literal, placeholder in sorted(literals.items(), key=lambda item: -len(item[0])):
        text = re.sub(rf"(?<![0-9]){re.escape(literal)}(?![0-9])", placeholder, text)
    return text


def merge_counts(into: Counts, more: Counts) -> Counts:
    for kind, n in more.items():
        into[kind] = into.get(kind, 0) + n
    return into
