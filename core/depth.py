"""Depth for the photo: a monocular network (a ``core.models`` depth backend), or a depth/disparity map
from a file.

Relative sources (affine-invariant disparity) become depth through one documented policy,
:func:`disparity_to_depth`; metric sources keep metres.
"""

from __future__ import annotations

import os
from pathlib import Path

# OpenCV reads EXR only when this is set; it is checked on first use, so setting it here is enough.
os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")

from dataclasses import dataclass, field  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from .errors import InputError, ModelError  # noqa: E402
from .load import EXR_MAGIC, TIFF_MAGICS, exr_size  # noqa: E402
from .models import DepthBackend, ModelCache, Runtime, backend_for  # noqa: E402
from .options import DepthOptions, LoadOptions, RuntimeOptions  # noqa: E402
from .png_check import COLOUR_TYPES as PNG_COLOUR_TYPES  # noqa: E402
from .png_check import SIGNATURE as PNG_SIGNATURE  # noqa: E402
from .png_check import PngProblem  # noqa: E402
from .png_check import read_header as read_png_header  # noqa: E402
from .progress import Progress  # noqa: E402

# Smallest metric depth we hand on: the mesh stage divides by depth, and 0 would put geometry on the camera.
_MIN_METRIC_DEPTH = 1e-3
_ASPECT_TOLERANCE = 0.01


@dataclass
class DepthResult:
    depth: np.ndarray
    """(h, w) float32 z-depth, finite and > 0 everywhere."""
    kind: str
    """``metric`` (metres from a metric model or a user depth map) or ``relative`` (near/far policy)."""
    source: str
    """Model id or folder, or the depth file path."""
    units: str
    """``metres`` or ``relative``."""
    notes: list[str] = field(default_factory=list)
    """Things worth telling the user (unknown pixels filled, channels dropped)."""


RELATIVE_TAIL = 0.1
"""How far (share of the 2nd-98th percentile span) the nearest and farthest 2 % of a relative disparity map
may reach beyond that span, softly: clipping them flattened the nearest object's front (a tyre, a hand) onto
one plane."""


def _soft_tails(normalised: np.ndarray, tail: float) -> np.ndarray:
    """Values in [0, 1] unchanged; beyond, compressed smoothly into at most ``tail`` more each way."""
    out = normalised.copy()
    above, below = normalised > 1.0, normalised < 0.0
    out[above] = 1.0 + tail * np.tanh((normalised[above] - 1.0) / tail)
    out[below] = -tail * np.tanh(-normalised[below] / tail)
    return out


def disparity_to_depth(disparity: np.ndarray, near: float, far: float) -> np.ndarray:
    """Relative (affine-invariant) disparity to depth with the near/far policy.

    Disparity is known only up to scale and shift, so it is normalised robustly: the 2nd and 98th
    percentiles of the finite values span 0 to 1, and the values beyond reach at most ``RELATIVE_TAIL`` of
    that further each way, smoothly (a few outliers cannot stretch the scene, and the nearest and farthest
    content keeps its shape). The result is rescaled so the nearest value is 1 and the farthest 0, then made
    linear in inverse depth between the two planes: ``depth = 1 / (d * (1/near - 1/far) + 1/far)``, so the
    nearest content sits at ``near`` and the farthest at ``far``, and equal disparity steps stay equal
    parallax steps. A flat map (no spread) lands halfway in disparity; non-finite values count as farthest.
    """
    if not (0 < near < far):
        raise InputError(f"depth near ({near}) must be positive and below far ({far})")
    disp = np.asarray(disparity, dtype=np.float64)
    finite = np.isfinite(disp)
    values = disp[finite]
    normalised = np.zeros(disp.shape, dtype=np.float64)
    if values.size:
        low, high = np.percentile(values, [2.0, 98.0])
        if high <= low:
            # Percentiles coincide when most pixels share one value; fall back to the full range.
            low, high = float(values.min()), float(values.max())
        if high > low:
            soft = _soft_tails((values - low) / (high - low), RELATIVE_TAIL)
            normalised[finite] = (soft - soft.min()) / max(float(soft.max() - soft.min()), 1e-12)
        else:
            normalised[finite] = 0.5
    inv_near, inv_far = 1.0 / near, 1.0 / far
    depth = 1.0 / (normalised * (inv_near - inv_far) + inv_far)
    # Clipping removes float round-off so the ends are exactly near and far.
    return np.clip(depth, near, far).astype(np.float32)


# --- monocular network -------------------------------------------------------------------------------


