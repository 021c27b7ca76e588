"""Long work seen from Blender, in one shape: a ``Task`` that is started, stepped, shows progress and is
cancelled without waiting. No bpy.

The import, the worker environment set-up and (next) the model downloads are tasks. ``ui.task_operator``
runs any task the same way: modal with a progress bar in the UI, where Esc returns control at once, or
blocking in background mode (``run_blocking``), where Ctrl-C or SIGTERM cancels it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from ...core.errors import SignalReceived


@runtime_checkable
class Task(Protocol):
    """Work that runs outside Blender's main thread (the worker process, a pip subprocess)."""

    def start(self) -> None:
        """Begin; may raise an error that names what cannot start."""

    def step(self) -> bool:
        """Take what arrived since the last step (from the main thread); True once the task has ended."""

    @property
    def status(self) -> tuple[float, str]:
        """(share done 0..1, a line for the status bar)."""

    def cancel(self) -> None:
        """Stop as soon as possible and return at once: clean-up goes on in the background."""


def run_blocking(
    task: Task,
    on_progress: Callable[[float, str], None] | None = None,
    interval: float = 0.05,
    cancelled: threading.Event | None = None,
) -> None:
    """Run ``task`` to its end on this thread (background mode). Ctrl-C, a signal turned into
    ``SignalReceived``, or ``cancelled`` being set cancels the task, waits for its clean-up, and re-raises
    (``KeyboardInterrupt`` for ``cancelled``)."""
    task.start()
    last = None
    try:
        while not task.step():
            if cancelled is not None and cancelled.is_set():
                raise KeyboardInterrupt
            if on_progress is not None and task.status != last:
                last = task.status
                on_progress(*last)
            time.sleep(interval)
    except (KeyboardInterrupt, SignalReceived):
        task.cancel()
        wait_for_cleanups()
        raise


# Clean-ups that outlive a cancelled task (a worker asked to stop a job, which may take seconds). A new task
# that needs the same worker waits for them first, so two readers never share the worker's events.
_cleanups: list[threading.Thread] = []
_cleanups_lock = threading.Lock()


def clean_up_in_background(work: Callable[[], None], name: str) -> threading.Thread:
    """Run ``work`` on a daemon thread and remember it for ``wait_for_cleanups``."""
    thread = threading.Thread(target=work, name=name, daemon=True)
    with _cleanups_lock:
        _cleanups[:] = [t for t in _cleanups if t.is_alive()]
        _cleanups.append(thread)
    thread.start()
    return thread


def wait_for_cleanups(timeout: float = 15.0) -> bool:
    """Wait until earlier tasks' clean-ups have finished; False if one is still running after ``timeout``."""
    deadline = time.monotonic() + timeout
    with _cleanups_lock:
        pending = list(_cleanups)
    for thread in pending:
        thread.join(max(0.0, deadline - time.monotonic()))
    with _cleanups_lock:
        _cleanups[:] = [t for t in _cleanups if t.is_alive()]
        return not _cleanups


def cleanups_running() -> bool:
    with _cleanups_lock:
        return any(t.is_alive() for t in _cleanups)
