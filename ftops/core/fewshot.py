"""Few-shot prompts from dataset records (no Django imports).

Selection follows the prompt-engineering path of our design notes: first one example per
tool so that every tool has been shown once, then the cases the model got wrong, then more
of the rest in dataset order, up to ``max_examples``. The prompt ends with the domain rules
of the tools' vocabulary (units, accepted values, what users call things).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ftops.core.adapters import FewShotAdapter, ModelAdapter, ModelOutput
from ftops.core.records import Record, target_calls, target_text
from ftops.core.scoring import score_record

INTRO = ("You call tools to serve the user's request. Answer with one <tool_call> per call, holding JSON "
         "{\"name\": ..., \"arguments\": {...}}. Ask when required details are missing, and say so "
         "when no tool fits.")


def select_examples(pool: Sequence[Record], *, wrong_ids: Iterable[str] = (), max_examples: int = 8) -> list[Record]:
    wrong = set(wrong_ids)
    chosen: list[Record] = []
    seen_ids: set[str] = set()
    covered: set[str] = set()

    def take(record: Record) -> None:
        chosen.append(record)
        seen_ids.add(record.id)

    # A tool's plain "call" example teaches its arguments best, so prefer it for coverage.
    ranked = sorted(pool, key=lambda r: (r.behavior != "call", r.id not in wrong))
    for record in ranked:
        if len(chosen) >= max_examples:
            break
        if record.tool and record.tool not in covered:
            covered.add(record.tool)
            take(record)
    for record in pool:
        if len(chosen) >= max_examples:
            break
        if record.id in wrong and record.id not in seen_ids:
            take(record)
    for record in pool:
        if len(chosen) >= max_examples:
            break
        if record.id not in seen_ids:
            take(record)
    return chosen


def example_answer(record: Record) -> str:
    from ftops.core.ml.chat import render_assistant

    if record.behavior == "sequence":
        steps = record.expected.get("steps") or []
        return "\n".join(render_assistant([{"name": s["name"], "arguments": s.get("arguments") or {}}])
                         + "  (then wait for its result)" for s in steps)
    calls = target_calls(record)
    return render_assistant(calls, target_text(record))


def vocabulary_rules(vocabulary: Mapping[str, Any] | None) -> list[str]:
    """Readable rules from a ``domain_vocabulary`` document (the per-tool training format)."""
    rules: list[str] = []
    for topic, entry in (vocabulary or {}).items():
        label = str(topic).replace("_", " ")
        if isinstance(entry, str):
            rules.append(f"{label}: {entry}")
            continue
        if not isinstance(entry, Mapping):
            continue
        for key in ("rule", "reason"):
            if isinstance(entry.get(key), str):
                rules.append(f"{label}: {entry[key]}")
        if isinstance(entry.get("examples"), Mapping):
            pairs = ", ".join(f"{k} -> {v}" for k, v in entry["examples"].items())
            rules.append(f"{label}, for example: {pairs}")
        values = entry.get("our_values") or entry.get("acceptable")
        if isinstance(values, list) and values:
            rules.append(f"{label}: use only {', '.join(map(str, values))}")
        if isinstance(entry.get("never_use_alone"), list):
            rules.append(f"{label}: never identify by {', '.join(map(str, entry['never_use_alone']))} alone")
        said = entry.get("user_might_say")
        if isinstance(said, Mapping):
            for value, phrases in said.items():
                if isinstance(phrases, list) and phrases:
                    rules.append(f"{label}: users saying {', '.join(repr(p) for p in phrases)} mean {value!r}")
    return rules


def schema_rules(records: Iterable[Record]) -> list[str]:
    """Enumerations in the offered tools' schemas, stated once per tool argument."""
    rules: list[str] = []
    seen: set[tuple[str, str]] = set()
    for record in records:
        for tool in record.tools:
            function = tool.get("function", tool)
            properties = (function.get("parameters") or {}).get("properties") or {}
            for name, spec in properties.items():
                key = (str(function.get("name")), name)
                if key in seen or not isinstance(spec, Mapping) or not spec.get("enum"):
                    continue
                seen.add(key)
                rules.append(f"{key[0]}.{name} is one of {', '.join(map(str, spec['enum']))}")
    return rules


def build_prompt(examples: Sequence[Record], *, vocabulary: Mapping[str, Any] | None = None,
                 intro: str = INTRO) -> str:
    parts = [intro, "", "Examples:"]
    for number, record in enumerate(examples, start=1):
        parts.append(f"{number}. User: {record.user_query}")
        parts.append(f"   Assistant: {example_answer(record)}")
    rules = vocabulary_rules(vocabulary) + schema_rules(examples)
    if rules:
        parts += ["", "Rules:"] + [f"- {rule}" for rule in rules]
    return "\n".join(parts)


def fewshot_adapter_from_records(inner: ModelAdapter, pool: Sequence[Record], *, max_examples: int = 8,
                                 vocabulary: Mapping[str, Any] | None = None,
                                 score: Callable[[Record, ModelOutput], bool] | None = None) -> FewShotAdapter:
    """A few-shot adapter whose examples come from ``pool``: one per tool first, then cases ``inner`` gets wrong.

    ``score(record, output) -> exact`` defaults to the evaluation scorer; the pool is run
    through ``inner`` once to find those cases. It lives here rather than on the adapter so
    that adapters never import scoring (scoring reads adapters' outputs).
    """
    candidates = [r for r in pool if r.behavior != "sequence"]
    outputs = inner.generate([(list(r.messages), list(r.tools)) for r in candidates]) if candidates else []
    judge = score or (lambda record, output: score_record(record, output).exact)
    wrong = {r.id for r, o in zip(candidates, outputs, strict=True) if not judge(r, o)}
    examples = select_examples(pool, wrong_ids=wrong, max_examples=max_examples)
    return FewShotAdapter(inner, build_prompt(examples, vocabulary=vocabulary))
