from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from ftops.datasets.config import ConfigError, load_config, parse_config


def test_repo_config_file_loads_with_all_sections() -> None:
    config = load_config(Path(settings.FTOPS_CONFIG_FILE))
    assert config.curation.quality_threshold == 4.0
    assert config.curation.dedup_threshold == 0.95
    assert config.curation.diversity_threshold == 0.9
    assert config.curation.filters.max_latency_ms == 10000
    assert (config.curation.splits.train, config.curation.splits.validation, config.curation.splits.test,
            config.curation.splits.holdout) == (0.6, 0.1, 0.1, 0.2)
    assert config.training.hyperparameters == {"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 0.1}
    assert config.evaluation.deployment_criteria.max_error_rate == 0.05
    assert config.deployment.strategy == "canary"


def test_empty_file_means_defaults() -> None:
    config = parse_config("")
    assert config.curation.min_examples == 100
    assert config.curation.filters.error_text == ["error", "exception", "traceback", "failed to"]


@pytest.mark.parametrize(("text", "message"), [
    ("curation: [1", "malformed YAML at line 1, column 13"),
    ("curation:\n  quality_threshold: 9", "curation.quality_threshold: 9.0 is out of range"),
    ("curation:\n  filtres: {}", "curation: unknown key(s) ['filtres']"),
    ("curation:\n  splits: {train: 0.5}", "train+validation+test+holdout must sum to 1.0, not 0.9"),
    ("curation:\n  filters:\n    error_text: error", "curation.filters.error_text: expected a list, got 'error'"),
    ("curation:\n  filters:\n    max_latency_ms: fast", "curation.filters.max_latency_ms: expected a whole number"),
    ("training:\n  platform: tpu", "training.platform: 'tpu' is not one of"),
    ("deployment:\n  auto_promote: 'yes'", "deployment.auto_promote: expected true or false"),
    ("- just\n- a list", "top level: expected a mapping"),
])
def test_bad_config_names_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(text, path="ft_ops_config.yaml")
    assert str(exc.value).startswith("ft_ops_config.yaml: ")
    assert message in str(exc.value)


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "nope.yaml")


def test_file_is_reloaded_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("curation:\n  min_examples: 5\n")
    assert load_config(path).curation.min_examples == 5
    path.write_text("curation:\n  min_examples: 7\n")
    import os

    os.utime(path, (1, 1))  # a different mtime even within the same second
    assert load_config(path).curation.min_examples == 7
