"""Load stage: a photo's pixels (+ straight alpha) at source and working resolution, with its camera.

Decoders: Pillow for what it reads exactly (8-bit, 16-bit grayscale, palette, CMYK, float grayscale); OpenCV
for 16-bit colour PNG/TIFF (Pillow silently truncates those to 8 bits) and for OpenEXR; tifffile for TIFFs
Pillow cannot open (float RGB). Every decoder's pixels go through the same EXIF orientation routine.

Value conventions: integer images are scaled by their full range (255 or 65535). Float TIFFs are taken as
display-referred and clipped to 0..1. OpenEXR is scene-linear by definition: it is clipped to 0..1 (no tone
map: highlights above 1 saturate) and encoded with the sRGB transfer curve; its alpha stays linear.
There is no colour management: embedded ICC profiles are ignored and values are taken as sRGB.

Memory: source pixels are kept in the file's own sample type (uint8 or uint16; float32 only for float
files or premultiplied TIFFs), since a 100 MP photo is 300 MB as uint8 but 1.2 GB as float32. The float
value of a sample is always ``to_unit_float`` of it, so every consumer sees the same numbers.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

# OpenCV only decodes OpenEXR when this is set before its first EXR read; setdefault keeps a user's choice.
os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageFile, UnidentifiedImageError  # noqa: E402

from .camera import Camera, camera_from_focal, camera_from_fov  # noqa: E402
from .errors import InputError  # noqa: E402
from .options import LoadOptions  # noqa: E402

MIN_SIDE = 8
"""Shortest side accepted, in pixels: smaller images cannot be segmented or meshed meaningfully."""
MAX_ASPECT = 20.0
"""Longest-to-shortest side ratio accepted; beyond it the image is a strip, not a photo."""

# Formats handed to Pillow (JPEG covers MPO); fewer plugins keep exotic parsers away from untrusted files.
_PIL_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "BMP", "GIF", "PPM")
_SUPPORTED = "JPEG, PNG, TIFF, WebP, BMP or OpenEXR"
EXR_MAGIC = b"\x76\x2f\x31\x01"
TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

_FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
_EXIF_IFD = 0x8769
_TAG_ORIENTATION = 0x0112
_TAG_FOCAL_LENGTH = 0x920A
_TAG_FOCAL_35MM = 0xA405
_TAG_FOCAL_PLANE_XRES = 0xA20E
_TAG_FOCAL_PLANE_UNIT = 0xA210
_TAG_PIXEL_X = 0xA002
_TAG_PIXEL_Y = 0xA003
_UNIT_MM = {1: 25.4, 2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}  # 1 = "no unit", which cameras use to mean inches


@dataclass
class LoadedImage:
    path: str
    source_rgb: np.ndarray
    """(H, W, 3) at source resolution, EXIF orientation applied: uint8 (/255), uint16 (/65535) or float32
    0..1; ``to_unit_float`` gives its float32 values."""
    source_alpha: np.ndarray | None
    """(H, W) straight alpha in the same sample type, only when the file has an alpha channel."""
    work_rgb: np.ndarray
    """(h, w, 3) float32 at the working resolution (longest side <= ``LoadOptions.work_size``)."""
    work_alpha: np.ndarray | None
    camera: Camera
    """Pinhole camera at source resolution; ``camera.scaled(w, h)`` gives the working one."""
    sha256: str
    """Hex digest of the file bytes."""
    bit_depth: int
    """8 or 16 for integer samples, 32 for floating point (EXR halves included)."""
    mode: str
    """Colour mode of the file in Pillow's names: ``RGB``, ``RGBA``, ``L``, ``LA``, ``I;16``, ``CMYK``..."""
    orientation: int
    """EXIF orientation tag that was applied (1 when absent)."""

    @property
    def work_size(self) -> tuple[int, int]:
        """(h, w) of the working resolution."""
        return self.work_rgb.shape[0], self.work_rgb.shape[1]

    @property
    def source_size(self) -> tuple[int, int]:
        """(H, W) of the source resolution."""
        return self.source_rgb.shape[0], self.source_rgb.shape[1]

    @property
    def rgb(self) -> np.ndarray:
        """(H, W, 3) float32 0..1 at source resolution: a new array each time (12 bytes a pixel)."""
        return to_unit_float(self.source_rgb)

    @property
    def alpha(self) -> np.ndarray | None:
        """(H, W) float32 straight alpha in 0..1 (a new array), or None."""
        return None if self.source_alpha is None else to_unit_float(self.source_alpha)


