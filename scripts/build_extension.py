#!/usr/bin/env python3
"""Build the Photo3D extension zip(s) with Blender's own extension CLI and validate each one.

Usage (from the repository's virtual environment, which has the bpy wheel):

    python scripts/build_extension.py                # per-platform zips in dist/, validated
    python scripts/build_extension.py --out-dir /tmp/x --no-split-platforms

The CLI is ``blender_ext.py``, a standalone script that both Blender and the bpy wheel ship
(``<version>/scripts/addons_core/bl_pkg/cli/blender_ext.py``); it is what ``blender --command extension build``
runs. It is found without importing bpy (importing bpy loads all of Blender). Set ``BLENDER_EXT_CLI`` to the
script's path to use one from a Blender install instead.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST_NAME = "blender_manifest.toml"
# Relative to a Blender version directory (bpy/4.5/ in the wheel, 4.5/ next to a Blender binary).
CLI_RELPATH = Path("scripts/addons_core/bl_pkg/cli/blender_ext.py")
# The tag list Blender itself validates against; the standalone CLI checks no tags unless given one.
TAGS_RELPATH = Path("scripts/modules/_bpy_internal/extensions/tags.py")
CLI_ENV_VAR = "BLENDER_EXT_CLI"
# Files the installed extension cannot work without: the add-on, and the core package the worker runs
# (`python -m core worker` from the extension folder). Guards against an over-broad paths_exclude_pattern.
REQUIRED_ENTRIES = (
    "__init__.py",
    MANIFEST_NAME,
    "photo3d_addon/__init__.py",
    "photo3d_addon/registration.py",
    "core/__init__.py",
    "core/__main__.py",
)
# Lines the CLI prints (TEXT output) for problems; STATUS lines carry no prefix.
PROBLEM_PREFIXES = ("WARN:", "ERROR:", "FATAL_ERROR:")


class BuildError(RuntimeError):
    """The extension could not be built or did not validate; the message says why."""


def _version_key(path: Path) -> tuple[int, ...]:
    """Sort key for a Blender version directory name such as ``4.5``; non-numeric names sort first."""
    try:
        return tuple(int(part) for part in path.name.split("."))
    except ValueError:
        return ()


def _bpy_package_dirs() -> list[Path]:
    """Directories of installed ``bpy`` packages, located without importing bpy."""
    # find_spec on a top-level name only locates the package; it does not execute bpy/__init__.
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(location) for location in spec.submodule_search_locations]


def find_blender_ext_cli() -> Path:
    """Path of Blender's ``blender_ext.py``: from ``$BLENDER_EXT_CLI``, else from the installed bpy wheel."""
    if override := os.environ.get(CLI_ENV_VAR):
        cli = Path(override).expanduser().resolve()
        if not cli.is_file():
            raise BuildError(f"{CLI_ENV_VAR}={override!r} is not a file (expected .../{CLI_RELPATH.as_posix()})")
        return cli

    bpy_dirs = _bpy_package_dirs()
    if not bpy_dirs:
        raise BuildError(
            f"Blender's extension CLI not found: no bpy package for {sys.executable}. Run this with the project's "
            f"virtual environment (.venv, which has the bpy wheel) or set {CLI_ENV_VAR} to the path of "
            f"<blender>/<version>/{CLI_RELPATH.as_posix()}."
        )
    version_dirs = sorted(
        (d for bpy_dir in bpy_dirs for d in bpy_dir.iterdir() if (d / CLI_RELPATH).is_file()), key=_version_key
    )
    if not version_dirs:
        searched = ", ".join(str(d / "*" / CLI_RELPATH) for d in bpy_dirs)
        raise BuildError(f"Blender's extension CLI not found in the bpy package (searched {searched}).")
    # The newest Blender version's CLI, should several version directories exist.
    return version_dirs[-1] / CLI_RELPATH


def find_valid_tags(cli: Path) -> Path:
    """Blender's tag list that sits in the same ``scripts/`` tree as ``cli``."""
    scripts_dir = cli.parents[len(CLI_RELPATH.parts) - 2]
    tags = scripts_dir / TAGS_RELPATH.relative_to("scripts")
    if not tags.is_file():
        raise BuildError(f"Blender's list of valid extension tags not found at {tags} (next to the CLI {cli}).")
    return tags


def read_manifest(source_dir: Path) -> dict:
    """The parsed ``blender_manifest.toml`` of ``source_dir``."""
    path = source_dir / MANIFEST_NAME
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise BuildError(f"{path} not found: the source directory is not an extension.") from None
    except tomllib.TOMLDecodeError as ex:
        raise BuildError(f"{path} is not valid TOML: {ex}") from None


