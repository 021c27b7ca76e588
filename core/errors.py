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


class OutputError(Photo3DError):
    """The layer package cannot be written where asked."""

    code = "output"
    exit_code = 4


class PackageError(Photo3DError):
    """A layer package on disk is invalid: wrong version, bad paths, wrong arrays."""

    code = "bad_package"
    exit_code = 5


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


# Exit codes the CLI documents; 1 is an unexpected internal error.
EXIT_CODES = {
    0: "success",
    1: "internal error (a bug: please report it with the log)",
    2: "bad input (photo, depth map or option)",
    3: "model or weights missing or unloadable",
    4: "output cannot be written",
    5: "invalid layer package",
    129: "stopped by SIGHUP (nothing written)",
    130: "cancelled (Ctrl-C)",
    143: "stopped by SIGTERM (nothing written)",
}
