"""A fuzzer for the layer-package reader: mutate real packages, read them, and judge the outcome.

Used by ``tests/test_package_fuzz.py`` (a bounded, seeded hypothesis run) and ``scripts/fuzz_package.py``
(the long run with per-class statistics). The property it checks is the reader's contract: for any folder,
``core.package.read_package`` and ``python -m core validate [--json]`` either accept a package that is
valid and consistent, or refuse it with ``PackageError`` (exit 5); never another exception, another exit
code, or a "valid" for a package that is not.

* ``make_seed_packages`` converts a tiny synthetic photo (64x48, working size 32x24) with the real
  pipeline into one mesh and one MPI package: every mutation starts from a fresh copy of one of them.
* Each mutation operator is a class (its name is the class the statistics are counted under); it draws
  its parameters from a ``Draw`` (hypothesis or ``random.Random``) and edits the copy in place.
* ``examine`` runs the reader and both validate forms, classifies the result ("rejected", "accepted",
  "inconsistent", "crashed") and, for accepted packages, asks ``oracle_problems`` (this module's own
  checks of the folder, independent of the reader) whether the package really is valid.

The oracle's contract (what an accepted package must satisfy, checked on the files themselves):

* ``manifest.json``: a regular file of at most 4 MiB, UTF-8 JSON without NaN/Infinity, duplicate keys,
  lone surrogates, integers over 19 digits or nesting over 32 levels; an object.
* ``format`` is ``photo3d.layers``; ``version`` is a string ``MAJOR.MINOR`` of 1-3 ASCII digits each, major 1,
  minor at most the reader's own ``FORMAT_VERSION`` minor; ``representation`` is ``mesh`` or ``mpi``.
* ``camera``: integer (not bool or float) ``width``/``height`` in 1..100000 with at most 100 MP; finite
  positive ``focal_px``; finite ``cx``/``cy``; ``fov_x_deg``/``fov_y_deg``, when given, finite in (0, 180)
  and what the focal length gives. ``source``: an object with a string ``path`` and the camera's size.
* ``work_size``: ``[height, width]`` integers, at least 1, at most the camera's.
* ``depth``: ``min``/``max`` finite positive with min <= max, string ``kind``/``units``/``source``, and
  ``map``: a float32 ``.npy`` of ``work_size``, finite and positive.
* ``layers``: 1 to 256 objects; ``index`` equal to the position, a non-empty unique string ``name``,
  ``depth_range`` two finite positive numbers (low first), integer ``pixel_count`` 0..width*height,
  ``texture`` an 8-bit RGBA PNG (complete, CRCs right, data exactly as long as the header says) of the
  camera's size (mesh) or ``work_size`` (MPI), grown by twice the optional ``border`` (an integer 0..half
  the longest side, plus one; non-zero only in a mesh package) each way; mesh layers: ``mesh`` an NPZ of
  exactly ``vertices``
  (float32 N x 3, finite, z < 0), ``uvs`` (float32 N x 2, finite), ``faces`` (int32 M x 3, M >= 1,
  indices in 0..N-1), each member at most 256 MiB unpacked, not encrypted, a method zipfile reads (stored,
  deflate, bzip2, lzma), CRCs right, and ``vertices``/``triangles``
  counts, when given, equal to the arrays'; MPI layers: ``plane_depth`` finite positive and strictly
  decreasing (back to front).
* Every listed file (textures, meshes, depth map, and the contact sheet, a PNG by its header) is a
  relative, portable path that resolves to a regular file inside the package with a single link, and no
  two entries share a file.
* Optional fields, when present and not null (null means absent): ``median_depth`` finite positive,
  ``inpainted_fraction`` null or in [0, 1], ``timings`` an object of finite non-negative numbers, ``models``
  an object of strings.
* ``validate`` exits 0 in both forms, ``--json`` prints strict JSON with ``"valid": true``, and the text
  summary holds no control characters but newlines.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import io
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import stat
import struct
import tempfile
import threading
import time
import traceback
import tracemalloc
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SEED_WIDTH, SEED_HEIGHT = 64, 48
SEED_WORK_SIZE = 32
"""Longest side of the seeds' working resolution: MPI textures and the depth map are 32x24, unlike the photo."""

ORACLE_MAX_MANIFEST = 4 << 20
ORACLE_MAX_LAYERS = 256
ORACLE_MAX_SIDE = 100_000
ORACLE_MAX_PIXELS = 100_000_000
ORACLE_MAX_MEMBER = 256 << 20
ORACLE_MAX_JSON_DEPTH = 32
ORACLE_MAX_INT_DIGITS = 19
ORACLE_MAX_PNG_BYTES = 64 << 20
BOMB_BYTES = (1 << 30) + 8
"""What the zip-bomb member unpacks to (about 1 GiB, from about 1 MB)."""

OUTCOMES = ("rejected", "accepted", "inconsistent", "crashed")
FUZZER_ERROR = "FUZZER ERROR"
"""Starts the description of a mutation that raised: a bug of this module, not of the reader."""
_OPTIONAL_SECTIONS = ("options", "stats", "timings", "models", "created_by", "created_at")


# --------------------------------------------------------------------------------------------------------------
# Seeds


def make_seed_packages(folder: str | os.PathLike) -> dict[str, Path]:
    """A small valid mesh package and a small valid MPI package, written by the real pipeline (no networks)."""
    from core.options import PipelineOptions
    from core.pipeline import convert_image
    from tests.scenes import square_scene

    folder = Path(folder)
    image, depth = square_scene(SEED_HEIGHT, SEED_WIDTH).write(folder / "input")
    seeds = {}
    for kind in ("mesh", "mpi"):
        options = PipelineOptions.from_dict(
            {
                "load": {"work_size": SEED_WORK_SIZE},
                "depth": {"depth_file": str(depth), "depth_kind": "depth"},
                "segment": {"model": "none", "superpixels": 50},
                "inpaint": {"method": "telea"},
                "geometry": {"representation": kind, "mpi_planes": 4, "max_triangles": 64},
            }
        )
        seeds[kind] = Path(convert_image(image, folder / f"seed_{kind}", options).package_path)
        _fix_run_details(seeds[kind])
    return seeds


def _fix_run_details(package: Path) -> None:
    """Give the seed's run-specific fields (folders, clock, timings) fixed values of the same kind, so seeds
    are the same bytes in every run and ``--replay N`` rebuilds exactly the input that example N was."""
    path = package / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["created_at"] = "2026-01-01T00:00:00+00:00"
    manifest["source"]["path"] = "/photo3d-fuzz/input/square.png"
    for section, key in (("depth", "source"), ("models", "depth")):
        manifest[section][key] = "/photo3d-fuzz/input/square_depth.npy"
    manifest["options"]["depth"]["depth_file"] = "/photo3d-fuzz/input/square_depth.npy"
    manifest["timings"] = {stage: 0.01 for stage in manifest["timings"]}
    path.write_text(json.dumps(manifest, indent=2, allow_nan=False), encoding="utf-8")


# --------------------------------------------------------------------------------------------------------------
# Where mutation parameters come from


