"""Load stage on synthetic files: formats, bit depths, orientation, camera, working size, refusals."""

from __future__ import annotations

import hashlib
import math
import struct
import time
import zlib

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageFile, ImageOps

from core.errors import InputError
from core.load import LoadedImage, load_image, resize_to_work, work_shape
from core.options import LoadOptions

RNG = np.random.default_rng(7)


def _random_rgb(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _load(path, **kwargs) -> LoadedImage:
    return load_image(path, LoadOptions(**kwargs))


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _handmade_png(width: int, height: int, bit_depth: int, colour_type: int, raw: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


# --- formats and bit depths ---------------------------------------------------------------------------


def test_png_8bit_round_trip_is_exact(tmp_path):
    pixels = _random_rgb(20, 30)
    path = tmp_path / "rgb.png"
    Image.fromarray(pixels).save(path)
    image = _load(path)
    assert image.rgb.dtype == np.float32 and image.rgb.shape == (20, 30, 3)
    np.testing.assert_array_equal(np.round(image.rgb * 255).astype(np.uint8), pixels)
    np.testing.assert_allclose(image.rgb, pixels / 255.0, atol=1e-7)
    assert image.alpha is None and image.work_alpha is None
    assert (image.bit_depth, image.mode, image.orientation) == (8, "RGB", 1)
    assert image.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert image.path == str(path)


def test_png_16bit_gray_keeps_precision(tmp_path):
    gray = np.full((12, 16), 1000, dtype=np.uint16)
    gray[0, 0] = 65535
    path = tmp_path / "gray16.png"
    assert cv2.imwrite(str(path), gray)
    image = _load(path)
    assert image.bit_depth == 16 and image.mode.startswith("I;16")
    assert abs(image.rgb[5, 5, 0] - 1000 / 65535) < 1e-6
    assert image.rgb[0, 0, 0] == 1.0
    np.testing.assert_array_equal(image.rgb[..., 0], image.rgb[..., 2])  # replicated to 3 channels
    assert image.alpha is None


def test_png_16bit_rgb_and_rgba_keep_precision_and_channel_order(tmp_path):
    rgb = np.zeros((10, 12, 3), dtype=np.uint16)
    rgb[...] = (1000, 2000, 3000)
    path = tmp_path / "rgb16.png"
    assert cv2.imwrite(str(path), rgb[..., ::-1])  # OpenCV writes BGR
    image = _load(path)
    assert (image.bit_depth, image.mode) == (16, "RGB")
    np.testing.assert_allclose(image.rgb[4, 4], np.array([1000, 2000, 3000]) / 65535, atol=1e-6)

    bgra = np.dstack([rgb[..., ::-1], np.full((10, 12), 40000, dtype=np.uint16)])
    path = tmp_path / "rgba16.png"
    assert cv2.imwrite(str(path), bgra)
    image = _load(path)
    assert (image.bit_depth, image.mode) == (16, "RGBA")
    np.testing.assert_allclose(image.rgb[0, 0], np.array([1000, 2000, 3000]) / 65535, atol=1e-6)
    assert abs(image.alpha[3, 3] - 40000 / 65535) < 1e-6


def test_png_16bit_gray_alpha(tmp_path):
    raw = b"".join(b"\x00" + struct.pack(">" + "HH" * 10, *([1000, 60000] * 10)) for _ in range(9))
    path = tmp_path / "ga16.png"
    path.write_bytes(_handmade_png(10, 9, 16, 4, raw))
    image = _load(path)
    assert (image.bit_depth, image.mode) == (16, "LA")
    np.testing.assert_allclose(image.rgb[2, 2], [1000 / 65535] * 3, atol=1e-6)
    assert abs(image.alpha[2, 2] - 60000 / 65535) < 1e-6


def test_jpeg_loads_at_its_size(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.full((24, 40, 3), 128, dtype=np.uint8)).save(path, quality=95)
    image = _load(path)
    assert image.rgb.shape == (24, 40, 3) and image.mode == "RGB"
    assert abs(float(image.rgb.mean()) - 128 / 255) < 2 / 255


def test_rgba_png_keeps_straight_alpha_exactly(tmp_path):
    rgba = np.dstack([_random_rgb(16, 16), RNG.integers(0, 256, size=(16, 16), dtype=np.uint8)])
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    image = _load(path)
    assert image.mode == "RGBA"
    np.testing.assert_array_equal(np.round(image.alpha * 255).astype(np.uint8), rgba[..., 3])
    # Straight alpha: colour is untouched even where alpha is zero.
    np.testing.assert_array_equal(np.round(image.rgb * 255).astype(np.uint8), rgba[..., :3])
    assert image.work_alpha.shape == (16, 16)


def test_la_and_palette_transparency_give_alpha(tmp_path):
    la = Image.merge("LA", [Image.new("L", (10, 10), 200), Image.new("L", (10, 10), 50)])
    la.save(tmp_path / "la.png")
    image = _load(tmp_path / "la.png")
    assert image.mode == "LA"
    np.testing.assert_allclose(image.rgb[0, 0], [200 / 255] * 3, atol=1e-7)
    assert abs(image.alpha[0, 0] - 50 / 255) < 1e-7

    palette = Image.new("P", (10, 10), 1)
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    palette.putpixel((0, 0), 0)
    palette.save(tmp_path / "pal.png", transparency=0)
    image = _load(tmp_path / "pal.png")
    assert image.mode == "P"
    assert image.alpha[0, 0] == 0.0 and image.alpha[5, 5] == 1.0
    np.testing.assert_array_equal(image.rgb[5, 5], [0.0, 1.0, 0.0])


def test_grayscale_jpeg_is_replicated(tmp_path):
    path = tmp_path / "gray.jpg"
    Image.new("L", (16, 12), 90).save(path)
    image = _load(path)
    assert image.mode == "L" and image.rgb.shape == (12, 16, 3)
    np.testing.assert_array_equal(image.rgb[..., 0], image.rgb[..., 1])


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (255, 0, 0, 0)).save(path, quality=95)
    image = _load(path)
    assert image.mode == "CMYK" and image.rgb.shape == (16, 16, 3)
    np.testing.assert_allclose(image.rgb[8, 8], [0.0, 1.0, 1.0], atol=0.03)


def test_webp_and_bmp(tmp_path):
    pixels = _random_rgb(14, 18)
    Image.fromarray(pixels).save(tmp_path / "a.webp", lossless=True)
    Image.fromarray(pixels).save(tmp_path / "a.bmp")
    for name in ("a.webp", "a.bmp"):
        image = _load(tmp_path / name)
        np.testing.assert_array_equal(np.round(image.rgb * 255).astype(np.uint8), pixels)


def test_tiff_float32_rgb_and_gray(tmp_path):
    values = RNG.random((10, 12, 3), dtype=np.float32)
    values[0, 0] = (2.0, -1.0, 0.5)
    tifffile.imwrite(tmp_path / "rgb.tif", values, photometric="rgb")
    image = _load(tmp_path / "rgb.tif")
    assert (image.bit_depth, image.mode) == (32, "RGB;F")
    np.testing.assert_array_equal(image.rgb[1:], values[1:])
    np.testing.assert_array_equal(image.rgb[0, 0], [1.0, 0.0, 0.5])  # clipped to 0..1

    tifffile.imwrite(tmp_path / "gray.tif", values[..., 1])
    image = _load(tmp_path / "gray.tif")
    assert (image.bit_depth, image.mode) == (32, "F")
    np.testing.assert_array_equal(image.rgb[1:, :, 2], values[1:, :, 1])


def test_tiff_16bit_rgb_keeps_precision(tmp_path):
    rgb = np.zeros((10, 12, 3), dtype=np.uint16)
    rgb[...] = (1000, 2000, 3000)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb, photometric="rgb")
    image = _load(tmp_path / "rgb16.tif")
    assert image.bit_depth == 16
    np.testing.assert_allclose(image.rgb[3, 3], np.array([1000, 2000, 3000]) / 65535, atol=1e-6)


