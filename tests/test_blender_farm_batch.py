"""The Blender batch as a farm task: convert-only tasks into a named package, render chunks of a shot, records
that make re-runs idempotent (--resume, --force), per-item logs, machine-readable progress, outputs others can
read and .blend files without the submitting machine's paths. Runs the batch with the bpy module."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.scenes import write_motorcycle

ROOT = Path(__file__).resolve().parents[1]
NO_WORKER = {"PHOTO3D_WORKER_PYTHON": "/nonexistent/python"}
TINY = ["--quality", "PREVIEW", "--samples", "1", "--resolution", "PHOTO"]


def _batch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "photo3d_batch.py"), *args],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, **(env or NO_WORKER)), cwd=ROOT,
    )  # fmt: skip


def _events(run: subprocess.CompletedProcess) -> list[dict]:
    prefix = "photo3d-progress "
    return [json.loads(line[len(prefix) :]) for line in run.stdout.splitlines() if line.startswith(prefix)]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("farm in")
    write_motorcycle(folder / "motorcycle.png", folder / "motorcycle.npy")
    # A second photo (the same one mirrored) for batches of two items.
    Image.open(folder / "motorcycle.png").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "second.png")
    np.save(folder / "second.npy", np.load(folder / "motorcycle.npy")[:, ::-1])
    return folder


def _convert(photos: Path, stem: str, out: Path) -> Path:
    convert = subprocess.run(
        [sys.executable, "-m", "core", "convert", str(photos / f"{stem}.png"), "-o", str(out),
         "--depth", str(photos / f"{stem}.npy"), "--segment", "none", "--work-size", "320", "--quiet"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert convert.returncode == 0, convert.stderr
    return out


@pytest.fixture(scope="module")
def packages(photos, tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("farm pkg")
    return _convert(photos, "motorcycle", folder / "pkg"), _convert(photos, "second", folder / "pkg2")


def test_a_convert_task_writes_the_named_package_readable_by_others(photos, tmp_path):
    """``--package-out`` with ``--no-video --no-blend``: the photo's package exactly there, nothing rendered or
    built, a record and a log for the item; folders 755 and files 644 under a 022 umask (a farm's other users
    read them)."""
    out, package = tmp_path / "job", tmp_path / "job" / "motorcycle" / "package"
    env = {"PHOTO3D_WORKER_PYTHON": sys.executable}
    old = os.umask(0o022)
    try:
        run = _batch(str(photos / "motorcycle.png"), "--out", str(out), "--package-out", str(package),
                     "--no-video", "--no-blend", "--depth", str(photos), "--no-segmentation", env=env)  # fmt: skip
    finally:
        os.umask(old)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (package / "manifest.json").is_file() and not (out / "packages").exists()
    assert "scene built" not in run.stdout  # converting only
    record = json.loads((out / "items" / "motorcycle.json").read_text())
    assert record["outputs"] == ["motorcycle/package"] and record["input"] == str(photos / "motorcycle.png")
    assert "motorcycle.png: done" in (out / "items" / "motorcycle.log").read_text()
    for path in [package, *package.rglob("*"), out / "items" / "motorcycle.json"]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))


def test_chunks_render_the_same_frames_as_the_whole_shot(packages, tmp_path):
    """Frames 1-2 and 3-4 of a 4-frame shot, rendered by two batches into one folder, are the whole shot's
    frames: the camera path is the shot's, not the chunk's. Eevee's first render in a process differs slightly
    from later ones, so a chunk's first frame matches the whole shot's within 50 dB, not bit for bit."""
    package = packages[0]
    whole, chunks = tmp_path / "whole", tmp_path / "chunks"
    run = _batch("--package", str(package), "--out", str(whole), "--frames", "4", "--output", "PNG", "--no-blend",
                 *TINY)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    for chunk in ("1-2", "3-4"):
        run = _batch("--package", str(package), "--out", str(chunks), "--frames", chunk, "--shot-frames", "4",
                     *TINY, "--progress", "json")  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        events = _events(run)
        assert [e["frame"] for e in events if e["event"] == "frame"] == [int(f) for f in chunk.split("-")]
        done = [e for e in events if e["event"] == "done"]
        assert done[0]["item"] == f"motorcycle@{chunk}" and len(done[0]["outputs"]) == 2
    names = sorted(p.name for p in (chunks / "motorcycle_frames").iterdir())
    assert (
        names
        == sorted(p.name for p in (whole / "motorcycle_frames").iterdir())
        == [f"motorcycle_{f:04d}.png" for f in range(1, 5)]
    )
    assert sorted(p.name for p in chunks.iterdir()) == ["items", "motorcycle_frames", "summary.json"]  # no .blend
    for name in names:
        a = np.asarray(Image.open(chunks / "motorcycle_frames" / name)).astype(float)
        b = np.asarray(Image.open(whole / "motorcycle_frames" / name)).astype(float)
        mse = ((a - b) ** 2).mean()
        assert mse == 0 or 10 * np.log10(255**2 / mse) > 50, name
    first = [np.asarray(Image.open(d / "motorcycle_frames" / "motorcycle_0001.png")) for d in (chunks, whole)]
    assert np.array_equal(*first)  # both first renders of their process
    frames = [np.asarray(Image.open(chunks / "motorcycle_frames" / n)).astype(float) for n in names]
    assert np.abs(frames[3] - frames[0]).mean() > 0.5  # and the camera moves over the shot


def test_resume_skips_what_is_done_and_redoes_what_changed(packages, tmp_path):
    out = tmp_path / "out"

    def batch(frames: str, *more: str) -> subprocess.CompletedProcess:
        return _batch("--package", str(packages[0]), "--out", str(out), "--frames", frames, "--no-video",
                      "--no-blend", "--export", "chan", "--resume", *more)  # fmt: skip

    first = batch("3")
    assert first.returncode == 0, first.stdout + first.stderr
    chan = out / "motorcycle_comp" / "camera.chan"
    made = chan.stat().st_mtime_ns

    again = batch("3")
    assert again.returncode == 0 and "already done" in again.stdout, again.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["status"], r["outputs"]) for r in summary] == [("skipped", [str(out / "motorcycle_comp")])]
    assert chan.stat().st_mtime_ns == made

    changed = batch("4")  # a setting that shapes the output
    assert changed.returncode == 0 and "already done" not in changed.stdout, changed.stdout
    assert len(chan.read_text().splitlines()) == 4

    forced = batch("4", "--force")
    assert forced.returncode == 0 and "already done" not in forced.stdout, forced.stdout

    shutil.rmtree(out / "motorcycle_comp")  # an output went missing: redone
    missing = batch("4")
    assert missing.returncode == 0 and "already done" not in missing.stdout and chan.is_file(), missing.stdout
    log = (out / "items" / "motorcycle.log").read_text()
    assert log.count("pkg: done in") == 4  # the four runs that did the work, appended in one log


def test_a_killed_batch_resumes_with_only_the_missing_item(packages, tmp_path):
    """SIGKILL right after the first item's record is written: the second item has no record, so --resume
    skips the first and does only the second."""
    out = tmp_path / "out"
    args = [sys.executable, str(ROOT / "scripts" / "photo3d_batch.py"), "--package", str(packages[0]),
            "--package", str(packages[1]), "--out", str(out), "--frames", "3", "--no-video", "--no-blend",
            "--export", "chan", "--resume", "--progress", "json"]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=dict(os.environ, **NO_WORKER), cwd=ROOT)
    try:
        for line in process.stdout:
            if '"event":"done"' in line:
                process.send_signal(signal.SIGKILL)
                break
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    assert (out / "items" / "motorcycle.json").is_file() and not (out / "items" / "second.json").exists()

    resumed = _batch(*args[2:])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    events = _events(resumed)
    assert [(e["event"], e["item"]) for e in events if e["event"] in ("skipped", "done")] == [
        ("skipped", "motorcycle"),
        ("done", "second"),
    ]
    summary = {e["event"]: e for e in events}["summary"]
    assert (summary["done"], summary["skipped"], summary["failed"]) == (1, 1, 0)


def test_a_saved_blend_names_no_absolute_path(packages, tmp_path):
    out = tmp_path / "out"
    run = _batch("--package", str(packages[0]), "--out", str(out), "--frames", "2", "--no-video", "--blend")
    assert run.returncode == 0, run.stdout + run.stderr
    reopen = subprocess.run(
        [sys.executable, "-c", (
            "import bpy, json, os, sys; bpy.ops.wm.open_mainfile(filepath=sys.argv[1]); "
            "paths = [bpy.context.scene.render.filepath] + [i.filepath for i in bpy.data.images if i.filepath]; "
            "print('RESULT', json.dumps([paths, bpy.utils.blend_paths(absolute=False), "
            "[os.path.isfile(bpy.path.abspath(i.filepath)) for i in bpy.data.images if i.source == 'FILE']]))"
        ), str(out / "motorcycle.blend")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    paths, blend_paths, loadable = json.loads(
        next(line for line in reopen.stdout.splitlines() if line.startswith("RESULT"))[7:]
    )
    assert paths and all(p.startswith("//") for p in paths), paths
    assert all(p.startswith("//") for p in blend_paths), blend_paths
    assert str(tmp_path) not in json.dumps([paths, blend_paths])
    assert loadable and all(loadable)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--frames", "3-9", "--shot-frames", "4"], "ends after the shot's last frame, 4"),
        (["--frames", "0-2"], "1 <= FIRST <= LAST"),
        (["--frames", "1-2", "--output", "MP4"], "setting output (--output)"),
        (["--frames", "1-2", "--blend"], "setting blend (--blend)"),
        (["--frames", "1-2", "--export", "chan"], "setting export (--export)"),
        (["--frames", "4", "--shot-frames", "5"], "setting shot_frames (--shot-frames)"),
        (["--frames", "one"], "setting frames (--frames)"),
        (["--package-out", "x", "--package", "p"], "setting package_out (--package-out)"),
    ],
)
def test_farm_settings_are_refused_before_any_work(tmp_path, args, named):
    out = tmp_path / "out"
    run = _batch("a.png", "--out", str(out), *args)
    assert run.returncode == 2, run.stdout + run.stderr
    assert named in run.stdout, run.stdout
    assert not out.exists()
