"""Hostile and huge inputs stay within bounded memory: depth files are sized from their headers first,
and full-resolution textures are built one layer and one strip at a time."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from core.depth import MAX_DEPTH_FILE_BYTES_PER_PIXEL, load_depth_file
from core.errors import InputError
from core.options import DepthOptions

ROOT = Path(__file__).resolve().parents[1]
# 20000x15000 is 300 MP: three times the photo limit, yet the PNG is about 0.6 MB.
HUGE_W, HUGE_H = 20000, 15000
EXTRA_MB_BOUND = 300


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _write_zero_png16(path: Path, width: int, height: int) -> None:
    """A valid 16-bit grey PNG of zeros, compressed row by row so the test never holds the pixels."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    rows = (b"\0" + bytes(2 * width)) * 100  # filter byte 0 then the samples, 100 rows per call
    idat = [compressor.compress(rows) for _ in range(height // 100)]
    idat.append(compressor.compress((b"\0" + bytes(2 * width)) * (height % 100)))
    idat.append(compressor.flush())
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + _png_chunk(b"IDAT", b"".join(idat)) + _png_chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "huge_depth.png"
    _write_zero_png16(path, HUGE_W, HUGE_H)
    return path


def _extra_peak_mb(code: str) -> dict:
    """Run ``code`` in a fresh interpreter after the imports; its peak RSS growth and its printed result."""
    prologue = (
        "import json, resource, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "import core.pipeline, core.cli  # everything a conversion imports, before the baseline\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "result = {}\n"
    )
    epilogue = (
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "result['extra_mb'] = (after - before) / 1024\n"
        "print(json.dumps(result))\n"
    )
    script = prologue + textwrap.dedent(code) + "\n" + epilogue
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- depth files are sized from their headers -----------------------------------------------------------


def test_huge_png_depth_is_refused_before_decoding(huge_png):
    assert huge_png.stat().st_size < 1_000_000
    result = _extra_peak_mb(
        f"""
        from core.depth import load_depth_file
        from core.errors import InputError
        from core.options import DepthOptions
        try:
            load_depth_file({str(huge_png)!r}, (768, 1024), DepthOptions())
        except InputError as exc:
            result["error"] = str(exc)
        """
    )
    # Decoding it would take 600 MB as uint16 and 1.2 GB more as float32.
    assert result["extra_mb"] < EXTRA_MB_BOUND, result
    message = result.get("error", "")
    assert str(huge_png) in message and f"{HUGE_W}x{HUGE_H}" in message and "100.0 MP" in message


def test_huge_depth_file_is_bad_input_on_the_command_line(tmp_path, huge_png):
    import cv2

    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.full((48, 64, 3), 128, np.uint8))
    result = _extra_peak_mb(
        f"""
        from core import cli
        result["code"] = cli.main(["convert", {str(photo)!r}, "-o", {str(tmp_path / "pkg")!r}, "--depth",
                                   {str(huge_png)!r}, "--segment", "none", "-q"])
        """
    )
    assert result["code"] == 2 and result["extra_mb"] < EXTRA_MB_BOUND, result
    assert not (tmp_path / "pkg").exists()


def _refused_without_allocating(path: Path, match: str, size=(768, 1024), **kwargs) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=match) as info:
            load_depth_file(str(path), size, DepthOptions(), **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(path) in str(info.value)
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MB allocated before refusing"


def test_huge_npy_tiff_pgm_pfm_and_exr_are_refused_from_their_headers(tmp_path):
    import tifffile

    npy = tmp_path / "huge.npy"  # sparse on disk: the header and a hole
    np.lib.format.open_memmap(npy, mode="w+", dtype=np.float32, shape=(HUGE_H, HUGE_W)).flush()
    _refused_without_allocating(npy, f"{HUGE_W}x{HUGE_H} px")

    tiff = tmp_path / "huge.tif"
    tifffile.imwrite(tiff, shape=(HUGE_H, HUGE_W), dtype="uint16")  # tags only, the strips are a hole
    _refused_without_allocating(tiff, f"{HUGE_W}x{HUGE_H} px")

    pgm = tmp_path / "huge.pgm"
    pgm.write_bytes(f"P5\n# a comment\n{HUGE_W} {HUGE_H}\n65535\n".encode() + bytes(64))
    _refused_without_allocating(pgm, f"{HUGE_W}x{HUGE_H} px")

    pfm = tmp_path / "huge.pfm"
    pfm.write_bytes(f"Pf\n{HUGE_W} {HUGE_H}\n-1.0\n".encode() + bytes(64))
    _refused_without_allocating(pfm, f"{HUGE_W}x{HUGE_H} px")

    exr = tmp_path / "huge.exr"
    window = b"dataWindow\0box2i\0" + struct.pack("<i4i", 16, 0, 0, HUGE_W - 1, HUGE_H - 1)
    exr.write_bytes(b"\x76\x2f\x31\x01" + struct.pack("<I", 2) + window + b"\0" + bytes(64))
    _refused_without_allocating(exr, f"{HUGE_W}x{HUGE_H} px")


def test_depth_map_at_the_limit_passes_the_header_check(tmp_path):
    path = tmp_path / "depth.npy"
    np.save(path, np.ones((30, 40), np.float32))
    _refused_without_allocating(path, "at most 0.0 MP", size=(30, 40), max_pixels=1199)
    assert load_depth_file(str(path), (30, 40), DepthOptions(), max_pixels=1200).depth.shape == (30, 40)


def test_absurd_file_size_is_refused_before_reading(tmp_path):
    path = tmp_path / "big.npy"
    with open(path, "wb") as stream:  # sparse: nothing is written or read
        stream.truncate(MAX_DEPTH_FILE_BYTES_PER_PIXEL * 100_000_000 + 1)
    _refused_without_allocating(path, re.escape(f"{path.stat().st_size:,} bytes"))


def test_npy_must_be_a_plain_2d_array(tmp_path):
    good = tmp_path / "hw1.npy"
    np.save(good, np.full((24, 32, 1), 2.0, np.float32))
    assert load_depth_file(str(good), (24, 32), DepthOptions()).depth.shape == (24, 32)
    for name, array in {
        "rgb.npy": np.ones((24, 32, 3), np.float32),
        "stack.npy": np.ones((2, 24, 32), np.float32),
        "flat.npy": np.ones(24 * 32, np.float32),
        "4d.npy": np.ones((1, 24, 32, 1), np.float32),
    }.items():
        np.save(tmp_path / name, array)
        with pytest.raises(InputError, match=r"expected a 2-D \(H, W\) or \(H, W, 1\) array"):
            load_depth_file(str(tmp_path / name), (24, 32), DepthOptions())
    complex_map = tmp_path / "complex.npy"
    np.save(complex_map, np.ones((24, 32), np.complex64))
    with pytest.raises(InputError, match="not numbers"):
        load_depth_file(str(complex_map), (24, 32), DepthOptions())


def test_npy_pickles_archives_and_lying_headers_are_refused(tmp_path):
    pickled = tmp_path / "objects.npy"
    np.save(pickled, np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match=re.escape(str(pickled))):
        load_depth_file(str(pickled), (1, 1), DepthOptions())

    archive = tmp_path / "depth.npy"  # an .npz under an .npy name
    np.savez(archive.with_suffix(".npz"), depth=np.ones((4, 4), np.float32))
    archive.with_suffix(".npz").rename(archive)
    with pytest.raises(InputError, match="not a readable .npy array"):
        load_depth_file(str(archive), (4, 4), DepthOptions())

    lying = tmp_path / "lying.npy"  # the header claims 300 MP, the file holds 64 bytes of data
    header = {"descr": "<f4", "fortran_order": False, "shape": (HUGE_H, HUGE_W)}
    with open(lying, "wb") as stream:
        np.lib.format.write_array_header_1_0(stream, header)
        stream.write(bytes(64))
    _refused_without_allocating(lying, "not a readable .npy array")


def test_multi_page_and_planar_tiffs_are_not_depth_maps(tmp_path):
    import tifffile

    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.ones((3, 24, 32), np.float32), photometric="minisblack")
    with pytest.raises(InputError, match="expected a single 2-D map"):
        load_depth_file(str(stack), (24, 32), DepthOptions())