def test_exr_is_clipped_and_encoded_to_srgb(tmp_path):
    linear = np.zeros((8, 10, 3), dtype=np.float32)
    linear[...] = (0.5, 0.0, 0.18)
    linear[0, 0] = (4.0, 1.0, -0.5)
    path = tmp_path / "scene.exr"
    if not cv2.imwrite(str(path), linear[..., ::-1].copy()):
        pytest.skip("this OpenCV build has no OpenEXR writer")
    image = _load(path)
    assert (image.bit_depth, image.mode) == (32, "RGB")
    srgb = lambda x: 1.055 * x ** (1 / 2.4) - 0.055  # noqa: E731
    np.testing.assert_allclose(image.rgb[4, 4], [srgb(0.5), 0.0, srgb(0.18)], atol=1e-5)
    np.testing.assert_allclose(image.rgb[0, 0], [1.0, 1.0, 0.0], atol=1e-6)


# --- orientation ----------------------------------------------------------------------------------------


def _save_with_orientation(path, pixels: np.ndarray, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif)


def test_exif_orientation_6_rotates_clockwise(tmp_path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:4, :4] = (255, 0, 0)  # marked top-left corner of the stored image
    path = tmp_path / "rot.jpg"
    _save_with_orientation(path, pixels, 6)
    image = _load(path)
    assert image.orientation == 6
    assert image.rgb.shape == (40, 20, 3)  # width and height swapped
    # Orientation 6 means "rotate 90 degrees clockwise to view": the top-left goes to the top-right.
    assert image.rgb[1, 18, 0] > 0.8 and image.rgb[1, 1, 0] < 0.2
    assert image.camera.width == 20 and image.camera.height == 40


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow(tmp_path, orientation):
    pixels = _random_rgb(9, 13)
    path = tmp_path / f"o{orientation}.png"
    _save_with_orientation(path, pixels, orientation)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    image = _load(path)
    np.testing.assert_array_equal(np.round(image.rgb * 255).astype(np.uint8), expected)


