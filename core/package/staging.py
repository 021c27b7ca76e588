"""Staging folders for atomic package writes, and the clean-up of those a dead run left behind.

A write works in ``.<OUT>.photo3d-<random>/`` next to the output: ``new/`` is the package being written,
``old/`` the package it replaces while the two are swapped. The writer holds an exclusive lock on the
folder's ``lock`` file for as long as it works. The operating system releases that lock when the process
ends in any way (SIGKILL and power loss included), so a later run that can take the lock has proof that its
owner is dead: it then puts back a replaced package the dead run had not finished swapping, and removes the
rest. A folder whose lock is held, or that does not look like ours, is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import IO

LOCK_NAME = "lock"
NEW_NAME = "new"
OLD_NAME = "old"
_MARKER = "photo3d-staging"
_INFIX = ".photo3d-"

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(handle: IO[str]) -> bool:
        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(handle: IO[str]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(handle: IO[str]) -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def _unlock(handle: IO[str]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_dir_mode() -> int:
    """The mode ``mkdir`` gives a folder under this process's umask (``mkdtemp`` would give 0700)."""
    return 0o777 & ~_umask()


class Staging:
    """One write's staging folder, locked while it exists; use as a context manager."""

    def __init__(self, out: Path):
        self.out = out
        self.folder = Path(tempfile.mkdtemp(prefix=f".{out.name}{_INFIX}", dir=out.parent))
        self._lock: IO[str] | None = None
        try:
            self._lock = open(self.folder / LOCK_NAME, "w+", encoding="utf-8")  # noqa: SIM115 - held until close
            if not _try_lock(self._lock):
                raise OSError(f"cannot lock {self.folder / LOCK_NAME}")
            self._lock.write(json.dumps({"marker": _MARKER, "pid": os.getpid(), "output": out.name}) + "\n")
            self._lock.flush()
            self.new.mkdir(mode=0o777)  # the umask decides, as for any folder the user makes
        except BaseException:
            self.close()
            raise

    @property
    def new(self) -> Path:
        return self.folder / NEW_NAME

    @property
    def old(self) -> Path:
        return self.folder / OLD_NAME

    def close(self) -> None:
        """Remove the staging folder and release its lock (in that order: the lock proves we are alive).

        A replaced package still in ``old`` while nothing is at the output (the swap was interrupted
        between its two renames) is put back first: it is the user's, never ours to delete.
        """
        if self.old.is_dir() and not os.path.lexists(self.out):
            try:
                os.replace(self.old, self.out)
            except OSError:
                return  # keep everything: a later run restores it once this process is gone
        if self._lock is not None:
            # Windows cannot delete an open file: unlock and close first there; elsewhere remove under the lock.
            if sys.platform == "win32":  # pragma: no cover
                self._lock.close()
                self._lock = None
            shutil.rmtree(self.folder, ignore_errors=True)
            if self._lock is not None:
                self._lock.close()
                self._lock = None
        else:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_ours(folder: Path, out_name: str) -> bool:
    try:
        entries = {entry.name for entry in os.scandir(folder)}
        if not entries <= {LOCK_NAME, NEW_NAME, OLD_NAME} or LOCK_NAME not in entries:
            return False
        with open(folder / LOCK_NAME, encoding="utf-8") as handle:
            record = json.loads(handle.read(4096) or "{}")
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("marker") == _MARKER and record.get("output") == out_name


def clean_stale(out: Path) -> list[Path]:
    """Remove staging folders of ``out`` left by dead runs, restoring a package one of them had moved aside.

    Returns the folders removed. Only folders named like ours, holding only our entries, carrying our marker,
    and whose lock can be taken, are touched.
    """
    removed: list[Path] = []
    try:
        candidates = [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}{_INFIX}") and p.is_dir()]
    except OSError:
        return removed
    for folder in candidates:
        if folder.is_symlink() or not _is_ours(folder, out.name):
            continue
        try:
            handle = open(folder / LOCK_NAME, "r+", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError:
            continue
        try:
            if not _try_lock(handle):
                continue  # its writer is alive
            old = folder / OLD_NAME
            if old.is_dir() and not os.path.lexists(out):
                os.replace(old, out)  # the dead run had moved the previous package aside: put it back
            if sys.platform == "win32":  # pragma: no cover
                handle.close()
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        except OSError:
            continue
        finally:
            if not handle.closed:
                handle.close()
    return removed
