"""``python -m core worker``: JSON-lines requests on stdin, JSON-lines events on stdout.

Requests: ``{"type": "convert", "id", "image", "output", "options"}``, ``{"type": "cancel", "id"}``,
``{"type": "ping"}``, ``{"type": "shutdown"}``. Events: ``ready``, ``progress`` (stage, fraction, overall),
``log``, ``done`` (package path, timings), ``error`` (code, message), ``pong``, ``bye``.

Only protocol events reach stdout: the process's own stdout is pointed at stderr at start-up, so prints
from libraries (or C code) cannot corrupt the stream. Jobs run one at a time on a thread while the main
thread keeps reading, so a cancel arrives while a job runs; models stay loaded between jobs.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
import traceback
from typing import IO, Any

from . import __version__
from .errors import Cancelled, Photo3DError
from .models import ModelCache
from .options import PipelineOptions
from .progress import STAGES, CancelToken, Progress

PROTOCOL_VERSION = 1
# Rough share of a job each stage takes, for the overall fraction a UI shows.
_STAGE_WEIGHTS = {
    "load": 0.05,
    "depth": 0.25,
    "segment": 0.25,
    "harmonize": 0.05,
    "layers": 0.02,
    "inpaint": 0.2,
    "geometry": 0.1,
    "package": 0.08,
}
_STAGE_START = {stage: sum(_STAGE_WEIGHTS[s] for s in STAGES[: STAGES.index(stage)]) for stage in STAGES}

log = logging.getLogger("photo3d.worker")


class EventWriter:
    """Writes one JSON object per line to the protocol stream, from any thread."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.lock = threading.Lock()

    def __call__(self, event_type: str, **fields: Any) -> None:
        line = json.dumps({"type": event_type, **fields}, allow_nan=False, default=str)
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()


class Worker:
    def __init__(self, emit: EventWriter):
        self.emit = emit
        self.cache = ModelCache()
        self.jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.tokens: dict[str, CancelToken] = {}
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run_jobs, name="photo3d-jobs", daemon=True)

    def handle(self, line: str) -> bool:
        """Handle one request line; returns False when the worker should stop reading."""
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request must be a JSON object")
        except ValueError as exc:
            self.emit("error", id=None, code="bad_request", message=f"invalid JSON request: {exc}")
            return True
        kind, job_id = request.get("type"), request.get("id")
        if kind == "convert":
            missing = [key for key in ("id", "image", "output") if not request.get(key)]
            if missing:
                self.emit("error", id=job_id, code="bad_request", message=f"convert needs {', '.join(missing)}")
                return True
            with self.lock:
                if job_id in self.tokens:
                    self.emit("error", id=job_id, code="bad_request", message=f"job id {job_id!r} is already in use")
                    return True
                self.tokens[job_id] = CancelToken()
            self.emit("accepted", id=job_id, queued=self.jobs.qsize())
            self.jobs.put(request)
        elif kind == "cancel":
            with self.lock:
                token = self.tokens.get(job_id)
            if token is None:
                self.emit("error", id=job_id, code="bad_request", message=f"no running or queued job {job_id!r}")
            else:
                token.cancel()
        elif kind == "ping":
            self.emit("pong", id=job_id)
        elif kind == "shutdown":
            with self.lock:
                for token in self.tokens.values():
                    token.cancel()
            return False
        else:
            self.emit("error", id=job_id, code="bad_request", message=f"unknown request type {kind!r}")
        return True

    def _run_jobs(self) -> None:
        while True:
            request = self.jobs.get()
            if request is None:
                return
            try:
                self._run_one(request)
            finally:
                with self.lock:
                    self.tokens.pop(request["id"], None)

    def _run_one(self, request: dict[str, Any]) -> None:
        from .pipeline import convert_image

        job_id = request["id"]
        with self.lock:
            token = self.tokens[job_id]

        def report(stage: str, fraction: float, message: str) -> None:
            overall = _STAGE_START.get(stage, 0.0) + _STAGE_WEIGHTS.get(stage, 0.0) * fraction
            self.emit(
                "progress",
                id=job_id,
                stage=stage,
                fraction=round(fraction, 4),
                overall=round(overall, 4),
                message=message,
            )

        try:
            token.check()
            options = PipelineOptions.from_dict(request.get("options") or {})
            result = convert_image(request["image"], request["output"], options, Progress(report, token), self.cache)
            self.emit(
                "done",
                id=job_id,
                package=str(result.package_path),
                timings=result.timings,
                layers=len(result.manifest["layers"]),
            )
        except Cancelled:
            self.emit("error", id=job_id, code="cancelled", message="cancelled; nothing was written")
        except Photo3DError as exc:
            self.emit("error", id=job_id, code=exc.code, message=str(exc))
        except MemoryError:
            self.emit("error", id=job_id, code="internal", message="out of memory; try a smaller working size")
        except Exception as exc:  # a crash in one job must be reported, and the worker goes on
            log.error("job %s crashed:\n%s", job_id, traceback.format_exc())
            self.emit("error", id=job_id, code="internal", message=f"internal error: {type(exc).__name__}: {exc}")

    def serve(self, stdin: IO[str]) -> None:
        self.thread.start()
        self.emit("ready", version=__version__, protocol=PROTOCOL_VERSION, pid=os.getpid())
        for line in stdin:
            if line.strip() and not self.handle(line):
                break
        self.jobs.put(None)
        self.thread.join(timeout=30)
        self.emit("bye")


def _protocol_stream() -> IO[str]:
    """Keep a private handle on the real stdout and point fd 1 at stderr for everything else."""
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "w", encoding="utf-8", buffering=1)


def serve() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="photo3d-worker %(levelname)s %(message)s")
    stream = _protocol_stream()
    stdin = open(sys.stdin.fileno(), encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
    Worker(EventWriter(stream)).serve(stdin)
    return 0
