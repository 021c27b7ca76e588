"""Layer textures at the source resolution: the photo where a layer is seen, its fill where hidden.

Alpha is the layer's extent resampled bilinearly from the working resolution, which gives anti-aliased
edges when the source is larger than the working size. Observed masks of all layers resample to a
partition of unity, and every layer shows the photo itself wherever it is observed at all, so the layers
composited back to front reproduce the photo exactly.

Memory: one texture is built at a time, from the source samples as loaded (uint8 for most photos), in
strips of rows; the largest temporary is the fill colour resampled to the source size (12 bytes a pixel,
only for layers with a hole), because it must be resampled whole to stay identical to ``cv2.resize``.

Textures are written by ``write_png`` (our own encoder, streamed in strips of rows) on helper threads
(``TextureJobs``) while the pipeline's later stages run: numpy, zlib and OpenCV release the GIL while they
work. The previous texture may be being written while the next is built, so two exist at most.
"""

from __future__ import annotations

import math
import struct
import threading
import zlib
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path

import cv2
import numpy as np

from .contact_sheet import layer_thumbnail
from .inpaint import LayerFill
from .load import to_unit_float

MIP_ALIGN = 16
"""A grown texture's border is a multiple of this many pixels (``texture_border``)."""
STRIP_ROWS = 256
"""Rows per strip of the per-pixel arithmetic: 256 rows of a 12000 px wide photo are 37 MB as float32 RGB."""


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def _strips(height: int) -> Iterator[slice]:
    for top in range(0, height, STRIP_ROWS):
        yield slice(top, min(top + STRIP_ROWS, height))


def _to_bytes(samples: np.ndarray) -> np.ndarray:
    """Samples (uint8, uint16 or float32 0..1) as uint8: round(value * 255), clipped."""
    if samples.dtype == np.uint8:
        return samples  # exact: round(to_unit_float(u) * 255) == u for every byte u
    values = to_unit_float(samples) if samples.dtype != np.float32 else samples
    # clip(values * 255 + 0.5, 0, 255) in float32 as before, in place on one temporary.
    scaled = values * np.float32(255.0)
    scaled += np.float32(0.5)
    np.clip(scaled, np.float32(0.0), np.float32(255.0), out=scaled)
    return scaled.astype(np.uint8)


