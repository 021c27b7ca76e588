"""Resource cases of the hostile-input review: each hostile input must be refused fast and with little memory.

    .venv/bin/python scripts/hostile_resources.py          # or as the last part of scripts/fuzz_package.py

Each case runs in its own process (``python -m core ...`` or the worker) so its peak memory is its own
(``ru_maxrss`` of the child). Prints, per case: the exit code expected and seen, the peak RSS in MB and
the seconds. Exits 1 when a case gives another exit code, or exceeds its memory or time bound.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from tests.package_fuzz import make_seed_packages, write_zip_bomb_npz  # noqa: E402
from tests.scenes import square_scene  # noqa: E402

# What a refusal may cost: Python with numpy, OpenCV and the core modules imported is about 150 MB.
MAX_PEAK_MB = 400.0
MAX_SECONDS = 20.0


@dataclass
class ResourceCase:
    name: str
    expected: int
    make: Callable[[Path], tuple[list[str], bytes | None]]
    """Builds the input under a folder; returns the command's arguments after ``python`` and its stdin."""


# ``python -m core ARGS`` that reports its own peak RSS on the way out. The high-water mark of the process's
# own memory map (VmHWM), not ru_maxrss: Linux carries ru_maxrss over from the forked parent across exec.
_REPORTING_CORE = """
import atexit, runpy, sys
def report():
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM"))
    sys.stderr.write(f"PEAK_KB {peak}\\n")
atexit.register(report)
sys.argv = ["core", *sys.argv[1:]]
runpy.run_module("core", run_name="__main__", alter_sys=True)
"""


def _run(args: list[str], stdin: bytes | None) -> tuple[int, float, float, bytes]:
    """Exit code, peak RSS (MB) and seconds of ``python -m core ARGS`` in its own process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", _REPORTING_CORE, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    out, err = process.communicate(stdin, timeout=600)
    seconds = time.perf_counter() - started
    peaks = [line.split()[1] for line in err.decode(errors="replace").splitlines() if line.startswith("PEAK_KB ")]
    peak_mb = int(peaks[-1]) / 1024.0 if peaks else float("nan")
    return process.returncode, peak_mb, seconds, out


def _depth_png_bomb(folder: Path) -> tuple[list[str], bytes | None]:
    import cv2

    image, _ = square_scene().write(folder / "in")
    depth = folder / "bomb_depth.png"
    cv2.imwrite(str(depth), np.zeros((15000, 20000), np.uint16), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    args = ["convert", str(image), "-o", str(folder / "out"), "--depth", str(depth), "--segment", "none", "-q"]
    return args, None


def _package(folder: Path) -> Path:
    seeds = make_seed_packages(folder / "seeds")
    package = folder / "pkg"
    shutil.copytree(seeds["mesh"], package)
    return package


def _npz_bomb(folder: Path) -> tuple[list[str], bytes | None]:
    package = _package(folder)
    mesh_path = package / "layers" / "00_mesh.npz"
    with np.load(mesh_path) as data:
        mesh = {name: data[name] for name in data.files}
    write_zip_bomb_npz(mesh_path, mesh, "faces")
    return ["validate", str(package)], None


def _png_bomb(folder: Path) -> tuple[list[str], bytes | None]:
    import struct
    import zlib

    package = _package(folder)
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 6, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    (package / "layers" / "00_color.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk)
    return ["validate", str(package)], None


def _huge_manifest(folder: Path) -> tuple[list[str], bytes | None]:
    package = _package(folder)
    manifest = json.loads((package / "manifest.json").read_text())
    manifest["padding"] = "x" * (64 << 20)
    (package / "manifest.json").write_text(json.dumps(manifest))
    return ["validate", str(package)], None


def _many_layers(folder: Path) -> tuple[list[str], bytes | None]:
    package = _package(folder)
    manifest = json.loads((package / "manifest.json").read_text())
    manifest["layers"] = [dict(manifest["layers"][0], index=i, name=f"l{i}") for i in range(5000)]
    (package / "manifest.json").write_text(json.dumps(manifest))
    return ["validate", str(package)], None


def _config(content: str) -> Callable[[Path], tuple[list[str], bytes | None]]:
    def make(folder: Path) -> tuple[list[str], bytes | None]:
        image, depth = square_scene().write(folder / "in")
        config = folder / "config.json"
        config.write_text(content)
        args = ["convert", str(image), "-o", str(folder / "out"), "--depth", str(depth)]
        return [*args, "--segment", "none", "--config", str(config), "-q"], None

    return make


def _worker_long_line(folder: Path) -> tuple[list[str], bytes | None]:
    line = b'{"type": "ping", "id": "' + b"x" * (200 << 20) + b'"}\n'
    return ["worker"], line + b'{"type": "ping", "id": "after"}\n'


CASES = [
    ResourceCase("depth PNG 20000x15000 16-bit (0.6 MB) as --depth", 2, _depth_png_bomb),
    ResourceCase("NPZ member unpacking to 1 GiB (1 MB file)", 5, _npz_bomb),
    ResourceCase("texture PNG header claiming 100000x100000", 5, _png_bomb),
    ResourceCase("manifest of 64 MB", 5, _huge_manifest),
    ResourceCase("manifest with 5,000 layers", 5, _many_layers),
    ResourceCase("config segment.superpixels 1e8", 2, _config('{"segment": {"superpixels": 100000000}}')),
    ResourceCase("config inpaint.radius 1e5", 2, _config('{"inpaint": {"radius": 100000}}')),
    ResourceCase("config 100,000-deep nesting", 2, _config("[" * 100000 + "]" * 100000)),
    ResourceCase("config integer of 5,000 digits", 2, _config('{"layers": {"max_layers": ' + "9" * 5000 + "}}")),
    ResourceCase("worker request line of 200 MB", 0, _worker_long_line),
]


def run_cases() -> tuple[list[dict], bool]:
    """Run every case; returns the rows and whether all kept their exit code and bounds."""
    rows = []
    ok = True
    for case in CASES:
        with tempfile.TemporaryDirectory(prefix="photo3d-resource-") as tmp:
            args, stdin = case.make(Path(tmp))
            code, peak_mb, seconds, out = _run(args, stdin)
        answered = case.name.startswith("worker") and b'"id": "after"' in out
        good = code == case.expected and peak_mb <= MAX_PEAK_MB and seconds <= MAX_SECONDS
        if case.name.startswith("worker"):
            good = good and answered
        ok = ok and good
        rows.append(
            {
                "case": case.name,
                "expected": case.expected,
                "exit": code,
                "peak_mb": round(peak_mb, 1),
                "seconds": round(seconds, 2),
                "ok": good,
            }
        )
    return rows, ok


def print_rows(rows: list[dict]) -> None:
    print(f"\nresource cases (each its own process; bounds {MAX_PEAK_MB:.0f} MB, {MAX_SECONDS:.0f} s)")
    print(f"{'case':<52}{'want':>5}{'exit':>5}{'peak MB':>9}{'s':>7}  ok")
    for row in rows:
        print(
            f"{row['case']:<52}{row['expected']:>5}{row['exit']:>5}{row['peak_mb']:>9.1f}{row['seconds']:>7.2f}"
            f"  {'yes' if row['ok'] else 'NO'}"
        )


def main() -> int:
    rows, ok = run_cases()
    print_rows(rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
