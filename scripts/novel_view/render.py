"""The Eevee side: run the pipeline on the left photo, build its scene with the add-on, render the right camera.

bpy and the add-on are imported only inside the functions that need them, so this module imports without bpy.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from core.camera import Camera, blender_fit

from . import load_script_module
from .pairs import RightCamera, StereoPair

EXTENSION = "bl_ext.user_default.photo3d"
"""Blender's name for the installed extension; the checkout is imported under it (scripts/extension_loader.py)."""
ADDON_MODULES = {"scene_builder": "photo3d_addon.scene.builder", "package": "core.package"}
"""Every module of the extension the benchmark imports, by role, relative to ``EXTENSION``. The package is read
through the extension too, so the scene builder gets the package classes it knows."""

CheckPoint = tuple[tuple[float, float, float], float, float]
"""A left-camera-space point and the right-view pixel (u, v) it must land on."""


def pair_options(pair: StereoPair, depth_file: Path) -> dict[str, dict[str, Any]]:
    """Options every pipeline method shares: full resolution, the pair's focal length, ground-truth depth."""
    h, w = pair.disparity.shape
    return {
        "load": {"focal_px": float(pair.focal_px), "work_size": int(max(h, w))},
        "depth": {"depth_file": str(depth_file), "depth_kind": "depth"},
        "segment": {"model": "none"},
        "inpaint": {"method": "telea"},
        "geometry": {"representation": "mesh"},
    }


def run_pipeline(image: Path, options: dict[str, dict[str, Any]], out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Convert ``image`` with ``options``; returns the package path and its manifest as JSON values."""
    from core.options import PipelineOptions
    from core.pipeline import convert_image

    result = convert_image(image, out_dir, PipelineOptions.from_dict(options))
    manifest = result.manifest
    # The pipeline returns the typed manifest; the benchmark reads the JSON form, as manifest.json has it.
    return result.package_path, manifest if isinstance(manifest, dict) else manifest.to_dict()


def render_right_view(
    package_dir: Path,
    camera: RightCamera,
    out_png: Path,
    samples: int = 1,
    check_points: list[CheckPoint] | None = None,
) -> tuple[np.ndarray, float]:
    """Build the package's scene in a fresh Blender file, render ``camera`` with Eevee to ``out_png``.

    Returns the render as (h, w, 3) uint8 and the largest error, in pixels, of Blender's projection of
    ``check_points`` (``camera_check_points``) against where they must land.
    """
    import bpy
    import cv2
    from bpy_extras.object_utils import world_to_camera_view

    load_script_module("extension_loader").import_checkout_as_extension(EXTENSION)
    scene_builder = importlib.import_module(f"{EXTENSION}.{ADDON_MODULES['scene_builder']}")
    package_module = importlib.import_module(f"{EXTENSION}.{ADDON_MODULES['package']}")

    bpy.ops.wm.read_factory_settings(use_empty=True)
    # llvmpipe's anisotropic filtering speckles and ghosts the layer textures.
    bpy.context.preferences.system.anisotropic_filter = "FILTER_0"
    scene = bpy.context.scene
    package = package_module.read_package(package_dir)
    scene_builder.build_scene(package, scene)
    cam = scene.camera
    cam.location = camera.location  # camera-local space of the root = package camera space
    # The scene builder already set the lens for the same f; only the principal point moves (cx + doffs),
    # and the lens shift (in units of the longer side) does not depend on the sensor size it chose.
    fit = blender_fit(camera.camera)
    cam.data.shift_x = fit.shift_x
    cam.data.shift_y = fit.shift_y
    render = scene.render
    render.engine = "BLENDER_EEVEE_NEXT"
    scene.eevee.taa_render_samples = samples
    if samples > 1:
        render.filter_size = 0.3
    render.dither_intensity = 0.0
    render.film_transparent = False
    render.resolution_percentage = 100
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGB"
    render.image_settings.color_depth = "8"
    render.filepath = str(out_png)
    bpy.context.view_layer.update()

    error = float("nan")
    if check_points is not None and len(check_points):
        from mathutils import Vector

        root = cam.parent
        width, height = render.resolution_x, render.resolution_y
        worst = 0.0
        for point, expected_u, expected_v in check_points:
            ndc = world_to_camera_view(scene, cam, root.matrix_world @ Vector(tuple(float(c) for c in point)))
            u, v = ndc.x * width, (1.0 - ndc.y) * height
            worst = max(worst, abs(u - expected_u), abs(v - expected_v))
        error = worst

    bpy.ops.render.render(write_still=True)
    image = cv2.imread(str(out_png), cv2.IMREAD_COLOR)
    if image is None:
        raise RuntimeError(f"Eevee wrote no image to {out_png}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), error


def camera_check_points(pair: StereoPair, manifest: dict[str, Any], count: int = 16) -> list[CheckPoint]:
    """Left-camera-space points of known pixels and where the right view must see them (u_l - d, v).

    Pixel centres are at +0.5 (core.camera), so u_l - d is in the same pixel-edge coordinates. The points
    come from the manifest's camera and the pair's disparity, not from the right camera, so Blender's
    projection is checked against the stereo geometry itself.
    """
    cam = manifest["camera"]
    left = Camera(int(cam["width"]), int(cam["height"]), float(cam["focal_px"]), float(cam["cx"]), float(cam["cy"]))
    rng = np.random.default_rng(0)
    # Only pixels in front of the camera: with an aligned (relative-depth) pair d + doffs can be <= 0.
    with np.errstate(invalid="ignore"):
        vs, us = np.nonzero(np.isfinite(pair.disparity) & (pair.disparity + pair.doffs_px > 0))
    pick = rng.choice(len(vs), size=min(count, len(vs)), replace=False)
    out: list[CheckPoint] = []
    for v, u in zip(vs[pick], us[pick], strict=True):
        d = float(pair.disparity[v, u])
        z = pair.focal_px * pair.baseline_m / (d + pair.doffs_px)
        ul, vl = u + 0.5, v + 0.5
        x, y, zc = (float(c) for c in left.unproject(ul, vl, z))
        out.append(((x, y, zc), ul - d, vl))
    return out
