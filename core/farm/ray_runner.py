"""The batch on a Ray cluster (``python -m core batch ... --ray [ADDRESS]``); imported only then.

Conversions run on a pool of actors, each keeping its ``ModelCache`` (the loaded networks) from photo to photo:
one actor per GPU (``num_gpus=1``) when the cluster has GPUs, else CPU actors. The driver owns the item list and
hands each free actor one item at a time (``ray.wait``), so a slow photo holds up no other. Ray never reruns an
actor call by itself (``max_task_retries=0``: at most once); when an actor dies (killed, crashed, out of memory,
its node lost) its call raises ``RayActorError``, and the driver kills what is left of it (``ray.kill``), starts
a replacement while work remains and hands the item, as a new attempt, to the next free actor: at most
``MAX_ATTEMPTS`` attempts, one at a time. An attempt that finds the record of a lost attempt that did finish
takes it (``batch.convert_item``), so every item is done, recorded and reported exactly once.

Render chunks are Ray tasks (``num_cpus=1``) submitted as their photo's conversion ends, each running one
Blender batch process on its chunk. Ray reruns a task whose worker died and one whose render process was
killed (``ChunkInterrupted``), up to ``RENDER_RETRIES`` times; each attempt first removes the chunk's frames,
so a killed attempt's partial frames are replaced, and only the chunk's record declares its frames done.

Every node needs this checkout at the same path (a shared file system), as a farm's render nodes do: workers
import ``core`` from it and run its ``scripts/photo3d_batch.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import signal
import socket
import threading
import warnings
from collections import deque
from collections.abc import Iterator
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError

from ..errors import EXIT_INTERNAL, EXIT_WORKER, SignalReceived
from .batch import (
    MAX_ATTEMPTS,
    RENDER_RETRIES,
    ROOT,
    STOP_GRACE_S,
    TEST_DELAY_ENV,
    Batch,
    BatchWorkerError,
    ChunkInterrupted,
    ChunkJob,
    ConversionJob,
    ItemOutcome,
    Job,
    convert_item,
    render_item,
    worker_id,
)

WAIT_S = 0.5
"""``ray.wait`` returns at least this often, so a signal reaches the driver's Python promptly."""
LOCAL_OBJECT_STORE = 256 * 1024 * 1024
"""A local cluster's object store: the batch passes only small jobs and outcomes through it."""


class _ConversionWorker:
    """One actor of the pool: converts photo after photo with the same warm models."""

    def __init__(self) -> None:
        from ..models import ModelCache

        self.cache = ModelCache()

    def where(self) -> str:
        return worker_id()

    def pid(self) -> int:
        return os.getpid()

    def convert(self, job: ConversionJob) -> ItemOutcome:
        return convert_item(job, self.cache)


ConversionWorker = ray.remote(max_restarts=0, max_task_retries=0)(_ConversionWorker)


@ray.remote(num_cpus=1, max_retries=RENDER_RETRIES, retry_exceptions=[ChunkInterrupted])
def render_chunk(job: ChunkJob) -> ItemOutcome:
    """One render chunk on a Ray worker: ``batch.render_item``."""
    return render_item(job)


class _StopFlag:
    """SIGTERM, SIGHUP and SIGINT while Ray runs: noted by the handler and raised by the driver's loop between
    two ``ray.wait`` calls (an exception raised inside Ray's own code would come out as a SystemError, and
    ``ray.init`` installs a SIGTERM handler of its own that ends the driver without stopping the items)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def handle(self, signum: int, frame: object) -> None:
        self.signum = signum

    def check(self) -> None:
        if self.signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signum is not None:
            raise SignalReceived(self.signum)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """The handlers, from ``ray.init`` on (call ``install`` after it), then the caller's again."""
        names = [name for name in ("SIGTERM", "SIGHUP", "SIGINT") if hasattr(signal, name)]
        if threading.current_thread() is not threading.main_thread():  # signals are only set from there
            yield
            return
        previous = {name: signal.getsignal(getattr(signal, name)) for name in names}
        try:
            yield
        finally:
            for name, handler in previous.items():
                signal.signal(getattr(signal, name), handler if handler is not None else signal.SIG_DFL)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for name in ("SIGTERM", "SIGHUP", "SIGINT"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), self.handle)


