import pytest

from ftops.common.env import SettingsError, env_bool, env_int, env_list


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
