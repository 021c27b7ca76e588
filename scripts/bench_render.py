"""Eevee render cost of the bundled example (the Motorcycle photo, its ground-truth depth, the example's rain and
camera swing): CPU and wall seconds per frame, first frame and steady state, lean vs Blender's default shadow
and world-probe settings, at several sizes; the fewest samples that keep each look; optionally DepthFlow.

    .venv/bin/python scripts/bench_render.py [--sizes 370x250,960x540,1920x1080] [--frames 4] [--json FILE]
    .venv/bin/python scripts/bench_render.py --find-samples [--json FILE]
    .venv/bin/python scripts/bench_render.py --depthflow [--json FILE]
    .venv/bin/python scripts/bench_render.py --profile [--sizes 370x250] [--variants lean,no_fast_gi,...]
    .venv/bin/python scripts/bench_render.py --versus [--versus-sizes 370x250,1280x720] [--versus-samples 1,2,4,12]

``--profile`` fits each variant's CPU per frame as a fixed cost plus a cost per sample (``PROFILE_VARIANTS``:
settings on top of the lean ones, and diagnostics that change the picture). ``--versus`` runs Photo3D's preview
and DepthFlow in one go at each output size: CPU per frame of the example's swing (no effect: DepthFlow has
none), and in-view PSNR (the overlap and disoccluded masks of ``scripts/novel_view``) of the Motorcycle right
view against the real right photo, scored at the coarser of the render's and the photo's size. DepthFlow's
parameters are fitted to that view first (``depthflow_seed``: its parallel-ray camera reproduces the stereo
disparity exactly for any height; a coordinate search then maximises its PSNR), so the comparison is generous
to it.

Every measurement runs in its own process (``--child``), so each one's first frame is a first frame: Eevee
compiles its shaders there, and the default settings' shadow passes start from the second render on. CPU is
the process's CPU time (every thread: Eevee, Mesa's llvmpipe) around each ``bpy.ops.render.render``. The
machine's load average is printed with each run: on a shared machine, compare runs made under similar load.
Set ``XDG_CACHE_HOME`` (e.g. to ``.cache``) so Mesa keeps its compiled shaders between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "bench-render"
EXAMPLE_EFFECT = "rain:amount=0.7:wind=0.2"
"""The example's effect (``scripts/run_example.sh``)."""
PATH_FRAMES = 48
"""The example's camera swing, in frames; the timed frames are spread over it."""
FOCAL_PX = 994.978
SIZES = "370x250,960x540,1920x1080"
LOOKS = ("RAIN", "SNOW", "FOG", "DUST", "HALOS")
LADDER = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
"""The sample counts the search tries (up to the quality's current default)."""
REFERENCE_FACTOR = 4
"""The reference of a quality renders this many times its default samples."""
TOLERANCE_DB = 0.5
DEPTHFLOW_DIR = ROOT / ".cache" / "bench-depthflow"


# -- shared: the example's inputs and package (plain Python, no bpy) -------------------------------------------
def prepare_package() -> Path:
    """The example's photo and depth, converted once (cached under .cache/bench-render); the package folder."""
    inputs = CACHE / "input"
    if not (inputs / "motorcycle.png").is_file() or not (inputs / "motorcycle_depth.npy").is_file():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_example.py"), str(inputs)], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    packages = CACHE / "package"
    found = sorted(packages.glob("**/manifest.json"))
    if found:
        return found[0].parent
    sys.path.insert(0, str(ROOT))
    from core.options import PipelineOptions
    from core.pipeline import convert_image

    # As the example's batch: its depth file, its focal length, no segmentation, the import's defaults.
    options = PipelineOptions.from_dict(
        {
            "depth": {"depth_file": str(inputs / "motorcycle_depth.npy")},
            "segment": {"model": "none"},
            "load": {"focal_px": FOCAL_PX},
        }
    )
    return Path(convert_image(inputs / "motorcycle.png", packages, options).package_path)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def _run_child(spec: dict[str, Any], timeout: float = 3600.0) -> dict[str, Any]:
    """Run ``spec`` in a fresh Python with bpy; its JSON result."""
    spec_file = CACHE / "runs" / f"spec_{os.getpid()}_{time.monotonic_ns()}.json"
    spec_file.parent.mkdir(parents=True, exist_ok=True)
    result_file = spec_file.with_name(spec_file.name.replace("spec_", "result_"))
    spec = {**spec, "result": str(result_file)}
    spec_file.write_text(json.dumps(spec))
    env = {**os.environ}
    env.setdefault("XDG_CACHE_HOME", str(ROOT / ".cache"))
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_file)],
        env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if completed.returncode != 0 or not result_file.is_file():
        tail = (completed.stdout + completed.stderr)[-3000:]
        raise RuntimeError(f"the render process failed (exit {completed.returncode}):\n{tail}")
    result = json.loads(result_file.read_text())
    result["log"] = [line for line in completed.stdout.splitlines() if line.startswith("Photo3D:")]
    spec_file.unlink()
    result_file.unlink()
    return result


