"""Model downloads seen from Blender: the model manager's download as a ``worker.task.Task``. No bpy.

The download itself is ``core.models.download`` (standard library only), run on a thread of Blender's own
process: no worker, no pip. The preferences read ``status`` for the progress bar and ``error`` afterwards.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from ...core.errors import Cancelled, Photo3DError
from ...core.models.catalog import CatalogModel
from ...core.models.download import DownloadProgress, download_models, model_status, offline_instructions
from ...core.models.weights import MANAGER_COMMAND

MODELS_FOLDER_NAME = "models"
"""The models folder inside the extension's user folder, used when the preferences name none."""
DOWNLOAD_BUTTON = "Download Models"
"""The preferences button that fetches missing models: every missing-model message in Blender names it."""


def missing_models_message(models: list[CatalogModel], models_dir: str, online: bool) -> str:
    """What Blender tells a user whose import needs models that are not there: all of them at once, and the
    button to press (or, offline, the files to put where); never a command-line flag."""
    wanted = [model for model in models if model_status(models_dir, model) != "ok"]
    if not wanted:
        return ""
    names = ", ".join(model.title for model in wanted)
    if online:
        return (
            f"{len(wanted)} model(s) missing: {names}. Open Preferences > Add-ons > Photo3D > Models and press "
            f"'{DOWNLOAD_BUTTON}'"
        )
    return (
        f"{len(wanted)} model(s) missing: {names}. Online access is off (Preferences > System > Network): allow "
        f"it and press '{DOWNLOAD_BUTTON}' in Photo3D's preferences, or put these files in place by hand:\n"
        + offline_instructions(wanted, models_dir)
    )


_BLENDER_WORDING = (
    (re.compile(r"[Dd]ownload it with `hf download (\S+) --local-dir ([^`]+)`"),
     r"download the model \1 from the Hugging Face hub into the folder \2"),
    (re.compile(r"get it(?: again)? with `hf download (\S+)(?: --local-dir ([^`]+))?`"),
     r"download the model \1 from the Hugging Face hub again"),
    (re.compile(r"or pass --online to allow downloading it"),
     "or turn on 'Download Missing Models' in Photo3D's preferences (needs online access)"),
    (re.compile(r" and set the models folder to \S+"), " and set 'Models Folder' in Photo3D's preferences"),
    (re.compile(r"e\.g\. --segment (\S+)"), r"e.g. \1 as the segmentation model"),
    (re.compile(rf"get it with `{re.escape(MANAGER_COMMAND)} \S+`"),
     f"press '{DOWNLOAD_BUTTON}' in Photo3D's preferences (Models)"),
)  # fmt: skip
"""The worker's missing-model wording for a terminal, and what a Blender user does instead."""


def blender_wording(message: str) -> str:
    """A worker's missing-model message in Blender's terms: buttons and preferences, never a CLI flag."""
    for pattern, replacement in _BLENDER_WORDING:
        message = pattern.sub(replacement, message)
    return message


class ModelDownload:
    """Downloads ``models`` into ``models_dir`` on a thread; a ``Task`` (start, step, status, cancel)."""

    def __init__(self, models: list[CatalogModel], models_dir: str | Path, online: bool):
        self.models = list(models)
        self.models_dir = str(models_dir)
        self.online = online
        self.error: str | None = None
        self.cancelled = False
        self.done = False
        self.message = "starting"
        self._fraction = 0.0
        self._cancel = threading.Event()
        self._files = [item.path for model in self.models for item in model.files]
        self._thread = threading.Thread(target=self._run, name="photo3d-model-download", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def step(self) -> bool:
        return self.done

    @property
    def status(self) -> tuple[float, str]:
        return self._fraction, self.message

    def cancel(self) -> None:
        """Stop within one network read; the partial file is kept so the next download resumes it."""
        self._cancel.set()

    def _on_progress(self, event: DownloadProgress) -> None:
        index = self._files.index(event.path) if event.path in self._files else 0
        within = event.fraction if event.fraction is not None else 0.0
        self._fraction = (index + within) / max(1, len(self._files))
        detail = event.message or (
            f"{100 * event.fraction:.0f} %" if event.fraction is not None else f"{event.done / 1e6:.0f} MB"
        )
        self.message = f"{event.path}: {detail}"

    def _run(self) -> None:
        try:
            download_models(
                self.models, self.models_dir, online=self.online, progress=self._on_progress,
                should_stop=self._cancel.is_set,
            )  # fmt: skip
            self._fraction, self.message = 1.0, "all models verified"
        except Cancelled:
            self.cancelled = True
            self.error = "cancelled; the next download resumes where this one stopped"
        except Photo3DError as exc:
            self.error = str(exc)
        except Exception as exc:  # shown in the preferences; the thread must not die silently
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.done = True
