"""Write the bundled example: the Middlebury Motorcycle left photo and its ground-truth depth.

The pair ships inside scikit-image (no download). Depth comes from the ground-truth disparity with the
calibration for the 741x500 size: Z = f * B / (d + dx), in metres; unknown pixels are NaN.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

FOCAL_PX = 994.978
BASELINE_M = 0.193001
DOFFS_PX = 31.086
PRINCIPAL_POINT = (311.193, 254.877)


def motorcycle_depth(disparity: np.ndarray) -> np.ndarray:
    """Metric depth from Motorcycle's ground-truth disparity; NaN where the disparity is unknown."""
    depth = FOCAL_PX * BASELINE_M / (disparity.astype(np.float64) + DOFFS_PX)
    depth[~np.isfinite(disparity) | (disparity <= 0)] = np.nan
    return depth.astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args()
    from PIL import Image
    from skimage.data import stereo_motorcycle

    left, right, disparity = stereo_motorcycle()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(left).save(args.out_dir / "motorcycle.png")
    Image.fromarray(right).save(args.out_dir / "motorcycle_right.png")
    np.save(args.out_dir / "motorcycle_depth.npy", motorcycle_depth(disparity))
    calibration = {
        "focal_px": FOCAL_PX,
        "baseline_m": BASELINE_M,
        "doffs_px": DOFFS_PX,
        "principal_point": PRINCIPAL_POINT,
    }
    (args.out_dir / "motorcycle_calibration.json").write_text(json.dumps(calibration, indent=2))
    print(args.out_dir / "motorcycle.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
