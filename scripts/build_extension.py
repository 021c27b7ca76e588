#!/usr/bin/env python3
"""Build the Photo3D extension zip(s) with Blender's own extension CLI and validate each one.

Usage (from the repository's virtual environment, which has the bpy wheel):

    python scripts/build_extension.py                # per-platform zips in dist/, with wheels, validated
    python scripts/build_extension.py --out-dir /tmp/x --no-split-platforms
    python scripts/build_extension.py --no-bundle    # without the bundled wheels (a quick add-on-only zip)

Each platform zip bundles the wheels of requirements/bundled.txt for that platform (the torch-free worker
runs on Blender's own Python with them). The repository's manifest lists no wheels, so a clean clone never
refers to files it does not have: the build fetches them (scripts/fetch_wheels.py, into the git-ignored
.cache/wheels/), copies the extension into a temporary staging folder, puts the wheels in its wheels/ and
writes ``wheels = [...]`` into the staged copy of the manifest, then runs the CLI on that folder.

The CLI is ``blender_ext.py``, a standalone script that both Blender and the bpy wheel ship
(``<version>/scripts/addons_core/bl_pkg/cli/blender_ext.py``); it is what ``blender --command extension build``
runs. It is found without importing bpy (importing bpy loads all of Blender). Set ``BLENDER_EXT_CLI`` to the
script's path to use one from a Blender install instead.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST_NAME = "blender_manifest.toml"
# The pinned list of wheels the zips bundle, relative to the source folder; a source without it bundles none.
BUNDLED_REQUIREMENTS = Path("requirements/bundled.txt")
# The extensions platform refuses bigger uploads (per the extensions team's notes); checked for every zip.
UPLOAD_LIMIT_BYTES = 300 * 1000 * 1000
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


def _load_fetch_wheels():
    """scripts/fetch_wheels.py as a module (scripts/ is not a package)."""
    if (loaded := sys.modules.get("fetch_wheels")) is not None:
        return loaded
    spec = importlib.util.spec_from_file_location("fetch_wheels", Path(__file__).resolve().parent / "fetch_wheels.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def fetch_bundled_wheels(requirements: Path, platforms: list[str]) -> dict[str, list[Path]]:
    """The bundled wheels of each platform (downloaded into the cache when absent, hash-checked)."""
    fetch_wheels = _load_fetch_wheels()
    try:
        return fetch_wheels.fetch(platforms, requirements=requirements)
    except fetch_wheels.FetchError as ex:
        raise BuildError(f"the bundled wheels could not be fetched: {ex}") from None


def _excluded_at_top(name: str, is_dir: bool, patterns: list[str]) -> bool:
    """Whether a top-level entry surely falls under the manifest's exclude patterns (a safe subset of the
    CLI's gitignore matching: the CLI applies every pattern again to the staged copy)."""
    for pattern in patterns:
        if pattern.endswith("/") and not is_dir:
            continue
        bare = pattern.strip("/")
        if "/" in bare:
            continue  # a deeper path: left to the CLI
        if fnmatch.fnmatchcase(name, bare):
            return True
    return False