def network_input_size(height: int, width: int, input_size: int, multiple: int) -> tuple[int, int]:
    """(h, w) the network sees: short side ~``input_size``, aspect kept, both multiples of ``multiple``.

    This matches Depth Anything's processor (keep aspect ratio, scale as little as possible); the long
    side is capped at 4x ``input_size`` so panoramas cannot exhaust memory.
    """
    scale = input_size / min(height, width)
    scale = min(scale, 4 * input_size / max(height, width))
    h = max(multiple, int(round(height * scale / multiple)) * multiple)
    w = max(multiple, int(round(width * scale / multiple)) * multiple)
    return h, w


def estimate_depth(
    rgb: np.ndarray,
    options: DepthOptions,
    runtime: RuntimeOptions,
    progress: Progress | None = None,
    cache: ModelCache | None = None,
) -> DepthResult:
    """Depth of an (h, w, 3) float32 0..1 photo from the depth backend for ``options.model``.

    The model is resolved through the models folder / Hugging Face cache and kept warm in ``cache`` (the
    process-wide cache when None). Relative models give disparity, converted with ``disparity_to_depth``.
    """
    raw, metric, source = predict_depth_values(rgb, options, runtime, progress, cache)
    if metric:
        return DepthResult(depth=raw, kind="metric", source=source, units="metres")
    depth = disparity_to_depth(raw, options.near, options.far)
    return DepthResult(depth=depth, kind="relative", source=source, units="relative")


def predict_depth_values(
    rgb: np.ndarray,
    options: DepthOptions,
    runtime: RuntimeOptions,
    progress: Progress | None = None,
    cache: ModelCache | None = None,
) -> tuple[np.ndarray, bool, str]:
    """The depth network's own answer at the photo's size, ``(values, metric, source)``: metric depth in metres
    (finite, positive), or relative disparity not yet mapped to depth (a video maps a whole shot one way)."""
    image = np.asarray(rgb)
    if image.ndim != 3 or image.shape[2] < 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f"depth estimation needs an (h, w, 3) image, got shape {image.shape}")
    image = np.clip(image[..., :3].astype(np.float32), 0.0, 1.0)
    height, width = image.shape[:2]

    settings = Runtime.from_options(runtime)
    if progress is not None:
        progress.update(0.05, f"loading depth model {options.model}")
    net: DepthBackend = backend_for("depth", options.model, settings, cache)
    source = net.source
    if progress is not None:
        progress.update(0.3, "estimating depth")

    in_h, in_w = network_input_size(height, width, options.input_size, net.multiple)
    resized = cv2.resize(image, (in_w, in_h), interpolation=cv2.INTER_CUBIC)
    raw = np.asarray(net.predict(np.clip(resized, 0.0, 1.0), (height, width)), dtype=np.float32)
    if raw.shape != (height, width):
        raise ModelError(f"depth model {source} returned shape {raw.shape}, expected {(height, width)}")
    if progress is not None:
        progress.update(0.9, "converting depth")
    if not np.isfinite(raw).any():
        raise ModelError(f"depth model {source} produced no finite values")

    if net.metric:
        depth = np.nan_to_num(raw, nan=_MIN_METRIC_DEPTH, posinf=float(np.nanmax(raw[np.isfinite(raw)])))
        return np.maximum(depth, _MIN_METRIC_DEPTH).astype(np.float32), True, source
    return raw, False, source


