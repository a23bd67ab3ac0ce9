"""Synthetic paraphrases through an OpenAI-compatible endpoint (the official ``openai`` client).

A variation is kept only when it still carries the request's argument values, is not a
near-duplicate (cosine >= dedup threshold) of the original, of the tool's other examples or
of a variation kept before it, and passes the same schema validation as any example. Kept
variations are source ``synthetic`` with ``parent`` = the original.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ftops.common.credentials import openai_client_for_credential
from ftops.common.errors import FtopsError, ValidationFailed
from ftops.core.records import canonical_arguments
from ftops.datasets.config import CurationConfig, load_config
from ftops.datasets.embeddings import Embedder
from ftops.datasets.models import ExampleStatus, Quality, Source, TrainingExample
from ftops.datasets.services.examples import example_create

SYSTEM_PROMPT = (
    "You write alternative phrasings of a user's request to a software assistant. Keep the meaning and keep every "
    "concrete value (ids, names, numbers, dates, emails) exactly as written. Vary vocabulary, word order, tone and "
    'length. Answer with JSON only: {"paraphrases": ["...", "..."]}.'
)


class SyntheticUnavailable(FtopsError):
    status_code = 503
    code = "synthetic_unavailable"


@dataclass
class ParaphraseReport:
    requested: int
    kept: list[int] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"requested": self.requested, "kept": self.kept, "rejected": self.rejected}


def parse_paraphrases(content: str) -> list[str]:
    """Paraphrases from a model answer: {"paraphrases": [...]}, a JSON list, or one per line."""
    text = content.strip()
    fenced = re.match(r"^```(?:json)?\s*(.*?)\s*```$", text, re.S)
    if fenced:
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        data = data.get("paraphrases")
    if isinstance(data, list):
        return [str(x).strip() for x in data if isinstance(x, str | int | float) and str(x).strip()]
    lines = [re.sub(r"^\s*(?:[-*]|\d+[.)])\s*", "", line).strip() for line in text.splitlines()]
    return [line for line in lines if line]


def _values_in_query(example: TrainingExample) -> list[str]:
    """Argument values the original request spells out; a paraphrase must keep them."""
    values: list[str] = []
    calls: list[dict[str, Any]] = []
    if example.behavior == "call":
        calls = [{"arguments": canonical_arguments(c.get("arguments", {}))} for c in example.expected.get("calls", [])]
    elif example.behavior == "sequence":
        calls = list(example.expected.get("steps", []))
    query = example.user_query.lower()
    for call in calls:
        for value in (call.get("arguments") or {}).values():
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                continue
            forms = {str(value)}
            if isinstance(value, float) and value.is_integer():
                forms.add(str(int(value)))
            present = [f for f in forms if f.lower() in query and not f.startswith("{prev.")]
            if present:
                values.append(present[0])
    return values


def openai_client(cfg: CurationConfig) -> Any:
    if not cfg.synthetic.credential:
        raise SyntheticUnavailable("synthetic paraphrases are off: set curation.synthetic.credential in "
                                   "ft_ops_config.yaml to the name of an upstream credential for an "
                                   "OpenAI-compatible endpoint")
    return openai_client_for_credential(cfg.synthetic.credential, timeout=60.0, max_retries=1)


def examples_paraphrase(
    *,
    example: TrainingExample,
    n: int | None = None,
    client: Any = None,
    model: str | None = None,
    config: CurationConfig | None = None,
    embedder: Embedder | None = None,
    actor: str = "",
) -> ParaphraseReport:
    cfg = config or load_config().curation
    n = cfg.synthetic.variations if n is None else n
    if n < 1 or n > 50:
        raise ValidationFailed("n must be between 1 and 50", fields={"n": ["between 1 and 50"]})
    if example.status != ExampleStatus.ACTIVE:
        raise ValidationFailed(f"example {example.pk} is {example.status}; only active examples are paraphrased")
    client = client or openai_client(cfg)
    model = model or cfg.synthetic.model
    import openai

    try:
        completion = client.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": f"Write {n} paraphrases of this request:\n{example.user_query}"},
            ],
            temperature=0.9,
        )
    except openai.OpenAIError as exc:
        raise SyntheticUnavailable(f"the paraphrase endpoint failed: {type(exc).__name__}: {exc}") from exc
    content = (completion.choices[0].message.content or "") if completion.choices else ""
    candidates = parse_paraphrases(content)[:n]
    report = ParaphraseReport(requested=n)
    rejected: Counter[str] = Counter()
    if not candidates:
        rejected["unparseable_answer"] += 1

    from ftops.datasets.embedding_store import db_embedder

    embedder = embedder or db_embedder()
    siblings = list(
        TrainingExample.objects.filter(service_id=example.service_id, tool=example.tool,
                                       status=ExampleStatus.ACTIVE).values_list("user_query", flat=True)[:5000]
    )
    pool = embedder.embed([example.user_query, *siblings]) if siblings else embedder.embed([example.user_query])
    kept_vectors: list[np.ndarray] = []
    must_keep = _values_in_query(example)
    for text in candidates:
        lowered = text.lower()
        if " ".join(lowered.split()) == " ".join(example.user_query.lower().split()):
            rejected["same_as_original"] += 1
            continue
        if any(v.lower() not in lowered for v in must_keep):
            rejected["lost_argument_value"] += 1
            continue
        vector = embedder.embed([text])[0]
        nearest = float((pool @ vector).max()) if len(pool) else -1.0
        if kept_vectors:
            nearest = max(nearest, float((np.stack(kept_vectors) @ vector).max()))
        if nearest >= cfg.dedup_threshold:
            rejected["near_duplicate"] += 1
            continue
        messages = [dict(m) for m in example.messages]
        for message in reversed(messages):
            if message.get("role") == "user":
                message["content"] = text
                break
        try:
            child = example_create(
                service=example.service, tool=example.tool, user_query=text, messages=messages, tools=example.tools,
                behavior=example.behavior, expected=example.expected, source=Source.SYNTHETIC,
                quality=Quality.MEDIUM, explanation=example.explanation, common_mistakes=example.common_mistakes,
                parent=example, provenance={"paraphrase_of": example.pk, "model": model}, actor=actor,
            )
        except ValidationFailed:
            rejected["schema_invalid"] += 1
            continue
        kept_vectors.append(vector)
        report.kept.append(child.pk)
    report.rejected = dict(sorted(rejected.items()))
    return report