@dataclass
class _Decoded:
    pixels: np.ndarray  # (H, W, C) uint8, uint16 or float32 0..1, C in 1..4 (gray, gray+alpha, RGB, RGBA)
    mode: str
    bit_depth: int
    exif: Image.Exif | None
    orientation: int = 1


def work_shape(h: int, w: int, work_size: int) -> tuple[int, int]:
    """(h, w) with the longest side at most ``work_size``, aspect kept, never upscaled."""
    longest = max(h, w)
    if longest <= work_size:
        return h, w
    scale = work_size / longest
    return max(1, round(h * scale)), max(1, round(w * scale))


def to_unit_float(samples: np.ndarray) -> np.ndarray:
    """Samples as float32 in 0..1: uint8 / 255, uint16 / 65535, float32 as is (a new array in every case)."""
    if samples.dtype == np.uint8:
        values = samples.astype(np.float32)
        values /= 255.0  # in place: the same float32 division as ``/ 255.0``, without a second array
        return values
    if samples.dtype == np.uint16:
        values = samples.astype(np.float32)
        values /= 65535.0
        return values
    return samples.astype(np.float32)


def resize_to_work(image: np.ndarray, work_size: int) -> np.ndarray:
    """Area-resample an (H, W) or (H, W, C) image to the working resolution (a copy if already small)."""
    h, w = image.shape[:2]
    th, tw = work_shape(h, w, work_size)
    if (th, tw) == (h, w):
        return image.copy()
    return cv2.resize(np.ascontiguousarray(image), (tw, th), interpolation=cv2.INTER_AREA)


def load_image(path: str | os.PathLike, options: LoadOptions) -> LoadedImage:
    """Decode a photo, apply its EXIF orientation and derive its camera; bad inputs raise ``InputError``."""
    path_str = os.fspath(path)
    data = _read_bytes(path_str)
    if data[:4] == EXR_MAGIC:
        decoded = _decode_exr(data, path_str, options)
    else:
        decoded = _decode_with_pillow(data, path_str, options)
    digest = hashlib.sha256(data).hexdigest()
    del data  # hashed and decoded: a big file's bytes need not outlive the decode
    exif, bit_depth, mode, orientation = decoded.exif, decoded.bit_depth, decoded.mode, decoded.orientation
    pixels = np.ascontiguousarray(_apply_orientation(decoded.pixels, orientation))
    del decoded  # the decoder's array, where turning it upright made a copy
    channels = pixels.shape[2]
    gray = channels in (1, 2)
    rgb = np.repeat(pixels[:, :, :1], 3, axis=2) if gray else np.ascontiguousarray(pixels[:, :, :3])
    alpha = np.ascontiguousarray(pixels[:, :, -1]) if channels in (2, 4) else None
    del pixels  # RGBA and grey files: rgb and alpha are copies

    height, width = rgb.shape[:2]
    camera = _camera(exif, width, height, options)
    return LoadedImage(
        path=path_str,
        source_rgb=rgb,
        source_alpha=alpha,
        # The working image is resized from float32 values, exactly as it always was; the float copy of the
        # source lives only for this resize.
        work_rgb=resize_to_work(to_unit_float(rgb), options.work_size),
        work_alpha=None if alpha is None else resize_to_work(to_unit_float(alpha), options.work_size),
        camera=camera,
        sha256=digest,
        bit_depth=bit_depth,
        mode=mode,
        orientation=orientation,
    )


def _fail(path: str, reason: str) -> InputError:
    return InputError(f"{path}: {reason}")


def _read_bytes(path: str) -> bytes:
    if not os.path.exists(path):
        raise InputError(f"photo not found: {path}")
    if os.path.isdir(path):
        raise _fail(path, "is a directory, not an image file")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or exc})") from exc
    if not data:
        raise _fail(path, "file is empty (0 bytes)")
    return data


def _check_dimensions(path: str, width: int, height: int, options: LoadOptions) -> None:
    """Refuse absurd sizes from the header alone, before any pixel is decoded."""
    if width <= 0 or height <= 0:
        raise _fail(path, f"image has no pixels ({width}x{height})")
    if min(width, height) < MIN_SIDE:
        raise _fail(path, f"image is {width}x{height} px; at least {MIN_SIDE}x{MIN_SIDE} needed")
    if width * height > options.max_pixels:
        raise _fail(
            path,
            f"image is {width}x{height} px ({width * height / 1e6:.1f} MP); "
            f"at most {options.max_pixels / 1e6:.1f} MP allowed (load.max_pixels)",
        )
    aspect = max(width, height) / min(width, height)
    if aspect > MAX_ASPECT:
        raise _fail(path, f"image is {width}x{height} px, aspect {aspect:.0f}:1; at most {MAX_ASPECT:.0f}:1")