# -- the child: one scene, one process, in bpy -----------------------------------------------------------------
def child(spec_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    import importlib

    import bpy

    sys.path.insert(0, str(ROOT / "scripts"))
    from extension_loader import EXTENSION, import_checkout_as_extension

    import_checkout_as_extension()

    def addon(name: str):
        return importlib.import_module(f"{EXTENSION}.{name}")

    rs = addon("photo3d_addon.render.settings")
    paths = addon("photo3d_addon.motion.paths")
    scene = bpy.context.scene
    for data in (bpy.data.objects, bpy.data.meshes, bpy.data.lights, bpy.data.cameras, bpy.data.materials):
        for block in list(data):
            data.remove(block)
    package = addon("core.package").read_package(spec["package"])
    photo = addon("photo3d_addon.scene.builder").build_scene(package, scene)
    from dataclasses import replace

    path = replace(paths.DEFAULTS, duration_frames=PATH_FRAMES)
    if spec.get("view") != "right":  # the right view is a still camera: no path, no overscan
        addon("photo3d_addon.motion.keyframes").apply_preset(photo, path, scene, frame_start=1)
    fx = addon("photo3d_addon.effects.params")
    if spec["effects"]:
        addon("photo3d_addon.effects.build").apply_effects(photo, fx.parse_effects(spec["effects"]))
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    settings = rs.RenderSettings(
        quality=spec.get("quality", "FINAL"), output="PNG", motion_blur=spec["motion_blur"], filepath=str(out)
    )
    look = rs.apply_render_settings(scene, settings)
    width, height = spec["size"]
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    # Software GL (llvmpipe) mis-samples anisotropic filtering, as the batch and the tests know.
    bpy.context.preferences.system.anisotropic_filter = "FILTER_0"
    if spec["settings"] == "default":  # Blender's own: what every render got before the lean settings
        scene.eevee.use_shadows = True
        scene.world.probe_resolution = "1024"
    elif not look.lean:
        raise RuntimeError(f"the example did not get the lean settings: {look.reason}")
    _apply_tweaks(scene, spec.get("tweaks", {}))
    if spec.get("view") == "right":
        _right_view(photo, package.manifest.camera)
    result: dict[str, Any] = {"look": look.describe(), "frames": []}
    if spec.get("fastest_frame"):
        spec["frames"] = [_fastest_frame(bpy, scene, photo.camera)]
    if spec.get("animation"):  # one render job over a frame range, as an MP4 render is: CPU per frame
        first, last = spec["animation"]
        scene.frame_start, scene.frame_end = first, last
        for samples in spec["samples"]:
            scene.eevee.taa_render_samples = int(samples)
            scene.render.filepath = str(out / f"anim_s{int(samples):04d}_")
            cpu, wall = time.process_time(), time.perf_counter()
            bpy.ops.render.render(animation=True)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            count = last - first + 1
            result["frames"].append({"frame": first, "samples": int(samples), "cpu_s": cpu / count,
                                     "wall_s": wall / count, "png": ""})  # fmt: skip
            print(f"bench: animation samples {samples}: {cpu / count:.2f} s CPU/frame", flush=True)
    for frame in spec["frames"]:
        for samples in spec["samples"]:
            scene.eevee.taa_render_samples = int(samples)
            scene.frame_set(int(frame))
            target = out / f"f{int(frame):04d}_s{int(samples):04d}"
            scene.render.filepath = str(target)
            cpu, wall = time.process_time(), time.perf_counter()
            bpy.ops.render.render(write_still=True)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            result["frames"].append(
                {"frame": int(frame), "samples": int(samples), "cpu_s": cpu, "wall_s": wall, "png": f"{target}.png"}
            )
            print(f"bench: frame {frame} samples {samples}: {cpu:.2f} s CPU, {wall:.2f} s wall", flush=True)
    Path(spec["result"]).write_text(json.dumps(result))
    sys.stdout.flush()
    # bpy can hang in its exit handlers after rendering with software GL; the result is written.
    os._exit(0)


def _apply_tweaks(scene, tweaks: dict[str, Any]) -> None:
    """Set ``{"eevee.use_fast_gi": False, "render.filter_size": 0.5, ...}`` on the scene: a profile variant."""
    owners = {
        "scene": scene,
        "eevee": scene.eevee,
        "render": scene.render,
        "image": scene.render.image_settings,
        "world": scene.world,
        "view": scene.view_settings,
    }
    import bpy

    owners["layer"] = scene.view_layers[0]
    for key, value in tweaks.items():
        owner, _, name = key.partition(".")
        if owner == "materials":
            for material in bpy.data.materials:
                setattr(material, name, value)
        elif owner == "objects" and name == "hide_render_blended":
            for obj in scene.objects:
                slots = getattr(obj, "material_slots", [])
                obj.hide_render = any(s.material and s.material.surface_render_method == "BLENDED" for s in slots)
        elif owners[owner] is not None:
            setattr(owners[owner], name, value)


def _right_view(photo, left) -> None:
    """Put the photo's camera where the right camera of the Motorcycle pair stood, with no camera path: the
    baseline along the camera's x, the principal point moved by ``doffs`` (as ``scripts/novel_view`` does).
    ``left`` is the package's camera (``core.camera.Camera``)."""
    sys.path.insert(0, str(ROOT))
    from core.camera import blender_fit
    from scripts.novel_view.pairs import right_camera

    example = _make_example()
    cam = photo.camera
    right = right_camera(left.width, left.height, left.focal_px, left.cx, left.cy, example.BASELINE_M, example.DOFFS_PX)
    cam.location = right.location  # camera-local space of the root = package camera space
    fit = blender_fit(right.camera)
    cam.data.shift_x, cam.data.shift_y = fit.shift_x, fit.shift_y


def _make_example():
    """``scripts/make_example.py`` as a module: the pair's calibration."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_example", ROOT / "scripts" / "make_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fastest_frame(bpy, scene, camera) -> int:
    """The frame where the camera moves most to the next one: where motion blur matters most."""
    best, best_move = scene.frame_start, -1.0
    previous = None
    for frame in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(frame)
        position = camera.matrix_world.translation.copy()
        if previous is not None and (position - previous).length > best_move:
            best, best_move = frame - 1, (position - previous).length
        previous = position
    return best


# -- 1. per-frame cost, lean vs default ------------------------------------------------------------------------
def bench_frames(args: argparse.Namespace, package: Path) -> list[dict[str, Any]]:
    rows = []
    step = max(1, (PATH_FRAMES - 1) // max(1, args.frames - 1))
    frames = [1 + i * step for i in range(args.frames)]
    effects = [] if args.effect.lower() == "none" else [args.effect]
    for text in args.sizes.split(","):
        size = _size(text)
        for settings in args.settings.split(","):
            load = _load()
            spec = {
                "package": str(package),
                "effects": effects,
                "size": size,
                "settings": settings,
                "samples": [args.samples],
                "frames": frames,
                "motion_blur": args.motion_blur,
                "out": str(CACHE / "frames" / f"{size[0]}x{size[1]}_{settings}"),
            }
            result = _run_child(spec)
            times = result["frames"]
            steady = times[1:] or times
            row = {
                "size": f"{size[0]}x{size[1]}",
                "settings": settings,
                "samples": args.samples,
                "effects": effects,
                "first_cpu_s": times[0]["cpu_s"],
                "first_wall_s": times[0]["wall_s"],
                "steady_cpu_s": sum(t["cpu_s"] for t in steady) / len(steady),
                "steady_wall_s": sum(t["wall_s"] for t in steady) / len(steady),
                "frames": [{k: t[k] for k in ("frame", "cpu_s", "wall_s")} for t in times],
                "load_before": load,
                "load_after": _load(),
                "look": result["look"],
            }
            rows.append(row)
            print(
                f"  {row['size']:>9} {settings:<7} first {row['first_cpu_s']:6.2f} s CPU  steady "
                f"{row['steady_cpu_s']:6.2f} s CPU/frame (load {load} -> {row['load_after']})",
                flush=True,
            )
    _check_identical(rows)
    return rows


def _check_identical(rows: list[dict[str, Any]]) -> None:
    """Lean and default frames of the same size should be the same pixels; say so per size."""
    import numpy as np
    from PIL import Image

    for size in sorted({r["size"] for r in rows}):
        folders = [CACHE / "frames" / f"{size}_{s}" for s in ("lean", "default")]
        if not all(f.is_dir() for f in folders):
            continue
        names = sorted(p.name for p in folders[0].glob("*.png"))
        same = [
            np.array_equal(np.asarray(Image.open(folders[0] / n)), np.asarray(Image.open(folders[1] / n)))
            for n in names
            if (folders[1] / n).is_file()
        ]
        for row in rows:
            if row["size"] == size:
                row["lean_identical_to_default"] = bool(same) and all(same)
        print(f"  {size}: lean frames identical to default: {sum(same)}/{len(same)}", flush=True)


def print_table(rows: list[dict[str, Any]]) -> None:
    print()
    print("| size | settings | first frame CPU s (wall) | steady CPU s/frame (wall) | steady speed-up | load |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        default = next(
            (r for r in rows if r["size"] == row["size"] and r["settings"] == "default"), None
        )  # fmt: skip
        speedup = f"{default['steady_cpu_s'] / row['steady_cpu_s']:.1f}x" if default else "-"
        print(
            f"| {row['size']} | {row['settings']} | {row['first_cpu_s']:.2f} ({row['first_wall_s']:.2f}) | "
            f"{row['steady_cpu_s']:.2f} ({row['steady_wall_s']:.2f}) | {speedup} | "
            f"{row['load_before']} -> {row['load_after']} |"
        )


# -- 2. where the per-frame CPU goes ---------------------------------------------------------------------------
PROFILE_VARIANTS: dict[str, dict[str, Any]] = {
    "lean": {},
    "no_fast_gi": {"eevee.use_fast_gi": False},
    "no_compositor": {"render.use_compositing": False, "render.use_sequencer": False},
    "png_level0": {"image.compression": 0},
    "no_dither": {"render.dither_intensity": 0.0},
    "filter_0.5": {"render.filter_size": 0.5},
    "shadow_pool_small": {"eevee.shadow_pool_size": "16"},  # the irradiance pool is at its smallest already
    "no_world": {"scene.world": None},
    "no_z_pass": {"layer.use_pass_z": False},
    "unused_off": {"eevee.use_fast_gi": False, "render.use_compositing": False, "render.use_sequencer": False},
    "motion_blur": {"render.use_motion_blur": True},  # what the sidebar's and the batch's defaults render
    # Diagnostics, not settings (they change the picture): where the per-pixel cost comes from.
    "diag_all_dithered": {"materials.surface_render_method": "DITHERED"},
    "diag_backdrop_only": {"objects.hide_render_blended": True},
}
"""Settings tried on top of the lean ones, each in its own process: what each saves per frame and per sample."""


def profile(args: argparse.Namespace, package: Path) -> list[dict[str, Any]]:
    """Per variant and size: CPU per frame at a few sample counts, fitted as fixed + per-sample cost (least
    squares over every render but the process's first, which compiles the shaders)."""
    import numpy as np

    rows = []
    ladder = [int(n) for n in args.profile_samples.split(",")]
    names = list(PROFILE_VARIANTS) if args.variants == "all" else args.variants.split(",")
    effects = [] if args.effect.lower() == "none" else [args.effect]
    for text in args.sizes.split(","):
        size = _size(text)
        for name in names:
            load = _load()
            spec = {
                "package": str(package),
                "effects": effects,
                "size": size,
                "settings": "lean",
                "quality": "PREVIEW",
                "tweaks": PROFILE_VARIANTS[name],
                "samples": ladder,
                "frames": [1, 13, 25, 37][: max(2, args.frames)],
                "motion_blur": False,
                "out": str(CACHE / "profile" / f"{size[0]}x{size[1]}_{name}"),
            }
            times = _run_child(spec)["frames"][1:]
            samples = np.array([t["samples"] for t in times], float)
            cpu = np.array([t["cpu_s"] for t in times], float)
            per_sample, fixed = np.polyfit(samples, cpu, 1)
            means = {str(n): float(cpu[samples == n].mean()) for n in ladder}
            row = {"size": f"{size[0]}x{size[1]}", "variant": name, "tweaks": PROFILE_VARIANTS[name],
                   "fixed_cpu_s": float(fixed), "per_sample_cpu_s": float(per_sample), "mean_cpu_s": means,
                   "load_before": load, "load_after": _load()}  # fmt: skip
            rows.append(row)
            shown = "  ".join(f"{n}:{c:.2f}" for n, c in means.items())
            print(f"  {row['size']:>9} {name:<14} fixed {fixed:5.2f} s + {per_sample:5.3f} s/sample  "
                  f"(CPU s by samples {shown}; load {load} -> {row['load_after']})", flush=True)  # fmt: skip
    return rows


# -- 3. the fewest samples that keep the picture ---------------------------------------------------------------
def find_samples(args: argparse.Namespace, package: Path) -> dict[str, Any]:
    """For each quality and look, PSNR of every ladder count against a reference of ``REFERENCE_FACTOR`` x the
    quality's default samples; the fewest samples within ``TOLERANCE_DB`` of the default's PSNR (and every
    ladder count above it too)."""
    sys.path.insert(0, str(ROOT))
    import numpy as np
    from PIL import Image

    from tests.blender_support import psnr

    qualities = {"PREVIEW": (16, 50), "FINAL": (64, 100)}  # today's (before this search) presets
    photo = Image.open(CACHE / "input" / "motorcycle.png").size
    found: dict[str, Any] = {"tolerance_db": TOLERANCE_DB, "reference_factor": REFERENCE_FACTOR, "looks": {}}
    looks = ["LAYERS", *LOOKS] if args.looks == "all" else args.looks.upper().split(",")
    for quality in args.qualities.upper().split(","):
        default, percentage = qualities[quality]
        size = (photo[0] * percentage // 100, photo[1] * percentage // 100)
        ladder = [n for n in LADDER if n <= default]
        for look in looks:
            effects = [] if look == "LAYERS" else [look.lower()]
            load = _load()
            spec = {
                "package": str(package),
                "effects": effects,
                "size": size,
                "settings": "lean",
                "quality": quality,
                "samples": [*ladder, default * REFERENCE_FACTOR],
                "frames": [args.frame] if args.frame else [],
                "fastest_frame": not args.frame,
                "motion_blur": args.motion_blur,
                "out": str(CACHE / "samples" / f"{quality}_{look}"),
            }
            result = _run_child(spec)
            by_samples = {t["samples"]: t for t in result["frames"]}
            reference = np.asarray(Image.open(by_samples[default * REFERENCE_FACTOR]["png"]).convert("RGB"))
            scores = {n: psnr(np.asarray(Image.open(by_samples[n]["png"]).convert("RGB")), reference) for n in ladder}
            target = scores[default] - TOLERANCE_DB
            fewest = default
            for n in reversed(ladder):
                if scores[n] < target:
                    break
                fewest = n
            entry = {
                "quality": quality,
                "look": look,
                "size": f"{size[0]}x{size[1]}",
                "frame": result["frames"][0]["frame"],
                "default_samples": default,
                "default_psnr_db": scores[default],
                "fewest_samples": fewest,
                "fewest_psnr_db": scores[fewest],
                "psnr_db": {str(n): round(s, 3) for n, s in scores.items()},
                "cpu_s": {str(t["samples"]): round(t["cpu_s"], 3) for t in result["frames"]},
                "load_before": load,
                "load_after": _load(),
            }
            found["looks"][f"{quality}/{look}"] = entry
            shown = "  ".join(f"{n}:{s:.2f}" for n, s in scores.items())
            print(
                f"  {quality:<7} {look:<6} {entry['size']} frame {entry['frame']}: fewest {fewest} samples "
                f"({scores[fewest]:.2f} dB vs {scores[default]:.2f} dB at {default}); PSNR {shown} "
                f"(load {load})",
                flush=True,
            )
    return found


# -- optional: DepthFlow ---------------------------------------------------------------------------------------
def _depthflow_inputs(spec: dict[str, Any]) -> tuple[Any, Any, Path]:
    """The photo, its depth as DepthFlow's height map (1 = nearest, linear in 1/z) and the output folder."""
    import numpy as np
    from PIL import Image

    depth = np.load(spec["depth"]).astype(np.float64)
    depth[~np.isfinite(depth)] = np.nanmax(depth)
    near, far = float(depth.min()), float(depth.max())
    heightmap = (1.0 / depth - 1.0 / far) / (1.0 / near - 1.0 / far)
    image = np.asarray(Image.open(spec["image"]).convert("RGB"))
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    return image, heightmap, out


def depthflow_child(spec_path: Path) -> int:
    """In DepthFlow's venv: render the example's photo and height map headless, frame by frame (no FFmpeg
    needed), timing each; then one frame at its defaults and at its best quality for the PSNR."""
    import math
    import types

    spec = json.loads(spec_path.read_text())
    try:
        import numpy as np
        from depthflow.scene import DepthScene
        from PIL import Image
        from shaderflow.message import ShaderMessage
    except Exception as exc:  # report whatever stops it
        print(f"DepthFlow does not import: {type(exc).__name__}: {exc}")
        return 3
    image, height, out = _depthflow_inputs(spec)
    width, height_px = spec["size"]
    fps = 24.0

    def scene_for(quality: float, ssaa: float):
        scene = DepthScene(backend="headless")
        scene.input(image=image, depth=(height * 255).round().astype(np.uint8))
        scene.exporting = scene.freewheel = scene.headless = True
        scene.realtime = False
        scene.quality, scene.fps, scene.time = quality, fps, 0.0
        scene.relay(ShaderMessage.Shader.Compile)
        scene.resize(width=width, height=height_px)
        for module in scene.modules:
            module.setup()
        scene.ssaa = ssaa
        scene.set_duration(spec["frames"] / fps)
        scene.vsync = types.SimpleNamespace(fps=fps)  # what main()'s scheduler would hold
        # A horizontal swing over the clip, like Photo3D's SWING_H loop.
        scene.update = lambda: setattr(scene.state, "offset", (spec["swing"] * math.sin(scene.cycle), 0.0))
        return scene

    def render(scene, frame: int) -> tuple[float, float, np.ndarray]:
        scene.time = frame / fps
        cpu, wall = time.process_time(), time.perf_counter()
        scene.next(dt=0.0)
        shot = scene.screenshot()
        return time.process_time() - cpu, time.perf_counter() - wall, shot

    result: dict[str, Any] = {"renderer": "", "frames": []}
    scene = scene_for(spec["quality"], 1.0)
    result["renderer"] = str(scene.opengl.info.get("GL_RENDERER"))
    for frame in range(spec["frames"]):
        cpu, wall, shot = render(scene, frame)
        result["frames"].append({"frame": frame, "cpu_s": cpu, "wall_s": wall})
    psnr_frame = 0  # sin(0): the swing's centre, where it moves fastest
    _, _, shot = render(scene, psnr_frame)
    Image.fromarray(shot).save(out / "frame.png")
    reference = scene_for(100.0, spec["reference_ssaa"])
    cpu, wall, best = render(reference, psnr_frame)
    Image.fromarray(best).save(out / "reference.png")
    result["reference_cpu_s"] = cpu
    result["frame_png"], result["reference_png"] = str(out / "frame.png"), str(out / "reference.png")
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


def depthflow(args: argparse.Namespace, package: Path) -> dict[str, Any]:
    """Install DepthFlow into its own venv (torch pinned to the CPU build), render the example with a similar
    swing, and report CPU per frame and PSNR against its own best-quality reference, beside Photo3D's lean
    frames at the same size against theirs. Says why when it cannot."""
    venv = DEPTHFLOW_DIR / "venv"
    python = venv / "bin" / "python"
    log = DEPTHFLOW_DIR / "install.log"
    DEPTHFLOW_DIR.mkdir(parents=True, exist_ok=True)
    if not python.is_file():
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
        if made.returncode != 0:
            return _no_depthflow(f"cannot make a venv for DepthFlow: {made.stderr[-500:]}")
    check = subprocess.run([str(python), "-c", "import depthflow"], capture_output=True, text=True)
    if check.returncode != 0:
        constraints = DEPTHFLOW_DIR / "constraints.txt"
        # The local CPU build: an unpinned torch would pull gigabytes of CUDA wheels.
        constraints.write_text("torch==2.13.0\n")
        print(f"  installing depthflow into {venv} (log: {log}) ...", flush=True)
        with log.open("w") as handle:
            installed = subprocess.run(
                [str(python), "-m", "pip", "install", "-c", str(constraints), "depthflow"],
                stdout=handle, stderr=subprocess.STDOUT,
            )  # fmt: skip
        check = subprocess.run([str(python), "-c", "import depthflow"], capture_output=True, text=True)
        if installed.returncode != 0 or check.returncode != 0:
            tail = log.read_text()[-1500:] if log.is_file() else ""
            return _no_depthflow(f"DepthFlow could not be installed (pip exit {installed.returncode}):\n{tail}")
    size = _size(args.depthflow_size)
    spec_file, result_file = DEPTHFLOW_DIR / "spec.json", DEPTHFLOW_DIR / "result.json"
    result_file.unlink(missing_ok=True)
    spec = {
        "image": str(CACHE / "input" / "motorcycle.png"),
        "depth": str(CACHE / "input" / "motorcycle_depth.npy"),
        "size": size,
        "frames": PATH_FRAMES,
        "quality": 50.0,  # DepthFlow's default
        "reference_ssaa": 4.0,
        "swing": 0.3,
        "out": str(DEPTHFLOW_DIR / "frames"),
        "result": str(result_file),
    }
    spec_file.write_text(json.dumps(spec))
    load = _load()
    completed = subprocess.run(
        [str(python), str(Path(__file__).resolve()), "--depthflow-child", str(spec_file)],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    if completed.returncode != 0 or not result_file.is_file():
        tail = (completed.stdout + completed.stderr)[-2000:]
        return _no_depthflow(f"DepthFlow is installed but did not render headless here (exit "
                             f"{completed.returncode}):\n{tail}")  # fmt: skip
    result = json.loads(result_file.read_text())
    sys.path.insert(0, str(ROOT))
    import numpy as np
    from PIL import Image

    from tests.blender_support import psnr

    frames = result["frames"]
    steady = frames[1:]
    entry: dict[str, Any] = {
        "available": True,
        "renderer": result["renderer"],
        "size": f"{size[0]}x{size[1]}",
        "settings": "quality 50, ssaa 1 (DepthFlow's defaults); reference quality 100, ssaa 4",
        "first_cpu_s": frames[0]["cpu_s"],
        "steady_cpu_s": sum(f["cpu_s"] for f in steady) / len(steady),
        "steady_wall_s": sum(f["wall_s"] for f in steady) / len(steady),
        "psnr_db": psnr(
            np.asarray(Image.open(result["frame_png"]).convert("RGB")),
            np.asarray(Image.open(result["reference_png"]).convert("RGB")),
        ),
        "load_before": load,
        "load_after": _load(),
    }
    print(
        f"  DepthFlow {entry['size']} on {entry['renderer']}: first {entry['first_cpu_s']:.2f} s CPU, steady "
        f"{entry['steady_cpu_s']:.3f} s CPU/frame, PSNR {entry['psnr_db']:.2f} dB vs its reference "
        f"(load {load})",
        flush=True,
    )
    # Photo3D at the same size: lean settings, the quality presets' samples, against 4x FINAL.
    samples = sorted({args.samples, *(n for n, _ in _presets().values())})
    reference = REFERENCE_FACTOR * 64
    spec = {
        "package": str(package),
        "effects": [],
        "size": size,
        "settings": "lean",
        "samples": [*samples, reference],
        "frames": [],
        "fastest_frame": True,
        "motion_blur": False,
        "out": str(CACHE / "depthflow_photo3d"),
    }
    ours = _run_child(spec)
    by_samples = {t["samples"]: t for t in ours["frames"]}
    best = np.asarray(Image.open(by_samples[reference]["png"]).convert("RGB"))
    entry["photo3d"] = {
        str(n): {
            "cpu_s": by_samples[n]["cpu_s"],
            "psnr_db": psnr(np.asarray(Image.open(by_samples[n]["png"]).convert("RGB")), best),
        }
        for n in samples
    }
    for n, figures in entry["photo3d"].items():
        print(
            f"  Photo3D  {entry['size']} lean, {n} samples, no effect: {figures['cpu_s']:.2f} s CPU for the frame, "
            f"PSNR {figures['psnr_db']:.2f} dB vs its {reference}-sample reference",
            flush=True,
        )
    return entry


# -- 4. Photo3D's preview against DepthFlow: CPU per frame and PSNR against the real right view -----------------
VERSUS_SIZES = "370x250,1280x720"
"""Output sizes of the comparison: the preview of the photo (50 %), and HD."""
DEPTHFLOW_SEARCH: dict[str, tuple[float, float, float, float]] = {
    # parameter: (first step, lower bound, upper bound); offset and centre are DepthFlow's x, in its uv units
    "offset_x": (0.05, -4.0, 4.0),
    "height": (0.1, 0.05, 1.0),
    "steady": (0.05, -1.0, 1.0),
    "isometric": (0.1, 0.0, 1.0),
    "center_x": (0.01, -1.0, 1.0),
    "zoom": (0.01, 0.5, 2.0),
}
"""DepthFlow's state parameters the search refines, one at a time (``depthflow_versus_child``)."""
DEPTHFLOW_HEIGHTS = (0.25, 0.5, 0.75, 1.0)
"""Heights the search starts from, each with the offset and centre that reproduce the stereo disparity."""


def depthflow_seed(height: float, near: float, far: float) -> dict[str, float]:
    """DepthFlow's parameters that reproduce the right view's disparity exactly, for a surface ``height``.

    With parallel rays (``isometric`` 1), ``zoom`` 1 and ``steady`` 0, DepthFlow shows at screen x the photo at
    x + height * (offset - centre) * v + centre (uv units, half the image height each; v its height map, 1 =
    nearest), an affine map of v. The right camera shows the left photo at u + d with d = f B / Z - doffs,
    affine in 1 / Z and so in v: matching both terms gives the offset and centre."""
    example = _make_example()
    f_b = example.FOCAL_PX * example.BASELINE_M
    half_height = 250.0  # the Motorcycle photo is 500 px high: one uv unit
    slope = f_b * (1.0 / near - 1.0 / far) / half_height
    constant = (f_b / far - example.DOFFS_PX) / half_height
    offset = slope / height + constant
    return {"offset_x": offset, "height": height, "steady": 0.0, "isometric": 1.0, "center_x": constant, "zoom": 1.0}


def depthflow_versus_child(spec_path: Path) -> int:
    """In DepthFlow's venv: fit DepthFlow's parallax parameters to the real right view (in-view PSNR at the
    search size), render that view at each size, and time a swing with the fitted parameters at each size."""
    import math
    import types

    spec = json.loads(spec_path.read_text())
    import numpy as np
    from depthflow.scene import DepthScene
    from PIL import Image
    from shaderflow.message import ShaderMessage

    image, heightmap, out = _depthflow_inputs(spec)
    fps = 24.0
    state: dict[str, Any] = {}

    def apply(scene) -> None:
        st = scene.state
        st.height, st.steady, st.isometric = state["height"], state["steady"], state["isometric"]
        st.zoom = state["zoom"]
        st.offset, st.center = (state["offset_x"], 0.0), (state["center_x"], 0.0)

    def scene_for(size: list[int]):
        scene = DepthScene(backend="headless")
        scene.input(image=image, depth=(heightmap * 255).round().astype(np.uint8))
        scene.exporting = scene.freewheel = scene.headless = True
        scene.realtime = False
        scene.quality, scene.fps, scene.time = spec["quality"], fps, 0.0
        scene.relay(ShaderMessage.Shader.Compile)
        scene.resize(width=size[0], height=size[1])
        for module in scene.modules:
            module.setup()
        scene.ssaa = 1.0
        scene.set_duration(spec["frames"] / fps)
        scene.vsync = types.SimpleNamespace(fps=fps)  # what main()'s scheduler would hold
        scene.update = lambda: apply(scene)
        return scene

    def shot(scene, frame: int = 0) -> tuple[float, float, np.ndarray]:
        scene.time = frame / fps
        cpu, wall = time.process_time(), time.perf_counter()
        scene.next(dt=0.0)
        picture = scene.screenshot()
        return time.process_time() - cpu, time.perf_counter() - wall, np.asarray(picture)[..., :3]

    truth = np.load(spec["truth"]).astype(np.float64)
    mask = np.load(spec["mask"])

    def score(params: dict[str, float]) -> float:
        state.clear()
        state.update(params)
        _, _, picture = shot(search)
        diff = picture.astype(np.float64)[mask] - truth[mask]
        return 10.0 * math.log10(255.0**2 / max(float(np.mean(diff**2)), 1e-12))

    search = scene_for(spec["search_size"])
    tried, best, best_db = 0, None, -1.0
    for seed in spec["seeds"]:
        db = score(seed)
        tried += 1
        if db > best_db:
            best, best_db = dict(seed), db
    steps = {name: value[0] for name, value in DEPTHFLOW_SEARCH.items()}
    for _ in range(spec["rounds"]):
        for name, (_, lower, upper) in DEPTHFLOW_SEARCH.items():
            improved = True
            while improved:
                improved = False
                for sign in (1.0, -1.0):
                    value = best[name] + sign * steps[name]
                    if not lower <= value <= upper:
                        continue
                    params = {**best, name: value}
                    db = score(params)
                    tried += 1
                    if db > best_db + 1e-3:
                        best, best_db, improved = params, db, True
                        break
            steps[name] /= 2.0
    result: dict[str, Any] = {"params": best, "search_psnr_db": best_db, "evaluations": tried, "sizes": {}}
    print(f"depthflow: best {best} at {best_db:.2f} dB after {tried} renders", flush=True)
    for size, view_size in zip(spec["sizes"], spec["view_sizes"], strict=True):
        key = f"{size[0]}x{size[1]}"
        state.clear()
        state.update(best)
        viewer = scene_for(view_size)
        shot(viewer)  # the first frame compiles
        cpu, _, picture = shot(viewer)
        png = out / f"right_{view_size[0]}x{view_size[1]}.png"
        Image.fromarray(picture).save(png)
        # The swing: the fitted view's offset, swung both ways over the clip, like Photo3D's SWING_H loop.
        scene = scene_for(size)
        swing = best["offset_x"]
        scene.update = lambda sc=scene, a=swing: (apply(sc), setattr(sc.state, "offset", (a * math.sin(sc.cycle), 0.0)))
        frames = []
        for frame in range(spec["frames"]):
            cpu, wall, _ = shot(scene, frame)
            frames.append({"frame": frame, "cpu_s": cpu, "wall_s": wall})
        result["sizes"][key] = {"right_png": str(png), "right_cpu_s": cpu, "frames": frames}
    result["renderer"] = str(search.opengl.info.get("GL_RENDERER"))
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


def _depth_range() -> tuple[float, float]:
    """Nearest and farthest depth of the example's depth file (what DepthFlow's height map spans)."""
    import numpy as np

    depth = np.load(CACHE / "input" / "motorcycle_depth.npy")
    return float(np.nanmin(depth)), float(np.nanmax(depth))


def _view_truth():
    """The Motorcycle pair (its real right view) and the right view's masks (``scripts/novel_view``)."""
    sys.path.insert(0, str(ROOT))
    from scripts.novel_view.metrics import view_masks
    from scripts.novel_view.pairs import load_motorcycle

    pair = load_motorcycle()
    masks = view_masks(pair.disparity, pair.right_disparity)
    return pair, masks


def _at_size(image, size: tuple[int, int], mask: bool = False):
    """``image`` area-resampled to ``size``; a mask keeps only pixels wholly inside it."""
    import cv2
    import numpy as np

    if image.shape[1] == size[0] and image.shape[0] == size[1]:
        return image
    if mask:
        return cv2.resize(image.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.999
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def view_scores(render, pair, masks) -> dict[str, float]:
    """In-view (overlap + disoccluded), overlap and disoccluded PSNR of a right-view render against the real
    right photo, at the coarser of the two sizes (the finer one area-downsampled, masks kept where whole)."""
    from scripts.novel_view.metrics import masked_psnr

    photo = (pair.right.shape[1], pair.right.shape[0])
    size = photo if render.shape[1] >= photo[0] else (render.shape[1], render.shape[0])
    truth, image = _at_size(pair.right, size), _at_size(render, size)
    regions = {"in_view": masks.overlap | masks.disoccluded, "overlap": masks.overlap, "disoccluded": masks.disoccluded}
    return {name: masked_psnr(image, truth, _at_size(region, size, mask=True)) for name, region in regions.items()}


def versus(args: argparse.Namespace, package: Path) -> dict[str, Any]:
    """Photo3D's preview and DepthFlow in one run, at each ``--versus-sizes`` output size: CPU per frame of the
    example's swing (no effect: DepthFlow has none) and in-view PSNR of the right view against the real right
    photo. DepthFlow's parameters are fitted to that view first, so the comparison is generous to it."""
    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(ROOT))
    from scripts.novel_view.metrics import masked_psnr

    python = DEPTHFLOW_DIR / "venv" / "bin" / "python"
    if not python.is_file():
        return _no_depthflow(f"no DepthFlow venv at {python.parent.parent}: run --depthflow once to install it")
    pair, masks = _view_truth()
    photo = (pair.right.shape[1], pair.right.shape[0])
    sizes = [_size(t) for t in args.versus_sizes.split(",")]
    # The right view keeps the photo's aspect at each output height (the real view only covers the photo).
    view_sizes = [(round(h * photo[0] / photo[1]), h) for _, h in sizes]
    search_size = view_sizes[0]
    work = DEPTHFLOW_DIR / "versus"
    work.mkdir(parents=True, exist_ok=True)
    np.save(work / "truth.npy", _at_size(pair.right, search_size))
    np.save(work / "mask.npy", _at_size(masks.overlap | masks.disoccluded, search_size, mask=True))
    spec_file, result_file = work / "spec.json", work / "result.json"
    result_file.unlink(missing_ok=True)
    spec = {
        "image": str(CACHE / "input" / "motorcycle.png"),
        "depth": str(CACHE / "input" / "motorcycle_depth.npy"),
        "truth": str(work / "truth.npy"),
        "mask": str(work / "mask.npy"),
        "search_size": search_size,
        "seeds": [depthflow_seed(h, *_depth_range()) for h in DEPTHFLOW_HEIGHTS],
        "sizes": sizes,
        "view_sizes": view_sizes,
        "frames": args.frames_versus,
        "quality": 50.0,  # DepthFlow's default
        "rounds": 3,
        "out": str(work),
        "result": str(result_file),
    }
    spec_file.write_text(json.dumps(spec))
    report: dict[str, Any] = {"load_before": _load(), "sizes": {}}
    completed = subprocess.run(
        [str(python), str(Path(__file__).resolve()), "--depthflow-versus-child", str(spec_file)],
        capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    if completed.returncode != 0 or not result_file.is_file():
        return _no_depthflow(f"DepthFlow did not render (exit {completed.returncode}):\n"
                             f"{(completed.stdout + completed.stderr)[-2000:]}")  # fmt: skip
    flow = json.loads(result_file.read_text())
    report["depthflow"] = {"params": flow["params"], "search_psnr_db": flow["search_psnr_db"],
                           "evaluations": flow["evaluations"], "renderer": flow["renderer"],
                           "load_after": _load()}  # fmt: skip
    print(f"  DepthFlow fitted to the right view in {flow['evaluations']} renders: {flow['params']} "
          f"({flow['search_psnr_db']:.2f} dB in view at {search_size[0]}x{search_size[1]}; load "
          f"{report['load_before']} -> {report['depthflow']['load_after']})", flush=True)  # fmt: skip
    samples = sorted({int(n) for n in args.versus_samples.split(",")})
    effects = [] if args.effect.lower() == "none" else [args.effect]
    for size, view_size in zip(sizes, view_sizes, strict=True):
        key = f"{size[0]}x{size[1]}"
        ours = flow["sizes"][key]
        steady = ours["frames"][1:]
        depthflow_cpu = sum(f["cpu_s"] for f in steady) / len(steady)
        depthflow_view = np.asarray(Image.open(ours["right_png"]).convert("RGB"))
        entry: dict[str, Any] = {
            "view_size": f"{view_size[0]}x{view_size[1]}",
            "depthflow": {"steady_cpu_s": depthflow_cpu, "psnr_db": view_scores(depthflow_view, pair, masks)},
            "photo3d": {},
        }
        base = {"package": str(package), "settings": "lean", "quality": "PREVIEW", "motion_blur": False,
                "tweaks": PROFILE_VARIANTS[args.versus_variant]}  # fmt: skip
        load = _load()
        timed = _run_child({**base, "effects": effects, "size": size, "samples": samples,
                            "frames": [1, 13, 25, 37][: args.frames], "out": str(CACHE / "versus" / key)})  # fmt: skip
        reference = args.versus_reference
        views = _run_child({**base, "effects": [], "size": view_size, "samples": [*samples, reference], "frames": [1],
                            "view": "right", "out": str(CACHE / "versus" / f"{key}_right")})  # fmt: skip
        pngs = {t["samples"]: t["png"] for t in views["frames"]}
        best = np.asarray(Image.open(pngs[reference]).convert("RGB"))
        in_view = _at_size(masks.overlap | masks.disoccluded, view_size, mask=True)
        steady_ours = timed["frames"][len(samples) :] or timed["frames"]
        for n in samples:
            cpu = [t["cpu_s"] for t in steady_ours if t["samples"] == n]
            picture = np.asarray(Image.open(pngs[n]).convert("RGB"))
            figures = {
                "steady_cpu_s": sum(cpu) / len(cpu),
                "psnr_db": view_scores(picture, pair, masks),
                # Convergence: the same view against many more samples, over the same in-view pixels.
                "psnr_vs_reference_db": masked_psnr(picture, best, in_view),
                "right_png": pngs[n],
            }
            figures["ratio"] = figures["steady_cpu_s"] / depthflow_cpu
            entry["photo3d"][str(n)] = figures
        entry["load"] = f"{load} -> {_load()}"
        report["sizes"][key] = entry
        print(f"  {key}: DepthFlow {depthflow_cpu:.3f} CPU s/frame, in-view "
              f"{entry['depthflow']['psnr_db']['in_view']:.2f} dB (overlap "
              f"{entry['depthflow']['psnr_db']['overlap']:.2f}, disoccluded "
              f"{entry['depthflow']['psnr_db']['disoccluded']:.2f}); load {entry['load']}", flush=True)  # fmt: skip
        for n, figures in entry["photo3d"].items():
            db = figures["psnr_db"]
            print(f"  {key}: Photo3D preview {n:>2} samples {figures['steady_cpu_s']:6.2f} CPU s/frame "
                  f"({figures['ratio']:5.1f}x DepthFlow), in-view {db['in_view']:.2f} dB (overlap "
                  f"{db['overlap']:.2f}, disoccluded {db['disoccluded']:.2f}); "
                  f"{figures['psnr_vs_reference_db']:.2f} dB vs {reference} samples", flush=True)  # fmt: skip
    return report


def _presets() -> dict[str, tuple[int, int]]:
    """The quality presets of ``render/settings.py`` (read without bpy)."""
    import ast

    tree = ast.parse((ROOT / "photo3d_addon" / "render" / "settings.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "QUALITY" for t in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError("QUALITY not found in render/settings.py")


def _no_depthflow(message: str) -> dict[str, Any]:
    print(f"  DepthFlow: {message}", flush=True)
    return {"available": False, "message": message}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=SIZES, help=f"WIDTHxHEIGHT,... (default {SIZES})")
    parser.add_argument("--frames", type=int, default=4, help="frames per run: the first, then steady state")
    parser.add_argument("--samples", type=int, default=8, help="Eevee samples of the timed frames (the example's)")
    parser.add_argument("--settings", default="lean,default", help="lean, default or both")
    parser.add_argument("--effect", default=EXAMPLE_EFFECT, help="the timed scene's effect, or none")
    parser.add_argument("--motion-blur", action=argparse.BooleanOptionalAction, default=None,
                        help="Eevee motion blur (default: off for the timings, as the example; on for the search, "
                        "as the render defaults)")  # fmt: skip
    parser.add_argument("--find-samples", action="store_true", help="search the fewest samples per quality and look")
    parser.add_argument("--qualities", default="PREVIEW,FINAL", help="qualities the search covers")
    parser.add_argument("--looks", default="all", help="LAYERS,RAIN,SNOW,FOG,DUST,HALOS or all")
    parser.add_argument("--frame", type=int, help="the frame the search renders (default: the camera's fastest)")
    parser.add_argument("--no-timings", dest="timings", action="store_false", help="skip the per-frame timings")
    parser.add_argument("--depthflow", action="store_true", help="also time DepthFlow in its own venv")
    parser.add_argument("--depthflow-size", default="960x540")
    parser.add_argument("--profile", action="store_true", help="fixed vs per-sample CPU of lean-setting variants")
    parser.add_argument("--variants", default="all", help=f"profile variants: {','.join(PROFILE_VARIANTS)} or all")
    parser.add_argument("--profile-samples", default="1,4,12", help="the sample counts each profile frame renders")
    parser.add_argument(
        "--versus",
        action="store_true",
        help="Photo3D's preview vs DepthFlow: CPU per frame and PSNR against the real right view",
    )
    parser.add_argument("--versus-sizes", default=VERSUS_SIZES, help=f"output sizes (default {VERSUS_SIZES})")
    parser.add_argument("--versus-samples", default="1,2,4,8,12", help="Photo3D sample counts compared")
    parser.add_argument("--versus-reference", type=int, default=48, help="samples of the convergence reference")
    parser.add_argument("--versus-variant", default="lean", help="the profile variant Photo3D renders with")
    parser.add_argument("--frames-versus", type=int, default=24, help="DepthFlow frames timed per size")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--depthflow-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--depthflow-versus-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.child)
    if args.depthflow_child is not None:
        return depthflow_child(args.depthflow_child)
    if args.depthflow_versus_child is not None:
        return depthflow_versus_child(args.depthflow_versus_child)
    package = prepare_package()
    report: dict[str, Any] = {"load_at_start": _load(), "cpus": os.cpu_count()}
    print(f"bench_render: package {package}; load {report['load_at_start']} on {os.cpu_count()} CPUs", flush=True)
    if args.timings and not (args.find_samples or args.profile or args.versus):
        timing_args = argparse.Namespace(**{**vars(args), "motion_blur": bool(args.motion_blur)})
        report["timings"] = bench_frames(timing_args, package)
        print_table(report["timings"])
    if args.profile:
        report["profile"] = profile(args, package)
    if args.find_samples:
        search_args = argparse.Namespace(**{**vars(args), "motion_blur": args.motion_blur is not False})
        report["samples"] = find_samples(search_args, package)
    if args.depthflow:
        report["depthflow"] = depthflow(args, package)
    if args.versus:
        report["versus"] = versus(args, package)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
        print(f"bench_render: wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