def test_orientation_applies_to_16bit_colour(tmp_path):
    rgb = np.zeros((10, 16, 3), dtype=np.uint16)
    rgb[0, 0] = 65535
    path = tmp_path / "o16.png"
    assert cv2.imwrite(str(path), rgb)
    exif = Image.Exif()
    exif[0x0112] = 8
    # Re-save the same 16-bit data with an eXIf chunk, spliced in before IDAT.
    data = path.read_bytes()
    idat = data.index(b"IDAT") - 4
    path.write_bytes(data[:idat] + _png_chunk(b"eXIf", exif.tobytes()) + data[idat:])
    image = _load(path)
    assert image.bit_depth == 16 and image.orientation == 8
    assert image.rgb.shape == (16, 10, 3)
    assert image.rgb[15, 0, 0] == 1.0  # counter-clockwise: top-left goes to bottom-left


def test_orientation_applies_once_to_16bit_and_float_tiff(tmp_path):
    rgb = np.zeros((10, 16, 3), dtype=np.uint16)
    rgb[0, 0] = 65535
    for name, data in (("o16.tif", rgb), ("of.tif", rgb.astype(np.float32) / 65535)):
        tifffile.imwrite(tmp_path / name, data, photometric="rgb", extratags=[(274, 3, 1, 6, True)])
        image = _load(tmp_path / name)
        assert image.orientation == 6 and image.rgb.shape == (16, 10, 3)
        assert image.rgb[0, 9, 0] == 1.0 and image.rgb.sum() == 3.0


# --- camera -------------------------------------------------------------------------------------------


def _save_with_exif_tags(path, width: int, height: int, tags: dict[int, object]) -> None:
    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)
    sub.update(tags)
    Image.new("RGB", (width, height)).save(path, exif=exif)


def test_exif_35mm_focal_length(tmp_path):
    path = tmp_path / "f35.jpg"
    _save_with_exif_tags(path, 60, 40, {0xA405: 50})
    camera = _load(path).camera
    assert camera.focal_source == "exif"
    # 3:2 image: the diagonal convention equals f35 / 36 mm * width.
    assert camera.focal_px == pytest.approx(50 / 36 * 60)

    path = tmp_path / "f35_43.jpg"
    _save_with_exif_tags(path, 64, 48, {0xA405: 28})
    camera = _load(path).camera
    assert camera.focal_px == pytest.approx(28 * math.hypot(64, 48) / math.hypot(36, 24))


def test_exif_focal_length_with_focal_plane_resolution(tmp_path):
    path = tmp_path / "fplane.jpg"
    # 4 mm lens, 250 px/mm on the sensor, full-size output 640 px wide; this file is a 64 px copy.
    tags = {0x920A: 4.0, 0xA20E: 250.0, 0xA210: 4, 0xA002: 640, 0xA003: 480}
    _save_with_exif_tags(path, 64, 48, tags)
    camera = _load(path).camera
    assert camera.focal_source == "exif"
    assert camera.focal_px == pytest.approx(4.0 * 250.0 * 64 / 640)


def test_user_focal_overrides_exif(tmp_path):
    path = tmp_path / "f35.jpg"
    _save_with_exif_tags(path, 60, 40, {0xA405: 50})
    camera = _load(path, focal_px=123.0).camera
    assert (camera.focal_px, camera.focal_source) == (123.0, "user")
    assert (camera.cx, camera.cy) == (30.0, 20.0)


def test_default_fov_without_exif(tmp_path):
    path = tmp_path / "plain.png"
    Image.new("RGB", (60, 40)).save(path)
    camera = _load(path).camera
    assert camera.focal_source == "default"
    assert camera.focal_px == pytest.approx(60 / (2 * math.tan(math.radians(30))))
    assert _load(path, fov_deg=90.0).camera.focal_px == pytest.approx(30.0)


