"""OpenEXR files written and read with numpy and zlib alone, so Blender needs no extra library.

- ``write_exr``: a flat scanline file (one part) of named channels, ZIP-compressed (16 scanlines a block):
  the comp export's multilayer frames, with channel sets ``L00.R``, ``L00.G``, ... beside the beauty's ``R``,
  ``G``, ``B``, ``A``, ``Z``.
- ``write_deep_exr``: a deep scanline file (one part), ZIPS-compressed (one scanline a chunk: Nuke's DeepRead
  reads scanline deep files, not tiled ones), any number of samples per pixel.
- ``read_exr``: the flat scanline files Blender writes for the comp export's passes (uncompressed or ZIP/ZIPS,
  HALF or FLOAT channels).

The layout follows the OpenEXR file format (openexr.com, "OpenEXR File Layout"): magic number, version
field, header attributes, a chunk offset table, then the chunks. ZIP data is the block's bytes split into
even and odd positions, delta-encoded, then deflated; a block that does not shrink is stored as it is.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import ExportError

MAGIC = 20000630
VERSION = 2
NON_IMAGE_FLAG = 0x800  # deep data
LONG_NAMES_FLAG = 0x400

HALF, FLOAT = 1, 2
_DTYPES = {HALF: np.dtype("<f2"), FLOAT: np.dtype("<f4"), 0: np.dtype("<u4")}
NO_COMPRESSION, RLE, ZIPS, ZIP = 0, 1, 2, 3
_LINES = {NO_COMPRESSION: 1, RLE: 1, ZIPS: 1, ZIP: 16}
_ZLIB_LEVEL = 4
"""Deflate level: close to the best size for render passes at a fraction of level 9's time."""


# -- writing -----------------------------------------------------------------------------------------------