def _decode_with_pillow(data: bytes, path: str, options: LoadOptions) -> _Decoded:
    try:
        with warnings.catch_warnings():
            # We enforce our own pixel limit below; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=_PIL_FORMATS)
    except Image.DecompressionBombError as exc:
        raise _fail(path, f"image dimensions are absurd, refusing to decode ({exc})") from exc
    except UnidentifiedImageError as exc:
        if data[:4] in TIFF_MAGICS:
            return _decode_tiff(data, path, options)
        raise _fail(path, f"not a readable image (expected {_SUPPORTED})") from exc
    except Exception as exc:  # a malformed header can raise anything from a plugin
        raise _fail(path, f"not a readable image ({exc})") from exc

    width, height = img.size
    _check_dimensions(path, width, height, options)
    rawmode = _rawmode(img)
    if img.mode in ("RGB", "RGBA") and ";16" in rawmode:
        # Pillow keeps only 8 bits of 16-bit colour (and 16-bit gray+alpha). tifffile and OpenCV keep them
        # all; OpenCV's TIFF reader would also apply the orientation tag, so TIFFs go to tifffile.
        if img.format == "TIFF":
            return _decode_tiff(data, path, options)
        exif = _exif_without_decoding(img)
        pixels = _cv2_decode(data, path)
        return _Decoded(pixels, rawmode.split(";")[0], 16, exif, _orientation(exif))

    # Pillow pads truncated data with grey when this global is set; a half-grey photo is worse than an error.
    allow_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        img.load()
    except Exception as exc:  # any decoder failure here means a truncated or corrupt file
        raise _fail(path, f"image data is truncated or corrupt ({exc})") from exc
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = allow_truncated
    exif = img.getexif()
    pixels, bit_depth = _pil_pixels(img, rawmode, path)
    return _Decoded(pixels, img.mode, bit_depth, exif, _orientation(exif))


def _rawmode(img: Image.Image) -> str:
    """Pillow's raw sample layout of the first tile (``RGB;16B`` for 16-bit PNG), or ``""``."""
    if not img.tile:
        return ""
    args = img.tile[0].args
    raw = args[0] if isinstance(args, tuple) and args else args
    return raw if isinstance(raw, str) else ""


def _exif_without_decoding(img: Image.Image) -> Image.Exif:
    # Pillow's PNG getexif() decodes the whole image to look for an eXIf chunk after the pixels;
    # such late chunks are rare, so only an eXIf seen in the header counts here.
    if img.format == "PNG" and "exif" not in img.info:
        return Image.Exif()
    return img.getexif()


def _pil_pixels(img: Image.Image, rawmode: str, path: str) -> tuple[np.ndarray, int]:
    """Pixels of a loaded Pillow image as (H, W, C) uint8, uint16 or float32 0..1, and the bits per sample."""
    mode = img.mode
    if mode.startswith("I;16"):
        values = np.asarray(img)
        if values.dtype.kind == "u":  # native or big-endian unsigned 16 bits: kept as uint16
            return _as_hwc(values.astype(np.uint16, copy=False)), 16
        return _as_hwc(values.astype(np.float32) / 65535.0), 16
    if mode == "I":
        values = np.asarray(img)
        # 32-bit integer images mostly carry 16-bit data (old Pillow read 16-bit PNGs this way).
        if ";16" in rawmode or (values.size and values.min() >= 0 and values.max() <= 65535):
            return _as_hwc(np.clip(values, 0, 65535).astype(np.uint16)), 16
        return _as_hwc((np.clip(values, 0, None) / 4294967295.0).astype(np.float32)), 32
    if mode == "F":
        return _as_hwc(np.clip(np.nan_to_num(np.asarray(img, dtype=np.float32)), 0.0, 1.0)), 32

    has_transparency = "transparency" in img.info
    if mode in ("L", "LA"):
        target = "LA" if (mode == "LA" or has_transparency) else "L"
    elif mode == "La":
        target = "LA"
    elif mode == "1":
        target = "L"
    elif mode in ("RGBA", "RGBa", "PA") or (mode in ("P", "RGB") and has_transparency):
        target = "RGBA"
    else:  # RGB, P, CMYK, YCbCr, LAB, HSV
        target = "RGB"
    try:
        converted = img if img.mode == target else img.convert(target)
    except (ValueError, OSError) as exc:
        raise _fail(path, f"colour mode {mode} cannot be converted to RGB ({exc})") from exc
    return _as_hwc(np.asarray(converted, dtype=np.uint8)), 8


