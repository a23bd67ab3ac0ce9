"""Per-tool training-data documents for the acme enterprise, in the seed's per-tool format.

Extensions beyond the seed's format, all optional for importers:
  ``template``          on every example: which phrasing template produced it, so curation can
                        hold whole phrasings out ("new phrasings" split)
  ``acceptable_values`` on call examples: {param: [acceptable values]} where more than the
                        stated value is right ("" = may be left out, e.g. a default)
  ``correct_calls``     on parallel examples: [{"tool", "parameters"}]
  ``result``            on sequence steps: what the step returned, for ``{prev.x}`` references
  ``service_display_name`` / ``service_description`` on the document
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from random import Random
from typing import Any

from ftops.catalog.sample import pools as p
from ftops.catalog.sample.specs import (
    SERVICES,
    SERVICES_BY_NAME,
    TOOLS,
    TOOLS_BY_NAME,
    ToolSpec,
    abstain_slots,
    openai_tool,
    polite,
    render,
    service_tools,
)

ENTERPRISE = "acme"


@dataclass(frozen=True)
class SampleEnterprise:
    name: str
    seed: int
    services: list[dict[str, Any]]  # name, display_name, description, version, domain_vocabulary
    tool_documents: list[dict[str, Any]]

    @property
    def tool_names(self) -> list[str]:
        return [doc["tool"] for doc in self.tool_documents]

    def openai_tools(self, service: str) -> list[dict[str, Any]]:
        return [openai_tool(spec) for spec in service_tools(service)]

    def document(self, tool: str) -> dict[str, Any]:
        return next(doc for doc in self.tool_documents if doc["tool"] == tool)


def build_sample_enterprise(seed: int = 7, *, examples_per_tool: int = 30, variants_per_edge: int = 6,
                            variants_per_sequence: int = 6, abstain_per_tool: int = 3) -> SampleEnterprise:
    """The acme enterprise's per-tool documents; the same seed always gives the same documents."""
    services = [
        {"name": s.name, "display_name": s.display_name, "description": s.description, "version": s.version,
         "domain_vocabulary": s.vocabulary}
        for s in SERVICES
    ]
    docs = []
    abstain_seen: set[str] = set()  # abstain requests are per service: never repeat one across its tools
    for spec in TOOLS:
        # One stream per tool, so adding a tool never reshuffles the others' examples.
        r = Random(f"{ENTERPRISE}:{seed}:{spec.name}")
        docs.append(_document(spec, r, examples_per_tool, variants_per_edge, variants_per_sequence, abstain_per_tool,
                              abstain_seen))
    return SampleEnterprise(ENTERPRISE, seed, services, docs)


def _document(spec: ToolSpec, r: Random, n_calls: int, n_edge: int, n_seq: int, n_abstain: int,
              abstain_seen: set[str]) -> dict[str, Any]:
    service = SERVICES_BY_NAME[spec.service]
    seen: set[str] = set()
    examples: list[dict[str, Any]] = []

    n_parallel = 3 if spec.parallel else 0
    attempts = 0
    while len(examples) < n_calls - n_parallel and attempts < n_calls * 20:
        attempts += 1
        index = len(examples) % len(spec.phrases)
        case = spec.make(r)
        text, args, acceptable = render(spec, spec.phrases[index], case)
        query = polite(r, text)
        if query in seen:
            continue
        seen.add(query)
        example: dict[str, Any] = {
            "user_query": query,
            "correct_tool": spec.name,
            "correct_parameters": args,
            "explanation": spec.explanation,
            "common_mistakes": spec.mistakes(case, args),
            "template": f"{spec.name}#{index}",
        }
        if acceptable:
            example["acceptable_values"] = acceptable
        examples.append(example)

    if spec.parallel:
        for i in range(n_parallel):
            example = spec.parallel(r, i)
            if example["user_query"] not in seen:
                seen.add(example["user_query"])
                examples.append({**example, "template": f"{spec.name}#parallel{i % 3}"})

    for j, make_sequence in enumerate(spec.sequences):
        for i in range(n_seq):
            example = make_sequence(r, i)
            if example["user_query"] not in seen:
                seen.add(example["user_query"])
                examples.append({**example, "template": f"{spec.name}#seq{j}.{skeleton_id(example['user_query'])}"})

    edge_cases: list[dict[str, Any]] = []
    for j, make_edge in enumerate(spec.edges):
        for i in range(n_edge):
            edge = make_edge(r, i)
            if edge["user_query"] not in seen:
                seen.add(edge["user_query"])
                edge_cases.append({**edge, "template": f"{spec.name}#edge{j}.{skeleton_id(edge['user_query'])}"})

    tool_index = [t.name for t in service_tools(spec.service)].index(spec.name)
    for k in range(n_abstain):
        template_index = (tool_index * n_abstain + k) % len(service.abstain)
        query = service.abstain[template_index].format_map(abstain_slots(r))
        if query in seen or query in abstain_seen:
            continue
        seen.add(query)
        abstain_seen.add(query)
        edge_cases.append({
            "scenario": "No relevant tool",
            "user_query": query,
            "correct_behavior": {"action": "abstain",
                                 "reason": f"None of the {service.display_name.lower()} tools can do that; "
                                           "it needs another team or system."},
            "template": f"{spec.service}#abstain{template_index}",
        })

    return {
        "service": spec.service,
        "version": service.version,
        "tool": spec.name,
        "description": spec.description,
        "parameters": spec.parameters,
        "service_display_name": service.display_name,
        "service_description": service.description,
        "training_examples": examples,
        "edge_cases": edge_cases,
        "domain_vocabulary": spec.vocabulary,
    }


def _pool_words() -> list[str]:
    words: set[str] = set(p.FIRST_NAMES) | set(p.LAST_NAMES) | set(p.WAREHOUSES.values()) | set(p.CATEGORIES)
    words |= {name for _, name, _ in p.PRODUCTS}
    for table in (p.FULFILLMENT_WORDS, p.PAYMENT_STATUS_WORDS, p.REFUND_REASONS, p.CANCEL_REASONS,
                  p.ADJUST_REASONS, p.LOCK_REASONS):
        words |= {w for values in table.values() for w in values}
    words |= {"twenty", "fifteen", "fifty", "thirty", "desk", "chair", "monitor"}
    return sorted(words, key=len, reverse=True)


_WORDS = re.compile("|".join(re.escape(w) for w in _pool_words()))
_VALUES = re.compile(r"[\w.+-]+@[\w.-]+|[A-Z]{3}-[A-Z0-9]+|\+?\d[\d ().,-]*\d|\d")


def skeleton_id(query: str) -> str:
    """A short id of a query's wording with every slot value blanked out.

    Queries built from the same phrasing with different names, ids and amounts share it.
    """
    skeleton = _WORDS.sub("<w>", _VALUES.sub("<v>", query))
    return hashlib.sha1(skeleton.encode()).hexdigest()[:8]


def tool_spec(name: str) -> ToolSpec:
    return TOOLS_BY_NAME[name]
