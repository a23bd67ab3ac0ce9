"""A service's domain vocabulary: gathered once, stated as rules once (no Django imports).

A vocabulary document maps a topic to what the service means by it, in the catalog's
per-tool format, for example::

    {"amounts": {"rule": "ALL amounts in cents", "examples": {"$10": 1000}},
     "payment_states": {"our_values": ["pending", "completed"],
                        "user_might_say": {"completed": ["done", "went through"]}},
     "customer_identification": {"never_use_alone": ["name"], "reason": "Names are not unique"}}

Services and each of their tools may carry one. ``service_vocabulary`` folds them into the
one document a service stands for, and ``vocabulary_rules`` turns documents into the plain
sentences a prompt states. The caller reads the documents (the catalog does it with one
query) and passes plain data in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

EXAMPLES_SHOWN = 3  # a rule's examples beyond this add length, not understanding


def service_vocabulary(service: Mapping[str, Any] | None,
                       tools: Mapping[str, Mapping[str, Any] | None] | None = None) -> dict[str, Any]:
    """One service's vocabulary: its own topics, then its tools' topics (tools in name order).

    A tool topic the service lacks is added; one it repeats unchanged is dropped. A tool that
    means something else by a topic the service also defines keeps its own entry under
    ``"<topic> (<tool>)"``: both meanings reach the prompt, and neither silently overwrites
    the other (which one would win used to depend on the order rows came back).
    """
    merged: dict[str, Any] = dict(service or {})
    for tool_name in sorted(tools or {}):
        for topic, entry in ((tools or {}).get(tool_name) or {}).items():
            if topic not in merged:
                merged[topic] = entry
            elif merged[topic] != entry:
                merged[f"{topic} ({tool_name})"] = entry
    return merged


def vocabulary_rules(vocabularies: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """Readable rules from ``{service name: vocabulary document}``, services and topics sorted.

    Each line starts with the topic; with more than one service it starts with
    ``"<service> / <topic>"`` so that two services' "amounts" stay apart.
    """
    named = {name: doc for name, doc in vocabularies.items() if doc}
    rules: list[str] = []
    for service in sorted(named):
        for topic in sorted(named[service]):
            # "payment_states" reads "payment states"; a tool's name in "amounts (create_payment)" stays exact.
            head, bracket, tool = str(topic).partition(" (")
            label = head.replace("_", " ") + bracket + tool
            if len(named) > 1:
                label = f"{service} / {label}"
            rules += _entry_rules(label, named[service][topic])
    return rules


def _entry_rules(label: str, entry: Any) -> list[str]:
    if isinstance(entry, str):
        return [f"{label}: {entry}"]
    if not isinstance(entry, Mapping):
        return [f"{label}: {json.dumps(entry, ensure_ascii=False, sort_keys=True)}"]
    rules: list[str] = []
    examples = entry.get("examples")
    sample = ""
    if isinstance(examples, Mapping) and examples:
        sample = ", ".join(f"{k} -> {json.dumps(v, ensure_ascii=False)}"
                           for k, v in list(examples.items())[:EXAMPLES_SHOWN])
    if isinstance(entry.get("rule"), str) and entry["rule"]:
        rules.append(f"{label}: {entry['rule']}" + (f" (e.g. {sample})" if sample else ""))
    elif sample:
        rules.append(f"{label}, for example: {sample}")
    if isinstance(entry.get("reason"), str) and entry["reason"]:
        rules.append(f"{label}: {entry['reason']}")
    values = entry.get("our_values") or entry.get("acceptable")
    if isinstance(values, list) and values:
        rules.append(f"{label}: use only {', '.join(map(str, values))}")
    alone = entry.get("never_use_alone")
    if isinstance(alone, list) and alone:
        rules.append(f"{label}: never identify by {', '.join(map(str, alone))} alone")
    said = entry.get("user_might_say")
    if isinstance(said, Mapping):
        for value, phrases in said.items():
            if isinstance(phrases, list) and phrases:
                rules.append(f"{label}: users saying {', '.join(repr(str(p)) for p in phrases)} mean {value!r}")
    return rules