def _attribute(name: str, kind: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value


def _chlist(channels: Mapping[str, int]) -> bytes:
    out = b""
    for name in sorted(channels, key=lambda n: n.encode()):
        out += name.encode() + b"\0" + struct.pack("<iB3xii", channels[name], 0, 1, 1)
    return out + b"\0"


def _header(
    width: int, height: int, channels: Mapping[str, int], compression: int, extra: Mapping[str, str], deep_chunks=None
) -> bytes:
    box = struct.pack("<iiii", 0, 0, width - 1, height - 1)
    parts = [
        _attribute("channels", "chlist", _chlist(channels)),
        _attribute("compression", "compression", struct.pack("<B", compression)),
        _attribute("dataWindow", "box2i", box),
        _attribute("displayWindow", "box2i", box),
        _attribute("lineOrder", "lineOrder", struct.pack("<B", 0)),
        _attribute("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
        _attribute("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0)),
        _attribute("screenWindowWidth", "float", struct.pack("<f", 1.0)),
    ]
    if deep_chunks is not None:
        parts += [
            _attribute("type", "string", b"deepscanline"),
            _attribute("version", "int", struct.pack("<i", 1)),
            _attribute("chunkCount", "int", struct.pack("<i", deep_chunks)),
        ]
    for key, text in extra.items():
        parts.append(_attribute(key, "string", text.encode("utf-8")))
    return b"".join(parts) + b"\0"


def _zip(raw: bytes) -> bytes:
    """OpenEXR's ZIP: bytes reordered (even positions, then odd), delta-encoded, deflated."""
    data = np.frombuffer(raw, np.uint8)
    reordered = np.concatenate([data[0::2], data[1::2]])
    delta = reordered.copy()
    delta[1:] = (reordered[1:].astype(np.int16) - reordered[:-1].astype(np.int16) + 128).astype(np.uint8)
    return zlib.compress(delta.tobytes(), _ZLIB_LEVEL)


def _unzip(packed: bytes, size: int) -> bytes:
    delta = np.frombuffer(zlib.decompress(packed), np.uint8)
    if delta.size != size:
        raise ValueError(f"a ZIP block holds {delta.size} bytes, {size} expected")
    reordered = np.empty_like(delta)
    reordered[0] = delta[0]
    reordered[1:] = (np.cumsum(delta[1:].astype(np.int64) - 128) + int(delta[0])).astype(np.uint8)
    out = np.empty(size, np.uint8)
    half = (size + 1) // 2
    out[0::2] = reordered[:half]
    out[1::2] = reordered[half:]
    return out.tobytes()


def _pack(raw: bytes, compression: int) -> bytes:
    if compression == NO_COMPRESSION:
        return raw
    packed = _zip(raw)
    return packed if len(packed) < len(raw) else raw  # readers take an unshrunk block as stored


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.part")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _check_names(names) -> None:
    for name in names:
        if not name or len(name.encode()) > 255 or "\0" in name:
            raise ExportError(f"EXR channel name {name!r} is empty, too long or holds a NUL")


def write_exr(
    path: str | os.PathLike,
    channels: Mapping[str, np.ndarray],
    types: Mapping[str, int] | None = None,
    compression: int = ZIP,
    attributes: Mapping[str, str] | None = None,
) -> None:
    """Write ``channels`` (name -> (h, w) array, all one size) as a flat scanline EXR.

    ``types`` gives a channel's pixel type (``HALF`` or ``FLOAT``; default ``HALF``); ``attributes`` adds
    string attributes to the header.
    """
    if not channels:
        raise ExportError("an EXR file needs at least one channel")
    _check_names(channels)
    shapes = {np.shape(v) for v in channels.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2 or 0 in next(iter(shapes)):
        raise ExportError(f"EXR channels must be non-empty 2-D arrays of one size, not {sorted(shapes)}")
    height, width = next(iter(shapes))
    types = {name: (types or {}).get(name, HALF) for name in channels}
    names = sorted(channels, key=lambda n: n.encode())
    arrays = [np.ascontiguousarray(channels[name], _DTYPES[types[name]]) for name in names]
    header = _header(width, height, types, compression, attributes or {})
    lines = _LINES[compression]
    chunks = []
    for y in range(0, height, lines):
        # A block is each scanline's channels one after another (in name order), each a row of pixels.
        raw = b"".join(array[row].tobytes() for row in range(y, min(y + lines, height)) for array in arrays)
        data = _pack(raw, compression)
        chunks.append(struct.pack("<ii", y, len(data)) + data)
    _assemble(Path(path), header, chunks, 0, names)


def _assemble(path: Path, header: bytes, chunks: list[bytes], flags: int, names) -> None:
    flags |= LONG_NAMES_FLAG if any(len(n.encode()) > 31 for n in names) else 0
    start = 8 + len(header) + 8 * len(chunks)
    offsets, position = [], start
    for chunk in chunks:
        offsets.append(position)
        position += len(chunk)
    prefix = struct.pack("<ii", MAGIC, VERSION | flags) + header + struct.pack(f"<{len(offsets)}Q", *offsets)
    _write_atomically(path, prefix + b"".join(chunks))


def write_deep_exr(
    path: str | os.PathLike,
    counts: np.ndarray,
    samples: Mapping[str, np.ndarray],
    types: Mapping[str, int] | None = None,
    compression: int = ZIPS,
    attributes: Mapping[str, str] | None = None,
) -> None:
    """Write a deep scanline EXR: ``counts`` (h, w) samples per pixel, and per channel the samples of all
    pixels in row-major pixel order, each pixel's in the order given (callers sort them front to back).

    ``compression`` is ``ZIPS``, ``RLE`` is not offered, or ``NO_COMPRESSION``; channels default to FLOAT.
    """
    if compression not in (ZIPS, NO_COMPRESSION):
        raise ExportError("deep EXR files are written with ZIPS compression or none")
    counts = np.asarray(counts)
    if counts.ndim != 2 or 0 in counts.shape or counts.min() < 0:
        raise ExportError("deep sample counts must be a non-empty 2-D array of counts >= 0")
    if not samples:
        raise ExportError("a deep EXR file needs at least one channel")
    _check_names(samples)
    total = int(counts.sum())
    if any(np.shape(v) != (total,) for v in samples.values()):
        raise ExportError(f"every deep channel needs {total} samples (the counts' sum)")
    height, width = counts.shape
    types = {name: (types or {}).get(name, FLOAT) for name in samples}
    names = sorted(samples, key=lambda n: n.encode())
    arrays = [np.ascontiguousarray(samples[name], _DTYPES[types[name]]) for name in names]
    header = _header(width, height, types, compression, attributes or {}, deep_chunks=height)
    row_starts = np.concatenate([[0], np.cumsum(counts.sum(axis=1))]).astype(np.int64)
    chunks = []
    for y in range(height):
        table = np.cumsum(counts[y]).astype("<i4").tobytes()  # running total within the scanline
        lo, hi = row_starts[y], row_starts[y + 1]
        raw = b"".join(array[lo:hi].tobytes() for array in arrays)
        packed_table, packed_data = _pack(table, compression), _pack(raw, compression) if raw else b""
        chunks.append(
            struct.pack("<iQQQ", y, len(packed_table), len(packed_data), len(raw)) + packed_table + packed_data
        )
    _assemble(Path(path), header, chunks, NON_IMAGE_FLAG, names)


# -- reading -----------------------------------------------------------------------------------------------


def _read_attributes(data: bytes, position: int) -> tuple[dict[str, tuple[str, bytes]], int]:
    attributes = {}
    while data[position] != 0:
        end = data.index(b"\0", position)
        name = data[position:end].decode()
        type_end = data.index(b"\0", end + 1)
        kind = data[end + 1 : type_end].decode()
        (size,) = struct.unpack_from("<i", data, type_end + 1)
        start = type_end + 5
        attributes[name] = (kind, data[start : start + size])
        position = start + size
    return attributes, position + 1


def _parse_chlist(value: bytes) -> list[tuple[str, int]]:
    channels, position = [], 0
    while value[position] != 0:
        end = value.index(b"\0", position)
        pixel_type, _, x_sampling, y_sampling = struct.unpack_from("<iB3xii", value, end + 1)
        if (x_sampling, y_sampling) != (1, 1):
            raise ValueError("subsampled channels are not supported")
        channels.append((value[position:end].decode(), pixel_type))
        position = end + 17
    return channels


def read_exr(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The channels of a flat scanline EXR (no compression, ZIPS or ZIP) as float32 (h, w) arrays."""
    data = Path(path).read_bytes()
    try:
        magic, version = struct.unpack_from("<ii", data, 0)
        if magic != MAGIC or version & 0xFF != VERSION or version & (0x200 | NON_IMAGE_FLAG | 0x1000):
            raise ValueError("not a single-part flat scanline OpenEXR file")
        attributes, position = _read_attributes(data, 8)
        compression = attributes["compression"][1][0]
        if compression not in _LINES or compression == RLE:
            raise ValueError(f"compression {compression} is not supported")
        x0, y0, x1, y1 = struct.unpack("<iiii", attributes["dataWindow"][1])
        width, height = x1 - x0 + 1, y1 - y0 + 1
        channels = _parse_chlist(attributes["channels"][1])
        lines = _LINES[compression]
        count = (height + lines - 1) // lines
        offsets = struct.unpack_from(f"<{count}Q", data, position)
        out = {name: np.empty((height, width), np.float32) for name, _ in channels}
        for offset in offsets:
            y, size = struct.unpack_from("<ii", data, offset)
            rows = min(lines, y1 + 1 - y)
            expected = rows * width * sum(_DTYPES[t].itemsize for _, t in channels)
            block = data[offset + 8 : offset + 8 + size]
            raw = block if size == expected else _unzip(block, expected)
            cursor = 0
            for row in range(y - y0, y - y0 + rows):
                for name, pixel_type in channels:
                    dtype = _DTYPES[pixel_type]
                    out[name][row] = np.frombuffer(raw, dtype, width, cursor)
                    cursor += width * dtype.itemsize
    except (ValueError, KeyError, IndexError, struct.error, zlib.error) as exc:
        raise ExportError(f"{path}: cannot read this EXR file: {exc}") from None
    return out
