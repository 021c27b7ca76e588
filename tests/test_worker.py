"""The worker driven as a subprocess, exactly as the Blender add-on drives it."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.progress import STAGES
from tests.scenes import square_scene

ROOT = Path(__file__).resolve().parents[1]


class WorkerProcess:
    def __init__(self, *python_args: str):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, *python_args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        self.events: queue.Queue = queue.Queue()
        self.raw_lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.raw_lines.append(line)
            self.events.put(json.loads(line))  # every stdout line must be JSON
        self.events.put(None)

    def send(self, **request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def send_raw(self, text: str):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def next(self, timeout=60.0):
        event = self.events.get(timeout=timeout)
        assert event is not None, "worker closed stdout"
        return event

    def until(self, predicate, timeout=120.0):
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(0.1, deadline - time.monotonic()))
            seen.append(event)
            if predicate(event):
                return seen

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send(type="shutdown")
                self.proc.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
        self.proc.stdin.close()
        self.proc.stderr.close()


@pytest.fixture
def worker():
    process = WorkerProcess("-m", "core", "worker")
    assert process.next()["type"] == "ready"
    yield process
    process.close()


def _job(tmp_path, name="job", size=(96, 128), **options):
    scene = square_scene(*size)
    image, depth = scene.write(tmp_path / f"in_{name}")
    opts = {
        "depth": {"depth_file": str(depth)},
        "segment": {"model": "none"},
        "inpaint": {"method": "telea"},
    }
    opts.update(options)
    return {
        "type": "convert",
        "id": name,
        "image": str(image),
        "output": str(tmp_path / f"out_{name}"),
        "options": opts,
    }


def test_convert_reports_progress_in_order_then_done(worker, tmp_path):
    worker.send(**_job(tmp_path, "a"))
    events = worker.until(lambda e: e["type"] in ("done", "error"))
    assert events[0]["type"] == "accepted"
    assert events[-1]["type"] == "done", events[-1]
    progress = [e for e in events if e["type"] == "progress"]
    stages = list(dict.fromkeys(e["stage"] for e in progress))
    assert stages == list(STAGES)
    overall = [e["overall"] for e in progress]
    assert overall == sorted(overall) and overall[-1] == pytest.approx(1.0)
    assert Path(events[-1]["package"], "manifest.json").is_file()
    assert set(events[-1]["timings"]) == set(STAGES)
    # Models stay loaded and the worker serves a second job.
    worker.send(**_job(tmp_path, "b"))
    assert worker.until(lambda e: e["type"] in ("done", "error"))[-1]["type"] == "done"


def test_cancel_within_a_second_leaves_nothing(worker, tmp_path):
    # A bigger photo so the job is still running when the cancel arrives.
    job = _job(tmp_path, "slow", size=(720, 1280), load={"work_size": 1280})
    worker.send(**job)
    worker.until(lambda e: e["type"] == "progress" and e["stage"] == "segment")
    sent = time.monotonic()
    worker.send(type="cancel", id="slow")
    events = worker.until(lambda e: e["type"] in ("done", "error"))
    assert time.monotonic() - sent < 1.0
    assert events[-1]["type"] == "error" and events[-1]["code"] == "cancelled"
    assert not Path(job["output"]).exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    worker.send(type="ping", id="after")
    assert worker.until(lambda e: e["type"] == "pong")[-1]["id"] == "after"


def test_bad_requests_are_reported_and_worker_goes_on(worker, tmp_path):
    worker.send_raw("{not json")
    assert worker.next()["code"] == "bad_request"
    worker.send(type="explode")
    assert "unknown request type" in worker.next()["message"]
    worker.send(type="convert", id="x")
    assert "image" in worker.next()["message"]
    worker.send(type="cancel", id="nobody")
    assert worker.next()["code"] == "bad_request"
    job = _job(tmp_path, "badopt", layers={"max_layers": "many"})
    worker.send(**job)
    events = worker.until(lambda e: e["type"] == "error")
    assert events[-1]["code"] == "bad_input" and "layers.max_layers" in events[-1]["message"]
    missing = _job(tmp_path, "missing")
    missing["image"] = str(tmp_path / "nope.jpg")
    worker.send(**missing)
    event = worker.until(lambda e: e["type"] == "error")[-1]
    assert event["code"] == "bad_input" and "nope.jpg" in event["message"]
    worker.send(type="ping", id="still")
    assert worker.until(lambda e: e["type"] == "pong")[-1]["id"] == "still"


def test_crash_in_a_job_is_reported_and_next_job_runs(tmp_path):
    # Same worker, with the harmonize stage made to crash on its first call only.
    boot = (
        "import core.pipeline as p\n"
        "real = p.harmonize_depth\n"
        "calls = []\n"
        "def flaky(*a, **k):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 1:\n"
        "        raise ZeroDivisionError('boom')\n"
        "    return real(*a, **k)\n"
        "p.harmonize_depth = flaky\n"
        "from core.worker import serve\n"
        "raise SystemExit(serve())\n"
    )
    process = WorkerProcess("-c", boot)
    try:
        assert process.next()["type"] == "ready"
        process.send(**_job(tmp_path, "crash"))
        event = process.until(lambda e: e["type"] in ("done", "error"))[-1]
        assert event["code"] == "internal" and "ZeroDivisionError: boom" in event["message"]
        assert not Path(tmp_path / "out_crash").exists()
        process.send(**_job(tmp_path, "next"))
        assert process.until(lambda e: e["type"] in ("done", "error"))[-1]["type"] == "done"
    finally:
        process.close()


def test_stray_prints_never_reach_the_protocol_stream(tmp_path):
    boot = (
        "import core.pipeline as p\n"
        "real = p.build_layers\n"
        "def noisy(*a, **k):\n"
        "    print('library chatter')\n"
        "    import os; os.write(1, b'C-level chatter\\n')\n"
        "    return real(*a, **k)\n"
        "p.build_layers = noisy\n"
        "from core.worker import serve\n"
        "raise SystemExit(serve())\n"
    )
    process = WorkerProcess("-c", boot)
    try:
        process.next()
        process.send(**_job(tmp_path, "noisy"))
        assert process.until(lambda e: e["type"] in ("done", "error"))[-1]["type"] == "done"
        process.close()
        assert all(json.loads(line) for line in process.raw_lines)
        assert "chatter" not in "".join(process.raw_lines)
    finally:
        if process.proc.poll() is None:
            process.proc.kill()


def test_shutdown_says_bye(worker):
    worker.send(type="shutdown")
    assert worker.next()["type"] == "bye"
    assert worker.proc.wait(timeout=10) == 0


def test_the_worker_converts_footage_into_a_video_package(worker, tmp_path):
    """A folder of frames (with a folder of depth files) is footage: the worker answers with a video package."""
    from core.video.package import read_video_package
    from tests.test_video_convert import _clip

    images, depths = _clip(tmp_path / "in", frames=4)
    request = _job(tmp_path, "video")
    request.update(image=str(images), output=str(tmp_path / "out_video"))
    request["options"]["depth"] = {"depth_file": str(depths)}
    worker.send(**request)
    events = worker.until(lambda e: e["type"] in ("done", "error"))
    done = events[-1]
    assert done["type"] == "done" and done["kind"] == "video" and done["layers"] == 2, done
    overall = [e["overall"] for e in events if e["type"] == "progress" and e["stage"] == "video"]
    assert overall == sorted(overall) and overall[-1] == pytest.approx(1.0)
    assert len(read_video_package(done["package"]).manifest.frames) == 4
