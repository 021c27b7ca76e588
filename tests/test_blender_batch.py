"""Blender tier: the headless batch end to end (scripts/photo3d_batch.py, the same entry point as
``blender -b -c photo3d``): a playable video, a .blend that reopens with the scene, a bad photo skipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

bpy = pytest.importorskip("bpy", reason="the Blender tier needs the bpy wheel (scripts/setup.sh installs it)")

from tests.scenes import write_motorcycle  # noqa: E402

pytestmark = pytest.mark.blender
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:

    folder = tmp_path_factory.mktemp("batch in")
    write_motorcycle(folder / "motorcycle.png", folder / "motorcycle.npy")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def _batch(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PHOTO3D_WORKER_PYTHON=sys.executable)
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "photo3d_batch.py"), *args],
        capture_output=True, text=True, timeout=600, env=env, cwd=ROOT,
    )  # fmt: skip


def test_batch_writes_video_and_blend_and_skips_a_bad_photo(photos, tmp_path):
    out = tmp_path / "out"
    run = _batch(
        str(photos / "broken.jpg"), str(photos / "motorcycle.png"), "--out", str(out), "--depth", str(photos),
        "--no-segmentation", "--frames", "4", "--quality", "PREVIEW", "--samples", "1",
        "--effect", "rain:amount=0.5:wind=0.2", "--effect", "fog:amount=0.3",
    )  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr  # the first failure was bad input
    lines = [line for line in run.stdout.splitlines() if line.startswith("photo3d:")]
    assert any("motorcycle.png: segment" in line for line in lines)  # a line per stage
    assert "photo3d: motorcycle.png: effects rain, fog" in lines
    assert [line for line in lines if "motorcycle: frame" in line][-1].endswith("frame 4/4")  # and per frame
    assert "summary: 1 of 2 photos succeeded" in run.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert [(Path(r["photo"]).name, r["status"], r["exit_code"]) for r in summary] == [
        ("broken.jpg", "failed", 2),
        ("motorcycle.png", "ok", 0),
    ]

    video = out / "motorcycle.mp4"
    clip = bpy.data.movieclips.load(str(video))
    try:
        # Preview renders half the photo's size, rounded to even for H.264: 741x500 -> 740x500 -> 370x250.
        assert clip.frame_duration == 4 and tuple(clip.size) == (370, 250)
    finally:
        bpy.data.movieclips.remove(clip)

    reopen = subprocess.run(
        [sys.executable, "-c", (
            "import bpy, json, os, sys; bpy.ops.wm.open_mainfile(filepath=sys.argv[1]); "
            "c = [c for c in bpy.data.collections if 'photo3d_source' in c]; "
            "print('RESULT', json.dumps([len(c), len([o for o in c[0].objects if 'photo3d_layer' in o]), "
            "bpy.context.scene.camera is not None, "
            "all(os.path.isfile(bpy.path.abspath(i.filepath)) for i in bpy.data.images if i.source == 'FILE'), "
            "[o['photo3d_effect'] for o in c[0].objects if 'photo3d_effect' in o], "
            "len(bpy.data.objects['Photo3D Rain motorcycle'].evaluated_get("
            "bpy.context.evaluated_depsgraph_get()).data.vertices)]))"
        ), str(out / "motorcycle.blend")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    result = json.loads(next(line for line in reopen.stdout.splitlines() if line.startswith("RESULT"))[7:])
    n_collections, n_layers, has_camera, images_load, effect_kinds, rain_vertices = result
    assert n_collections == 1 and n_layers >= 2 and has_camera and images_load
    # The effects play without the add-on: the node group is in the file and builds the rain's sprites.
    assert effect_kinds == ["RAIN"] and rain_vertices > 1000


def test_settings_file_drives_a_png_job_and_flags_override_it(photos, tmp_path):
    settings = tmp_path / "job.json"
    settings.write_text(json.dumps({"output": "PNG", "frames": 2, "quality": "PREVIEW", "blend": False,
                                    "segmentation": False, "samples": 1, "depth": str(photos),
                                    "effects": ["snow:amount=1:size=2"]}))  # fmt: skip
    out = tmp_path / "out"
    run = _batch(str(photos / "motorcycle.png"), "--settings", str(settings), "--out", str(out), "--frames", "3")
    assert run.returncode == 0, run.stdout + run.stderr
    frames = sorted((out / "motorcycle_frames").glob("*.png"))
    assert [f.name for f in frames] == ["motorcycle_0001.png", "motorcycle_0002.png", "motorcycle_0003.png"]
    pixels = [np.asarray(Image.open(f).convert("RGB")).astype(float) for f in frames]
    assert all(p.std() > 20 for p in pixels)  # the photo's scene, not an empty world
    assert np.abs(pixels[1] - pixels[0]).mean() > 0.5  # the default camera path moves
    assert not (out / "motorcycle.blend").exists()
    assert "photo3d: motorcycle.png: effects snow" in run.stdout


def test_bad_settings_and_no_photos_are_bad_input(tmp_path):
    settings = tmp_path / "job.json"
    settings.write_text(json.dumps({"frame": 3}))
    run = _batch("x.png", "--settings", str(settings))
    assert run.returncode == 2 and "unknown keys frame" in run.stdout
    assert _batch().returncode == 2
    run = _batch("x.png", "--effect", "hail")
    assert run.returncode == 2 and "unknown effect 'hail'" in run.stdout
    settings.write_text(json.dumps({"effects": [{"kind": "rain", "amount": 4}]}))
    run = _batch("x.png", "--settings", str(settings))
    assert run.returncode == 2 and "rain amount must be between 0 and 1" in run.stdout


def test_package_renders_an_existing_package_without_a_worker(package, tmp_path):
    """``--package DIR``: a package converted elsewhere (here by the CLI) is built and rendered; no worker is
    needed (its Python points nowhere), and a folder that is not a package fails with exit 5."""
    out = tmp_path / "out"
    env = {"PHOTO3D_WORKER_PYTHON": str(tmp_path / "no-python-here")}
    run = _batch_env(env, "--package", str(package), "--out", str(out), "--frames", "2", "--quality", "PREVIEW",
                     "--samples", "1", "--no-blend")  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    clip = bpy.data.movieclips.load(str(out / "motorcycle.mp4"))
    try:
        assert clip.frame_duration == 2
    finally:
        bpy.data.movieclips.remove(clip)
    assert not (out / "packages").exists()  # nothing was converted

    not_a_package = tmp_path / "notes"
    not_a_package.mkdir()
    (not_a_package / "readme.txt").write_text("hello")
    run = _batch_env(env, "--package", str(not_a_package), "--out", str(tmp_path / "out2"), "--frames", "2")
    assert run.returncode == 5 and "not a Photo3D layer package" in run.stdout, run.stdout
    summary = json.loads((tmp_path / "out2" / "summary.json").read_text())
    assert [(r["status"], r["exit_code"]) for r in summary] == [("failed", 5)]


@pytest.fixture(scope="module")
def package(photos, tmp_path_factory) -> Path:
    """The motorcycle's layer package, converted once by the CLI (no worker, no model)."""
    package = tmp_path_factory.mktemp("batch pkg") / "pkg"
    convert = subprocess.run(
        [sys.executable, "-m", "core", "convert", str(photos / "motorcycle.png"), "-o", str(package),
         "--depth", str(photos / "motorcycle.npy"), "--segment", "none", "--work-size", "320", "--quiet"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert convert.returncode == 0, convert.stderr
    return package


NO_WORKER = {"PHOTO3D_WORKER_PYTHON": "/nonexistent/python"}


def test_export_writes_a_comp_package_next_to_the_outputs(package, tmp_path):
    """``--export usd,gltf,chan`` on a package: <out>/<stem>_comp/ with the files comp.json lists, the camera
    at each of the batch's frames (the default path is animated), listed in the summary; no render needed."""
    out = tmp_path / "out"
    run = _batch_env(NO_WORKER, "--package", str(package), "--out", str(out), "--frames", "5", "--no-video",
                     "--no-blend", "--export", "usd,gltf,chan")  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    comp = out / "motorcycle_comp"
    manifest = json.loads((comp / "comp.json").read_text())
    assert manifest["format"] == "photo3d.comp"
    assert manifest["files"] == {"usd": "scene.usda", "gltf": "scene.glb", "chan": "camera.chan"}
    assert manifest["frames"] == [1, 5] and manifest["animated"] is True
    assert all((comp / name).is_file() and (comp / name).stat().st_size > 0 for name in manifest["files"].values())
    rows = [line.split() for line in (comp / "camera.chan").read_text().splitlines()]
    assert [row[0] for row in rows] == ["1", "2", "3", "4", "5"]  # one line per frame
    assert len({tuple(row[1:4]) for row in rows}) > 1  # and the camera moves
    assert f"photo3d: pkg: comp package {comp} (usd, gltf, chan)" in run.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["status"], r["exit_code"], r["outputs"]) for r in summary] == [("ok", 0, [str(comp)])]
    assert sorted(p.name for p in out.iterdir()) == ["items", "motorcycle_comp", "summary.json"]  # no video, no .blend
    assert sorted(p.name for p in (out / "items").iterdir()) == ["motorcycle.json", "motorcycle.log"]


