"""Frames in: a video file (MP4, MOV, MKV, anything FFmpeg reads, through PyAV) or a numbered image sequence.

Every failure is an ``InputError`` naming the file and what is wrong: a file that is not a video or is cut
short before its index (MP4's ``moov``), no video stream, zero frames, a decode error part-way (the message
says after which frame), a frame size that changes mid-stream, an image sequence with gaps in its numbering.
A variable frame rate is kept, not refused: every frame carries its own time, and ``VideoInfo.variable_rate``
says so (the layered video's per-frame timings follow the footage).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

SEQUENCE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".bmp", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".mts", ".m2ts")
"""File names taken as footage (anything FFmpeg reads works; these are what a file picker offers)."""


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float
    """The average frame rate."""
    frame_count: int | None
    """From the container when it says; None when only decoding would tell."""
    codec: str
    variable_rate: bool | None
    """True when the first frames' time steps differ (None: not probed)."""


@dataclass(frozen=True)
class Frame:
    index: int
    """Position in the footage, from 0 (before ``start`` and ``stride`` are applied)."""
    time_s: float
    rgb: np.ndarray
    """(h, w, 3) uint8."""


def _open(path: Path):
    try:
        import av
    except ImportError:
        raise InputError("reading video needs PyAV (pip install av)") from None
    if not path.is_file():
        raise InputError(f"{path}: no such video file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(f"{path}: not a readable video (corrupt, truncated or another kind of file): {exc}") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: the file has no video stream")
    return av, container


def probe_video(path: str | Path, probe_frames: int = 12) -> VideoInfo:
    """What the video is, from its container and its first ``probe_frames`` frames (zero frames is an error)."""
    path = Path(path)
    av, container = _open(path)
    with container:
        stream = container.streams.video[0]
        times = []
        try:
            for frame in container.decode(stream):
                times.append(float(frame.time) if frame.time is not None else float(len(times)))
                if len(times) >= probe_frames:
                    break
        except av.error.FFmpegError as exc:
            raise InputError(f"{path}: the video cannot be decoded: {exc}") from None
        if not times:
            raise InputError(f"{path}: the video has no frames")
        steps = np.diff(times)
        variable = bool(len(steps) > 1 and np.ptp(steps) > 0.1 * max(float(np.median(steps)), 1e-6))
        rate = stream.average_rate or stream.guessed_rate
        return VideoInfo(
            path=str(path),
            width=int(stream.codec_context.width),
            height=int(stream.codec_context.height),
            fps=float(rate) if rate else 0.0,
            frame_count=int(stream.frames) or None,
            codec=stream.codec_context.name,
            variable_rate=variable,
        )


def _check_range(start: int, end: int | None, stride: int) -> None:
    if start < 0 or stride < 1 or (end is not None and end < start):
        raise InputError(
            f"frame range start {start}, end {end}, stride {stride}: start >= 0, end >= start, stride >= 1"
        )


def read_video(path: str | Path, start: int = 0, end: int | None = None, stride: int = 1) -> Iterator[Frame]:
    """Frames ``start``, ``start + stride``, ... up to ``end`` (inclusive; None: the last) of a video file."""
    _check_range(start, end, stride)
    path = Path(path)
    av, container = _open(path)
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        size = None
        index = -1
        try:
            for index, frame in enumerate(container.decode(stream)):
                if size is None:
                    size = (frame.width, frame.height)
                elif (frame.width, frame.height) != size:
                    raise InputError(
                        f"{path}: frame {index} is {frame.width}x{frame.height}, the video started at "
                        f"{size[0]}x{size[1]}; a frame size change mid-stream is not supported (split the video)"
                    )
                if end is not None and index > end:
                    break
                if index >= start and (index - start) % stride == 0:
                    time_s = float(frame.time) if frame.time is not None else index / float(stream.average_rate or 1)
                    yield Frame(index, time_s, frame.to_ndarray(format="rgb24"))
        except av.error.FFmpegError as exc:
            raise InputError(f"{path}: the video breaks off after frame {index}: {exc}") from None
        if index < 0:
            raise InputError(f"{path}: the video has no frames")
        if index < start:
            raise InputError(f"{path}: the video has {index + 1} frames; the range starts at frame {start}")


def sequence_files(folder_or_first: str | Path, suffixes: tuple[str, ...] = SEQUENCE_SUFFIXES) -> list[Path]:
    """The frames of a numbered image sequence, in order: a folder of images, or one of its files. The numbers
    must run without gaps (a missing frame would shift every later one)."""
    path = Path(folder_or_first)
    folder = path if path.is_dir() else path.parent
    if not folder.is_dir():
        raise InputError(f"{path}: no such image sequence")
    numbered: dict[str, list[tuple[int, Path]]] = {}
    for entry in folder.iterdir():
        match = re.fullmatch(r"(.*?)(\d+)", entry.stem)
        if entry.is_file() and entry.suffix.lower() in suffixes and match:
            numbered.setdefault(match.group(1) + entry.suffix.lower(), []).append((int(match.group(2)), entry))
    if path.is_file():
        match = re.fullmatch(r"(.*?)(\d+)", path.stem)
        key = (match.group(1) if match else path.stem) + path.suffix.lower()
        numbered = {key: numbered.get(key, [])}
    if not numbered or not any(numbered.values()):
        raise InputError(f"{path}: no numbered images (name0001.png, ...) to read as a sequence")
    if len(numbered) > 1:
        names = ", ".join(sorted(numbered))
        raise InputError(f"{folder}: several image sequences ({names}); name one of their files")
    frames = sorted(next(iter(numbered.values())))
    numbers = [n for n, _ in frames]
    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    if missing:
        shown = ", ".join(str(n) for n in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise InputError(f"{folder}: the image sequence has gaps: frames {shown} are missing")
    return [p for _, p in frames]


def read_sequence(
    folder_or_first: str | Path, fps: float, start: int = 0, end: int | None = None, stride: int = 1
) -> Iterator[Frame]:
    """Frames of a numbered image sequence at ``fps``, with the same range rules as ``read_video``."""
    from PIL import Image

    _check_range(start, end, stride)
    if not fps > 0:
        raise InputError(f"an image sequence needs a frame rate above 0, not {fps}")
    files = sequence_files(folder_or_first)
    size = None
    for index in range(start, len(files) if end is None else min(end + 1, len(files)), stride):
        try:
            with Image.open(files[index]) as image:
                rgb = np.asarray(image.convert("RGB"))
        except OSError as exc:
            raise InputError(f"{files[index]}: cannot read this frame: {exc}") from None
        if size is None:
            size = rgb.shape[:2]
        elif rgb.shape[:2] != size:
            raise InputError(
                f"{files[index]} is {rgb.shape[1]}x{rgb.shape[0]}, the sequence started at {size[1]}x{size[0]}"
            )
        yield Frame(index, index / fps, rgb)
