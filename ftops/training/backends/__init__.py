"""Training backends: each turns a run's records into an artifact (adapter, fine-tuned model id, prompt).

A backend gets the run, a ``RunContext`` (progress, log, heartbeat, cancel) and the
records; it never writes the run row itself, so the claim/lease rules stay in one place
(``ftops.training.services``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ftops.core.records import Record
    from ftops.training.models import TrainingRun


class TransientBackendError(Exception):
    """A failure worth retrying later (network, rate limit); the run goes back to the queue."""


@dataclass
class BackendResult:
    artifact_path: str = ""
    artifact_bytes: int = 0
    artifact: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    model_ref: str = ""  # what serves the result: adapter folder, fine-tuned model id, prompt file
    card: dict[str, Any] = field(default_factory=dict)


class Context(Protocol):
    run_id: int
    artifact_dir: Any
    identity: dict[str, str]  # stored in checkpoints: only this run resumes from them

    def progress(self, *, step: int, total_steps: int, loss: float | None = None, val_loss: float | None = None,
                 eta_s: float | None = None, force: bool = False) -> None: ...

    def log(self, line: str) -> None: ...

    def check(self) -> None: ...

    def set_external_ids(self, **ids: str) -> None: ...

    def replace_series(self, *, losses: Sequence[Sequence[float]], val_losses: Sequence[Sequence[float]]) -> None: ...


class Backend(Protocol):
    name: str

    def default_base_model(self) -> str: ...

    def parse_config(self, data: dict[str, Any], *, base_model: str) -> Any: ...

    def run(self, *, run: TrainingRun, ctx: Context, train: list[Record], val: list[Record],
            rules: list[str]) -> BackendResult: ...


def get_backend(name: str) -> Backend:
    from ftops.training.backends.fewshot import FewShotBackend
    from ftops.training.backends.lora import LoraBackend
    from ftops.training.backends.openai_ft import OpenAIBackend

    backends: dict[str, Backend] = {"lora": LoraBackend(), "openai": OpenAIBackend(), "fewshot": FewShotBackend()}
    try:
        return backends[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; choose one of {sorted(backends)}") from None
