#!/usr/bin/env bash
# Create or update .venv from the pinned requirements. Idempotent: returns at once when nothing changed.
#   bash scripts/setup.sh          # worker + tests + Blender tier (bpy)
#   bash scripts/setup.sh worker   # only what the pipeline worker needs
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

group="${1:-dev}"
if [[ "$group" != "dev" && "$group" != "worker" ]]; then
    echo "setup: unknown group '$group' (use dev or worker)" >&2
    exit 2
fi

python_bin="${PHOTO3D_PYTHON:-}"
if [[ -z "$python_bin" ]]; then
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
            python_bin="$candidate"
            break
        fi
    done
fi
if [[ -z "$python_bin" ]]; then
    echo "setup: Python 3.11 is required (Blender 4.2-5.0 embed 3.11); set PHOTO3D_PYTHON to its path" >&2
    exit 2
fi

stamp=".venv/.photo3d-setup"
want="$group $("$python_bin" --version 2>&1) $(cat requirements/*.txt core/requirements.txt scripts/node/package-lock.json | sha256sum | cut -c1-16)"
if [[ -f "$stamp" ]] && grep -qxF "$want" "$stamp" && [[ -x .venv/bin/python ]] \
    && { [[ "$group" != "dev" ]] || [[ -d scripts/node/node_modules/gltf-validator ]]; }; then
    echo "setup: .venv is up to date ($group)"
    exit 0
fi
# A dev environment also satisfies a worker request.
if [[ "$group" == "worker" && -f "$stamp" ]] && grep -qxF "${want/worker/dev}" "$stamp"; then
    echo "setup: .venv is up to date (dev)"
    exit 0
fi

if [[ ! -x .venv/bin/python ]]; then
    echo "setup: creating .venv with $("$python_bin" --version 2>&1)"
    "$python_bin" -m venv .venv
fi
echo "setup: installing requirements/$group.txt (torch pinned by requirements/constraints.txt)"
# The machine's pip configuration may name local package folders that do not exist; hide only that noise.
.venv/bin/python -m pip install --disable-pip-version-check -q \
    -c requirements/constraints.txt -r "requirements/$group.txt" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
# pip's status is lost in the pipe: check the result directly instead.
.venv/bin/python -c "import numpy, cv2, scipy, skimage, triangle, torch, transformers, onnxruntime, av" || {
    echo "setup: installation failed (see the pip output above)" >&2
    exit 1
}
if [[ "$group" == "dev" ]]; then
    # Ray for the distributed batch's tests (python -m core batch --ray): an optional extra, never in the
    # worker or the extension.
    .venv/bin/python -m pip install --disable-pip-version-check -q \
        -c requirements/constraints.txt -r requirements/ray.txt 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
    .venv/bin/python -c "import pytest, bpy, hypothesis, onnx, pxr, OpenEXR, pygltflib, ray" >/dev/null || {
        echo "setup: pytest, bpy, hypothesis, onnx, usd-core, openexr, pygltflib or ray missing" >&2
        exit 1
    }
    # The Khronos glTF validator the export tests run (pinned by scripts/node/package-lock.json).
    command -v npm >/dev/null || { echo "setup: npm is required for the glTF validator (install Node.js 18+)" >&2; exit 1; }
    npm ci --prefix scripts/node --no-audit --no-fund --loglevel=error || { echo "setup: npm ci failed" >&2; exit 1; }
fi
echo "$want" > "$stamp"
echo "setup: done"
