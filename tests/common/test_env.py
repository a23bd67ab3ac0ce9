import re
import runpy
from pathlib import Path

import pytest

from ftops.common.env import SettingsError, env_bool, env_int, env_list, env_rate, env_url


def test_env_bool_accepts_known_spellings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_FLAG", "Yes")
    assert env_bool("X_FLAG", False) is True
    monkeypatch.setenv("X_FLAG", "0")
    assert env_bool("X_FLAG", True) is False


def test_env_bool_rejects_garbage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(SettingsError, match="X_FLAG='maybe' is not a boolean"):
        env_bool("X_FLAG", False)


def test_env_int_rejects_non_integer_and_negative(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_N", "ten")
    with pytest.raises(SettingsError, match="not an integer"):
        env_int("X_N", 1)
    monkeypatch.setenv("X_N", "-3")
    with pytest.raises(SettingsError, match="at least 0"):
        env_int("X_N", 1)


def test_env_list_splits_and_strips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_L", " a, b ,,c")
    assert env_list("X_L", []) == ["a", "b", "c"]
    monkeypatch.delenv("X_L")
    assert env_list("X_L", ["d"]) == ["d"]


def test_env_int_bounds_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_N", "0")
    with pytest.raises(SettingsError, match=r"^X_N=0 must be at least 1$"):
        env_int("X_N", 5, minimum=1)
    monkeypatch.setenv("X_N", "101")
    with pytest.raises(SettingsError, match=r"^X_N=101 must be at most 100$"):
        env_int("X_N", 5, maximum=100)
    monkeypatch.setenv("X_N", "100")
    assert env_int("X_N", 5, minimum=1, maximum=100) == 100


def test_env_rate_accepts_drf_rates_and_refuses_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    assert env_rate("X_RATE", "6000/min") == "6000/min"
    for given, kept in [("10/s", "10/s"), (" 500/Hour ", "500/hour"), ("3/days", "3/days"), ("60/sec", "60/sec")]:
        monkeypatch.setenv("X_RATE", given)
        assert env_rate("X_RATE", "6000/min") == kept
    for bad in ["fast", "100", "100/fortnight", "0/min", "-5/min", "100 / min", "1.5/min"]:
        monkeypatch.setenv("X_RATE", bad)
        with pytest.raises(SettingsError, match=rf"^X_RATE='{re.escape(bad)}' is not a request rate; use <count>/"):
            env_rate("X_RATE", "6000/min")


def test_env_url_checks_the_scheme_without_echoing_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    schemes = {"redis", "rediss", "amqp", "memory", "sqla"}
    assert env_url("X_URL", "", schemes=schemes, example="redis://h:6379/0") == ""
    for good in ["redis://h:6379/0", "rediss://:pw@h:6380/1", "memory://", "sqla+postgresql://u@h/db",
                 "redis://a:6379/0;redis://b:6379/0"]:
        monkeypatch.setenv("X_URL", good)
        assert env_url("X_URL", "", schemes=schemes, example="redis://h:6379/0", several=True) == good
    monkeypatch.setenv("X_URL", "notaurl")
    with pytest.raises(SettingsError, match=r"^X_URL is not a URL \(no scheme://\); expected e.g. redis://h:6379/0$"):
        env_url("X_URL", "", schemes=schemes, example="redis://h:6379/0")
    monkeypatch.setenv("X_URL", "http://user:s3cret@h/")
    with pytest.raises(SettingsError, match=r"^X_URL has the unsupported scheme 'http'; use one of") as caught:
        env_url("X_URL", "", schemes=schemes, example="redis://h:6379/0")
    assert "s3cret" not in str(caught.value)
    monkeypatch.setenv("X_URL", "redis://a:6379/0;bogus")
    with pytest.raises(SettingsError, match="no scheme"):
        env_url("X_URL", "", schemes=schemes, example="redis://h:6379/0", several=True)


SETTINGS_FILE = Path(__file__).resolve().parents[2] / "ftops" / "settings.py"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FTOPS_API_KEY_RATE", "fast", "FTOPS_API_KEY_RATE='fast' is not a request rate"),
        ("CELERY_BROKER_URL", "notaurl", "CELERY_BROKER_URL is not a URL (no scheme://)"),
        ("CELERY_BROKER_URL", "htp://h:6379/0", "CELERY_BROKER_URL has the unsupported scheme 'htp'"),
        ("REDIS_URL", "xx", "REDIS_URL is not a URL (no scheme://)"),
        ("REDIS_URL", "amqp://h//", "REDIS_URL has the unsupported scheme 'amqp'"),
        ("FTOPS_INGEST_MAX_BATCH", "0", "FTOPS_INGEST_MAX_BATCH=0 must be at least 1"),
        ("FTOPS_FAILURE_FEEDBACK_MAX", "6", "FTOPS_FAILURE_FEEDBACK_MAX=6 must be at most 5"),
    ],
)
def test_settings_refuse_malformed_values_at_start_up(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        runpy.run_path(str(SETTINGS_FILE))
    assert str(caught.value).startswith(message)


def test_settings_accept_the_documented_production_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"FTOPS_API_KEY_RATE": "100/second", "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
                        "REDIS_URL": "rediss://cache.internal:6380/1", "FTOPS_INGEST_MAX_BATCH": "1"}.items():
        monkeypatch.setenv(name, value)
    loaded = runpy.run_path(str(SETTINGS_FILE))
    assert loaded["REST_FRAMEWORK"]["DEFAULT_THROTTLE_RATES"] == {"api_key": "100/second"}
    assert loaded["CELERY_TASK_ALWAYS_EAGER"] is False
    assert loaded["FTOPS_INGEST_MAX_BATCH"] == 1