class Draw:
    """Random choices for mutation parameters; subclasses draw from hypothesis or from ``random.Random``."""

    def integer(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def choice(self, options: Sequence[Any]) -> Any:
        return options[self.integer(0, len(options) - 1)]

    def fraction(self) -> float:
        return self.integer(0, 10_000) / 10_001

    def boolean(self) -> bool:
        return self.integer(0, 1) == 1


class RandomDraw(Draw):
    def __init__(self, rng: random.Random):
        self.rng = rng

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


class HypothesisDraw(Draw):
    """Draws through a hypothesis ``draw`` function (``st.composite`` or ``st.data().draw``)."""

    def __init__(self, draw: Callable[[Any], Any]):
        from hypothesis import strategies as st

        self.draw = draw
        self.st = st

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(self.st.integers(lo, hi))

    def choice(self, options: Sequence[Any]) -> Any:
        return self.draw(self.st.sampled_from(list(options)))


# --------------------------------------------------------------------------------------------------------------
# JSON text with what json.dumps will not write: raw fragments (NaN, huge integers, escapes), duplicate keys


@dataclass(frozen=True)
class Raw:
    """A JSON fragment written as is."""

    text: str


@dataclass
class Pairs:
    """A JSON object written from (key, value) pairs, which may repeat a key."""

    items: list[tuple[str, Any]]


def to_json(value: Any) -> str:
    try:  # the C encoder for every subtree without Raw, Pairs or non-finite floats
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        pass
    if isinstance(value, Raw):
        return value.text
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(to_json(item) for item in value) + "]"
    if isinstance(value, Pairs):
        items = value.items
    elif isinstance(value, dict):
        items = list(value.items())
    else:
        raise TypeError(f"cannot write {type(value).__name__} as JSON")
    return "{" + ", ".join(f"{json.dumps(str(key))}: {to_json(item)}" for key, item in items) + "}"


def _walk(tree: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _walk(value, (*path, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from _walk(value, (*path, index))


def get_at(tree: Any, path: tuple) -> Any:
    for part in path:
        tree = tree[part]
    return tree


def set_at(tree: Any, path: tuple, value: Any) -> Any:
    """``tree`` with the node at ``path`` replaced (the root itself when ``path`` is empty)."""
    if not path:
        return value
    get_at(tree, path[:-1])[path[-1]] = value
    return tree


def _show(value: Any, limit: int = 50) -> str:
    text = value.text if isinstance(value, Raw) else repr(value)
    return text if len(text) <= limit else f"{text[: limit - 12]}...({len(text)} chars)"


# --------------------------------------------------------------------------------------------------------------
# The package copy a mutation works on


def _is_regular(path: Path) -> bool:
    """A regular file (following symlinks); never opens anything, so a FIFO or /dev/zero cannot block us."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _writable(path: Path) -> bool:
    """Safe to open for writing: absent, or a regular file (writing to a FIFO would block)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return True
    except (OSError, ValueError):
        return False


def _remove(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    else:
        shutil.rmtree(path)


@dataclass
class Target:
    """A fresh copy of a seed package (``root``) and a sibling folder ``outside`` for files outside it."""

    root: Path
    outside: Path
    kind: str

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def read_bytes(self, path: Path, limit: int = 128 << 20) -> bytes | None:
        if not _is_regular(path) or os.stat(path).st_size > limit:
            return None
        return path.read_bytes()

    def write_bytes(self, path: Path, data: bytes) -> bool:
        if not _writable(path):
            return False
        path.write_bytes(data)
        return True

    def read_tree(self) -> Any:
        """The manifest as Python values, or ``None`` when an earlier mutation left it unparseable."""
        data = self.read_bytes(self.manifest_path, ORACLE_MAX_MANIFEST * 32)
        if data is None:
            return None
        try:
            return json.loads(data.decode("utf-8"))
        except (ValueError, RecursionError, UnicodeDecodeError):
            return None

    def write_tree(self, tree: Any) -> None:
        self.write_bytes(self.manifest_path, to_json(tree).encode("utf-8", "surrogatepass"))

    def layer_files(self, suffix: str) -> list[Path]:
        layers = self.root / "layers"
        if not layers.is_dir() or layers.is_symlink():
            return []
        return sorted(p for p in layers.iterdir() if p.name.endswith(suffix) and not p.is_dir())

    def package_files(self) -> list[Path]:
        """The package's files and the layers folder, whatever the manifest says now."""
        files = [self.manifest_path, self.root / "depth.npy", self.root / "contact_sheet.png"]
        files += self.layer_files(".png") + self.layer_files(".npz") + [self.root / "layers"]
        return [p for p in files if p.exists() or p.is_symlink()]

    def outside_copy(self, path: Path, name: str | None = None) -> Path:
        """A copy of ``path`` (a valid file when it still is one) in the folder next to the package."""
        self.outside.mkdir(exist_ok=True)
        copy = self.outside / (name or "copy-" + str(len(list(self.outside.iterdir()))))
        try:
            copy = self.outside / (name or path.name)
            if path.is_dir() and not path.is_symlink():
                shutil.copytree(path, copy, dirs_exist_ok=True)
                return copy
            if _is_regular(path):
                shutil.copyfile(path, copy)
                return copy
        except (OSError, ValueError):  # a name an earlier mutation made unusable (NUL, surrogates, too long)
            pass
        copy.write_bytes(b"outside")
        return copy

    def texture_size(self) -> tuple[int, int]:
        """(width, height) a texture of this package must have."""
        if self.kind == "mpi":
            return _seed_work_shape()[::-1]
        return SEED_WIDTH, SEED_HEIGHT

    def load_rgba(self, path: Path) -> np.ndarray:
        """A texture's pixels, or a synthetic RGBA image of the right size when it is no longer readable."""
        from PIL import Image

        try:
            if _is_regular(path):
                with Image.open(path) as image:
                    if image.mode == "RGBA" and image.size[0] * image.size[1] <= 1 << 22:
                        return np.asarray(image.convert("RGBA"))
        except Exception:
            pass
        w, h = self.texture_size()
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (h, w, 4), dtype=np.uint8)

    def load_mesh(self, path: Path) -> dict[str, np.ndarray]:
        """A layer's mesh arrays, or a small valid mesh when an earlier mutation broke them."""
        spec = {"vertices": (np.float32, 3), "uvs": (np.float32, 2), "faces": (np.int32, 3)}
        try:
            if _is_regular(path) and os.stat(path).st_size < 1 << 20:
                with np.load(path, allow_pickle=False) as data:
                    arrays = {name: np.asarray(data[name]) for name in spec}
                shaped = all(
                    a.dtype == spec[n][0] and a.ndim == 2 and a.shape[1] == spec[n][1] for n, a in arrays.items()
                )
                if shaped and len(arrays["faces"]) and len(arrays["uvs"]) == len(arrays["vertices"]) >= 3:
                    return arrays
        except Exception:
            pass
        return {
            "vertices": np.array([[0, 0, -2], [1, 0, -2], [0, 1, -2], [1, 1, -2]], np.float32),
            "uvs": np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32),
            "faces": np.array([[0, 1, 2], [1, 3, 2]], np.int32),
        }


def _seed_work_shape() -> tuple[int, int]:
    """(height, width) of the seeds' working resolution."""
    scale = SEED_WORK_SIZE / max(SEED_WIDTH, SEED_HEIGHT)
    return round(SEED_HEIGHT * scale), round(SEED_WIDTH * scale)


# --------------------------------------------------------------------------------------------------------------
# File builders: PNG, NPY and ZIP bytes written by hand, so every field can be wrong


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(
    width: int,
    height: int,
    bit_depth: int = 8,
    colour_type: int = 6,
    raw: bytes | None = None,
    idat: bytes | None = None,
    interlace: int = 0,
    end: bool = True,
) -> bytes:
    """A PNG from filtered scanlines ``raw`` (zeros when not given) or a given ``idat`` payload."""
    if idat is None:
        if raw is None:
            channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour_type]
            raw = bytes(height * (1 + (width * channels * bit_depth + 7) // 8))
        idat = zlib.compress(raw, 6)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, interlace)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat)
    return out + (png_chunk(b"IEND", b"") if end else b"")


def rgba_scanlines(rgba: np.ndarray, bits: int = 8) -> bytes:
    """Filter-0 scanlines of an (h, w, c) uint8 image, as 8-bit or big-endian 16-bit samples."""
    pixels = rgba.astype(">u2") * 257 if bits == 16 else rgba.astype(np.uint8)
    rows = pixels.reshape(rgba.shape[0], -1).view(np.uint8).reshape(rgba.shape[0], -1)
    return b"".join(b"\x00" + row.tobytes() for row in rows)


def npy_header(shape: tuple, descr: str = "<f4", fortran: bool = False) -> bytes:
    text = repr({"descr": descr, "fortran_order": fortran, "shape": tuple(shape)})
    pad = 64 - (10 + len(text) + 1) % 64
    text = text + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


@dataclass
class ZipMember:
    name: str
    payload: bytes
    """What is stored: the data itself (method 0) or its raw deflate stream (method 8)."""
    crc: int
    size: int
    method: int = 0
    flags: int = 0


def stored(name: str, data: bytes) -> ZipMember:
    return ZipMember(name, data, zlib.crc32(data), len(data))


def zip_bytes(members: Sequence[ZipMember]) -> bytes:
    """A ZIP archive written field by field (no zip64: every member below 4 GiB)."""
    out, central = bytearray(), bytearray()
    for m in members:
        offset = len(out)
        name = m.name.encode("utf-8", "surrogatepass")
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, m.flags, m.method, 0, 0x21, m.crc, len(m.payload), m.size, len(name), 0
        )
        out += name + m.payload
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            m.flags,
            m.method,
            0,
            0x21,
            m.crc,
            len(m.payload),
            m.size,
            len(name),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        central += name
    n = len(members)
    return bytes(out + central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(central), len(out), 0))


_ZERO_BLOCKS: dict[int, bytes] = {}
_ZERO_CRCS: dict[tuple[bytes, int], int] = {}
_FINAL_BLOCK = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)