def test_zero_exif_focal_falls_back_to_default(tmp_path):
    path = tmp_path / "zero.jpg"
    _save_with_exif_tags(path, 60, 40, {0xA405: 0})  # 0 means "unknown" in EXIF
    assert _load(path).camera.focal_source == "default"


# --- working resolution ---------------------------------------------------------------------------------


def test_work_shape_and_resize():
    assert work_shape(2000, 3000, 1024) == (683, 1024)
    assert work_shape(3000, 2000, 1024) == (1024, 683)
    assert work_shape(500, 300, 1024) == (500, 300)
    image = np.ones((40, 60, 3), dtype=np.float32) * 0.25
    small = resize_to_work(image, 30)
    assert small.shape == (20, 30, 3) and small.dtype == np.float32
    np.testing.assert_allclose(small, 0.25, atol=1e-6)
    same = resize_to_work(image, 100)
    assert same.shape == image.shape and not np.shares_memory(same, image)


def test_large_image_gets_working_resolution(tmp_path):
    path = tmp_path / "big.bmp"
    Image.new("RGB", (3000, 2000), (10, 20, 30)).save(path)
    image = _load(path)
    assert image.rgb.shape == (2000, 3000, 3)
    assert image.work_size == (683, 1024) and image.work_rgb.shape == (683, 1024, 3)
    np.testing.assert_allclose(image.work_rgb[100, 100], np.array([10, 20, 30]) / 255, atol=1e-6)
    assert image.camera.width == 3000  # camera stays at source resolution


def test_small_image_is_not_upscaled(tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(_random_rgb(30, 50)).save(path)
    image = _load(path, work_size=1024)
    assert image.work_size == (30, 50)
    np.testing.assert_array_equal(image.work_rgb, image.rgb)


# --- refusals ------------------------------------------------------------------------------------------


def _assert_refused(path, match: str, **kwargs) -> InputError:
    with pytest.raises(InputError, match=match) as info:
        _load(path, **kwargs)
    assert str(path) in str(info.value)
    return info.value


def test_missing_file(tmp_path):
    error = _assert_refused(tmp_path / "nope.jpg", "photo not found")
    assert error.code == "bad_input"


def test_directory(tmp_path):
    _assert_refused(tmp_path, "directory")


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a photograph\n" * 20)
    _assert_refused(path, "not a readable image")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    _assert_refused(path, "empty")


def test_truncated_jpeg(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(_random_rgb(64, 64)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _assert_refused(path, "truncated")


def test_truncated_jpeg_fails_even_if_pillow_allows_truncation(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    path = tmp_path / "cut.jpg"
    Image.fromarray(_random_rgb(64, 64)).save(path, quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _assert_refused(path, "truncated")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored


def test_truncated_png(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(_random_rgb(64, 64)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _assert_refused(path, "truncated")


def test_one_pixel_image(tmp_path):
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1)).save(path)
    _assert_refused(path, r"image is 1x1 px; at least 8x8 needed")


def test_absurd_aspect_ratio(tmp_path):
    path = tmp_path / "strip.png"
    Image.new("RGB", (1000, 10)).save(path)
    _assert_refused(path, "aspect")


def test_pixel_limit_is_checked_from_the_header(tmp_path):
    path = tmp_path / "limit.png"
    Image.new("RGB", (64, 64)).save(path)
    _assert_refused(path, "at most", max_pixels=1000)


def test_png_decompression_bomb_fails_fast(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_handmade_png(100_000, 100_000, 8, 2, b"\x00" * 16))
    start = time.perf_counter()
    _assert_refused(path, "absurd|at most")
    assert time.perf_counter() - start < 1.0


def test_png_over_max_pixels_but_under_pillow_limit_fails_fast(tmp_path):
    path = tmp_path / "wide.png"
    path.write_bytes(_handmade_png(12_000, 10_000, 8, 2, b"\x00" * 16))  # 120 MP
    start = time.perf_counter()
    _assert_refused(path, "120.0 MP")
    assert time.perf_counter() - start < 1.0


def test_exr_header_bomb_fails_fast(tmp_path):
    window = struct.pack("<4i", 0, 0, 99_999, 99_999)
    header = b"\x76\x2f\x31\x01" + struct.pack("<i", 2) + b"dataWindow\x00box2i\x00" + struct.pack("<i", 16)
    path = tmp_path / "bomb.exr"
    path.write_bytes(header + window + b"\x00")
    start = time.perf_counter()
    _assert_refused(path, "at most")
    assert time.perf_counter() - start < 1.0


def test_corrupt_exr(tmp_path):
    path = tmp_path / "bad.exr"
    path.write_bytes(b"\x76\x2f\x31\x01" + b"\x02\x00\x00\x00" + b"junk")
    _assert_refused(path, "OpenEXR")
