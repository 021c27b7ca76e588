"""The one import service: photos through the worker into packages, one after another, as a ``Task``. No bpy.

The import operator (modal), the batch (blocking) and the tests use it alike. What happens with a finished
photo (build the scene, save a .blend, render) is the caller's ``on_result``; a failed photo never stops the
photos after it, and a worker that died on one is replaced for the next.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..worker.client import WorkerClient, WorkerError
from ..worker.job import ImportJob, JobState, package_dir_for
from ..worker.task import clean_up_in_background, cleanups_running, wait_for_cleanups


@dataclass
class PhotoOutcome:
    """How one photo went: its package, or why there is none."""

    image: Path
    state: JobState

    @property
    def ok(self) -> bool:
        return self.state.status == "done" and self.state.package is not None

    @property
    def package(self) -> Path | None:
        return Path(self.state.package) if self.state.package else None


@dataclass
class ImportService:
    """Convert ``images`` one by one with ``options`` (``choices.pipeline_options``) into ``packages_root``."""

    images: Sequence[Path]
    options: dict[str, Any]
    packages_root: Path
    connect: Callable[[], WorkerClient]
    """The worker to use (``shared_worker`` bound to the worker's Python); called again after a crash."""
    on_result: Callable[[PhotoOutcome], None] = lambda outcome: None
    package_dirs: Mapping[Path, Path] = field(default_factory=dict)
    """A package folder of the caller's choosing per image (the batch's ``--package-out``); the others get
    ``package_dir_for`` in ``packages_root``."""
    outcomes: list[PhotoOutcome] = field(default_factory=list)
    job: ImportJob | None = None
    cancelled: bool = False

    def __post_init__(self) -> None:
        self._pending = list(self.images)
        self._client: WorkerClient | None = None

    # -- Task ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        if cleanups_running():
            wait_for_cleanups()  # a cancelled import is still telling the worker to stop (rarely seconds)
        self._start_next()

    def step(self) -> bool:
        if self.cancelled:
            return True
        if self.job is not None:
            state = self.job.poll()
            if not state.finished:
                return False
            self._finish(self.job, state)
        return not self._start_next()

    @property
    def status(self) -> tuple[float, str]:
        done = len(self.outcomes)
        total = max(1, done + len(self._pending) + (1 if self.job is not None else 0))
        if self.job is None:
            return (1.0 if done else 0.0, "starting")
        state = self.job.state
        name = Path(self.job.request["image"]).name
        counter = f" ({done + 1}/{total})" if total > 1 else ""
        return ((done + state.overall) / total, f"{name}{counter}: {state.stage or 'starting'} {state.overall:.0%}")

    def cancel(self) -> None:
        """Stop the photo being converted and skip the rest; returns at once. The worker is told to stop, and
        a thread waits for it to confirm (removing a package that finished meanwhile) or stops it."""
        self.cancelled = True
        self._pending = []
        job, self.job = self.job, None
        if job is None or job.state.finished:
            return
        job.cancel()
        clean_up_in_background(job.wait_cancelled, f"photo3d-cancel-{job.id}")

    # -- steps ---------------------------------------------------------------------------------------------
    def _start_next(self) -> bool:
        """Send the next photo to the worker; False when none is left. A worker that cannot start fails the
        photos left, each with the reason."""
        self.job = None
        while self._pending:
            image = self._pending.pop(0)
            try:
                if self._client is None or not self._client.alive:
                    self._client = self.connect()
                package = self.package_dirs.get(image) or package_dir_for(image, self.packages_root)
                job = ImportJob(self._client, str(image), str(package), self.options)
                job.start()
            except WorkerError as exc:
                self._finish(None, JobState(status="failed", error_code="worker_died", error=str(exc)), image)
                continue
            self.job = job
            return True
        return False

    def _finish(self, job: ImportJob | None, state: JobState, image: Path | None = None) -> None:
        outcome = PhotoOutcome(Path(job.request["image"]) if job is not None else image, state)
        self.outcomes.append(outcome)
        self.job = None
        self.on_result(outcome)
