"""The few-shot prompt builder, for training and evaluation alike (no Django imports).

For a model that cannot be fine-tuned the "training" output is a system prompt: worked
examples plus the service's domain rules. The training backend writes it as the run's
artifact, and an evaluation run whose adapter says ``examples_from`` builds it here too, so
from the same records and rules both get the same prompt, character for character.

Selection rule (``select_examples``), in this order:

1. Coverage. Every tool the records offer or call, in name order, gets ``per_tool``
   examples that call it: single-call examples before sequences, then the examples with
   more arguments (they teach more of the schema), then a shuffle fixed by ``seed``. A tool
   no record calls is reported in ``tools_missing``. Coverage ignores both caps below: a
   prompt that never shows a tool teaches nothing about it.
2. Past failures. Records that came from review corrections (``meta["source"]``) and any
   the caller names, up to ``max_failures``, in the seeded order.
3. Diversity. One example of each behaviour that makes no plain call (ask for details,
   clarify, abstain, sequence) that no example chosen so far shows, in the seeded order.

Steps 2 and 3 stop at ``max_examples`` examples and skip an example that would push the
prompt past ``max_prompt_chars``. Nothing else is random; the same records, config and rules
give the same prompt. The prompt's cost in tokens is counted with the target model's
tokenizer when the caller has one, else estimated from its length.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ftops.core.ml.chat import render_assistant
from ftops.core.records import Record, target_calls, target_text

FAILURE_SOURCES = ("correction",)
OTHER_BEHAVIORS = ("ask_for_details", "clarify", "abstain", "sequence")
MAX_EXAMPLES_LIMIT = 200


@dataclass
class FewShotConfig:
    base_model: str = ""  # the model the prompt is written for (its tokenizer counts the cost)
    per_tool: int = 1
    max_failures: int = 8
    max_examples: int = 40  # coverage of every tool wins over this cap
    max_prompt_chars: int = 24000  # about 6k tokens; coverage wins over this cap too
    include_other_behaviors: bool = True
    seed: int = 0
    service: str = ""
    dataset_version: str = ""
    extra_rules: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FewShotConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown few-shot config fields: {', '.join(unknown)}")
        return cls(**data)

    def validate(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        for name, low, high in (("per_tool", 1, 20), ("max_failures", 0, MAX_EXAMPLES_LIMIT),
                                ("max_examples", 1, MAX_EXAMPLES_LIMIT), ("max_prompt_chars", 1, 10**6)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                errors[name] = f"must be an integer from {low} to {high}"
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            errors["seed"] = "must be an integer"
        if not isinstance(self.extra_rules, list) or not all(isinstance(r, str) for r in self.extra_rules):
            errors["extra_rules"] = "must be a list of strings"
        return errors


@dataclass
class FewShotPrompt:
    prompt: str
    example_ids: list[str]
    tools_covered: list[str]
    tools_missing: list[str]  # tools with no example in the records (cannot be covered)
    failures_included: int
    prompt_chars: int
    prompt_tokens: int
    token_count_method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Selection:
    examples: list[Record]
    tools_covered: list[str]
    tools_missing: list[str]


def tools_of(records: Iterable[Record]) -> list[str]:
    """Every tool name the records offer or expect, sorted."""
    names: set[str] = set()
    for record in records:
        for tool in record.tools:
            function = tool.get("function", tool)
            if function.get("name"):
                names.add(str(function["name"]))
        if record.tool:
            names.add(record.tool)
    return sorted(names)


def _steps(record: Record) -> list[dict[str, Any]]:
    return list(record.expected.get("calls") or record.expected.get("steps") or [])


def _called_tools(record: Record) -> set[str]:
    if record.behavior not in ("call", "sequence"):
        return set()
    return {str(c.get("name", "")) for c in _steps(record)} | ({record.tool} if record.tool else set())


def _shuffle_key(seed: int, record: Record) -> str:
    return hashlib.sha256(f"{seed}:{record.id}".encode()).hexdigest()


def _coverage_key(seed: int, record: Record) -> tuple[bool, int, str, str]:
    n_args = sum(len(c.get("arguments") or {}) for c in _steps(record))
    return (record.behavior != "call", -n_args, _shuffle_key(seed, record), record.id)


def select_examples(records: Sequence[Record], cfg: FewShotConfig,
                    failures: Sequence[Record] = (), *, rules: Sequence[str] = ()) -> Selection:
    """The examples the prompt shows, by the rule in the module docstring.

    ``rules`` are the prompt's rules, needed only to measure it against ``max_prompt_chars``.
    """
    pool = [r for r in records if not cfg.service or r.service == cfg.service]
    chosen: list[Record] = []
    seen: set[str] = set()

    def take(record: Record) -> None:
        seen.add(record.id)
        chosen.append(record)

    def room_for(record: Record) -> bool:
        if len(chosen) >= cfg.max_examples:
            return False
        return len(build_prompt([*chosen, record], rules=rules)) <= cfg.max_prompt_chars

    covered: list[str] = []
    missing: list[str] = []
    for name in tools_of(pool):
        candidates = sorted((r for r in pool if name in _called_tools(r)), key=lambda r: _coverage_key(cfg.seed, r))
        if not candidates:
            missing.append(name)
            continue
        covered.append(name)
        for record in [r for r in candidates if r.id not in seen][: cfg.per_tool]:
            take(record)

    by_id = {r.id: r for r in [*failures, *(r for r in pool if r.meta.get("source") in FAILURE_SOURCES)]}
    added = 0
    for record in sorted(by_id.values(), key=lambda r: (_shuffle_key(cfg.seed, r), r.id)):
        if added >= cfg.max_failures:
            break
        if record.id not in seen and room_for(record):
            take(record)
            added += 1

    if cfg.include_other_behaviors:
        for behavior in OTHER_BEHAVIORS:
            if any(r.behavior == behavior for r in chosen):
                continue
            match = sorted((r for r in pool if r.behavior == behavior and r.id not in seen),
                           key=lambda r: (_shuffle_key(cfg.seed, r), r.id))
            fitting = next((r for r in match if room_for(r)), None)
            if fitting is not None:
                take(fitting)
    return Selection(examples=chosen, tools_covered=covered, tools_missing=missing)


def schema_rules(records: Iterable[Record]) -> list[str]:
    """The enumerations of the offered tools' parameters, one line per tool argument, sorted."""
    found: dict[tuple[str, str], list[Any]] = {}
    for record in records:
        for tool in record.tools:
            function = tool.get("function", tool)
            properties = (function.get("parameters") or {}).get("properties") or {}
            for name, spec in properties.items():
                if isinstance(spec, Mapping) and isinstance(spec.get("enum"), list) and spec["enum"]:
                    found.setdefault((str(function.get("name")), str(name)), spec["enum"])
    return [f"{tool}.{name} is one of {', '.join(map(str, values))}" for (tool, name), values in sorted(found.items())]