def stage_source(source_dir: Path, stage: Path, manifest: dict, wheels: list[Path]) -> None:
    """Copy the extension into ``stage`` with ``wheels`` in its wheels/ and listed in its manifest."""
    patterns = list(manifest.get("build", {}).get("paths_exclude_pattern") or ["__pycache__/", ".*", "*.zip"])
    for entry in sorted(source_dir.iterdir()):
        if entry.name == "wheels" or _excluded_at_top(entry.name, entry.is_dir(), patterns):
            continue
        if entry.is_dir():
            shutil.copytree(entry, stage / entry.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
        else:
            shutil.copy2(entry, stage / entry.name)
    (stage / "wheels").mkdir()
    for wheel in wheels:
        target = stage / "wheels" / wheel.name
        if target.exists():
            continue  # a pure-Python wheel every platform shares
        try:
            os.link(wheel, target)  # the wheels are 100+ MB per platform: no copy when the disk allows
        except OSError:
            shutil.copy2(wheel, target)
    text = (source_dir / MANIFEST_NAME).read_text(encoding="utf-8")
    listed = "".join(f'\n  "./wheels/{name}",' for name in sorted({w.name for w in wheels}))
    # Top-level keys must precede the first table: insert the list just before it.
    first_table = re.search(r"^\[", text, flags=re.M)
    at = first_table.start() if first_table else len(text)
    text = text[:at] + f"wheels = [{listed}\n]\n\n" + text[at:]
    (stage / MANIFEST_NAME).write_text(text, encoding="utf-8")
    if sorted(read_manifest(stage).get("wheels", [])) != sorted({f"./wheels/{w.name}" for w in wheels}):
        raise BuildError(f"could not list the bundled wheels in the staged {MANIFEST_NAME}")


def check_zip_wheels(zip_path: Path, expected: list[Path]) -> None:
    """Fail unless the zip holds exactly ``expected`` (its platform's bundled wheels)."""
    with zipfile.ZipFile(zip_path) as zf:
        found = {n.removeprefix("wheels/") for n in zf.namelist() if n.startswith("wheels/") and n.endswith(".whl")}
    wanted = {w.name for w in expected}
    if found != wanted:
        missing, extra = sorted(wanted - found), sorted(found - wanted)
        raise BuildError(f"{zip_path.name} has the wrong wheels: missing {missing or 'none'}, extra {extra or 'none'}")


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
    bundle_wheels: bool | None = None,
) -> list[Path]:
    """Build the extension in ``source_dir`` into ``out_dir`` and return the zip paths.

    With ``split_platforms`` there is one zip per platform the manifest declares (a single zip when it declares
    none); with ``validate`` each zip goes through ``blender_ext.py validate`` with Blender's tag list.
    ``bundle_wheels`` (default: when the source has requirements/bundled.txt) puts each platform's pinned
    wheels into its zip. Raises BuildError naming the problem.
    """
    source_dir = Path(source_dir).resolve()
    out_dir = Path(out_dir).resolve()
    manifest = read_manifest(source_dir)
    check_wheels(source_dir, manifest)
    requirements = source_dir / BUNDLED_REQUIREMENTS
    bundle = requirements.is_file() if bundle_wheels is None else bundle_wheels
    if bundle and manifest.get("wheels"):
        raise BuildError(
            f"{MANIFEST_NAME} lists wheels by hand and {BUNDLED_REQUIREMENTS.as_posix()} pins the bundled ones: "
            "keep one (the build writes the bundled wheels into the zips' manifests)"
        )
    cli = find_blender_ext_cli()
    tags = find_valid_tags(cli)

    # The CLI rejects --split-platforms for a manifest without platforms; such an extension is one universal zip.
    split = split_platforms and bool(manifest.get("platforms"))
    platforms = list(manifest.get("platforms") or [])
    wheels = fetch_bundled_wheels(requirements, platforms) if bundle and platforms else {}
    if bundle and not platforms:
        raise BuildError(f"bundled wheels are per platform: declare 'platforms' in {MANIFEST_NAME}")
    zip_names = expected_zip_names(manifest, split=split)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="photo3d-stage-") as tmp:
        build_source = source_dir
        if wheels:
            build_source = Path(tmp)
            stage_source(source_dir, build_source, manifest, [w for paths in wheels.values() for w in paths])
        build_args = ["build", "--source-dir", str(build_source), "--output-dir", str(out_dir)]
        build_args += ["--valid-tags", str(tags)]
        if split:
            build_args.append("--split-platforms")
        run_cli(cli, build_args)

    zips = [out_dir / name for name in zip_names]
    # The CLI reports only the last zip it created, so check them all here.
    absent = [z.name for z in zips if not z.is_file()]
    if absent:
        raise BuildError(f"blender_ext.py build did not write {', '.join(absent)} in {out_dir}")
    for zip_path in zips:
        check_zip_contents(zip_path)
        if wheels:
            platform = _zip_platform(zip_path)
            every = sorted({w for paths in wheels.values() for w in paths})
            check_zip_wheels(zip_path, wheels[platform] if platform else every)
        if zip_path.stat().st_size > UPLOAD_LIMIT_BYTES:
            raise BuildError(
                f"{zip_path.name} is {zip_path.stat().st_size / 1e6:.0f} MB, over the extensions platform's upload "
                f"limit of {UPLOAD_LIMIT_BYTES / 1e6:.0f} MB"
            )
        if validate:
            run_cli(cli, ["validate", "--valid-tags", str(tags), str(zip_path)])
    return zips


def _zip_platform(zip_path: Path) -> str | None:
    """``linux-x64`` for a split zip (from its manifest's generated table), None for a universal one."""
    with zipfile.ZipFile(zip_path) as zf:
        manifest = tomllib.loads(zf.read(MANIFEST_NAME).decode("utf-8"))
    platforms = manifest.get("build", {}).get("generated", {}).get("platforms") or []
    return platforms[0] if len(platforms) == 1 else None


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument("--source-dir", type=Path, default=REPO_ROOT, help="extension source (default: repo root)")
    parser.add_argument(
        "--no-split-platforms", action="store_true", help="one zip for all platforms instead of one per platform"
    )
    parser.add_argument("--no-bundle", action="store_true", help="leave out the bundled wheels (no download)")
    parser.add_argument("--no-validate", action="store_true", help="skip Blender's validation of the zips")
    args = parser.parse_args(argv)
    try:
        zips = build_extension(
            args.out_dir,
            split_platforms=not args.no_split_platforms,
            validate=not args.no_validate,
            source_dir=args.source_dir,
            bundle_wheels=False if args.no_bundle else None,
        )
    except BuildError as ex:
        print(f"error: {ex}", file=sys.stderr)
        return 1
    print(f"Built {len(zips)} extension zip(s):")
    for zip_path in zips:
        size = zip_path.stat().st_size
        limit = f"{size / UPLOAD_LIMIT_BYTES:.0%} of the {UPLOAD_LIMIT_BYTES / 1e6:.0f} MB upload limit"
        print(f"  {zip_path} ({size:,} bytes, {size / 1e6:.1f} MB: {limit})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