def connect(address: str | None, workers: int | None) -> None:
    """``ray.init``: the cluster at ``address``, or a new local one with the machine's cores (at least
    ``workers``). Workers import ``core`` from this checkout (``PYTHONPATH``)."""
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {"PYTHONPATH": os.pathsep.join(paths)}
    if os.environ.get(TEST_DELAY_ENV):
        env[TEST_DELAY_ENV] = os.environ[TEST_DELAY_ENV]
    options: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": False,
                               "logging_level": logging.WARNING}  # fmt: skip
    if address is None:
        options.update(num_cpus=max(os.cpu_count() or 1, workers or 0), include_dashboard=False,
                       object_store_memory=LOCAL_OBJECT_STORE)  # fmt: skip
    if address is not None:
        _probe(address)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # a notice about GPU variables in later Ray versions
        try:
            # "local": always a new cluster of our own; None would join one a `ray start` left on this machine.
            ray.init(address=address or "local", **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
            raise BatchWorkerError(f"cannot start or reach {where}: {exc}") from exc


_HOST_PORT = re.compile(r"^\[?([A-Za-z0-9_.:-]+?)\]?:(\d{1,5})$")
PROBE_S = 10.0


def _probe(address: str) -> None:
    """A ``HOST:PORT`` address is tried first: ``ray.init`` retries an unreachable one for minutes."""
    found = _HOST_PORT.match(address)
    if not found:
        return  # "auto", "local", "ray://...": Ray's own look-up, with its own time-outs
    try:
        socket.create_connection((found.group(1), int(found.group(2))), timeout=PROBE_S).close()
    except OSError as exc:
        raise BatchWorkerError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


class _Pool:
    """The conversion actors and the render tasks of one batch, driven from ``ray.wait``."""

    def __init__(self, batch: Batch, workers: int | None, stop: _StopFlag):
        self.batch = batch
        self.stop = stop
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
        node_cpus = [int(node["Resources"].get("CPU", 0)) for node in ray.nodes() if node.get("Alive")]
        wanted = workers or gpus or max(1, cpus // 2)
        # More actors than GPUs (or CPUs) would only wait for one to be freed: the pool never exceeds them.
        self.size = min(wanted, gpus) if gpus else min(wanted, cpus)
        # Each actor reserves its share of the cores (Ray sets its thread count, OMP_NUM_THREADS, from it): all of
        # it on a CPU cluster, where the render tasks take the cores back as the actors are released once no
        # conversion is left to hand out; half of it beside a GPU, whose actor needs the CPU only for the
        # stages between the networks, so renders run alongside.
        share = max(1, min(max(node_cpus, default=cpus), cpus // self.size))
        if gpus:
            self.actor_options: dict[str, Any] = {"num_gpus": 1, "num_cpus": max(1, share // 2)}
        else:
            self.actor_options = {"num_cpus": share}
        if self.size < wanted:
            batch.reporter.say("message", "", f"ray: {self.size} workers, not {wanted}: the cluster has "
                               f"{gpus or cpus} {'GPUs' if gpus else 'CPUs'}")  # fmt: skip
        where = f"{gpus} GPUs" if gpus else f"{cpus} CPUs"
        batch.reporter.say("message", "", f"ray: {self.size} conversion workers on {where}")
        self.queue: deque[ConversionJob] = deque()
        self.idle: list[Any] = []
        self.pending: dict[Any, tuple[Job, Any]] = {}

    def _busy_actors(self) -> int:
        return sum(actor is not None for _, actor in self.pending.values())

    def run(self, work: list[Job]) -> None:
        for job in work:
            if isinstance(job, ConversionJob):
                self.queue.append(job)
            else:
                self._submit_chunk(job)
        try:
            while self.queue or self.pending:
                while self.queue and len(self.idle) + self._busy_actors() < self.size:
                    self.idle.append(ConversionWorker.options(**self.actor_options).remote())
                while self.queue and self.idle:
                    job, actor = self.queue.popleft(), self.idle.pop()
                    self.batch.starting(job)
                    self.pending[actor.convert.remote(job)] = (job, actor)
                if not self.queue:  # nothing left to convert: free the actors' CPUs and GPUs for the renders
                    for actor in self.idle:
                        ray.kill(actor)
                    self.idle.clear()
                if not self.pending:
                    continue  # every actor had died: the replacements take the queue on the next round
                ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=WAIT_S)
                self.stop.check()
                for ref in ready:
                    self._collect(ref)
        except BaseException:
            self._stop()
            raise
        finally:
            for actor in self.idle:
                ray.kill(actor)
            self.idle.clear()

    def _submit_chunk(self, job: ChunkJob) -> None:
        self.batch.starting(job)
        self.pending[render_chunk.remote(job)] = (job, None)

    def _collect(self, ref: Any) -> None:
        job, actor = self.pending.pop(ref)
        if isinstance(job, ChunkJob):
            self.batch.finish(self._chunk_outcome(ref, job))
            return
        try:
            outcome = ray.get(ref)
        except RayActorError as exc:  # the actor died: its item goes to another one, as a new attempt
            ray.kill(actor, no_restart=True)  # whatever is left of it (an unreachable one may still run)
            reason = _first_line(exc)
            retry = dataclasses.replace(job, attempt=job.attempt + 1)
            if retry.attempt <= MAX_ATTEMPTS:
                self.batch.retrying(job, f"its worker died: {reason}")
                self.queue.appendleft(retry)
                return
            outcome = self._lost(job, EXIT_WORKER, f"its worker died {job.attempt} times; last: {reason}")
        except RayError as exc:  # convert_item turns every failure into an outcome: this is a bug or Ray's
            self.idle.append(actor)
            outcome = self._lost(job, EXIT_INTERNAL, f"the conversion raised: {_first_line(exc)}")
        else:
            self.idle.append(actor)
        for chunk in self.batch.finish(outcome):
            self._submit_chunk(chunk)

    def _chunk_outcome(self, ref: Any, job: ChunkJob) -> ItemOutcome:
        try:
            return ray.get(ref)
        except RayTaskError as exc:
            if isinstance(exc.cause, ChunkInterrupted):
                message = f"{exc.cause} in each of {RENDER_RETRIES + 1} attempts"
            else:
                message = f"the render task raised: {_first_line(exc)}"
            return self._lost(job, EXIT_WORKER, message)
        except RayError as exc:  # its worker died in every attempt Ray made
            return self._lost(job, EXIT_WORKER, f"its worker died in every attempt: {_first_line(exc)}")

    def _lost(self, job: Job, code: int, message: str) -> ItemOutcome:
        kind = "convert" if isinstance(job, ConversionJob) else "render"
        outcome = ItemOutcome(job.name, kind, job.photo if kind == "convert" else job.package,
                              log=str(self.batch.ledger.log_path(job.name)), attempts=job.attempt)  # fmt: skip
        return outcome.failed(code, message)

    def _stop(self) -> None:
        """A stop: the conversions' actors killed (a package is published atomically or not at all), the render
        tasks cancelled (their Blender batch removes the chunk's frames), waited for a while."""
        chunks = []
        for ref, (_, actor) in self.pending.items():
            if actor is not None:
                ray.kill(actor, no_restart=True)
            else:
                with contextlib.suppress(RayError, TypeError, ValueError):
                    ray.cancel(ref)
                chunks.append(ref)
        if chunks:
            with contextlib.suppress(RayError, GetTimeoutError):
                ray.wait(chunks, num_returns=len(chunks), timeout=STOP_GRACE_S)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def run_on_ray(batch: Batch, address: str | None, workers: int | None) -> None:
    """Connect, plan the batch's items (after connecting: a cluster that cannot be reached changes nothing on
    disk) and run them on Ray; the local cluster this starts (no ``address``) is shut down at the end, a stop
    included. A stop (SIGTERM, SIGHUP, Ctrl-C) is raised to the caller once the items are stopped."""
    stop = _StopFlag()
    with stop.installed():
        try:
            connect(address, workers)
            stop.install()
            stop.check()  # a signal that came while Ray started
            pool = _Pool(batch, workers, stop)
            pool.run(batch.plan())
        finally:
            ray.shutdown()
