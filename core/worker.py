"""``python -m core worker``: JSON-lines requests on stdin, JSON-lines events on stdout.

Requests: ``{"type": "convert", "id", "image", "output", "options"}``, ``{"type": "cancel", "id"}``,
``{"type": "ping"}``, ``{"type": "shutdown"}``. Events: ``ready``, ``accepted``, ``progress`` (stage, fraction,
overall), ``log``, ``done`` (package path, timings), ``error`` (code, message), ``pong``, ``bye``.

Requests are untrusted: a line is at most ``MAX_LINE_BYTES`` (a longer one is discarded as it streams in),
parsed with ``safe_json`` (no NaN, huge integers, deep nesting, duplicate keys), and every field is checked
before a job is queued. A request that fails any check is answered with ``error`` ``bad_request``, its
``id`` when that id was valid, else ``null``; no request line stops the worker.

Only protocol events reach stdout: the process's own stdout is pointed at stderr at start-up, so prints
from libraries (or C code) cannot corrupt the stream. Jobs run one at a time on a thread while the main
thread keeps reading, so a cancel arrives while a job runs; models stay loaded between jobs.

Stopping: ``shutdown``, a closed stdin, SIGTERM, SIGHUP or SIGINT cancel every running and queued job (an
``error`` ``cancelled`` event each), wait for the running job to reach its next cancellation check (the
package writer removes its staging folder), then say ``bye``. The exit status is 0, or 128 + the signal.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import IO, Any, Protocol

from . import __version__
from .errors import Cancelled, Photo3DError
from .models import ModelCache
from .options import PipelineOptions
from .progress import STAGES, CancelToken, Progress
from .safe_json import JSONRejected, json_kind, parse_json

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 1 << 20
"""Longest request line read (newline excluded); a real request is well under a kilobyte."""
MAX_ID_CHARS = 200
"""Longest string ``id``; the add-on sends 12 hex digits."""
MAX_ID_INT = 2**63 - 1
"""Largest magnitude of an integer ``id``: a signed 64-bit integer, which any client language can hold."""
UNWIND_TIMEOUT_S = 120.0
"""How long a stopping worker waits for the running job to reach its next cancellation check."""

_READ_CHUNK = 1 << 16
_POLL_S = 0.1  # how often the main thread looks at signals while it waits
_INBOX_LINES = 16  # lines read ahead of the main thread: bounds memory to 16 x MAX_LINE_BYTES
_STOP_SIGNALS = ("SIGTERM", "SIGHUP", "SIGINT")
_REQUEST_FIELDS = {
    "convert": frozenset({"type", "id", "image", "output", "options"}),
    "cancel": frozenset({"type", "id"}),
    "ping": frozenset({"type", "id"}),
    "shutdown": frozenset({"type", "id"}),
}
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
_EOF = object()

JobId = str | int

log = logging.getLogger("photo3d.worker")


class BadRequest(ValueError):
    """A request line the worker refuses; ``job_id`` is the request's id when that id itself was valid."""

    def __init__(self, message: str, job_id: JobId | None = None):
        super().__init__(message)
        self.job_id = job_id


def _kind_of(value: Any) -> str:
    """A JSON value's kind in words, never the value itself (it may be megabytes)."""
    return f"a string of {len(value)} characters" if isinstance(value, str) else json_kind(value)


def _valid_id(value: Any) -> bool:
    if isinstance(value, str):
        return 1 <= len(value) <= MAX_ID_CHARS
    # bool is an int in Python, and True would collide with the id 1.
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_ID_INT


def _text_field(request: dict[str, Any], key: str) -> str:
    value = request[key]
    if not isinstance(value, str) or "\x00" in value:
        raise BadRequest(f"{key} must be a string without NUL characters, not {_kind_of(value)}", request["id"])
    return value


