"""Time every pipeline stage at 720p and 1080p (4K with --4k), with peak memory, and print a table.

The photo is the Middlebury Motorcycle image resized to each resolution, with its ground-truth depth as
a depth file, so the default run measures everything but the networks (segmentation is the
weights-free fallback). ``--depth-model`` / ``--segment`` measure networks too when their weights are
on this machine. Each resolution runs in its own process so peak memory is its own.

Each stage's row is the median over the repeats (``--stat best`` for the fastest); ``wall`` is the median
of the whole conversions' wall-clock times, which on a machine shared with other work is the figure to
quote, with the load average printed next to it. Textures are written on helper threads while the later
stages run, so a stage's time includes what the helpers take from it.

    .venv/bin/python scripts/bench_pipeline.py [--4k] [--repeat 3] [--stat median|best] [--device cpu|cuda]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESOLUTIONS = {"720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}
STAGES = ("load", "depth", "segment", "harmonize", "layers", "inpaint", "geometry", "package")
NETWORK_STAGES = ("depth", "segment")


def _make_inputs(folder: Path, width: int, height: int) -> tuple[Path, Path]:
    import cv2
    import numpy as np
    from skimage.data import stereo_motorcycle

    sys.path.insert(0, str(ROOT / "scripts"))
    from make_example import motorcycle_depth

    left, _, disparity = stereo_motorcycle()
    # Crop to 16:9 first so nothing is stretched, then resize.
    h = int(round(left.shape[1] * 9 / 16))
    top = (left.shape[0] - h) // 2
    photo = cv2.resize(left[top : top + h], (width, height), interpolation=cv2.INTER_CUBIC)
    depth = motorcycle_depth(disparity)[top : top + h]
    image_path, depth_path = folder / f"photo_{width}.png", folder / f"depth_{width}.npy"
    cv2.imwrite(str(image_path), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    np.save(depth_path, depth)
    return image_path, depth_path


def run_once(args: argparse.Namespace) -> dict:
    """Child process: convert once per repeat; each stage's median (or best) time, the conversions' wall
    times and peak RSS."""
    sys.path.insert(0, str(ROOT))
    from core.options import PipelineOptions
    from core.pipeline import convert_image
    from core.progress import Progress

    width, height = RESOLUTIONS[args.child]
    with tempfile.TemporaryDirectory() as tmp:
        image, depth = _make_inputs(Path(tmp), width, height)
        data = {
            "runtime": {"device": args.device, "models_dir": args.models_dir},
            "segment": {"model": args.segment},
            "inpaint": {"method": args.inpaint},
            "geometry": {"representation": args.representation},
        }
        if args.depth_model:
            data["depth"] = {"model": args.depth_model}
        else:
            data["depth"] = {"depth_file": str(depth)}
        options = PipelineOptions.from_dict(data)
        runs: dict[str, list[float]] = {}
        walls: list[float] = []
        for _ in range(args.repeat):
            progress = Progress()
            started = time.perf_counter()
            convert_image(image, Path(tmp) / "pkg", options, progress)
            walls.append(time.perf_counter() - started)
            for stage, seconds in progress.timings.items():
                runs.setdefault(stage, []).append(seconds)
    pick = min if args.stat == "best" else statistics.median
    timings = {stage: pick(seconds) for stage, seconds in runs.items()}
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "resolution": args.child,
        "width": width,
        "height": height,
        "timings": timings,
        "walls": walls,
        "wall": pick(walls),
        "peak_rss_mb": peak_mb,
        "load_average": os.getloadavg()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--4k", dest="four_k", action="store_true", help="also run 3840x2160")
    parser.add_argument("--repeat", type=int, default=3, help="runs per resolution")
    parser.add_argument("--stat", default="median", choices=["median", "best"], help="which run counts")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--depth-model", help="measure a depth network instead of the ground-truth depth file")
    parser.add_argument("--segment", default="none", help="SAM model id/folder, or none (weights-free)")
    parser.add_argument("--inpaint", default="telea", choices=["telea", "ns", "lama"])
    parser.add_argument("--representation", default="mesh", choices=["mesh", "mpi"])
    parser.add_argument("--models-dir")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_once(args)))
        return 0

    names = ["720p", "1080p"] + (["4k"] if args.four_k else [])
    results = []
    for name in names:
        command = [sys.executable, __file__, "--child", name] + [a for a in sys.argv[1:] if a != "--4k"]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return 1
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))

    header = f"{'stage':<11}" + "".join(f"{r['resolution']:>10}" for r in results)
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"Photo3D pipeline benchmark ({args.stat} of {args.repeat}, device {args.device}, seconds; load {load})")
    print(header)
    print("-" * len(header))
    for stage in STAGES:
        print(f"{stage:<11}" + "".join(f"{r['timings'].get(stage, 0.0):>10.3f}" for r in results))
    print("-" * len(header))
    non_network = [sum(v for k, v in r["timings"].items() if not _is_network(k, args)) for r in results]
    print(f"{'no-network':<11}" + "".join(f"{v:>10.3f}" for v in non_network))
    print(f"{'total':<11}" + "".join(f"{sum(r['timings'].values()):>10.3f}" for r in results))
    print(f"{'wall':<11}" + "".join(f"{r['wall']:>10.3f}" for r in results))
    print(f"{'load 1 min':<11}" + "".join(f"{r['load_average']:>10.2f}" for r in results))
    print(f"{'peak MB':<11}" + "".join(f"{r['peak_rss_mb']:>10.0f}" for r in results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _is_network(stage: str, args: argparse.Namespace) -> bool:
    """Depth counts as a network only with --depth-model; segment only with a SAM model."""
    if stage == "depth":
        return bool(args.depth_model)
    return stage == "segment" and args.segment not in ("none", "superpixel")


if __name__ == "__main__":
    raise SystemExit(main())
