"""Client for the out-of-process worker (``python -m core worker``); plain Python, no bpy.

The worker speaks JSON lines: requests on its stdin, events on its stdout. A reader thread turns events into
a queue that Blender polls from a timer, so the UI never blocks on the pipe. Nothing but JSON and file paths
crosses the process boundary.

Two kinds of worker start the same protocol: a torch worker, any Python with the packages of
``core/requirements.txt`` (run with ``core`` on ``PYTHONPATH``), and the bundled worker, Blender's own Python
with the wheels the extension bundles. Blender's Python runs isolated (``bpy.app.python_args``, typically
``-I``, which ignores ``PYTHONPATH``), so a short ``-c`` bootstrap puts the extension and the folder where
Blender extracted the wheels on ``sys.path`` and runs ``core`` as ``__main__``.
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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXTENSION_ROOT = Path(__file__).resolve().parents[2]
"""The folder holding ``core/``: on the worker's path (``PYTHONPATH``, or the bundled worker's bootstrap)."""


# argv: root, wheel folders (os.pathsep-joined), then the worker's own arguments. The wheel folders go just
# before the interpreter's site-packages, where Blender itself puts the extensions' site-packages, so the
# worker imports exactly what Blender would (Blender's numpy, the bundled cv2, scipy...).
BUNDLED_BOOTSTRAP = "; ".join(
    (
        "import os, runpy, site, sys",
        "root, wheels = sys.argv[1], [p for p in sys.argv[2].split(os.pathsep) if p]",
        "del sys.argv[1:3]",
        "known = set(site.getsitepackages())",
        "at = next((i for i, p in enumerate(sys.path) if p in known), len(sys.path))",
        "sys.path[at:at] = wheels",
        "sys.path.insert(0, root)",
        "runpy.run_module('core', run_name='__main__', alter_sys=True)",
    )
)
# Variables that would point Blender's Python at another environment: -I ignores the PYTHON* ones, but
# Blender started with --python-use-system-env has no -I in python_args, and macOS's __PYVENV_LAUNCHER__
# changes sys.executable whatever the flags.
_FOREIGN_ENV = ("VIRTUAL_ENV", "__PYVENV_LAUNCHER__")


class WorkerError(RuntimeError):
    """The worker could not start, or stopped while it had work."""


@dataclass(frozen=True)
class WorkerLaunch:
    """How one worker is started: its Python and, for the bundled worker, the way Blender's Python is run."""

    python: str
    origin: str = ""
    """Where the choice came from, for the preferences: ``preferences``, ``bundled``, ``managed environment``..."""
    bundled: bool = False
    """Blender's own Python with the extension's bundled wheels (no torch), started isolated."""
    python_args: tuple[str, ...] = ()
    """``bpy.app.python_args``: the flags Blender asks for when its Python is run as a program."""
    site_packages: tuple[str, ...] = ()
    """Folders with the bundled packages: Blender's ``extensions/.local/lib/python3.11/site-packages``."""

    def command(self, root: Path) -> list[str]:
        """The worker's command line."""
        return self.core_command(root, ["worker"])

    def core_command(self, root: Path, arguments: list[str]) -> list[str]:
        """``python -m core ARGUMENTS`` with this worker's Python, as the worker itself is started."""
        if not self.bundled:
            return [self.python, "-m", "core", *arguments]
        # -u and -X utf8 do what PYTHONUNBUFFERED and PYTHONIOENCODING do for the torch worker: -I ignores both.
        return [
            self.python,
            *self.python_args,
            "-u",
            "-X",
            "utf8",
            "-c",
            BUNDLED_BOOTSTRAP,
            str(root),
            os.pathsep.join(self.site_packages),
            *arguments,
        ]

    def environment(self, root: Path, base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
        """The worker's environment: ``base`` (the caller's) adjusted for this kind of worker, then ``extra``."""
        env = dict(base)
        env.pop("PYTHONHOME", None)  # Blender's own Python home must not leak into another interpreter
        if self.bundled:
            for key in [k for k in env if k.startswith("PYTHON") or k in _FOREIGN_ENV]:
                del env[key]
        else:
            # The worker imports ``core`` from the extension folder, whatever the Python's own path holds.
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
            env["PYTHONIOENCODING"] = "utf-8"
            env["PYTHONUNBUFFERED"] = "1"
        env.update(extra)
        return env


# How the add-on last resolved each interpreter (``remember_launch``): callers that pass only a path to
# ``shared_worker`` still get the bundled worker's isolated start.
_launches: dict[str, WorkerLaunch] = {}


def remember_launch(launch: WorkerLaunch) -> None:
    """Record how ``launch.python`` is to be started when a caller names only the path (the latest wins)."""
    _launches[launch.python] = launch


def launch_for(python: str | WorkerLaunch) -> WorkerLaunch:
    """``python`` as a launch: itself, the one remembered for that path, or a plain torch worker."""
    if isinstance(python, WorkerLaunch):
        return python
    return _launches.get(str(python), WorkerLaunch(str(python)))


class WorkerClient:
    """One worker process: start it, send requests, collect events, stop it."""

    def __init__(self, python: str | WorkerLaunch, env: dict[str, str] | None = None, root: Path = EXTENSION_ROOT):
        self.launch = launch_for(python)
        self.python = self.launch.python
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
        env = self.launch.environment(self.root, os.environ, self.extra_env)
        creation = getattr(subprocess, "CREATE_NO_WINDOW", 0) if sys.platform == "win32" else 0
        try:
            self.process = subprocess.Popen(
                self.launch.command(self.root),
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


def shared_worker(python: str | WorkerLaunch, env: dict[str, str] | None = None) -> WorkerClient:
    """The worker kept for this Blender session: started once, restarted when dead or reconfigured."""
    global _shared
    launch = launch_for(python)
    with _shared_lock:
        if _shared is not None and (not _shared.alive or _shared.launch != launch or _shared.extra_env != (env or {})):
            _shared.stop()
            _shared = None
        if _shared is None:
            client = WorkerClient(launch, env)
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
