"""PC2 point caches: per-frame vertex positions in the format Blender's Mesh Cache modifier reads.

A PC2 file is a 32-byte header and then the samples, all little-endian::

    char[12] "POINTCACHE2\\0"   int32 version (1)   int32 numPoints
    float32 startFrame          float32 sampleRate  int32 numSamples
    numSamples * numPoints * (x, y, z) float32, sample after sample

Blender's reader (``MOD_meshcache_pc2``) needs numPoints to equal the mesh's vertex count and numSamples to be
positive; it locates sample i at ``32 + 12 * numPoints * i``, so the size must be exact. Frames arrive one by
one from the video pipeline: ``PC2Writer`` appends them and patches numSamples when it is closed, so memory
stays one frame. Imports only numpy and the standard library, so Blender can read caches with it.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"POINTCACHE2\0"
VERSION = 1
HEADER = struct.Struct("<12siiffi")
"""magic, version, numPoints, startFrame, sampleRate, numSamples."""
HEADER_SIZE = HEADER.size
_SAMPLES_OFFSET = HEADER_SIZE - 4
"""Where numSamples lies: the writer patches it there when it closes."""
_FLOAT = np.dtype("<f4")
_CHUNK_BYTES = 16 << 20
"""Values are checked in pieces of this size, so checking a cache of gigabytes needs little memory."""


class PC2Problem(ValueError):
    """The file is not a complete, well-formed PC2 point cache."""


@dataclass(frozen=True)
class PC2Header:
    vertex_count: int
    start_frame: float
    sample_rate: float
    sample_count: int

    @property
    def data_bytes(self) -> int:
        """Bytes of samples the header promises."""
        return self.sample_count * self.vertex_count * 3 * _FLOAT.itemsize

    @property
    def file_bytes(self) -> int:
        return HEADER_SIZE + self.data_bytes


def _check_frame(points: np.ndarray, vertex_count: int) -> np.ndarray:
    array = np.asarray(points)
    if array.shape != (vertex_count, 3):
        raise ValueError(f"a frame of points must be ({vertex_count}, 3), not {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"points must be floating point, not {array.dtype}")
    frame = np.ascontiguousarray(array, dtype=_FLOAT)
    if not np.isfinite(frame).all():
        raise ValueError("points must be finite")
    return frame


def _check_timing(start_frame: float, sample_rate: float) -> tuple[float, float]:
    start, rate = float(start_frame), float(sample_rate)
    # Stored as float32: a value beyond its range would be written as inf.
    if not (math.isfinite(start) and abs(start) < 1e30):
        raise ValueError(f"start_frame must be finite, not {start_frame!r}")
    if not (math.isfinite(rate) and 0.0 < rate < 1e30):
        raise ValueError(f"sample_rate must be finite and positive, not {sample_rate!r}")
    return start, rate


class PC2Writer:
    """A PC2 file written one frame at a time; ``close`` (or leaving the ``with`` block normally) patches
    numSamples.

    The file holds numSamples 0 until then: Blender and ``read_pc2`` refuse it, so a cache cut short by a crash
    or an exception in the ``with`` block is never taken for a complete one.
    """

    def __init__(self, path: str | os.PathLike, vertex_count: int, start_frame: float = 0.0, sample_rate: float = 1.0):
        if isinstance(vertex_count, bool) or not isinstance(vertex_count, int | np.integer):
            raise ValueError(f"vertex_count must be an integer, not {vertex_count!r}")
        if not 1 <= int(vertex_count) <= 2**31 - 1:
            raise ValueError(f"vertex_count must be in 1..{2**31 - 1}, not {vertex_count}")
        self.path = Path(path)
        self.vertex_count = int(vertex_count)
        self.start_frame, self.sample_rate = _check_timing(start_frame, sample_rate)
        self.sample_count = 0
        self._handle = open(self.path, "wb")  # noqa: SIM115 - held until close
        try:
            self._handle.write(HEADER.pack(MAGIC, VERSION, self.vertex_count, self.start_frame, self.sample_rate, 0))
        except BaseException:
            self._handle.close()
            raise

    @property
    def closed(self) -> bool:
        return self._handle.closed

    def add(self, points: np.ndarray) -> None:
        """Append one frame: (vertex_count, 3) finite floating-point positions, stored as float32."""
        if self._handle.closed:
            raise ValueError(f"{self.path.name} is closed")
        frame = _check_frame(points, self.vertex_count)
        if self.sample_count >= 2**31 - 1:
            raise ValueError("a PC2 file holds at most 2**31 - 1 samples")
        self._handle.write(frame.tobytes())
        self.sample_count += 1

    def close(self) -> int:
        """Patch numSamples into the header and close the file; returns the samples written."""
        if not self._handle.closed:
            try:
                self._handle.seek(_SAMPLES_OFFSET)
                self._handle.write(struct.pack("<i", self.sample_count))
            finally:
                self._handle.close()
        return self.sample_count

    def abandon(self) -> None:
        """Close the file leaving numSamples 0, so that no reader takes what was written for a whole cache."""
        self._handle.close()

    def __enter__(self) -> PC2Writer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abandon()


def write_pc2(path: str | os.PathLike, points: np.ndarray, start_frame: float = 0.0, sample_rate: float = 1.0) -> int:
    """Write (F, V, 3) positions as a PC2 file, F >= 1 samples of V points; returns the bytes written."""
    array = np.asarray(points)
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"points must be (frames, vertices, 3) with at least one of each, not {array.shape}")
    with PC2Writer(path, array.shape[1], start_frame, sample_rate) as writer:
        for frame in array:
            writer.add(frame)
    return HEADER_SIZE + array.shape[0] * array.shape[1] * 3 * _FLOAT.itemsize


def read_pc2_header(path: str | os.PathLike) -> PC2Header:
    """The header of a PC2 file, checked: magic, version 1, positive counts, finite timing, and a file of
    exactly the size the counts promise (neither truncated nor with anything after the last sample)."""
    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.read(HEADER_SIZE)
        size = os.fstat(handle.fileno()).st_size
    if len(head) < HEADER_SIZE:
        raise PC2Problem(f"is {size} bytes: too short for a PC2 header ({HEADER_SIZE} bytes)")
    magic, version, vertex_count, start, rate, samples = HEADER.unpack(head)
    if magic != MAGIC:
        raise PC2Problem("is not a PC2 point cache (no POINTCACHE2 header)")
    if version != VERSION:
        raise PC2Problem(f"is PC2 version {version}; only version {VERSION} exists")
    if vertex_count < 1:
        raise PC2Problem(f"header says {vertex_count} points")
    if samples < 1:
        raise PC2Problem(f"header says {samples} samples (a cache whose writing was never finished?)")
    if not math.isfinite(start) or not (math.isfinite(rate) and rate > 0.0):
        raise PC2Problem(f"header has start frame {start!r} and sample rate {rate!r}: both must be finite, rate > 0")
    header = PC2Header(vertex_count, start, rate, samples)
    if size != header.file_bytes:
        state = "truncated" if size < header.file_bytes else "longer than its header says"
        raise PC2Problem(
            f"is {size} bytes but {samples} samples of {vertex_count} points need {header.file_bytes}: {state}"
        )
    return header


def check_pc2(path: str | os.PathLike) -> PC2Header:
    """``read_pc2_header``, then every value checked to be finite, read in bounded pieces."""
    header = read_pc2_header(path)
    per_sample = header.vertex_count * 3
    samples_per_chunk = max(1, _CHUNK_BYTES // (per_sample * _FLOAT.itemsize))
    with open(path, "rb") as handle:
        handle.seek(HEADER_SIZE)
        done = 0
        while done < header.sample_count:
            count = min(samples_per_chunk, header.sample_count - done)
            values = np.fromfile(handle, dtype=_FLOAT, count=count * per_sample)
            if values.size != count * per_sample:
                raise PC2Problem("is truncated")  # it shrank since its size was checked
            if not np.isfinite(values).all():
                bad = done + int(np.flatnonzero(~np.isfinite(values))[0]) // per_sample
                raise PC2Problem(f"sample {bad} holds values that are not finite (NaN or infinity)")
            done += count
    return header


def read_pc2_sample(path: str | os.PathLike, header: PC2Header, index: int) -> np.ndarray:
    """Sample ``index`` (V, 3) float32 of a PC2 file whose ``header`` was read (values not checked)."""
    if not 0 <= index < header.sample_count:
        raise ValueError(f"sample {index} is not in 0..{header.sample_count - 1}")
    count = header.vertex_count * 3
    with open(path, "rb") as handle:
        handle.seek(HEADER_SIZE + index * count * _FLOAT.itemsize)
        values = np.fromfile(handle, dtype=_FLOAT, count=count)
    if values.size != count:
        raise PC2Problem("is truncated")
    return values.reshape(header.vertex_count, 3).astype(np.float32, copy=False)


def read_pc2(path: str | os.PathLike, max_bytes: int, mmap: bool = False) -> tuple[np.ndarray, float, float]:
    """The positions (F, V, 3) float32, start frame and sample rate of a PC2 file of at most ``max_bytes``
    of samples, every value checked to be finite.

    ``mmap`` maps the file read-only instead of reading it (the values are still checked, in pieces)."""
    header = check_pc2(path) if mmap else read_pc2_header(path)
    if header.data_bytes > max_bytes:
        raise PC2Problem(f"holds {header.data_bytes} bytes of samples; at most {max_bytes} may be read")
    shape = (header.sample_count, header.vertex_count, 3)
    if mmap:
        points = np.memmap(path, dtype=_FLOAT, mode="r", offset=HEADER_SIZE, shape=shape)
    else:
        with open(path, "rb") as handle:
            handle.seek(HEADER_SIZE)
            flat = np.fromfile(handle, dtype=_FLOAT, count=int(np.prod(shape)))
        if flat.size != int(np.prod(shape)):
            raise PC2Problem("is truncated")
        if not np.isfinite(flat).all():
            raise PC2Problem("holds values that are not finite (NaN or infinity)")
        points = flat.reshape(shape).astype(np.float32, copy=False)
    return points, header.start_frame, header.sample_rate