def _deflate_block(data: bytes) -> bytes:
    """``data`` as deflate blocks ending on a full flush: byte-aligned, no history, so blocks concatenate."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)


def zero_deflate(prefix: bytes, zeros: int) -> bytes:
    """A raw deflate stream of ``prefix`` then ``zeros`` zero bytes: about 1 KB per MiB of zeros.

    Every full-flushed 1 MiB block of zeros compresses to the same bytes, so 1 GiB is one small block
    repeated (milliseconds, the zeros cached) instead of a compression of 1 GiB (5 s)."""
    if zeros not in _ZERO_BLOCKS:
        whole, rest = divmod(zeros, 1 << 20)
        _ZERO_BLOCKS[zeros] = _deflate_block(bytes(1 << 20)) * whole + _deflate_block(bytes(rest))
    return _deflate_block(prefix) + _ZERO_BLOCKS[zeros] + _FINAL_BLOCK


def crc_with_zeros(prefix: bytes, zeros: int) -> int:
    """CRC-32 of ``prefix`` then ``zeros`` zero bytes (0.5 s per GiB, cached)."""
    key = (prefix, zeros)
    if key not in _ZERO_CRCS:
        piece = bytes(1 << 20)
        whole, rest = divmod(zeros, len(piece))
        crc = zlib.crc32(prefix)
        for _ in range(whole):
            crc = zlib.crc32(piece, crc)
        _ZERO_CRCS[key] = zlib.crc32(bytes(rest), crc)
    return _ZERO_CRCS[key]


def zlib_zeros(prefix: bytes, zeros: int) -> bytes:
    """``zero_deflate`` as a zlib stream (header and Adler-32), as PNG image data is."""
    adler = zlib.adler32(prefix)
    low, high = adler & 0xFFFF, adler >> 16
    high = (high + zeros * low) % 65521  # zeros leave the low sum alone and add it to the high one each byte
    return b"\x78\x01" + zero_deflate(prefix, zeros) + struct.pack(">I", (high << 16) | low)


def zip_bomb_member(name: str, columns: int, dtype: str, unpacked: int = BOMB_BYTES) -> ZipMember:
    """An NPZ member holding an all-zero (rows, columns) array of about ``unpacked`` bytes, deflated."""
    itemsize = np.dtype(dtype).itemsize
    rows = -(-unpacked // (columns * itemsize))
    header = npy_header((rows, columns), dtype)
    size = rows * columns * itemsize
    return ZipMember(name, zero_deflate(header, size), crc_with_zeros(header, size), len(header) + size, method=8)


def write_zip_bomb_npz(path: Path, mesh: dict[str, np.ndarray], member: str = "faces") -> None:
    """An NPZ whose ``member`` unpacks to about 1 GiB of zeros and whose other members are ``mesh``'s.

    With ``faces`` the package is otherwise consistent (index 0 is a valid vertex): a reader that inflates
    it says "valid" after reading 1 GiB."""
    spec = {"vertices": (3, "<f4"), "uvs": (2, "<f4"), "faces": (3, "<i4")}
    members = []
    for name in ("vertices", "uvs", "faces"):
        if name == member:
            members.append(zip_bomb_member(f"{name}.npy", *spec[name]))
        else:
            members.append(stored(f"{name}.npy", npy_bytes(mesh[name])))
    path.write_bytes(zip_bytes(members))


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def edit_manifest(root: Path, change: Callable[[Any], Any]) -> None:
    """Rewrite ``root/manifest.json`` after ``change(tree)`` edits the parsed manifest in place."""
    path = Path(root) / "manifest.json"
    tree = json.loads(path.read_text(encoding="utf-8"))
    change(tree)
    path.write_text(to_json(tree), encoding="utf-8", errors="surrogatepass")


# --------------------------------------------------------------------------------------------------------------
# Mutation operators


class Mutation:
    """One class of mutation; ``mutate`` edits the package copy and says what it did."""

    kinds: tuple[str, ...] = ("mesh", "mpi")

    @property
    def name(self) -> str:
        return type(self).__name__

    def mutate(self, draw: Draw, target: Target) -> str:
        raise NotImplementedError


class _ManifestMutation(Mutation):
    """Mutations of the parsed manifest; skipped when an earlier one left it unparseable."""

    def mutate(self, draw: Draw, target: Target) -> str:
        tree = target.read_tree()
        if tree is None:
            return "skipped (manifest unparseable)"
        tree, what = self.change(draw, tree, target)
        target.write_tree(tree)
        return what

    def change(self, draw: Draw, tree: Any, target: Target) -> tuple[Any, str]:
        raise NotImplementedError


def _pick_path(draw: Draw, tree: Any, accept: Callable[[tuple, Any], bool] = lambda p, v: True) -> tuple | None:
    """A path into the manifest, two times in three from the fields a reader must check."""
    paths = [p for p in _walk(tree) if accept(p, get_at(tree, p))]
    if not paths:
        return None
    checked = [p for p in paths if p and str(p[0]) not in _OPTIONAL_SECTIONS]
    if checked and draw.integer(0, 2):
        sections = [p for p in checked if len(p) <= 1 or p[0] == "layers" and len(p) == 2]
        if sections and not draw.integer(0, 3):
            return draw.choice(sections)
        return draw.choice(checked)
    return draw.choice(paths)


def _fmt(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path) or "<root>"


_WRONG_TYPES = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    "",
    "x",
    "1",
    "nan",
    [],
    {},
    [0],
    {"k": 1},
    "evil\x1b[2J\r\x07name",
]


class JsonWrongType(_ManifestMutation):
    """A value replaced by one of another type (null, bool, string, list, object, a control-character text)."""

    def change(self, draw, tree, target):
        path = _pick_path(draw, tree)
        value = draw.choice(_WRONG_TYPES)
        return set_at(tree, path, value), f"{_fmt(path)} = {_show(value)}"


def _number_values(current: Any) -> list[Any]:
    values: list[Any] = [0, -1, -0.0, 1e-320, 1e308, -1e308, 2**31, 2**63, 2**64 + 1, True]
    values += [Raw("9" * 20), Raw("9" * 400), Raw("9" * 5000), Raw("NaN"), Raw("Infinity"), Raw("-Infinity")]
    values += [Raw("1e400"), Raw("-0"), Raw("1E+2"), "NaN", "1e308", "Infinity", "12"]
    if isinstance(current, int | float) and not isinstance(current, bool):
        values += [float(current), float(current) + 0.5, -current, current * 1000]
        if isinstance(current, float) and math.isfinite(current):
            values.append(int(current))
    return values


class JsonBadNumber(_ManifestMutation):
    """A number made 0, negative, subnormal, 1e308, NaN/Infinity (as tokens or strings), huge, float for int."""

    def change(self, draw, tree, target):
        def numeric(p, v):
            return isinstance(v, int | float) and not isinstance(v, bool)

        path = _pick_path(draw, tree, numeric) or _pick_path(draw, tree)
        value = draw.choice(_number_values(get_at(tree, path)))
        return set_at(tree, path, value), f"{_fmt(path)} = {_show(value)}"


class JsonContainerSwap(_ManifestMutation):
    """An object given as a list (a camera that is a list), a list as an object, a value wrapped in a list."""

    def change(self, draw, tree, target):
        path = _pick_path(draw, tree)
        value = get_at(tree, path)
        if isinstance(value, dict):
            options = [list(value.values()), [value], [[k, v] for k, v in value.items()], list(value)]
        elif isinstance(value, list):
            options = [{str(i): v for i, v in enumerate(value)}, value[:1] and value[0], [value], {"items": value}]
        else:
            options = [[value], {"value": value}, [value, value]]
        new = draw.choice(options)
        return set_at(tree, path, new), f"{_fmt(path)} -> {type(new).__name__} {_show(new)}"


class JsonDeepNesting(_ManifestMutation):
    """A value replaced by arrays or objects nested 33 to 100000 levels deep."""

    def change(self, draw, tree, target):
        path = _pick_path(draw, tree)
        depth = draw.choice([33, 100, 1000, 5000, 100_000])
        if draw.boolean():
            value = Raw("[" * depth + "]" * depth)
        else:
            value = Raw('{"a": ' * depth + "0" + "}" * depth)
        return set_at(tree, path, value), f"{_fmt(path)} nested {depth} deep"


def _key_paths(tree: Any) -> list[tuple]:
    return [p for p in _walk(tree) if p and isinstance(p[-1], str)]


class KeyDelete(_ManifestMutation):
    """A key removed from an object."""

    def change(self, draw, tree, target):
        path = _pick_path(draw, tree, lambda p, v: bool(p) and isinstance(p[-1], str))
        if path is None:
            return tree, "no key"
        del get_at(tree, path[:-1])[path[-1]]
        return tree, f"del {_fmt(path)}"


class KeyRename(_ManifestMutation):
    """A key renamed: suffixed, upper-cased, space-prefixed, a Cyrillic look-alike, empty, with NUL."""

    def change(self, draw, tree, target):
        path = _pick_path(draw, tree, lambda p, v: bool(p) and isinstance(p[-1], str))
        if path is None:
            return tree, "no key"
        key = path[-1]
        new = draw.choice([key + "_", key.upper(), " " + key, key.replace("a", "\u0430").replace("e", "\u0435"), ""])
        if draw.integer(0, 5) == 0:
            new = key + "\x00"
        parent = get_at(tree, path[:-1])
        items = [(new if k == key else k, v) for k, v in parent.items()]
        return set_at(tree, path[:-1], Pairs(items)), f"rename {_fmt(path)} -> {new!r}"


class KeyDuplicate(_ManifestMutation):
    """A key repeated in the same object with another value, before or after the original."""

    def change(self, draw, tree, target):
        path = _pick_path(draw, tree, lambda p, v: bool(p) and isinstance(p[-1], str))
        if path is None:
            return tree, "no key"
        key = path[-1]
        parent = get_at(tree, path[:-1])
        other = draw.choice([*_WRONG_TYPES[:10], parent[key]])
        items = list(parent.items())
        position = [k for k, _ in items].index(key) + (1 if draw.boolean() else 0)
        items.insert(position, (key, other))
        return set_at(tree, path[:-1], Pairs(items)), f"duplicate {_fmt(path)} with {_show(other)}"


_VERSIONS = [
    "1",
    "1.x",
    "1.999",
    "2.0",
    1,
    1.0,
    "1.0.0",
    " 1.0",
    "1.0 ",
    "01.0",
    "1.-1",
    "1.1e3",
    "\u0661.\u0660",
    "1.\u00b2",
    "1.0\x00",
    "",
    None,
    "0.9",
    "1.00",
    "1.01",
    "v1.0",
    "1,0",
    Raw('"1.\\ud800"'),
    "1.0\n",
    "9" * 50 + ".0",
    "1.",
    ".0",
    "1.9999999999999999",
]


class VersionString(_ManifestMutation):
    """The format version: ``1``, ``1.x``, ``1.999``, ``2.0``, numbers, Unicode digits, padding, deletion."""

    def change(self, draw, tree, target):
        if not isinstance(tree, dict):
            return tree, "manifest not an object"
        if draw.integer(0, len(_VERSIONS)) == 0:
            tree.pop("version", None)
            return tree, "del .version"
        value = draw.choice(_VERSIONS)
        tree["version"] = value
        return tree, f".version = {_show(value)}"


def _path_fields(tree: Any) -> list[tuple]:
    fields = []
    if isinstance(tree, dict):
        if isinstance(tree.get("layers"), list):
            for i, layer in enumerate(tree["layers"]):
                if isinstance(layer, dict):
                    fields += [("layers", i, key) for key in ("texture", "mesh") if key in layer]
        if isinstance(tree.get("depth"), dict) and "map" in tree["depth"]:
            fields.append(("depth", "map"))
        if "contact_sheet" in tree:
            fields.append(("contact_sheet",))
    return fields


class PathString(_ManifestMutation):
    """A file path made absolute, ``..``, NUL, a lone surrogate, 300 characters, Windows-style, a folder..."""

    def change(self, draw, tree, target):
        fields = _path_fields(tree)
        if not fields:
            return tree, "no path field"
        path = draw.choice(fields)
        current = get_at(tree, path)
        current = current if isinstance(current, str) and current else "layers/00_color.png"
        name = current.rsplit("/", 1)[-1]
        variant = draw.choice(
            [
                "absolute_own",
                "absolute_outside",
                "dotdot_outside",
                "dotdot_deep",
                "dotdot_inside",
                "dot",
                "double_slash",
                "trailing_slash",
                "backslash",
                "drive",
                "unc",
                "url",
                "tilde",
                "nul",
                "nul_only",
                "surrogate",
                "surrogate_low",
                "long_name",
                "very_long",
                "deep",
                "empty",
                "dot_only",
                "dotdot_only",
                "slash",
                "folder",
                "upper",
                "newline",
                "other_kind",
                "manifest",
                "dev_zero",
            ]
        )
        other = {
            ".png": "depth.npy",
            ".npz": "layers/00_color.png" if target.kind == "mesh" else "layers/00_plane.png",
            ".npy": "contact_sheet.png",
        }
        value: Any = {
            "absolute_own": str(target.root / current),
            "dotdot_outside": f"../outside/{name}",
            "dotdot_deep": f"layers/../../outside/{name}",
            "dotdot_inside": f"layers/../{current}",
            "dot": f"./{current}",
            "double_slash": current.replace("/", "//"),
            "trailing_slash": current + "/",
            "backslash": current.replace("/", "\\"),
            "drive": f"C:/{current}",
            "unc": "\\\\server\\share\\x.png",
            "url": "file:///etc/hostname",
            "tilde": "~/x.png",
            "nul": current + "\x00.txt",
            "nul_only": "\x00",
            "surrogate": Raw('"layers/\\ud800.png"'),
            "surrogate_low": Raw('"layers/x\\udcff"'),
            "long_name": "layers/" + "a" * 300 + ".png",
            "very_long": "b" * 5000,
            "deep": "/".join(["d"] * 2000),
            "empty": "",
            "dot_only": ".",
            "dotdot_only": "..",
            "slash": "/",
            "folder": "layers",
            "upper": current.upper(),
            "newline": current.replace("/", "/\n"),
            "other_kind": other.get(Path(current).suffix, "depth.npy"),
            "manifest": "manifest.json",
            "dev_zero": "../" * 12 + "dev/zero",
        }.get(variant)
        if variant in ("absolute_outside", "dotdot_outside", "dotdot_deep"):
            copy = target.outside_copy(target.root / current if "\x00" not in current else target.manifest_path)
            if variant == "absolute_outside":
                value = str(copy)
        return set_at(tree, path, value), f"{_fmt(path)} {variant} = {_show(value)}"


def _pick_file(draw: Draw, target: Target) -> Path | None:
    files = target.package_files()
    return draw.choice(files) if files else None


class FileSymlink(Mutation):
    """A package file (or the layers folder, or the manifest) replaced by a symlink: outside, dangling,
    a loop, /dev/zero, another file inside, or itself moved aside inside the package (harmless)."""

    def mutate(self, draw, target):
        path = _pick_file(draw, target)
        if path is None:
            return "no file"
        variant = draw.choice(["outside", "outside_relative", "dangling", "loop", "dev_zero", "inside", "moved"])
        rel = path.relative_to(target.root)
        if variant in ("outside", "outside_relative"):
            copy = target.outside_copy(path)
            _remove(path)
            link = copy if variant == "outside" else Path(os.path.relpath(copy, path.parent))
            path.symlink_to(link)
        elif variant == "dangling":
            _remove(path)
            path.symlink_to(target.root / "no-such-file")
        elif variant == "loop":
            _remove(path)
            path.symlink_to(path.name)
        elif variant == "dev_zero":
            _remove(path)
            path.symlink_to("/dev/zero")
        elif variant == "inside":
            siblings = [p for p in target.package_files() if p != path and p.suffix == path.suffix]
            if not siblings:
                return f"{rel}: no sibling"
            sibling = draw.choice(siblings)
            _remove(path)
            path.symlink_to(os.path.relpath(sibling, path.parent))
            return f"{rel} -> {sibling.relative_to(target.root)}"
        else:
            hidden = path.with_name("." + path.name + ".real")
            os.replace(path, hidden)
            path.symlink_to(hidden.name)
        return f"{rel} {variant}"


class FileHardLink(Mutation):
    """A package file made a hard link: to a file outside, to another package file, or given a second link
    outside (so someone else can change it)."""

    def mutate(self, draw, target):
        files = [p for p in target.package_files() if _is_regular(p) and not p.is_symlink()]
        if not files:
            return "no file"
        path = draw.choice(files)
        rel = path.relative_to(target.root)
        variant = draw.choice(["outside", "inside", "extra_outside"])
        if variant == "outside":
            copy = target.outside_copy(path)
            path.unlink()
            os.link(copy, path)
        elif variant == "inside":
            siblings = [p for p in files if p != path and p.suffix == path.suffix]
            if not siblings:
                return f"{rel}: no sibling"
            sibling = draw.choice(siblings)
            path.unlink()
            os.link(sibling, path)
            return f"{rel} == {sibling.relative_to(target.root)}"
        else:
            target.outside.mkdir(exist_ok=True)
            os.link(path, target.outside / ("link-" + path.name))
        return f"{rel} {variant}"


class FileNotRegular(Mutation):
    """A file replaced by a folder (empty or not), a FIFO, or deleted; the layers folder replaced by a file."""

    def mutate(self, draw, target):
        path = _pick_file(draw, target)
        if path is None:
            return "no file"
        rel = path.relative_to(target.root)
        variant = draw.choice(["dir", "dir_with_files", "fifo", "missing"])
        if path.name == "layers" and variant != "missing":
            _remove(path)
            path.write_bytes(b"not a folder")
            return "layers is a file"
        _remove(path)
        if variant == "dir":
            path.mkdir()
        elif variant == "dir_with_files":
            path.mkdir()
            (path / "manifest.json").write_text("{}")
            (path / "x.png").write_bytes(b"\x89PNG")
        elif variant == "fifo":
            os.mkfifo(path)
        return f"{rel} {variant}"


class _NpzMutation(Mutation):
    kinds = ("mesh",)

    def mutate(self, draw, target):
        files = target.layer_files(".npz")
        if not files:
            return "no mesh"
        path = draw.choice(files)
        mesh = target.load_mesh(path)
        data = target.read_bytes(path)
        what = self.change(draw, target, path, mesh, data)
        return f"{path.name}: {what}"

    def change(self, draw, target, path, mesh, data) -> str:
        raise NotImplementedError


class NpzPlainNpy(_NpzMutation):
    """A plain .npy (one of the arrays, or a stacked array) where the NPZ should be."""

    def change(self, draw, target, path, mesh, data):
        name = draw.choice(["vertices", "uvs", "faces", "stacked"])
        array = np.zeros((4, 3), np.float32) if name == "stacked" else mesh[name]
        target.write_bytes(path, npy_bytes(array))
        return f"plain npy of {name}"


class NpzForeignMember(_NpzMutation):
    """Members that are not the three arrays: text, names without .npy, garbage .npy, pickles, folders,
    duplicates, encrypted or unknown-method members, strings."""

    def change(self, draw, target, path, mesh, data):
        variant = draw.choice(
            ["extra_text", "no_suffix", "garbage_npy", "pickle", "in_folder", "duplicate", "encrypted", "method99"]
            + ["unicode_array", "only_text", "lzma"]
        )
        members = [stored(f"{n}.npy", npy_bytes(mesh[n])) for n in ("vertices", "uvs", "faces")]
        index = draw.integer(0, 2)
        if variant == "extra_text":
            members.append(stored("readme.txt", b"hello"))
        elif variant == "no_suffix":
            members[index] = stored(members[index].name[:-4], members[index].payload)
        elif variant == "garbage_npy":
            members[index] = stored(members[index].name, b"hello, not an array")
        elif variant == "pickle":
            members[index] = stored(members[index].name, npy_bytes(np.array([{"a": 1}], dtype=object), True))
        elif variant == "in_folder":
            members[index] = stored("x/" + members[index].name, members[index].payload)
        elif variant == "duplicate":
            members.append(stored(members[index].name, npy_bytes(np.zeros((5, 7), np.float64))))
        elif variant == "encrypted":
            members[index].flags |= 1
        elif variant == "method99":
            members[index].method = 99
        elif variant == "unicode_array":
            members[index] = stored(members[index].name, npy_bytes(np.array([["a", "b", "c"]])))
        elif variant == "only_text":
            members = [stored("vertices.txt", b"1 2 3")]
        else:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_LZMA) as archive:
                for n in ("vertices", "uvs", "faces"):
                    archive.writestr(f"{n}.npy", npy_bytes(mesh[n]))
            target.write_bytes(path, buffer.getvalue())
            return "lzma members (valid)"
        target.write_bytes(path, zip_bytes(members))
        return f"{variant} ({members[min(index, len(members) - 1)].name})"


class NpzTruncated(_NpzMutation):
    """The NPZ cut short (anywhere, or just its central directory)."""

    def change(self, draw, target, path, mesh, data):
        data = data or npz_bytes(mesh)
        if draw.boolean():
            keep = draw.integer(0, len(data) - 1)
        else:
            keep = max(0, data.rfind(b"PK\x01\x02") - draw.integer(0, 40))
        target.write_bytes(path, data[:keep])
        return f"truncated to {keep} of {len(data)} bytes"


class NpzCrcBroken(_NpzMutation):
    """A byte of a member's data flipped (the CRC no longer matches), or any byte of the archive."""

    def change(self, draw, target, path, mesh, data):
        data = bytearray(npz_bytes(mesh))
        with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
            infos = archive.infolist()
        info = draw.choice(infos)
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        if draw.integer(0, 3):
            offset = start + draw.integer(0, max(0, info.compress_size - 1))
        else:
            offset = draw.integer(0, len(data) - 1)
        data[offset] ^= draw.integer(1, 255)
        target.write_bytes(path, bytes(data))
        return f"byte {offset} flipped ({info.filename} data starts at {start})"


