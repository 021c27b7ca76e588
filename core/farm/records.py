"""What each batch item was made from, recorded next to its outputs, so a re-run can tell a finished item
from one to redo.

A batch's output folder holds ``items/<name>.json`` (the record) and ``items/<name>.log`` (the item's own log)
per item. A record is written last, atomically, once every output of the item is complete; it names the
input's SHA-256, a hash of the settings that shape the outputs, the versions that made them and the outputs
themselves (relative to the output folder). ``--resume`` skips an item whose record matches all of that and
whose outputs are all there; anything else is redone, and a redo removes the old record first, so a run
killed half-way never leaves an item that looks finished.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import platform
import re
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import EXIT_OK, EXIT_PARTIAL, failure_class
from ..models.download import sha256_of as file_sha256
from ..package.staging import default_dir_mode
from ..safe_json import JSONRejected, read_json_file

RECORD_FORMAT = "photo3d.item"
RECORD_VERSION = 1
ITEMS_FOLDER = "items"
MAX_RECORD_BYTES = 1_000_000
_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]+")


def path_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, or of a folder's files (their relative names and bytes, in name order): a folder of
    per-frame depth files is one input."""
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    digest = hashlib.sha256()
    for child in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(child.relative_to(path).as_posix().encode("utf-8") + b"\0")
        digest.update(file_sha256(child).encode("ascii"))
    return digest.hexdigest()


def settings_sha256(settings: Mapping[str, Any]) -> str:
    """SHA-256 of the settings as canonical JSON (sorted keys, no spaces): equal settings, equal hash."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def versions(**extra: str) -> dict[str, str]:
    """The versions that shape an item's outputs: Photo3D's and Python's, and what the caller adds (Blender)."""
    found = {"photo3d": __version__, "python": platform.python_version()}
    found.update(extra)
    return found


def item_name(stem: str, frames: tuple[int, int] | None = None) -> str:
    """A file-safe item name: the photo's stem, with ``@A-B`` for a chunk of frames."""
    name = _UNSAFE.sub("_", stem).strip("._") or "item"
    return f"{name}@{frames[0]}-{frames[1]}" if frames else name


@dataclass
class ItemRecord:
    """One finished item (``items/<name>.json``)."""

    name: str
    input: str
    input_sha256: str
    settings_sha256: str
    versions: dict[str, str]
    outputs: list[str]
    """Relative to the output folder, with forward slashes."""
    seconds: float = 0.0
    finished_at: str = ""
    format: str = RECORD_FORMAT
    version: int = RECORD_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ItemLedger:
    """The records and logs of one output folder."""

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.folder = self.out_dir / ITEMS_FOLDER

    def record_path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def log_path(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def read(self, name: str) -> ItemRecord | None:
        """The item's record, or None when there is none or it is not a record this version wrote."""
        try:
            data = read_json_file(self.record_path(name), MAX_RECORD_BYTES)
        except (OSError, JSONRejected):
            return None
        if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT or data.get("version") != RECORD_VERSION:
            return None
        try:
            record = ItemRecord(**data)
        except TypeError:
            return None
        texts = [record.name, record.input_sha256, record.settings_sha256]
        if not all(isinstance(text, str) for text in texts) or not isinstance(record.outputs, list):
            return None
        if not isinstance(record.versions, dict) or not all(isinstance(o, str) for o in record.outputs):
            return None
        return record

    def finished(self, name: str, input_sha256: str, settings: str, made_by: Mapping[str, str]) -> ItemRecord | None:
        """The record when item ``name`` is done with this input, these settings and these versions, and every
        output it lists still exists; else None (redo it)."""
        record = self.read(name)
        if record is None or record.name != name:
            return None
        if (record.input_sha256, record.settings_sha256, record.versions) != (input_sha256, settings, dict(made_by)):
            return None
        for output in record.outputs:
            path = self.out_dir / output
            if not self._inside(path) or not path.exists():
                return None
        return record

    def _inside(self, path: Path) -> bool:
        try:
            path.resolve().relative_to(self.out_dir.resolve())
        except ValueError:
            return False
        return True

    def forget(self, name: str) -> None:
        """Remove the item's record before it is redone: until a new one is written, it is not finished."""
        with contextlib.suppress(FileNotFoundError):
            self.record_path(name).unlink()

    def write(self, record: ItemRecord) -> Path:
        """Write the record atomically (a temporary file renamed over it), readable by the group and others
        as any file the process makes (the umask decides)."""
        record.finished_at = record.finished_at or datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.record_path(record.name)
        handle, temporary = tempfile.mkstemp(prefix=f".{record.name}.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(record.to_dict(), out, indent=2)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, default_dir_mode() & 0o666)  # mkstemp makes it 0600
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        return target

    def relative(self, path: str | os.PathLike) -> str:
        """``path`` relative to the output folder, with forward slashes (what a record lists)."""
        return Path(os.path.relpath(Path(path).absolute(), self.out_dir.absolute())).as_posix()


class ItemLog:
    """An item's own log file (``items/<name>.log``): every line the batch prints about the item, time-stamped,
    appended across runs so a retried item shows its history."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, line: str) -> None:
        stamp = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        self._handle.write(f"{stamp} {line}\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ItemLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


PROGRESS_FORMATS = ("text", "json")
"""How a batch prints its progress: text lines, or one ``progress_line`` each (``--progress``)."""


def progress_line(event: str, item: str, **fields: Any) -> str:
    """One machine-readable progress line: ``photo3d-progress {json}`` with the event, the item, a time and the
    fields (frame counts, stage, share, exit code), on one line whatever the values hold."""
    data = {"event": event, "item": item, "time": round(datetime.datetime.now().timestamp(), 3), **fields}
    return "photo3d-progress " + json.dumps(data, ensure_ascii=True, separators=(",", ":"), default=str)


def job_exit_code(items: list[tuple[str, int]]) -> int:
    """A batch's exit code from its items' ``(status, exit code)``, telling a farm whether to retry: 0 when
    every item is ``ok`` or ``skipped``; ``EXIT_PARTIAL`` when some are and a failure may go away on a retry
    (rerun with --resume: only the others are redone); else the first failure's own code, permanent (retrying
    gives the same) or retryable (``core.errors.failure_class``)."""
    failed = [code for status, code in items if status not in ("ok", "skipped")]
    if not failed:
        return EXIT_OK
    if len(failed) < len(items) and any(failure_class(code) == "retryable" for code in failed):
        return EXIT_PARTIAL
    return failed[0]
