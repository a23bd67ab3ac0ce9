"""A reviewer's correction as plain data, its checks, and the training-example ``expected`` it makes.

Shared by the HTML form, the API and the submit service (no Django imports), so every path
applies the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from review.schema_form import validate_arguments

BEHAVIORS = ("call", "sequence", "clarify", "ask_for_details", "abstain")
BEHAVIOR_LABELS = {
    "call": "Call tool(s)",
    "sequence": "Multi-step sequence",
    "clarify": "Ask to clarify",
    "ask_for_details": "Ask for missing details",
    "abstain": "Abstain (no tool fits)",
}

# Tags reviewers tick most often; the example stores the sentence, so it reads well in training data.
MISTAKE_TAGS: list[tuple[str, str]] = [
    ("dollars_for_cents", "Amount in dollars instead of cents"),
    ("wrong_tool", "Called the wrong tool"),
    ("wrong_parameter_name", "Used a wrong parameter name"),
    ("missing_required", "Left out a required parameter"),
    ("user_word_not_enum", "Used the user's word instead of the allowed value"),
    ("wrong_type", "Sent a value of the wrong type"),
    ("name_not_id", "Identified a customer by name instead of id or email"),
    ("should_ask", "Called a tool instead of asking for missing details"),
    ("should_abstain", "Called a tool although none fits the request"),
    ("missing_step", "Skipped a step of a multi-step task"),
]
MISTAKE_TEXT = dict(MISTAKE_TAGS)


@dataclass
class Correction:
    behavior: str
    calls: list[dict[str, Any]] = field(default_factory=list)  # [{name, arguments}] for call / sequence
    tool: str = ""  # the tool the request is about (clarify / ask_for_details); first call's tool otherwise
    question: str = ""
    reason: str = ""
    required_fields: list[str] = field(default_factory=list)
    explanation: str = ""
    common_mistakes: list[str] = field(default_factory=list)

    @property
    def primary_tool(self) -> str:
        if self.behavior in ("call", "sequence") and self.calls:
            return str(self.calls[0].get("name") or "")
        if self.behavior == "abstain":
            return ""
        return self.tool

    def expected(self) -> dict[str, Any]:
        """``TrainingExample.expected`` for this behaviour (call arguments as possible-answer lists)."""
        if self.behavior == "call":
            return {"calls": [{"name": c["name"], "arguments": {k: [v] for k, v in c["arguments"].items()}}
                              for c in self.calls]}
        if self.behavior == "sequence":
            return {"steps": [{"name": c["name"], "arguments": dict(c["arguments"])} for c in self.calls]}
        if self.behavior == "clarify":
            return {"question": self.question, "reason": self.reason}
        if self.behavior == "ask_for_details":
            return {"required_fields": list(self.required_fields), "question": self.question}
        return {"reason": self.reason}

    def answer(self) -> dict[str, Any]:
        """What double-review agreement compares."""
        calls = self.calls if self.behavior in ("call", "sequence") else (
            [{"name": self.tool, "arguments": {}}] if self.tool else [])
        return {"behavior": self.behavior, "calls": calls, "required_fields": list(self.required_fields)}


def check_correction(correction: Correction, schemas: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """Errors by field (``behavior``, ``calls``, ``calls.0.name``, ``calls.0.arguments.x`` …); empty = valid."""
    errors: dict[str, list[str]] = {}

    def add(key: str, message: str) -> None:
        errors.setdefault(key, []).append(message)

    behavior = correction.behavior
    if behavior not in BEHAVIORS:
        add("behavior", f"choose one of {', '.join(BEHAVIORS)}")
        return errors
    if behavior in ("call", "sequence"):
        if not correction.calls:
            add("calls", "give at least one call")
        if behavior == "sequence" and len(correction.calls) < 2:
            add("calls", "a multi-step sequence needs at least two steps; use 'call' for one")
        for index, call in enumerate(correction.calls):
            name = str(call.get("name") or "")
            arguments = call.get("arguments")
            if name not in schemas:
                add(f"calls.{index}.name", f"'{name}' is not a tool of this service" if name else "choose a tool")
                continue
            if not isinstance(arguments, dict):
                add(f"calls.{index}.arguments", "arguments must be an object")
                continue
            for path, message in validate_arguments(schemas[name], arguments, allow_prev_refs=behavior == "sequence"):
                suffix = ".".join(str(p) for p in path)
                add(f"calls.{index}.arguments" + (f".{suffix}" if suffix else ""), message)
    if behavior in ("clarify", "ask_for_details") and not correction.question.strip():
        add("question", "write the question the assistant should ask")
    if behavior == "ask_for_details":
        tool_schema = schemas.get(correction.tool)
        if tool_schema is None:
            add("tool", "choose the tool whose details are missing")
        elif not correction.required_fields:
            add("required_fields", "tick the fields the user still has to give")
        else:
            required = set(tool_schema.get("required") or [])
            unknown = [f for f in correction.required_fields if f not in required]
            if unknown:
                add("required_fields", f"not required parameters of {correction.tool}: {', '.join(unknown)}")
    if behavior == "clarify" and correction.tool and correction.tool not in schemas:
        add("tool", f"'{correction.tool}' is not a tool of this service")
    if behavior == "abstain" and not correction.reason.strip():
        add("reason", "say why no tool fits the request")
    return errors
