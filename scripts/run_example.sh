#!/usr/bin/env bash
# The whole job on the bundled example: the Middlebury Motorcycle photo (scikit-image ships it, with its
# ground-truth depth, so no model weights are needed) -> a layered Blender scene -> a short looping parallax
# video with rain, plus the .blend. Runs Blender as a Python module (bpy); no Blender install needed.
# Writes out/example/motorcycle.mp4 and out/example/motorcycle.blend. Extra arguments go to the batch,
# e.g. --effect fog:amount=0.4 or --quality FINAL.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-$PWD/.cache}"  # Eevee's compiled shaders, reused by later runs
.venv/bin/python scripts/make_example.py out/example/input >/dev/null
.venv/bin/python scripts/photo3d_batch.py out/example/input/motorcycle.png \
    --depth out/example/input/motorcycle_depth.npy --focal-px 994.978 --no-segmentation \
    --path SWING_H --frames 48 --quality PREVIEW --samples 4 --no-motion-blur --effect rain:amount=0.7:wind=0.2 \
    --out out/example "$@"
echo "video: out/example/motorcycle.mp4   scene: out/example/motorcycle.blend"
