"""Value pools and slot helpers for the generated "acme" enterprise (pure, no Django).

Ids are shaped like real back-office ids (``ORD-48213``, ``PAY-482913``, ``TRK-QXMB4821``)
and never like phone, card or social-security numbers, so PII redaction can be tested on
the same texts without false positives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from random import Random

FIRST_NAMES = (
    "Maria", "James", "Aisha", "Chen", "Olga", "Diego", "Priya", "Tom", "Fatima", "Lukas",
    "Hannah", "Kwame", "Sofia", "Ravi", "Emma", "Mateo", "Yuki", "Noah", "Leila", "Ivan",
    "Grace", "Omar", "Chloe", "Arjun", "Zoe", "Felix", "Nadia", "Samuel", "Ines", "Tariq",
)
LAST_NAMES = (
    "Gonzalez", "Smith", "Okafor", "Wei", "Petrova", "Ramirez", "Sharma", "Becker", "Haddad",
    "Novak", "Johnson", "Mensah", "Rossi", "Patel", "Dubois", "Silva", "Tanaka", "Brown",
    "Karimi", "Ivanov", "Kim", "Nguyen", "Murphy", "Costa", "Fischer", "Larsen", "Moreau",
)
EMAIL_DOMAINS = ("example.com", "example.org", "mail.example.net", "corp.example.com")

# (sku, what users call it, category)
PRODUCTS = (
    ("DSK-1040", "standing desk", "desks"),
    ("DSK-2210", "oak writing desk", "desks"),
    ("DSK-2275", "corner desk", "desks"),
    ("CHR-3305", "ergonomic chair", "chairs"),
    ("CHR-3350", "mesh task chair", "chairs"),
    ("CHR-3390", "drafting stool", "chairs"),
    ("MON-2701", "27-inch 4K monitor", "monitors"),
    ("MON-3402", "34-inch ultrawide monitor", "monitors"),
    ("MON-2405", "24-inch office monitor", "monitors"),
    ("KBD-1187", "mechanical keyboard", "accessories"),
    ("ACC-5512", "monitor arm", "accessories"),
    ("ACC-5530", "laptop stand", "accessories"),
    ("ACC-5561", "cable tray", "accessories"),
    ("LMP-0420", "LED desk lamp", "lighting"),
    ("LMP-0455", "floor lamp", "lighting"),
)
CATEGORIES = ("desks", "chairs", "monitors", "accessories", "lighting")

# API code -> what people call the warehouse
WAREHOUSES = {"SEA1": "Seattle", "ATL2": "Atlanta", "RNO3": "Reno"}

CURRENCIES = ("USD", "EUR", "GBP", "CAD")

# The fulfilment states the orders API knows, and what people say instead.
FULFILLMENT_WORDS = {
    "awaiting_payment": ("unpaid", "waiting for payment", "not paid yet"),
    "awaiting_shipment": ("pending", "not shipped yet", "waiting to ship"),
    "in_transit": ("shipped", "on the way", "out for delivery"),
    "delivered": ("delivered", "arrived", "received"),
    "cancelled": ("cancelled", "canceled", "called off"),
    "returned": ("returned", "sent back", "back with us"),
}
PAYMENT_STATUS_WORDS = {
    "pending": ("waiting", "unfinished", "pending"),
    "processing": ("in-progress", "half-done", "processing"),
    "completed": ("successful", "cleared", "completed"),
    "failed": ("bounced", "declined", "failed"),
    "refunded": ("refunded", "paid-back", "reversed"),
}
REFUND_REASONS = {
    "requested_by_customer": ("the customer asked for it", "customer changed their mind", "customer request"),
    "duplicate": ("they were charged twice", "it was a double charge", "duplicate charge"),
    "fraudulent": ("it looks fraudulent", "the card was stolen", "fraud"),
    "damaged_goods": ("the item arrived broken", "the goods were damaged", "damaged in transit"),
}
CANCEL_REASONS = {
    "customer_request": ("the customer asked", "customer changed their mind", "at the customer's request"),
    "out_of_stock": ("we're out of stock", "the item is out of stock", "no stock left"),
    "payment_failed": ("the payment failed", "the card was declined", "payment bounced"),
    "suspected_fraud": ("it looks like fraud", "suspected fraud", "the order looks fraudulent"),
}
ADJUST_REASONS = {
    "cycle_count": ("after the cycle count", "the stock count was off", "counting correction"),
    "damaged": ("they were damaged", "broken units", "water damage"),
    "received_shipment": ("a shipment arrived", "we received a delivery", "new stock came in"),
    "customer_return": ("customer returns", "returned units", "items came back from customers"),
}
LOCK_REASONS = {
    "suspected_fraud": ("suspected fraud", "it looks like account takeover", "fraud alert"),
    "customer_request": ("the customer asked us to", "at the customer's request", "customer wants it frozen"),
    "chargeback_abuse": ("repeated chargebacks", "chargeback abuse", "too many disputes"),
}


@dataclass(frozen=True)
class Person:
    first: str
    last: str
    customer_id: str
    email: str
    phone_text: str  # as a person writes it
    phone_e164: str  # as the API wants it

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"


def person(r: Random) -> Person:
    first, last = r.choice(FIRST_NAMES), r.choice(LAST_NAMES)
    style = r.randrange(4)
    local = {0: f"{first}.{last}", 1: f"{first[0]}{last}", 2: f"{first}{r.randint(1, 99)}",
             3: f"{last}.{first[0]}"}[style]
    email = f"{local.lower()}@{r.choice(EMAIL_DOMAINS)}"
    area, mid, end = r.choice((415, 212, 646, 312, 617, 206, 503)), 555, r.randint(100, 199)
    phone_text = r.choice((f"({area}) {mid}-0{end}", f"{area}-{mid}-0{end}", f"+1 {area} {mid} 0{end}",
                           f"{area}.{mid}.0{end}"))
    return Person(first, last, customer_id(r), email, phone_text, f"+1{area}{mid}0{end}")


def customer_id(r: Random) -> str:
    return f"CUS-{r.randint(10000, 99999)}"


def order_id(r: Random) -> str:
    return f"ORD-{r.randint(10000, 99999)}"


def payment_id(r: Random) -> str:
    return f"PAY-{r.randint(100000, 999999)}"


def invoice_id(r: Random) -> str:
    return f"INV-{r.randint(1000, 99999)}"


def tracking_number(r: Random) -> str:
    letters = "".join(r.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(4))
    return f"TRK-{letters}{r.randint(1000, 9999)}"


@dataclass(frozen=True)
class Money:
    text: str  # as a person writes it
    cents: int
    currency: str

    @property
    def dollars(self) -> float | int:
        """The mistaken value a model sends when it forgets the cents rule."""
        whole, frac = divmod(self.cents, 100)
        return whole if frac == 0 else self.cents / 100


def money(r: Random, *, currency: str | None = None, low: int = 5, high: int = 1500) -> Money:
    cur = currency or r.choices(CURRENCIES, weights=(70, 15, 10, 5))[0]
    whole = r.randint(low, high)
    cents_part = r.choice((0, 0, 0, 50, 99, 25, 95, 49))
    cents = whole * 100 + cents_part
    amount = f"{whole:,}" if cents_part == 0 and r.random() < 0.5 else f"{whole:,}.{cents_part:02d}"
    texts = {
        "USD": (f"${amount}", f"{amount} dollars", f"USD {amount}", f"${amount}"),
        "EUR": (f"€{amount}", f"{amount} euros", f"EUR {amount}"),
        "GBP": (f"£{amount}", f"{amount} pounds", f"GBP {amount}"),
        "CAD": (f"CA${amount}", f"{amount} Canadian dollars", f"CAD {amount}"),
    }[cur]
    return Money(r.choice(texts), cents, cur)


def product(r: Random, category: str | None = None) -> tuple[str, str, str]:
    pool = [p for p in PRODUCTS if category is None or p[2] == category]
    return r.choice(pool)


def warehouse(r: Random) -> tuple[str, str]:
    code = r.choice(sorted(WAREHOUSES))
    return code, WAREHOUSES[code]


def word_for(r: Random, table: Mapping[str, tuple[str, ...]], value: str | None = None) -> tuple[str, str]:
    """(API value, a word a person uses for it)."""
    api_value = value or r.choice(sorted(table))
    return api_value, r.choice(table[api_value])