def test_export_renders_exr_frames_with_a_line_per_frame(package, tmp_path):
    out = tmp_path / "out"
    run = _batch_env(NO_WORKER, "--package", str(package), "--out", str(out), "--frames", "3", "--no-video",
                     "--no-blend", "--quality", "PREVIEW", "--samples", "1", "--export", "exr,deep")  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    manifest = json.loads((out / "motorcycle_comp" / "comp.json").read_text())
    assert len(manifest["files"]["exr"]) == 3 and len(manifest["files"]["deep"]) == 3
    assert all((out / "motorcycle_comp" / name).is_file() for name in manifest["files"]["exr"])
    assert "pkg: EXR frame 1 (1 of 3)" in run.stdout and "pkg: EXR frame 3 (3 of 3)" in run.stdout, run.stdout
    # PREVIEW renders at half the photo's size: the comp package is the preview's shot.
    assert manifest["resolution"] == [round(741 * 0.5), round(500 * 0.5)]


def test_bad_export_formats_exit_9_before_anything(tmp_path):
    """An unknown format, from the flag or the settings file, is refused before the first item, naming both."""
    out = tmp_path / "out"
    run = _batch_env(NO_WORKER, "x.png", "--out", str(out), "--export", "usd,obj")
    assert run.returncode == 9, run.stdout + run.stderr
    assert "setting export (--export)" in run.stdout and "unknown export format obj" in run.stdout, run.stdout
    assert "starting" not in run.stdout and not out.exists()
    settings = tmp_path / "job.json"
    settings.write_text(json.dumps({"export": "exr,bogus"}))
    run = _batch_env(NO_WORKER, "x.png", "--out", str(out), "--settings", str(settings))
    assert run.returncode == 9, run.stdout + run.stderr
    # exr may be one of the exporter's formats by now (FORMATS is read at run time): bogus is refused either way.
    assert f"setting export (in {settings})" in run.stdout and "unknown export format" in run.stdout, run.stdout
    assert "bogus" in run.stdout.split("unknown export format", 1)[1].split(";")[0], run.stdout
    assert "starting" not in run.stdout and not out.exists()
    settings.write_text(json.dumps({"export": ["usd"]}))  # the wrong type is bad input, as for every setting
    run = _batch_env(NO_WORKER, "x.png", "--out", str(out), "--settings", str(settings))
    assert run.returncode == 2 and "setting export" in run.stdout, run.stdout


