"""``python -m core batch``: photos converted and rendered in chunks as farm items, serially and on a local Ray
cluster, with records that make re-runs idempotent, one ``done`` per item however often its worker dies, and a
clear error when Ray is missing. Tiny photos (160 px) with synthetic depth; renders at PREVIEW, 1 sample."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
STEMS = ("astronaut", "coffee", "chelsea")
CONVERT = ["--segment", "none", "--work-size", "160"]
RENDER = ["--render", "--frames", "4", "--chunk-size", "2", "--quality", "PREVIEW", "--samples", "1",
          "--resolution", "PHOTO"]  # fmt: skip
CHUNKS = ("1-2", "3-4")


def _env(**extra: str) -> dict[str, str]:
    # The render subprocesses keep their shader cache in the checkout's .cache, shared by test runs.
    env = dict(os.environ, XDG_CACHE_HOME=str(ROOT / ".cache"))
    env.pop("PHOTO3D_BATCH_TEST_DELAY", None)
    return {**env, **extra}


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "core", "batch", *args]


def _batch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(_command(*args), capture_output=True, text=True, timeout=300, env=env or _env(), cwd=ROOT)


def _events(stdout: str) -> list[dict]:
    prefix = "photo3d-progress "
    return [json.loads(line[len(prefix) :]) for line in stdout.splitlines() if line.startswith(prefix)]


def _done_lines(out: Path, name: str) -> int:
    """How often the driver declared item ``name`` done in its log (the Blender batch's own lines start '|')."""
    text = (out / "items" / f"{name}.log").read_text()
    return len(re.findall(rf"^\S+ {re.escape(name)}: done in ", text, flags=re.MULTILINE))


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def _layers(out: Path, stem: str) -> int:
    return len(json.loads((out / stem / "package" / "manifest.json").read_text())["layers"])


def _frames(out: Path, stem: str) -> list[str]:
    return sorted(p.name for p in (out / stem / f"{stem}_frames").iterdir())


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Three photos of skimage.data, 160 px wide, each with a depth map of its own (a slope and a nearer box,
    so there are several layers), and a broken JPEG."""
    import skimage.data

    folder = tmp_path_factory.mktemp("photos")
    (folder / "depth").mkdir()
    for stem in STEMS:
        image = Image.fromarray(getattr(skimage.data, stem)()).convert("RGB")
        width, height = 160, round(image.height * 160 / image.width)
        image.resize((width, height), Image.Resampling.LANCZOS).save(folder / f"{stem}.png")
        rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
        depth = np.repeat(8.0 - 5.0 * rows, width, axis=1)
        depth[height // 4 : height // 2, width // 3 : 2 * width // 3] = 1.5
        np.save(folder / "depth" / f"{stem}.npy", depth.astype(np.float32))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def _photos(photos: Path, *stems: str) -> list[str]:
    return [str(photos / f"{stem}.png") for stem in stems or STEMS]


@pytest.fixture(scope="module")
def serial(photos, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("serial")
    run = _batch(*_photos(photos), "--out", str(out), "--depth", str(photos / "depth"), *CONVERT, *RENDER,
                 "--progress", "json")  # fmt: skip
    return out, run


def test_ray_is_installed():
    """The dev set-up installs Ray (requirements/ray.txt): without it the Ray tests fail here, not skip."""
    import ray

    assert ray.__version__ == "2.52.1"


def test_serial_batch_converts_and_renders_with_records_logs_and_summary(serial):
    out, run = serial
    assert run.returncode == 0, run.stdout + run.stderr
    names = [name for stem in STEMS for name in (stem, *(f"{stem}@{chunk}" for chunk in CHUNKS))]
    for stem in STEMS:
        assert (out / stem / "package" / "manifest.json").is_file()
        assert _frames(out, stem) == [f"{stem}_{frame:04d}.png" for frame in range(1, 5)]
        # The chunk processes' own records, read to know a chunk is done.
        assert sorted(p.name for p in (out / stem / "items").glob("*.json")) == [f"{stem}@{c}.json" for c in CHUNKS]
    for name in names:
        record = json.loads((out / "items" / f"{name}.json").read_text())
        assert record["name"] == name and all((out / output).exists() for output in record["outputs"])
        assert _done_lines(out, name) == 1, name
    record = json.loads((out / "items" / "coffee@3-4.json").read_text())
    assert record["outputs"] == ["coffee/coffee_frames/coffee_0003.png", "coffee/coffee_frames/coffee_0004.png"]
    assert record["versions"]["blender"].startswith("bpy ")
    summary = _summary(out)
    assert summary["exit_code"] == 0 and summary["mode"] == "serial"
    assert summary["counts"] == {"done": 9, "skipped": 0, "failed": 0}
    assert [entry["name"] for entry in summary["done"]] == names  # in the photos' order, chunks after each
    assert all(Path(entry["log"]).is_file() and entry["failure"] == "ok" for entry in summary["done"])
    events = _events(run.stdout)
    assert sorted(e["item"] for e in events if e["event"] == "done") == sorted(names)
    assert sorted(e["item"] for e in events if e["event"] == "start") == sorted(names)
    assert [e["frame"] for e in events if e["event"] == "frame" and e["item"] == "chelsea@3-4"] == [3, 4]
    assert [e for e in events if e["event"] == "summary"][0]["done"] == 9


def test_a_local_ray_cluster_makes_the_same_packages_and_frames(serial, photos, tmp_path):
    serial_out, serial_run = serial
    assert serial_run.returncode == 0, serial_run.stdout + serial_run.stderr
    out = tmp_path / "ray"
    run = _batch(*_photos(photos), "--out", str(out), "--depth", str(photos / "depth"), *CONVERT, *RENDER,
                 "--ray", "--workers", "2")  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ray: 2 conversion workers" in run.stdout
    for stem in STEMS:
        assert _layers(out, stem) == _layers(serial_out, stem) > 1
        assert _frames(out, stem) == _frames(serial_out, stem)
        for name in (stem, *(f"{stem}@{chunk}" for chunk in CHUNKS)):
            assert (out / "items" / f"{name}.json").is_file() and _done_lines(out, name) == 1, name
    summary = _summary(out)
    assert summary["mode"] == "ray" and summary["counts"] == {"done": 9, "skipped": 0, "failed": 0}


def _wait_for(predicate, timeout: float, what: str, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.2)
    output = process.communicate(timeout=60)[0] if process is not None else ""
    raise AssertionError(f"timed out waiting for {what}\n{output}")


def _attempt_pid(log: Path, attempt: int) -> int | None:
    text = log.read_text() if log.is_file() else ""
    found = re.search(rf": attempt {attempt} in \S+ pid (\d+)", text)
    return int(found.group(1)) if found else None


def test_a_killed_conversion_worker_s_item_is_done_once_by_another(photos, tmp_path):
    """The first conversion's actor is killed mid-item (the test hook holds it first): its item goes to another
    actor, and every item ends with one record and one 'done'."""
    out = tmp_path / "killed"
    process = subprocess.Popen(
        _command(*_photos(photos), "--out", str(out), "--depth", str(photos / "depth"), *CONVERT, "--ray",
                 "--workers", "2", "--progress", "json"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
        env=_env(PHOTO3D_BATCH_TEST_DELAY="astronaut=120"),
    )  # fmt: skip
    try:
        log = out / "items" / "astronaut.log"
        pid = _wait_for(lambda: _attempt_pid(log, 1), 120, "the first attempt's process", process)
        assert pid != process.pid  # an actor's worker, not the driver
        os.kill(pid, signal.SIGKILL)
        output = process.communicate(timeout=240)[0]
    finally:
        process.kill()
    assert process.returncode == 0, output
    text = log.read_text()
    assert _attempt_pid(log, 2) not in (None, pid)
    assert text.count("converted,") == 1 and "attempt 1 lost" in text
    for stem in STEMS:
        assert _done_lines(out, stem) == 1, stem
        assert (out / "items" / f"{stem}.json").is_file() and (out / stem / "package" / "manifest.json").is_file()
    assert json.loads((out / "items" / "astronaut.json").read_text())["extra"]["attempt"] == 2
    summary = _summary(out)
    assert summary["counts"] == {"done": 3, "skipped": 0, "failed": 0}
    assert {entry["name"]: entry["attempts"] for entry in summary["done"]} == {
        "astronaut": 2,
        "coffee": 1,
        "chelsea": 1,
    }
    assert [e["item"] for e in _events(output) if e["event"] == "done"].count("astronaut") == 1


def test_resume_after_a_killed_run_redoes_only_the_missing_items(photos, tmp_path):
    """The driver is killed (SIGKILL) once the first photo's record exists, while the second one converts:
    --resume skips the first and does the others; a changed setting (--layers) redoes all of them."""
    out = tmp_path / "resume"
    args = [*_photos(photos), "--out", str(out), "--depth", str(photos / "depth"), *CONVERT]
    process = subprocess.Popen(_command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=ROOT, env=_env(PHOTO3D_BATCH_TEST_DELAY="coffee=120"))  # fmt: skip
    try:
        _wait_for(lambda: (out / "items" / "astronaut.json").is_file(), 120, "the first record", process)
        _wait_for(lambda: _attempt_pid(out / "items" / "coffee.log", 1), 60, "the second item", process)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    finally:
        process.kill()
    first = (out / "items" / "astronaut.json").read_text()
    assert not (out / "items" / "coffee.json").exists() and not (out / "summary.json").exists()

    run = _batch(*args, "--resume", "--progress", "json")
    assert run.returncode == 0, run.stdout + run.stderr
    events = _events(run.stdout)
    assert [e["item"] for e in events if e["event"] == "skipped"] == ["astronaut"]
    assert [e["item"] for e in events if e["event"] == "done"] == ["coffee", "chelsea"]
    assert (out / "items" / "astronaut.json").read_text() == first  # not redone
    assert _summary(out)["counts"] == {"done": 2, "skipped": 1, "failed": 0}

    run = _batch(*args, "--resume", "--layers", "2", "--progress", "json")
    assert run.returncode == 0, run.stdout + run.stderr
    events = _events(run.stdout)
    assert [e["item"] for e in events if e["event"] == "done"] == list(STEMS)
    assert not [e for e in events if e["event"] == "skipped"]
    assert all(_layers(out, stem) <= 2 for stem in STEMS)
    assert all(_done_lines(out, stem) == 2 for stem in STEMS)  # once in the first run or the resumed one


def test_a_bad_photo_fails_only_its_item_as_permanent(photos, tmp_path):
    out = tmp_path / "bad"
    run = _batch(str(photos / "broken.jpg"), *_photos(photos, "coffee"), str(photos / "missing.png"), "--out",
                 str(out), "--depth", str(photos / "depth"), *CONVERT, "--progress", "json")  # fmt: skip
    assert run.returncode == 2, run.stdout + run.stderr  # every failure is permanent: the first one's code
    summary = _summary(out)
    assert summary["exit_code"] == 2 and summary["counts"] == {"done": 1, "skipped": 0, "failed": 2}
    assert [entry["name"] for entry in summary["done"]] == ["coffee"]
    failed = {entry["name"]: entry for entry in summary["failed"]}
    assert set(failed) == {"broken", "missing"}
    for entry in failed.values():
        assert (entry["exit_code"], entry["failure"], entry["status"]) == (2, "permanent", "failed")
        assert "FAILED (exit 2, permanent)" in Path(entry["log"]).read_text()
    assert not (out / "items" / "broken.json").exists() and not (out / "broken").exists()
    failures = [e for e in _events(run.stdout) if e["event"] == "failed"]
    assert sorted(e["item"] for e in failures) == ["broken", "missing"]
    assert all(e["exit_code"] == 2 and e["failure"] == "permanent" for e in failures)


def test_ray_missing_is_a_clear_error_not_a_traceback(photos, tmp_path):
    """``--ray`` where ``import ray`` fails: exit 2 with the install line, before anything is written."""
    fake = tmp_path / "no_ray"
    (fake / "ray").mkdir(parents=True)
    (fake / "ray" / "__init__.py").write_text('raise ModuleNotFoundError("No module named \'ray\'", name="ray")\n')
    out = tmp_path / "out"
    run = _batch(*_photos(photos, "coffee"), "--out", str(out), "--ray", env=_env(PYTHONPATH=str(fake)))
    assert run.returncode == 2, run.stdout + run.stderr
    assert "pip install ray==2.52.1" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    assert not out.exists()


def test_the_blender_batch_hands_photos_to_ray_with_its_look(photos, tmp_path):
    """``photo3d PHOTO ... --ray``: the Blender batch gives the job to ``python -m core batch --ray`` with its
    conversion options and its look (``--path NONE`` here: every frame of a photo is the same picture; with the
    default camera path they differ), and returns its exit code."""
    out = tmp_path / "out"
    stems = STEMS[:2]
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "photo3d_batch.py"), *[str(photos / f"{s}.png") for s in stems],
         "--out", str(out), "--depth", str(photos / "depth"), "--no-segmentation", "--frames", "3",
         "--chunk-size", "3", "--quality", "PREVIEW", "--samples", "1", "--resolution", "PHOTO", "--path", "NONE",
         "--ray"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=_env(PHOTO3D_WORKER_PYTHON=sys.executable),
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "handing 2 photos to the distributed batch" in run.stdout
    for stem in stems:
        assert _frames(out, stem) == [f"{stem}_{n:04d}.png" for n in (1, 2, 3)]
        first, _, last = (np.asarray(Image.open(out / stem / f"{stem}_frames" / name)) for name in _frames(out, stem))
        assert np.array_equal(first, last), stem  # the look's camera path (NONE) reached the render chunks
    assert json.loads((out / "ray" / "look.json").read_text())["path"] == "NONE"
    assert _summary(out)["exit_code"] == 0 and not _summary(out)["failed"]
