"""Finding the worker's Python, and setting up a managed worker environment; plain Python, no bpy.

The worker needs torch, transformers, OpenCV and friends, which Blender's own Python does not have. Photo3D
uses, in order: the Python set in the preferences, ``PHOTO3D_WORKER_PYTHON``, the managed environment under
the extension's user folder, and the project's ``.venv`` when the extension runs from a source checkout.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from .client import EXTENSION_ROOT

REQUIREMENTS_FILE = EXTENSION_ROOT / "core" / "requirements.txt"
MANAGED_ENV_NAME = "worker-env"
WORKER_IMPORTS = "import numpy, cv2, scipy, skimage, triangle, torch, transformers"


def venv_python(env_dir: Path) -> Path:
    """The interpreter inside a virtual environment, on this platform."""
    if sys.platform == "win32":
        return env_dir / "Scripts" / "python.exe"
    return env_dir / "bin" / "python"


def worker_python_candidates(configured: str, managed_env: Path | None) -> list[tuple[str, Path]]:
    """Where a worker Python may be, most explicit first, as (origin, path)."""
    candidates = []
    if configured:
        candidates.append(("preferences", Path(configured)))
    if os.environ.get("PHOTO3D_WORKER_PYTHON"):
        candidates.append(("PHOTO3D_WORKER_PYTHON", Path(os.environ["PHOTO3D_WORKER_PYTHON"])))
    if managed_env is not None:
        candidates.append(("managed environment", venv_python(managed_env)))
    candidates.append(("project environment", venv_python(EXTENSION_ROOT / ".venv")))
    return candidates


def find_worker_python(configured: str, managed_env: Path | None) -> tuple[str, Path] | None:
    """The first candidate that exists. A configured path that does not exist is returned as is, so the
    error names what the user set instead of silently using something else."""
    for origin, path in worker_python_candidates(configured, managed_env):
        if origin == "preferences" or path.is_file():
            return origin, path
    return None


def missing_worker_message() -> str:
    return (
        "No Python for the Photo3D worker was found. Open Edit > Preferences > Add-ons > Photo3D and either "
        "press 'Set Up Worker Environment' (needs online access) or set 'Worker Python' to a Python 3.11 with "
        f"the packages in {REQUIREMENTS_FILE.name} (torch, transformers, opencv-python-headless, ...)."
    )


def setup_commands(env_dir: Path, base_python: str, requirements: Path = REQUIREMENTS_FILE) -> list[list[str]]:
    """Commands that create the managed environment and install the worker's packages into it."""
    python = str(venv_python(env_dir))
    return [
        [base_python, "-m", "venv", str(env_dir)],
        [python, "-m", "pip", "install", "--upgrade", "--disable-pip-version-check", "pip"],
        [
            python,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            "-r",
            str(requirements),
        ],
        [python, "-c", WORKER_IMPORTS],
    ]


class EnvironmentSetup:
    """Runs the set-up commands on a thread, as a ``worker.task.Task``; the preferences show ``progress`` and
    ``message``."""

    STEP_NAMES = ("creating the environment", "updating pip", "installing packages", "checking the packages")

    def __init__(self, env_dir: Path, base_python: str, on_line: Callable[[str], None] | None = None):
        self.env_dir = env_dir
        self.commands = setup_commands(env_dir, base_python)
        self.on_line = on_line
        self.progress = 0.0
        self.message = "starting"
        self.error: str | None = None
        self.done = False
        self._cancel = threading.Event()
        self._process: subprocess.Popen | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def step(self) -> bool:
        return self.done

    @property
    def status(self) -> tuple[float, str]:
        return self.progress, self.message

    def cancel(self) -> None:
        """Stop the running command and skip the rest; returns at once (the thread ends on its own)."""
        self._cancel.set()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()

    def _run(self) -> None:
        try:
            for step, command in enumerate(self.commands):
                if self._cancel.is_set():
                    self.error = "cancelled"
                    return
                self.message = self.STEP_NAMES[step]
                self.progress = step / len(self.commands)
                self._run_command(command, step)
            self.progress = 1.0
            self.message = f"ready: {venv_python(self.env_dir)}"
        except Exception as exc:  # shown to the user in the preferences; the thread must not die silently
            self.error = str(exc)
        finally:
            self.done = True

    def _run_command(self, command: list[str], step: int) -> None:
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, encoding="utf-8", errors="replace"
        )
        tail: list[str] = []
        for line in self._process.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-8:]
            if self.on_line is not None:
                self.on_line(line)
            # pip names each package as it goes: show it, and creep forward within the step.
            match = re.match(r"(Collecting|Downloading|Installing collected packages:)\s*(\S+)?", line)
            if match:
                self.message = f"{self.STEP_NAMES[step]}: {match.group(2) or ''}".rstrip(": ")
                share = 1.0 / len(self.commands)
                self.progress = min(self.progress + share * 0.02, (step + 0.95) * share)
        code = self._process.wait()
        if self._cancel.is_set():
            raise RuntimeError("cancelled")
        if code != 0:
            raise RuntimeError(f"{self.STEP_NAMES[step]} failed (exit code {code}):\n" + "\n".join(tail))
