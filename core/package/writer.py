"""Writing a layer package atomically (``staging``): a failed, cancelled or killed job never leaves a
half-written package, and an existing folder is replaced only when it provably is a Photo3D package holding
nothing else. The manifest is written once, inside the staging folder, before the rename.

``write_package_atomically(out, fill)`` does it in one call; ``staged_package(out)`` opens the staging folder
for a writer that fills it over time (the pipeline writes textures on helper threads while later stages run)
and publishes it with ``StagedPackage.publish``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

from ..errors import OutputError, PackageError
from .files import MANIFEST_NAME, check_texture, load_depth_map
from .manifest import parse_manifest
from .reader import LayerPackage, package_files, read_package
from .staging import Staging, clean_stale


def _foreign_entries(out: Path) -> list[str]:
    """What in ``out`` would be lost by replacing it: everything, unless it is a package holding only itself."""
    try:
        package = read_package(out, check_meshes=False, check_data=False)
    except PackageError as exc:
        return [f"(it is not a Photo3D package: {exc})"]
    return entries_beyond(out, package_files(package))


def entries_beyond(out: Path, expected: set[str]) -> list[str]:
    """What in folder ``out`` is not one of the ``expected`` files (relative, forward slashes) or a folder on
    the way to one: the first few, for a message (links to folders count as foreign)."""
    folders = set()
    for name in expected:
        parent = Path(name).parent
        while str(parent) != ".":
            folders.add(parent.as_posix())
            parent = parent.parent
    extra: list[str] = []
    for folder, dirnames, filenames in os.walk(out):
        relative_folder = os.path.relpath(folder, out).replace(os.sep, "/")
        prefix = "" if relative_folder == "." else relative_folder + "/"
        for name in dirnames:
            if prefix + name not in folders or os.path.islink(os.path.join(folder, name)):
                extra.append(prefix + name + "/")
        dirnames[:] = [name for name in dirnames if prefix + name in folders]
        extra.extend(prefix + name for name in filenames if prefix + name not in expected)
        if len(extra) > 5:
            break
    return extra


@contextlib.contextmanager
def output_errors(what: str) -> Iterator[None]:
    """An ``OSError`` in the block (disk full, permissions) becomes ``OutputError`` naming ``what``."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"cannot write {what}: {exc.strerror or exc}") from None


def check_folder_replaceable(out: Path, foreign_entries: Callable[[Path], list[str]], kind: str) -> None:
    """Raise ``OutputError`` unless ``out`` is absent, an empty folder, or a folder ``foreign_entries`` finds
    nothing foreign in (it lists what replacing ``out`` would lose). ``kind`` names what Photo3D writes there."""
    if not os.path.lexists(out):
        return
    if not out.is_dir():
        raise OutputError(f"output {out} exists and is not a directory")
    try:
        empty = not any(out.iterdir())
    except OSError as exc:
        raise OutputError(f"cannot read output folder {out}: {exc.strerror or exc}") from None
    if empty:
        return
    foreign = foreign_entries(out)
    if foreign:
        listed = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise OutputError(
            f"output folder {out} is not empty and is not only {kind}; nothing was changed. "
            f"Photo3D replaces only what it wrote and never deletes files it did not write: {listed}"
        )


def check_replaceable(out: Path) -> None:
    """Raise ``OutputError`` unless ``out`` is absent, an empty folder, or a Photo3D package and nothing more."""
    check_folder_replaceable(out, _foreign_entries, "a Photo3D package")


def swap_in(staging: Staging, out: Path, check: Callable[[Path], None] = check_replaceable) -> None:
    """Move the new package to ``out``, and the package it replaces out of the way (then deleted).

    ``check`` raises unless what is at ``out`` may be replaced (a comp export passes its own)."""
    for _ in range(5):
        check(out)  # again, right before the swap: the folder may have changed meanwhile
        if os.path.lexists(out):
            # Another writer may have taken it away first: then publish into the free name.
            with contextlib.suppress(FileNotFoundError):
                os.replace(out, staging.old)
        try:
            os.replace(staging.new, out)
            return
        except OSError:
            if not os.path.lexists(out):
                raise
            # Another writer published between our two renames: replace its package like any other.
            shutil.rmtree(staging.old, ignore_errors=True)
    raise OutputError(f"output {out} keeps changing while Photo3D writes it (another writer?); try again")