def test_export_into_a_users_folder_fails_with_4_and_leaves_it(package, tmp_path):
    """<out>/<stem>_comp already holds a file of the user's: the item fails with exit 4 and the folder is as it
    was (not replaced, not removed by the cleanup)."""
    out = tmp_path / "out"
    comp = out / "motorcycle_comp"
    comp.mkdir(parents=True)
    (comp / "notes.txt").write_text("mine")
    run = _batch_env(NO_WORKER, "--package", str(package), "--out", str(out), "--frames", "2", "--no-video",
                     "--no-blend", "--export", "chan")  # fmt: skip
    assert run.returncode == 4, run.stdout + run.stderr
    assert "not a Photo3D comp package" in run.stdout, run.stdout
    assert [p.name for p in comp.iterdir()] == ["notes.txt"] and (comp / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["items", "motorcycle_comp", "summary.json"]  # no staging left
    assert [p.name for p in (out / "items").iterdir()] == ["motorcycle.log"]  # a log, no record: not done
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["status"], r["exit_code"], r["outputs"]) for r in summary] == [("failed", 4, [])]


_STOP_AFTER_EXPORT = """
import os, sys
sys.path.insert(0, os.path.join(sys.argv[1], "scripts"))
import bpy  # noqa: F401
from extension_loader import EXTENSION, import_checkout_as_extension
import importlib
import_checkout_as_extension()
batch = importlib.import_module(EXTENSION + ".photo3d_addon.batch.run")
real = batch.comp_export.export_comp
def export_then_sigterm(*args, **kwargs):
    result = real(*args, **kwargs)
    batch._stop.signum = 15  # as if SIGTERM arrived just as the comp package was moved into place
    return result
batch.comp_export.export_comp = export_then_sigterm
sys.stdout.flush()
code = batch.run(sys.argv[2:])
sys.stdout.flush()
os._exit(code)
"""