def relative_range(disparity: np.ndarray) -> tuple[float, float]:
    """The robust span of relative disparity (its 2nd and 98th percentiles, or the full range when they meet),
    as ``disparity_to_depth`` measures it: a video measures it once per shot."""
    values = np.asarray(disparity, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not values.size:
        return 0.0, 1.0
    low, high = np.percentile(values, [2.0, 98.0])
    if high <= low:
        low, high = float(values.min()), float(values.max())
    return float(low), float(max(high, low + 1e-12))


def map_relative(disparity: np.ndarray, span: tuple[float, float], near: float, far: float) -> np.ndarray:
    """Relative disparity to depth with a span fixed beforehand (``relative_range`` of a shot's first frame):
    the same policy as ``disparity_to_depth`` (soft tails, linear in inverse depth between ``near`` and
    ``far``), but the same mapping for every frame of a shot, so depth does not breathe with the content;
    the tails' full reach maps onto the planes."""
    if not (0 < near < far):
        raise InputError(f"depth near ({near}) must be positive and below far ({far})")
    low, high = span
    disp = np.nan_to_num(np.asarray(disparity, dtype=np.float64), nan=low, posinf=high, neginf=low)
    soft = _soft_tails((disp - low) / (high - low), RELATIVE_TAIL)
    normalised = (soft + RELATIVE_TAIL) / (1.0 + 2.0 * RELATIVE_TAIL)
    inv_near, inv_far = 1.0 / near, 1.0 / far
    depth = 1.0 / (normalised * (inv_near - inv_far) + inv_far)
    return np.clip(depth, near, far).astype(np.float32)


# --- depth or disparity from a file ----------------------------------------------------------------

MAX_DEPTH_FILE_BYTES_PER_PIXEL = 16
"""A depth file may hold at most this many bytes per allowed pixel: four float32 channels, uncompressed."""
_NPY_MAGIC = b"\x93NUMPY"
_PNM_CHANNELS = {b"P1": 1, b"P2": 1, b"P3": 3, b"P4": 1, b"P5": 1, b"P6": 3}
_READABLE = "use PNG (8/16-bit), PGM, PFM, TIFF, EXR or NPY"


@dataclass
class _Header:
    """What a depth file's header says, read before any pixel is decoded."""

    width: int
    height: int
    samples: int
    """Values per pixel (channels, times pages for a TIFF stack)."""
    array: np.ndarray | None = None
    """For NPY: the memory-mapped array, read only after the checks."""


def _not_readable(path: str, reason: str = "") -> InputError:
    return InputError(f"depth map {path} cannot be read{f' ({reason})' if reason else ''}: {_READABLE}")


def _npy_header(path: str) -> _Header:
    """Shape and dtype from the .npy header; the data is memory-mapped, not read (pickles refused)."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # object dtypes, truncated data, a header that lies about its size
        raise InputError(f"depth map {path} is not a readable .npy array: {exc}") from exc
    if not isinstance(array, np.ndarray):  # an .npz archive
        close = getattr(array, "close", None)
        if close is not None:
            close()
        raise InputError(f"depth map {path} is not a single .npy array")
    if array.dtype.kind not in "uif":
        raise InputError(f"depth map {path} holds {array.dtype} values, not numbers")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 1)):
        raise InputError(f"depth map {path} has shape {array.shape}; expected a 2-D (H, W) or (H, W, 1) array")
    return _Header(int(array.shape[1]), int(array.shape[0]), 1, array)


def _png_header(path: str) -> _Header:
    """Width, height and channels from the PNG's IHDR (the package reader's header check, shared)."""
    try:
        header = read_png_header(Path(path))
    except PngProblem as exc:
        raise _not_readable(path, str(exc)) from exc
    return _Header(header.width, header.height, PNG_COLOUR_TYPES[header.colour_type][1])


def _pnm_header(head: bytes, path: str) -> _Header:
    """PBM/PGM/PPM ("P1".."P6") and PFM ("Pf" grey, "PF" colour): width and height follow the magic."""
    magic = head[:2]
    channels = {b"Pf": 1, b"PF": 3}.get(magic) or _PNM_CHANNELS[magic]
    tokens: list[bytes] = []
    for line in head[2:4096].splitlines():
        tokens += line.split(b"#", 1)[0].split()
        if len(tokens) >= 2:
            break
    try:
        width, height = int(tokens[0]), int(tokens[1])
    except (IndexError, ValueError) as exc:
        raise _not_readable(path, "truncated PNM/PFM header") from exc
    return _Header(width, height, channels)


def _tiff_header(path: str) -> _Header:
    """The first series' shape from the TIFF's tags (tifffile reads no strip or tile for this)."""
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            width, height = int(page.imagewidth), int(page.imagelength)
            shape = tuple(int(n) for n in tif.series[0].shape)
    except ImportError:  # no tifffile: OpenCV decodes it, and its header goes through Pillow
        return _pillow_header(path)
    except Exception as exc:  # tifffile raises many types for malformed files
        raise _not_readable(path, f"TIFF header: {exc}") from exc
    samples = int(np.prod(shape)) // max(width * height, 1)
    # A depth map is one 2-D page, with at most 4 interleaved samples; stacks and planar layouts are not.
    if not (len(shape) == 2 or (len(shape) == 3 and shape[:2] == (height, width) and shape[2] <= 4)):
        raise InputError(f"depth map {path} has shape {shape}; expected a single 2-D map (H, W) or (H, W, channels)")
    return _Header(width, height, samples)


def _pillow_header(path: str) -> _Header:
    """Other formats (BMP, JPEG, WebP...): Pillow's ``open`` parses the header only."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=("PNG", "TIFF", "PPM", "BMP", "JPEG", "WEBP")) as img:
                width, height = img.size
                samples = len(img.getbands())
    except Image.DecompressionBombError as exc:
        raise InputError(f"depth map {path}: image dimensions are absurd, refusing to decode ({exc})") from exc
    except Exception as exc:
        raise _not_readable(path) from exc
    return _Header(width, height, samples)


