"""The pipeline's YAML configuration (``ft_ops_config.yaml``), parsed strictly.

Sections curation, training, evaluation and deployment, in the shape of the seed's
``ft_ops_config.yaml``. Every key is checked: an unknown key, a wrong type or a value out
of range raises ``ConfigError`` naming the key path and the file, so a typo never falls
back to a default silently. ``load_config()`` caches by file modification time.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """The configuration file is missing, malformed or holds a bad value."""


def _range(lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    return {"range": (lo, hi)}


@dataclass(frozen=True)
class FilterConfig:
    min_query_chars: int = field(default=3, metadata=_range(0))
    max_query_chars: int = field(default=2000, metadata=_range(1))
    max_response_chars: int = field(default=5000, metadata=_range(1))
    max_latency_ms: int = field(default=10000, metadata=_range(1))
    error_text: list[str] = field(default_factory=lambda: ["error", "exception", "traceback", "failed to"])
    schema_valid_calls_only: bool = True


@dataclass(frozen=True)
class TriggerConfig:
    error_pattern_min_failures: int = field(default=10, metadata=_range(1))
    error_pattern_similarity: float = field(default=0.8, metadata=_range(0, 1))
    stale_accuracy_days: int = field(default=30, metadata=_range(1))
    lookback_days: int = field(default=30, metadata=_range(1))


@dataclass(frozen=True)
class SplitConfig:
    train: float = field(default=0.6, metadata=_range(0, 1))
    validation: float = field(default=0.1, metadata=_range(0, 1))
    test: float = field(default=0.1, metadata=_range(0, 1))
    holdout: float = field(default=0.2, metadata=_range(0, 1))
    zero_shot_tool_fraction: float = field(default=0.2, metadata=_range(0, 0.9))
    new_phrasing_fraction: float = field(default=0.2, metadata=_range(0, 0.9))
    # Of the sequences whose tools are all seen tools, the share (whole phrasing groups) that
    # trains; the rest stay evaluation-only (multi_step). 0: every sequence is evaluation-only.
    sequence_train_share: float = field(default=0.5, metadata=_range(0, 1))
    test_composition: dict[str, float] = field(
        default_factory=lambda: {"seen_phrasing": 0.4, "new_phrasing": 0.4, "zero_shot_tool": 0.2}
    )
    time_holdout_days: int = field(default=0, metadata=_range(0))


@dataclass(frozen=True)
class SyntheticConfig:
    # The name of an upstream credential (``manage.py upstream_credential set``): the endpoint
    # and its key come from there, never from this file. Empty = synthetic paraphrases off.
    credential: str = ""
    model: str = "gpt-4o-mini"
    variations: int = field(default=3, metadata=_range(1, 50))


@dataclass(frozen=True)
class CurationConfig:
    min_examples: int = field(default=100, metadata=_range(1))
    quality_threshold: float = field(default=4.0, metadata=_range(1, 5))
    diversity_threshold: float = field(default=0.9, metadata=_range(0, 1))
    dedup_threshold: float = field(default=0.95, metadata=_range(0, 1))
    filters: FilterConfig = field(default_factory=FilterConfig)
    triggers: TriggerConfig = field(default_factory=TriggerConfig)
    splits: SplitConfig = field(default_factory=SplitConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass(frozen=True)
class TrainingConfig:
    platform: str = field(default="huggingface", metadata={"choices": ("huggingface", "openai", "fewshot")})
    base_model: str = "ftops-tiny-base"
    hyperparameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeploymentCriteria:
    min_accuracy_improvement: float = field(default=0.05, metadata=_range(-1, 1))
    max_latency_increase_ms: float = field(default=200, metadata=_range(0))
    max_error_rate: float = field(default=0.05, metadata=_range(0, 1))
    # Release gates (registry.gates): accuracy shares are fractions (0.02 = 2 points).
    max_regression_points: float = field(default=0.02, metadata=_range(0, 1))
    min_accuracy_required: float = field(default=0.98, metadata=_range(0, 1))
    service_min_accuracy: dict[str, float] = field(default_factory=dict)
    min_cases: int = field(default=20, metadata=_range(1))
    min_group_cases: int = field(default=5, metadata=_range(1))
    partial_max_failing_share: float = field(default=0.2, metadata=_range(0, 1))
    critical_failing_share: float = field(default=0.5, metadata=_range(0, 1))


# Accuracy targets (fractions) per category family, from the seeds; ftops.evaluation.selectors
# maps each run category to one (a category's own name in the mapping wins).
DEFAULT_TARGETS = {"simple": 0.95, "multiple": 0.90, "parallel": 0.85, "relevance": 0.80, "multi_turn": 0.70}


@dataclass(frozen=True)
class EvaluationConfig:
    test_split: float = field(default=0.2, metadata=_range(0, 1))
    metrics: list[str] = field(default_factory=lambda: ["accuracy", "latency"])
    deployment_criteria: DeploymentCriteria = field(default_factory=DeploymentCriteria)
    targets: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TARGETS))


@dataclass(frozen=True)
class DeploymentConfig:
    strategy: str = field(default="canary", metadata={"choices": ("canary", "direct", "shadow")})
    canary_traffic: float = field(default=0.1, metadata=_range(0, 1))
    canary_duration_hours: float = field(default=24, metadata=_range(0))
    auto_promote: bool = False


@dataclass(frozen=True)
class HygieneConfig:
    """Scheduled data hygiene (``ftops.loop.hygiene``): each run builds a new dataset version with a note.

    Every N months (0: off) on ``day`` at ``time``: a holdout refresh re-draws the test and
    holdout splits (a new seed); a zero-shot rotation holds the next window of tools out of training.
    """

    holdout_refresh_months: int = field(default=3, metadata={"choices": (0, 1, 2, 3, 4, 6, 12)})
    zero_shot_rotation_months: int = field(default=1, metadata={"choices": (0, 1, 2, 3, 4, 6, 12)})
    day: int = field(default=1, metadata=_range(1, 28))  # day of the month
    time: str = "03:00"  # HH:MM in the server's time zone


@dataclass(frozen=True)
class LoopConfig:
    """Improvement cycles (``ftops.loop``): when they run and how the train stage picks a backend."""

    schedule_enabled: bool = True
    schedule_day: str = field(default="sunday", metadata={"choices": (
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "daily")})
    schedule_time: str = "02:00"  # HH:MM in the server's time zone
    # A flapping trigger starts at most one cycle per scope in this window.
    cooldown_hours: float = field(default=6, metadata=_range(0))
    backend: str = field(default="auto", metadata={"choices": ("auto", "lora", "openai", "fewshot")})
    privacy_sensitive: bool = True  # data may not leave the enterprise (rules out OpenAI fine-tuning)
    monthly_budget_usd: float = field(default=0, metadata=_range(0))  # 0: no budget for a hosted fine-tune
    max_latency_ms: float = field(default=500, metadata=_range(1))  # what callers tolerate per request
    min_finetune_examples: int = field(default=50, metadata=_range(1))  # fewer: a few-shot prompt
    hygiene: HygieneConfig = field(default_factory=HygieneConfig)


@dataclass(frozen=True)
class FtopsConfig:
    curation: CurationConfig = field(default_factory=CurationConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    deployment: DeploymentConfig = field(default_factory=DeploymentConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    path: str = ""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected a whole number, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _key, item = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        if item is Any:
            return dict(value)
        return {str(k): _convert(v, item, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, types.UnionType):
        return value
    raise ConfigError(f"{where}: unsupported type {_type_name(tp)}")  # pragma: no cover - programming error


def _build(cls: Any, data: Any, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'top level'}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.name != "path"}
    unknown = sorted(set(map(str, data)) - set(known))
    if unknown:
        raise ConfigError(f"{where or 'top level'}: unknown key(s) {unknown}; known keys are {sorted(known)}")
    kwargs = {}
    for name, f in known.items():
        if name not in data:
            continue
        key = f"{where}.{name}" if where else name
        value = _convert(data[name], hints[name], key)
        lo, hi = f.metadata.get("range", (None, None))
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            bounds = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
            raise ConfigError(f"{key}: {value!r} is out of range; expected a value {bounds}")
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {list(choices)}")
        kwargs[name] = value
    return cls(**kwargs)


def _check_consistency(config: FtopsConfig) -> None:
    s = config.curation.splits
    total = s.train + s.validation + s.test + s.holdout
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"curation.splits: train+validation+test+holdout must sum to 1.0, not {total:g}")
    comp = s.test_composition
    if set(comp) != {"seen_phrasing", "new_phrasing", "zero_shot_tool"}:
        raise ConfigError("curation.splits.test_composition: give exactly seen_phrasing, new_phrasing, zero_shot_tool")
    if abs(sum(comp.values()) - 1.0) > 1e-6:
        raise ConfigError(f"curation.splits.test_composition: shares must sum to 1.0, not {sum(comp.values()):g}")
    for name, target in config.evaluation.targets.items():
        if not 0 <= target <= 1:
            raise ConfigError(f"evaluation.targets.{name}: {target!r} is out of range; expected a value "
                              "between 0 and 1")
    f = config.curation.filters
    if f.min_query_chars > f.max_query_chars:
        raise ConfigError("curation.filters: min_query_chars is larger than max_query_chars")
    if config.curation.diversity_threshold > config.curation.dedup_threshold:
        raise ConfigError("curation: diversity_threshold must not exceed dedup_threshold")


def parse_config(text: str, *, path: str = "<string>") -> FtopsConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from exc
    try:
        config = _build(FtopsConfig, data, "")
        _check_consistency(config)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return dataclasses.replace(config, path=path)


_cache: dict[str, tuple[float, FtopsConfig]] = {}


def config_path() -> Path:
    from django.conf import settings

    return Path(getattr(settings, "FTOPS_CONFIG_FILE", "") or os.environ.get("FTOPS_CONFIG_FILE", "ft_ops_config.yaml"))


def load_config(path: str | Path | None = None) -> FtopsConfig:
    """The configuration from ``path`` (default: settings.FTOPS_CONFIG_FILE); defaults if the file is absent."""
    p = Path(path) if path is not None else config_path()
    if not p.exists():
        if path is not None:
            raise ConfigError(f"{p}: configuration file not found")
        return FtopsConfig(path="(defaults)")
    mtime = p.stat().st_mtime
    cached = _cache.get(str(p))
    if cached and cached[0] == mtime:
        return cached[1]
    config = parse_config(p.read_text(encoding="utf-8"), path=str(p))
    _cache[str(p)] = (mtime, config)
    return config
