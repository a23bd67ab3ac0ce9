"""Per-epoch surface variants of training records, so tuning does not memorise one enterprise's surface.

Tuning on a fixed set of tool names and phrasings teaches a small model to recall names
("newest order" -> list_orders) instead of reading the tools offered in the prompt, which is
what zero-shot tools need. ``augment_record(record, kinds, seed=, epoch=)`` returns the
variant of a record that epoch ``epoch`` trains on; epoch 0 is always the record itself, so
the number of examples and steps never changes, only what later epochs see.

Three kinds, each optional:

- ``phrasing``: the request (last user message) gets surface rewrites: polite prefixes and
  suffixes added, dropped or swapped, the first letter's case, trailing punctuation. Every
  argument value of the target that the request spells out must still appear verbatim, else
  the request stays as it was.
- ``tools``: the offered tools are shuffled and, sometimes, a few tools the record does not
  use are dropped (never below two, never one a call or step of the record names).
- ``names``: sometimes every offered tool is renamed by a synonym of its verb / noun parts
  (get -> fetch, order -> purchase ...), consistently in the tools, the target calls and
  steps, earlier assistant calls and tool messages, and text that names the tool.

The tool-list variants are drawn per (seed, epoch, tool set): records that offer the same
tools get the same list in an epoch, so they still share one prompt prefix when packed.
Phrasing is drawn per (seed, epoch, record id). Pure functions, no Django imports.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterable
from dataclasses import replace
from functools import lru_cache
from typing import Any

from ftops.core.records import Record, argument_values, tool_function

KINDS = ("phrasing", "tools", "names")
# How often an epoch's variant drops a few unused tools / renames the tools (per tool set).
DROP_PROBABILITY = 0.3
RENAME_PROBABILITY = 0.3
MIN_TOOLS = 2

PREFIXES = ("hi, ", "hello, ", "hey, ", "please, ", "please ", "quick one: ", "hi there, ", "ok, ", "so ")
SUFFIXES = (" please", ", thanks", " thanks", " asap", ", thank you", " pls", " - thanks")
ENDINGS = ("", ".", "?", "!")

# Synonym families for the parts of a snake_case tool name; a part is replaced by another
# member of its family. Verbs first, then a few common nouns.
FAMILIES: tuple[tuple[str, ...], ...] = (
    ("get", "fetch", "lookup", "retrieve", "find"),
    ("list", "search", "show"),
    ("create", "add", "open", "make"),
    ("update", "change", "set", "modify"),
    ("cancel", "stop", "void"),
    ("delete", "remove"),
    ("send", "dispatch"),
    ("check", "verify"),
    ("book", "reserve"),
    ("order", "purchase"),
    ("orders", "purchases"),
    ("customer", "client"),
    ("customers", "clients"),
    ("ticket", "case"),
    ("tickets", "cases"),
    ("invoice", "bill"),
    ("invoices", "bills"),
    ("latest", "newest", "recent", "last"),
    ("payment", "transaction"),
    ("payments", "transactions"),
    ("product", "item"),
    ("products", "items"),
    ("stock", "inventory"),
    ("status", "state"),
    ("refund", "reimburse"),
    ("lock", "block"),
    ("notify", "alert"),
)
_FAMILY_OF = {word: family for family in FAMILIES for word in family}


def parse_kinds(value: str) -> tuple[list[str], str]:
    """(kinds, error) for a config value such as "phrasing,tools,names" ("" is off)."""
    kinds = [k.strip() for k in value.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        return [], (f"unknown augmentation {', '.join(unknown)}: use a comma-separated list of "
                    f"{', '.join(KINDS)} (empty: off)")
    return sorted(set(kinds), key=KINDS.index), ""


def _rng(seed: int, epoch: int, *salt: str) -> random.Random:
    digest = hashlib.sha256(":".join([str(seed), str(epoch), *salt]).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _tool_name(tool: dict[str, Any]) -> str:
    return str(tool_function(tool).get("name", ""))


def _tool_set_key(record: Record) -> str:
    system = [m.get("content") for m in record.messages[:1] if m.get("role") == "system"]
    return json.dumps([sorted(_tool_name(t) for t in record.tools), system], sort_keys=True)


def used_tools(record: Record) -> set[str]:
    """Tools the record cannot lose: its target's calls and steps, and calls earlier in the conversation."""
    names = {record.tool} if record.tool else set()
    for key in ("calls", "steps"):
        for call in record.expected.get(key) or []:
            if isinstance(call, dict) and call.get("name"):
                names.add(str(call["name"]))
    for message in record.messages:
        for call in message.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and function.get("name"):
                names.add(str(function["name"]))
        if message.get("role") == "tool" and message.get("name"):
            names.add(str(message["name"]))
    return names