def _read_header(path: str) -> _Header:
    """Dispatch on the file's magic bytes (not its name) to a header-only reader."""
    with open(path, "rb") as stream:
        head = stream.read(1 << 20)  # a megabyte holds any sane header, EXR attributes included
    if head.startswith(_NPY_MAGIC):
        return _npy_header(path)
    if os.path.splitext(path)[1].lower() == ".npy":
        raise InputError(f"depth map {path} is not a readable .npy array (no NPY header)")
    if head.startswith(PNG_SIGNATURE):
        return _png_header(path)
    if head[:4] in TIFF_MAGICS:
        return _tiff_header(path)
    if head[:4] == EXR_MAGIC:
        try:
            width, height = exr_size(head, path)  # the photo loader's header parser
        except InputError as exc:
            raise InputError(f"depth map {exc}") from exc
        return _Header(width, height, 4)
    if head[:2] in (b"Pf", b"PF", *_PNM_CHANNELS) and head[2:3].isspace():
        return _pnm_header(head, path)
    return _pillow_header(path)


def _check_header(path: str, header: _Header, max_pixels: int) -> None:
    """Refuse a map larger than the photo pixel limit from its header, before any pixel is decoded."""
    width, height = header.width, header.height
    if width < 1 or height < 1:
        raise InputError(f"depth map {path} holds no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InputError(
            f"depth map {path} is {width}x{height} px ({width * height / 1e6:.1f} MP); "
            f"at most {max_pixels / 1e6:.1f} MP allowed, the same limit as photos (load.max_pixels)"
        )
    if header.samples > 4 and width * height * header.samples > 4 * max_pixels:
        raise InputError(
            f"depth map {path} holds {header.samples} values per pixel at {width}x{height}; "
            "expected a single-channel map"
        )


def _read_depth_array(path: str, header: _Header) -> np.ndarray:
    """The raw map stored in ``path``, any dtype, 2-D or with channels last; decoded only after the checks."""
    if header.array is not None:
        try:
            return np.array(header.array)  # reads the memory-mapped data into memory
        except Exception as exc:
            raise InputError(f"depth map {path} is not a readable .npy array: {exc}") from exc
    ext = os.path.splitext(path)[1].lower()
    if ext in (".tif", ".tiff"):
        try:
            import tifffile

            return tifffile.imread(path)
        except Exception:
            pass  # tifffile missing or an exotic TIFF: let OpenCV try
    data = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if data is None and ext == ".exr":
        try:
            import imageio.v3 as iio

            data = iio.imread(path)
        except Exception:
            data = None
    if data is None:
        raise _not_readable(path)
    return data


def _single_channel(data: np.ndarray, path: str, notes: list[str]) -> np.ndarray:
    """A 2-D map; grey images stored as RGB(A) are accepted, colour-mapped visualisations are refused."""
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[..., 0]
    if data.ndim == 2:
        return data
    if data.ndim != 3:
        raise InputError(f"depth map {path} has shape {data.shape}; expected a single-channel image")
    channels = data.shape[2]
    if channels == 2:  # grey + alpha
        notes.append(f"depth map {os.path.basename(path)}: alpha channel ignored")
        return data[..., 0]
    colour = data[..., :3].astype(np.float64)
    spread = np.nanmax(np.abs(colour - colour[..., :1])) if colour.size else 0.0
    if not np.isfinite(spread) or spread > 0:
        raise InputError(
            f"depth map {path} has {channels} channels with different values: it looks like a "
            "colour-mapped picture of depth, not depth. Save the depth as a single-channel image "
            "(16-bit PNG, float TIFF/EXR or NPY)"
        )
    notes.append(f"depth map {os.path.basename(path)}: identical colour channels, first one used")
    return data[..., 0]


