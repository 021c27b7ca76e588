"""Valid package manifests as JSON values, for tests that need a typed ``Manifest`` without a package."""

from __future__ import annotations

from typing import Any

from core.camera import Camera


def manifest_dict(
    width: int = 640,
    height: int = 480,
    focal_px: float = 500.0,
    cx: float | None = None,
    cy: float | None = None,
    depth_range: tuple[float, float] = (2.0, 6.0),
    layer_ranges: list[tuple[float, float]] | None = None,
    band_fraction: float | None = 0.08,
) -> dict[str, Any]:
    """A mesh package's manifest: one layer per entry of ``layer_ranges`` (back to front)."""
    camera = Camera(width, height, focal_px, width / 2.0 if cx is None else cx, height / 2.0 if cy is None else cy)
    ranges = layer_ranges or [depth_range]
    options = {} if band_fraction is None else {"inpaint": {"band_fraction": band_fraction}}
    return {
        "format": "photo3d.layers",
        "version": "1.0",
        "source": {"path": "/photos/p.jpg", "width": width, "height": height, "has_alpha": False},
        "camera": camera.to_dict(),
        "work_size": [height, width],
        "depth": {
            "units": "metres",
            "kind": "metric",
            "source": "test",
            "min": depth_range[0],
            "max": depth_range[1],
            "map": "depth.npy",
        },
        "representation": "mesh",
        "layers": [
            {
                "index": i,
                "name": f"layer_{i:02d}",
                "texture": f"layers/{i:02d}_color.png",
                "mesh": f"layers/{i:02d}_mesh.npz",
                "depth_range": list(r),
                "pixel_count": 1,
            }
            for i, r in enumerate(ranges)
        ],
        "options": options,
    }
