"""Downloading catalog models into the models folder: progress, cancel, resume, checksum, nothing half-used.

A file is fetched into ``<name>.part`` next to its destination and renamed into place only after its size
and SHA-256 check out, so the pipeline never sees a partial or corrupt file. A dropped connection resumes
from the bytes already on disk (HTTP ``Range``), a few times, with a short back-off; a cancel keeps the
``.part`` so the next download resumes it; a checksum mismatch deletes it. Only the standard library is
used, so the Blender add-on runs the same code in its own process.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import Cancelled, DownloadError
from .catalog import CatalogModel, ModelFile, check_relative_path

CHUNK_BYTES = 1024 * 1024
ATTEMPTS = 5
"""Tries per file: the first, then resumes after a dropped connection or a server error."""
TIMEOUT_S = 30.0
PART_SUFFIX = ".part"
USER_AGENT = f"Photo3D/{__version__} (model manager)"
_RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class DownloadProgress:
    """One progress report: which file, bytes on disk so far, and the total when known."""

    model: str
    path: str
    done: int
    total: int | None
    message: str = ""

    @property
    def fraction(self) -> float | None:
        return None if not self.total else min(1.0, self.done / self.total)


ProgressHook = Callable[[DownloadProgress], None]
StopHook = Callable[[], bool]


class OfflineError(DownloadError):
    """Downloads are not allowed; the message says exactly which files to put where."""

    code = "offline"


def destination(models_dir: str | os.PathLike, item: ModelFile) -> Path:
    """Where ``item`` lives inside ``models_dir``."""
    return Path(models_dir).expanduser().joinpath(*check_relative_path(item.path).split("/"))


def manual_instructions(model: CatalogModel, models_dir: str | os.PathLike) -> str:
    """What to download by hand, and where to put it, for a machine without network access."""
    lines = [f"{model.title} ({model.licence}): download"]
    for item in model.files:
        size = f" ({item.size / 1e6:.0f} MB)" if item.size else ""
        lines.append(f"  {item.url}{size}\n    and save it as {destination(models_dir, item)}")
    return "\n".join(lines)


def sha256_of(path: str | os.PathLike, should_stop: StopHook | None = None) -> str:
    """The hex SHA-256 of a file, read in chunks (cancellable between chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            if should_stop is not None and should_stop():
                raise Cancelled("checksum cancelled")
            digest.update(chunk)
    return digest.hexdigest()


def file_status(models_dir: str | os.PathLike, item: ModelFile, check_sum: bool = False) -> str:
    """``ok``, ``missing``, ``partial`` (an interrupted download), ``wrong size`` or ``checksum mismatch``.

    Without ``check_sum`` only the size is compared (cheap enough for a preferences panel)."""
    path = destination(models_dir, item)
    if not path.is_file():
        part = path.with_name(path.name + PART_SUFFIX)
        return "partial" if part.is_file() else "missing"
    if item.size is not None and path.stat().st_size != item.size:
        return "wrong size"
    if check_sum and item.sha256 and sha256_of(path) != item.sha256:
        return "checksum mismatch"
    return "ok"


def model_status(models_dir: str | os.PathLike, model: CatalogModel, check_sum: bool = False) -> str:
    """The worst status of the model's files (``ok`` only when every file is)."""
    order = ("checksum mismatch", "wrong size", "partial", "missing", "ok")
    statuses = {file_status(models_dir, item, check_sum) for item in model.files}
    return next(status for status in order if status in statuses)


class _Opener:
    """urllib with our User-Agent; redirects followed (the hub answers with a CDN address)."""

    def __init__(self, timeout: float):
        self.timeout = timeout

    def open(self, url: str, headers: dict[str, str], method: str = "GET"):
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **headers}, method=method)
        return urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310 - http(s) checked by the catalog


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # keep the first answer: its headers carry the checksum
        return None


def published_sha256(url: str, timeout: float = TIMEOUT_S) -> str | None:
    """The SHA-256 the server publishes for ``url`` (the hub's ``X-Linked-Etag``, or an ETag that is one),
    from a HEAD request that does not follow the redirect; None when it publishes none."""
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT}, method="HEAD")
    try:
        response = opener.open(request, timeout=timeout)
        headers = response.headers
        response.close()
    except urllib.error.HTTPError as exc:  # a 3xx with redirects refused lands here, headers intact
        headers = exc.headers
    for name in ("X-Linked-Etag", "ETag"):
        value = (headers.get(name) or "").strip().strip('"').lower().removeprefix("w/").strip('"')
        if len(value) == 64 and all(c in "0123456789abcdef" for c in value):
            return value
    return None


def _free_space_check(folder: Path, needed: int) -> None:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < needed:
        raise DownloadError(
            f"not enough disk space in {folder}: {needed / 1e6:.0f} MB needed, {free / 1e6:.0f} MB free"
        )


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the models folder {folder}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK):
        raise DownloadError(f"the models folder {folder} is not writable; choose another Models Folder")


def _write_error(exc: OSError, part: Path) -> DownloadError:
    part.unlink(missing_ok=True)  # a full disk: free what we took; the message says why
    if exc.errno == errno.ENOSPC:
        return DownloadError(f"the disk holding {part.parent} is full; the partial download was removed")
    return DownloadError(f"cannot write {part}: {exc.strerror or exc}")


