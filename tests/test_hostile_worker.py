"""The worker under hostile input and abrupt endings: no request line kills it, and every way of stopping it
(closed stdin, ``shutdown``, SIGTERM, SIGHUP) cancels its jobs with an event each, then says ``bye``."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.worker import MAX_LINE_BYTES
from tests.scenes import square_scene

ROOT = Path(__file__).resolve().parents[1]

# Boot code that slows the package writer down: the job then sits in the package stage, with its
# temporary folder on disk, long enough for a test to stop the worker there.
SLOW_PACKAGE = (
    "import time\n"
    "import core.pipeline as p\n"
    "real = p.save_mesh_file\n"
    "def slow(*a, **k):\n"
    "    time.sleep(1.5)\n"
    "    return real(*a, **k)\n"
    "p.save_mesh_file = slow\n"
    "from core.worker import serve\n"
    "raise SystemExit(serve())\n"
)


class Worker:
    """A worker subprocess spoken to in bytes, so tests can send what no well-behaved client would."""

    def __init__(self, *python_args: str):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, *(python_args or ("-m", "core", "worker"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        self.events: queue.Queue = queue.Queue()
        self.raw_lines: list[bytes] = []
        self.stderr = b""
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        ready = self.next()
        assert ready["type"] == "ready", ready

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.raw_lines.append(line)
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.events.put({"type": "NOT JSON", "line": line[:200]})
        self.events.put(None)

    def _drain_stderr(self) -> None:
        self.stderr = self.proc.stderr.read()

    def send_bytes(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, **request) -> None:
        self.send_bytes(json.dumps(request).encode() + b"\n")

    def next(self, timeout: float = 30.0) -> dict:
        event = self.events.get(timeout=timeout)
        assert event is not None, f"worker closed stdout; stderr:\n{self.stderr.decode(errors='replace')[-2000:]}"
        assert event["type"] != "NOT JSON", event
        return event

    def until(self, predicate, timeout: float = 60.0) -> list[dict]:
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(0.1, deadline - time.monotonic()))
            seen.append(event)
            if predicate(event):
                return seen

    def rest(self, timeout: float = 30.0) -> list[dict]:
        """Every event until the worker closes stdout."""
        seen = []
        deadline = time.monotonic() + timeout
        while (event := self.events.get(timeout=max(0.1, deadline - time.monotonic()))) is not None:
            seen.append(event)
        return seen

    def ping(self, tag: str = "alive") -> None:
        """The worker still answers, in order: nothing else is pending."""
        self.send(type="ping", id=tag)
        assert self.next() == {"type": "pong", "id": tag}

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send(type="shutdown")
                self.proc.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(BrokenPipeError):
                stream.close()


@pytest.fixture
def worker():
    process = Worker()
    yield process
    process.close()


def _job(tmp_path: Path, name: str, size: tuple[int, int] = (96, 128), **options) -> dict:
    image, depth = square_scene(*size).write(tmp_path / f"in_{name}")
    opts = {"depth": {"depth_file": str(depth)}, "segment": {"model": "none"}, "inpaint": {"method": "telea"}}
    opts.update(options)
    output = str(tmp_path / f"out_{name}")
    return {"type": "convert", "id": name, "image": str(image), "output": output, "options": opts}


def _leftovers(tmp_path: Path) -> list[str]:
    """Everything next to the outputs that is not an input folder: temporary folders, half packages."""
    return sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("in_"))


# -- failure 1: request lines that used to kill the worker ------------------------------------------------
DEEP = "[" * 100_000 + "]" * 100_000
HOSTILE_LINES = {
    "nan id": b'{"type": "ping", "id": NaN}',
    "infinite id": b'{"type": "convert", "id": Infinity, "image": "a.png", "output": "out"}',
    "negative infinite id": b'{"type": "cancel", "id": -Infinity}',
    "dict id": b'{"type": "cancel", "id": {"a": 1}}',
    "list id": b'{"type": "convert", "id": [1], "image": "a.png", "output": "out"}',
    "bool id": b'{"type": "ping", "id": true}',
    "float id": b'{"type": "ping", "id": 1.5}',
    "huge int id": b'{"type": "ping", "id": 123456789012345678901234567890}',
    "int id out of 64 bits": b'{"type": "ping", "id": 9999999999999999999}',
    "long string id": b'{"type": "ping", "id": "' + b"x" * 10_000 + b'"}',
    "empty string id": b'{"type": "ping", "id": ""}',
    "1e400": b'{"type": "ping", "id": 1e400}',
    "nested 100000 deep": DEEP.encode(),
    "request nested 100000 deep": b'{"type": "ping", "id": "deep", "x": ' + DEEP.encode() + b"}",
    "id nested 100000 deep": b'{"type": "ping", "id": ' + DEEP.encode() + b"}",
    "duplicate keys": b'{"type": "ping", "id": "a", "id": "b"}',
    "unpaired surrogate": b'{"type": "ping", "id": "\\ud800"}',
    "invalid utf-8": b'{"type": "ping", "id": "\xff\xfe"}',
    "not an object": b'["type", "ping"]',
    "a string": b'"ping"',
    "null": b"null",
    "not json": b"{not json",
    "nul byte": b'{"type": "ping", "id": "a"}\x00',
}


@pytest.mark.parametrize("line", HOSTILE_LINES.values(), ids=HOSTILE_LINES.keys())
def test_hostile_line_is_refused_and_worker_goes_on(worker, line):
    worker.send_bytes(line + b"\n")
    event = worker.next()
    assert event["type"] == "error" and event["code"] == "bad_request", event
    assert event["id"] is None
    worker.ping()


def test_queued_jobs_survive_a_barrage_of_hostile_lines(worker, tmp_path):
    worker.send(**_job(tmp_path, "a"))
    worker.send(**_job(tmp_path, "b"))
    for line in HOSTILE_LINES.values():
        worker.send_bytes(line + b"\n")
    events = worker.until(lambda e: e["type"] == "done" and e["id"] == "b")
    refused = [e for e in events if e["type"] == "error"]
    assert len(refused) == len(HOSTILE_LINES) and all(e["code"] == "bad_request" for e in refused)
    assert [e["id"] for e in events if e["type"] == "done"] == ["a", "b"]
    worker.ping()


def test_good_ids_are_echoed(worker):
    for job_id in ("abc", 0, -(2**63) + 1, 2**63 - 1, "x" * 200, "ünïcode ✓"):
        worker.send(type="ping", id=job_id)
        assert worker.next() == {"type": "pong", "id": job_id}
    worker.send(type="ping")
    assert worker.next() == {"type": "pong", "id": None}


# -- failures 1 and 2: every field is checked before a job is queued -------------------------------------
BAD_FIELDS = {
    "type not a string": ({"type": ["convert"]}, "type"),
    "type a number": ({"type": 1}, "type"),
    "image a number": ({"image": 1}, "image"),
    "image null": ({"image": None}, "image"),
    "image empty": ({"image": ""}, "image"),
    "image with NUL": ({"image": "a\x00.png"}, "image"),
    "output an object": ({"output": {"path": "x"}}, "output"),
    "output with NUL": ({"output": "out\x00"}, "output"),
    "options a list": ({"options": [1, 2]}, "options"),
    "options a string": ({"options": "fast"}, "options"),
    "options a number": ({"options": 3}, "options"),
    "options true": ({"options": True}, "options"),
    "unknown field": ({"priority": 9}, "priority"),
}


@pytest.mark.parametrize(("change", "named"), BAD_FIELDS.values(), ids=BAD_FIELDS.keys())
def test_bad_field_is_refused_before_queueing(worker, tmp_path, change, named):
    job = _job(tmp_path, "j")
    job.update(change)
    worker.send(**job)
    event = worker.next()
    assert event["type"] == "error" and event["code"] == "bad_request", event
    assert event["id"] == "j" and named in event["message"]
    # Nothing was queued and the id was not taken: the same id is accepted next.
    worker.ping()
    good = _job(tmp_path, "j")
    worker.send(**good)
    assert worker.next()["type"] == "accepted"
    assert worker.until(lambda e: e["type"] in ("done", "error"))[-1]["type"] == "done"


def test_option_values_that_fail_validation_are_bad_input(worker, tmp_path):
    for options, named in (({"layers": {"max_layers": "many"}}, "layers.max_layers"), ({"nope": {}}, "nope")):
        job = _job(tmp_path, "opt")
        job["options"] = options
        worker.send(**job)
        events = worker.until(lambda e: e["type"] == "error")
        assert events[0]["type"] == "accepted"
        assert events[-1]["code"] == "bad_input" and named in events[-1]["message"], events[-1]


def test_absent_or_null_options_mean_defaults(worker, tmp_path):
    job = _job(tmp_path, "none")
    job["options"] = None
    worker.send(**job)
    assert worker.next()["type"] == "accepted"
    worker.ping()
    worker.send(type="cancel", id="none")
    # Defaults need model weights this test run does not have; either way the job ends with one event.
    assert worker.until(lambda e: e["type"] in ("done", "error"))[-1]["id"] == "none"


# -- failure 3: bounded line length -----------------------------------------------------------------------
def test_over_long_line_is_refused_naming_the_limit(worker):
    worker.send_bytes(b'{"type": "ping", "id": "' + b"x" * (2 * MAX_LINE_BYTES) + b'"}\n')
    event = worker.next()
    assert event["type"] == "error" and event["code"] == "bad_request" and event["id"] is None
    assert str(MAX_LINE_BYTES) in event["message"]
    worker.ping()
    # A line of exactly the limit is still read (padding is JSON whitespace).
    head = b'{"type": "ping", "id": "edge"'
    worker.send_bytes(head + b" " * (MAX_LINE_BYTES - len(head) - 1) + b"}\n")
    assert worker.next() == {"type": "pong", "id": "edge"}
    head = b'{"type": "ping", "id": "over"'
    worker.send_bytes(head + b" " * (MAX_LINE_BYTES - len(head)) + b"}\n")
    assert worker.next()["code"] == "bad_request"
    worker.ping()


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="peak memory is read from /proc")
def test_over_long_line_is_not_held_in_memory(worker):
    def peak_kib() -> int:
        status = Path(f"/proc/{worker.proc.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])

    worker.ping("before")
    before = peak_kib()
    worker.send_bytes(b'{"type": "ping", "id": "')
    block = b"y" * (1 << 20)
    for _ in range(96):
        worker.send_bytes(block)
    worker.send_bytes(b'"}\n')
    assert worker.next()["code"] == "bad_request"
    worker.ping("after")
    grown_mib = (peak_kib() - before) / 1024
    assert grown_mib < 24, f"a 96 MiB line raised peak memory by {grown_mib:.0f} MiB"


# -- failure 4: closed stdin, shutdown and signals cancel every job, then bye ------------------------------
def _stop_by(worker: Worker, how: str) -> None:
    if how == "closed stdin":
        worker.proc.stdin.close()
    elif how == "shutdown":
        worker.send(type="shutdown")
    else:
        worker.proc.send_signal(getattr(signal, how))


STOPS = {
    "closed stdin": 0,
    "shutdown": 0,
    "SIGTERM": 128 + signal.SIGTERM,
    **({"SIGHUP": 128 + signal.SIGHUP} if hasattr(signal, "SIGHUP") else {}),
}


@pytest.mark.parametrize(("how", "exit_code"), STOPS.items(), ids=STOPS.keys())
def test_stopping_mid_package_cancels_every_job_and_leaves_nothing(tmp_path, how, exit_code):
    worker = Worker("-c", SLOW_PACKAGE)
    try:
        worker.send(**_job(tmp_path, "running"))
        worker.send(**_job(tmp_path, "queued"))
        worker.until(lambda e: e["type"] == "progress" and e["stage"] == "package" and e["message"] == "layer 1/2")
        assert [p.name for p in tmp_path.glob(".out_running.*")], "the package is being written"
        started = time.monotonic()
        _stop_by(worker, how)
        events = worker.rest()
        assert worker.proc.wait(timeout=30) == exit_code
    finally:
        worker.close()
    assert time.monotonic() - started < 15
    ends = [e for e in events if e["type"] in ("done", "error")]
    assert sorted((e["id"], e["type"], e["code"]) for e in ends) == [
        ("queued", "error", "cancelled"),
        ("running", "error", "cancelled"),
    ], events
    assert events[-1] == {"type": "bye"}
    assert _leftovers(tmp_path) == []


def test_sigterm_cancels_a_real_conversion(tmp_path):
    # The real entry point and an unpatched pipeline, stopped in its longest stage.
    worker = Worker("-m", "core", "worker")
    try:
        job = _job(tmp_path, "big", size=(720, 1280), load={"work_size": 1280})
        worker.send(**job)
        worker.until(lambda e: e["type"] == "progress" and e["stage"] == "segment")
        worker.proc.send_signal(signal.SIGTERM)
        events = worker.rest()
        assert worker.proc.wait(timeout=30) == 143
    finally:
        worker.close()
    assert [e for e in events if e["type"] == "error"][-1]["code"] == "cancelled"
    assert not [e for e in events if e["type"] == "done"]
    assert events[-1] == {"type": "bye"}
    assert _leftovers(tmp_path) == []
    assert all(json.loads(line) for line in worker.raw_lines)


def test_closed_stdin_when_idle_says_bye_at_once(worker):
    worker.proc.stdin.close()
    assert worker.rest(timeout=10) == [{"type": "bye"}]
    assert worker.proc.wait(timeout=10) == 0


# -- what already worked: stdout stays JSON, and a crash in one job is reported --------------------------
def test_noisy_crashing_job_is_internal_and_next_job_runs(tmp_path):
    # The first job prints (Python and C level) and then exits the interpreter from inside the pipeline,
    # the second raises an ordinary exception: both are ``internal``, and the third job runs.
    boot = (
        "import os\n"
        "import core.pipeline as p\n"
        "real = p.harmonize_depth\n"
        "calls = []\n"
        "def flaky(*a, **k):\n"
        "    calls.append(1)\n"
        "    print('library chatter')\n"
        "    os.write(1, b'C-level chatter\\n')\n"
        "    if len(calls) == 1:\n"
        "        raise SystemExit(3)\n"
        "    if len(calls) == 2:\n"
        "        raise ZeroDivisionError('boom')\n"
        "    return real(*a, **k)\n"
        "p.harmonize_depth = flaky\n"
        "from core.worker import serve\n"
        "raise SystemExit(serve())\n"
    )
    worker = Worker("-c", boot)
    try:
        for name in ("exits", "crashes", "works"):
            worker.send(**_job(tmp_path, name))
        ends = {}
        while len(ends) < 3:
            event = worker.until(lambda e: e["type"] in ("done", "error"), timeout=30)[-1]
            ends[event["id"]] = event
        assert ends["exits"]["code"] == "internal" and "SystemExit" in ends["exits"]["message"]
        assert ends["crashes"]["code"] == "internal" and "ZeroDivisionError: boom" in ends["crashes"]["message"]
        assert ends["works"]["type"] == "done"
        worker.ping()
        worker.close()
        assert worker.proc.returncode == 0
    finally:
        worker.close()
    assert all(json.loads(line) for line in worker.raw_lines)
    assert b"chatter" not in b"".join(worker.raw_lines)
    assert _leftovers(tmp_path) == ["out_works"]
