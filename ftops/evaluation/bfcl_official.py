"""BFCL's own checker, from the ``bfcl-eval`` package, as an oracle (no Django imports).

ftops never needs ``bfcl-eval`` to run: its checker (``ftops.core.checker``) is pure Python.
The package is a test and evaluation dependency, installed by ``make install`` with
``scripts/install-bfcl-eval`` (``--no-deps``: its AST checker needs only the standard library
and its multi-turn back-ends ``mpmath``; the dozen provider SDKs it pins are never imported).
Everything here imports it lazily and says how to install it when it is missing.

``bfcl_eval.eval_checker.ast_eval.ast_checker`` imports the leaderboard's model table, which
imports every provider SDK; when those are absent a stand-in table with ftops' two naming
conventions is registered first, the one thing the checker reads from it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BFCL_EVAL_VERSION = "2026.3.23"
INSTALL_HINT = (
    f"bfcl-eval is not installed; install it with `scripts/install-bfcl-eval` (or `make install`), i.e. "
    f"`.venv/bin/pip install --no-deps bfcl-eval=={BFCL_EVAL_VERSION} mpmath==1.3.0`"
)
# Model names the oracle is called with: BFCL reads only ``underscore_to_dot`` from their config.
MODEL_UNDERSCORE = "ftops-underscore-to-dot"
MODEL_DOTS = "ftops-dotted-names"


class BfclEvalMissing(ImportError):
    """``bfcl-eval`` is not installed; the message says how to install it."""


@dataclass(frozen=True)
class _ModelConfig:
    underscore_to_dot: bool


def installed() -> bool:
    return importlib.util.find_spec("bfcl_eval") is not None


def package_data_dir() -> Path | None:
    """The data folder ``bfcl-eval`` ships (questions and possible answers), without importing it."""
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "data"
        if candidate.is_dir():
            return candidate
    return None


def _require() -> None:
    if not installed():
        raise BfclEvalMissing(INSTALL_HINT)


def _model_table() -> None:
    """Make sure the model table the AST checker imports exists and knows ftops' two names."""
    name = "bfcl_eval.constants.model_config"
    module = sys.modules.get(name)
    if module is None:
        try:
            module = importlib.import_module(name)
        except ImportError:  # provider SDKs absent (the --no-deps install): a stand-in table
            module = types.ModuleType(name)
            module.MODEL_CONFIG_MAPPING = {}  # type: ignore[attr-defined]
            sys.modules[name] = module
    table = module.MODEL_CONFIG_MAPPING
    table.setdefault(MODEL_UNDERSCORE, _ModelConfig(True))
    table.setdefault(MODEL_DOTS, _ModelConfig(False))


def ast_checker_module() -> Any:
    """``bfcl_eval.eval_checker.ast_eval.ast_checker``, importable without the provider SDKs."""
    _require()
    _model_table()
    return importlib.import_module("bfcl_eval.eval_checker.ast_eval.ast_checker")


def backend_class(class_name: str) -> type:
    """One of the multi-turn back-end classes ``bfcl-eval`` ships (``GorillaFileSystem``, ...)."""
    _require()
    config = importlib.import_module("bfcl_eval.constants.executable_backend_config")
    module_name = config.CLASS_FILE_PATH_MAPPING.get(class_name)
    if module_name is None:
        raise KeyError(f"bfcl-eval has no back-end class {class_name!r}")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls  # type: ignore[no-any-return]


def stateless_classes() -> frozenset[str]:
    _require()
    config = importlib.import_module("bfcl_eval.constants.executable_backend_config")
    return frozenset(config.STATELESS_CLASSES)


class _Checkers:
    """The official functions, resolved once."""

    def __init__(self) -> None:
        checker = ast_checker_module()
        enums = importlib.import_module("bfcl_eval.constants.enums")
        self.ast_checker = checker.ast_checker
        self.language = {"python": enums.Language.PYTHON, "java": enums.Language.JAVA,
                         "javascript": enums.Language.JAVASCRIPT}


_checkers: _Checkers | None = None


def checkers() -> _Checkers:
    global _checkers
    if _checkers is None:
        _checkers = _Checkers()
    return _checkers


def _is_call_list(output: Any) -> bool:
    # bfcl_eval.utils.is_function_calling_format_output (bfcl_eval.utils imports more than we need).
    if type(output) is not list:
        return False
    return all(type(item) is dict and len(item) == 1 and type(next(iter(item.values()))) is dict for item in output)


def _is_empty(output: Any) -> bool:
    # bfcl_eval.utils.is_empty_output
    if not _is_call_list(output):
        return True
    return len(output) == 0 or (len(output) == 1 and len(output[0]) == 0)


def official_verdict(
    category: str,
    functions: Sequence[Mapping[str, Any]],
    output: Any,
    ground_truth: Sequence[Mapping[str, Any]] | None,
    *,
    underscore_to_dot: bool = True,
) -> tuple[bool, str]:
    """``(valid, error_type)`` as BFCL's evaluation runner decides them for an already decoded
    output (the steps of ``eval_runner`` after ``decode_ast``); ``crash:<Exception>`` where
    the official checker raises."""
    name = category.lower()
    if "relevance" in name:  # irrelevance too
        empty = _is_empty(output)
        if "irrelevance" in name:
            return (True, "") if empty else (False, "irrelevance_error:decoder_success")
        return (False, "relevance_error:decoder_failed") if empty else (True, "")
    if type(output) is not list:
        return False, "ast_decoder:decoder_failed"
    if not _is_call_list(output):
        return False, "ast_decoder:decoder_wrong_output_format"
    found = checkers()
    language = found.language["javascript" if "javascript" in name else "java" if "java" in name else "python"]
    try:
        result = found.ast_checker(list(functions), output, list(ground_truth or []), language, category,
                                   MODEL_UNDERSCORE if underscore_to_dot else MODEL_DOTS)
    except Exception as exc:  # the oracle's own failure is a verdict to compare
        return False, f"crash:{type(exc).__name__}"
    return bool(result["valid"]), "" if result["valid"] else str(result.get("error_type", ""))


_oracle_runs = 0


def official_multi_turn_verdict(result: list[list[list[str]]], ground_truth: list[list[str]],
                                entry: Mapping[str, Any]) -> tuple[bool, str]:
    """``(valid, error_type)`` from BFCL's own ``multi_turn_checker`` for decoded steps (call
    strings). BFCL keeps its back-end instances in module globals named after the model and the
    entry; each call here uses a fresh model name and removes its instances afterwards."""
    global _oracle_runs
    _require()
    checker = importlib.import_module("bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker")
    utils = importlib.import_module("bfcl_eval.eval_checker.multi_turn_eval.multi_turn_utils")
    _oracle_runs += 1
    model_name = f"ftops-oracle-{_oracle_runs}"
    if type(result) is not list:
        return False, "multi_turn:inference_error"
    if len(result) != len(ground_truth):
        return False, "multi_turn:force_terminated"
    steps = [[step for step in turn if not utils.is_empty_execute_response(step)] for turn in result]
    try:
        verdict = checker.multi_turn_checker(steps, ground_truth, dict(entry), str(entry["id"]).rsplit("_", 1)[0],
                                             model_name)
    except Exception as exc:  # the oracle's own failure is a verdict to compare
        return False, f"crash:{type(exc).__name__}"
    finally:
        prefix = model_name.replace("-", "_")
        for key in [k for k in vars(utils) if k.startswith(prefix)]:
            delattr(utils, key)
    return bool(verdict["valid"]), "" if verdict["valid"] else str(verdict.get("error_type", ""))
