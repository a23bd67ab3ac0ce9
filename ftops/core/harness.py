"""Run a model over records and aggregate the scores (no Django imports).

``evaluate_records`` is what evaluation runs, the demo and acceptance checks call: it asks
the adapter in batches (single-turn records together, multi-step records in lock-step turns),
scores every answer and returns an ``EvalReport`` that groups accuracy by category, service,
tool, split dimension or behaviour.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ftops.core.adapters import ModelAdapter, ModelOutput
from ftops.core.records import Record
from ftops.core.scoring import RecordScore, run_sequences, score_record, tag_request

GROUPS = ("category", "service", "tool", "dimension", "split", "behavior")
ProgressCallback = Callable[[int, int], None]


@dataclass
class RecordResult:
    record: Record
    score: RecordScore
    outputs: list[ModelOutput]

    @property
    def latency_ms(self) -> float:
        return sum(o.latency_ms for o in self.outputs)

    @property
    def prompt_tokens(self) -> int:
        return sum(o.prompt_tokens for o in self.outputs)

    @property
    def completion_tokens(self) -> int:
        return sum(o.completion_tokens for o in self.outputs)

    def group(self, key: str) -> str:
        if key == "category":
            return self.score.category
        if key == "behavior":
            return self.record.behavior
        return str(getattr(self.record, key, "") or "")


def percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def _rates(results: Sequence[RecordResult]) -> dict[str, Any]:
    n = len(results)
    return {
        "n": n,
        "exact": percent(sum(r.score.exact for r in results), n),
        "tool": percent(sum(r.score.tool for r in results), n),
        "args": percent(sum(r.score.args for r in results), n),
        "values": percent(sum(r.score.values for r in results), n),
    }


@dataclass
class EvalReport:
    results: list[RecordResult]
    model: str = ""
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.results)

    @property
    def exact(self) -> float:
        """Exact-match accuracy in percent (the headline metric)."""
        return percent(sum(r.score.exact for r in self.results), self.n)

    def overall(self) -> dict[str, Any]:
        return _rates(self.results)

    def accuracy_by(self, key: str) -> dict[str, dict[str, Any]]:
        """``{group: {"n", "exact", "tool", "args", "values"}}`` (percentages); groups with an
        empty value (e.g. no split dimension) are left out."""
        if key not in GROUPS:
            raise ValueError(f"group by one of {GROUPS}, not {key!r}")
        buckets: dict[str, list[RecordResult]] = {}
        for result in self.results:
            value = result.group(key)
            if value:
                buckets.setdefault(value, []).append(result)
        return {value: _rates(buckets[value]) for value in sorted(buckets)}

    def failures(self) -> list[RecordResult]:
        return [r for r in self.results if not r.score.exact]

    def latency(self) -> dict[str, float]:
        values = [r.latency_ms for r in self.results]
        return {"p50": round(percentile(values, 50), 2), "p95": round(percentile(values, 95), 2)}

    def tokens(self) -> dict[str, int]:
        return {"prompt": sum(r.prompt_tokens for r in self.results),
                "completion": sum(r.completion_tokens for r in self.results)}

    def summary(self) -> dict[str, Any]:
        """Everything a stored run keeps besides its failures (JSON-ready)."""
        return {
            "overall": self.overall(),
            "by_category": self.accuracy_by("category"),
            "by_service": self.accuracy_by("service"),
            "by_tool": self.accuracy_by("tool"),
            "by_dimension": self.accuracy_by("dimension"),
            "by_behavior": self.accuracy_by("behavior"),
            "latency_ms": self.latency(),
            "tokens": self.tokens(),
            "parse_errors": sum(1 for r in self.results if any(o.parse_error for o in r.outputs)),
            "seconds": round(self.seconds, 2),
        }


def evaluate_records(*, adapter: ModelAdapter, records: Sequence[Record], batch_size: int = 64,
                     on_progress: ProgressCallback | None = None) -> EvalReport:
    """Ask ``adapter`` about every record and score the answers, keeping the records' order."""
    started = time.perf_counter()
    total = len(records)
    by_index: dict[int, RecordResult] = {}
    singles = [(i, r) for i, r in enumerate(records) if r.behavior != "sequence"]
    sequences = [(i, r) for i, r in enumerate(records) if r.behavior == "sequence"]
    step = max(1, batch_size)
    for start in range(0, len(singles), step):
        chunk = singles[start:start + step]
        outputs = adapter.generate([(tag_request(r), list(r.tools)) for _, r in chunk])
        if len(outputs) != len(chunk):
            raise RuntimeError(f"{adapter.name} answered {len(outputs)} of {len(chunk)} requests")
        for (index, record), output in zip(chunk, outputs, strict=True):
            by_index[index] = RecordResult(record, score_record(record, output), [output])
        if on_progress:
            on_progress(len(by_index), total)
    for start in range(0, len(sequences), step):
        chunk = sequences[start:start + step]
        for (index, _), run in zip(chunk, run_sequences(adapter, [r for _, r in chunk]), strict=True):
            by_index[index] = RecordResult(run.record, run.score, run.outputs)
        if on_progress:
            on_progress(len(by_index), total)
    return EvalReport([by_index[i] for i in range(total)], model=getattr(adapter, "name", ""),
                      seconds=time.perf_counter() - started)
