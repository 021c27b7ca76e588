"""Render a contact sheet of camera-path presets and effects on the bundled example (the README's picture).

    .venv/bin/python scripts/make_contact_sheet.py [--out docs/contact_sheet.png] [--width 370] [--samples 16]

Runs the pipeline on the Motorcycle photo with its ground-truth depth, builds the scene with the add-on's
own code (the bpy module; no Blender window), and renders one frame per tile with Eevee: the photo's
view, a few presets at their strongest frame, and each effect on a gentle swing.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXTENSION = "bl_ext.user_default.photo3d"
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

# (label, camera path preset or None, frame as a share of the path, effects as CLI specs)
TILES: list[tuple[str, str | None, float, list[str]]] = [
    ("photo view", None, 0.0, []),
    ("swing left-right", "SWING_H", 0.25, []),
    ("dolly zoom", "DOLLY_ZOOM", 0.5, []),
    ("orbit", "ORBIT", 0.25, []),
    ("rain", "SWING_H", 0.5, ["rain:amount=0.8"]),
    ("snow", "SWING_H", 0.5, ["snow:amount=0.8"]),
    ("fog", "SWING_H", 0.5, ["fog:amount=0.45"]),
    ("dust", "SWING_H", 0.5, ["dust:amount=1"]),
    ("halos", "SWING_H", 0.5, ["halos:amount=0.8"]),
]
FRAMES = 48


def _modules() -> dict[str, object]:
    from extension_loader import import_checkout_as_extension

    import_checkout_as_extension(EXTENSION)
    names = {
        "scene_builder": "scene.builder",
        "camera_animation": "motion.keyframes",
        "camera_paths": "motion.paths",
        "effects": "effects.build",
        "effect_params": "effects.params",
        "render_settings": "render.settings",
    }
    mods = {name: importlib.import_module(f"{EXTENSION}.photo3d_addon.{module}") for name, module in names.items()}
    mods["package"] = importlib.import_module(f"{EXTENSION}.core.package")
    return mods


def build_example(work: Path) -> Path:
    """The example photo converted with its ground-truth depth; returns the package folder."""
    from make_example import FOCAL_PX, motorcycle_depth
    from PIL import Image
    from skimage.data import stereo_motorcycle

    from core.options import PipelineOptions
    from core.pipeline import convert_image

    left, _, disparity = stereo_motorcycle()
    Image.fromarray(left).save(work / "motorcycle.png")
    np.save(work / "motorcycle_depth.npy", motorcycle_depth(disparity))
    options = {
        "load": {"focal_px": FOCAL_PX},
        "depth": {"depth_file": str(work / "motorcycle_depth.npy"), "depth_kind": "depth"},
        "segment": {"model": "none"},
    }
    return convert_image(work / "motorcycle.png", work / "package", PipelineOptions.from_dict(options)).package_path


def render_tiles(package_dir: Path, work: Path, width: int, samples: int) -> list[tuple[str, np.ndarray]]:
    import bpy
    from PIL import Image

    mods = _modules()
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.preferences.system.anisotropic_filter = "FILTER_0"  # llvmpipe speckles minified textures
    scene = bpy.context.scene
    photo = mods["scene_builder"].build_scene(mods["package"].read_package(package_dir), scene)
    anim, paths = mods["camera_animation"], mods["camera_paths"]
    effects, params = mods["effects"], mods["effect_params"]
    scale = width / scene.render.resolution_x
    scene.render.resolution_x, scene.render.resolution_y = width, round(scene.render.resolution_y * scale)
    scene.render.engine = mods["render_settings"].eevee_engine_id()
    scene.eevee.taa_render_samples = samples
    scene.render.image_settings.file_format = "PNG"
    tiles = []
    for index, (label, preset, share, specs) in enumerate(TILES):
        started = time.monotonic()
        camera = photo.camera
        anim.clear_camera_path(camera)
        if preset is not None:
            settings = paths.PathSettings(preset, duration_frames=FRAMES, loop=True, overscan=True)
            anim.apply_preset(photo, settings, scene, frame_start=1)
        effects.apply_effects(photo, params.parse_effects(specs))
        scene.frame_set(1 + round(share * FRAMES))
        scene.render.filepath = str(work / f"tile_{index}.png")
        bpy.ops.render.render(write_still=True)
        tiles.append((label, np.asarray(Image.open(scene.render.filepath).convert("RGB"))))
        print(f"{label}: {time.monotonic() - started:.1f} s", flush=True)
    return tiles


def sheet(tiles: list[tuple[str, np.ndarray]], columns: int = 3) -> object:
    from PIL import Image, ImageDraw

    h, w = tiles[0][1].shape[:2]
    rows = -(-len(tiles) // columns)
    gap, caption = 4, 18
    out = Image.new("RGB", (columns * w + (columns + 1) * gap, rows * (h + caption) + (rows + 1) * gap), "white")
    draw = ImageDraw.Draw(out)
    for index, (label, image) in enumerate(tiles):
        x = gap + (index % columns) * (w + gap)
        y = gap + (index // columns) * (h + caption + gap)
        out.paste(Image.fromarray(image), (x, y))
        draw.text((x + 4, y + h + 3), label, fill=(30, 30, 30))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "contact_sheet.png")
    parser.add_argument("--width", type=int, default=370, help="tile width in pixels")
    parser.add_argument("--samples", type=int, default=16, help="Eevee samples per tile")
    args = parser.parse_args()
    os.environ.setdefault("XDG_CACHE_HOME", str(ROOT / ".cache"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        package = build_example(work)
        tiles = render_tiles(package, work, args.width, args.samples)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet(tiles).save(args.out)
    print(args.out, flush=True)
    sys.stdout.flush()
    os._exit(0)  # the bpy module can hang at exit after rendering


if __name__ == "__main__":
    main()