def test_a_stop_right_after_the_export_removes_the_comp_package_it_wrote(package, tmp_path):
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-c", _STOP_AFTER_EXPORT, str(ROOT), "--package", str(package), "--out", str(out),
         "--frames", "2", "--no-video", "--no-blend", "--export", "usd,chan"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, **NO_WORKER), cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 143, run.stdout + run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["items", "summary.json"]
    assert [p.name for p in (out / "items").iterdir()] == ["motorcycle.log"]  # a log, no record: not done
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["status"], r["exit_code"], r["outputs"]) for r in summary] == [("cancelled", 143, [])]


def _children(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc to find the worker")
@pytest.mark.parametrize(("signame", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_mid_batch_stops_it_cleanly(photos, tmp_path, signame, code):
    """SIGTERM or SIGINT while the worker converts: the batch exits 128 + the signal within seconds, the worker
    is gone, and nothing half-written is left (no package, no staging folder, no video, no .blend); the summary
    says so."""
    import signal
    import time

    out = tmp_path / "out"
    env = dict(os.environ, PHOTO3D_WORKER_PYTHON=sys.executable)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "photo3d_batch.py"), str(photos / "motorcycle.png"),
         str(photos / "motorcycle.png"), "--out", str(out), "--depth", str(photos), "--frames", "2",
         "--no-segmentation"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    said = []
    try:
        for line in process.stdout:
            said.append(line)
            if "motorcycle.png: " in line and "(" in line and "starting" not in line:
                break  # a stage of the conversion is running in the worker
        workers = _children(process.pid)
        assert workers, "".join(said)
        started = time.monotonic()
        process.send_signal(getattr(signal, signame))
        rest, _ = process.communicate(timeout=60)
        said.append(rest)
    finally:
        if process.poll() is None:
            process.kill()
    text = "".join(said)
    assert process.returncode == code, text
    assert time.monotonic() - started < 30
    time.sleep(0.5)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "the worker outlived the batch"
    leftovers = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.name != "summary.json")
    assert leftovers in (["items", "items/motorcycle.log"], ["items", "items/motorcycle.log", "packages"]), leftovers
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["status"], r["exit_code"]) for r in summary] == [("cancelled", code)]
    assert f"stopped (exit {code})" in text


def _batch_env(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "photo3d_batch.py"), *args],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, **env), cwd=ROOT,
    )  # fmt: skip
