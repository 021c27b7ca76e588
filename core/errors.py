"""Errors the pipeline raises, each with a stable code for the CLI exit status and worker events."""

from __future__ import annotations


class Photo3DError(Exception):
    """Base class: a failure we can explain to the user in one sentence."""

    code = "internal"
    exit_code = 1


class InputError(Photo3DError):
    """The photo, depth map or an option is unreadable, empty or absurd."""

    code = "bad_input"
    exit_code = 2


class ModelError(Photo3DError):
    """A model or its weights cannot be found or loaded."""

    code = "missing_model"
    exit_code = 3


class DownloadError(ModelError):
    """A model could not be downloaded: no network, a server error, a checksum mismatch, a full disk."""

    code = "download_failed"
    exit_code = 8


class OutputError(Photo3DError):
    """The layer package cannot be written where asked."""

    code = "output"
    exit_code = 4


class PackageError(Photo3DError):
    """A layer package on disk is invalid: wrong version, bad paths, wrong arrays."""

    code = "bad_package"
    exit_code = 5


class ExportError(Photo3DError):
    """A comp export cannot be made from what it was given: a camera spec, a format, a missing library."""

    code = "export"
    exit_code = 9


class Cancelled(Photo3DError):
    """The job was cancelled by the user; nothing was written."""

    code = "cancelled"
    exit_code = 130


class SignalReceived(BaseException):
    """SIGTERM or SIGHUP arrived: the run unwinds like a cancel (a BaseException, so no ``except Exception``
    on the way turns it into another error), and the process exits with 128 + the signal's number."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        import signal

        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


# The one exit-code table, for the CLI (``python -m core``) and the batch (``blender -b -c photo3d``).
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = InputError.exit_code
EXIT_MISSING_MODEL = ModelError.exit_code
EXIT_OUTPUT = OutputError.exit_code
EXIT_BAD_PACKAGE = PackageError.exit_code
EXIT_WORKER = 6
EXIT_RENDER = 7
EXIT_DOWNLOAD = DownloadError.exit_code
EXIT_EXPORT = ExportError.exit_code
EXIT_PARTIAL = 10
EXIT_OUT_OF_MEMORY = 11
EXIT_CANCELLED = Cancelled.exit_code
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_INTERNAL: "internal error (a bug: please report it with the log)",
    EXIT_BAD_INPUT: "bad input (photo, depth map, option or setting)",
    EXIT_MISSING_MODEL: "model or weights missing or unloadable",
    EXIT_OUTPUT: "output cannot be written",
    EXIT_BAD_PACKAGE: "invalid layer package",
    EXIT_WORKER: "the worker could not start or stopped unexpectedly (batch)",
    EXIT_RENDER: "rendering failed (batch)",
    EXIT_DOWNLOAD: "a model download failed (network, checksum or disk; downloads resume when run again)",
    EXIT_EXPORT: "a comp export cannot be made (camera spec, format or exporter library)",
    EXIT_PARTIAL: "partly done: some items succeeded, others failed (the summary lists which; run again to retry)",
    EXIT_OUT_OF_MEMORY: "out of memory (CPU or GPU): retry on a bigger machine or with a smaller --work-size",
    129: "stopped by SIGHUP (nothing written)",
    EXIT_CANCELLED: "cancelled (Ctrl-C)",
    143: "stopped by SIGTERM (nothing written)",
}
_EVENT_ERRORS = (InputError, ModelError, DownloadError, OutputError, PackageError, ExportError)
EXIT_FOR_ERROR_CODE = {cls.code: cls.exit_code for cls in _EVENT_ERRORS}
"""The worker's error codes (its ``error`` events) as exit codes; any other failure is ``EXIT_WORKER``."""

# What a farm should do with a failed task, by exit code: "permanent" failures come back the same however often
# they are retried (the input or the settings are wrong, a bug in Photo3D, a user's Ctrl-C), "retryable" ones may
# not (a worker that crashed, a full disk, memory, the network, a stop by the farm), "partial" means some items
# are done and a retry with --resume redoes only the others.
PERMANENT_EXITS = frozenset(
    {EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_MISSING_MODEL, EXIT_BAD_PACKAGE, EXIT_EXPORT, EXIT_CANCELLED}
)


def failure_class(exit_code: int) -> str:
    """``ok``, ``permanent``, ``retryable`` or ``partial`` for an exit code; every code not known to be
    permanent is retryable (a signal's 128 + n too: the farm stopped the task, the input is not at fault)."""
    if exit_code == EXIT_OK:
        return "ok"
    if exit_code == EXIT_PARTIAL:
        return "partial"
    if exit_code in PERMANENT_EXITS:
        return "permanent"
    return "retryable"