def example_block(record: Record) -> str:
    """One worked example: the user's request and the ideal answer in the training format."""
    calls = target_calls(record)
    answer = render_assistant(calls, "" if calls else target_text(record))
    lines = [f"User: {record.user_query}", f"Assistant: {answer}"]
    if record.behavior == "sequence":
        plan = " -> ".join(f'{s.get("name")}({json.dumps(s.get("arguments") or {}, sort_keys=True)})'
                           for s in record.expected.get("steps") or [])
        lines.append(f"(then, using each result: {plan})")
    return "\n".join(lines)


def build_prompt(examples: Sequence[Record], *, rules: Sequence[str] = ()) -> str:
    """The system prompt: role, answer format, rules, worked examples."""
    services = sorted({r.service for r in examples if r.service})
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
        parts.append("Examples:\n\n" + "\n\n".join(example_block(r) for r in examples))
    return "\n\n".join(parts)


def count_tokens(text: str, tokenizer: Any = None) -> tuple[int, str]:
    if tokenizer is not None:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"]), "tokenizer"
    # About four characters per token for English and JSON with BPE tokenizers.
    return max(1, round(len(text) / 4)), "estimate_chars_div_4"


def build_fewshot(records: Sequence[Record], cfg: FewShotConfig, *, rules: Sequence[str] = (),
                  failures: Sequence[Record] = (), tokenizer: Any = None) -> FewShotPrompt:
    """The prompt for ``records`` (``rules``: the domain rules, e.g. from ``vocabulary_rules``)."""
    errors = cfg.validate()
    if errors:
        raise ValueError("invalid few-shot config: " + "; ".join(f"{k}: {v}" for k, v in errors.items()))
    pool = [r for r in records if not cfg.service or r.service == cfg.service]
    # Domain rules first, then the enumerations of every tool the pool offers (shown or not).
    all_rules = [*rules, *cfg.extra_rules, *schema_rules(pool)]
    selection = select_examples(pool, cfg, failures, rules=all_rules)
    prompt = build_prompt(selection.examples, rules=all_rules)
    tokens, method = count_tokens(prompt, tokenizer)
    failure_ids = {r.id for r in failures} | {r.id for r in pool if r.meta.get("source") in FAILURE_SOURCES}
    return FewShotPrompt(prompt=prompt, example_ids=[r.id for r in selection.examples],
                         tools_covered=selection.tools_covered, tools_missing=selection.tools_missing,
                         failures_included=sum(1 for r in selection.examples if r.id in failure_ids),
                         prompt_chars=len(prompt), prompt_tokens=tokens, token_count_method=method)