class NpzEmpty(_NpzMutation):
    """An empty file, or an empty ZIP archive, where the NPZ should be."""

    def change(self, draw, target, path, mesh, data):
        if draw.boolean():
            target.write_bytes(path, b"")
            return "empty file"
        target.write_bytes(path, zip_bytes([]))
        return "empty zip"


_WRONG_ARRAYS = [
    ("vertices", "float64"),
    ("faces", "int64"),
    ("uvs", "float16"),
    ("faces", "uint32"),
    ("faces", "float32"),
    ("vertices", "big_endian"),
    ("vertices", "flat"),
    ("vertices", "four_columns"),
    ("vertices", "three_d"),
    ("faces", "flat"),
    ("vertices", "scalar"),
    ("uvs", "one_short"),
    ("faces", "missing"),
    ("uvs", "missing"),
    ("normals", "extra"),
    ("vertices", "bool"),
    ("faces", "int8"),
    ("uvs", "complex"),
    ("vertices", "fortran"),
]


class NpzWrongArrays(_NpzMutation):
    """Arrays of the wrong dtype (float64, int64, float16, big-endian...) or shape, missing or extra arrays,
    as many UVs as vertices minus one."""

    def change(self, draw, target, path, mesh, data):
        name, variant = draw.choice(_WRONG_ARRAYS)
        arrays = dict(mesh)
        array = arrays.get(name)
        if variant in ("float64", "int64", "float16", "uint32", "float32", "int8", "bool"):
            arrays[name] = array.astype(variant)
        elif variant == "big_endian":
            arrays[name] = array.astype(">f4")
        elif variant == "complex":
            arrays[name] = array.astype(np.complex64)
        elif variant == "flat":
            arrays[name] = array.reshape(-1)
        elif variant == "four_columns":
            arrays[name] = np.concatenate([array, array[:, :1]], axis=1)
        elif variant == "three_d":
            arrays[name] = array[..., None]
        elif variant == "scalar":
            arrays[name] = np.array(1.0, np.float32)
        elif variant == "one_short":
            arrays[name] = array[:-1]
        elif variant == "missing":
            del arrays[name]
        elif variant == "extra":
            arrays["normals"] = np.zeros_like(arrays["vertices"])
        elif variant == "fortran":
            arrays[name] = np.asfortranarray(array)
        target.write_bytes(path, npz_bytes(arrays))
        return f"{name} {variant}"


class NpzFacesOutOfRange(_NpzMutation):
    """A face index of -1, the vertex count, 2**31-1 or -2**31."""

    def change(self, draw, target, path, mesh, data):
        faces = mesh["faces"].astype(np.int32).copy()
        if not faces.size:
            faces = np.array([[0, 1, 2]], np.int32)
        value = draw.choice([-1, len(mesh["vertices"]), 2**31 - 1, -(2**31)])
        faces.flat[draw.integer(0, faces.size - 1)] = value
        target.write_bytes(path, npz_bytes({**mesh, "faces": faces}))
        return f"face index {value}"


class NpzNoFaces(_NpzMutation):
    """A mesh without faces, without anything, or with two vertices."""

    def change(self, draw, target, path, mesh, data):
        variant = draw.choice(["no_faces", "all_empty", "two_vertices"])
        arrays = dict(mesh, faces=np.zeros((0, 3), np.int32))
        if variant == "all_empty":
            arrays.update(vertices=np.zeros((0, 3), np.float32), uvs=np.zeros((0, 2), np.float32))
        elif variant == "two_vertices":
            arrays.update(vertices=mesh["vertices"][:2], uvs=mesh["uvs"][:2], faces=np.array([[0, 1, 1]], np.int32))
        target.write_bytes(path, npz_bytes(arrays))
        return variant


class NpzBadValues(_NpzMutation):
    """NaN or infinite vertices or UVs, vertices behind the camera (z >= 0)."""

    def change(self, draw, target, path, mesh, data):
        variant = draw.choice(["nan_vertex", "inf_vertex", "nan_uv", "inf_uv", "positive_z", "zero_z"])
        arrays = {name: np.array(a, copy=True) for name, a in mesh.items()}
        if variant == "positive_z":
            arrays["vertices"][:, 2] = np.abs(arrays["vertices"][:, 2])
        elif variant == "zero_z":
            arrays["vertices"][0, 2] = 0.0
        else:
            name = "vertices" if "vertex" in variant else "uvs"
            arrays[name].flat[draw.integer(0, arrays[name].size - 1)] = np.nan if "nan" in variant else -np.inf
        target.write_bytes(path, npz_bytes(arrays))
        return variant


class NpzZipBomb(_NpzMutation):
    """A 1 MB NPZ member that unpacks to 1 GiB of zeros (faces: otherwise a valid mesh; or vertices)."""

    def change(self, draw, target, path, mesh, data):
        member = draw.choice(["faces", "faces", "vertices"])
        if not _writable(path):  # an earlier mutation put a FIFO or a folder there: opening it would block
            return "no regular file to replace"
        write_zip_bomb_npz(path, mesh, member)
        return f"{member} unpacks to {BOMB_BYTES} bytes ({path.stat().st_size} stored)"


