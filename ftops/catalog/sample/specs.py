"""The acme enterprise: services, tool schemas and the phrasings people use for each tool.

Each ``ToolSpec`` knows how to draw a fresh case (slot values) and holds several phrasing
templates. A template names which parameters its wording supplies, so optional parameters
appear in the expected call exactly when the text mentions them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from random import Random
from typing import Any

from ftops.catalog.sample import pools as p


@dataclass(frozen=True)
class Phrase:
    text: str  # str.format template over the case's slots
    args: dict[str, str]  # parameter -> slot holding its value


def P(text: str, *params: str, **renamed: str) -> Phrase:  # reads like a table row
    args = {name: name for name in params}
    args.update(renamed)
    return Phrase(text, args)


@dataclass
class Case:
    slots: dict[str, Any]
    # slot -> every acceptable value ("" = may be omitted), when more than the slot's value is fine
    acceptable: dict[str, list[Any]] = field(default_factory=dict)


Example = dict[str, Any]


@dataclass(frozen=True)
class ToolSpec:
    service: str
    name: str
    description: str
    parameters: dict[str, Any]
    make: Callable[[Random], Case]
    phrases: tuple[Phrase, ...]
    explanation: str
    mistakes: Callable[[Case, dict[str, Any]], list[dict[str, Any]]]
    vocabulary: dict[str, Any]
    sequences: tuple[Callable[[Random, int], Example], ...] = ()
    edges: tuple[Callable[[Random, int], Example], ...] = ()
    parallel: Callable[[Random, int], Example] | None = None
    confusable: tuple[str, ...] = ()
    user_words: dict[str, str] = field(default_factory=dict)  # enum parameter -> slot with what people say


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    display_name: str
    version: str
    description: str
    vocabulary: dict[str, Any]
    abstain: tuple[str, ...]  # requests no tool of the service can serve
    system_prompt: str


# ---------------------------------------------------------------- shared schema pieces

CUSTOMER_ID = {"type": "string", "pattern": r"^CUS-\d{5}$",
               "description": "Customer id, e.g. CUS-48213. Never a name: names are not unique."}
ORDER_ID = {"type": "string", "pattern": r"^ORD-\d{5}$", "description": "Order id, e.g. ORD-48213"}
PAYMENT_ID = {"type": "string", "pattern": r"^PAY-\d{6}$", "description": "Payment id, e.g. PAY-482913"}
SKU = {"type": "string", "pattern": r"^[A-Z]{3}-\d{4}$",
       "description": "Stock keeping unit, e.g. DSK-1040. Product names are not SKUs."}
WAREHOUSE = {"type": "string", "enum": sorted(p.WAREHOUSES),
             "description": "Warehouse code: SEA1 (Seattle), ATL2 (Atlanta), RNO3 (Reno)"}
AMOUNT_CENTS = {"type": "integer", "minimum": 1,
                "description": "Amount in the smallest currency unit (cents): $49.99 is 4999"}
FULFILLMENT_STATE = {
    "type": "string",
    "enum": list(p.FULFILLMENT_WORDS),
    "description": "Fulfillment state. 'pending' in user speech means awaiting_shipment; 'shipped' means in_transit.",
}

CENTS_RULE = {"rule": "ALL amounts are integers in cents, never dollars",
              "examples": {"$10": 1000, "$1.50": 150, "$0.99": 99, "$1,249.00": 124900}}
CUSTOMER_RULE = {"acceptable": ["customer_id", "email"], "never_use_alone": ["name"],
                 "reason": "Names are not unique; confirm with a customer id or an email address"}


def obj(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def optional_default(value: Any) -> list[Any]:
    """The stated value or leaving the parameter out are both right (it is the default)."""
    return [value, ""]


def mistake(wrong: dict[str, Any], reason: str) -> dict[str, Any]:
    return {"wrong_params": wrong, "reason": reason}


def polite(r: Random, text: str) -> str:
    """Vary the wrapping people put around a request, without changing what it asks."""
    prefix = r.choice(("", "", "", "", "Hi, ", "Quick one: ", "Hey - ", "Please help: "))
    suffix = r.choice(("", "", "", "", " Thanks!", " thx", " asap please", ". Cheers"))
    body = text[0].lower() + text[1:] if prefix and text[:1].isupper() and not text[1:2].isupper() else text
    if suffix.startswith(".") and body[-1:] in ".?!":
        suffix = suffix[1:]
    return f"{prefix}{body}{suffix}"


def _step(tool: str, parameters: dict[str, Any], result: dict[str, Any] | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {"tool": tool, "parameters": parameters}
    if result is not None:
        step["result"] = result
    return step


def _ask(scenario: str, query: str, fields: list[str], question: str) -> Example:
    return {"scenario": scenario, "user_query": query,
            "correct_behavior": {"action": "ask_for_details", "required_fields": fields, "question": question}}


def _clarify(scenario: str, query: str, question: str, reason: str) -> Example:
    return {"scenario": scenario, "user_query": query,
            "correct_behavior": {"action": "clarify", "question": question, "reason": reason}}


# ---------------------------------------------------------------- payments

def _create_payment_case(r: Random) -> Case:
    person, m = p.person(r), p.money(r)
    note = r.choice(("deposit for the spring order", "late fee", "balance due", "installation service",
                     "annual maintenance plan", "expedited shipping"))
    slots = {"customer_id": person.customer_id, "name": person.first, "email": person.email, "money": m.text,
             "amount": m.cents, "dollars": m.dollars, "currency": m.currency, "invoice_id": p.invoice_id(r),
             "description": note}
    acceptable = {"currency": optional_default("USD")} if m.currency == "USD" else {}
    return Case(slots, acceptable)


def _create_payment_mistakes(case: Case, args: dict[str, Any]) -> list[dict[str, Any]]:
    s = case.slots
    out = [mistake({"amount": s["dollars"]}, f"amount is in cents: {s['money']} is {s['amount']}")]
    if "invoice_id" in args:
        out.append(mistake({"invoice": s["invoice_id"]}, "the parameter is 'invoice_id', not 'invoice'"))
    else:
        out.append(mistake({"customer": s["customer_id"]}, "the parameter is 'customer_id', not 'customer'"))
    if s["currency"] != "USD":
        out.append(mistake({"currency": "USD"}, f"the amount is in {s['currency']}; USD is only the default"))
    return out


def _retry_payment_sequence(r: Random, i: int) -> Example:
    cid = p.customer_id(r)
    query = (f"Retry the last failed payment for {cid}",
             f"{cid}'s most recent payment bounced, charge it again",
             f"Re-run the declined charge for customer {cid}",
             f"The card of {cid} was declined last time; please try that payment once more")[i % 4]
    m = p.money(r)
    return {
        "user_query": query,
        "correct_sequence": [
            _step("list_customer_payments", {"customer_id": cid, "status": "failed", "limit": 1},
                  {"payment_id": p.payment_id(r), "amount": m.cents, "currency": m.currency,
                   "invoice_id": p.invoice_id(r), "status": "failed"}),
            _step("create_payment", {"amount": "{prev.amount}", "currency": "{prev.currency}",
                                     "customer_id": cid, "invoice_id": "{prev.invoice_id}"}),
        ],
        "explanation": "Find the failed payment first, then charge the same amount (already in cents) again.",
    }


def _create_payment_clarify(r: Random, i: int) -> Example:
    cid = p.customer_id(r)
    n = r.choice(("twenty", "fifteen", "fifty", "thirty"))
    query = (f"Charge {cid} {n}", f"Bill customer {cid} {n} for the usual", f"take {n} off {cid}'s card")[i % 3]
    return _clarify("Ambiguous amount", query,
                    f"Just to confirm: should I charge {n} US dollars, and in which currency if not USD?",
                    "The amount has no unit or currency; financial transactions need explicit confirmation")


def _create_payment_ask(r: Random, i: int) -> Example:
    person, m = p.person(r), p.money(r, currency="USD")
    if i % 3 == 0:
        return _ask("Missing required information", r.choice(("Create a payment", "I need to take a payment",
                                                               "Charge a customer")),
                    ["amount", "customer_id"], "Sure - what's the amount, and which customer (id or email)?")
    if i % 3 == 1:
        return _ask("Customer named only by name", f"Charge {person.name} {m.text}", ["customer_id"],
                    f"Names aren't unique - what is {person.first}'s customer id or email address?")
    return _ask("Missing amount", f"Take a payment from {person.customer_id}", ["amount"],
                f"How much should I charge {person.customer_id}, and in which currency?")


def _refund_case(r: Random) -> Case:
    m = p.money(r, currency="USD", high=400)
    reason, word = p.word_for(r, p.REFUND_REASONS)
    cid = p.customer_id(r)
    return Case({"payment_id": p.payment_id(r), "money": m.text, "amount": m.cents, "dollars": m.dollars,
                 "reason": reason, "reason_word": word, "customer_id": cid})


def _refund_mistakes(case: Case, args: dict[str, Any]) -> list[dict[str, Any]]:
    s = case.slots
    out = [mistake({"transaction_id": s["payment_id"]}, "the parameter is 'payment_id'")]
    if "amount" in args:
        out.append(mistake({"amount": s["dollars"]}, f"refund amounts are cents too: {s['money']} is {s['amount']}"))
    else:
        out.append(mistake({"amount": 0}, "leave 'amount' out for a full refund"))
    if s["reason_word"] != s["reason"]:
        out.append(mistake({"reason": s["reason_word"]}, f"reason must be one of the enum values: '{s['reason']}'"))
    return out


def _refund_sequence(r: Random, i: int) -> Example:
    cid = p.customer_id(r)
    reason, word = p.word_for(r, p.REFUND_REASONS)
    query = (f"Refund the most recent payment of {cid}, {word}",
             f"{cid} wants their last payment back - {word}",
             f"Reverse {cid}'s latest charge because {word}",
             f"Find the newest payment for customer {cid} and refund it ({word})")[i % 4]
    m = p.money(r, currency="USD", high=400)
    return {
        "user_query": query,
        "correct_sequence": [
            _step("list_customer_payments", {"customer_id": cid, "limit": 1},
                  {"payment_id": p.payment_id(r), "amount": m.cents, "currency": "USD", "status": "completed"}),
            _step("refund_payment", {"payment_id": "{prev.payment_id}", "reason": reason}),
        ],
        "explanation": "Resolve the payment id from the customer's payments, then refund it in full.",
    }


def _refund_ask(r: Random, i: int) -> Example:
    pid = p.payment_id(r)
    if i % 2 == 0:
        return _ask("Missing payment and reason", r.choice(("I need to refund a payment", "Issue a refund",
                                                              "Refund the customer")),
                    ["payment_id", "reason"], "Which payment (PAY-...) should I refund, and why?")
    return _ask("Missing reason", f"Refund {pid}", ["reason"],
                f"Why is {pid} being refunded: requested by the customer, duplicate, fraudulent or damaged goods?")


def _refund_clarify(r: Random, i: int) -> Example:
    pid = p.payment_id(r)
    query = (f"Refund {pid} minus the shipping, the item arrived broken",
             f"Give back part of {pid}, customer complained")[i % 2]
    return _clarify("Partial amount unknown", query, f"How much of {pid} should I refund (the exact amount)?",
                    "A partial refund needs an exact amount; guessing would move the wrong money")


def _payment_status_case(r: Random) -> Case:
    return Case({"payment_id": p.payment_id(r), "customer_id": p.customer_id(r)})


def _payment_status_parallel(r: Random, i: int) -> Example:
    a, b = p.payment_id(r), p.payment_id(r)
    query = (f"Check the status of {a} and {b}", f"Did {a} and {b} both go through?",
             f"Status of payments {a} and {b}, please")[i % 3]
    return {"user_query": query,
            "correct_calls": [{"tool": "get_payment_status", "parameters": {"payment_id": a}},
                              {"tool": "get_payment_status", "parameters": {"payment_id": b}}],
            "explanation": "Two independent lookups: call the tool once per payment, in parallel."}


def _payment_status_ask(r: Random, i: int) -> Example:
    person = p.person(r)
    query = ("Did my payment go through?", f"Check the status of {person.first}'s payment",
             "Has the payment cleared?")[i % 3]
    return _ask("Missing payment id", query, ["payment_id"], "Which payment? Please give me the payment id (PAY-...).")


def _list_payments_case(r: Random) -> Case:
    status, word = p.word_for(r, p.PAYMENT_STATUS_WORDS)
    person = p.person(r)
    return Case({"customer_id": person.customer_id, "name": person.first, "status": status, "status_word": word,
                 "limit": r.choice((3, 5, 10, 20))})


def _list_payments_ask(r: Random, i: int) -> Example:
    person = p.person(r)
    query = ("Show me the failed payments", f"List {person.name}'s payments", "What payments bounced this week?")[i % 3]
    return _ask("No customer given", query, ["customer_id"],
                "Which customer? Payments are listed per customer id (CUS-...) - an email works too.")


# ---------------------------------------------------------------- orders

def _order_case(r: Random) -> Case:
    person = p.person(r)
    state, word = p.word_for(r, p.FULFILLMENT_WORDS)
    return Case({"order_id": p.order_id(r), "customer_id": person.customer_id, "name": person.first,
                 "email": person.email, "fulfillment_state": state, "state_word": word,
                 "limit": r.choice((3, 5, 10)), "yes": True, "no": False, "tracking_number": p.tracking_number(r)},
                {"yes": [True]})


def _get_order_parallel(r: Random, i: int) -> Example:
    a, b = p.order_id(r), p.order_id(r)
    query = (f"Compare orders {a} and {b}", f"Pull up {a} and {b}", f"What's the state of {a} and of {b}?")[i % 3]
    return {"user_query": query,
            "correct_calls": [{"tool": "get_order", "parameters": {"order_id": a}},
                              {"tool": "get_order", "parameters": {"order_id": b}}],
            "explanation": "One get_order per order id; the calls are independent."}


def _get_order_ask(r: Random, i: int) -> Example:
    person = p.person(r)
    if i % 2 == 0:
        return _ask("Missing order id", r.choice(("Where is my order?", "Look up the order", "Check an order for me")),
                    ["order_id"], "Which order? Please give me the order number (ORD-...).")
    return _ask("Order named by customer name", f"Look up {person.name}'s order", ["order_id"],
                "Which order? Give me the order number, or the customer's id or email so I can find it.")


def _list_orders_ask(r: Random, i: int) -> Example:
    query = ("Show me all pending orders", "List the shipped orders", "Which orders are on the way?")[i % 3]
    return _ask("No customer given", query, ["customer_id"],
                "Orders are listed per customer - which customer id (CUS-...) should I look at?")


def _list_orders_clarify(r: Random, i: int) -> Example:
    cid = p.customer_id(r)
    query = (f"Show {cid}'s open orders", f"What orders does {cid} still have going?",
             f"List {cid}'s active orders")[i % 3]
    return _clarify("Ambiguous state", query,
                    "By open, do you mean unpaid (awaiting_payment), not yet shipped (awaiting_shipment) or on "
                    "the way (in_transit) - or all three?",
                    "'open' maps to several fulfillment states")


def _latest_order_ask(r: Random, i: int) -> Example:
    person = p.person(r)
    query = (f"What did {person.first} order last?", f"Latest order for {person.name}?",
             "What's my most recent order?")[i % 3]
    return _ask("Customer named only by name", query, ["customer_id"],
                "Which customer exactly? Please give the customer id or email - names aren't unique.")


def _update_state_case(r: Random) -> Case:
    case = _order_case(r)
    state, word = p.word_for(r, p.FULFILLMENT_WORDS,
                             r.choice(("awaiting_shipment", "in_transit", "delivered", "returned")))
    case.slots.update({"fulfillment_state": state, "state_word": word, "in_transit": "in_transit",
                       "delivered": "delivered"})
    return case


def _ship_latest_sequence(r: Random, i: int) -> Example:
    cid, trk = p.customer_id(r), p.tracking_number(r)
    query = (f"Mark {cid}'s latest order as shipped with tracking {trk}",
             f"The newest order of {cid} went out today, tracking number {trk}",
             f"Ship {cid}'s most recent order - tracking {trk}")[i % 3]
    return {
        "user_query": query,
        "correct_sequence": [
            _step("get_latest_order", {"customer_id": cid},
                  {"order_id": p.order_id(r), "fulfillment_state": "awaiting_shipment"}),
            _step("update_fulfillment_state", {"order_id": "{prev.order_id}", "fulfillment_state": "in_transit",
                                               "tracking_number": trk}),
        ],
        "explanation": "Resolve the order first; 'shipped' is the in_transit state.",
    }


def _update_state_ask(r: Random, i: int) -> Example:
    oid = p.order_id(r)
    if i % 2 == 0:
        return _ask("Missing order id", r.choice(("Mark the order as shipped", "Set the order to delivered")),
                    ["order_id"], "Which order (ORD-...)?")
    return _ask("Missing state", f"Update {oid}", ["fulfillment_state"],
                f"What is the new state of {oid}: awaiting shipment, in transit, delivered or returned?")


def _update_state_clarify(r: Random, i: int) -> Example:
    oid = p.order_id(r)
    query = (f"Mark {oid} as done", f"{oid} is finished", f"close out {oid}")[i % 3]
    return _clarify("Ambiguous target state", query,
                    f"Do you mean {oid} was delivered, or should it be cancelled?",
                    "'done' could mean delivered or cancelled; they trigger different customer emails")


def _cancel_case(r: Random) -> Case:
    case = _order_case(r)
    reason, word = p.word_for(r, p.CANCEL_REASONS)
    case.slots.update({"reason": reason, "reason_word": word})
    case.acceptable["yes"] = optional_default(True)
    return case


def _cancel_latest_sequence(r: Random, i: int) -> Example:
    cid = p.customer_id(r)
    reason, word = p.word_for(r, p.CANCEL_REASONS)
    query = (f"Cancel {cid}'s most recent order, {word}",
             f"Find the latest order of {cid} and cancel it - {word}",
             f"{cid}'s newest order has to go: {word}")[i % 3]
    return {
        "user_query": query,
        "correct_sequence": [
            _step("get_latest_order", {"customer_id": cid},
                  {"order_id": p.order_id(r), "fulfillment_state": "awaiting_shipment"}),
            _step("cancel_order", {"order_id": "{prev.order_id}", "reason": reason}),
        ],
        "explanation": "Look the order up by customer id, then cancel it with an enum reason.",
    }


def _cancel_ask(r: Random, i: int) -> Example:
    oid, person = p.order_id(r), p.person(r)
    if i % 3 == 0:
        return _ask("Missing order and reason", "Cancel the order", ["order_id", "reason"],
                    "Which order (ORD-...) should I cancel, and why?")
    if i % 3 == 1:
        return _ask("Missing reason", f"Cancel {oid}", ["reason"],
                    f"Why is {oid} cancelled: customer request, out of stock, payment failed or suspected fraud?")
    return _ask("Customer named only by name", f"Cancel {person.name}'s order", ["order_id", "reason"],
                "Which order is it (ORD-... or the customer's id/email), and what's the reason?")


# ---------------------------------------------------------------- inventory

def _stock_case(r: Random) -> Case:
    sku, name, category = p.product(r)
    code, city = p.warehouse(r)
    n = r.randint(2, 40)
    minus_reason, minus_word = p.word_for(r, p.ADJUST_REASONS, r.choice(("damaged", "cycle_count")))
    plus_reason, plus_word = p.word_for(r, p.ADJUST_REASONS, r.choice(("received_shipment", "customer_return")))
    qty = r.randint(1, 12)
    qty_word = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}.get(qty, str(qty))
    return Case({"sku": sku, "product": name, "category": category, "warehouse": code, "city": city,
                 "order_id": p.order_id(r), "quantity": qty, "qty_word": qty_word, "n": n,
                 "delta_minus": -n, "delta_plus": n, "reason_minus": minus_reason, "minus_word": minus_word,
                 "reason_plus": plus_reason, "plus_word": plus_word, "query": name, "yes": True})


def _stock_parallel(r: Random, i: int) -> Example:
    (a, _, _), (b, _, _) = r.sample(p.PRODUCTS, 2)
    query = (f"Check stock for {a} and {b}", f"How many {a} and {b} do we have?",
             f"Inventory levels of {a} and {b} please")[i % 3]
    return {"user_query": query,
            "correct_calls": [{"tool": "check_stock", "parameters": {"sku": a}},
                              {"tool": "check_stock", "parameters": {"sku": b}}],
            "explanation": "One check_stock per SKU."}


def _stock_by_name_sequence(r: Random, i: int) -> Example:
    sku, name, _ = p.product(r)
    code, city = p.warehouse(r)
    query = (f"Is the {name} in stock in {city}?", f"Do we have any {name}s left at the {city} warehouse?",
             f"How many {name}s are in {city}?")[i % 3]
    return {
        "user_query": query,
        "correct_sequence": [
            _step("search_products", {"query": name}, {"sku": sku, "name": name}),
            _step("check_stock", {"sku": "{prev.sku}", "warehouse": code}),
        ],
        "explanation": "Product names are not SKUs: search first, then check stock with the warehouse code.",
    }


def _stock_clarify(r: Random, i: int) -> Example:
    category = r.choice(("desks", "chairs", "monitors"))
    noun = {"desks": "desk", "chairs": "chair", "monitors": "monitor"}[category]
    options = ", ".join(f"{name} ({sku})" for sku, name, c in p.PRODUCTS if c == category)
    query = (f"Do we have the {noun} in stock?", f"How many {noun}s are left?", f"check stock on the {noun}")[i % 3]
    return _clarify("Ambiguous product", query, f"Which {noun}: {options}?",
                    f"Several {category} match; stock is per SKU")


def _stock_ask(r: Random, i: int) -> Example:
    return _ask("Missing SKU", ("Check the stock", "How much inventory do we have?", "Is it in stock?")[i % 3],
                ["sku"], "Which product? Give me the SKU (e.g. DSK-1040) or the product name.")


def _reserve_sequence(r: Random, i: int) -> Example:
    sku, name, _ = p.product(r)
    oid, qty = p.order_id(r), r.randint(1, 6)
    query = (f"Reserve {qty} {name}s for {oid}", f"Hold {qty} of the {name} for order {oid}",
             f"{oid} needs {qty} {name}s set aside")[i % 3]
    return {
        "user_query": query,
        "correct_sequence": [
            _step("search_products", {"query": name}, {"sku": sku, "name": name}),
            _step("reserve_stock", {"sku": "{prev.sku}", "quantity": qty, "order_id": oid}),
        ],
        "explanation": "Resolve the SKU from the product name, then reserve.",
    }


def _reserve_ask(r: Random, i: int) -> Example:
    sku, oid = p.product(r)[0], p.order_id(r)
    if i % 2 == 0:
        return _ask("Missing quantity and order", f"Reserve {sku}", ["quantity", "order_id"],
                    f"How many {sku} should I reserve, and for which order (ORD-...)?")
    return _ask("Missing SKU", f"Reserve 3 units for {oid}", ["sku"], f"Which product should I reserve for {oid}?")


def _reserve_clarify(r: Random, i: int) -> Example:
    sku, oid = p.product(r)[0], p.order_id(r)
    query = (f"Reserve a few {sku} for {oid}", f"put some {sku} aside for {oid}")[i % 2]
    return _clarify("Vague quantity", query, f"How many units of {sku} exactly?",
                    "A reservation needs an exact quantity")


def _adjust_ask(r: Random, i: int) -> Example:
    sku = p.product(r)[0]
    if i % 2 == 0:
        return _ask("Missing details", f"Fix the count for {sku}", ["warehouse", "delta", "reason"],
                    f"Which warehouse, by how many units should {sku} change, and why?")
    return _ask("Missing everything", "Adjust the inventory", ["sku", "warehouse", "delta", "reason"],
                "Which SKU and warehouse, by how much, and for what reason?")


def _search_ask(r: Random, i: int) -> Example:
    return _ask("No search terms", ("Search the catalog", "Find me a product", "look something up in products")[i % 3],
                ["query"], "What should I search for?")


# ---------------------------------------------------------------- customers

def _customer_case(r: Random) -> Case:
    person = p.person(r)
    reason, word = p.word_for(r, p.LOCK_REASONS)
    return Case({"customer_id": person.customer_id, "name": person.name, "first": person.first,
                 "email": person.email, "phone_text": person.phone_text, "phone": person.phone_e164,
                 "reason": reason, "reason_word": word, "sms": "sms", "by_email": "email"},
                {"by_email": optional_default("email")})


def _get_customer_parallel(r: Random, i: int) -> Example:
    a, b = p.customer_id(r), p.customer_id(r)
    query = (f"Look up {a} and {b}", f"Pull up the accounts {a} and {b}", f"Who are {a} and {b}?")[i % 3]
    return {"user_query": query,
            "correct_calls": [{"tool": "get_customer", "parameters": {"customer_id": a}},
                              {"tool": "get_customer", "parameters": {"customer_id": b}}],
            "explanation": "One lookup per customer id."}


def _name_only_ask(tool_hint: str, field: str = "customer_id") -> Callable[[Random, int], Example]:
    def make(r: Random, i: int) -> Example:
        person = p.person(r)
        query = (f"{tool_hint} {person.name}", f"{tool_hint} {person.first} please",
                 f"Can you {tool_hint[0].lower()}{tool_hint[1:]} {person.name}?")[i % 3]
        wanted = "customer id or email address" if field == "customer_id" else "email address"
        return _ask("Customer named only by name", query, [field],
                    f"Names aren't unique - what's {person.first}'s {wanted}?")
    return make


def _update_contact_sequence(r: Random, i: int) -> Example:
    person, other = p.person(r), p.person(r)
    query = (f"Change the phone number of the customer with email {person.email} to {other.phone_text}",
             f"{person.email} has a new phone: {other.phone_text}",
             f"Update the number on {person.email}'s account to {other.phone_text}")[i % 3]
    return {
        "user_query": query,
        "correct_sequence": [
            _step("find_customer_by_email", {"email": person.email}, {"customer_id": person.customer_id}),
            _step("update_customer_contact", {"customer_id": "{prev.customer_id}", "phone": other.phone_e164}),
        ],
        "explanation": "Resolve the customer id from the email, then update; phones go in E.164 form.",
    }


def _update_contact_ask(r: Random, i: int) -> Example:
    person = p.person(r)
    if i % 2 == 0:
        return _clarify("Missing new value", f"Update the phone number for {person.customer_id}",
                        f"What's the new phone number for {person.customer_id}?",
                        "The new number is not in the request; never invent contact details")
    return _ask("Customer named only by name", f"Change {person.name}'s email to {person.email}", ["customer_id"],
                f"Which {person.first}? Please give the customer id (CUS-...) - names aren't unique.")


def _email_then(tool: str, extra: Callable[[Random], tuple[str, dict[str, Any]]]) -> Callable[[Random, int], Example]:
    def make(r: Random, i: int) -> Example:
        person = p.person(r)
        words, params = extra(r)
        query = (f"{tool.replace('_', ' ').capitalize()} for {person.email}{words}",
                 f"The customer {person.email} needs this: {tool.replace('_', ' ')}{words}",
                 f"Please {tool.replace('_', ' ')} on the account with email {person.email}{words}")[i % 3]
        return {
            "user_query": query,
            "correct_sequence": [
                _step("find_customer_by_email", {"email": person.email}, {"customer_id": person.customer_id}),
                _step(tool, {"customer_id": "{prev.customer_id}", **params}),
            ],
            "explanation": f"{tool} takes a customer id: look it up from the email first.",
        }
    return make


def _lock_extra(r: Random) -> tuple[str, dict[str, Any]]:
    reason, word = p.word_for(r, p.LOCK_REASONS)
    return f" - {word}", {"reason": reason}


def _lock_ask(r: Random, i: int) -> Example:
    cid = p.customer_id(r)
    if i % 2 == 0:
        return _ask("Missing reason", f"Lock {cid}", ["reason"],
                    f"Why should {cid} be locked: suspected fraud, customer request or chargeback abuse?")
    return _ask("Missing customer and reason", "Lock the account", ["customer_id", "reason"],
                "Which customer (id or email), and why should the account be locked?")


# ---------------------------------------------------------------- the enterprise

SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "payments", "Payments", "1.2.0", "Card payments, refunds and payment history.",
        {"amounts": CENTS_RULE, "currencies": {"rule": "ISO 4217 codes", "our_values": list(p.CURRENCIES),
                                               "default": "USD"},
         "payment_states": {"our_values": list(p.PAYMENT_STATUS_WORDS),
                            "user_might_say": {k: list(v) for k, v in p.PAYMENT_STATUS_WORDS.items()}},
         "customer_identification": CUSTOMER_RULE},
        ("What's today's EUR to USD exchange rate?", "Change our card processor's API key",
         "Write a polite email reminding {name} about an overdue invoice", "How do I open a new merchant account?",
         "Generate the quarterly revenue report", "What's the weather in {city}?",
         "Raise the credit limit of {customer_id} to $5,000", "Which bank does {name} use?"),
        "You are Acme's payments assistant. Amounts are integers in cents. Use the tools when they fit.",
    ),
    ServiceSpec(
        "orders", "Orders", "3.4.1", "Order lookup, fulfillment states and cancellations.",
        {"fulfillment_states": {"our_values": list(p.FULFILLMENT_WORDS),
                                "user_might_say": {k: list(v) for k, v in p.FULFILLMENT_WORDS.items()},
                                "rule": "'pending' means awaiting_shipment, 'shipped' means in_transit"},
         "order_ids": {"format": "ORD-#####", "example": "ORD-48213"},
         "customer_identification": CUSTOMER_RULE},
        ("Print a FedEx shipping label for {order_id}", "What's our return policy?",
         "Schedule a call with the logistics team tomorrow", "Translate this order note to Spanish",
         "Who won the game last night?", "Change the delivery address on {order_id} to my office",
         "Split {order_id} into two shipments", "Which courier is fastest to {city}?"),
        "You are Acme's order desk assistant. Use the tools when they fit.",
    ),
    ServiceSpec(
        "inventory", "Inventory", "2.0.3", "Stock levels, reservations and the product catalog.",
        {"skus": {"format": "AAA-####", "rule": "Product names are not SKUs; search for the SKU first"},
         "warehouses": {"our_values": sorted(p.WAREHOUSES),
                        "user_might_say": {k: [v, v.lower()] for k, v in p.WAREHOUSES.items()}},
         "quantities": {"rule": "integers; a negative delta removes stock"}},
        ("Order 200 more {sku} from the supplier", "What's the factory lead time for {sku}?",
         "Rename the {city} warehouse", "Tell me a joke about forklifts",
         "What temperature should the warehouse be kept at?", "Set the retail price of {sku} to $99",
         "Create a new SKU for a bamboo desk", "Who is the supplier of {sku}?"),
        "You are Acme's inventory assistant. Use the tools when they fit.",
    ),
    ServiceSpec(
        "customers", "Customers & auth", "1.8.0", "Customer accounts, contact details and sign-in security.",
        {"customer_identification": CUSTOMER_RULE,
         "phones": {"rule": "E.164 without spaces", "examples": {"(415) 555-0142": "+14155550142"}},
         "password_reset_delivery": {"our_values": ["email", "sms"], "user_might_say": {"sms": ["text", "SMS"]}}},
        ("Delete {customer_id}'s account permanently", "Merge the accounts {customer_id} and CUS-10001",
         "What is this customer's credit score?", "Send a marketing email to all customers",
         "What's the capital of Australia?", "Export every customer's email address to a spreadsheet",
         "Change {name}'s loyalty tier to gold", "How many customers signed up in {city} last month?"),
        "You are Acme's customer account assistant. Never identify a customer by name alone.",
    ),
)

TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "payments", "create_payment",
        "Charge a customer. The amount is an integer in cents; currency is an ISO 4217 code (default USD).",
        obj({"amount": AMOUNT_CENTS,
             "currency": {"type": "string", "enum": list(p.CURRENCIES), "default": "USD",
                          "description": "ISO 4217 currency code"},
             "customer_id": CUSTOMER_ID,
             "invoice_id": {"type": "string", "pattern": r"^INV-\d{4,5}$", "description": "Invoice being paid"},
             "description": {"type": "string", "maxLength": 200, "description": "Note shown on the receipt"}},
            ["amount", "customer_id"]),
        _create_payment_case,
        (P("Charge customer {customer_id} {money} for invoice {invoice_id}", "amount", "currency", "customer_id",
           "invoice_id"),
         P("Please bill {customer_id} {money}.", "amount", "currency", "customer_id"),
         P("Create a payment of {money} for customer {customer_id}", "amount", "currency", "customer_id"),
         P("{customer_id} owes {money} on {invoice_id} - take the payment now", "amount", "currency",
           "customer_id", "invoice_id"),
         P("Can you collect {money} from account {customer_id}? Description: {description}", "amount", "currency",
           "customer_id", "description"),
         P("Run a charge for {money} against {customer_id}, reference {invoice_id}", "amount", "currency",
           "customer_id", "invoice_id"),
         P("I need to take a payment: customer {customer_id}, amount {money}, note '{description}'", "amount",
           "currency", "customer_id", "description"),
         P("put through {money} for {customer_id} pls", "amount", "currency", "customer_id")),
        "Amounts are integers in cents ($49.99 is 4999). Currency is an ISO code and defaults to USD.",
        _create_payment_mistakes,
        {"amounts": CENTS_RULE, "customer_identification": CUSTOMER_RULE},
        sequences=(_retry_payment_sequence,),
        edges=(_create_payment_clarify, _create_payment_ask),
        confusable=("refund_payment",),
    ),
    ToolSpec(
        "payments", "refund_payment",
        "Refund a payment in full, or partially when an amount (in cents) is given.",
        obj({"payment_id": PAYMENT_ID,
             "amount": {**AMOUNT_CENTS, "description": "Partial refund in cents; leave out for a full refund"},
             "reason": {"type": "string", "enum": list(p.REFUND_REASONS)}},
            ["payment_id", "reason"]),
        _refund_case,
        (P("Refund {payment_id}, {reason_word}", "payment_id", "reason"),
         P("Please issue a full refund on payment {payment_id} because {reason_word}", "payment_id", "reason"),
         P("Refund {money} of {payment_id} - {reason_word}", "payment_id", "amount", "reason"),
         P("Partial refund of {money} for {payment_id}; reason: {reason_word}", "payment_id", "amount", "reason"),
         P("{payment_id} needs to be reversed, {reason_word}", "payment_id", "reason"),
         P("Give the customer their money back for {payment_id} ({reason_word})", "payment_id", "reason"),
         P("Send back {money} on payment {payment_id}, {reason_word}", "payment_id", "amount", "reason")),
        "Leave amount out for a full refund; partial amounts are cents. Reason is an enum value, not free text.",
        _refund_mistakes,
        {"amounts": CENTS_RULE,
         "refund_reasons": {"our_values": list(p.REFUND_REASONS),
                            "user_might_say": {k: list(v) for k, v in p.REFUND_REASONS.items()}}},
        sequences=(_refund_sequence,),
        edges=(_refund_ask, _refund_clarify),
        confusable=("create_payment", "get_payment_status"),
        user_words={"reason": "reason_word"},
    ),
    ToolSpec(
        "payments", "get_payment_status",
        "Current state of one payment: pending, processing, completed, failed or refunded.",
        obj({"payment_id": PAYMENT_ID}, ["payment_id"]),
        _payment_status_case,
        (P("What's the status of {payment_id}?", "payment_id"),
         P("Did payment {payment_id} go through?", "payment_id"),
         P("Check {payment_id} for me", "payment_id"),
         P("Has {payment_id} cleared yet?", "payment_id"),
         P("Is {payment_id} still pending or did it fail?", "payment_id"),
         P("status on pmt {payment_id} pls", "payment_id"),
         P("Customer {customer_id} says {payment_id} bounced - can you look it up?", "payment_id")),
        "Look payments up by their PAY- id; the customer id is not needed.",
        lambda case, args: [mistake({"id": case.slots["payment_id"]}, "the parameter is 'payment_id'"),
                            mistake({"payment_id": case.slots["customer_id"]}, "that is a customer id, not a payment")],
        {"payment_states": {"our_values": list(p.PAYMENT_STATUS_WORDS)}},
        edges=(_payment_status_ask,),
        parallel=_payment_status_parallel,
        confusable=("list_customer_payments",),
    ),
    ToolSpec(
        "payments", "list_customer_payments",
        "A customer's payments, newest first, optionally filtered by status.",
        obj({"customer_id": CUSTOMER_ID,
             "status": {"type": "string", "enum": list(p.PAYMENT_STATUS_WORDS)},
             "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}},
            ["customer_id"]),
        _list_payments_case,
        (P("Show payments for {customer_id}", "customer_id"),
         P("List {customer_id}'s {status_word} payments", "customer_id", "status"),
         P("Last {limit} payments of customer {customer_id}", "customer_id", "limit"),
         P("Pull up the {status_word} payments on account {customer_id}", "customer_id", "status"),
         P("Any {status_word} charges for {customer_id}?", "customer_id", "status"),
         P("Give me the {limit} most recent {status_word} payments for {customer_id}", "customer_id", "status",
           "limit"),
         P("payment history for {customer_id}", "customer_id")),
        "Statuses are enum values: 'bounced' or 'declined' is failed, 'cleared' is completed.",
        lambda case, args: [
            mistake({"status": case.slots["status_word"]}, f"use the enum value '{case.slots['status']}'")
            if case.slots["status_word"] != case.slots["status"] else
            mistake({"customer": case.slots["customer_id"]}, "the parameter is 'customer_id'"),
            mistake({"customer_id": case.slots["name"]}, "never identify a customer by name")],
        {"payment_states": {"our_values": list(p.PAYMENT_STATUS_WORDS),
                            "user_might_say": {k: list(v) for k, v in p.PAYMENT_STATUS_WORDS.items()}},
         "customer_identification": CUSTOMER_RULE},
        edges=(_list_payments_ask,),
        confusable=("get_payment_status",),
        user_words={"status": "status_word"},
    ),
    ToolSpec(
        "orders", "get_order",
        "One order by its id, optionally with its line items.",
        obj({"order_id": ORDER_ID,
             "include_items": {"type": "boolean", "default": False, "description": "Return the line items too"}},
            ["order_id"]),
        _order_case,
        (P("Look up order {order_id}", "order_id"),
         P("What's going on with {order_id}?", "order_id"),
         P("Pull up {order_id} including the line items", "order_id", include_items="yes"),
         P("Show me order {order_id}", "order_id"),
         P("Details for {order_id} please", "order_id"),
         P("What was in order {order_id}?", "order_id", include_items="yes"),
         P("Can you find {order_id}", "order_id")),
        "Order ids keep their ORD- prefix. Ask for line items only when the user wants the contents.",
        lambda case, args: [mistake({"order": case.slots["order_id"]}, "the parameter is 'order_id'"),
                            mistake({"order_id": case.slots["order_id"][4:]}, "keep the ORD- prefix")],
        {"order_ids": {"format": "ORD-#####"}},
        edges=(_get_order_ask,),
        parallel=_get_order_parallel,
        confusable=("get_latest_order", "list_orders"),
    ),
    ToolSpec(
        "orders", "list_orders",
        "A customer's orders, optionally filtered by fulfillment state.",
        obj({"customer_id": CUSTOMER_ID, "fulfillment_state": FULFILLMENT_STATE,
             "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10}},
            ["customer_id"]),
        _order_case,
        (P("Show {customer_id}'s {state_word} orders", "customer_id", "fulfillment_state"),
         P("List all orders for {customer_id}", "customer_id"),
         P("Which orders of customer {customer_id} are {state_word}?", "customer_id", "fulfillment_state"),
         P("Give me the last {limit} orders of {customer_id}", "customer_id", "limit"),
         P("{customer_id} - which orders are still {state_word}?", "customer_id", "fulfillment_state"),
         P("How many orders does {customer_id} have that are {state_word}?", "customer_id", "fulfillment_state"),
         P("orders for {customer_id} in state {state_word}", "customer_id", "fulfillment_state")),
        "fulfillment_state uses API values: 'pending' is awaiting_shipment, 'shipped' is in_transit.",
        lambda case, args: [
            mistake({"fulfillment_state": case.slots["state_word"]},
                    f"'{case.slots['state_word']}' is what users say; the API value is "
                    f"'{case.slots['fulfillment_state']}'"),
            mistake({"status": case.slots["fulfillment_state"]}, "the parameter is 'fulfillment_state'")],
        {"fulfillment_states": {"our_values": list(p.FULFILLMENT_WORDS),
                                "user_might_say": {k: list(v) for k, v in p.FULFILLMENT_WORDS.items()}}},
        edges=(_list_orders_ask, _list_orders_clarify),
        confusable=("get_latest_order",),
        user_words={"fulfillment_state": "state_word"},
    ),
    ToolSpec(
        "orders", "get_latest_order",
        "The most recent order of a customer.",
        obj({"customer_id": CUSTOMER_ID}, ["customer_id"]),
        _order_case,
        (P("What's the latest order for {customer_id}?", "customer_id"),
         P("Most recent order of customer {customer_id}", "customer_id"),
         P("What did {customer_id} order last?", "customer_id"),
         P("Find {customer_id}'s newest order", "customer_id"),
         P("Pull up the last thing {customer_id} bought", "customer_id"),
         P("{customer_id} is asking about their latest purchase", "customer_id")),
        "Takes a customer id; a first name is never enough.",
        lambda case, args: [mistake({"customer_id": case.slots["name"]}, "names are not customer ids"),
                            mistake({"customer": case.slots["customer_id"]}, "the parameter is 'customer_id'")],
        {"customer_identification": CUSTOMER_RULE},
        edges=(_latest_order_ask,),
        confusable=("list_orders", "get_order"),
    ),
    ToolSpec(
        "orders", "update_fulfillment_state",
        "Move an order to another fulfillment state; give the tracking number when it ships.",
        obj({"order_id": ORDER_ID, "fulfillment_state": FULFILLMENT_STATE,
             "tracking_number": {"type": "string", "pattern": r"^TRK-[A-Z]{4}\d{4}$",
                                 "description": "Carrier tracking number, e.g. TRK-QXMB4821"}},
            ["order_id", "fulfillment_state"]),
        _update_state_case,
        (P("Mark {order_id} as {state_word}", "order_id", "fulfillment_state"),
         P("{order_id} shipped today, tracking {tracking_number}", "order_id", "tracking_number",
           fulfillment_state="in_transit"),
         P("Set order {order_id} to {state_word}", "order_id", "fulfillment_state"),
         P("Update {order_id}: it's {state_word} now", "order_id", "fulfillment_state"),
         P("The customer received {order_id}", "order_id", fulfillment_state="delivered"),
         P("Change the fulfillment state of {order_id} to {state_word}", "order_id", "fulfillment_state"),
         P("{order_id} went out with tracking number {tracking_number}", "order_id", "tracking_number",
           fulfillment_state="in_transit")),
        "Map what people say to API states ('shipped' = in_transit, 'pending' = awaiting_shipment).",
        lambda case, args: [
            mistake({"fulfillment_state": case.slots["state_word"]}, "use the API enum value"),
            mistake({"status": args.get("fulfillment_state")}, "the parameter is 'fulfillment_state'")],
        {"fulfillment_states": {"our_values": list(p.FULFILLMENT_WORDS),
                                "user_might_say": {k: list(v) for k, v in p.FULFILLMENT_WORDS.items()}}},
        sequences=(_ship_latest_sequence,),
        edges=(_update_state_ask, _update_state_clarify),
        confusable=("cancel_order", "get_order"),
        user_words={"fulfillment_state": "state_word"},
    ),
    ToolSpec(
        "orders", "cancel_order",
        "Cancel an order that has not shipped. The customer is notified unless notify_customer is false.",
        obj({"order_id": ORDER_ID, "reason": {"type": "string", "enum": list(p.CANCEL_REASONS)},
             "notify_customer": {"type": "boolean", "default": True}},
            ["order_id", "reason"]),
        _cancel_case,
        (P("Cancel {order_id}, {reason_word}", "order_id", "reason"),
         P("Please cancel order {order_id} because {reason_word}", "order_id", "reason"),
         P("Kill order {order_id} - {reason_word}. Don't email the customer.", "order_id", "reason",
           notify_customer="no"),
         P("{order_id} needs to be cancelled: {reason_word}", "order_id", "reason"),
         P("Cancel {order_id} quietly, {reason_word}", "order_id", "reason", notify_customer="no"),
         P("Call off order {order_id}; reason: {reason_word}", "order_id", "reason"),
         P("Void {order_id} ({reason_word}) and let the customer know", "order_id", "reason",
           notify_customer="yes")),
        "reason is an enum; set notify_customer false only when asked not to tell the customer.",
        lambda case, args: [mistake({"reason": case.slots["reason_word"]}, "reason must be an enum value"),
                            mistake({"order": case.slots["order_id"]}, "the parameter is 'order_id'")],
        {"cancel_reasons": {"our_values": list(p.CANCEL_REASONS),
                            "user_might_say": {k: list(v) for k, v in p.CANCEL_REASONS.items()}}},
        sequences=(_cancel_latest_sequence,),
        edges=(_cancel_ask,),
        confusable=("update_fulfillment_state",),
        user_words={"reason": "reason_word"},
    ),
    ToolSpec(
        "inventory", "check_stock",
        "Units on hand for a SKU, in one warehouse or across all.",
        obj({"sku": SKU, "warehouse": WAREHOUSE}, ["sku"]),
        _stock_case,
        (P("How many {sku} do we have?", "sku"),
         P("Stock level for {sku} in {city}", "sku", "warehouse"),
         P("Is {sku} in stock at the {city} warehouse?", "sku", "warehouse"),
         P("Check inventory of {sku}", "sku"),
         P("Do we still have {sku} in {city}?", "sku", "warehouse"),
         P("{sku} availability please", "sku"),
         P("What's on hand for SKU {sku} at {warehouse}?", "sku", "warehouse")),
        "Warehouses are codes (Seattle is SEA1). Leave warehouse out to count all of them.",
        lambda case, args: [mistake({"warehouse": case.slots["city"]}, f"use the code {case.slots['warehouse']}"),
                            mistake({"sku": case.slots["product"]}, "a product name is not a SKU")],
        {"warehouses": {"our_values": sorted(p.WAREHOUSES),
                        "user_might_say": {k: [v] for k, v in p.WAREHOUSES.items()}}},
        sequences=(_stock_by_name_sequence,),
        edges=(_stock_clarify, _stock_ask),
        parallel=_stock_parallel,
        confusable=("search_products", "reserve_stock"),
        user_words={"warehouse": "city"},
    ),
    ToolSpec(
        "inventory", "reserve_stock",
        "Reserve units of a SKU for an order.",
        obj({"sku": SKU, "quantity": {"type": "integer", "minimum": 1, "maximum": 500}, "order_id": ORDER_ID},
            ["sku", "quantity", "order_id"]),
        _stock_case,
        (P("Reserve {quantity} units of {sku} for {order_id}", "sku", "quantity", "order_id"),
         P("Hold {quantity} x {sku} for order {order_id}", "sku", "quantity", "order_id"),
         P("Put aside {qty_word} {sku} for {order_id}", "sku", "quantity", "order_id"),
         P("{order_id} needs {quantity} of {sku} reserved", "sku", "quantity", "order_id"),
         P("Allocate {quantity} {sku} to order {order_id}", "sku", "quantity", "order_id"),
         P("Block {qty_word} pieces of {sku} for {order_id}", "sku", "quantity", "order_id")),
        "All three parameters are required; quantity is an integer.",
        lambda case, args: [mistake({"qty": case.slots["quantity"]}, "the parameter is 'quantity'"),
                            mistake({"sku": case.slots["product"]}, "a product name is not a SKU")],
        {"skus": {"format": "AAA-####"}},
        sequences=(_reserve_sequence,),
        edges=(_reserve_ask, _reserve_clarify),
        confusable=("adjust_inventory", "check_stock"),
    ),
    ToolSpec(
        "inventory", "adjust_inventory",
        "Correct the units on hand in a warehouse; a negative delta removes stock.",
        obj({"sku": SKU, "warehouse": WAREHOUSE,
             "delta": {"type": "integer", "description": "Units to add (positive) or remove (negative)"},
             "reason": {"type": "string", "enum": list(p.ADJUST_REASONS)}},
            ["sku", "warehouse", "delta", "reason"]),
        _stock_case,
        (P("Remove {n} {sku} from {city}, {minus_word}", "sku", "warehouse", delta="delta_minus",
           reason="reason_minus"),
         P("Add {n} units of {sku} to {warehouse}: {plus_word}", "sku", "warehouse", delta="delta_plus",
           reason="reason_plus"),
         P("{minus_word}: {sku} at {city} is down by {n}", "sku", "warehouse", delta="delta_minus",
           reason="reason_minus"),
         P("Increase {sku} stock in {city} by {n} - {plus_word}", "sku", "warehouse", delta="delta_plus",
           reason="reason_plus"),
         P("Write off {n} {sku} in {city}, {minus_word}", "sku", "warehouse", delta="delta_minus",
           reason="reason_minus"),
         P("We got {n} more {sku} in {city} ({plus_word})", "sku", "warehouse", delta="delta_plus",
           reason="reason_plus")),
        "delta is signed: removing 5 units is -5. Warehouses are codes; reason is an enum value.",
        lambda case, args: [mistake({"delta": abs(args["delta"])} if args["delta"] < 0 else {"quantity": args["delta"]},
                                    "removals are negative deltas" if args["delta"] < 0 else
                                    "the parameter is 'delta'"),
                            mistake({"warehouse": case.slots["city"]}, "use the warehouse code")],
        {"warehouses": {"our_values": sorted(p.WAREHOUSES)},
         "adjust_reasons": {"our_values": list(p.ADJUST_REASONS),
                            "user_might_say": {k: list(v) for k, v in p.ADJUST_REASONS.items()}}},
        edges=(_adjust_ask,),
        confusable=("reserve_stock",),
        user_words={"warehouse": "city"},
    ),
    ToolSpec(
        "inventory", "search_products",
        "Search the product catalog by words; returns SKUs.",
        obj({"query": {"type": "string", "minLength": 2},
             "category": {"type": "string", "enum": list(p.CATEGORIES)},
             "in_stock_only": {"type": "boolean", "default": False}},
            ["query"]),
        _stock_case,
        (P("Find products matching '{query}'", "query"),
         P("Search the catalog for {query}", "query"),
         P("Do we sell a {query}?", "query"),
         P("Look for {query} in {category}", "query", "category"),
         P("Show me {query} options that are in stock", "query", in_stock_only="yes"),
         P("What's the SKU for the {query}?", "query"),
         P("search {category}: {query}", "query", "category")),
        "Use search to turn a product name into a SKU.",
        lambda case, args: [mistake({"sku": case.slots["product"]}, "search takes 'query' words, not 'sku'"),
                            mistake({"search": case.slots["query"]}, "the parameter is 'query'")],
        {"categories": {"our_values": list(p.CATEGORIES)}},
        edges=(_search_ask,),
        confusable=("check_stock",),
    ),
    ToolSpec(
        "customers", "get_customer",
        "A customer's profile by customer id.",
        obj({"customer_id": CUSTOMER_ID}, ["customer_id"]),
        _customer_case,
        (P("Pull up customer {customer_id}", "customer_id"),
         P("Who is {customer_id}?", "customer_id"),
         P("Show the profile for {customer_id}", "customer_id"),
         P("Get account details for {customer_id}", "customer_id"),
         P("Look up customer record {customer_id}", "customer_id"),
         P("Open {customer_id}'s account", "customer_id")),
        "By customer id only; use find_customer_by_email for an email, and ask when only a name is given.",
        lambda case, args: [mistake({"customer_id": case.slots["name"]}, "names are not unique and not ids"),
                            mistake({"id": case.slots["customer_id"]}, "the parameter is 'customer_id'")],
        {"customer_identification": CUSTOMER_RULE},
        edges=(_name_only_ask("Pull up the account of"),),
        parallel=_get_customer_parallel,
        confusable=("find_customer_by_email",),
    ),
    ToolSpec(
        "customers", "find_customer_by_email",
        "Find a customer by email address; returns the customer id.",
        obj({"email": {"type": "string", "format": "email"}}, ["email"]),
        _customer_case,
        (P("Find the customer with email {email}", "email"),
         P("Who owns {email}?", "email"),
         P("Look up {email}", "email"),
         P("Is there an account for {email}?", "email"),
         P("Search customers by email: {email}", "email"),
         P("{email} is on the phone, pull up their account", "email")),
        "The email is matched exactly; pass it as written.",
        lambda case, args: [mistake({"email_address": case.slots["email"]}, "the parameter is 'email'"),
                            mistake({"email": case.slots["name"]}, "a name is not an email")],
        {"customer_identification": CUSTOMER_RULE},
        edges=(_name_only_ask("Find the account of", "email"),),
        confusable=("get_customer",),
    ),
    ToolSpec(
        "customers", "update_customer_contact",
        "Change a customer's email and/or phone. Phones in E.164 (+14155550142).",
        obj({"customer_id": CUSTOMER_ID, "email": {"type": "string", "format": "email"},
             "phone": {"type": "string", "pattern": r"^\+[1-9]\d{7,14}$", "description": "E.164, no spaces"}},
            ["customer_id"]),
        _customer_case,
        (P("Change the email of {customer_id} to {email}", "customer_id", "email"),
         P("Update {customer_id}'s phone number to {phone_text}", "customer_id", "phone"),
         P("{customer_id} has a new number: {phone_text}", "customer_id", "phone"),
         P("Set contact for {customer_id}: email {email}, phone {phone_text}", "customer_id", "email", "phone"),
         P("New email for customer {customer_id} is {email}", "customer_id", "email"),
         P("Please update {customer_id} - phone {phone_text}", "customer_id", "phone")),
        "Phones are E.164 without spaces or punctuation; only send the fields that change.",
        lambda case, args: [mistake({"phone": case.slots["phone_text"]}, "phones must be E.164, e.g. "
                                    + case.slots["phone"]),
                            mistake({"email_address": case.slots["email"]}, "the parameter is 'email'")],
        {"phones": {"rule": "E.164 without spaces"}, "customer_identification": CUSTOMER_RULE},
        sequences=(_update_contact_sequence,),
        edges=(_update_contact_ask,),
        confusable=("get_customer",),
    ),
    ToolSpec(
        "customers", "reset_password",
        "Send a password reset link by email (default) or SMS.",
        obj({"customer_id": CUSTOMER_ID,
             "delivery": {"type": "string", "enum": ["email", "sms"], "default": "email"}},
            ["customer_id"]),
        _customer_case,
        (P("Reset the password for {customer_id}", "customer_id"),
         P("{customer_id} is locked out, send a reset link", "customer_id"),
         P("Send {customer_id} a password reset by text", "customer_id", delivery="sms"),
         P("Password reset for customer {customer_id} via SMS", "customer_id", delivery="sms"),
         P("Trigger a password reset email for {customer_id}", "customer_id", delivery="by_email"),
         P("{customer_id} forgot their password", "customer_id")),
        "'text' means delivery sms; email is the default.",
        lambda case, args: [mistake({"delivery": "text"}, "delivery is 'sms' or 'email'"),
                            mistake({"customer_id": case.slots["email"]}, "look the email up first")],
        {"password_reset_delivery": {"our_values": ["email", "sms"]}, "customer_identification": CUSTOMER_RULE},
        sequences=(_email_then("reset_password", lambda r: ("", {})),),
        edges=(_name_only_ask("Reset the password of"),),
        confusable=("lock_account",),
    ),
    ToolSpec(
        "customers", "lock_account",
        "Lock a customer's sign-in; an enum reason is required for the audit trail.",
        obj({"customer_id": CUSTOMER_ID, "reason": {"type": "string", "enum": list(p.LOCK_REASONS)}},
            ["customer_id", "reason"]),
        _customer_case,
        (P("Lock {customer_id}, {reason_word}", "customer_id", "reason"),
         P("Freeze account {customer_id}: {reason_word}", "customer_id", "reason"),
         P("Please lock customer {customer_id} - {reason_word}", "customer_id", "reason"),
         P("{customer_id} needs to be locked: {reason_word}", "customer_id", "reason"),
         P("Suspend {customer_id}'s login ({reason_word})", "customer_id", "reason"),
         P("Block access for {customer_id}, reason {reason_word}", "customer_id", "reason")),
        "reason is one of suspected_fraud, customer_request, chargeback_abuse.",
        lambda case, args: [mistake({"reason": case.slots["reason_word"]}, "reason must be an enum value"),
                            mistake({"customer_id": case.slots["name"]}, "names are not ids")],
        {"lock_reasons": {"our_values": list(p.LOCK_REASONS),
                          "user_might_say": {k: list(v) for k, v in p.LOCK_REASONS.items()}}},
        sequences=(_email_then("lock_account", _lock_extra),),
        edges=(_lock_ask,),
        confusable=("reset_password",),
        user_words={"reason": "reason_word"},
    ),
)

TOOLS_BY_NAME = {t.name: t for t in TOOLS}
SERVICES_BY_NAME = {s.name: s for s in SERVICES}


def service_tools(service: str) -> list[ToolSpec]:
    return [t for t in TOOLS if t.service == service]


def openai_tool(spec: ToolSpec) -> dict[str, Any]:
    return {"type": "function",
            "function": {"name": spec.name, "description": spec.description, "parameters": spec.parameters}}


def abstain_slots(r: Random) -> dict[str, Any]:
    person = p.person(r)
    code, city = p.warehouse(r)
    return {"name": person.first, "customer_id": person.customer_id, "order_id": p.order_id(r),
            "sku": p.product(r)[0], "city": city, "warehouse": code}


def render(spec: ToolSpec, phrase: Phrase, case: Case) -> tuple[str, dict[str, Any], dict[str, list[Any]]]:
    """(text, arguments, acceptable values per argument) for one phrasing of one case."""
    text = phrase.text.format_map(case.slots)
    args = {param: case.slots[slot] for param, slot in phrase.args.items()}
    acceptable = {param: list(case.acceptable[slot]) for param, slot in phrase.args.items()
                  if slot in case.acceptable and case.acceptable[slot] != [case.slots[slot]]}
    return text, args, acceptable