def _as_hwc(array: np.ndarray) -> np.ndarray:
    return array[:, :, None] if array.ndim == 2 else array


def _imdecode(data: bytes, path: str, what: str) -> np.ndarray:
    """OpenCV decode with unchanged depth and channels; corrupt data is an InputError naming the file."""
    try:
        array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise _fail(path, f"{what} is truncated or corrupt ({exc})") from exc
    if array is None:
        raise _fail(path, f"{what} is truncated or corrupt (OpenCV could not decode it)")
    return array


def _cv2_decode(data: bytes, path: str) -> np.ndarray:
    """Decode with OpenCV, unchanged depth and channels, as (H, W, C) in RGB(A) order: uint8, uint16 or float32."""
    array = _as_hwc(_imdecode(data, path, "image data"))
    if array.shape[2] == 3:
        array = array[:, :, ::-1]
    elif array.shape[2] == 4:
        array = array[:, :, [2, 1, 0, 3]]
    if array.dtype in (np.uint8, np.uint16):
        return np.ascontiguousarray(array)
    return np.clip(np.nan_to_num(array.astype(np.float32)), 0.0, 1.0)


def _decode_tiff(data: bytes, path: str, options: LoadOptions) -> _Decoded:
    """TIFFs Pillow does not open (float or multi-sample layouts) through tifffile."""
    import tifffile  # only needed for the rare TIFFs Pillow refuses

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages.first
            _check_dimensions(path, int(page.imagewidth), int(page.imagelength), options)
            array = page.asarray()
            axes = page.axes
            orientation_tag = page.tags.get(274)
            associated_alpha = 1 in tuple(np.atleast_1d(page.extrasamples))
    except InputError:
        raise
    except Exception as exc:  # tifffile raises many types for malformed files
        raise _fail(path, f"TIFF cannot be decoded ({exc})") from exc

    if axes.startswith("S") and array.ndim == 3:  # planar configuration: samples first
        array = np.moveaxis(array, 0, -1)
    array = _as_hwc(np.squeeze(array)) if array.ndim > 3 else _as_hwc(array)
    if array.ndim != 3 or array.shape[2] > 4:
        raise _fail(path, f"TIFF layout {axes} {array.shape} is not a single gray, RGB or RGBA image")
    array = array[:, :, : min(array.shape[2], 4)]
    if np.issubdtype(array.dtype, np.floating):
        pixels, bit_depth = np.clip(np.nan_to_num(array.astype(np.float32)), 0.0, 1.0), 32
    elif array.dtype == np.uint8:
        pixels, bit_depth = array, 8
    elif array.dtype.itemsize == 1:  # int8 or bool: scaled like bytes, negative values included
        pixels, bit_depth = array.astype(np.float32) / 255.0, 8
    else:
        pixels, bit_depth = np.clip(array, 0, 65535).astype(np.uint16), 16
    if associated_alpha and pixels.shape[2] in (2, 4):
        # Associated alpha is premultiplied; the package stores straight alpha, which needs float samples.
        pixels = to_unit_float(pixels)
        a = pixels[:, :, -1:]
        pixels[:, :, :-1] = np.where(a > 0, np.clip(pixels[:, :, :-1] / np.maximum(a, 1e-8), 0, 1), 0)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[pixels.shape[2]]
    if bit_depth == 32:  # Pillow's name for float gray, and the same suffix for float colour
        mode = "F" if mode == "L" else mode + ";F"
    orientation = int(orientation_tag.value) if orientation_tag is not None else 1
    return _Decoded(pixels, mode, bit_depth, None, orientation if 1 <= orientation <= 8 else 1)