# --- phrasing -------------------------------------------------------------------------------

def _strip_known(text: str) -> tuple[str, str, str]:
    """(prefix, body, suffix): a known polite prefix / suffix split off the request, if any."""
    prefix = suffix = ""
    lower = text.lower()
    for p in sorted(PREFIXES, key=len, reverse=True):
        if lower.startswith(p.lower()) and len(text) > len(p):
            prefix, text = text[:len(p)], text[len(p):]
            break
    core = text.rstrip(".?! ")
    ending = text[len(core):]
    lower = core.lower()
    for s in sorted(SUFFIXES, key=len, reverse=True):
        if lower.endswith(s.lower()) and len(core) > len(s):
            suffix, core = core[len(core) - len(s):], core[:len(core) - len(s)]
            break
    return prefix, core + ending, suffix


def rephrase(text: str, values: Iterable[str], rng: random.Random) -> str:
    """A surface rewrite of ``text`` keeping every value it contains verbatim (else ``text`` itself)."""
    keep = [v for v in values if v and v in text]
    prefix, body, suffix = _strip_known(text.strip())
    core = body.rstrip(".?! ")
    ending = body[len(core):].strip()
    if not core:
        return text
    roll = rng.random()
    if roll < 0.35:
        prefix = rng.choice(PREFIXES)
    elif roll < 0.6:
        prefix = ""
    roll = rng.random()
    if roll < 0.35:
        suffix = rng.choice(SUFFIXES)
    elif roll < 0.6:
        suffix = ""
    if rng.random() < 0.5:
        ending = rng.choice(ENDINGS)
    if rng.random() < 0.4:
        core = (core[0].lower() if rng.random() < 0.5 else core[0].upper()) + core[1:]
    if prefix and prefix[-2:] in (", ", ": "):
        # After "hi," the request reads on in lower case, as people type it.
        core = core[0].lower() + core[1:] if rng.random() < 0.7 else core
    out = f"{prefix}{core}{suffix}{ending}"
    if prefix and rng.random() < 0.5:
        out = out[0].upper() + out[1:]
    if rng.random() < 0.1:
        out = out + " "
    if any(v not in out for v in keep):
        return text
    return out


def _rephrase_record(record: Record, seed: int, epoch: int) -> Record:
    index = next((i for i in range(len(record.messages) - 1, -1, -1)
                  if record.messages[i].get("role") == "user" and isinstance(record.messages[i].get("content"), str)),
                 None)
    if index is None:
        return record
    original = str(record.messages[index]["content"])
    rewritten = rephrase(original, argument_values(record.expected), _rng(seed, epoch, "phrasing", record.id))
    if rewritten == original:
        return record
    messages = [dict(m) for m in record.messages]
    messages[index]["content"] = rewritten
    return replace(record, messages=messages)


# --- tool list ------------------------------------------------------------------------------

