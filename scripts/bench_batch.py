"""Photos per hour of ``python -m core batch``: serial, and on a local Ray cluster with 1 and 2 workers, for
conversions only and for conversions plus a short render (4 frames, PREVIEW), with Ray's overhead per item.

    .venv/bin/python scripts/bench_batch.py [--photos 8] [--work-size 1024] [--json FILE]

The photos are skimage.data's colour images scaled to ``--work-size`` on their longest side, each with a
synthetic depth map (a slope with nearer boxes: several layers, no network needed); segmentation is the
weights-free fallback and inpainting Telea, so the numbers are the CPU pipeline's, not a model's. Every run is a
fresh ``python -m core batch`` process (its wall time includes Python's start-up and, with Ray, the local
cluster's start and shutdown, measured on their own as "ray start+stop"). Ray's overhead per item is (Ray with
1 worker - serial) / photos, with and without that fixed start-up cost, and as a share of the serial time per
photo. The machine may be shared: the load average before and after is printed with the table.

Measured on a shared 2-core machine (load average about 3, Ray 2.52.1, 8 photos at 1024 px, no networks):
serial 3.1 s of conversion per photo (1150 photos per hour, conversion only); Ray with one worker 0.7 s more per
photo, of which 0.6 s is the local cluster's start and shutdown (4.6 s per batch) and about 0.1 s the actor's
own start and the scheduling; two workers on two cores are slower (each conversion already uses both). With a
short render (4 frames, PREVIEW, chunks of 2: 4.5 s per chunk, mostly Blender's start-up) Ray is faster than
serial (373 and 427 against 267 photos per hour) because chunks run two at a time and overlap the conversions.

Scaling to an 8-GPU cluster: the driver hands out one item at a time per actor and spends milliseconds on each,
so N actors convert about N / t photos per second while t (seconds per photo on one actor) is far above Ray's
~0.1 s per item. With one actor per GPU, the networks' share of t shrinks to a fraction of a second and the CPU
stages measured here (about 3 s per 1024 px photo on 2 cores: harmonize, layers, inpaint, meshes, PNG encoding)
dominate: with 2 or more cores per actor, 8 GPUs should convert about 8 x 3600 / 3 = 9,600 photos per hour,
less ~3% for Ray's per-item overhead and 5 s per batch for the start-up; without enough cores per actor, the
CPU stages, not the GPUs, set the limit. Render chunks are independent tasks: their throughput is the number of
render slots / seconds per chunk, spread over every node; Blender's start-up (2-3 s) is paid once per chunk, so
chunks of 12 or more frames make it small against the frames' own render time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
           "colorwheel")  # fmt: skip
"""skimage.data's colour photos that ship with scikit-image (no download)."""
MODES = (("serial", []), ("ray-1", ["--ray", "--workers", "1"]), ("ray-2", ["--ray", "--workers", "2"]))
RENDER = ["--render", "--frames", "4", "--chunk-size", "2", "--quality", "PREVIEW", "--resolution", "PHOTO"]


