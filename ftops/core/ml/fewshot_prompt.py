"""The few-shot prompt builder: examples plus domain rules in one system prompt (no Django imports).

For models that cannot be fine-tuned the "training" output is a prompt. Example choice:
first every tool is covered once (its richest call example), then past failures (records
that came from review corrections), then one example of each non-call behaviour, up to a
budget. The prompt's context cost in tokens is measured with the target model's tokenizer
when there is one, else estimated.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ftops.core.ml.lora import record_target
from ftops.core.records import Record

FAILURE_SOURCES = ("correction",)
OTHER_BEHAVIORS = ("ask_for_details", "clarify", "abstain", "sequence")


@dataclass
class FewShotConfig:
    base_model: str = ""  # the model the prompt is written for (its tokenizer counts the cost)
    per_tool: int = 1
    max_failures: int = 8
    max_examples: int = 40  # coverage of every tool wins over this cap
    include_other_behaviors: bool = True
    service: str = ""
    dataset_version: str = ""
    extra_rules: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FewShotConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown few-shot config fields: {', '.join(unknown)}")
        return cls(**data)

    def validate(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        if self.per_tool < 1:
            errors["per_tool"] = "must be >= 1"
        if self.max_failures < 0:
            errors["max_failures"] = "must be >= 0"
        if self.max_examples < 1:
            errors["max_examples"] = "must be >= 1"
        return errors


@dataclass
class FewShotPrompt:
    prompt: str
    example_ids: list[str]
    tools_covered: list[str]
    tools_missing: list[str]  # tools with no example in the records (cannot be covered)
    failures_included: int
    prompt_tokens: int
    token_count_method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _richness(record: Record) -> tuple[int, str]:
    calls = record.expected.get("calls") or record.expected.get("steps") or []
    n_args = sum(len(c.get("arguments") or {}) for c in calls)
    # Higher argument count first; the id breaks ties so the choice is stable.
    return (-n_args, record.id)


def tools_of(records: list[Record]) -> list[str]:
    """Every tool name the records offer or expect, sorted."""
    names: set[str] = set()
    for record in records:
        for tool in record.tools:
            function = tool.get("function", tool)
            if function.get("name"):
                names.add(function["name"])
        if record.tool:
            names.add(record.tool)
    return sorted(names)


def _called_tools(record: Record) -> set[str]:
    calls = record.expected.get("calls") or record.expected.get("steps") or []
    return {c.get("name", "") for c in calls} | ({record.tool} if record.tool else set())


def select_examples(records: list[Record], cfg: FewShotConfig,
                    failures: list[Record] | None = None) -> tuple[list[Record], list[str], list[str]]:
    """(chosen examples, tools covered, tools that no record demonstrates)."""
    pool = [r for r in records if not cfg.service or r.service == cfg.service]
    chosen: list[Record] = []
    seen: set[str] = set()

    def take(record: Record) -> None:
        if record.id not in seen:
            seen.add(record.id)
            chosen.append(record)

    all_tools = tools_of(pool)
    demos = [r for r in pool if r.behavior in ("call", "sequence")]
    covered: list[str] = []
    missing: list[str] = []
    for name in all_tools:
        candidates = sorted((r for r in demos if name in _called_tools(r) and r.behavior == "call"), key=_richness) \
            or sorted((r for r in demos if name in _called_tools(r)), key=_richness)
        if not candidates:
            missing.append(name)
            continue
        covered.append(name)
        for record in candidates[: cfg.per_tool]:
            take(record)
    failure_pool = list(failures or []) + [r for r in pool if r.meta.get("source") in FAILURE_SOURCES]
    added = 0
    for record in sorted(failure_pool, key=lambda r: r.id):
        if added >= cfg.max_failures or len(chosen) >= cfg.max_examples:
            break
        if record.id not in seen:
            take(record)
            added += 1
    if cfg.include_other_behaviors:
        for behavior in OTHER_BEHAVIORS:
            if len(chosen) >= cfg.max_examples:
                break
            match = sorted((r for r in pool if r.behavior == behavior and r.id not in seen), key=lambda r: r.id)
            if match:
                take(match[0])
    return chosen, covered, missing


def _example_block(record: Record) -> str:
    query = record.user_query
    lines = [f"User: {query}"]
    if record.behavior == "sequence":
        steps = record.expected.get("steps") or []
        plan = " -> ".join(f'{s.get("name")}({json.dumps(s.get("arguments") or {}, sort_keys=True)})'
                           for s in steps)
        lines.append(f"Assistant: {record_target(record)}")
        lines.append(f"(then, using each result: {plan})")
    else:
        lines.append(f"Assistant: {record_target(record)}")
    return "\n".join(lines)


def build_prompt(examples: list[Record], *, rules: list[str], services: list[str]) -> str:
    """The system prompt: role, output format, domain rules, worked examples."""
    scope = ", ".join(services) if services else "the enterprise's services"
    parts = [
        f"You call the tools of {scope} for the user.",
        "Answer with one <tool_call>{\"name\": ..., \"arguments\": {...}}</tool_call> per call, using the "
        "exact tool and parameter names from the tool list. If a required value is missing, ask for it. "
        "If no tool fits, say so in one sentence and call nothing.",
    ]
    if rules:
        parts.append("Domain rules:\n" + "\n".join(f"- {rule}" for rule in rules))
    if examples:
        parts.append("Examples:\n\n" + "\n\n".join(_example_block(r) for r in examples))
    return "\n\n".join(parts)


def count_tokens(text: str, tokenizer: Any = None) -> tuple[int, str]:
    if tokenizer is not None:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"]), "tokenizer"
    # About four characters per token for English and JSON with BPE tokenizers.
    return max(1, round(len(text) / 4)), "estimate_chars_div_4"


def domain_rules(vocabularies: dict[str, dict[str, Any]]) -> list[str]:
    """Readable rules from services' domain vocabularies (the per-tool document format).

    ``{"amounts": {"rule": "...", "examples": {"$10": 1000}}, "payment_states": {"our_values": [...],
    "user_might_say": {...}}}`` -> one line per entry.
    """
    rules: list[str] = []
    for service in sorted(vocabularies):
        for key, entry in sorted((vocabularies[service] or {}).items()):
            label = f"{service} / {key.replace('_', ' ')}"
            if not isinstance(entry, dict):
                rules.append(f"{label}: {entry}")
                continue
            if entry.get("rule"):
                text = str(entry["rule"])
                if isinstance(entry.get("examples"), dict) and entry["examples"]:
                    sample = ", ".join(f"{k} -> {json.dumps(v)}" for k, v in list(entry["examples"].items())[:3])
                    text += f" (e.g. {sample})"
                rules.append(f"{label}: {text}")
            if isinstance(entry.get("user_might_say"), dict):
                mapping = "; ".join(f"{', '.join(map(str, words))} -> {value}"
                                    for value, words in entry["user_might_say"].items())
                rules.append(f"{label}: {mapping}")
            elif entry.get("our_values"):
                rules.append(f"{label}: one of {', '.join(map(str, entry['our_values']))}")
            if entry.get("reason") and not entry.get("rule"):
                rules.append(f"{label}: {entry['reason']}")
    return rules


def build_fewshot(records: list[Record], cfg: FewShotConfig, *, rules: list[str] | None = None,
                  failures: list[Record] | None = None, tokenizer: Any = None) -> FewShotPrompt:
    errors = cfg.validate()
    if errors:
        raise ValueError("invalid few-shot config: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    examples, covered, missing = select_examples(records, cfg, failures)
    services = sorted({r.service for r in examples})
    prompt = build_prompt(examples, rules=[*(rules or []), *cfg.extra_rules], services=services)
    tokens, method = count_tokens(prompt, tokenizer)
    failure_ids = {r.id for r in failures or []} | {r.id for r in records if r.meta.get("source") in FAILURE_SOURCES}
    return FewShotPrompt(prompt=prompt, example_ids=[r.id for r in examples], tools_covered=covered,
                         tools_missing=missing, failures_included=sum(1 for r in examples if r.id in failure_ids),
                         prompt_tokens=tokens, token_count_method=method)