def _shuffle_and_drop(record: Record, seed: int, epoch: int, key: str) -> Record:
    rng = _rng(seed, epoch, "tools", key)
    tools = list(record.tools)
    # One permutation of the sorted names per tool set, so equal sets get equal lists.
    order = sorted(range(len(tools)), key=lambda i: _tool_name(tools[i]))
    rng.shuffle(order)
    tools = [tools[i] for i in order]
    # A clarifying question may weigh two tools against each other: its list stays whole.
    if rng.random() < DROP_PROBABILITY and record.behavior != "clarify":
        candidates = sorted(_tool_name(t) for t in tools)
        rng.shuffle(candidates)
        planned = candidates[:rng.randint(1, max(1, len(tools) // 3))]
        needed = used_tools(record)
        room = len(tools) - MIN_TOOLS
        drop = [n for n in planned if n not in needed][:max(0, room)]
        tools = [t for t in tools if _tool_name(t) not in drop]
    return replace(record, tools=tools)


# --- tool names -----------------------------------------------------------------------------

def synonym_name(name: str, rng: random.Random) -> str:
    """``name`` with each snake_case part that has synonyms replaced by another one (keeps the part's case)."""
    parts = name.split("_")
    out = []
    for part in parts:
        family = _FAMILY_OF.get(part.lower())
        if family is None:
            out.append(part)
            continue
        choice = rng.choice([w for w in family if w != part.lower()])
        out.append(choice.upper() if part.isupper() and len(part) > 1 else
                   choice.capitalize() if part[:1].isupper() else choice)
    return "_".join(out)


def rename_map(names: list[str], rng: random.Random) -> dict[str, str]:
    """Old -> new for the names that get a synonym; new names never collide with any name in play."""
    taken = set(names)
    mapping: dict[str, str] = {}
    for name in sorted(names):
        new = synonym_name(name, rng)
        if new == name or new in taken:
            continue  # no synonym part, or the new name would collide: this one keeps its name
        taken.add(new)
        mapping[name] = new
    return mapping


@lru_cache(maxsize=256)
def _name_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    # A name only where it stands as an identifier of its own (not inside a longer name).
    return re.compile(r"(?<![\w.])(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
                      + r")(?![\w])")


def _rename_in_text(text: str, mapping: dict[str, str]) -> str:
    if not mapping or not any(name in text for name in mapping):
        return text
    return _name_pattern(tuple(sorted(mapping))).sub(lambda m: mapping[m.group(1)], text)


def _rename_tool(tool: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    # Copies only the dicts it changes: the schema itself is shared with the original.
    inner = tool.get("function")
    function: dict[str, Any] = dict(inner) if isinstance(inner, dict) else dict(tool)
    name = str(function.get("name", ""))
    function["name"] = mapping.get(name, name)
    if isinstance(function.get("description"), str):
        function["description"] = _rename_in_text(function["description"], mapping)
    return {**tool, "function": function} if isinstance(inner, dict) else function


def _rename_message(message: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    message = dict(message)
    role = message.get("role")
    if role in ("system", "assistant") and isinstance(message.get("content"), str):
        message["content"] = _rename_in_text(message["content"], mapping)
    if message.get("tool_calls"):
        calls = []
        for call in message["tool_calls"]:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and function.get("name") in mapping:
                call = {**call, "function": {**function, "name": mapping[function["name"]]}}
            calls.append(call)
        message["tool_calls"] = calls
    if role == "tool" and message.get("name") in mapping:
        message["name"] = mapping[message["name"]]
    return message


def rename_record(record: Record, mapping: dict[str, str]) -> Record:
    """The record with tools renamed by ``mapping`` everywhere a model sees or must produce a name."""
    if not mapping:
        return record
    expected = dict(record.expected)
    for key in ("calls", "steps"):
        if isinstance(expected.get(key), list):
            expected[key] = [{**call, "name": mapping[call["name"]]}
                             if isinstance(call, dict) and call.get("name") in mapping else call
                             for call in expected[key]]
    for key in ("question", "reason"):
        if isinstance(expected.get(key), str):
            expected[key] = _rename_in_text(expected[key], mapping)
    return replace(record, tool=mapping.get(record.tool, record.tool), expected=expected,
                   tools=[_rename_tool(t, mapping) for t in record.tools],
                   messages=[_rename_message(m, mapping) for m in record.messages])


def _rename(record: Record, seed: int, epoch: int, key: str) -> Record:
    rng = _rng(seed, epoch, "names", key)
    if rng.random() >= RENAME_PROBABILITY:
        return record
    return rename_record(record, rename_map([_tool_name(t) for t in record.tools], rng))


def augment_record(record: Record, kinds: Iterable[str], *, seed: int, epoch: int) -> Record:
    """The variant of ``record`` that epoch ``epoch`` trains on (epoch 0: the record itself)."""
    kinds = set(kinds)
    if epoch == 0 or not kinds:
        return record
    # Both tool draws key on the original tool set, so a drop does not change the renaming.
    key = _tool_set_key(record)
    out = record
    if "tools" in kinds:
        out = _shuffle_and_drop(out, seed, epoch, key)
    if "names" in kinds:
        out = _rename(out, seed, epoch, key)
    if "phrasing" in kinds:
        out = _rephrase_record(out, seed, epoch)
    return out