def make_photos(folder: Path, count: int, size: int) -> list[Path]:
    """``count`` photos (skimage.data, cycled) scaled to ``size`` on their longest side, and a depth map each
    in ``folder/depth/<stem>.npy``."""
    import skimage.data

    (folder / "depth").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    photos = []
    for index in range(count):
        source = SOURCES[index % len(SOURCES)]
        image = Image.fromarray(getattr(skimage.data, source)()).convert("RGB")
        scale = size / max(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
        stem = f"{index:02d}_{source}"
        image.save(folder / f"{stem}.png")
        rows = np.linspace(0.0, 1.0, image.height, dtype=np.float32)[:, None]
        depth = np.repeat(12.0 - 9.0 * rows, image.width, axis=1)
        for near in (1.5, 2.5, 4.0):  # boxes in front of the slope: separate layers
            h, w = rng.integers(image.height // 6, image.height // 3), rng.integers(image.width // 6, image.width // 3)
            y, x = rng.integers(0, image.height - h), rng.integers(0, image.width - w)
            depth[y : y + h, x : x + w] = near
        np.save(folder / "depth" / f"{stem}.npy", depth.astype(np.float32))
        photos.append(folder / f"{stem}.png")
    return photos


def run_batch(photos: list[Path], depth: Path, out: Path, size: int, extra: list[str]) -> dict[str, Any]:
    """One batch in a fresh process: its wall time and the per-item times of its summary."""
    command = [sys.executable, "-m", "core", "batch", *map(str, photos), "--out", str(out), "--depth", str(depth),
               "--segment", "none", "--work-size", str(size), *extra]  # fmt: skip
    env = dict(os.environ, XDG_CACHE_HOME=os.environ.get("XDG_CACHE_HOME", str(ROOT / ".cache")))
    started = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=3600)
    wall = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"batch failed (exit {run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    items = sorted(summary["done"], key=lambda item: item["name"])
    convert = [item["seconds"] for item in items if item["kind"] == "convert"]
    render = [item["seconds"] for item in items if item["kind"] == "render"]
    # The items' own work (their records' seconds): the median leaves out the first item's warm-up.
    return {"wall_s": round(wall, 2), "photos_per_hour": round(len(photos) / wall * 3600, 1),
            "convert_item_s": round(float(np.median(convert)), 3), "convert_first_s": round(convert[0], 3),
            "render_chunk_s": round(float(np.median(render)), 3) if render else None}  # fmt: skip


def ray_start_stop(cpus: int) -> float:
    """Seconds to start a local Ray cluster and shut it down (what a --ray batch pays once)."""
    code = (
        "import time, warnings, logging; t = time.perf_counter(); import ray\n"
        "warnings.simplefilter('ignore')\n"
        f"ray.init(num_cpus={cpus}, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)\n"
        "ray.shutdown(); print(time.perf_counter() - t)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    return float(run.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--work-size", type=int, default=1024)
    parser.add_argument("--no-render", action="store_true", help="conversions only")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    load_before = os.getloadavg()
    results: dict[str, Any] = {"photos": args.photos, "work_size": args.work_size, "cpus": os.cpu_count(),
                               "load_before": [round(v, 2) for v in load_before], "runs": {}}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="photo3d-bench-batch-") as temporary:
        folder = Path(temporary)
        photos = make_photos(folder / "in", args.photos, args.work_size)
        results["ray_start_stop_s"] = round(ray_start_stop(os.cpu_count() or 1), 2)
        jobs = [("convert", [])] + ([] if args.no_render else [("convert+render", RENDER)])
        for job, job_flags in jobs:
            for mode, mode_flags in MODES:
                key = f"{job} {mode}"
                print(f"bench: {key} ...", file=sys.stderr, flush=True)
                out = folder / key.replace(" ", "_").replace("+", "_")
                results["runs"][key] = run_batch(photos, folder / "in" / "depth", out, args.work_size,
                                                 job_flags + mode_flags)  # fmt: skip
    results["load_after"] = [round(v, 2) for v in os.getloadavg()]
    for job, _ in jobs:
        serial, ray1 = results["runs"][f"{job} serial"], results["runs"][f"{job} ray-1"]
        per_item = (ray1["wall_s"] - serial["wall_s"]) / args.photos
        results[f"{job} ray_overhead_per_item_s"] = round(per_item, 3)
        results[f"{job} ray_overhead_per_item_without_start_s"] = round(
            per_item - results["ray_start_stop_s"] / args.photos, 3
        )
        results[f"{job} ray_overhead_pct_of_serial_item"] = round(100 * per_item / (serial["wall_s"] / args.photos), 1)
    print(table(results, [job for job, _ in jobs]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


def table(results: dict[str, Any], jobs: list[str]) -> str:
    lines = [
        f"{results['photos']} photos at work size {results['work_size']}, {results['cpus']} CPUs; load average "
        f"{results['load_before']} before, {results['load_after']} after; ray start+stop "
        f"{results['ray_start_stop_s']:.1f} s",
        "",
        f"{'job':<16} {'mode':<7} {'wall s':>8} {'photos/h':>9} {'convert s/item':>15} {'first item s':>13} "
        f"{'render s/chunk':>15}",
    ]
    for key, run in results["runs"].items():
        job, mode = key.rsplit(" ", 1)
        chunk = "-" if run["render_chunk_s"] is None else f"{run['render_chunk_s']:.2f}"
        lines.append(f"{job:<16} {mode:<7} {run['wall_s']:>8.1f} {run['photos_per_hour']:>9.0f} "
                     f"{run['convert_item_s']:>15.2f} {run['convert_first_s']:>13.2f} {chunk:>15}")  # fmt: skip
    lines.append("")
    for job in jobs:
        lines.append(
            f"{job}: Ray overhead per item {results[f'{job} ray_overhead_per_item_s']:.2f} s "
            f"({results[f'{job} ray_overhead_pct_of_serial_item']:.1f}% of a serial item), "
            f"{results[f'{job} ray_overhead_per_item_without_start_s']:.2f} s without the cluster's start-up"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
