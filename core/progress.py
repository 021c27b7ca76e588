"""Progress reporting, cancellation and per-stage timing shared by the CLI, the worker and tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

from .errors import Cancelled

# Stages in pipeline order; the fraction of a whole job each one roughly takes drives overall progress.
STAGES = ("load", "depth", "segment", "harmonize", "layers", "inpaint", "geometry", "package")

ProgressCallback = Callable[[str, float, str], None]


class CancelToken:
    """A flag checked between pipeline steps; setting it makes the next check raise ``Cancelled``."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


@dataclass
class Progress:
    """Reports ``(stage, fraction, message)`` to a callback, checks cancellation, and times stages."""

    callback: ProgressCallback | None = None
    cancel_token: CancelToken = field(default_factory=CancelToken)
    timings: dict[str, float] = field(default_factory=dict)
    _stage: str = ""
    _stage_started: float = 0.0

    def update(self, fraction: float, message: str = "") -> None:
        """Report progress within the current stage and honour a pending cancel."""
        self.cancel_token.check()
        if self.callback is not None:
            self.callback(self._stage, max(0.0, min(1.0, float(fraction))), message)

    def check(self) -> None:
        self.cancel_token.check()

    @contextmanager
    def stage(self, name: str):
        """Time a stage, reporting 0 at its start and 1 at its end."""
        self._stage = name
        self.update(0.0, "")
        start = self._stage_started = time.perf_counter()
        try:
            yield self
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
        self.update(1.0, "")

    def timings_so_far(self) -> dict[str, float]:
        """Finished stages' seconds plus the running stage's until now, rounded for the manifest."""
        timings = dict(self.timings)
        if self._stage and self._stage_started:
            timings[self._stage] = timings.get(self._stage, 0.0) + time.perf_counter() - self._stage_started
        return {stage: round(seconds, 4) for stage, seconds in timings.items()}


def null_progress() -> Progress:
    """A progress object that reports nowhere, for direct calls and tests."""
    return Progress()