class DepthMapMutation(Mutation):
    """The depth map: transposed, at the photo's size, float64/int32, NaN, zero, negative, infinite,
    truncated, not an array, an NPZ, a pickle, 0-d or 3-D, or a header claiming 100000x100000."""

    def mutate(self, draw, target):
        path = target.root / "depth.npy"
        h, w = _seed_work_shape()
        depth = np.full((h, w), 3.0, np.float32)
        with contextlib.suppress(Exception):
            if _is_regular(path) and path.stat().st_size < 1 << 20:
                loaded = np.load(path, allow_pickle=False)
                if loaded.shape == (h, w):
                    depth = loaded.astype(np.float32)
        variant = draw.choice(
            ["transposed", "photo_size", "float64", "int32", "nan", "zero", "negative", "inf", "truncated", "text"]
            + ["npz", "pickle", "scalar", "three_d", "huge_header", "fortran", "big_endian"]
        )
        data: bytes
        if variant == "transposed":
            data = npy_bytes(np.ascontiguousarray(depth.T))
        elif variant == "photo_size":
            data = npy_bytes(np.full((SEED_HEIGHT, SEED_WIDTH), 3.0, np.float32))
        elif variant in ("float64", "int32"):
            data = npy_bytes(depth.astype(variant))
        elif variant in ("nan", "zero", "negative", "inf"):
            bad = {"nan": np.nan, "zero": 0.0, "negative": -1.0, "inf": np.inf}[variant]
            depth = depth.copy()
            depth.flat[draw.integer(0, depth.size - 1)] = bad
            data = npy_bytes(depth)
        elif variant == "truncated":
            whole = npy_bytes(depth)
            data = whole[: draw.integer(0, len(whole) - 1)]
        elif variant == "text":
            data = b"depth map"
        elif variant == "npz":
            data = npz_bytes({"depth": depth})
        elif variant == "pickle":
            data = npy_bytes(np.array([depth, None], dtype=object), True)
        elif variant == "scalar":
            data = npy_bytes(np.array(3.0, np.float32))
        elif variant == "three_d":
            data = npy_bytes(depth[..., None])
        elif variant == "huge_header":
            data = npy_header((100_000, 100_000)) + depth.tobytes()
        elif variant == "fortran":
            data = npy_bytes(np.asfortranarray(depth))
        else:
            data = npy_bytes(depth.astype(">f4"))
        target.write_bytes(path, data)
        return variant


class _PngMutation(Mutation):
    def mutate(self, draw, target):
        files = target.layer_files(".png")
        sheet = target.root / "contact_sheet.png"
        if (sheet.exists() and draw.integer(0, 5) == 0) or not files:
            if not sheet.exists():
                return "no texture"
            path = sheet
        else:
            path = draw.choice(files)
        rgba = target.load_rgba(path)
        return f"{path.name}: {self.change(draw, target, path, rgba)}"

    def change(self, draw, target, path, rgba) -> str:
        raise NotImplementedError