def fill_unknown(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Give every unknown pixel the value of its nearest known pixel (fast at 1080p, keeps edges sharp)."""
    if known.all():
        return values
    # Indices of the nearest zero of ~known, i.e. the nearest known pixel, for every pixel.
    _, (rows, cols) = ndimage.distance_transform_edt(~known, return_distances=True, return_indices=True)
    return values[rows, cols]


def load_depth_file(
    path: str, size: tuple[int, int], options: DepthOptions, max_pixels: int | None = None
) -> DepthResult:
    """Read a user depth or disparity map and bring it to ``size`` = (h, w) of the photo.

    The header is read first: a map over ``max_pixels`` (default: the photo limit, ``LoadOptions.max_pixels``)
    or a file over ``MAX_DEPTH_FILE_BYTES_PER_PIXEL`` bytes per allowed pixel is refused before any pixel is
    decoded. Values are divided by ``options.depth_scale``; non-finite and <= 0 values are unknown and filled
    from the nearest known pixel. Disparity has no absolute calibration here, so it goes through
    ``disparity_to_depth`` (relative); depth is taken as metres (metric).
    """
    values, notes = read_depth_values(path, size, options, max_pixels)
    if options.depth_kind == "disparity":
        depth = disparity_to_depth(values, options.near, options.far)
        return DepthResult(depth=depth, kind="relative", source=path, units="relative", notes=notes)
    if options.depth_kind != "depth":
        raise InputError(f"depth.depth_kind must be depth or disparity, not {options.depth_kind!r}")
    depth = np.ascontiguousarray(values, dtype=np.float32)
    return DepthResult(depth=depth, kind="metric", source=path, units="metres", notes=notes)


def read_depth_values(
    path: str, size: tuple[int, int], options: DepthOptions, max_pixels: int | None = None
) -> tuple[np.ndarray, list[str]]:
    """A depth or disparity file's values at ``size`` = (h, w), divided by ``options.depth_scale``, unknown
    values filled, as ``load_depth_file`` reads them, before any mapping to depth; and notes on what was
    filled."""
    if not path:
        raise InputError("no depth map path given")
    path = os.path.expanduser(path)
    if os.path.isdir(path):
        raise InputError(f"depth map {path} is a folder: a photo takes one depth file (a folder, a file a frame, "
                         "is for footage)")  # fmt: skip
    if not os.path.isfile(path):
        raise InputError(f"depth map {path} not found")
    file_size = os.path.getsize(path)
    if file_size == 0:
        raise InputError(f"depth map {path} is empty (0 bytes)")
    if max_pixels is None:
        max_pixels = LoadOptions().max_pixels
    max_bytes = MAX_DEPTH_FILE_BYTES_PER_PIXEL * max_pixels
    if file_size > max_bytes:
        raise InputError(
            f"depth map {path} is {file_size:,} bytes; at most {max_bytes:,} bytes allowed "
            f"({MAX_DEPTH_FILE_BYTES_PER_PIXEL} bytes per pixel of the {max_pixels / 1e6:.1f} MP limit)"
        )
    height, width = int(size[0]), int(size[1])
    if height < 1 or width < 1:
        raise InputError(f"photo size {width}x{height} is empty")

    notes: list[str] = []
    try:
        header = _read_header(path)
    except OSError as exc:
        raise InputError(f"depth map {path} cannot be read ({exc.strerror or exc})") from exc
    _check_header(path, header, max_pixels)
    data = _single_channel(np.asarray(_read_depth_array(path, header)), path, notes)
    if data.size == 0 or min(data.shape) < 1:
        raise InputError(f"depth map {path} holds no pixels (shape {data.shape})")
    if data.shape != (header.height, header.width):
        # The decoder must agree with the header that was checked, or the check proved nothing.
        raise InputError(
            f"depth map {path} decodes to shape {data.shape} but its header says {header.width}x{header.height}"
        )
    if data.dtype.kind not in "uif":
        raise InputError(f"depth map {path} holds {data.dtype} values, not numbers")

    map_h, map_w = data.shape
    if abs((map_w / map_h) / (width / height) - 1.0) > _ASPECT_TOLERANCE:
        raise InputError(
            f"depth map {path} is {map_w}x{map_h} but the photo is {width}x{height}: "
            "the aspect ratios differ, so it cannot belong to this photo"
        )

    values = data.astype(np.float32) / np.float32(options.depth_scale)
    known = np.isfinite(values) & (values > 0)
    known_count = int(known.sum())
    if known_count == 0:
        raise InputError(
            f"depth map {path} has no valid values (all are 0, negative or not finite after dividing "
            f"by depth_scale {options.depth_scale})"
        )
    if known_count < known.size:
        share = 100.0 * (known.size - known_count) / known.size
        notes.append(f"depth map {os.path.basename(path)}: {share:.1f}% unknown pixels filled")
        values = fill_unknown(values, known)

    if (map_h, map_w) != (height, width):
        # Upsampling interpolates smooth surfaces; downsampling takes samples so no depth is invented
        # between a foreground edge and the background behind it.
        shrinking = map_h * map_w > height * width
        interpolation = cv2.INTER_NEAREST if shrinking else cv2.INTER_LINEAR
        values = cv2.resize(values, (width, height), interpolation=interpolation)

    return values, notes
