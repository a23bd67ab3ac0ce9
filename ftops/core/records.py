"""Plain records shared by curation, training and evaluation (no Django imports).

A ``Record`` is what every consumer of a training example sees: the conversation up to the
request, the tools offered (OpenAI function format), the expected behaviour and what an
ideal assistant turn looks like. ``ftops.datasets.selectors.record_from_example`` builds
it from a ``TrainingExample`` row; ML code (``ftops/core/ml``, the model adapters)
takes records and never touches the ORM.

Expected behaviour (see ``TrainingExample``):
  call             expected = {"calls": [{"name", "arguments": {param: [acceptable, ...]}}]}
  sequence         expected = {"steps": [{"name", "arguments": {...}, "result": {...}?}]}
                   arguments may hold "{prev.field}" references to earlier results
  clarify          expected = {"question": str, "reason": str}
  ask_for_details  expected = {"required_fields": [str], "question": str}
  abstain          expected = {"reason": str}

Evaluation only (never a training example's behaviour, so not in ``BEHAVIORS``):
  multi_turn       expected = {"turns": [[message, ...] per user turn],
                               "ground_truth": [[call source, e.g. "cd(folder='x')", ...] per turn],
                               "involved_classes": [back-end class], "initial_config": {class: state}}
                   a BFCL multi-turn entry: the model's calls run against simulated back-ends
                   turn by turn (``ftops.evaluation.bfcl_multi_turn``); ``messages`` hold the
                   first turn, ``tools`` every function of the involved classes
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

BEHAVIORS = ("call", "sequence", "clarify", "ask_for_details", "abstain")
MULTI_TURN = "multi_turn"
PREV_REF = re.compile(r"^\{prev\.([A-Za-z_][A-Za-z0-9_]*)\}$")


@dataclass(frozen=True)
class Record:
    id: str
    service: str
    tool: str  # the primary tool ("" for abstain)
    messages: list[dict[str, Any]]  # system/user/assistant/tool messages before the answer
    tools: list[dict[str, Any]]  # [{"type": "function", "function": {name, description, parameters}}]
    behavior: str
    expected: dict[str, Any]
    split: str = ""  # train | validation | test | holdout ("" when unsplit)
    dimension: str = ""  # seen_phrasing | new_phrasing | zero_shot_tool | multi_step ("" when n/a)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def user_query(self) -> str:
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return str(message.get("content") or "")
        return ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        return cls(**data)


def first_acceptable(values: Any) -> tuple[bool, Any]:
    """The value an ideal answer sends for a parameter, and whether to send it at all.

    BFCL's possible-answer lists: the first non-"" value is canonical; a list holding only
    "" means the parameter is optional and best left out.
    """
    if not isinstance(values, list):
        return True, values
    for value in values:
        if value != "":
            return True, value
    return False, None


def canonical_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, values in arguments.items():
        send, value = first_acceptable(values)
        if send:
            out[name] = _canonical_value(value)
    return out


def _canonical_value(value: Any) -> Any:
    # Nested dict parameters follow the same possible-answer model one level down.
    if isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
        return canonical_arguments(value)
    return value


def target_calls(record: Record) -> list[dict[str, Any]]:
    """The calls of the first assistant turn an ideal model produces: [{name, arguments}]."""
    if record.behavior == "call":
        return [{"name": c["name"], "arguments": canonical_arguments(c.get("arguments", {}))}
                for c in record.expected.get("calls", [])]
    if record.behavior == "sequence":
        steps = record.expected.get("steps", [])
        return [{"name": steps[0]["name"], "arguments": dict(steps[0].get("arguments", {}))}] if steps else []
    return []


def target_text(record: Record) -> str:
    """The assistant's text for behaviours that make no call."""
    if record.behavior in ("clarify", "ask_for_details"):
        return str(record.expected.get("question") or "")
    if record.behavior == "abstain":
        return str(record.expected.get("reason") or "None of the available tools can do that.")
    return ""


def resolve_prev(arguments: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    """Replace "{prev.field}" by the most recent earlier result holding ``field``."""
    resolved: dict[str, Any] = {}
    for name, value in arguments.items():
        match = PREV_REF.match(value) if isinstance(value, str) else None
        if match:
            key = match.group(1)
            found = next((r[key] for r in reversed(results) if isinstance(r, dict) and key in r), value)
            resolved[name] = found
        else:
            resolved[name] = value
    return resolved


def tool_function(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool's function doc: the ``function`` of OpenAI's ``{"type", "function"}`` form, else the tool itself."""
    function = tool.get("function")
    return function if isinstance(function, dict) else tool


def arguments_json(arguments: dict[str, Any]) -> str:
    return json.dumps(arguments, ensure_ascii=False, separators=(", ", ": "))


def argument_values(expected: object) -> list[str]:
    """Every scalar argument value of an expected behaviour's calls or steps, as text (an integral
    float also as an int): what a request must spell out, to mask in phrasings or keep in rewrites."""
    out: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, bool) or value is None:
            return
        elif isinstance(value, float) and value.is_integer():
            out.extend([str(value), str(int(value))])
        else:
            out.append(str(value))

    if isinstance(expected, dict):
        for key in ("calls", "steps"):
            for call in expected.get(key) or []:
                if isinstance(call, dict):
                    walk(call.get("arguments", {}))
    return out
