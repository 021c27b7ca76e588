#!/usr/bin/env bash
# Set up (if needed) and convert the bundled example: the Middlebury Motorcycle photo with its
# ground-truth depth (scikit-image ships it; no model weights needed). Writes out/motorcycle_layers/
# (the layer package, with contact_sheet.png inside).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh worker
.venv/bin/python scripts/make_example.py out/example >/dev/null
.venv/bin/python -m core convert out/example/motorcycle.png \
    --depth out/example/motorcycle_depth.npy --depth-kind depth \
    --focal-px 994.978 --segment none --inpaint telea \
    -o out/motorcycle_layers "$@"
echo "contact sheet: out/motorcycle_layers/contact_sheet.png"