def parse_request(line: bytes | str) -> dict[str, Any]:
    """Parse and check one request line; raises ``BadRequest``. The result always has ``id`` (maybe None)."""
    try:
        request = parse_json(line, MAX_LINE_BYTES)
    except JSONRejected as exc:
        raise BadRequest(f"invalid JSON request: {exc}") from None
    if not isinstance(request, dict):
        raise BadRequest(f"a request must be a JSON object, not {_kind_of(request)}")
    job_id = request.setdefault("id", None)
    if job_id is not None and not _valid_id(job_id):
        raise BadRequest(
            f"id must be a string of 1 to {MAX_ID_CHARS} characters or an integer of at most 64 bits,"
            f" not {_kind_of(job_id)}"
        )
    kind = request.get("type")
    if not isinstance(kind, str):
        raise BadRequest(f"type must be a string, not {_kind_of(kind)}", job_id)
    fields = _REQUEST_FIELDS.get(kind)
    if fields is None:
        raise BadRequest(f"unknown request type {kind[:40]!r}; expected one of {', '.join(_REQUEST_FIELDS)}", job_id)
    unknown = sorted(set(request) - fields)
    if unknown:
        names = ", ".join(repr(name[:40]) for name in unknown[:5])
        raise BadRequest(f"a {kind} request has no field {names}", job_id)
    if kind == "convert":
        missing = [key for key in ("id", "image", "output") if request.get(key) in (None, "")]
        if missing:
            raise BadRequest(f"convert needs {', '.join(missing)}", job_id)
        _text_field(request, "image")
        _text_field(request, "output")
        options = request.get("options")
        if options is not None and not isinstance(options, dict):
            raise BadRequest(f"options must be an object, not {_kind_of(options)}", job_id)
    elif kind == "cancel" and job_id is None:
        raise BadRequest("cancel needs id")
    return request


class _Reader(Protocol):
    def read(self, size: int, /) -> bytes | None: ...


def iter_lines(stream: _Reader, limit: int = MAX_LINE_BYTES) -> Iterator[bytes | None]:
    """Lines of at most ``limit`` bytes, newline dropped, until end of file.

    A longer line yields ``None`` as soon as it passes the limit; its remaining bytes are dropped as they
    arrive, so a line of any length costs at most ``limit`` bytes of memory.
    """
    pending = bytearray()
    overflowed = False  # inside an over-long line, already reported
    while chunk := stream.read(_READ_CHUNK):
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if not overflowed:
                if len(pending) + end - start <= limit:
                    pending += chunk[start:end]
                    yield bytes(pending)
                else:
                    yield None
            pending.clear()
            overflowed = False
            start = end + 1
        if not overflowed:
            if len(pending) + len(chunk) - start > limit:
                pending.clear()
                overflowed = True
                yield None
            else:
                pending += chunk[start:]
    if pending and not overflowed:
        yield bytes(pending)


