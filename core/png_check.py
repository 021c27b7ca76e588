"""Check a PNG file without decoding it to pixels: header, chunk CRCs and the exact size of its image data.

The package reader uses this for layer textures: it must say "valid" only for files Blender will read as the
RGBA image the manifest promises, it must not be fooled into decompressing gigabytes (a 1 KB PNG can claim
100000x100000 pixels), and it must not need OpenCV or Pillow (Blender's Python has neither). Decompression
streams in bounded pieces and stops as soon as the data is longer than the header says.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPES = {0: ("gray", 1), 2: ("RGB", 3), 3: ("palette", 1), 4: ("gray+alpha", 2), 6: ("RGBA", 4)}
_CHUNK_LIMIT = 1 << 31
_PIECE = 1 << 20


class PngProblem(ValueError):
    """The file is not a complete, well-formed PNG."""


@dataclass(frozen=True)
class PngHeader:
    width: int
    height: int
    bit_depth: int
    colour_type: int
    interlaced: bool

    @property
    def colour(self) -> str:
        return COLOUR_TYPES.get(self.colour_type, ("unknown", 0))[0]

    def raw_size(self) -> int:
        """Bytes of filtered scanlines a non-interlaced image decompresses to."""
        channels = COLOUR_TYPES[self.colour_type][1]
        row = (self.width * channels * self.bit_depth + 7) // 8
        return self.height * (row + 1)


def read_header(path: Path) -> PngHeader:
    """The IHDR fields; raises ``PngProblem`` when the file does not start like a PNG."""
    with open(path, "rb") as handle:
        head = handle.read(33)
    if len(head) < 33 or head[:8] != SIGNATURE:
        raise PngProblem("not a PNG file")
    length, kind = struct.unpack(">I4s", head[8:16])
    if kind != b"IHDR" or length != 13:
        raise PngProblem("PNG has no IHDR header")
    width, height, bit_depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    if zlib.crc32(head[12:29]) != struct.unpack(">I", head[29:33])[0]:
        raise PngProblem("PNG header checksum is wrong")
    if colour_type not in COLOUR_TYPES or width == 0 or height == 0:
        raise PngProblem(f"PNG header is invalid ({width}x{height}, colour type {colour_type})")
    return PngHeader(width, height, bit_depth, colour_type, interlace == 1)


def check_complete(path: Path, header: PngHeader) -> None:
    """Walk every chunk (CRCs checked) and inflate the image data, which must be exactly ``raw_size`` bytes.

    Interlaced images are checked for structure only (their data size depends on the passes); the package
    writer never makes them.
    """
    expected = header.raw_size()
    inflater = zlib.decompressobj()
    produced = 0
    seen_end = False
    with open(path, "rb") as handle:
        handle.seek(8)
        while True:
            prefix = handle.read(8)
            if len(prefix) < 8:
                break
            length, kind = struct.unpack(">I4s", prefix)
            if length >= _CHUNK_LIMIT:
                raise PngProblem(f"PNG chunk {kind!r} claims {length} bytes")
            crc = zlib.crc32(kind)
            remaining = length
            while remaining:
                piece = handle.read(min(remaining, _PIECE))
                if not piece:
                    raise PngProblem("PNG is truncated")
                remaining -= len(piece)
                crc = zlib.crc32(piece, crc)
                if kind == b"IDAT" and not header.interlaced:
                    produced += _inflate(inflater, piece, expected - produced)
            stored = handle.read(4)
            if len(stored) < 4 or struct.unpack(">I", stored)[0] != crc:
                raise PngProblem(f"PNG chunk {kind.decode('latin-1')!r} is truncated or its checksum is wrong")
            if kind == b"IEND":
                seen_end = True
                break
    if not seen_end:
        raise PngProblem("PNG is truncated (no IEND chunk)")
    if not header.interlaced:
        try:
            produced += len(inflater.flush())
        except zlib.error as exc:
            raise PngProblem(f"PNG image data is corrupt ({exc})") from None
        if produced != expected or not inflater.eof:
            raise PngProblem(f"PNG image data is {produced} bytes; {header.width}x{header.height} needs {expected}")


def _inflate(inflater: zlib._Decompress, data: bytes, room: int) -> int:
    """Inflate ``data`` in bounded steps; more output than ``room`` means the data does not fit the header."""
    produced = 0
    try:
        while data:
            out = inflater.decompress(data, _PIECE)
            produced += len(out)
            if produced > room:
                raise PngProblem("PNG image data is larger than its header says")
            data = inflater.unconsumed_tail
    except zlib.error as exc:
        raise PngProblem(f"PNG image data is corrupt ({exc})") from None
    return produced
