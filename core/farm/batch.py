"""``python -m core batch PHOTO ... --out DIR``: many photos converted and, with ``--render``, rendered in chunks of
frames by the Blender batch, each conversion and each chunk a farm item with its own record and log
(``records.ItemLedger``), so a re-run with ``--resume`` redoes only what is missing or was made differently.

Outputs, per photo: ``DIR/<stem>/package`` and, with ``--render``, ``DIR/<stem>/<stem>_frames/<stem>_####.png``;
the records and logs of every item in ``DIR/items/`` and the job's ``DIR/summary.json``.

Items run in this process by default (one ``ModelCache`` for every photo), or on a Ray cluster with ``--ray``
(``ray_runner``: an actor pool for the conversions, a task per render chunk). Either way the driver owns the
item list and reports each item once; the code that does an item (``convert_item``, ``render_item``) is the same.

Exactly once: whoever finishes an item writes its record, and only after every output is complete (the package
writer publishes atomically; a chunk is done when the Blender batch's own record lists its frames). An attempt
holds a lock on the item's log while it works and first looks for a record of this run's input, settings and
versions: an attempt that follows one which finished but whose result was lost (a worker killed after writing
the record) takes that record instead of converting or rendering again, so a finished package is never
replaced. The driver forgets an item's old record once, before the item's first attempt, never between
attempts.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import importlib
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import (
    EXIT_BAD_INPUT,
    EXIT_BAD_PACKAGE,
    EXIT_CANCELLED,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_OUT_OF_MEMORY,
    EXIT_RENDER,
    EXIT_WORKER,
    InputError,
    Photo3DError,
    SignalReceived,
    failure_class,
)
from ..options import LIMITS, PipelineOptions
from ..progress import Progress
from ..safe_json import JSONRejected, json_kind, read_json_file
from .frames import frame_chunks
from .records import (
    PROGRESS_FORMATS,
    ItemLedger,
    ItemLog,
    ItemRecord,
    file_sha256,
    item_name,
    job_exit_code,
    progress_line,
    settings_sha256,
    versions,
)

ROOT = Path(__file__).resolve().parents[2]
BATCH_SCRIPT = ROOT / "scripts" / "photo3d_batch.py"
"""The Blender batch with the bpy module; ``--blender PATH`` runs ``PATH -b -c photo3d`` instead."""
RAY_PIN = "ray==2.52.1"
RAY_MISSING = f"--ray needs Ray, which is not installed: pip install {RAY_PIN} (or -r requirements/ray.txt)"
PACKAGE_FOLDER = "package"
DEPTH_SUFFIXES = (".npy", ".pfm", ".png", ".exr", ".tif", ".tiff", ".pgm")
DEFAULT_FRAMES = 120
"""The shot's length when --render has no --frames: the Blender batch's default camera path."""
DEFAULT_CHUNK = 12
MAX_FRAMES = 14_400
MAX_SAMPLES = 1024
# The Blender batch's choices (photo3d_addon/render/settings.py, which needs bpy): checked here too, so a typo
# fails the batch before any photo is converted rather than every chunk after.
RESOLUTIONS = ("PHOTO", "HD", "FULL_HD", "UHD", "SQUARE", "VERTICAL")
QUALITIES = ("PREVIEW", "FINAL")
MAX_ATTEMPTS = 3
"""Attempts of a conversion whose worker died (a crash, the OOM killer, a killed node) before it fails."""
RENDER_RETRIES = 2
"""Reruns of a render chunk whose process was killed (a signal, a lost node)."""
MAX_LOOK_BYTES = 1_000_000
"""A Blender batch settings file holds a few dozen keys (the Blender batch's own limit)."""
STOP_GRACE_S = 30.0
"""How long a stopped render subprocess gets to remove its chunk's frames before it is killed."""
TEST_DELAY_ENV = "PHOTO3D_BATCH_TEST_DELAY"
"""Test hook: ``NAME=SECONDS[,NAME=SECONDS]`` makes the first attempt of conversion NAME wait that long first,
so a test can kill the process running it (its log names the process)."""


class BatchWorkerError(Photo3DError):
    """The batch's workers cannot run: a Ray cluster that cannot be reached, a renderer that does not start."""

    code = "worker"
    exit_code = EXIT_WORKER


class ChunkInterrupted(Exception):
    """A render chunk's process was killed by a signal: the chunk is rerun (Ray retries the task)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"the render process was killed by signal {self.signum}"


# ---------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class RenderSettings:
    """What the render chunks are made with (passed to the Blender batch)."""

    frames: int = DEFAULT_FRAMES
    chunk_size: int = DEFAULT_CHUNK
    resolution: str | None = None
    quality: str | None = None
    samples: int | None = None
    blender: str | None = None
    look: str | None = None
    """A Blender batch settings file (``--settings``) every chunk renders with: the camera path, effects, frame
    rate... (the chunk's own flags override it)."""
    look_sha256: str = ""

    def shaping(self, chunk: tuple[int, int]) -> dict[str, Any]:
        """The settings that shape one chunk's frames (hashed into its record)."""
        return {"frames": self.frames, "chunk": list(chunk), "resolution": self.resolution,
                "quality": self.quality, "samples": self.samples, "look": self.look_sha256}  # fmt: skip

    def flags(self) -> list[str]:
        flags: list[str] = ["--settings", self.look] if self.look else []
        for flag, value in (("--resolution", self.resolution), ("--quality", self.quality),
                            ("--samples", self.samples)):  # fmt: skip
            if value is not None:
                flags += [flag, str(value)]
        return flags


@dataclass
class BatchSettings:
    """A checked batch: what to convert and render, where, and how."""

    photos: list[Path]
    out: Path
    options: dict[str, Any]
    """``PipelineOptions.to_dict()``, checked, without a depth file (each photo gets its own)."""
    depth: Path | None = None
    render: RenderSettings | None = None
    resume: bool = False
    force: bool = False
    ray: str | None = None
    """None: serial in this process; "": a local Ray cluster; else the address of one."""
    workers: int | None = None
    progress: str = "text"


def add_batch_parser(commands: Any) -> argparse.ArgumentParser:
    """The ``batch`` subcommand's parser (``python -m core batch``)."""
    batch = commands.add_parser(
        "batch",
        help="convert (and render) many photos as farm items, serially or on a Ray cluster",
        description="Convert photos into DIR/<stem>/package and, with --render, render their frames in chunks "
        "with the Blender batch. Every item has a record and a log in DIR/items/; --resume skips the items done "
        "with the same input, settings and versions. Put photos before --ray, or write --ray=ADDRESS.",
    )
    batch.add_argument("photos", nargs="+", help="photos to convert")
    batch.add_argument("--out", required=True, type=Path, help="output folder")
    batch.add_argument("--config", help="JSON file of pipeline options (the manifest's 'options' sections)")
    batch.add_argument("--depth", type=Path, help="a depth map for every photo, or a folder of <stem>.npy/.png...")
    batch.add_argument("--depth-kind", choices=list(LIMITS["depth.depth_kind"].choices), help="what --depth holds")
    batch.add_argument("--segment", help="SAM model, or 'none' for the weights-free fallback")
    batch.add_argument("--work-size", type=int, help="longest side of the working resolution")
    batch.add_argument("--layers", type=int, help="maximum number of depth layers")
    batch.add_argument("--inpaint", choices=list(LIMITS["inpaint.method"].choices), help="how hidden colour is filled")
    batch.add_argument("--device", choices=list(LIMITS["runtime.device"].choices), help="where networks run")
    batch.add_argument("--models-dir", help="folder of model weights (default $PHOTO3D_MODELS_DIR)")
    batch.add_argument("--render", action="store_true", help="also render each photo's frames (PNG) in chunks")
    batch.add_argument("--frames", type=int, help=f"the shot's length in frames (default {DEFAULT_FRAMES})")
    batch.add_argument("--chunk-size", type=int, help=f"frames per render item (default {DEFAULT_CHUNK})")
    batch.add_argument("--resolution", choices=RESOLUTIONS, help="render size (the Blender batch's default)")
    batch.add_argument("--quality", choices=QUALITIES, help="render quality (the Blender batch's default)")
    batch.add_argument("--samples", type=int, help="Eevee samples, overriding the quality's")
    batch.add_argument("--blender", help="render with this Blender binary (with Photo3D installed) instead of bpy")
    batch.add_argument(
        "--look",
        help="a Blender batch settings file (camera path, effects, frame rate...) every render chunk uses; "
        "the Blender batch's --ray writes it",
    )
    redo = batch.add_mutually_exclusive_group()
    redo.add_argument("--resume", action="store_true", help="skip items done with the same input and settings")
    redo.add_argument("--force", action="store_true", help="redo every item (the default without --resume)")
    batch.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run on Ray: a new local cluster of this machine's cores, or the cluster at ADDRESS (auto: the one "
        f"this machine is part of; HOST:PORT; ray://HOST:10001); needs {RAY_PIN}",
    )
    batch.add_argument("--workers", type=int, help="conversion workers with --ray (default: one per GPU, else half "
                       "the CPUs); a local cluster gets at least this many CPUs")  # fmt: skip
    batch.add_argument("--progress", choices=PROGRESS_FORMATS, default="text", help="text lines or JSON lines")
    return batch


def _pipeline_options(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if args.config:
        try:
            data = read_json_file(args.config, 1_000_000)
        except (OSError, JSONRejected) as exc:
            raise InputError(f"cannot read config {args.config}: {exc}") from exc
        if not isinstance(data, dict):
            raise InputError(f"config {args.config} must hold a JSON object of option sections, not {json_kind(data)}")
    models_dir = args.models_dir or os.environ.get("PHOTO3D_MODELS_DIR")
    flags = [("load", "work_size", args.work_size), ("layers", "max_layers", args.layers),
             ("segment", "model", args.segment), ("inpaint", "method", args.inpaint),
             ("depth", "depth_kind", args.depth_kind), ("runtime", "device", args.device),
             ("runtime", "models_dir", models_dir)]  # fmt: skip
    for section, key, value in flags:
        if value is not None:
            if not isinstance(data.setdefault(section, {}), dict):
                raise InputError(f"config {args.config}: option section {section!r} must be an object")
            data[section][key] = value
    options = PipelineOptions.from_dict(data).to_dict()
    if options["depth"]["depth_file"]:
        raise InputError("give depth maps with --depth, not in the config (each photo needs its own)")
    return options


def settings_from_args(args: argparse.Namespace) -> BatchSettings:
    """The batch's settings from its flags, checked before any photo is touched (InputError names the flag)."""
    render = None
    render_flags = {"--frames": args.frames, "--chunk-size": args.chunk_size, "--resolution": args.resolution,
                    "--quality": args.quality, "--samples": args.samples, "--blender": args.blender,
                    "--look": args.look}  # fmt: skip
    if args.render:
        frames = DEFAULT_FRAMES if args.frames is None else args.frames
        chunk = DEFAULT_CHUNK if args.chunk_size is None else args.chunk_size
        if not 1 <= frames <= MAX_FRAMES:
            raise InputError(f"--frames must be in 1..{MAX_FRAMES}, not {frames}")
        if not 1 <= chunk <= MAX_FRAMES:
            raise InputError(f"--chunk-size must be in 1..{MAX_FRAMES}, not {chunk}")
        if args.samples is not None and not 1 <= args.samples <= MAX_SAMPLES:
            raise InputError(f"--samples must be in 1..{MAX_SAMPLES}, not {args.samples}")
        look, look_sha = None, ""
        if args.look is not None:
            look = str(Path(args.look).absolute())
            try:
                data = read_json_file(look, MAX_LOOK_BYTES)
            except (OSError, JSONRejected) as exc:
                raise InputError(f"--look {args.look}: {exc}") from exc
            if not isinstance(data, dict):
                raise InputError(f"--look {args.look} must hold a JSON object of Blender batch settings")
            look_sha = file_sha256(look)
        render = RenderSettings(
            frames, chunk, args.resolution, args.quality, args.samples, args.blender, look, look_sha
        )
    else:
        given = [flag for flag, value in render_flags.items() if value is not None]
        if given:
            raise InputError(f"{', '.join(given)} only apply with --render")
    if args.ray is not None and os.path.isfile(args.ray):
        raise InputError(f"--ray takes a cluster address, not the photo {args.ray}: put photos before --ray")
    if args.workers is not None:
        if args.ray is None:
            raise InputError("--workers applies with --ray (the serial batch runs one item at a time)")
        if not 1 <= args.workers <= 4096:
            raise InputError(f"--workers must be in 1..4096, not {args.workers}")
    if args.depth is not None and not args.depth.exists():
        raise InputError(f"--depth {args.depth} does not exist")
    return BatchSettings(
        photos=[Path(p).absolute() for p in args.photos],
        out=args.out.absolute(),
        options=_pipeline_options(args),
        depth=args.depth.absolute() if args.depth is not None else None,
        render=render,
        resume=bool(args.resume),
        force=bool(args.force),
        ray=args.ray,
        workers=args.workers,
        progress=args.progress,
    )


# ------------------------------------------------------------------------------------------------- items


@dataclass
class ConversionJob:
    """One photo to convert into ``out_dir/<name>/package`` (picklable: it travels to Ray workers)."""

    name: str
    photo: str
    depth_file: str | None
    options: dict[str, Any]
    out_dir: str
    input_sha256: str
    settings_sha256: str
    made_by: dict[str, str]
    attempt: int = 1

    @property
    def package(self) -> Path:
        return Path(self.out_dir) / self.name / PACKAGE_FOLDER


@dataclass
class ChunkJob:
    """Frames ``first..last`` of one photo's shot, rendered by one Blender batch process into
    ``out_dir/<photo item>/``."""

    name: str
    photo_item: str
    photo: str
    package: str
    out_dir: str
    frames: tuple[int, int]
    command: list[str]
    frame_files: list[str]
    """The chunk's frames, relative to ``out_dir``: removed before each attempt, so none is left from a killed one."""
    input_sha256: str
    settings_sha256: str
    made_by: dict[str, str]
    attempt: int = 1


Job = ConversionJob | ChunkJob


@dataclass
class ItemOutcome:
    """How one item ended (what the summary lists)."""

    name: str
    kind: str
    """``convert`` or ``render``."""
    input: str
    status: str = "ok"
    """``ok``, ``skipped``, ``failed`` or ``cancelled``."""
    exit_code: int = EXIT_OK
    message: str = ""
    outputs: list[str] = field(default_factory=list)
    """Relative to the batch's output folder."""
    seconds: float = 0.0
    log: str = ""
    failure: str = "ok"
    attempts: int = 1
    reused: bool = False
    """Finished by an earlier attempt whose result never reached the driver (its record was taken)."""
    worker: str = ""
    layers: int | None = None
    elapsed: float = 0.0
    """Seconds from the item's first hand-out to its end as the driver saw them: queueing and lost attempts
    included (``seconds`` is the finishing attempt's own work, as its record says)."""

    def failed(self, code: int, message: str, log: ItemLog | None = None) -> ItemOutcome:
        self.status, self.exit_code, self.message, self.failure = "failed", code, message, failure_class(code)
        if log is not None:
            log.write(f"{self.name}: attempt {self.attempts} failed (exit {code}): {message}")
        return self


def worker_id() -> str:
    """Where an attempt runs, for its log: host and process."""
    return f"{socket.gethostname()} pid {os.getpid()}"


@contextlib.contextmanager
def _item_lock(log_path: Path) -> Iterator[None]:
    """Hold the item's log locked while an attempt works on it: a second attempt of the same item (a worker
    declared lost that still runs) waits, then finds the first one's record. Where ``fcntl`` is missing
    (Windows) the driver's one-attempt-at-a-time rule is the only guard."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(log_path, "a", encoding="utf-8") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _test_delay(name: str, attempt: int) -> None:
    if attempt != 1:
        return
    for entry in os.environ.get(TEST_DELAY_ENV, "").split(","):
        item, _, seconds = entry.partition("=")
        if item == name and seconds:
            time.sleep(float(seconds))


class _StageLines:
    """A conversion's stages in its log, a line when a stage starts."""

    def __init__(self, log: ItemLog, name: str):
        self.log, self.name, self.last = log, name, ""

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        if stage and stage != self.last:
            self.log.write(f"{self.name}: {stage}")
            self.last = stage


def convert_item(job: ConversionJob, cache: Any = None) -> ItemOutcome:
    """Convert one photo (an attempt): its package, then its record. Failures become the outcome; only a stop
    (a signal, Ctrl-C) is raised."""
    from ..pipeline import convert_image  # heavy imports only where conversions run

    ledger = ItemLedger(job.out_dir)
    log_path = ledger.log_path(job.name)
    outcome = ItemOutcome(job.name, "convert", job.photo, log=str(log_path), attempts=job.attempt, worker=worker_id())
    started = time.monotonic()
    with _item_lock(log_path), ItemLog(log_path) as log:
        log.write(f"{job.name}: attempt {job.attempt} in {outcome.worker}")
        record = ledger.finished(job.name, job.input_sha256, job.settings_sha256, job.made_by)
        if record is not None:  # an earlier attempt finished it and was lost before it could say so
            log.write(f"{job.name}: an earlier attempt already wrote its record; not converted again")
            outcome.outputs, outcome.reused = list(record.outputs), True
            outcome.layers = record.extra.get("layers")
            return outcome
        _test_delay(job.name, job.attempt)
        try:
            options = PipelineOptions.from_dict(_with_depth(job.options, job.depth_file))
            result = convert_image(
                job.photo, job.package, options, Progress(callback=_StageLines(log, job.name)), cache
            )
        except Photo3DError as exc:
            return outcome.failed(exc.exit_code, str(exc), log)
        except MemoryError:
            return outcome.failed(EXIT_OUT_OF_MEMORY, "out of memory: try a smaller --work-size", log)
        except Exception as exc:  # a bug costs one photo, not the batch
            log.write(traceback.format_exc().rstrip())
            return outcome.failed(EXIT_INTERNAL, f"internal error (a bug): {type(exc).__name__}: {exc}", log)
        outcome.seconds = time.monotonic() - started
        outcome.layers = len(result.manifest.layers)
        outcome.outputs = [ledger.relative(job.package)]
        extra = {"layers": outcome.layers, "worker": outcome.worker, "attempt": job.attempt}
        ledger.write(ItemRecord(job.name, job.photo, job.input_sha256, job.settings_sha256, job.made_by,
                                outcome.outputs, round(outcome.seconds, 3), extra=extra))  # fmt: skip
        log.write(f"{job.name}: converted, {outcome.layers} layers; record written")
    return outcome


def _with_depth(options: dict[str, Any], depth_file: str | None) -> dict[str, Any]:
    data = json.loads(json.dumps(options))  # a deep copy: the job's own stays as sent
    data["depth"]["depth_file"] = depth_file
    return data


_PR_SET_PDEATHSIG = 1
_prctl: Any = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError, AttributeError):
        _prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the forked child only calls it


def _die_with_parent() -> None:
    """In the render subprocess before it starts: killed when its parent dies (a Ray worker killed mid-chunk),
    so no orphan renders the same frames as the retry."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


EventCallback = Callable[[str, dict[str, Any]], None]


def _run_render_process(job: ChunkJob, log: ItemLog, on_event: EventCallback | None) -> tuple[int, str]:
    """Run the chunk's Blender batch, its output into the chunk's log; its exit status and last error."""
    error = ""
    process = subprocess.Popen(
        job.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        errors="replace", cwd=str(ROOT), preexec_fn=_die_with_parent if _prctl is not None else None,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.rstrip("\n")
            log.write(f"| {line}")
            if not line.startswith("photo3d-progress "):
                continue
            try:
                event = json.loads(line.removeprefix("photo3d-progress "))
            except json.JSONDecodeError:
                continue
            if not isinstance(event, dict):
                continue
            if event.get("event") in ("failed", "error"):
                error = str(event.get("message", ""))
            elif event.get("event") == "frame" and on_event is not None:
                on_event("frame", {k: event.get(k) for k in ("frame", "done", "total")})
        return process.wait(), error
    except BaseException:
        # Stopped (a signal, Ctrl-C, a cancelled Ray task): the batch removes this chunk's frames on SIGTERM.
        process.terminate()
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.write(f"{job.name}: stopped; the render process was ended")
        raise


def render_item(job: ChunkJob, on_event: EventCallback | None = None) -> ItemOutcome:
    """Render one chunk (an attempt) with one Blender batch process, then its record. A process killed by a
    signal raises ``ChunkInterrupted`` (the caller reruns it); other failures become the outcome."""
    ledger = ItemLedger(job.out_dir)
    log_path = ledger.log_path(job.name)
    outcome = ItemOutcome(job.name, "render", job.package, log=str(log_path), attempts=job.attempt, worker=worker_id())
    started = time.monotonic()
    with _item_lock(log_path), ItemLog(log_path) as log:
        log.write(f"{job.name}: attempt {job.attempt} in {outcome.worker}")
        record = ledger.finished(job.name, job.input_sha256, job.settings_sha256, job.made_by)
        if record is not None:
            log.write(f"{job.name}: an earlier attempt already wrote its record; not rendered again")
            outcome.outputs, outcome.reused = list(record.outputs), True
            return outcome
        chunk_ledger = ItemLedger(Path(job.out_dir) / job.photo_item)  # the Blender batch's own records
        chunk_ledger.forget(job.name)
        for frame in job.frame_files:  # a killed attempt's frames, possibly cut short
            with contextlib.suppress(FileNotFoundError):
                (Path(job.out_dir) / frame).unlink()
        code, error = _run_render_process(job, log, on_event)
        if code < 0:
            log.write(f"{job.name}: attempt {job.attempt}: the render process was killed by signal {-code}")
            raise ChunkInterrupted(-code)
        if code != EXIT_OK:
            return outcome.failed(code, error or f"the Blender batch exited with {code}", log)
        rendered = chunk_ledger.read(job.name)
        frames = [ledger.relative(chunk_ledger.out_dir / output) for output in (rendered.outputs if rendered else [])]
        missing = [f for f in job.frame_files if f not in frames or not (Path(job.out_dir) / f).is_file()]
        if rendered is None or missing:
            message = f"the Blender batch exited 0 but its record does not list frames {', '.join(missing)}"
            return outcome.failed(EXIT_RENDER, message, log)
        outcome.seconds = time.monotonic() - started
        outcome.outputs = list(job.frame_files)
        extra = {"worker": outcome.worker, "attempt": job.attempt, "frames": list(job.frames)}
        ledger.write(ItemRecord(job.name, job.package, job.input_sha256, job.settings_sha256, job.made_by,
                                outcome.outputs, round(outcome.seconds, 3), extra=extra))  # fmt: skip
        log.write(f"{job.name}: rendered frames {job.frames[0]}-{job.frames[1]}; record written")
    return outcome


def render_with_retries(job: ChunkJob, on_event: EventCallback | None = None) -> ItemOutcome:
    """``render_item``, rerun up to ``RENDER_RETRIES`` times when its process is killed (the serial batch's
    equivalent of a Ray task's ``max_retries``)."""
    while True:
        try:
            return render_item(job, on_event)
        except ChunkInterrupted as exc:
            if job.attempt > RENDER_RETRIES:
                outcome = ItemOutcome(job.name, "render", job.package, attempts=job.attempt)
                outcome.log = str(ItemLedger(job.out_dir).log_path(job.name))
                return outcome.failed(EXIT_WORKER, str(exc))
            job = dataclasses.replace(job, attempt=job.attempt + 1)


# ------------------------------------------------------------------------------------------------ driver


class Reporter:
    """The batch's lines: text (``photo3d: ...``) or ``photo3d-progress`` JSON on stdout, each also appended
    to the item's own log."""

    def __init__(self, json_lines: bool):
        self.json_lines = json_lines

    def say(self, event: str, item: str, text: str, log: str = "", **fields: Any) -> None:
        if self.json_lines:
            print(progress_line(event, item, message=text, **fields), flush=True)
        else:
            print(f"photo3d: {text}", flush=True)
        if log:
            with ItemLog(Path(log)) as item_log:
                item_log.write(text)


class Batch:
    """The driver's side of a batch: plans the items (skipping finished ones), reports each once as it starts
    and ends, plans a photo's render chunks once its package exists, and writes the summary."""

    def __init__(self, settings: BatchSettings, reporter: Reporter):
        self.settings = settings
        self.reporter = reporter
        self.ledger = ItemLedger(settings.out)
        self.outcomes: list[ItemOutcome] = []
        self.ended: set[str] = set()
        self.in_flight: dict[str, Job] = {}
        self.names: set[str] = set()
        self.convert_made_by = versions()
        self.render_made_by = versions(blender=renderer_version(settings.render)) if settings.render else {}
        options = json.loads(json.dumps(settings.options))
        options["depth"]["depth_file"] = settings.depth is not None  # the maps themselves are in the input hash
        self.convert_sha = settings_sha256(options)
        self._started: dict[str, float] = {}
        self._rank: dict[str, tuple[int, int]] = {}
        """Each item's place in the summary: its photo's, then its first frame (the conversion's is 0)."""

    # -- planning

    def plan(self) -> list[Job]:
        """Every photo's conversion to run, in order; a photo already done (``--resume``) brings its chunks."""
        work: list[Job] = []
        for index, photo in enumerate(self.settings.photos):
            self._rank.setdefault(item_name(photo.stem), (index, 0))
            job = self._plan_photo(photo)
            if isinstance(job, ConversionJob):
                work.append(job)
            elif job is not None:  # skipped: its package is there
                work += self.chunks_for(job)
        return work

    def _plan_photo(self, photo: Path) -> ConversionJob | ItemOutcome | None:
        name = item_name(photo.stem)
        outcome = ItemOutcome(name, "convert", str(photo), log=str(self.ledger.log_path(name)))
        if name in self.names:  # its outputs would overwrite the other's
            outcome.log = ""  # the log is the other photo's
            text = f"{photo} has the name {name} of another photo of this batch: rename one or run it separately"
            return self._end(outcome.failed(EXIT_BAD_INPUT, text), duplicate=True)
        self.names.add(name)
        try:
            depth = self._depth_for(photo)
            hashes = [file_sha256(photo)] + ([file_sha256(depth)] if depth else [])
        except (OSError, InputError) as exc:
            text = str(exc) if isinstance(exc, InputError) else f"cannot read {photo}: {exc.strerror or exc}"
            self._say_start(name, "convert")
            return self._end(outcome.failed(EXIT_BAD_INPUT, text))
        input_sha = "+".join(hashes)
        if self.settings.resume and not self.settings.force:
            record = self.ledger.finished(name, input_sha, self.convert_sha, self.convert_made_by)
            if record is not None:
                outcome.status, outcome.message, outcome.outputs = "skipped", "already done", list(record.outputs)
                outcome.layers = record.extra.get("layers")
                return self._end(outcome)
        self.ledger.forget(name)
        return ConversionJob(name, str(photo), str(depth) if depth else None, self.settings.options,
                             str(self.settings.out), input_sha, self.convert_sha, self.convert_made_by)  # fmt: skip

    def _depth_for(self, photo: Path) -> Path | None:
        depth = self.settings.depth
        if depth is None or not depth.is_dir():
            return depth
        for suffix in DEPTH_SUFFIXES:
            for name in (f"{photo.stem}{suffix}", f"{photo.stem}_depth{suffix}"):
                if (depth / name).is_file():
                    return depth / name
        raise InputError(f"no depth map for {photo.name} in {depth} (looked for {photo.stem}.npy, .png, ...)")

    def chunks_for(self, conversion: ItemOutcome) -> list[ChunkJob]:
        """The render chunks of a converted (or already converted) photo still to render; the finished ones
        (``--resume``, same package and settings) are reported skipped."""
        render = self.settings.render
        if render is None or conversion.status not in ("ok", "skipped"):
            return []
        photo = Path(conversion.input)
        folder = self.settings.out / conversion.name
        package = folder / PACKAGE_FOLDER
        chunks = frame_chunks(1, render.frames, render.chunk_size)
        index = self._rank.get(conversion.name, (len(self._rank), 0))[0]
        self._rank.update({item_name(photo.stem, chunk): (index, chunk[0]) for chunk in chunks})
        try:
            input_sha = file_sha256(package / "manifest.json")  # a new conversion is a new manifest: rerender
        except OSError as exc:
            for chunk in chunks:
                name = item_name(photo.stem, chunk)
                outcome = ItemOutcome(name, "render", str(package), log=str(self.ledger.log_path(name)))
                self._end(outcome.failed(EXIT_BAD_PACKAGE, f"cannot read {package}: {exc.strerror or exc}"))
            return []
        jobs = []
        for chunk in chunks:
            name = item_name(photo.stem, chunk)
            shape = settings_sha256(render.shaping(chunk))
            if self.settings.resume and not self.settings.force:
                record = self.ledger.finished(name, input_sha, shape, self.render_made_by)
                if record is not None:
                    log = str(self.ledger.log_path(name))
                    outcome = ItemOutcome(name, "render", str(package), "skipped", message="already done", log=log)
                    outcome.outputs = list(record.outputs)
                    self._end(outcome)
                    continue
            self.ledger.forget(name)
            stem = photo.stem  # the Blender batch names frames after the photo's own stem
            frames = [
                f"{conversion.name}/{stem}_frames/{stem}_{frame:04d}.png" for frame in range(chunk[0], chunk[1] + 1)
            ]
            command = render_command(render, package, folder, chunk)
            jobs.append(ChunkJob(name, conversion.name, str(photo), str(package), str(self.settings.out), chunk,
                                 command, frames, input_sha, shape, self.render_made_by))  # fmt: skip
        return jobs

    # -- reporting

    def _say_start(self, name: str, kind: str, attempt: int = 1) -> None:
        self._started.setdefault(name, time.monotonic())
        again = f" (attempt {attempt})" if attempt > 1 else ""
        self.reporter.say("start", name, f"{name}: starting{again}", str(self.ledger.log_path(name)), kind=kind,
                          attempt=attempt)  # fmt: skip

    def starting(self, job: Job) -> None:
        """``job`` is handed to a worker (again, for a retried attempt)."""
        self.in_flight[job.name] = job
        self._say_start(job.name, "convert" if isinstance(job, ConversionJob) else "render", job.attempt)

    def retrying(self, job: Job, reason: str) -> None:
        self.reporter.say("message", job.name, f"{job.name}: attempt {job.attempt} lost ({reason}); retrying",
                          str(self.ledger.log_path(job.name)))  # fmt: skip

    def finish(self, outcome: ItemOutcome) -> list[ChunkJob]:
        """Report an item's end, once; a finished conversion's chunks are what comes back, to run next."""
        self.in_flight.pop(outcome.name, None)
        self._end(outcome)
        return self.chunks_for(outcome) if outcome.kind == "convert" else []

    def _end(self, outcome: ItemOutcome, duplicate: bool = False) -> ItemOutcome:
        if outcome.name in self.ended and not duplicate:
            # The driver reports each item once; a second end would be a bug here, never a second "done".
            self.reporter.say("message", outcome.name, f"{outcome.name}: ignored a second end ({outcome.status})")
            return outcome
        if not duplicate:  # a photo refused for its name is not the item of that name
            self.ended.add(outcome.name)
        started = self._started.pop(outcome.name, None) if not duplicate else None
        if started is not None:
            outcome.elapsed = round(time.monotonic() - started, 3)
        outcome.seconds = round(outcome.seconds, 3)
        self.outcomes.append(outcome)
        name, log = outcome.name, outcome.log
        if outcome.status == "ok":
            text = f"{name}: done in {outcome.seconds:.1f} s" + (" (by an earlier attempt)" if outcome.reused else "")
            self.reporter.say("done", name, text, log, kind=outcome.kind, outputs=outcome.outputs,
                              seconds=outcome.seconds, elapsed=outcome.elapsed, attempts=outcome.attempts)  # fmt: skip
        elif outcome.status == "skipped":
            self.reporter.say("skipped", name, f"{name}: already done ({name}.json), skipped", log,
                              kind=outcome.kind, outputs=outcome.outputs)  # fmt: skip
        else:
            state = "CANCELLED" if outcome.status == "cancelled" else "FAILED"
            text = f"{name}: {state} (exit {outcome.exit_code}, {outcome.failure}): {outcome.message}"
            self.reporter.say("failed", name, text, log, kind=outcome.kind, exit_code=outcome.exit_code,
                              failure=outcome.failure, status=outcome.status)  # fmt: skip
        return outcome

    def cancel_in_flight(self, code: int) -> None:
        """A stop: every item in flight ends cancelled (no record: redone by the next run)."""
        for name, job in list(self.in_flight.items()):
            kind = "convert" if isinstance(job, ConversionJob) else "render"
            outcome = ItemOutcome(name, kind, job.photo, log=str(self.ledger.log_path(name)), attempts=job.attempt)
            outcome.failed(code, "stopped before it finished")
            outcome.status = "cancelled"
            self.finish(outcome)

    def exit_code(self) -> int:
        return job_exit_code([(o.status, o.exit_code) for o in self.outcomes])

    def summarise(self, mode: str, stopped: int | None) -> int:
        """Print the summary, write ``summary.json`` (atomically) and return the batch's exit code."""
        code = stopped if stopped is not None else self.exit_code()
        groups: dict[str, list[dict[str, Any]]] = {"done": [], "skipped": [], "failed": []}
        for outcome in sorted(self.outcomes, key=lambda o: self._rank.get(o.name, (len(self._rank), 0))):
            group = {"ok": "done", "skipped": "skipped"}.get(outcome.status, "failed")
            groups[group].append(dataclasses.asdict(outcome))
        counts = {key: len(value) for key, value in groups.items()}
        text = f"summary: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed (exit {code})"
        self.reporter.say("summary", "", text, exit_code=code, **counts)
        for entries in groups.values():
            for entry in entries:
                detail = entry["message"] if entry["status"] in ("failed", "cancelled") else ", ".join(entry["outputs"])
                self.reporter.say("item", entry["name"], f"  {entry['status']:<9} {entry['name']}: {detail}",
                                  status=entry["status"])  # fmt: skip
        summary = {"exit_code": code, "mode": mode, "stopped": stopped is not None, "counts": counts, **groups}
        self.settings.out.mkdir(parents=True, exist_ok=True)
        temporary = self.settings.out / f".summary.json.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, self.settings.out / "summary.json")
        return code


def render_command(render: RenderSettings, package: Path, out: Path, chunk: tuple[int, int]) -> list[str]:
    """One chunk's Blender batch: PNG frames ``chunk`` of the shot, no .blend, JSON progress lines."""
    if render.blender:
        start = [render.blender, "-b", "--python-exit-code", "1", "-c", "photo3d"]
    else:
        start = [sys.executable, str(BATCH_SCRIPT)]
    return [*start, "--package", str(package), "--out", str(out), "--frames", f"{chunk[0]}-{chunk[1]}",
            "--shot-frames", str(render.frames), "--output", "PNG", "--no-blend", "--progress", "json",
            *render.flags()]  # fmt: skip


def renderer_version(render: RenderSettings | None) -> str:
    """The renderer's version, for the chunks' records: a new Blender redoes them."""
    if render is None:
        return ""
    if render.blender:
        if shutil.which(render.blender) is None:
            raise InputError(f"--blender {render.blender}: no such program")
        try:
            run = subprocess.run([render.blender, "-b", "--version"], capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BatchWorkerError(f"--blender {render.blender} does not start: {exc}") from exc
        first = next((line for line in run.stdout.splitlines() if line.startswith("Blender")), "")
        if run.returncode != 0 or not first:
            raise BatchWorkerError(f"--blender {render.blender} does not start (exit {run.returncode})")
        return first.strip()
    if not BATCH_SCRIPT.is_file():
        raise InputError(f"--render needs the Blender batch {BATCH_SCRIPT} (a checkout), or --blender PATH")
    try:
        return "bpy " + importlib.metadata.version("bpy")
    except importlib.metadata.PackageNotFoundError:
        raise InputError("--render needs the bpy module (scripts/setup.sh installs it) or --blender PATH") from None


# ---------------------------------------------------------------------------------------------- running


def run_serial(batch: Batch) -> None:
    """Every item in this process, one at a time: a photo's chunks right after its conversion, one
    ``ModelCache`` for every photo."""
    from ..models import ModelCache

    cache = ModelCache()
    queue: deque[Job] = deque(batch.plan())
    while queue:
        job = queue.popleft()
        batch.starting(job)
        if isinstance(job, ConversionJob):
            queue.extendleft(reversed(batch.finish(convert_item(job, cache))))
        else:

            def frame(event: str, fields: dict[str, Any], name: str = job.name) -> None:
                text = f"{name}: frame {fields.get('done')}/{fields.get('total')}"
                batch.reporter.say(event, name, text, **fields)

            batch.finish(render_with_retries(job, frame))


def import_ray() -> Any:
    """The ``ray`` module, or InputError with the install line (never a traceback)."""
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        raise InputError(RAY_MISSING) from exc


def run_batch(args: argparse.Namespace) -> int:
    """``python -m core batch``: plan, run (serially or on Ray), summarise; the exit code of
    ``job_exit_code``, or 128 + the signal (130 for Ctrl-C) when stopped."""
    settings = settings_from_args(args)
    runner = None
    if settings.ray is not None:
        import_ray()  # before anything is written: a clear error when Ray is missing
        from . import ray_runner

        runner = ray_runner
    reporter = Reporter(settings.progress == "json")
    try:
        settings.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the output folder {settings.out}: {exc.strerror or exc}") from exc
    batch = Batch(settings, reporter)
    stopped: int | None = None
    try:
        if runner is not None:
            runner.run_on_ray(batch, settings.ray or None, settings.workers)
        else:
            run_serial(batch)
    except (SignalReceived, KeyboardInterrupt) as exc:
        stopped = exc.exit_code if isinstance(exc, SignalReceived) else EXIT_CANCELLED
        batch.cancel_in_flight(stopped)
        reporter.say("stopped", "", f"stopped (exit {stopped}): items in flight were cancelled; none is half-written")
    return batch.summarise("serial" if runner is None else "ray", stopped)