class EventWriter:
    """Writes one JSON object per line to the protocol stream, from any thread; silent once closed."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.lock = threading.Lock()
        self.closed = False
        self.broken = False
        """The reader went away (broken pipe): nobody hears us any more, so the worker should stop."""

    def __call__(self, event_type: str, **fields: Any) -> None:
        line = json.dumps({"type": event_type, **fields}, allow_nan=False, default=str)
        with self.lock:
            self._write(line)

    def _write(self, line: str) -> None:
        if self.closed or self.broken:
            return
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError) as exc:  # a dead client must not crash the job thread
            self.broken = True
            log.warning("protocol stream closed (%s); stopping", exc)

    def close(self, *last: tuple[str, dict[str, Any]]) -> None:
        """Write the ``last`` events, then drop every later one (a job thread may still be unwinding)."""
        with self.lock:
            for event_type, fields in last:
                self._write(json.dumps({"type": event_type, **fields}, allow_nan=False, default=str))
            self.closed = True


class Worker:
    """The request loop, the job thread and the cancel tokens of one worker process."""

    def __init__(self, emit: EventWriter):
        self.emit = emit
        self.cache = ModelCache()
        self.jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.tokens: dict[JobId, CancelToken] = {}
        self.running: JobId | None = None
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run_jobs, name="photo3d-jobs", daemon=True)
        self.stop_signal: int | None = None
        self.signals_received = 0

    def on_signal(self, signum: int, frame: object = None) -> None:
        """Signal handler: only sets attributes (safe at any point of the main thread); the loop stops."""
        if self.stop_signal is None:
            self.stop_signal = signum
        self.signals_received += 1

    def handle(self, line: bytes | str) -> bool:
        """Handle one request line; returns False when the worker should stop reading."""
        try:
            request = parse_request(line)
        except BadRequest as exc:
            self.emit("error", id=exc.job_id, code="bad_request", message=str(exc))
            return True
        kind, job_id = request["type"], request["id"]
        if kind == "convert":
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
        else:  # shutdown
            return False
        return True

    def _handle_safely(self, line: bytes) -> bool:
        try:
            return self.handle(line)
        except Exception as exc:  # a bug in request handling must not end the worker and its queued jobs
            log.error("request handling crashed:\n%s", traceback.format_exc())
            self.emit("error", id=None, code="internal", message=f"internal error: {type(exc).__name__}: {exc}")
            return True

    def _run_jobs(self) -> None:
        while True:
            request = self.jobs.get()
            if request is None:
                return
            job_id = request["id"]
            with self.lock:
                self.running = job_id
            event_type, fields = self._run_one(request)
            # Free the id before its last event goes out, so a client may reuse it at once; under the lock so
            # a stopping worker sees either that event written or the job still running, never neither.
            with self.lock:
                self.tokens.pop(job_id, None)
                self.running = None
                self.emit(event_type, id=job_id, **fields)

    def _run_one(self, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Run one job; returns its last event (``done`` or ``error``), which never raises."""
        job_id = request["id"]
        with self.lock:
            token = self.tokens[job_id]

        def report(stage: str, fraction: float, message: str) -> None:
            if stage == "video":  # footage: one stage over every frame
                overall = fraction
            else:
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
            from .pipeline import convert_image  # imported here: a broken install fails the job, not the worker
            from .video.convert import is_video_input

            token.check()
            options = PipelineOptions.from_dict(request.get("options") or {})
            if is_video_input(request["image"]):
                return "done", self._convert_video(request, options, Progress(report, token))
            result = convert_image(request["image"], request["output"], options, Progress(report, token), self.cache)
            layers = len(result.manifest.layers)
            done = {"package": str(result.package_path), "timings": result.timings, "layers": layers}
            json.dumps(done, allow_nan=False, default=str)  # an event that cannot be written is a crash, here
            return "done", done
        except Cancelled:
            return "error", {"code": "cancelled", "message": "cancelled; nothing was written"}
        except Photo3DError as exc:
            return "error", {"code": exc.code, "message": str(exc)}
        except MemoryError:
            return "error", {"code": "internal", "message": "out of memory; try a smaller working size"}
        except BaseException as exc:  # SystemExit from a library too: uncaught, it would end the job thread
            log.error("job %s crashed:\n%s", job_id, traceback.format_exc())
            return "error", {"code": "internal", "message": f"internal error: {type(exc).__name__}: {exc}"}

    def _convert_video(self, request: dict[str, Any], options: PipelineOptions, progress: Progress) -> dict[str, Any]:
        """Footage into a layered video package (every frame); its ``done`` event."""
        from .video.convert import convert_video
        from .video.package import read_video_package

        path = convert_video(request["image"], request["output"], options, None, progress, self.cache)
        manifest = read_video_package(path, check_textures=False, check_points=False).manifest
        layers = max(len(shot.layers) for shot in manifest.shots)
        return {"package": str(path), "timings": dict(manifest.timings), "layers": layers, "kind": "video"}

    def _read_requests(self, stdin: _Reader, inbox: queue.Queue[Any]) -> None:
        try:
            for line in iter_lines(stdin):
                inbox.put(line)
        except (OSError, ValueError) as exc:
            log.warning("cannot read requests (%s); treating it as a closed stdin", exc)
        inbox.put(_EOF)

    def _serve_requests(self, inbox: queue.Queue[Any]) -> str:
        """Answer requests until one of the ways of stopping; returns why, for the cancelled events."""
        while self.stop_signal is None and not self.emit.broken:
            try:
                line = inbox.get(timeout=_POLL_S)  # a timeout, so a signal is noticed while nothing arrives
            except queue.Empty:
                continue
            if line is _EOF:
                return "stdin was closed"
            if line is None:
                message = f"request line longer than {MAX_LINE_BYTES} bytes (MAX_LINE_BYTES); it was discarded"
                self.emit("error", id=None, code="bad_request", message=message)
            elif line.strip() and not self._handle_safely(line):
                return "shutdown was requested"
        if self.emit.broken:
            return "stdout was closed"
        return f"{signal.Signals(self.stop_signal).name} was received"

    def _cancel_everything(self, reason: str) -> None:
        """Cancel the running job and answer every queued one; the job thread reports the running one."""
        with self.lock:
            for token in self.tokens.values():
                token.cancel()
        while True:
            try:
                request = self.jobs.get_nowait()
            except queue.Empty:
                break
            if request is None:
                continue
            with self.lock:
                self.tokens.pop(request["id"], None)
            self.emit("error", id=request["id"], code="cancelled", message=f"cancelled before it started: {reason}")
        self.jobs.put(None)

    def _wait_for_jobs(self) -> None:
        """Let the running job unwind (its own ``cancelled`` event, staging folder removed); a second signal
        or ``UNWIND_TIMEOUT_S`` stops the wait."""
        signals_before = self.signals_received
        deadline = time.monotonic() + UNWIND_TIMEOUT_S
        while self.thread.is_alive() and time.monotonic() < deadline and self.signals_received == signals_before:
            self.thread.join(_POLL_S)
        last: list[tuple[str, dict[str, Any]]] = []
        with self.lock:  # the job thread writes its last event under this lock: it is out, or it never will be
            abandoned = self.running if self.thread.is_alive() else None
            if abandoned is not None:
                log.warning("job %s did not stop in time; exiting without it", abandoned)
                message = "cancelled; the worker stopped before the job had finished unwinding"
                last.append(("error", {"id": abandoned, "code": "cancelled", "message": message}))
            self.emit.close(*last, ("bye", {}))

    def serve(self, stdin: _Reader) -> int:
        """Answer requests from the binary ``stdin`` until told to stop; returns the process exit status."""
        self.thread.start()
        inbox: queue.Queue[Any] = queue.Queue(maxsize=_INBOX_LINES)
        threading.Thread(target=self._read_requests, args=(stdin, inbox), name="photo3d-stdin", daemon=True).start()
        self.emit("ready", version=__version__, protocol=PROTOCOL_VERSION, pid=os.getpid())
        reason = self._serve_requests(inbox)
        log.info("stopping: %s", reason)
        self._cancel_everything(reason)
        self._wait_for_jobs()
        return 0 if self.stop_signal is None else 128 + self.stop_signal


def _protocol_stream() -> IO[str]:
    """Keep a private handle on the real stdout and point fd 1 at stderr for everything else."""
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "w", encoding="utf-8", buffering=1)


def _install_signal_handlers(handler: Callable[[int, object], None]) -> dict[int, Any]:
    """Route the stopping signals to ``handler``; returns the previous handlers (none off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    numbers = [getattr(signal, name) for name in _STOP_SIGNALS if hasattr(signal, name)]
    return {number: signal.signal(number, handler) for number in numbers}


def serve() -> int:
    """Run the worker on this process's stdin and stdout; returns the exit status (0, or 128 + a signal)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="photo3d-worker %(levelname)s %(message)s")
    stream = _protocol_stream()
    worker = Worker(EventWriter(stream))
    previous = _install_signal_handlers(worker.on_signal)
    # Unbuffered binary reads straight from fd 0: each read is one bounded system call, and the reader
    # thread holds no buffered-stream lock that interpreter shutdown could trip over.
    stdin = open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)  # noqa: SIM115 - fd 0 outlives us
    try:
        return worker.serve(stdin)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
