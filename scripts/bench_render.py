"""Eevee render cost of the bundled example (the Motorcycle photo, its ground-truth depth, the example's rain and
camera swing): CPU and wall seconds per frame, first frame and steady state, lean vs Blender's default shadow
and world-probe settings, at several sizes; the fewest samples that keep each look; optionally DepthFlow.

    .venv/bin/python scripts/bench_render.py [--sizes 370x250,960x540,1920x1080] [--frames 4] [--json FILE]
    .venv/bin/python scripts/bench_render.py --find-samples [--json FILE]
    .venv/bin/python scripts/bench_render.py --depthflow [--json FILE]

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
    result: dict[str, Any] = {"look": look.describe(), "frames": []}
    if spec.get("fastest_frame"):
        spec["frames"] = [_fastest_frame(bpy, scene, photo.camera)]
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
    depth = np.load(spec["depth"]).astype(np.float64)
    depth[~np.isfinite(depth)] = np.nanmax(depth)
    near, far = float(depth.min()), float(depth.max())
    height = (1.0 / depth - 1.0 / far) / (1.0 / near - 1.0 / far)  # DepthFlow's height map: 1 = nearest
    image = np.asarray(Image.open(spec["image"]).convert("RGB"))
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
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
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--depthflow-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.child)
    if args.depthflow_child is not None:
        return depthflow_child(args.depthflow_child)
    package = prepare_package()
    report: dict[str, Any] = {"load_at_start": _load(), "cpus": os.cpu_count()}
    print(f"bench_render: package {package}; load {report['load_at_start']} on {os.cpu_count()} CPUs", flush=True)
    if args.timings and not args.find_samples:
        timing_args = argparse.Namespace(**{**vars(args), "motion_blur": bool(args.motion_blur)})
        report["timings"] = bench_frames(timing_args, package)
        print_table(report["timings"])
    if args.find_samples:
        search_args = argparse.Namespace(**{**vars(args), "motion_blur": args.motion_blur is not False})
        report["samples"] = find_samples(search_args, package)
    if args.depthflow:
        report["depthflow"] = depthflow(args, package)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
        print(f"bench_render: wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