def _encode(image: Any, fmt: str = "PNG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


class PngTruncated(_PngMutation):
    """The PNG cut short anywhere, or only its IEND chunk missing."""

    def change(self, draw, target, path, rgba):
        data = target.read_bytes(path) or png_bytes(rgba.shape[1], rgba.shape[0], raw=rgba_scanlines(rgba))
        if draw.boolean():
            target.write_bytes(path, data[:-12])
            return "no IEND"
        keep = draw.integer(0, len(data) - 1)
        target.write_bytes(path, data[:keep])
        return f"truncated to {keep} of {len(data)} bytes"


class PngWrongSize(_PngMutation):
    """An RGBA texture one pixel wider or taller, transposed, halved, doubled, or at the other kind's size."""

    def change(self, draw, target, path, rgba):
        from PIL import Image

        h, w = rgba.shape[:2]
        other = (SEED_WIDTH, SEED_HEIGHT) if target.kind == "mpi" else _seed_work_shape()[::-1]
        size = draw.choice([(w + 1, h), (w, h + 1), (h, w), (max(1, w // 2), max(1, h // 2)), (2 * w, 2 * h), other])
        target.write_bytes(path, _encode(Image.fromarray(rgba).resize(size)))
        return f"{w}x{h} -> {size[0]}x{size[1]}"


class PngWrongMode(_PngMutation):
    """RGB, gray, gray+alpha, palette, 1-bit or 16-bit instead of 8-bit RGBA; or interlaced RGBA (valid)."""

    def change(self, draw, target, path, rgba):
        from PIL import Image

        image = Image.fromarray(rgba)
        h, w = rgba.shape[:2]
        variant = draw.choice(["RGB", "L", "LA", "P", "1", "I;16", "RGBA16", "RGB16", "interlaced"])
        if variant == "RGBA16":
            data = png_bytes(w, h, 16, 6, raw=rgba_scanlines(rgba, 16))
        elif variant == "RGB16":
            data = png_bytes(w, h, 16, 2, raw=rgba_scanlines(rgba[..., :3], 16))
        elif variant == "I;16":
            gray = (rgba[..., 0].astype(np.uint16) * 257).astype(np.uint16)
            data = _encode(Image.fromarray(gray))
        elif variant == "interlaced":
            data = _adam7_png(rgba)
        else:
            data = _encode(image.convert(variant))
        target.write_bytes(path, data)
        return variant


def _adam7_png(rgba: np.ndarray) -> bytes:
    """An interlaced (Adam7) 8-bit RGBA PNG: a valid texture a reader must decode, not refuse or misjudge."""
    h, w = rgba.shape[:2]
    raw = b""
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2)):
        part = rgba[y0::dy, x0::dx]
        if part.size:
            raw += rgba_scanlines(part)
    part = rgba[1::2, 0::1]
    if part.size:
        raw += rgba_scanlines(part)
    return png_bytes(w, h, raw=raw, interlace=1)


class PngNotPng(_PngMutation):
    """A JPEG, GIF, BMP, WebP (RGBA), random bytes, text, an NPZ or nothing under a .png name."""

    def change(self, draw, target, path, rgba):
        from PIL import Image

        image = Image.fromarray(rgba)
        variant = draw.choice(["jpeg", "gif", "bmp", "webp", "random", "text", "npz", "empty", "signature_only"])
        data = {
            "jpeg": lambda: _encode(image.convert("RGB"), "JPEG"),
            "gif": lambda: _encode(image, "GIF"),
            "bmp": lambda: _encode(image, "BMP"),
            "webp": lambda: _encode(image, "WEBP", lossless=True),
            "random": lambda: bytes(random.Random(draw.integer(0, 9999)).randbytes(draw.integer(1, 4000))),
            "text": lambda: b"this is not a picture\n",
            "npz": lambda: npz_bytes({"a": np.zeros(3)}),
            "empty": lambda: b"",
            "signature_only": lambda: b"\x89PNG\r\n\x1a\n",
        }[variant]()
        target.write_bytes(path, data)
        return variant


class PngBomb(_PngMutation):
    """A header claiming 100000x100000 pixels; 8000x8000 zeros (256 MB from 250 KB); or a right-sized
    header whose data goes on for 1 GiB."""

    def change(self, draw, target, path, rgba):
        variant = draw.choice(["header_100000", "zeros_8000", "overlong"])
        if variant == "header_100000":
            data = png_bytes(100_000, 100_000, idat=zlib.compress(bytes(1 << 16)))
        elif variant == "zeros_8000":
            data = png_bytes(8000, 8000, idat=zlib_zeros(b"", 8000 * (1 + 8000 * 4)))
        else:
            h, w = rgba.shape[:2]
            data = png_bytes(w, h, idat=zlib_zeros(rgba_scanlines(rgba), 1 << 30))
        target.write_bytes(path, data)
        return f"{variant} ({len(data)} bytes)"


class PngCorrupt(_PngMutation):
    """A byte of the PNG flipped (header, data or CRC), or the IDAT chunk's CRC zeroed."""

    def change(self, draw, target, path, rgba):
        data = bytearray(target.read_bytes(path) or png_bytes(rgba.shape[1], rgba.shape[0], raw=rgba_scanlines(rgba)))
        if draw.boolean():
            offset = draw.integer(8, len(data) - 1)
            data[offset] ^= draw.integer(1, 255)
            target.write_bytes(path, bytes(data))
            return f"byte {offset} flipped"
        idat = data.find(b"IDAT")
        if idat < 4:
            return "no IDAT"
        length = struct.unpack(">I", data[idat - 4 : idat])[0]
        data[idat + 4 + length : idat + 8 + length] = b"\x00\x00\x00\x00"
        target.write_bytes(path, bytes(data))
        return "IDAT CRC zeroed"


class ManifestBytes(Mutation):
    """The manifest's bytes: truncated, bytes flipped, invalid UTF-8, a BOM, UTF-16, NUL, trailing garbage,
    empty, whitespace, not an object, two objects."""

    def mutate(self, draw, target):
        data = target.read_bytes(target.manifest_path)
        if data is None:
            return "skipped (manifest not a file)"
        data = data or b"{}"
        variant = draw.choice(
            ["truncate", "flip", "invalid_utf8", "bom", "utf16", "nul", "trailing", "empty", "whitespace"]
            + ["null", "array", "string", "two_objects", "crlf"]
        )
        if variant == "truncate":
            data = data[: draw.integer(0, max(0, len(data) - 1))]
        elif variant == "flip":
            buffer = bytearray(data)
            for _ in range(draw.integer(1, 8)):
                buffer[draw.integer(0, len(buffer) - 1)] ^= draw.integer(1, 255)
            data = bytes(buffer)
        elif variant == "invalid_utf8":
            at = _inside_a_string(data, draw)
            data = (
                data[:at]
                + draw.choice([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\x80", b"\xf4\x90\x80\x80"])
                + data[at:]
            )
        elif variant == "bom":
            data = b"\xef\xbb\xbf" + data
        elif variant == "utf16":
            data = data.decode("utf-8", "surrogatepass").encode("utf-16")
        elif variant == "nul":
            at = draw.integer(0, len(data))
            data = data[:at] + b"\x00" + data[at:]
        elif variant == "trailing":
            data = data + draw.choice([b"}", b"x", b",", b"\x00"])
        elif variant == "empty":
            data = b""
        elif variant == "whitespace":
            data = b" \n\t "
        elif variant in ("null", "array", "string"):
            data = {"null": b"null", "array": b"[]", "string": b'"photo3d.layers"'}[variant]
        elif variant == "two_objects":
            data = data + b"\n" + data
        else:
            data = data.replace(b"\n", b"\r\n") if b"\n" in data else data.replace(b", ", b",\r\n")
        target.write_bytes(target.manifest_path, data)
        return variant


def _inside_a_string(data: bytes, draw: Draw) -> int:
    quotes = [i for i, byte in enumerate(data) if byte == ord('"')]
    return quotes[draw.integer(0, len(quotes) - 1)] + 1 if quotes else draw.integer(0, len(data))


class ManifestHuge(Mutation):
    """A manifest of 5 MiB or 64 MiB (valid JSON): whitespace, or a long string in an ignored field."""

    def mutate(self, draw, target):
        tree = target.read_tree()
        if not isinstance(tree, dict):
            return "skipped (manifest unparseable)"
        size = draw.choice([5 << 20, 64 << 20])
        if draw.boolean():
            text = to_json(tree)
            data = (text[:-1] + " " * size + "}").encode("utf-8", "surrogatepass")
            variant = "whitespace"
        else:
            tree["stats"] = {"notes": "x" * size}
            data = to_json(tree).encode("utf-8", "surrogatepass")
            variant = "long string"
        target.write_bytes(target.manifest_path, data)
        return f"{variant}, {len(data)} bytes"


def _layers(tree: Any) -> list | None:
    if isinstance(tree, dict) and isinstance(tree.get("layers"), list) and tree["layers"]:
        return tree["layers"]
    return None


def _reindex(layers: list) -> None:
    for i, layer in enumerate(layers):
        if isinstance(layer, dict):
            layer["index"] = i


class LayerDuplicate(_ManifestMutation):
    """A layer entry repeated (re-indexed or not) so its files repeat; one layer's texture, mesh or name
    given to another."""

    def change(self, draw, tree, target):
        layers = _layers(tree)
        if layers is None:
            return tree, "no layers"
        variant = draw.choice(["copy_reindexed", "copy_same_index", "share_texture", "share_mesh", "share_name"])
        i = draw.integer(0, len(layers) - 1)
        if variant.startswith("copy"):
            layers.insert(i + 1, copy.deepcopy(layers[i]))
            if variant == "copy_reindexed":
                _reindex(layers)
            return tree, f"{variant} layer {i}"
        if len(layers) < 2:
            return tree, "one layer only"
        j = (i + 1 + draw.integer(0, len(layers) - 2)) % len(layers)
        key = {"share_texture": "texture", "share_mesh": "mesh", "share_name": "name"}[variant]
        if isinstance(layers[i], dict) and isinstance(layers[j], dict) and key in layers[i]:
            layers[j][key] = layers[i][key]
        return tree, f"layer {j}.{key} = layer {i}.{key}"


class LayerMany(_ManifestMutation):
    """5000 entries repeating one layer, 300 repeating, 257 or 256 with their own files (256: valid)."""

    def change(self, draw, tree, target):
        layers = _layers(tree)
        if layers is None or not isinstance(layers[0], dict):
            return tree, "no layers"
        variant = draw.choice(["repeat_5000", "repeat_300", "distinct_257", "distinct_256"])
        count = int(variant.split("_")[1])
        base = layers[-1] if isinstance(layers[-1], dict) else layers[0]
        new = []
        for i in range(count):
            entry = copy.deepcopy(base)
            entry["index"] = i
            if variant.startswith("distinct"):
                entry["name"] = f"layer_{i:03d}"
                for key in ("texture", "mesh"):
                    entry[key] = self._copy_file(target, base.get(key), i)
            if tree.get("representation") == "mpi" or "plane_depth" in entry:
                depth = 100.0 - i * 0.25
                entry["plane_depth"], entry["depth_range"] = depth, [depth, depth]
            new.append(entry)
        tree["layers"] = new
        return tree, variant

    @staticmethod
    def _copy_file(target: Target, relative: Any, i: int) -> Any:
        if not isinstance(relative, str) or "\x00" in relative:
            return relative
        source = target.root / relative
        if not _is_regular(source) or source.is_symlink():
            return relative
        copy = f"layers/many_{i:04d}{Path(relative).suffix}"
        if os.path.realpath(source) != os.path.realpath(target.root / copy):  # a second LayerMany reuses them
            shutil.copyfile(source, target.root / copy)
        return copy


class LayerOrder(_ManifestMutation):
    """Layers reversed, two swapped, the first or last dropped (dropping the last is valid), indices
    shuffled, or no layers at all."""

    def change(self, draw, tree, target):
        layers = _layers(tree)
        if layers is None:
            return tree, "no layers"
        variant = draw.choice(["reverse", "swap", "drop_first", "drop_last", "index_offset", "empty"])
        if variant == "reverse":
            layers.reverse()
        elif variant == "swap" and len(layers) > 1:
            layers[0], layers[1] = layers[1], layers[0]
        elif variant == "drop_first" and len(layers) > 1:
            del layers[0]
        elif variant == "drop_last" and len(layers) > 1:
            del layers[-1]
        elif variant == "index_offset":
            for layer in layers:
                if isinstance(layer, dict) and isinstance(layer.get("index"), int):
                    layer["index"] += 1
        elif variant == "empty":
            layers.clear()
        return tree, variant


MUTATIONS: tuple[Mutation, ...] = (
    JsonWrongType(),
    JsonBadNumber(),
    JsonContainerSwap(),
    JsonDeepNesting(),
    KeyDelete(),
    KeyRename(),
    KeyDuplicate(),
    VersionString(),
    PathString(),
    FileSymlink(),
    FileHardLink(),
    FileNotRegular(),
    NpzPlainNpy(),
    NpzForeignMember(),
    NpzTruncated(),
    NpzCrcBroken(),
    NpzEmpty(),
    NpzWrongArrays(),
    NpzFacesOutOfRange(),
    NpzNoFaces(),
    NpzBadValues(),
    NpzZipBomb(),
    DepthMapMutation(),
    PngTruncated(),
    PngWrongSize(),
    PngWrongMode(),
    PngNotPng(),
    PngBomb(),
    PngCorrupt(),
    ManifestBytes(),
    ManifestHuge(),
    LayerDuplicate(),
    LayerMany(),
    LayerOrder(),
)
MUTATION_NAMES = tuple(m.name for m in MUTATIONS)


def mutations_for(kind: str, names: Sequence[str] | None = None) -> list[Mutation]:
    return [m for m in MUTATIONS if kind in m.kinds and (not names or m.name in names)]


# --------------------------------------------------------------------------------------------------------------
# Running the reader and the validate command


class FuzzTimeout(BaseException):
    """One input took longer than the fuzzer allows (a BaseException, so no ``except Exception`` hides it)."""


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise FuzzTimeout(f"no answer within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Outcome:
    kind: str
    """One of ``OUTCOMES``."""
    signature: str = ""
    """For crashes: exception type, message head and the innermost frame in core/."""
    problems: list[str] = field(default_factory=list)
    """For inconsistent packages: the oracle's findings, ``code: detail``."""
    seconds: float = 0.0
    rss_growth_kb: int = 0
    """How much this input raised the process's peak RSS (0 unless it set a new high-water mark)."""
    traced_peak: int = 0
    """tracemalloc's peak while reading, when tracing is on."""

    @property
    def codes(self) -> list[str]:
        return sorted({p.split(":", 1)[0] for p in self.problems})

    def describe(self) -> str:
        text = self.kind
        if self.signature:
            text += f" [{self.signature}]"
        if self.problems:
            text += " " + "; ".join(self.problems[:6])
        return text


def _normalise(message: str, root: Path) -> str:
    message = message.replace(str(root.resolve()), "<pkg>").replace(str(root), "<pkg>")
    message = re.sub(r"/tmp/\S+", "<tmp>", message)
    message = re.sub(r"(?<!\w)\d+", "N", message)
    return " ".join(message.split())[:70]


def _core_location(filename: str, lineno: int | None, name: str) -> str:
    parts = filename.replace("\\", "/").split("/")
    where = "/".join(parts[parts.index("core") :]) if "core" in parts else parts[-1]
    return f"{where}:{lineno} {name}"


def crash_signature(exc: BaseException, root: Path) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    inside = [f for f in frames if "/core/" in f.filename.replace("\\", "/")]
    frame = (inside or frames or [None])[-1]
    where = _core_location(frame.filename, frame.lineno, frame.name) if frame else "?"
    return f"{type(exc).__name__}: {_normalise(str(exc), root)} @ {where}"


_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+), in (\S+)')


def stderr_signature(stderr: str, code: int, root: Path) -> str:
    """The signature of a crash the CLI printed as a traceback (or, without one, its last line)."""
    lines = stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if not starts:
        last = next((line for line in reversed(lines) if line.strip()), "")
        return f"exit {code}: {_normalise(last, root)}"
    block = lines[starts[-1] + 1 :]
    frames = [m.groups() for m in map(_FRAME.match, block) if m]
    inside = [f for f in frames if "/core/" in f[0].replace("\\", "/")]
    frame = (inside or frames or [("?", "0", "?")])[-1]
    error = next((line for line in block if line and not line.startswith(" ")), "?")
    kind, _, message = error.partition(":")
    return f"{kind}: {_normalise(message, root)} @ {_core_location(frame[0], int(frame[1]), frame[2])}"


def _run_validate(root: Path, as_json: bool) -> tuple[int, str, str]:
    from core.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = ["validate", str(root)] + (["--json"] if as_json else [])
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def examine(root: str | os.PathLike, timeout: float | None = 60.0, trace_memory: bool = False) -> Outcome:
    """Read ``root`` with the reader and with both validate forms, and classify what happened."""
    from core.errors import PackageError
    from core.package import read_package

    root = Path(root)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if trace_memory:
        tracemalloc.start()
    started = time.perf_counter()
    read_error: BaseException | None = None
    runs: list[tuple[int, str, str]] = []
    crash = ""
    try:
        with warnings.catch_warnings(), _time_limit(timeout):
            warnings.simplefilter("ignore")
            try:
                read_package(root)
            except PackageError as exc:
                read_error = exc
            except (FuzzTimeout, KeyboardInterrupt):
                raise
            except BaseException as exc:  # everything but PackageError is a crash, SystemExit included
                crash = crash_signature(exc, root)
            for as_json in (False, True):
                runs.append(_run_validate(root, as_json))
    except FuzzTimeout as exc:
        crash = crash or f"FuzzTimeout: {exc} @ {'validate' if read_error is not None or runs else 'read_package'}"
    finally:
        seconds = time.perf_counter() - started
        traced = 0
        if trace_memory:
            traced = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    outcome = Outcome("crashed", seconds=seconds, rss_growth_kb=growth, traced_peak=traced)
    if not crash:
        for code, _, err in runs:
            if code not in (0, 5):
                crash = stderr_signature(err, code, root)
                break
    if crash:
        outcome.signature = crash
        return outcome
    codes = [code for code, _, _ in runs]
    if read_error is not None:
        if codes == [5, 5]:
            outcome.kind = "rejected"
            outcome.signature = _normalise(str(read_error), root)
            return outcome
        outcome.kind = "inconsistent"
        outcome.problems = [f"validate_disagrees: read_package raised PackageError, validate exited {codes}"]
        return outcome
    if codes != [0, 0]:
        outcome.kind = "inconsistent"
        outcome.problems = [f"validate_disagrees: read_package accepted, validate exited {codes}"]
        return outcome
    try:
        problems = oracle_problems(root, text_output=runs[0][1], json_output=runs[1][1])
    except Exception as exc:  # the oracle is total by design; if not, say so rather than hide the input
        problems = [f"oracle_error: {type(exc).__name__}: {exc}"]
    outcome.kind = "inconsistent" if problems else "accepted"
    outcome.problems = problems
    return outcome


def check_package(path: str | os.PathLike) -> str:
    """The outcome for the package folder ``path``: one of ``OUTCOMES`` (rejected, accepted, inconsistent, crashed)."""
    return examine(path).kind


# --------------------------------------------------------------------------------------------------------------
# The oracle: what an accepted package must be, checked on the files with this module's own code


class _Strict(ValueError):
    pass


def strict_json(data: bytes) -> Any:
    """Parse UTF-8 JSON (a BOM is tolerated) refusing what interoperable JSON excludes; ``_Strict`` if not."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Strict(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None

    def constant(name):
        raise _Strict(f"{name} is not JSON")

    def number(text):
        value = float(text)
        if not math.isfinite(value):
            raise _Strict(f"number {text[:30]} overflows")
        return value

    def integer(text):
        if len(text.lstrip("-")) > ORACLE_MAX_INT_DIGITS:
            raise _Strict(f"integer of {len(text)} digits")
        return int(text)

    def pairs(items):
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys):
            raise _Strict(f"duplicate key {next(k for k in keys if keys.count(k) > 1)[:40]!r}")
        return dict(items)

    depth = 0
    deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    if deepest > ORACLE_MAX_JSON_DEPTH:
        raise _Strict(f"nested {deepest} deep")
    try:
        value = json.loads(
            text, parse_constant=constant, parse_float=number, parse_int=integer, object_pairs_hook=pairs
        )
    except _Strict:
        raise
    except (ValueError, RecursionError) as exc:
        raise _Strict(f"not JSON ({str(exc)[:60]})") from None
    for path in _walk(value):
        node = get_at(value, path)
        for text_value in ([node] if isinstance(node, str) else []) + [p for p in path[-1:] if isinstance(p, str)]:
            try:
                text_value.encode("utf-8")
            except UnicodeEncodeError:
                raise _Strict(f"lone surrogate in {text_value[:30]!r}") from None
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _positive(value: Any) -> bool:
    return _is_num(value) and value > 0


class _Oracle:
    def __init__(self, root: Path):
        self.root = root
        self.real_root = Path(os.path.realpath(root))
        self.problems: list[str] = []
        self.files: dict[tuple[int, int], str] = {}

    def bad(self, code: str, detail: str) -> None:
        self.problems.append(f"{code}: {detail}")

    # Files --------------------------------------------------------------------------------------------------

    def file(self, relative: Any, what: str) -> Path | None:
        """The listed file, checked to be a portable relative path to a regular, singly linked file inside."""
        if not isinstance(relative, str) or not relative:
            self.bad("path", f"{what} is {_show(relative)}")
            return None
        try:
            relative.encode("utf-8")
        except UnicodeEncodeError:
            self.bad("path", f"{what} holds a lone surrogate")
            return None
        parts = relative.split("/")
        if "\x00" in relative or "\\" in relative or ":" in relative or relative.startswith("/"):
            self.bad("path", f"{what} is not a portable relative path: {_show(relative)}")
            return None
        if any(part in ("", ".", "..") for part in parts) or any(len(p.encode()) > 255 for p in parts):
            self.bad("path", f"{what} has an empty, dot or over-long part: {_show(relative)}")
            return None
        path = self.root / relative
        real = Path(os.path.realpath(path))
        if not real.is_relative_to(self.real_root):
            self.bad("path_outside", f"{what} {relative} resolves outside the package")
            return None
        try:
            info = os.stat(real)
        except OSError as exc:
            self.bad("missing_file", f"{what} {relative}: {exc.strerror}")
            return None
        if not stat.S_ISREG(info.st_mode):
            self.bad("not_a_file", f"{what} {relative} is not a regular file")
            return None
        if info.st_nlink != 1:
            self.bad("hard_link", f"{what} {relative} has {info.st_nlink} links")
        key = (info.st_dev, info.st_ino)
        if key in self.files:
            self.bad("duplicate_file", f"{what} {relative} is the same file as {self.files[key]}")
        self.files[key] = f"{what} {relative}"
        return real

    def png(self, path: Path, what: str, size: tuple[int, int] | None, code: str = "png") -> None:
        """An 8-bit RGBA PNG of ``size`` (any valid PNG when ``size`` is None), complete and exact."""
        if path.stat().st_size > ORACLE_MAX_PNG_BYTES:
            self.bad(code, f"{what}: {path.stat().st_size} bytes")
            return
        problem = _png_problem(path.read_bytes(), size)
        if problem:
            self.bad("texture_size" if problem.startswith("size") else code, f"{what}: {problem}")

    def npz(self, path: Path, what: str) -> dict[str, np.ndarray] | None:
        try:
            with zipfile.ZipFile(path) as archive:
                infos = archive.infolist()
                names = [info.filename for info in infos]
                if sorted(names) != ["faces.npy", "uvs.npy", "vertices.npy"]:
                    self.bad("npz_members", f"{what} holds {names[:6]}")
                    return None
                for info in infos:
                    if info.file_size > ORACLE_MAX_MEMBER:
                        self.bad("npz_bomb", f"{what}: {info.filename} unpacks to {info.file_size} bytes")
                        return None
                    methods = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
                    if info.flag_bits & 1 or info.compress_type not in methods:
                        self.bad("npz_members", f"{what}: {info.filename} encrypted or method {info.compress_type}")
                        return None
                broken = archive.testzip()
                if broken:
                    self.bad("npz_crc", f"{what}: {broken} fails its CRC")
                    return None
            with np.load(path, allow_pickle=False) as data:
                return {name: data[name] for name in ("vertices", "uvs", "faces")}
        except Exception as exc:
            self.bad("npz_unreadable", f"{what}: {type(exc).__name__}: {str(exc)[:60]}")
            return None

    def mesh(self, arrays: dict[str, np.ndarray], what: str, layer: dict) -> None:
        spec = {"vertices": ("float32", 3), "uvs": ("float32", 2), "faces": ("int32", 3)}
        for name, (dtype, columns) in spec.items():
            array = arrays[name]
            if array.dtype != np.dtype(dtype) or array.ndim != 2 or array.shape[1] != columns:
                self.bad("mesh_arrays", f"{what}: {name} is {array.dtype} {array.shape}")
                return
        vertices, uvs, faces = arrays["vertices"], arrays["uvs"], arrays["faces"]
        if len(uvs) != len(vertices):
            self.bad("mesh_arrays", f"{what}: {len(uvs)} UVs for {len(vertices)} vertices")
        if len(faces) == 0 or len(vertices) < 3:
            self.bad("mesh_no_faces", f"{what}: {len(faces)} faces, {len(vertices)} vertices")
            return
        if faces.min() < 0 or faces.max() >= len(vertices):
            self.bad("mesh_face_index", f"{what}: indices {faces.min()}..{faces.max()} for {len(vertices)} vertices")
        if not (np.isfinite(vertices).all() and np.isfinite(uvs).all()):
            self.bad("mesh_non_finite", f"{what}: NaN or infinite values")
        elif (vertices[:, 2] >= 0).any():
            self.bad("mesh_behind_camera", f"{what}: vertices with z >= 0")
        for key, actual in (("vertices", len(vertices)), ("triangles", len(faces))):
            if layer.get(key) is not None and (not _is_int(layer[key]) or layer[key] != actual):
                self.bad("mesh_counts", f"{what}: manifest says {key} {_show(layer[key])}, the mesh has {actual}")

    def depth_map(self, path: Path, shape: tuple[int, int] | None) -> None:
        data = path.read_bytes() if path.stat().st_size <= ORACLE_MAX_MEMBER else b""
        if data[:6] != b"\x93NUMPY" or len(data) < 10:
            self.bad("depth_map", "not an .npy file")
            return
        major = data[6]
        if major == 1:
            length, start = struct.unpack("<H", data[8:10])[0], 10
        elif major in (2, 3) and len(data) >= 12:
            length, start = struct.unpack("<I", data[8:12])[0], 12
        else:
            self.bad("depth_map", f"npy version {major}")
            return
        try:
            header = ast.literal_eval(data[start : start + length].decode("latin1"))
            descr, dims = header["descr"], tuple(header["shape"])
        except Exception:
            self.bad("depth_map", "unreadable npy header")
            return
        if descr != np.dtype(np.float32).str or (shape is not None and dims != shape) or len(dims) != 2:
            self.bad("depth_map", f"{descr} {dims}, the package needs float32 {shape or '(h, w)'}")
            return
        if len(data) != start + length + 4 * dims[0] * dims[1]:
            self.bad("depth_map", f"{len(data)} bytes for {dims}")
            return
        depth = np.load(io.BytesIO(data), allow_pickle=False)
        if not (np.isfinite(depth).all() and (depth > 0).all()):
            self.bad("depth_map", "values that are not finite positive depths")

    # The manifest -------------------------------------------------------------------------------------------

    def check(self, text_output: str, json_output: str) -> list[str]:
        path = self.root / "manifest.json"
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            self.bad("manifest_file", "manifest.json is not a regular file")
            return self.problems
        if info.st_size > ORACLE_MAX_MANIFEST:
            self.bad("manifest_size", f"{info.st_size} bytes")
            return self.problems
        try:
            manifest = strict_json(path.read_bytes())
        except _Strict as exc:
            self.bad("manifest_json", str(exc))
            return self.problems
        if not isinstance(manifest, dict):
            self.bad("manifest_json", f"a {type(manifest).__name__}, not an object")
            return self.problems
        self.output(text_output, json_output)
        self.manifest(manifest)
        return self.problems

    def output(self, text: str, json_text: str) -> None:
        controls = sorted({ch for ch in text if ord(ch) < 32 and ch not in "\n" or 0x7F <= ord(ch) < 0xA0})
        if controls:
            self.bad("summary_control_chars", f"validate printed {[hex(ord(c)) for c in controls][:5]}")
        try:
            shown = strict_json(json_text.encode("utf-8", "surrogatepass"))
        except _Strict as exc:
            self.bad("validate_json", f"--json printed {exc}")
            return
        if not isinstance(shown, dict) or shown.get("valid") is not True:
            self.bad("validate_json", "--json did not print an object with valid: true")

    def manifest(self, m: dict[str, Any]) -> None:
        from core.package import FORMAT_VERSION

        if m.get("format") != "photo3d.layers":
            self.bad("format", _show(m.get("format")))
        version = m.get("version")
        known_minor = int(FORMAT_VERSION.split(".")[1])
        match = re.fullmatch(r"([0-9]{1,3})\.([0-9]{1,3})", version) if isinstance(version, str) else None
        if not match or int(match.group(1)) != 1 or int(match.group(2)) > known_minor:
            self.bad("version", _show(version))
        representation = m.get("representation")
        if representation not in ("mesh", "mpi"):
            self.bad("representation", _show(representation))
            return
        camera = self.camera(m.get("camera"))
        self.source(m.get("source"), camera)
        work = self.work_size(m.get("work_size"), camera)
        self.depth(m.get("depth"), work)
        if m.get("contact_sheet") is not None:
            sheet = self.file(m["contact_sheet"], "contact_sheet")
            if sheet:  # informational: only its kind is promised, as for any PNG header
                problem = _png_header_problem(sheet.read_bytes()[:33])
                if problem:
                    self.bad("contact_sheet", problem)
        if camera is None:
            return
        size = camera if representation == "mesh" else (work[1], work[0]) if work else None
        self.layers(m.get("layers"), representation, size, camera)
        self.optional(m)

    def camera(self, camera: Any) -> tuple[int, int] | None:
        if not isinstance(camera, dict):
            self.bad("camera", f"is {_show(camera)}")
            return None
        width, height = camera.get("width"), camera.get("height")
        ok = True
        for key, value in (("width", width), ("height", height)):
            if not _is_int(value) or not 1 <= value <= ORACLE_MAX_SIDE:
                self.bad("camera_size", f"{key} {_show(value)}")
                ok = False
        if ok and width * height > ORACLE_MAX_PIXELS:
            self.bad("camera_size", f"{width}x{height}")
            ok = False
        focal = camera.get("focal_px")
        if not _positive(focal):
            self.bad("camera_focal", f"focal_px {_show(focal)}")
        for key in ("cx", "cy"):
            if not _is_num(camera.get(key)):
                self.bad("camera_center", f"{key} {_show(camera.get(key))}")
        for key, side in (("fov_x_deg", width), ("fov_y_deg", height)):
            if key not in camera:
                continue
            fov = camera[key]
            if not _is_num(fov) or not 0 < fov < 180:
                self.bad("camera_fov", f"{key} {_show(fov)}")
            elif ok and _positive(focal):
                expected = math.degrees(2 * math.atan(side / (2 * focal)))
                if abs(expected - fov) > 0.01:
                    self.bad("camera_fov", f"{key} {fov:g} but focal {focal:g} gives {expected:g}")
        if "focal_source" in camera and not isinstance(camera["focal_source"], str):
            self.bad("camera", f"focal_source {_show(camera['focal_source'])}")
        return (width, height) if ok else None

    def source(self, source: Any, camera: tuple[int, int] | None) -> None:
        if not isinstance(source, dict):
            self.bad("source", f"is {_show(source)}")
            return
        if not isinstance(source.get("path"), str):
            self.bad("source", f"path {_show(source.get('path'))}")
        size = (source.get("width"), source.get("height"))
        if not all(map(_is_int, size)) or (camera and size != camera):
            self.bad("source_size", f"{_show(size[0])}x{_show(size[1])}, camera {camera}")
        if "mode" in source and not isinstance(source["mode"], str):
            self.bad("source", f"mode {_show(source['mode'])}")

    def work_size(self, work: Any, camera: tuple[int, int] | None) -> tuple[int, int] | None:
        if not isinstance(work, list) or len(work) != 2 or not all(_is_int(v) and v >= 1 for v in work):
            self.bad("work_size", _show(work))
            return None
        if camera and (work[0] > camera[1] or work[1] > camera[0]):
            self.bad("work_size", f"{work} larger than the camera's {camera}")
            return None
        return work[0], work[1]

    def depth(self, depth: Any, work: tuple[int, int] | None) -> None:
        if not isinstance(depth, dict):
            self.bad("depth", f"is {_show(depth)}")
            return
        lo, hi = depth.get("min"), depth.get("max")
        if not (_positive(lo) and _positive(hi)) or lo > hi:
            self.bad("depth_range", f"min {_show(lo)} max {_show(hi)}")
        for key in ("kind", "units", "source"):
            if not isinstance(depth.get(key), str):
                self.bad("depth", f"{key} {_show(depth.get(key))}")
        if depth.get("scale") is not None and not _positive(depth["scale"]):
            self.bad("depth", f"scale {_show(depth['scale'])}")
        path = self.file(depth.get("map"), "depth.map")
        if path:
            self.depth_map(path, work)

    def layers(self, layers: Any, representation: str, size: tuple[int, int] | None, camera: tuple[int, int]) -> None:
        if not isinstance(layers, list) or not layers:
            self.bad("layer_count", f"layers is {_show(layers)}")
            return
        if len(layers) > ORACLE_MAX_LAYERS:
            self.bad("layer_count", f"{len(layers)} layers")
            return
        names: set[str] = set()
        previous_plane = math.inf
        for i, layer in enumerate(layers):
            what = f"layers[{i}]"
            if not isinstance(layer, dict):
                self.bad("layer", f"{what} is {_show(layer)}")
                continue
            if layer.get("index") != i or not _is_int(layer.get("index")):
                self.bad("layer_index", f"{what}.index is {_show(layer.get('index'))}")
            name = layer.get("name")
            if not isinstance(name, str) or not name:
                self.bad("layer_name", f"{what}.name is {_show(name)}")
            elif name in names:
                self.bad("layer_name", f"{what}.name {name!r} repeats")
            else:
                names.add(name)
            span = layer.get("depth_range")
            if not (isinstance(span, list) and len(span) == 2 and all(map(_positive, span)) and span[0] <= span[1]):
                self.bad("layer_depth_range", f"{what}.depth_range is {_show(span)}")
            count = layer.get("pixel_count")
            if not _is_int(count) or not 0 <= count <= camera[0] * camera[1]:
                self.bad("layer_pixel_count", f"{what}.pixel_count is {_show(count)}")
            border = layer.get("border", 0)
            if "border" in layer:
                if not _is_int(border) or not 0 <= border <= max(camera) // 2 + 1:
                    self.bad("layer_border", f"{what}.border is {_show(border)}")
                    border = 0
                elif border and representation != "mesh":
                    self.bad("layer_border", f"{what}.border on an MPI plane")
                    border = 0
            texture = self.file(layer.get("texture"), f"{what}.texture")
            if texture and size:
                self.png(texture, f"{what}.texture", (size[0] + 2 * border, size[1] + 2 * border))
            if representation == "mesh":
                mesh = self.file(layer.get("mesh"), f"{what}.mesh")
                arrays = self.npz(mesh, f"{what}.mesh") if mesh else None
                if arrays is not None:
                    self.mesh(arrays, f"{what}.mesh", layer)
            else:
                plane = layer.get("plane_depth")
                if not _positive(plane):
                    self.bad("plane_depth", f"{what}.plane_depth is {_show(plane)}")
                elif plane >= previous_plane:
                    self.bad("plane_order", f"{what}.plane_depth {plane:g} is not below the one before")
                else:
                    previous_plane = plane
            if layer.get("median_depth") is not None and not _positive(layer["median_depth"]):
                self.bad("layer_optional", f"{what}.median_depth is {_show(layer['median_depth'])}")
            fraction = layer.get("inpainted_fraction")
            if fraction is not None and not (_is_num(fraction) and 0 <= fraction <= 1):
                self.bad("layer_optional", f"{what}.inpainted_fraction is {_show(fraction)}")

    def optional(self, m: dict[str, Any]) -> None:
        timings = m.get("timings")
        if timings is not None and not (
            isinstance(timings, dict) and all(_is_num(v) and v >= 0 for v in timings.values())
        ):
            self.bad("timings", _show(timings))
        models = m.get("models")
        if models is not None and not (isinstance(models, dict) and all(isinstance(v, str) for v in models.values())):
            self.bad("models", _show(models))
        for key in ("created_by", "created_at"):
            if key in m and not isinstance(m[key], str):
                self.bad("created", f"{key} is {_show(m[key])}")


def _png_header_problem(head: bytes) -> str:
    """What is wrong with the first 33 bytes of a PNG (signature and IHDR), or ""."""
    if len(head) < 33 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return "not a PNG"
    if zlib.crc32(head[12:29]) != struct.unpack(">I", head[29:33])[0]:
        return "PNG header CRC is wrong"
    return ""


def _png_problem(data: bytes, size: tuple[int, int] | None) -> str:
    """What is wrong with PNG bytes that must be an 8-bit RGBA image of ``size`` (or any PNG), or ""."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return "not a PNG"
    offset, idat, header, ended = 8, [], None, False
    while offset + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        if len(body) < length or offset + 12 + length > len(data):
            return "truncated chunk"
        crc = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])[0]
        if zlib.crc32(kind + body) != crc:
            return f"CRC of {kind!r} is wrong"
        if header is None and kind != b"IHDR":
            return "does not start with IHDR"
        if kind == b"IHDR":
            if length != 13:
                return "IHDR of wrong length"
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            ended = True
            break
        offset += 12 + length
    if header is None or not ended or not idat:
        return "missing IHDR, IDAT or IEND"
    width, height, bits, colour, compression, filtering, interlace = header
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour)
    if channels is None or compression or filtering or interlace > 1 or width == 0 or height == 0:
        return f"invalid IHDR {header}"
    if size is not None:
        if bits != 8 or colour != 6:
            return f"{bits}-bit colour type {colour}, not 8-bit RGBA"
        if (width, height) != size:
            return f"size {width}x{height}, expected {size[0]}x{size[1]}"
    rows = _png_rows(width, height, channels * bits, interlace)
    expected = sum(r * (1 + (w * channels * bits + 7) // 8) for w, r in rows)
    if expected > ORACLE_MAX_MEMBER:
        return f"{width}x{height} unpacks to {expected} bytes"
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(b"".join(idat), expected + 1)
    except zlib.error as exc:
        return f"image data does not inflate ({exc})"
    if len(raw) != expected or not inflater.eof or inflater.unconsumed_tail:
        return f"image data of {len(raw)}{'+' if inflater.unconsumed_tail else ''} bytes, expected {expected}"
    position = 0
    for w, r in rows:
        stride = 1 + (w * channels * bits + 7) // 8
        for _ in range(r):
            if raw[position] > 4:
                return f"filter type {raw[position]}"
            position += stride
    return ""


def _png_rows(width: int, height: int, bits_per_pixel: int, interlace: int) -> list[tuple[int, int]]:
    """(width, rows) of each pass: one pass, or Adam7's seven."""
    if not interlace:
        return [(width, height)]
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    sizes = []
    for x0, y0, dx, dy in passes:
        w, r = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
        if w > 0 and r > 0:
            sizes.append((w, r))
    return sizes


def oracle_problems(root: str | os.PathLike, text_output: str = "", json_output: str = '{"valid": true}') -> list[str]:
    """This module's own verdict on a package folder the reader accepted: ``code: detail`` for each problem."""
    return _Oracle(Path(root)).check(text_output, json_output)


# --------------------------------------------------------------------------------------------------------------
# Cases: a seed copy, 1-3 mutations, the outcome


@dataclass
class Case:
    seed: str
    mutations: list[tuple[str, str]]
    """(mutation class, what it did) in the order applied."""
    outcome: Outcome
    folder: Path | None = None
    """Where the mutated package was kept (failures only, when asked)."""

    @property
    def classes(self) -> list[str]:
        return list(dict.fromkeys(name for name, _ in self.mutations))

    def describe(self) -> str:
        steps = "; ".join(f"{name}({what})" for name, what in self.mutations)
        where = f" kept at {self.folder}" if self.folder else ""
        return f"{self.seed} seed, {steps} -> {self.outcome.describe()}{where}"


def run_case(
    seeds: dict[str, Path],
    workdir: Path,
    draw: Draw,
    min_ops: int = 1,
    max_ops: int = 3,
    only: Sequence[str] | None = None,
    keep_failures: bool = False,
    timeout: float | None = 60.0,
    trace_memory: bool = False,
    keep_all: bool = False,
) -> Case:
    """Copy a seed, apply ``min_ops``..``max_ops`` mutations drawn from ``draw``, and examine the result."""
    kinds = [kind for kind in sorted(seeds) if mutations_for(kind, only)]
    kind = draw.choice(kinds)
    workdir.mkdir(parents=True, exist_ok=True)
    case_dir = Path(tempfile.mkdtemp(prefix="case-", dir=workdir))
    target = Target(case_dir / "pkg", case_dir / "outside", kind)
    shutil.copytree(seeds[kind], target.root)
    applied = []
    candidates = mutations_for(kind, only)
    for _ in range(draw.integer(min_ops, max_ops)):
        mutation = draw.choice(candidates)
        try:
            what = mutation.mutate(draw, target)
        except Exception as exc:  # a fuzzer bug: say so in the case, and still examine what is there
            what = f"{FUZZER_ERROR} {type(exc).__name__}: {exc}"
        applied.append((mutation.name, what))
    outcome = examine(target.root, timeout=timeout, trace_memory=trace_memory)
    case = Case(kind, applied, outcome)
    if keep_all or keep_failures and outcome.kind in ("crashed", "inconsistent"):
        case.folder = target.root
    else:
        shutil.rmtree(case_dir, ignore_errors=True)
    return case


def cases(seeds: dict[str, Path], workdir: Path, max_ops: int = 3, timeout: float | None = 60.0):
    """A hypothesis strategy of examined ``Case``s: a seed, 1..``max_ops`` mutations and their parameters."""
    from hypothesis import strategies as st

    @st.composite
    def strategy(draw):
        return run_case(seeds, workdir, HypothesisDraw(draw), 1, max_ops, keep_failures=True, timeout=timeout)

    return strategy()
