#!/usr/bin/env python3
"""Download the wheels the extension bundles (requirements/bundled.txt) for each Blender platform.

Usage (from the repository's virtual environment):

    python scripts/fetch_wheels.py                   # all platforms, into .cache/wheels/<platform>/
    python scripts/fetch_wheels.py linux-x64         # one platform
    python scripts/fetch_wheels.py --lock            # after changing a pin: rewrite bundled.txt's hashes

pip downloads cp311 wheels (``--only-binary=:all: --no-deps``) for the platform's tags in hash-checking mode:
every file must match one of the ``--hash`` values in bundled.txt, and files already in the cache are
checked again before they are used. ``--lock`` downloads without the pinned hashes (pip still checks each
file against the hash the index publishes) and writes the SHA-256 of every platform's wheel into the file.
``PHOTO3D_WHEEL_CACHE`` moves the cache.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags, mac_platforms
from packaging.utils import canonicalize_name, parse_wheel_filename

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO_ROOT / "requirements" / "bundled.txt"
CACHE_ENV_VAR = "PHOTO3D_WHEEL_CACHE"
DEFAULT_CACHE = REPO_ROOT / ".cache" / "wheels"
PYTHON_VERSION = (3, 11)  # Blender 4.2-5.0 embed Python 3.11
# The oldest macOS the bundle targets: onnxruntime 1.23.2's macOS wheels need 13.0 (see bundled.txt).
MACOS_TARGET = (13, 0)
# Blender 4.2+ on Linux needs glibc 2.28 (its VFX platform), so any manylinux wheel up to 2_28 runs.
MANYLINUX_MAX_GLIBC = 28

# pip matches --platform exactly (it expands macOS versions but not manylinux ones), so each platform lists
# every tag it accepts, best first; the same list ranks the wheels found in the cache.
PLATFORM_TAGS: dict[str, tuple[str, ...]] = {
    "windows-x64": ("win_amd64",),
    "macos-arm64": tuple(mac_platforms(MACOS_TARGET, "arm64")),
    "macos-x64": tuple(mac_platforms(MACOS_TARGET, "x86_64")),
    "linux-x64": (
        *(f"manylinux_2_{minor}_x86_64" for minor in range(MANYLINUX_MAX_GLIBC, 16, -1)),
        "manylinux2014_x86_64",
    ),
}
PLATFORMS = tuple(PLATFORM_TAGS)


class FetchError(RuntimeError):
    """The wheels could not be downloaded or do not match the pinned list; the message says why."""


# Marker values of each Blender platform's Python: pip evaluates markers against the Python running it, even
# with --platform, so fetch_wheels evaluates them itself and hands pip only the lines for the platform.
PLATFORM_MARKERS: dict[str, dict[str, str]] = {
    "windows-x64": {"sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64"},
    "macos-arm64": {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64"},
    "macos-x64": {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "x86_64"},
    "linux-x64": {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"},
}


@dataclass(frozen=True)
class Pin:
    """One line of bundled.txt: ``name==version[; marker]`` with the SHA-256 hashes allowed for its wheels."""

    name: str
    version: str
    marker: Marker | None
    hashes: frozenset[str]

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"

    def applies_to(self, platform: str) -> bool:
        """Whether the line's marker (if any) holds for ``platform``'s Blender Python."""
        if self.marker is None:
            return True
        environment = {"python_version": "3.11", "python_full_version": "3.11.9", "implementation_name": "cpython"}
        environment["os_name"] = "nt" if platform.startswith("windows") else "posix"
        return self.marker.evaluate({**environment, **PLATFORM_MARKERS[platform]})


def _logical_lines(text: str) -> list[tuple[int, int, str]]:
    """Requirement lines as (first line index, last line index, text with ``\\`` continuations joined);
    comment lines and blank lines are left out."""
    lines = text.splitlines()
    result = []
    i = 0
    while i < len(lines):
        start, parts = i, [lines[i]]
        while parts[-1].rstrip().endswith("\\") and i + 1 < len(lines):
            parts[-1] = parts[-1].rstrip().removesuffix("\\")
            i += 1
            parts.append(lines[i])
        joined = " ".join(part.split("#", 1)[0].strip() for part in parts).strip()
        if joined:
            result.append((start, i, joined))
        i += 1
    return result


def read_pins(path: Path = REQUIREMENTS) -> list[Pin]:
    """The pins of ``path``: ``name==version``, an optional marker, then only ``--hash=sha256:...`` options."""
    pins = []
    for _, _, line in _logical_lines(path.read_text(encoding="utf-8")):
        spec, _, options = line.partition(" --")
        hashes = set()
        for option in ("--" + options).split() if options else []:
            if not option.startswith("--hash=sha256:"):
                raise FetchError(f"{path.name}: only --hash=sha256:... may follow a pin, found {option!r}")
            hashes.add(option.removeprefix("--hash=sha256:"))
        requirement = Requirement(spec)
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or requirement.extras:
            raise FetchError(f"{path.name}: {spec!r} must be pinned exactly (name==version)")
        pins.append(Pin(requirement.name, specifiers[0].version, requirement.marker, frozenset(hashes)))
    for platform in PLATFORMS:
        keys = [pin.key for pin in pins if pin.applies_to(platform)]
        if len(set(keys)) != len(keys):
            raise FetchError(f"{path.name}: a package is pinned twice for {platform}")
    return pins


def pins_for(platform: str, pins: list[Pin]) -> list[Pin]:
    """The pins whose markers hold on ``platform``."""
    return [pin for pin in pins if pin.applies_to(platform)]


def write_requirements(path: Path, pins: list[Pin], *, with_hashes: bool) -> Path:
    """A requirements file for pip holding ``pins`` without their markers (already evaluated)."""
    lines = []
    for pin in pins:
        hashes = sorted(pin.hashes) if with_hashes else []
        lines.append(" ".join([pin.spec, *(f"--hash=sha256:{h}" for h in hashes)]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cache_dir() -> Path:
    """Where downloaded wheels are kept, one folder per platform (git-ignored)."""
    return Path(os.environ.get(CACHE_ENV_VAR) or DEFAULT_CACHE)


def supported_tags(platform: str) -> list[Tag]:
    """The wheel tags a Blender platform's Python 3.11 accepts, best first."""
    platforms = list(PLATFORM_TAGS[platform])
    return [
        *cpython_tags(PYTHON_VERSION, abis=["cp311"], platforms=platforms),
        *compatible_tags(PYTHON_VERSION, "cp311", platforms),
    ]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def select_wheels(folder: Path, pins: list[Pin], platform: str, *, check_hashes: bool = True) -> list[Path]:
    """The best wheel in ``folder`` for each pin on ``platform``; raises when one is missing or mismatched."""
    rank = {tag: i for i, tag in enumerate(supported_tags(platform))}
    best: dict[str, tuple[int, Path]] = {}
    for path in folder.glob("*.whl") if folder.is_dir() else ():
        try:
            name, version, _, tags = parse_wheel_filename(path.name)
        except ValueError:
            continue
        score = min((rank[t] for t in tags if t in rank), default=None)
        pin = next((p for p in pins if p.key == name and p.version == str(version)), None)
        if pin is None or score is None:
            continue  # another version (a pin was bumped) or another platform's wheel
        if pin.key not in best or score < best[pin.key][0]:
            best[pin.key] = (score, path)
    missing = [f"{p.name}=={p.version}" for p in pins if p.key not in best]
    if missing:
        raise FetchError(f"no {platform} wheel in {folder} for {', '.join(missing)}")
    chosen = [best[p.key][1] for p in pins]
    if check_hashes:
        for pin, path in zip(pins, chosen, strict=True):
            if sha256(path) not in pin.hashes:
                raise FetchError(
                    f"{path} does not match the hashes pinned in {REQUIREMENTS.name}: delete it and fetch again, "
                    "or run scripts/fetch_wheels.py --lock if the pin was changed on purpose"
                )
    return chosen


