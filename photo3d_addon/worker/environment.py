"""Finding the worker's Python, and setting up a managed worker environment; plain Python, no bpy.

Two kinds of worker: the bundled one, Blender's own Python with the wheels each platform zip of the
extension carries (OpenCV, SciPy, scikit-image, ONNX Runtime...; no torch), which needs no set-up; and a
torch worker, a Python with ``core/requirements.txt`` (torch, transformers), the advanced choice. Photo3D
uses, in order: the Python set in the preferences, ``PHOTO3D_WORKER_PYTHON``, the managed environment under
the extension's user folder (it exists only once the user set it up), the bundled worker when its packages
are there, and the project's ``.venv`` when the extension runs from a source checkout.

Everything Blender knows (its Python, ``bpy.app.python_args``, where it extracts wheels) comes in as a
``BlenderPython`` from the add-on, so this module stays free of bpy.
"""

from __future__ import annotations

import importlib.machinery
import os
import platform
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .client import EXTENSION_ROOT, WorkerLaunch

REQUIREMENTS_FILE = EXTENSION_ROOT / "core" / "requirements.txt"
MANAGED_ENV_NAME = "worker-env"
WORKER_IMPORTS = "import numpy, cv2, scipy, skimage, triangle, torch, transformers"
# What the bundled worker imports (numpy is Blender's own); requirements/bundled.txt lists the wheels.
BUNDLED_IMPORTS = ("numpy", "cv2", "scipy", "skimage", "PIL", "triangle", "onnxruntime")
# The oldest macOS the bundled wheels load on (opencv-python-headless 4.11 and onnxruntime 1.23 need 13.0);
# scripts/fetch_wheels.py's MACOS_TARGET picks the wheels for it.
BUNDLED_MACOS_MIN = (13, 0)
# Where Blender extracts the wheels of every installed extension, relative to its EXTENSIONS user folder.
EXTENSION_SITE_PACKAGES = f".local/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
BUNDLED = "bundled"
"""The origin of the bundled worker."""


@dataclass(frozen=True)
class BlenderPython:
    """Blender's own Python as the add-on sees it (bpy values passed in)."""

    executable: str
    """``sys.executable`` inside Blender: the Python that ships with it."""
    python_args: tuple[str, ...]
    """``bpy.app.python_args``, typically ``('-I',)``."""
    site_packages: str
    """``bpy.utils.user_resource('EXTENSIONS', path=EXTENSION_SITE_PACKAGES)``: the extracted wheels."""


def bundled_problem(
    blender: BlenderPython, search_path: Sequence[str] | None = None, mac_version: str | None = None
) -> str | None:
    """Why the bundled worker cannot run here (a sentence), or None when it can.

    Looks the packages up without importing them (the preferences ask on every redraw): in the wheels folder,
    then ``search_path`` (default ``sys.path``, Blender's own, which holds its numpy).
    """
    if not Path(blender.executable).is_file():
        return f"Blender's Python {blender.executable} was not found"
    if sys.platform == "darwin":
        release = mac_version if mac_version is not None else platform.mac_ver()[0]
        numbers = tuple(int(part) for part in release.split(".")[:2] if part.isdigit())
        if numbers and numbers < BUNDLED_MACOS_MIN:
            wanted = ".".join(map(str, BUNDLED_MACOS_MIN))
            return f"the bundled packages need macOS {wanted} or later (this is {release})"
    paths = [blender.site_packages, *(sys.path if search_path is None else search_path)]
    missing = [name for name in BUNDLED_IMPORTS if importlib.machinery.PathFinder.find_spec(name, paths) is None]
    if missing:
        return (
            f"the bundled packages {', '.join(missing)} are not in {blender.site_packages} (this copy of Photo3D "
            "was not installed from a platform zip, or Blender could not extract its wheels)"
        )
    return None


def bundled_launch(blender: BlenderPython) -> WorkerLaunch:
    """The bundled worker: Blender's Python, isolated, with the extracted wheels on its path."""
    return WorkerLaunch(
        blender.executable,
        origin=BUNDLED,
        bundled=True,
        python_args=tuple(blender.python_args),
        site_packages=(blender.site_packages,),
    )


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


def find_worker(
    configured: str,
    managed_env: Path | None,
    blender: BlenderPython | None = None,
    search_path: Sequence[str] | None = None,
) -> WorkerLaunch | None:
    """The worker to start, or None. A configured path that does not exist is returned as is, so the error
    names what the user set instead of silently using something else. ``search_path`` is Blender's own
    ``sys.path`` (the default), where the bundled worker's numpy is."""
    *chosen, (project_origin, project) = worker_python_candidates(configured, managed_env)
    for origin, path in chosen:  # a torch worker the user configured or set up
        if origin == "preferences" or path.is_file():
            return WorkerLaunch(str(path), origin=origin)
    if blender is not None and bundled_problem(blender, search_path) is None:
        return bundled_launch(blender)
    return WorkerLaunch(str(project), origin=project_origin) if project.is_file() else None


def find_worker_python(
    configured: str, managed_env: Path | None, blender: BlenderPython | None = None
) -> tuple[str, Path] | None:
    """``find_worker`` as (origin, interpreter path), for callers that start workers by path."""
    launch = find_worker(configured, managed_env, blender)
    return None if launch is None else (launch.origin, Path(launch.python))


def describe_worker(launch: WorkerLaunch | None) -> str:
    """One line for the preferences: which worker runs, and with what."""
    if launch is None:
        return "No worker found"
    if launch.bundled:
        return f"Bundled worker (no torch): Blender's Python {launch.python}"
    return f"Torch worker: {launch.python} ({launch.origin})"


def missing_worker_message() -> str:
    return (
        "No Python for the Photo3D worker was found. Install Photo3D from its zip for your platform (it bundles "
        "the worker's packages), or open Edit > Preferences > Add-ons > Photo3D and either press 'Set Up Worker "
        "Environment' (needs online access) or set 'Worker Python' to a Python 3.11 with the packages in "
        f"{REQUIREMENTS_FILE.name} (torch, transformers, opencv-python-headless, ...)."
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