def texture_border(border: int, work_size: tuple[int, int], source_size: tuple[int, int]) -> int:
    """Source pixels a texture reaches past each edge of the photo for a fill ``border`` working pixels past
    it: at least as far, so the mesh built on the working canvas never samples past its texture."""
    if border <= 0:
        return 0
    scale = max(source_size[0] / work_size[0], source_size[1] / work_size[1])
    needed = int(math.ceil(border * scale - 1e-9))
    # A multiple of 16 keeps the photo's texels on the same grid in the first mipmap levels as without a
    # border: any other offset resamples them, and a render below the photo's size comes out softer.
    return -(-needed // MIP_ALIGN) * MIP_ALIGN


def layer_rgba(photo: np.ndarray, photo_alpha: np.ndarray | None, observed: np.ndarray, fill: LayerFill) -> np.ndarray:
    """(H, W, 4) uint8 straight-alpha texture of one layer at the photo's resolution.

    ``photo`` (H, W, 3) and ``photo_alpha`` (H, W) are source samples: uint8, uint16 or float32 0..1
    (``LoadedImage.source_rgb`` / ``source_alpha``); the result is the same for each form of the same values.
    A fill with a border (``inpaint.add_border``) gives a texture ``texture_border`` pixels larger on each
    side: the photo's own colours mirrored at its edges, at the photo's resolution, and the coverage at the
    edges repeated outwards, as the mesh's outline goes on.
    """
    if fill.border:
        inner = layer_rgba(photo, photo_alpha, observed, fill.frame())
        pad = (texture_border(fill.border, observed.shape, photo.shape[:2]),) * 4
        rgba = cv2.copyMakeBorder(inner, *pad, cv2.BORDER_REFLECT)
        rgba[..., 3] = cv2.copyMakeBorder(np.ascontiguousarray(inner[..., 3]), *pad, cv2.BORDER_REPLICATE)
        return rgba
    height, width = photo.shape[:2]
    if photo.dtype == np.uint8:
        rgba = cv2.cvtColor(np.ascontiguousarray(photo), cv2.COLOR_RGB2RGBA)  # one pass; alpha is set below
    else:
        rgba = np.empty((height, width, 4), dtype=np.uint8)
        for rows in _strips(height):
            rgba[rows, :, :3] = _to_bytes(photo[rows])

    alpha = _resize(fill.extent.astype(np.float32), width, height)  # a new array either way
    np.clip(alpha, 0.0, 1.0, out=alpha)
    has_hole = bool(fill.hole.any())
    if has_hole:
        # Filled colour shows only where no layer sees the photo but this layer still has coverage.
        only_filled = _resize(observed.astype(np.float32), width, height) <= 1e-6
        only_filled &= alpha > 0
    for rows in _strips(height):
        if photo_alpha is not None:
            alpha[rows] *= to_unit_float(photo_alpha[rows]) if photo_alpha.dtype != np.float32 else photo_alpha[rows]
        rgba[rows, :, 3] = _to_bytes(alpha[rows])
    del alpha

    if has_hole:
        # Resampled whole: cv2.resize per strip or per channel differs from it in the last bit.
        filled = _resize(fill.rgb, width, height)
        for rows in _strips(height):
            where = only_filled[rows]
            if where.any():  # the filled band covers few strips of most layers
                np.copyto(rgba[rows, :, :3], _to_bytes(filled[rows]), where=where[..., None])
    return rgba


UNSEEN_MARGIN = 32
"""Texels at least this far from every texel with coverage are never sampled, down to mipmap level 5."""


def clear_unseen(rgba: np.ndarray, margin: int = UNSEEN_MARGIN) -> np.ndarray:
    """Zero the colour of transparent texels ``margin`` pixels or more from any covered one (uint8 RGBA, in
    place and returned).

    A foreground layer's texture is mostly transparent, yet keeps the photo's colours there; no mesh reaches
    them and no texture tap near the mesh does either, and as zeros they encode as long runs, about twice as
    fast and a third the size (``png_chunks``). Works on blocks of ``margin / 2`` pixels: a block is kept when
    it or one of the two blocks around it on each side holds coverage, so every cleared texel is at least
    ``margin`` from coverage. One row of blocks at a time: the temporaries are a strip, not a texture.
    """
    block = max(1, margin // 2)
    h, w = rgba.shape[:2]
    rows, cols = -(-h // block), -(-w // block)
    blocks = np.zeros((rows, cols * block), np.uint8)
    for r in range(rows):
        strip = rgba[r * block : (r + 1) * block, :, 3]
        blocks[r, :w] = strip.max(axis=0) > 0
    blocks = blocks.reshape(rows, cols, block).max(axis=2)
    keep = cv2.dilate(blocks, np.ones((5, 5), np.uint8)) > 0
    if keep.all():
        return rgba
    for r in np.flatnonzero(~keep.all(axis=1)):
        columns = np.repeat(~keep[r], block)[:w]
        rgba[r * block : (r + 1) * block, columns] = 0
    return rgba


def bleed_colour(rgba: np.ndarray) -> np.ndarray:
    """Copy the nearest visible colour into fully transparent texels (uint8 RGBA, in place and returned).

    Compositing ignores them, but texture filtering does not: mipmaps and bilinear taps that mix a visible
    texel with a black transparent one darken the edge, which shows as dark seams between MPI bands.
    """
    from scipy.ndimage import distance_transform_edt

    clear = rgba[..., 3] == 0
    if clear.any() and not clear.all():
        _, (rows, cols) = distance_transform_edt(clear, return_indices=True)
        rgba[..., :3] = rgba[rows, cols, :3]
    return rgba


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_UP_FILTER = 2


def png_chunks(image: np.ndarray) -> Iterator[tuple[bytes, bytes]]:
    """The chunks ``(type, data)`` of an 8-bit RGBA (colour type 6) or RGB (2) PNG of ``image``, made strip by
    strip: every row is Up-filtered and the zlib stream is run-length coded (``Z_RLE``).

    Up costs one subtraction and, on photos, compresses almost as well as libpng's adaptive filters;
    run-length coding finds the only matches Up-filtered photo rows have many of (runs of equal bytes: flat
    colour, and the cleared transparent parts of a layer, ``clear_unseen``), and is the fastest zlib mode on
    them: on the 1080p benchmark's textures 10-40 % faster than Huffman-only coding, for files 15-45 % smaller.
    Non-interlaced, one IDAT chunk per strip of ``STRIP_ROWS`` rows.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"write_png takes (h, w, 3|4) uint8, got {image.dtype} {image.shape}")
    height, width, channels = image.shape
    rows = np.ascontiguousarray(image).reshape(height, width * channels)
    yield b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6 if channels == 4 else 2, 0, 0, 0)
    deflate = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    filtered = np.empty((min(STRIP_ROWS, height), width * channels + 1), np.uint8)  # reused for every strip
    filtered[:, 0] = _UP_FILTER
    for strip in _strips(height):
        out = filtered[: strip.stop - strip.start]
        if strip.start == 0:
            out[0, 1:] = rows[0]  # the row above the first is zeros
        else:
            np.subtract(rows[strip.start], rows[strip.start - 1], out=out[0, 1:])
        np.subtract(rows[strip.start + 1 : strip.stop], rows[strip.start : strip.stop - 1], out=out[1:, 1:])
        data = deflate.compress(out)  # releases the GIL
        if data:
            yield b"IDAT", data
    yield b"IDAT", deflate.flush()
    yield b"IEND", b""


def write_png(path, rgba: np.ndarray) -> int:
    """Write an RGBA or RGB uint8 image as a PNG (see ``png_chunks``); returns the bytes written.

    Memory beyond the image is one strip. The file is complete and valid by construction (zlib's stream of
    exactly the filtered rows, chunk lengths and CRCs computed here; ``tests/test_pipeline_speed_structure.py``
    inflates and decodes it with ``png_check``, Pillow and OpenCV), so a caller that finds the file this long
    need not inflate it again.
    """
    written = len(PNG_SIGNATURE)
    with open(path, "wb") as handle:
        handle.write(PNG_SIGNATURE)
        for kind, data in png_chunks(rgba):
            crc = zlib.crc32(data, zlib.crc32(kind))
            handle.write(struct.pack(">I", len(data)) + kind)
            handle.write(data)
            handle.write(struct.pack(">I", crc))
            written += 12 + len(data)
    return written


class TextureJobs:
    """Textures built, written and checked on helper threads while the caller goes on with later stages.

    A job builds one texture (``build()``), keeps a contact-sheet thumbnail of it, writes it with ``write`` and
    checks the written file (its own ``check``, given what ``write`` returned); the thumbnails come back from
    ``results``. Memory stays
    bounded: ``live`` helpers run jobs and a job holds its texture only from build to write, so at most
    ``live`` full-size textures exist at once. Builds take turns (``layer_rgba``'s temporaries are the
    package stage's largest, 12 bytes a source pixel), and so do writes: one texture is encoded while the next
    is built, and the caller's own stage has the other core. The first failure stops the jobs not yet
    started and is raised by ``results``.

    ``close`` (also on leaving the ``with`` block, cancellation and signals included) drops the jobs not yet
    started and waits for the running ones, each at most one texture from done: no helper outlives the block
    that owns the staging folder they write into, so nothing is written there after it is removed.
    """

    def __init__(
        self,
        write: Callable[[Path, np.ndarray], object],
        cancelled: Callable[[], bool] = lambda: False,
        live: int = 2,
    ) -> None:
        self._write = write
        self._cancelled = cancelled
        self._stop = threading.Event()
        self._build_turn = threading.Lock()
        self._write_turn = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, live), thread_name_prefix="photo3d-texture")
        self._jobs: dict[Hashable, Future] = {}
        self._live = 0
        self._live_lock = threading.Lock()
        self.peak_live = 0
        """Most full-size textures that existed at once (for tests)."""

    def submit(
        self,
        key: Hashable,
        path: Path,
        build: Callable[[], np.ndarray],
        thumb_height: int = 0,
        check: Callable[[object], None] | None = None,
    ) -> None:
        """Queue one texture: ``build()`` makes it, ``path`` receives it, a thumbnail this high is kept (0: none),
        ``check(what write returned)`` then checks the file (raising when it is not what was meant)."""
        if key in self._jobs:
            raise ValueError(f"texture {key!r} was already submitted")
        self._jobs[key] = self._pool.submit(self._run, path, build, thumb_height, check)

    def _abandoned(self) -> bool:
        return self._stop.is_set() or self._cancelled()

    def _run(self, path: Path, build, thumb_height: int, check) -> np.ndarray | None:
        try:
            with self._build_turn:
                if self._abandoned():
                    return None
                self._count_live(+1)
                try:
                    texture = build()
                except BaseException:
                    self._count_live(-1)
                    raise
            try:
                thumbnail = layer_thumbnail(texture, thumb_height) if thumb_height else None
                with self._write_turn:
                    if self._abandoned():
                        return None
                    written = self._write(path, texture)
            finally:
                del texture
                self._count_live(-1)
            if check is not None and not self._abandoned():
                check(written)
            return thumbnail
        except BaseException:
            self._stop.set()  # the package fails: the other jobs need not run
            raise

    def _count_live(self, change: int) -> None:
        with self._live_lock:
            self._live += change
            self.peak_live = max(self.peak_live, self._live)

    def results(self, check: Callable[[], None] = lambda: None, poll_s: float = 0.05) -> dict[Hashable, np.ndarray]:
        """Wait for every job, calling ``check`` (which may raise, e.g. ``Cancelled``) every ``poll_s`` seconds;
        returns the thumbnails by key, or raises the first job's failure."""
        pending = set(self._jobs.values())
        while pending:
            done, pending = wait(pending, timeout=poll_s, return_when=FIRST_EXCEPTION)
            for future in done:
                if not future.cancelled() and future.exception() is not None:
                    raise future.exception()
            check()
        check()  # jobs skipped for a cancel return nothing: the cancel is raised here
        if self._stop.is_set():
            raise RuntimeError("texture jobs were stopped before they finished")
        return {key: future.result() for key, future in self._jobs.items()}

    def close(self) -> None:
        """Drop the jobs not yet started and wait for the running ones (a second signal does not cut it short)."""
        self._stop.set()
        for future in self._jobs.values():
            future.cancel()
        interrupted: BaseException | None = None
        while True:
            try:
                self._pool.shutdown(wait=True)
                break
            except BaseException as exc:  # e.g. Ctrl-C again: the helpers are at most a texture from done
                interrupted = interrupted or exc
        if interrupted is not None:
            raise interrupted

    def __enter__(self) -> TextureJobs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
