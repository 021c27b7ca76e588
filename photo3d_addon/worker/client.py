"""Client for the out-of-process worker (``python -m core worker``); plain Python, no bpy.

The worker speaks JSON lines: requests on its stdin, events on its stdout. A reader thread turns events into
a queue that Blender polls from a timer, so the UI never blocks on the pipe. Nothing but JSON and file paths
crosses the process boundary.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

EXTENSION_ROOT = Path(__file__).resolve().parents[2]
"""The folder holding ``core/``: the worker runs with it on ``PYTHONPATH``."""


class WorkerError(RuntimeError):
    """The worker could not start, or stopped while it had work."""


class WorkerClient:
    """One worker process: start it, send requests, collect events, stop it."""

    def __init__(self, python: str, env: dict[str, str] | None = None, root: Path = EXTENSION_ROOT):
        self.python = python
        self.root = root
        self.extra_env = dict(env or {})
        self.process: subprocess.Popen | None = None
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self.info: dict[str, Any] = {}

    # -- life cycle -------------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        """Start the worker and wait for its ``ready`` event."""
        if not Path(self.python).is_file():
            raise WorkerError(f"the worker's Python {self.python!r} does not exist; set it in the preferences")
        env = dict(os.environ)
        # The worker imports ``core`` from the extension folder, whatever the Python's own path holds.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.root), env.get("PYTHONPATH", "")) if p)
        env["PYTHONIOENCODING"] = "utf-8"
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("PYTHONHOME", None)  # Blender's own Python home must not leak into another interpreter
        env.update(self.extra_env)
        creation = getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.platform == "win32" else 0
        try:
            self.process = subprocess.Popen(
                [self.python, "-m", "core", "worker"],
                cwd=str(self.root),
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
                creationflags=creation,
            )
        except OSError as exc:
            raise WorkerError(f"could not start the worker with {self.python}: {exc}") from exc
        threading.Thread(target=self._read_events, args=(self.process,), daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(self.process,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=0.1)
            except queue.Empty:
                if not self.alive:
                    raise WorkerError(f"the worker exited at start-up: {self.describe_exit()}") from None
                continue
            if event.get("type") == "ready":
                self.info = event
                return
        self.stop()
        raise WorkerError(f"the worker did not answer within {timeout:.0f} s")

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to shut down; then SIGTERM, then kill, each after ``timeout`` seconds."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            try:
                process.stdin.write(json.dumps({"type": "shutdown"}) + "\n")
                process.stdin.flush()
                process.wait(timeout=timeout)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                # SIGTERM next: the worker cancels its job between two steps and removes its staging folder;
                # only one that still does not stop is killed (a later write to that output cleans up after it).
                try:
                    process.terminate()
                    process.wait(timeout=timeout)
                except (OSError, subprocess.TimeoutExpired):
                    process.kill()
                    process.wait(timeout=timeout)
        for stream in (process.stdin, process.stdout, process.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.close()

    def describe_exit(self) -> str:
        """Exit status and the last lines the worker wrote to stderr, for an error message."""
        code = self.process.poll() if self.process is not None else None
        tail = [line for line in self.stderr_tail if line.strip()][-6:]
        text = f"exit code {code}" if code is not None else "still running"
        return text + (":\n" + "\n".join(tail) if tail else "")

    # -- messages ---------------------------------------------------------------------------------------
    def send(self, request: dict[str, Any]) -> None:
        if not self.alive:
            raise WorkerError(f"the worker is not running ({self.describe_exit()})")
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except (OSError, ValueError) as exc:
            raise WorkerError(f"the worker stopped: {exc}") from exc

    def poll(self) -> list[dict[str, Any]]:
        """Every event received since the last poll, in order."""
        events = []
        while True:
            try:
                events.append(self.events.get_nowait())
            except queue.Empty:
                return events

    def _read_events(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                self.stderr_tail.append(f"(unreadable worker output) {line[:200]}")
                continue
            if isinstance(event, dict):
                self.events.put(event)
        self.events.put({"type": "exited"})

    def _read_stderr(self, process: subprocess.Popen) -> None:
        for line in process.stderr:
            self.stderr_tail.append(line.rstrip())


_shared: WorkerClient | None = None
_shared_lock = threading.Lock()


def shared_worker(python: str, env: dict[str, str] | None = None) -> WorkerClient:
    """The worker kept for this Blender session: started once, restarted when dead or reconfigured."""
    global _shared
    with _shared_lock:
        if _shared is not None and (not _shared.alive or _shared.python != python or _shared.extra_env != (env or {})):
            _shared.stop()
            _shared = None
        if _shared is None:
            client = WorkerClient(python, env)
            client.start()
            _shared = client
        return _shared


def stop_shared_worker() -> None:
    """Stop the session's worker (add-on unregister, Blender exit)."""
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.stop()
            _shared = None