def download_file(
    model: str,
    item: ModelFile,
    models_dir: str | os.PathLike,
    *,
    progress: ProgressHook | None = None,
    should_stop: StopHook | None = None,
    timeout: float = TIMEOUT_S,
    attempts: int = ATTEMPTS,
    backoff_s: float = 0.5,
) -> Path:
    """Fetch one file into the models folder (resuming a ``.part`` left by an earlier try) and verify it.

    Raises ``Cancelled`` (the ``.part`` is kept for a later resume) or ``DownloadError`` naming the file.
    An existing file of the right size and checksum is kept as it is.
    """
    dest = destination(models_dir, item)
    stop = should_stop or (lambda: False)
    report = progress or (lambda _event: None)
    try:
        expected = item.sha256 or published_sha256(item.url, timeout)
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"cannot reach {item.url}: {getattr(exc, 'reason', exc)}") from None
    if expected is None:
        raise DownloadError(
            f"{item.url} publishes no SHA-256 and the catalog pins none: download it by hand and save it as {dest}"
        )
    if dest.is_file() and (item.size is None or dest.stat().st_size == item.size) and sha256_of(dest) == expected:
        report(DownloadProgress(model, item.path, dest.stat().st_size, dest.stat().st_size, "already present"))
        return dest
    _make_folder(dest.parent)
    part = dest.with_name(dest.name + PART_SUFFIX)
    if item.size is not None:
        _free_space_check(dest.parent, item.size - (part.stat().st_size if part.is_file() else 0))

    opener = _Opener(timeout)
    last_problem = ""
    for attempt in range(attempts):
        if attempt:
            _sleep(backoff_s * 2 ** (attempt - 1), stop)
        offset = part.stat().st_size if part.is_file() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            response = opener.open(item.url, headers)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:  # asked past the end: the .part is complete (or junk), verify it
                break
            if exc.code in _RETRYABLE_HTTP:
                last_problem = f"the server answered {exc.code} {exc.reason}"
                continue
            raise DownloadError(f"{item.url}: the server answered {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            last_problem = f"cannot connect ({getattr(exc, 'reason', exc)})"
            continue
        with response:
            if offset and response.status != 206:
                offset = 0  # the server ignores ranges: start again
            total = _total_bytes(response, offset) or item.size
            try:
                _receive(response, part, offset, total, model, item.path, report, stop)
            except (http.client.HTTPException, ConnectionError, TimeoutError) as exc:
                last_problem = f"the connection dropped ({type(exc).__name__})"
                continue
        size = part.stat().st_size
        if total is not None and size < total:
            last_problem = f"the connection closed after {size} of {total} bytes"
            continue
        break
    else:
        raise DownloadError(
            f"{item.url} could not be downloaded after {attempts} tries: {last_problem}; "
            f"{part.name} is kept and the next download resumes it"
        )
    _verify_and_publish(part, dest, item, expected, stop)
    report(DownloadProgress(model, item.path, dest.stat().st_size, dest.stat().st_size, "verified"))
    return dest


def _total_bytes(response, offset: int) -> int | None:
    content_range = response.headers.get("Content-Range", "")
    if "/" in content_range and content_range.rsplit("/", 1)[1].strip().isdigit():
        return int(content_range.rsplit("/", 1)[1])
    length = response.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def _receive(response, part: Path, offset: int, total, model: str, path: str, report, stop) -> None:
    done = offset
    try:
        handle = open(part, "r+b" if offset else "wb")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise _write_error(exc, part) from None
    with handle:
        handle.seek(offset)
        handle.truncate()
        while True:
            if stop():
                raise Cancelled(f"download of {path} cancelled; {part.name} is kept to resume")
            chunk = response.read1(CHUNK_BYTES)  # what has arrived: a cancel is seen within one network read
            if not chunk:
                break
            try:
                handle.write(chunk)
            except OSError as exc:
                handle.close()
                raise _write_error(exc, part) from None
            done += len(chunk)
            report(DownloadProgress(model, path, done, total))


def _verify_and_publish(part: Path, dest: Path, item: ModelFile, expected: str, stop: StopHook) -> None:
    size = part.stat().st_size
    if item.size is not None and size != item.size:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{item.path}: got {size} bytes instead of {item.size}; the file was deleted")
    actual = sha256_of(part, stop)
    if actual != expected:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{item.path}: checksum mismatch (SHA-256 {actual[:12]}... instead of {expected[:12]}...); "
            "the file was deleted and is never used"
        )
    os.replace(part, dest)


def _sleep(seconds: float, stop: StopHook) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if stop():
            raise Cancelled("download cancelled")
        time.sleep(min(0.05, max(0.0, end - time.monotonic())))


def offline_instructions(models: list[CatalogModel], models_dir: str | os.PathLike) -> str:
    """One message for every model in ``models`` that is not complete: the files to fetch and where."""
    wanted = [model for model in models if model_status(models_dir, model) != "ok"]
    return "\n".join(manual_instructions(model, models_dir) for model in wanted)


def download_models(
    models: list[CatalogModel],
    models_dir: str | os.PathLike,
    *,
    online: bool,
    progress: ProgressHook | None = None,
    should_stop: StopHook | None = None,
    **kwargs,
) -> list[Path]:
    """Every file of ``models`` (those already verified are kept); ``OfflineError`` when downloads are not
    allowed, listing every file still to fetch by hand and where to save it, all at once."""
    if not online:
        missing = offline_instructions(models, models_dir)
        if missing:
            raise OfflineError(f"downloads are not allowed (online access is off). By hand:\n{missing}")
        return [destination(models_dir, item) for model in models for item in model.files]
    return [
        download_file(model.key, item, models_dir, progress=progress, should_stop=should_stop, **kwargs)
        for model in models
        for item in model.files
    ]
