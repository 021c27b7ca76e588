"""One conversion running in the worker, seen from Blender: progress, completion, failure, cancel. No bpy.

The modal operator polls a job from a timer; background mode (``blender -b``) waits on it. Either way the
job's state is the only thing the operator reads.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .client import WorkerClient, WorkerError
from .downloads import blender_wording

# Plain words for the worker's error codes; the worker's own message follows.
ERROR_TITLES = {
    "bad_input": "The photo or an option could not be used",
    "missing_model": "A model's weights are missing",
    "output": "The layer package could not be written",
    "bad_package": "The layer package is invalid",
    "bad_request": "The worker refused the request",
    "internal": "The worker hit an internal error",
    "worker_died": "The Photo3D worker stopped unexpectedly",
}


@dataclass
class JobState:
    status: str = "running"
    """``running``, ``cancelling``, ``done``, ``failed`` or ``cancelled``."""
    stage: str = ""
    fraction: float = 0.0
    overall: float = 0.0
    message: str = ""
    package: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    kind: str = "photo"
    """``photo`` (a layer package) or ``video`` (a layered video package)."""
    error_code: str | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    def describe_error(self) -> str:
        title = ERROR_TITLES.get(self.error_code or "", "The conversion failed")
        if not self.error:
            return title
        if self.error_code == "missing_model":
            return f"{title}: {blender_wording(self.error)}"
        return f"{title}: {self.error}"


class ImportJob:
    """Send one ``convert`` request and follow its events."""

    def __init__(self, client: WorkerClient, image: str, output: str, options: dict[str, Any]):
        self.client = client
        self.id = uuid.uuid4().hex[:12]
        self.request = {"type": "convert", "id": self.id, "image": image, "output": output, "options": options}
        self.state = JobState()

    def start(self) -> None:
        self.client.send(self.request)

    def poll(self) -> JobState:
        """Apply the events that arrived since the last poll and return the state."""
        if self.state.finished:
            return self.state
        for event in self.client.poll():
            if event.get("type") == "exited":
                self._worker_died()
                break
            if event.get("id") != self.id:
                continue  # an earlier, abandoned job's late events
            self._apply(event)
            if self.state.finished:
                break
        if not self.state.finished and not self.client.alive:
            self._worker_died()
        return self.state

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "progress":
            self.state.stage = str(event.get("stage", ""))
            self.state.fraction = float(event.get("fraction", 0.0))
            self.state.overall = float(event.get("overall", 0.0))
            self.state.message = str(event.get("message", ""))
        elif kind == "done":
            if self.state.status == "cancelling":
                # The job finished before the cancel landed: the user still asked for nothing.
                shutil.rmtree(event.get("package", ""), ignore_errors=True)
                self.state.status = "cancelled"
                return
            self.state.status = "done"
            self.state.overall = 1.0
            self.state.package = event.get("package")
            self.state.timings = dict(event.get("timings") or {})
            self.state.kind = "video" if event.get("kind") == "video" else "photo"
        elif kind == "error":
            code = event.get("code")
            self.state.status = "cancelled" if code == "cancelled" else "failed"
            self.state.error_code = code
            self.state.error = str(event.get("message", ""))

    def _worker_died(self) -> None:
        # Give the stderr reader a moment to collect the last words of a crashed worker.
        time.sleep(0.2)
        if self.state.status == "cancelling":
            self.state.status = "cancelled"
            return
        self.state.status = "failed"
        self.state.error_code = "worker_died"
        self.state.error = self.client.describe_exit()

    def cancel(self) -> None:
        """Ask the worker to stop this job; the state turns ``cancelled`` once it has."""
        if self.state.finished:
            return
        self.state.status = "cancelling"
        try:
            self.client.send({"type": "cancel", "id": self.id})
        except WorkerError:
            self.state.status = "cancelled"

    def wait(
        self,
        on_progress: Callable[[JobState], None] | None = None,
        timeout: float | None = None,
        interval: float = 0.05,
    ) -> JobState:
        """Block until the job ends (background mode). Ctrl-C cancels the job before re-raising."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not self.poll().finished:
                if on_progress is not None:
                    on_progress(self.state)
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"the conversion did not finish within {timeout:.0f} s")
                time.sleep(interval)
        except KeyboardInterrupt:
            self.cancel()
            self.wait_cancelled()
            raise
        return self.state

    def wait_cancelled(self, timeout: float = 10.0) -> JobState:
        """After ``cancel``, wait for the worker to confirm; a worker that does not is stopped."""
        deadline = time.monotonic() + timeout
        while not self.poll().finished and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.state.finished:
            self.client.stop(timeout=2.0)
            self.state.status = "cancelled"
        return self.state


def package_dir_for(image: str | Path, packages_root: str | Path) -> Path:
    """A stable package folder per photo: re-importing the same photo replaces its package."""
    import hashlib

    image = Path(image).absolute()
    digest = hashlib.sha1(str(image).encode("utf-8")).hexdigest()[:8]
    safe_stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in image.stem)[:48] or "photo"
    return Path(packages_root) / f"{safe_stem}-{digest}"