def exr_size(data: bytes, path: str) -> tuple[int, int]:
    """Width and height from an OpenEXR header's dataWindow, without decoding pixels."""
    pos = 8  # magic + version
    try:
        while pos < len(data):
            end = data.index(b"\x00", pos)
            name = data[pos:end]
            if not name:
                break
            type_end = data.index(b"\x00", end + 1)
            (size,) = struct.unpack_from("<i", data, type_end + 1)
            value_at = type_end + 5
            if name == b"dataWindow":
                xmin, ymin, xmax, ymax = struct.unpack_from("<4i", data, value_at)
                return xmax - xmin + 1, ymax - ymin + 1
            pos = value_at + size
    except (ValueError, struct.error):
        pass
    raise _fail(path, "OpenEXR header is truncated or has no dataWindow")


def _decode_exr(data: bytes, path: str, options: LoadOptions) -> _Decoded:
    width, height = exr_size(data, path)
    _check_dimensions(path, width, height, options)
    array = _as_hwc(_imdecode(data, path, "OpenEXR data").astype(np.float32))
    if array.shape[2] == 3:
        array = array[:, :, ::-1]
    elif array.shape[2] == 4:
        array = array[:, :, [2, 1, 0, 3]]
    linear = np.clip(np.nan_to_num(array), 0.0, 1.0)
    colour = linear.shape[2] if linear.shape[2] in (1, 3) else linear.shape[2] - 1
    linear[:, :, :colour] = _linear_to_srgb(linear[:, :, :colour])
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[linear.shape[2]]
    return _Decoded(linear, mode, 32, None, 1)


def _linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB transfer curve for values in 0..1."""
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1.0 / 2.4) - 0.055).astype(np.float32)


def _orientation(exif: Image.Exif | None) -> int:
    value = exif.get(_TAG_ORIENTATION, 1) if exif is not None else 1
    try:
        value = int(value)
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn file pixels upright for an EXIF orientation tag, matching ``PIL.ImageOps.exif_transpose``."""
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    if orientation == 5:
        return pixels.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(pixels, k=-1)
    if orientation == 7:
        return pixels.swapaxes(0, 1)[::-1, ::-1]
    if orientation == 8:
        return np.rot90(pixels, k=1)
    return pixels


def _camera(exif: Image.Exif | None, width: int, height: int, options: LoadOptions) -> Camera:
    if options.focal_px is not None:
        return camera_from_focal(width, height, options.focal_px, "user")
    focal = _exif_focal_px(exif, width, height) if exif is not None else None
    if focal is not None:
        return camera_from_focal(width, height, focal, "exif")
    return camera_from_fov(width, height, options.fov_deg, "default")


def _positive(value: object) -> float | None:
    try:
        number = float(value)  # IFDRational, int or float
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _exif_focal_px(exif: Image.Exif, width: int, height: int) -> float | None:
    """Focal length in pixels from EXIF, or None when absent or implausible.

    FocalLengthIn35mmFilm follows the CIPA convention of matching the diagonal field of view of a
    36x24 mm frame: f_px = f35 * diagonal_px / 43.27 mm. For 3:2 images that equals the width-based
    f35 / 36 * width; for 4:3 phone photos it is the convention the makers use. Otherwise FocalLength
    with FocalPlaneXResolution (pixels per unit on the sensor), rescaled when the file was resized.
    """
    tags: dict[int, object] = dict(exif)
    with contextlib.suppress(Exception):  # a broken Exif sub-IFD just means no focal information
        tags.update(exif.get_ifd(_EXIF_IFD))
    focal: float | None = None
    f35 = _positive(tags.get(_TAG_FOCAL_35MM))
    f_mm = _positive(tags.get(_TAG_FOCAL_LENGTH))
    plane_res = _positive(tags.get(_TAG_FOCAL_PLANE_XRES))
    unit_mm = _UNIT_MM.get(int(_positive(tags.get(_TAG_FOCAL_PLANE_UNIT)) or 2))
    if f35 is not None:
        focal = f35 * math.hypot(width, height) / _FULL_FRAME_DIAGONAL_MM
    elif f_mm is not None and plane_res is not None and unit_mm is not None:
        focal = f_mm * plane_res / unit_mm
        # The focal-plane resolution describes the camera's own full-size output.
        pixel_x, pixel_y = _positive(tags.get(_TAG_PIXEL_X)), _positive(tags.get(_TAG_PIXEL_Y))
        if pixel_x is not None and pixel_y is not None:
            focal *= max(width, height) / max(pixel_x, pixel_y)
    if focal is None:
        return None
    return focal if 1.0 < camera_from_focal(width, height, focal).fov_x_deg < 179.0 else None