def pip_download_command(platform: str, requirements: Path, dest: Path) -> list[str]:
    """``pip download`` of ``requirements`` as cp311 wheels for ``platform``, without dependencies."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        ".".join(map(str, PYTHON_VERSION)),
        "--implementation",
        "cp",
        "--abi",
        "cp311",
    ]
    for tag in PLATFORM_TAGS[platform]:
        command += ["--platform", tag]
    return [*command, "--dest", str(dest), "-r", str(requirements)]


def _pip_download(platform: str, requirements: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    command = pip_download_command(platform, requirements, dest)
    print(f"$ {shlex.join(command)}", flush=True)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise FetchError(f"pip could not download the {platform} wheels (exit code {result.returncode}):\n{tail}")


def fetch(
    platforms: tuple[str, ...] | list[str] = PLATFORMS, *, requirements: Path = REQUIREMENTS, cache: Path | None = None
) -> dict[str, list[Path]]:
    """The pinned wheels for each platform, downloaded into the cache when absent; hash-checked either way."""
    pins = read_pins(requirements)
    unhashed = [p.spec for p in pins if not p.hashes]
    if unhashed:
        raise FetchError(f"{requirements.name}: no hashes for {', '.join(unhashed)}; run fetch_wheels.py --lock")
    cache = cache or cache_dir()
    result = {}
    for platform in platforms:
        folder, wanted = cache / platform, pins_for(platform, pins)
        try:
            result[platform] = select_wheels(folder, wanted, platform)
            continue  # all cached and verified: no pip, no network
        except FetchError:
            pass
        with tempfile.TemporaryDirectory() as tmp:
            # Hash-checking mode: pip refuses any file whose SHA-256 is not pinned.
            _pip_download(platform, write_requirements(Path(tmp) / "pins.txt", wanted, with_hashes=True), folder)
        result[platform] = select_wheels(folder, wanted, platform)
    return result


def lock(requirements: Path = REQUIREMENTS, cache: Path | None = None) -> None:
    """Download every platform's wheels for the current pins and rewrite the file's hashes from them."""
    pins = read_pins(requirements)
    cache = cache or cache_dir()
    hashes: dict[tuple[str, str], set[str]] = {(pin.key, pin.version): set() for pin in pins}
    with tempfile.TemporaryDirectory() as tmp:
        for platform in PLATFORMS:
            wanted = pins_for(platform, pins)
            # Without --hash pip still checks each file against the SHA-256 the index publishes for it.
            _pip_download(
                platform, write_requirements(Path(tmp) / f"{platform}.txt", wanted, with_hashes=False), cache / platform
            )
            for pin, path in zip(
                wanted, select_wheels(cache / platform, wanted, platform, check_hashes=False), strict=True
            ):
                hashes[(pin.key, pin.version)].add(sha256(path))
    text = requirements.read_text(encoding="utf-8")
    lines = text.splitlines()
    logical = {start: (end, line) for start, end, line in _logical_lines(text)}
    out: list[str] = []
    i = 0
    while i < len(lines):
        if i not in logical:
            out.append(lines[i])
            i += 1
            continue
        end, line = logical[i]
        spec = line.partition(" --")[0].strip()
        requirement = Requirement(spec)
        key = (canonicalize_name(requirement.name), next(iter(requirement.specifier)).version)
        out.append(f"{spec} \\")
        out += [f"    --hash=sha256:{h} \\" for h in sorted(hashes[key])]
        out[-1] = out[-1].removesuffix(" \\")
        i = end + 1
    requirements.write_text("\n".join(out) + "\n", encoding="utf-8")
    print(f"Wrote the hashes of {sum(map(len, hashes.values()))} wheels into {requirements}")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("platforms", nargs="*", help=f"any of {', '.join(PLATFORMS)} (default: all)")
    parser.add_argument("--lock", action="store_true", help="rewrite bundled.txt's hashes from fresh downloads")
    args = parser.parse_args(argv)
    if unknown := sorted(set(args.platforms) - set(PLATFORMS)):
        parser.error(f"unknown platform(s) {', '.join(unknown)}: use {', '.join(PLATFORMS)}")
    try:
        if args.lock:
            lock()
        wheels = fetch(args.platforms or PLATFORMS)
    except FetchError as ex:
        print(f"error: {ex}", file=sys.stderr)
        return 1
    for platform, paths in wheels.items():
        size = sum(p.stat().st_size for p in paths)
        print(f"{platform}: {len(paths)} wheels, {size / 1e6:.1f} MB")
        for path in paths:
            print(f"  {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