# --- the package stage holds one full-resolution texture at a time ----------------------------------------

# Bytes allocated per pixel of the largest texture while the package is written, whatever the layer count:
# one RGBA texture (4), the fill colour resampled to the source size (12), a mask (1), strips; a layer that
# reaches past the photo's edges (its border) is grown from its in-frame texture. Holding every layer's
# texture, and float32 temporaries of the whole photo, took about 60 per source pixel at 8 layers.
PACKAGE_BYTES_PER_PIXEL_BOUND = 24


@pytest.fixture(scope="module")
def layered_scene(tmp_path_factory):
    """Eight depth layers of a 4 MP photo, computed at a small working size so only the package is big."""
    from core.options import PipelineOptions
    from core.pipeline import compute_layers
    from scripts.bench_memory import make_inputs

    folder = tmp_path_factory.mktemp("layered")
    photo, depth = make_inputs(folder, 2400, 1600, 8, "jpeg", 256)
    options = PipelineOptions.from_dict(
        {
            "load": {"work_size": 256},
            "depth": {"depth_file": str(depth)},
            "segment": {"model": "none"},
            "layers": {"max_layers": 8},
        }
    )
    return compute_layers(photo, options), options


def test_package_memory_does_not_grow_with_the_layer_count(tmp_path, layered_scene, monkeypatch):
    import cv2

    import core.pipeline as pipeline
    from core.progress import Progress
    from core.textures import texture_border

    scene, options = layered_scene
    assert len(scene.layers) == 8 and sum(bool(f.hole.any()) for f in scene.fills) >= 6
    full_size: list[tuple[int, ...]] = []

    def quick_png(path, rgba):  # stored, not compressed: the test measures our arrays, not zlib's time
        if rgba.shape[0] >= scene.loaded.source_size[0]:
            full_size.append(rgba.shape)
        assert cv2.imwrite(str(path), rgba, [cv2.IMWRITE_PNG_COMPRESSION, 0])

    monkeypatch.setattr(pipeline, "write_png", quick_png)
    tracemalloc.start()
    try:
        pipeline.write_scene_package(scene, tmp_path / "pkg", options, Progress())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    height, width = scene.loaded.source_size
    # Layers the photo's frame cuts reach past it (their border), the others are the photo's size.
    grown = [2 * texture_border(fill.border, scene.loaded.work_size, (height, width)) for fill in scene.fills]
    assert full_size == [(height + g, width + g, 4) for g in grown] and any(grown)
    per_pixel = peak / max(h * w for h, w, _ in full_size)  # the largest texture: a grown one, if any
    assert per_pixel < PACKAGE_BYTES_PER_PIXEL_BOUND, f"{per_pixel:.1f} bytes per texture pixel"


def test_source_pixels_are_kept_as_bytes(layered_scene):
    loaded = layered_scene[0].loaded
    assert loaded.source_rgb.dtype == np.uint8 and loaded.source_rgb.shape == (1600, 2400, 3)
    assert loaded.rgb.dtype == np.float32  # the float view is made on request only
