"""Helpers for the Blender tier: install the built extension like a user, render small frames, score them."""

from __future__ import annotations

import importlib
import importlib.util
import platform
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXTENSION = "bl_ext.user_default.photo3d"
EEVEE = "BLENDER_EEVEE_NEXT"  # Blender 4.2-4.5; 5.x renamed it back to BLENDER_EEVEE


def this_platform() -> str:
    system = {"linux": "linux", "darwin": "macos", "win32": "windows"}[sys.platform]
    machine = platform.machine().lower()
    return f"{system}_{'arm64' if machine in ('arm64', 'aarch64') else 'x64'}"


def build_zip(out_dir: Path) -> Path:
    """Build the per-platform zips with scripts/build_extension.py and return this platform's."""
    spec = importlib.util.spec_from_file_location("build_extension", ROOT / "scripts" / "build_extension.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    zips = module.build_extension(out_dir)
    return next(z for z in zips if z.name.endswith(f"{this_platform()}.zip"))


def install_extension(zip_path: Path):
    """Install and enable the zip through Blender's extension machinery, as Edit > Preferences does."""
    import bpy

    result = bpy.ops.extensions.package_install_files(
        repo="user_default", filepath=str(zip_path), enable_on_install=True
    )
    assert result == {"FINISHED"}, result
    return importlib.import_module(EXTENSION)


def addon_module(name: str):
    """A module of the installed extension, e.g. ``photo3d_addon.scene.builder``."""
    return importlib.import_module(f"{EXTENSION}.{name}")


def reset_scene() -> None:
    """Empty the current file in place (reloading the home file would also reset the preferences)."""
    import bpy

    for collection in (bpy.data.objects, bpy.data.collections, bpy.data.meshes, bpy.data.materials):
        for block in list(collection):
            collection.remove(block)
    for collection in (bpy.data.cameras, bpy.data.images):
        for block in list(collection):
            collection.remove(block)
    bpy.context.scene.camera = None


def render_camera(path: Path, width: int, height: int, samples: int = 1) -> np.ndarray:
    """Render the scene camera with Eevee at ``width`` x ``height``; returns RGB uint8."""
    import bpy

    scene = bpy.context.scene
    scene.render.engine = EEVEE
    scene.eevee.taa_render_samples = samples
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.filepath = str(path)
    # Mesa's software rasteriser (llvmpipe) mis-samples textures with anisotropic filtering: specks and
    # ghosting at minification. GPUs are fine; the CPU renders of this tier turn it off.
    bpy.context.preferences.system.anisotropic_filter = "FILTER_0"
    bpy.ops.render.render(write_still=True)
    return np.asarray(Image.open(path).convert("RGB"))


def downscaled(image_path: Path, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.open(image_path).convert("RGB").resize((width, height), Image.BOX))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)