def check_wheels(source_dir: Path, manifest: dict) -> list[Path]:
    """Check that every wheel the manifest lists exists and every ``wheels/*.whl`` is listed; return them.

    The CLI would only notice a missing wheel while writing the zip of a platform that uses it (after writing
    the other platforms' zips), and an unlisted wheel would never be installed, so both are errors up front.
    """
    listed = manifest.get("wheels") or []
    if not isinstance(listed, list) or not all(isinstance(w, str) for w in listed):
        raise BuildError(f"{MANIFEST_NAME}: 'wheels' must be a list of paths, found {listed!r}")
    wheels = [(source_dir / w).resolve() for w in listed]
    missing = [w for w, path in zip(listed, wheels, strict=True) if not path.is_file()]
    if missing:
        raise BuildError(
            f"{MANIFEST_NAME} lists wheel(s) that do not exist in {source_dir}: {', '.join(missing)}. "
            "Add the files or remove them from 'wheels'."
        )
    unlisted = sorted(p for p in (source_dir / "wheels").glob("*.whl") if p.resolve() not in wheels)
    if unlisted:
        names = ", ".join(p.relative_to(source_dir).as_posix() for p in unlisted)
        raise BuildError(
            f"wheel(s) not listed in {MANIFEST_NAME}'s 'wheels': {names}. "
            'List them (wheels = ["./wheels/<file>.whl", ...]) or delete them.'
        )
    return wheels


def expected_zip_names(manifest: dict, *, split: bool) -> list[str]:
    """Zip file names the CLI writes: ``{id}-{version}[-{platform}].zip`` (platform with ``_`` for ``-``)."""
    stem = f"{manifest['id']}-{manifest['version']}"
    if not split:
        return [f"{stem}.zip"]
    return [f"{stem}-{platform.replace('-', '_')}.zip" for platform in manifest["platforms"]]


def run_cli(cli: Path, args: list[str]) -> str:
    """Run ``blender_ext.py`` with ``args``, echoing the command and its output; raise on failure or warnings."""
    command = [sys.executable, str(cli), *args]
    print(f"$ {shlex.join(command)}", flush=True)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    output = (result.stdout + result.stderr).rstrip()
    if output:
        print(output, flush=True)
    lines = output.splitlines()
    first_problem = next((i for i, line in enumerate(lines) if line.startswith(PROBLEM_PREFIXES)), None)
    if result.returncode != 0 or first_problem is not None:
        # From the first problem on: some messages continue on further lines (the valid tag list, for one).
        detail = "\n".join(lines[first_problem or 0 :]) or "(no output)"
        raise BuildError(f"blender_ext.py {args[0]} failed (exit code {result.returncode}):\n{detail}")
    return output


def check_zip_contents(zip_path: Path) -> None:
    """Fail when the zip lacks a file the installed extension needs."""
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
    missing = [name for name in REQUIRED_ENTRIES if name not in names]
    if missing:
        raise BuildError(
            f"{zip_path.name} lacks {', '.join(missing)}: check [build] paths_exclude_pattern in {MANIFEST_NAME}"
        )


def build_extension(
    out_dir: Path,
    *,
    split_platforms: bool = True,
    validate: bool = True,
    source_dir: Path = REPO_ROOT,
) -> list[Path]:
    """Build the extension in ``source_dir`` into ``out_dir`` and return the zip paths.

    With ``split_platforms`` there is one zip per platform the manifest declares (a single zip when it declares
    none); with ``validate`` each zip goes through ``blender_ext.py validate`` with Blender's tag list.
    Raises BuildError naming the problem.
    """
    source_dir = Path(source_dir).resolve()
    out_dir = Path(out_dir).resolve()
    manifest = read_manifest(source_dir)
    check_wheels(source_dir, manifest)
    cli = find_blender_ext_cli()
    tags = find_valid_tags(cli)

    # The CLI rejects --split-platforms for a manifest without platforms; such an extension is one universal zip.
    split = split_platforms and bool(manifest.get("platforms"))
    out_dir.mkdir(parents=True, exist_ok=True)
    build_args = ["build", "--source-dir", str(source_dir), "--output-dir", str(out_dir), "--valid-tags", str(tags)]
    if split:
        build_args.append("--split-platforms")
    run_cli(cli, build_args)

    zips = [out_dir / name for name in expected_zip_names(manifest, split=split)]
    # The CLI reports only the last zip it created, so check them all here.
    absent = [z.name for z in zips if not z.is_file()]
    if absent:
        raise BuildError(f"blender_ext.py build did not write {', '.join(absent)} in {out_dir}")
    for zip_path in zips:
        check_zip_contents(zip_path)
        if validate:
            run_cli(cli, ["validate", "--valid-tags", str(tags), str(zip_path)])
    return zips


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument("--source-dir", type=Path, default=REPO_ROOT, help="extension source (default: repo root)")
    parser.add_argument(
        "--no-split-platforms", action="store_true", help="one zip for all platforms instead of one per platform"
    )
    parser.add_argument("--no-validate", action="store_true", help="skip Blender's validation of the zips")
    args = parser.parse_args(argv)
    try:
        zips = build_extension(
            args.out_dir,
            split_platforms=not args.no_split_platforms,
            validate=not args.no_validate,
            source_dir=args.source_dir,
        )
    except BuildError as ex:
        print(f"error: {ex}", file=sys.stderr)
        return 1
    print(f"Built {len(zips)} extension zip(s):")
    for zip_path in zips:
        print(f"  {zip_path} ({zip_path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
