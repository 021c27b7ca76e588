"""Peak memory and seconds per stage of one conversion of a big synthetic photo (100 MP by default).

The photo is a JPEG (or PNG) of a far backdrop with ``--layers`` - 1 nearer objects, each at its own
depth, and a matching depth file at the working resolution, so the run needs no model weights. The
conversion runs as ``python -m core convert PHOTO -o OUT --depth FILE --segment none --inpaint telea``
in a child process; its peak RSS comes from ``os.wait4`` (ru_maxrss), and a sampler thread inside the
child records the largest RSS seen during each stage.

    .venv/bin/python scripts/bench_memory.py [--megapixels 100] [--layers 5] [--format jpeg|png] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("load", "depth", "segment", "harmonize", "layers", "inpaint", "geometry", "package")
ASPECT = 12000 / 8400  # 100 MP at 12000x8400, a common medium-format shape


def photo_size(megapixels: float) -> tuple[int, int]:
    """(width, height) of about ``megapixels`` MP at the benchmark's aspect ratio, never above it."""
    # Rounded down: 100 MP must stay within the photo limit (load.max_pixels), not a few pixels over.
    height = int(math.sqrt(megapixels * 1e6 / ASPECT))
    return int(megapixels * 1e6 // height), height


def make_inputs(folder: Path, width: int, height: int, layers: int, fmt: str, work_size: int) -> tuple[Path, Path]:
    """Write the photo and its depth map (at the working resolution) into ``folder``."""
    import cv2
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from core.load import work_shape

    rng = np.random.default_rng(7)
    wh, ww = work_shape(height, width, work_size)
    # The scene is drawn once at the working resolution: an object id per pixel, 0 the backdrop.
    ids = np.zeros((wh, ww), dtype=np.uint8)
    objects = max(0, layers - 1)
    for k in range(objects):
        cx = int((k + 0.5) / objects * ww)
        cy = int(rng.uniform(0.35, 0.65) * wh)
        radius = int(min(ww / (objects + 1), wh / 3) * rng.uniform(0.6, 0.9))
        cv2.circle(ids, (cx, cy), max(radius, 4), k + 1, thickness=-1)
    # Depth: the backdrop at 30 m, objects from 2 m outwards, evenly spaced in disparity so they separate.
    disparities = np.linspace(1 / 2.0, 1 / 20.0, max(objects, 1))
    depth = np.full((wh, ww), 30.0, dtype=np.float32)
    for k in range(objects):
        depth[ids == k + 1] = 1.0 / disparities[k]
    depth_path = folder / "depth.npy"
    np.save(depth_path, depth)

    palette = rng.integers(30, 226, size=(objects + 1, 3), dtype=np.uint8)
    full_ids = cv2.resize(ids, (width, height), interpolation=cv2.INTER_NEAREST)
    photo = palette[full_ids]  # (H, W, 3) uint8
    del full_ids
    # Texture so superpixels and compression see something like a photo, not flat colour.
    shade = cv2.resize(rng.integers(0, 40, size=(wh, ww), dtype=np.uint8), (width, height), cv2.INTER_LINEAR)
    photo += shade[..., None]
    del shade
    photo_path = folder / ("photo.jpg" if fmt == "jpeg" else "photo.png")
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if fmt == "jpeg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    if not cv2.imwrite(str(photo_path), photo[..., ::-1], params):
        raise OSError(f"cannot write {photo_path}")
    return photo_path, depth_path


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(trace_path: str, argv: list[str]) -> int:
    """Run the CLI in this process, sampling RSS every 10 ms and attributing it to the running stage."""
    sys.path.insert(0, str(ROOT))
    from core import cli, progress

    peaks: dict[str, int] = {}
    state = {"stage": "startup", "stop": False}

    def sample() -> None:
        while not state["stop"]:
            stage = state["stage"]
            peaks[stage] = max(peaks.get(stage, 0), _rss_bytes())
            time.sleep(0.01)

    original = progress.Progress.stage

    def traced(self, name):  # the stage context manager, noting which stage is running
        state["stage"] = name
        return original(self, name)

    progress.Progress.stage = traced
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        code = cli.main(argv)
    finally:
        state["stop"] = True
        sampler.join()
        Path(trace_path).write_text(json.dumps({k: v / 2**20 for k, v in peaks.items()}))
    return code


def measure(photo: Path, depth: Path, out: Path, layers: int, extra: list[str]) -> dict:
    """Convert once in a child process; its peak RSS, per-stage peaks and per-stage seconds."""
    trace = out.parent / "trace.json"
    argv = ["convert", str(photo), "-o", str(out), "--depth", str(depth), "--segment", "none"]
    argv += ["--inpaint", "telea", "--layers", str(layers), "--json", "-q", *extra]
    command = [sys.executable, __file__, "--child", str(trace), "--", *argv]
    started = time.perf_counter()
    # Output goes to files and the child is reaped with wait4, which returns that child's own rusage.
    with open(out.parent / "stdout.txt", "w+") as stdout, open(out.parent / "stderr.txt", "w+") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        output, errors = stdout.read(), stderr.read()
    if process.returncode != 0:
        print(errors, file=sys.stderr)
        raise SystemExit(f"conversion failed with exit code {process.returncode}")
    manifest = json.loads(output)["manifest"]
    return {
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "stage_peak_mb": json.loads(trace.read_text()),
        "timings": manifest["timings"],
        "layers": len(manifest["layers"]),
        "wall_s": time.perf_counter() - started,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megapixels", type=float, default=100.0, help="photo size (default 100 MP)")
    parser.add_argument("--layers", type=int, default=5, help="depth layers asked for and drawn (default 5)")
    parser.add_argument("--format", choices=["jpeg", "png"], default="jpeg", help="photo file format")
    parser.add_argument("--work-size", type=int, default=1024, help="working resolution (default 1024)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        return child(args.child, [a for a in rest if a != "--"])

    width, height = photo_size(args.megapixels)
    with tempfile.TemporaryDirectory(prefix="photo3d-bench-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        photo, depth = make_inputs(folder, width, height, args.layers, args.format, args.work_size)
        made = time.perf_counter() - started
        print(
            f"photo {width}x{height} ({width * height / 1e6:.1f} MP, {photo.stat().st_size / 2**20:.0f} MB "
            f"{args.format}), made in {made:.1f} s; depth file at the working resolution"
        )
        result = measure(photo, depth, folder / "pkg", args.layers, ["--work-size", str(args.work_size)])
    result.update(width=width, height=height, megapixels=width * height / 1e6, asked_layers=args.layers)
    print(f"{'stage':<11}{'seconds':>9}{'peak MB':>10}")
    for stage in ("startup", *STAGES):
        seconds = result["timings"].get(stage)
        peak = result["stage_peak_mb"].get(stage)
        if seconds is None and peak is None:
            continue
        # A stage shorter than the 10 ms sampling period has no peak of its own.
        peak_text = f"{peak:>10.0f}" if peak else f"{'-':>10}"
        print(f"{stage:<11}{seconds if seconds is not None else 0.0:>9.2f}{peak_text}")
    peak, wall = result["peak_rss_mb"], result["wall_s"]
    print(f"{result['layers']} layers; peak RSS {peak:.0f} MB (ru_maxrss); wall {wall:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
