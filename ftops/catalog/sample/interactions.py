"""Simulated production traffic for the acme enterprise: ingest-API payloads.

About 15% of the interactions are failures of the kinds real assistants make on enterprise
tools. Each payload says what really happened in ``metadata["simulated"]``:
``{"failure": kind | None, "expected_calls": [{"name", "arguments"}] | None,
"expected_behavior": "call" | "clarify" | "ask_for_details" | "abstain", "tool", "template"}``.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

from ftops.catalog.sample import pools as p
from ftops.catalog.sample.documents import ENTERPRISE, skeleton_id
from ftops.catalog.sample.specs import (
    SERVICES,
    TOOLS_BY_NAME,
    ToolSpec,
    abstain_slots,
    openai_tool,
    polite,
    render,
    service_tools,
)

# A fixed clock keeps the default output identical across runs; callers pass timezone.now().
DEFAULT_NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)

FAILURE_KINDS = (
    "wrong_tool",
    "dollars_not_cents",
    "wrong_parameter_name",
    "missing_required",
    "wrong_enum_value",
    "missed_call",
    "should_have_asked",
    "should_have_abstained",
)

# Parameter names models invent instead of the real ones.
ALIASES = {
    "order_id": "order", "customer_id": "customer", "invoice_id": "invoice", "payment_id": "transaction_id",
    "sku": "product_id", "quantity": "qty", "fulfillment_state": "status", "warehouse": "warehouse_id",
    "email": "email_address", "amount": "amount_cents", "reason": "reason_text", "phone": "phone_number",
    "delivery": "method", "delta": "change", "query": "search", "tracking_number": "tracking",
    "status": "payment_status", "limit": "max_results", "include_items": "with_items",
    "notify_customer": "notify", "category": "product_category", "in_stock_only": "available_only",
    "description": "memo", "currency": "currency_code",
}

SERVICE_WEIGHTS = {"payments": 30, "orders": 32, "inventory": 18, "customers": 20}
# (model version, share of the period it served, failure probability of a call request)
MODEL_VERSIONS = (("acme-assistant-2025.01", 0.55, 0.16), ("acme-assistant-2025.03", 1.0, 0.11))
# How often each tool is asked for, relative to its service's other tools (default 1).
TOOL_WEIGHTS = {"create_payment": 2.5, "refund_payment": 1.5, "get_order": 1.5, "list_orders": 1.5,
                "check_stock": 1.5, "find_customer_by_email": 1.5}
ASK_FAILURE, ABSTAIN_FAILURE = 0.24, 0.22
CHANNELS = ("support-console", "chat-widget", "ops-slack")


def generate_interactions(*, seed: int = 7, n: int = 2000, days: int = 120,
                          now: datetime | None = None) -> list[dict[str, Any]]:
    """``n`` ingest payloads spread over the ``days`` before ``now``, oldest first.

    The traffic is drawn for ``DEFAULT_NOW`` and then moved in time to end by ``now``: only the
    timestamps depend on ``now``. Drawn for ``now`` itself, the random stream followed the
    clock (how many draws the time of day let through), so every demo run curated other
    requests and trained another model.
    """
    if n < 0 or days < 1:
        raise ValueError("n must be >= 0 and days >= 1")
    r = Random(f"{ENTERPRISE}:interactions:{seed}")
    shift = (now - DEFAULT_NOW) if now is not None else timedelta(0)
    tools_offered = {s.name: [openai_tool(t) for t in service_tools(s.name)] for s in SERVICES}
    stamps = _timestamps(r, n, days, DEFAULT_NOW)
    start = DEFAULT_NOW - timedelta(days=days)
    return [_interaction(r, seed, i, ts, start, days, tools_offered, shift=shift) for i, ts in enumerate(stamps)]


def _timestamps(r: Random, n: int, days: int, now: datetime) -> list[datetime]:
    midnight = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    day_weights = []
    for d in range(days + 1):
        weekday = (midnight + timedelta(days=d)).weekday()
        growth = 0.7 + 0.6 * d / days  # traffic grows over the period
        day_weights.append(growth * (1.0 if weekday < 5 else 0.45))
    hour_weights = [0.15] * 7 + [0.6, 1.0, 1.3, 1.4, 1.3, 1.1, 1.3, 1.4, 1.3, 1.1, 0.8, 0.5] + [0.3] * 5
    out: list[datetime] = []
    while len(out) < n:
        d = r.choices(range(days + 1), weights=day_weights)[0]
        h = r.choices(range(24), weights=hour_weights)[0]
        ts = midnight + timedelta(days=d, hours=h, minutes=r.randrange(60), seconds=r.randrange(60),
                                  milliseconds=r.randrange(1000))
        if now - timedelta(days=days) <= ts <= now:
            out.append(ts)
    return sorted(out)


def _interaction(r: Random, seed: int, i: int, ts: datetime, start: datetime, days: int,
                 tools_offered: dict[str, list[dict[str, Any]]], *, shift: timedelta) -> dict[str, Any]:
    service = r.choices(list(SERVICE_WEIGHTS), weights=list(SERVICE_WEIGHTS.values()))[0]
    service_spec = next(s for s in SERVICES if s.name == service)
    share = (ts - start).total_seconds() / (days * 86400)
    model_version, call_failure_p = next((v, fp) for v, until, fp in MODEL_VERSIONS if share <= until)
    candidates = service_tools(service)
    spec = r.choices(candidates, weights=[TOOL_WEIGHTS.get(t.name, 1.0) for t in candidates])[0]
    kind = r.choices(("call", "ask", "abstain"), weights=(82, 11, 7))[0]

    calls: list[dict[str, Any]] = []
    text = ""
    failure: str | None = None
    expected_calls: list[dict[str, Any]] | None = None
    if kind == "call":
        query, expected_calls, template, case_slots = _call_request(r, spec)
        behavior = "call"
        calls = [dict(c) for c in expected_calls]
        if r.random() < call_failure_p:
            failure, calls, text = _break_call(r, spec, calls, case_slots, query)
        task_type = spec.name
    elif kind == "ask":
        edge = r.choice(spec.edges)(r, r.randrange(6))
        query, behavior = edge["user_query"], edge["correct_behavior"]["action"]
        template = f"{spec.name}#edge.{skeleton_id(query)}"
        text = edge["correct_behavior"]["question"]
        if r.random() < ASK_FAILURE:
            failure, text = "should_have_asked", ""
            calls = [_made_up_call(r, spec)]
        task_type = spec.name
    else:
        index = r.randrange(len(service_spec.abstain))
        query, behavior = service_spec.abstain[index].format_map(abstain_slots(r)), "abstain"
        template = f"{service}#abstain{index}"
        text = "Sorry, I can't do that with the tools I have here - please contact the team that owns it."
        if r.random() < ABSTAIN_FAILURE:
            failure, text = "should_have_abstained", ""
            calls = [_made_up_call(r, r.choice(service_tools(service)))]
        task_type = "out_of_scope"

    query = _maybe_contact_details(r, query)
    messages = [{"role": "system", "content": service_spec.system_prompt}]
    if r.random() < 0.08:
        messages += [{"role": "user", "content": r.choice(("hi", "hello there", "good morning"))},
                     {"role": "assistant", "content": "Hi! How can I help?"}]
    messages.append({"role": "user", "content": query})

    success, feedback = _outcome(r, failure)
    prompt_tokens = (sum(len(m["content"]) for m in messages) + len(json.dumps(tools_offered[service]))) // 4
    completion_tokens = max(4, (len(json.dumps(calls)) + len(text)) // 4)
    latency = int(math.exp(r.gauss(math.log(650), 0.35)) + 140 * len(calls) + 2 * completion_tokens)
    return {
        "id": f"{ENTERPRISE}-{seed}-{i:06d}",
        "service": service,
        "timestamp": (ts + shift).isoformat().replace("+00:00", "Z"),
        "messages": messages,
        "tools": tools_offered[service],
        "tool_calls": calls,
        "response_text": text,
        "task_type": task_type,
        "user_feedback": feedback,
        "success": success,
        "confidence": round(r.uniform(0.72, 0.99) if failure is None else r.uniform(0.35, 0.9), 3),
        "latency_ms": latency,
        "tokens_used": prompt_tokens + completion_tokens,
        "model_version": model_version,
        "metadata": {
            "channel": r.choice(CHANNELS),
            "simulated": {"failure": failure, "expected_calls": expected_calls, "expected_behavior": behavior,
                          "tool": spec.name if kind != "abstain" else None, "template": template},
        },
    }


def _call_request(r: Random, spec: ToolSpec) -> tuple[str, list[dict[str, Any]], str, dict[str, Any]]:
    if spec.parallel is not None and r.random() < 0.06:
        example = spec.parallel(r, r.randrange(3))
        calls = [{"name": c["tool"], "arguments": dict(c["parameters"])} for c in example["correct_calls"]]
        return example["user_query"], calls, f"{spec.name}#parallel", {}
    index = r.randrange(len(spec.phrases))
    case = spec.make(r)
    text, args, _ = render(spec, spec.phrases[index], case)
    return polite(r, text), [{"name": spec.name, "arguments": args}], f"{spec.name}#{index}", case.slots


def _break_call(r: Random, spec: ToolSpec, calls: list[dict[str, Any]],
                slots: dict[str, Any], query: str) -> tuple[str, list[dict[str, Any]], str]:
    """Turn a correct call into a realistic mistake: (kind, calls actually made, response text)."""
    args = dict(calls[0]["arguments"])
    required = [k for k in spec.parameters.get("required", []) if k in args]
    options: dict[str, float] = {"wrong_parameter_name": 20, "missed_call": 7}
    if spec.confusable:
        options["wrong_tool"] = 20
    if "amount" in args and "dollars" in slots:
        options["dollars_not_cents"] = 70
    if required:
        options["missing_required"] = 18
    # Only where the value came from the case's own slot: then the word people used names that value.
    enum_params = [k for k, slot in spec.user_words.items()
                   if k in args and args[k] == slots.get(k) and slots.get(slot) not in (None, args[k])]
    if enum_params:
        options["wrong_enum_value"] = 30
    kind = r.choices(list(options), weights=list(options.values()))[0]
    if kind == "missed_call":
        reply = r.choice(("I'm not able to look that up right now.", "Done! Let me know if you need anything else.",
                          "It should be all set."))
        return kind, [], reply
    name = spec.name
    if kind == "wrong_tool":
        name = r.choice(spec.confusable)
        wrong = TOOLS_BY_NAME[name].parameters
        mentioned = {k: v for k, v in slots.items() if isinstance(v, str) and v and v in query}
        guesses = {**mentioned, **args, "sku": args.get("sku") or mentioned.get("product") or args.get("query")}
        args = {k: v for k, v in args.items() if k in wrong["properties"]}
        # The model fills the wrong tool's required parameters from whatever the request mentioned.
        args.update({k: guesses[k] for k in wrong.get("required", []) if k not in args and guesses.get(k)})
    elif kind == "dollars_not_cents":
        args["amount"] = slots["dollars"]
    elif kind == "wrong_parameter_name":
        param = r.choice([k for k in args if k in ALIASES])
        args[ALIASES[param]] = args.pop(param)
    elif kind == "missing_required":
        args.pop(r.choice(required))
    else:
        param = r.choice(enum_params)
        args[param] = slots[spec.user_words[param]]
    return kind, [{"name": name, "arguments": args}, *calls[1:]], ""


def _made_up_call(r: Random, spec: ToolSpec) -> dict[str, Any]:
    """A call with invented values, as a model makes when it should have asked or declined."""
    _, args, _ = render(spec, r.choice(spec.phrases), spec.make(r))
    return {"name": spec.name, "arguments": args}


def _outcome(r: Random, failure: str | None) -> tuple[bool, int | None]:
    if failure is None:
        feedback = r.choices((5, 4, 3, None), weights=(55, 30, 7, 8))[0]
        return True, feedback
    feedback = r.choices((1, 2, 3, None), weights=(50, 30, 8, 12))[0]
    # A failure the client did not flag still shows in the score; one without a low score is flagged.
    success = r.random() < 0.15 and feedback in (1, 2)
    return success, feedback


def _maybe_contact_details(r: Random, query: str) -> str:
    roll = r.random()
    if roll < 0.04:
        return f"{query} You can reach me at {p.person(r).phone_text}."
    if roll < 0.08:
        return f"{query} My email is {p.person(r).email}."
    return query