class StagedPackage:
    """A package being written into ``folder`` (the staging folder's ``new``), published by ``publish``."""

    def __init__(self, staging: Staging, out: Path):
        self._staging = staging
        self.out = out
        self.folder = staging.new
        self.published = False

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Around writing files into ``folder``: an ``OSError`` (disk full, permissions) becomes ``OutputError``."""
        return output_errors(f"package {self.out}")

    def publish(self, manifest_data: dict[str, Any], verified_textures: Collection[str] = ()) -> LayerPackage:
        """Check the manifest, write it, check the package as our reader would, and move it into place.

        ``verified_textures`` names textures already checked when they were written (the pipeline inflates
        them, or knows them complete from its own encoder); every other texture is inflated and checked here.
        """
        if self.published:
            raise RuntimeError("the package was already published")
        with self.writing():
            # Checked and rebuilt from the typed manifest: what is written is what every reader gets.
            manifest = parse_manifest(manifest_data)
            text = json.dumps(manifest.to_dict(), indent=2, allow_nan=False)
            (self.folder / MANIFEST_NAME).write_text(text, encoding="utf-8")
            _check_as_read(self.folder, set(verified_textures))  # never publish what our reader would reject
            swap_in(self._staging, self.out)
        self.published = True
        return LayerPackage(root=self.out, manifest=manifest)


def _check_as_read(folder: Path, verified_textures: set[str]) -> None:
    """What ``read_package(folder)`` checks, without inflating the textures already checked in full."""
    if not verified_textures:
        read_package(folder)
        return
    package = read_package(folder, check_data=False)  # manifest, files, meshes, texture headers
    for layer in package.layers:
        if layer.texture not in verified_textures:
            size = package.manifest.texture_size(layer)
            check_texture(package.path_of(layer.texture), layer.texture, size, full=True)
    load_depth_map(package.depth_map_path(), package.manifest.work_size)


def open_staging(out_dir: str | os.PathLike, check: Callable[[Path], None]) -> tuple[Path, Staging]:
    """The output's absolute path (a symbolic link followed) and a locked staging folder next to it, after
    cleaning up the staging folders of killed runs and ``check``-ing that the output may be replaced."""
    out = Path(out_dir).absolute()
    try:
        if out.is_symlink():
            out = out.resolve()
        out.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(out)
    except (OSError, RuntimeError) as exc:
        raise OutputError(f"cannot write to {out.parent}: {getattr(exc, 'strerror', None) or exc}") from None
    check(out)
    try:
        return out, Staging(out)
    except OSError as exc:
        raise OutputError(f"cannot write to {out.parent}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def staged_package(out_dir: str | os.PathLike) -> Iterator[StagedPackage]:
    """Open a locked staging folder for ``out_dir``; leaving the block without ``publish`` removes it.

    The output is checked first as ``write_package_atomically`` does (``OutputError`` when it is a file or a
    non-empty folder that is not a package); stale staging folders of killed runs are cleaned up.
    """
    out, staging = open_staging(out_dir, check_replaceable)
    with staging:
        yield StagedPackage(staging, out)


def write_package_atomically(out_dir: str | os.PathLike, fill: Callable[[Path], dict[str, Any]]) -> LayerPackage:
    """Call ``fill(folder)`` to write files and return the manifest; then move the result into place and
    return the package as written (its root is the final folder).

    An existing package at ``out_dir`` is replaced; any other non-empty folder is refused with
    ``OutputError`` (exit 4) and left untouched. An output that is a symbolic link is written where it
    points. Any exception (cancellation and signals included) removes the staging folder and leaves
    ``out_dir`` as it was; staging folders of earlier runs that were killed are cleaned up first.
    """
    with staged_package(out_dir) as staged:
        with staged.writing():
            manifest_data = fill(staged.folder)
        return staged.publish(manifest_data)
