"""Footage in, a layered video package out (``photo3d.video``): the still pipeline's stages, made to hold still
from frame to frame.

Per shot (cuts detected first; every temporal state resets at one):
- **depth**: each frame's raw network answer (or its depth file's values) as disparity, aligned to the shot's
  first frame and averaged along the optical flow (``TemporalDepthFilter``), then mapped to depth with one
  mapping for the whole shot (``core.depth.map_relative``), never a per-frame normalisation;
- **layers**: the first frame is segmented, harmonized and grouped into layers as a still is; later frames
  carry the previous frame's layer map along the flow, and a pixel moves to another layer only when its
  disparity leaves its layer's range by more than a margin (hysteresis), so layers keep their count and
  identity. When too many pixels no longer fit, the frame is segmented again; a different layer count starts
  a new shot entry (a topology change), the same count keeps the identities;
- **fills**: what nearer layers hide is filled behind each layer as for a still; where a layer's hole barely
  changed since the previous frame (IoU above ``reuse_iou`` after warping), the previous fill is warped and
  reused and only the newly revealed pixels are filled, so hidden parts do not flicker;
- **geometry**: one regular grid per layer and shot (a stable topology Blender's Mesh Cache modifier can play),
  whose vertices follow the layer's depth, extended smoothly past its edges, frame by frame; the texture's
  alpha draws the layer's outline.

Two short pipelines keep both cores busy: the next frame is decoded and its depth estimated on a helper thread
while this one is layered and filled, and textures are encoded on another while the next frame is worked on.
Progress is per frame and a cancel is honoured between frames; the package is written atomically
(``VideoPackageWriter``).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .. import __version__
from ..camera import Camera, camera_from_focal, camera_from_fov
from ..depth import map_relative, predict_depth_values, read_depth_values, relative_range
from ..errors import InputError
from ..farm.records import path_sha256
from ..harmonic import harmonic_extend
from ..harmonize import harmonize_depth
from ..inpaint import BEHIND_MARGIN, LayerFill, layer_holes
from ..layers import Layer, build_layers
from ..models import ModelCache, check_models
from ..options import PipelineOptions
from ..progress import Progress
from ..segment import segment_image
from ..textures import clear_unseen, layer_rgba
from .package import VideoPackageWriter
from .reader import SEQUENCE_SUFFIXES, VIDEO_SUFFIXES, Frame, probe_video, read_sequence, read_video, sequence_files
from .shots import cuts_from_distances, frame_signature, shots, signature_distances
from .temporal_depth import TemporalDepthFilter, warp

DEPTH_SUFFIXES = (".npy", ".pfm", ".png", ".exr", ".tif", ".tiff", ".pgm")
"""What a folder of per-frame depth files may hold (what ``core.depth.load_depth_file`` reads)."""
SEQUENCE_FPS = 24.0
"""An image sequence's frame rate (it has none of its own)."""


@dataclass
class VideoOptions:
    """What is converted and how it is held still (the still stages take ``PipelineOptions``)."""

    start: int = 0
    """First frame of the footage converted (0-based)."""
    end: int | None = None
    """Last frame converted, inclusive (None: to the end of the footage)."""
    stride: int = 1
    """Every ``stride``-th frame."""
    max_frames: int = 14_400
    """Refused above this many frames: ten minutes at 24 fps."""
    depth_alpha: float = 0.3
    """Weight of a new frame in the depth's moving average along the flow (1: no smoothing)."""
    hysteresis: float = 0.25
    """A pixel leaves its layer only when its disparity is this share of the layer's range outside it."""
    resegment_fraction: float = 0.2
    """A frame is segmented again when more than this share of its pixels left their propagated layer."""
    reuse_iou: float = 0.9
    """A hole this similar to the previous frame's (after warping) reuses the warped fill."""
    grid_step: int = 8
    """Working pixels between grid vertices of a layer's mesh."""

    def validate(self) -> None:
        checks = [
            (self.start >= 0, "video start must be >= 0"),
            (self.end is None or self.end >= self.start, "video end must not be before start"),
            (1 <= self.stride <= 1000, "video stride must be in 1..1000"),
            (1 <= self.max_frames <= 100_000, "video max_frames must be in 1..100000"),
            (0.0 < self.depth_alpha <= 1.0, "video depth_alpha must be in (0, 1]"),
            (0.0 <= self.hysteresis <= 2.0, "video hysteresis must be in 0..2"),
            (0.0 < self.resegment_fraction <= 1.0, "video resegment_fraction must be in (0, 1]"),
            (0.0 < self.reuse_iou <= 1.0, "video reuse_iou must be in (0, 1]"),
            (2 <= self.grid_step <= 64, "video grid_step must be in 2..64"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message)


def is_video_input(path: str | os.PathLike) -> bool:
    """Whether ``path`` is footage (a video file, or a folder or first file of a numbered image sequence)
    rather than a photo."""
    path = Path(path)
    if path.is_dir():
        return True
    return path.suffix.lower() in VIDEO_SUFFIXES


def _frames(source: Path, video: VideoOptions) -> Iterator[Frame]:
    if source.is_dir():
        return read_sequence(source, SEQUENCE_FPS, video.start, video.end, video.stride)
    if source.suffix.lower() in SEQUENCE_SUFFIXES:
        raise InputError(f"{source}: a single image is a photo; give the folder of an image sequence instead")
    return read_video(source, video.start, video.end, video.stride)


def _work_size(height: int, width: int, longest: int) -> tuple[int, int]:
    scale = min(1.0, longest / max(height, width))
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def _to_work(frame: Frame, size: tuple[int, int]) -> np.ndarray:
    """The frame as float32 RGB 0..1 at the working size."""
    rgb = frame.rgb
    if rgb.shape[:2] != size:
        rgb = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return rgb.astype(np.float32) / np.float32(255.0)


def _gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor((rgb * 255.0 + 0.5).clip(0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)


class _DepthSource:
    """Each frame's disparity before any mapping: a depth network's answer, or a per-frame depth file's values
    (a folder holding one file per footage frame, in name order)."""

    def __init__(self, options: PipelineOptions, cache: ModelCache | None):
        self.options, self.cache = options, cache
        self.files: list[Path] = []
        self.metric = True
        self.source = ""
        folder = options.depth.depth_file
        if folder:
            path = Path(folder)
            if not path.is_dir():
                raise InputError(f"a video's --depth is a folder of per-frame depth files, not {path}")
            self.files = sequence_files(path, DEPTH_SUFFIXES)
            self.metric = options.depth.depth_kind == "depth"
            self.source = str(path.absolute())

    def disparity(self, frame: Frame, rgb: np.ndarray) -> np.ndarray:
        if self.files:
            if frame.index >= len(self.files):
                count = len(self.files)
                raise InputError(f"depth folder {self.source} has {count} files; frame {frame.index} has none")
            values, _ = read_depth_values(str(self.files[frame.index]), rgb.shape[:2], self.options.depth)
        else:
            values, self.metric, self.source = predict_depth_values(
                rgb, self.options.depth, self.options.runtime, None, self.cache
            )
        values = np.asarray(values, np.float32)
        if self.metric:
            return (1.0 / np.maximum(values, 1e-6)).astype(np.float32)
        return np.nan_to_num(values, nan=float(np.nanmin(values)) if np.isfinite(values).any() else 0.0)


@dataclass
class _ShotState:
    """What carries from frame to frame within a shot."""

    index: int
    first: int
    """The package frame the shot entry starts at."""
    span: tuple[float, float] | None
    """Relative disparity's span measured on the shot's first frame (None for metric depth)."""
    layers: int
    ranges: np.ndarray
    """(L, 2) disparity range of each layer on the frame it was segmented on."""
    label_map: np.ndarray
    """(h, w) int layer index per pixel of the previous frame."""
    fills: list[LayerFill]
    """The previous frame's fills."""
    grid: _Grid


@dataclass
class _Grid:
    """A layer's stable mesh: vertices on a regular grid of working pixels, two triangles a cell."""

    u: np.ndarray
    v: np.ndarray
    uvs: np.ndarray
    faces: np.ndarray

    @classmethod
    def over(cls, height: int, width: int, step: int) -> _Grid:
        us = np.unique(np.r_[np.arange(0, width, step), width]).astype(np.float64)
        vs = np.unique(np.r_[np.arange(0, height, step), height]).astype(np.float64)
        u, v = np.meshgrid(us, vs)
        index = np.arange(u.size).reshape(u.shape)
        a, b = index[:-1, :-1].ravel(), index[:-1, 1:].ravel()
        c, d = index[1:, :-1].ravel(), index[1:, 1:].ravel()
        # Counter-clockwise seen from the camera (v grows downwards in the image, up in UV space).
        faces = np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)]).astype(np.int32)
        uvs = np.stack([u.ravel() / width, 1.0 - v.ravel() / height], 1).astype(np.float32)
        return cls(u.ravel(), v.ravel(), uvs, faces)

    def points(self, depth: np.ndarray, camera: Camera) -> np.ndarray:
        """(V, 3) float32 camera-space vertices on ``depth`` (valid everywhere)."""
        h, w = depth.shape
        x = np.clip(self.u - 0.5, 0, w - 1).astype(np.float32)
        y = np.clip(self.v - 0.5, 0, h - 1).astype(np.float32)
        z = cv2.remap(depth.astype(np.float32), x.reshape(1, -1), y.reshape(1, -1), cv2.INTER_LINEAR).ravel()
        return camera.unproject(self.u, self.v, z).astype(np.float32)


def _layer_ranges(disparity: np.ndarray, label_map: np.ndarray, count: int) -> np.ndarray:
    ranges = np.zeros((count, 2), np.float64)
    for k in range(count):
        values = disparity[label_map == k]
        ranges[k] = np.percentile(values, [2, 98]) if values.size else (np.inf, -np.inf)
    return ranges


def _merge_overlapping(label_map: np.ndarray, disparity: np.ndarray, count: int) -> tuple[np.ndarray, int]:
    """Neighbouring layers (in depth order) whose medians each lie inside the other's range merged: noisy depth
    can split one surface into layers at the same depth, and over a shot their overlapping ranges would trade
    its pixels back and forth. Returns the new map (layers renumbered back to front) and the layer count."""
    ranges = _layer_ranges(disparity, label_map, count)
    medians = [float(np.median(disparity[label_map == k])) if (label_map == k).any() else np.inf for k in range(count)]
    group = list(range(count))
    for k in range(1, count):
        below, here = ranges[k - 1], ranges[k]
        if below[0] <= medians[k] <= below[1] and here[0] <= medians[k - 1] <= here[1]:
            group[k] = group[k - 1]
    renumber = {g: i for i, g in enumerate(dict.fromkeys(group))}
    lookup = np.array([renumber[g] for g in group], np.int64)
    return lookup[label_map], len(renumber)


def _propagate(
    state: _ShotState, disparity: np.ndarray, flow_to_prev: np.ndarray, consistent: np.ndarray, hysteresis: float
) -> tuple[np.ndarray, float]:
    """The previous layer map carried onto this frame, with hysteresis; and the share of pixels that moved."""
    h, w = disparity.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    carried = cv2.remap(
        state.label_map.astype(np.float32), xs + flow_to_prev[..., 0], ys + flow_to_prev[..., 1],
        cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE,
    ).astype(np.int64)  # fmt: skip
    low, high = state.ranges[:, 0], state.ranges[:, 1]
    width = np.maximum(high - low, 1e-6 * max(float(np.abs(state.ranges).max()), 1.0))
    margin = hysteresis * width
    # How far outside each layer's range every pixel's disparity is (0 inside), in units of that layer's margin.
    outside = np.maximum(low[None, None, :] - disparity[..., None], disparity[..., None] - high[None, None, :])
    fits = outside <= margin[None, None, :]
    own_fits = np.take_along_axis(fits, carried[..., None], axis=2)[..., 0]
    # Nearest layer centre, in units of each layer's width: ranges measured on one noisy frame overlap, and
    # "inside a range" would tie several layers (and argmin would always pick the farthest of them).
    centre = 0.5 * (low + high)
    closest = np.argmin(np.abs(disparity[..., None] - centre[None, None, :]) / width[None, None, :], axis=2)
    # A pixel keeps its carried layer while it fits it (with the margin) and the flow vouches for it; the
    # others (uncovered, occluded, or clearly out of range) go to the layer their disparity fits best.
    label_map = np.where(own_fits & consistent, carried, closest)
    if state.layers < 256:  # specks of one pixel flip back to their neighbours' layer
        label_map = cv2.medianBlur(label_map.astype(np.uint8), 3).astype(np.int64)
    moved = float((label_map != carried).mean())
    return label_map, moved


def _layers_from_map(label_map: np.ndarray, depth: np.ndarray, count: int) -> list[Layer]:
    layers = []
    disparity = 1.0 / np.maximum(depth.astype(np.float64), 1e-9)
    for k in range(count):
        mask = label_map == k
        median = float(np.median(disparity[mask])) if mask.any() else float(np.median(disparity))
        layers.append(Layer(index=k, mask=mask, labels=[k], median_depth=1.0 / median, sort_key=median))
    return layers


def _fill(
    rgb: np.ndarray,
    depth: np.ndarray,
    layers: list[Layer],
    options: PipelineOptions,
    previous: list[LayerFill] | None,
    flow_to_prev: np.ndarray | None,
    reuse_iou: float,
) -> tuple[list[LayerFill], int]:
    """Each layer extended behind the nearer ones (as ``inpaint_layers`` does for a still, Telea colour and
    harmonic depth), reusing the previous frame's warped fill where the hole barely changed; returns the fills
    and how many layers reused theirs."""
    band_px = options.inpaint.band_fraction * rgb.shape[1]
    disparity = 1.0 / np.maximum(depth, 1e-6)
    rgb8 = (rgb * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    flags = cv2.INPAINT_TELEA if options.inpaint.method != "ns" else cv2.INPAINT_NS
    fills, reused = [], 0
    for i, (layer, (hidden, hole)) in enumerate(zip(layers, layer_holes(layers, band_px), strict=True)):
        extent = layer.mask | hole
        todo = hole.copy()
        colour = rgb8.copy()
        if previous is not None and flow_to_prev is not None and i < len(previous) and hole.any():
            before = previous[i]
            warped_hole = warp(before.hole.astype(np.float32), flow_to_prev) > 0.5
            union = int((hole | warped_hole).sum())
            if union and (hole & warped_hole).sum() / union > reuse_iou:
                warped_rgb = warp(before.rgb, flow_to_prev)
                keep = hole & warped_hole
                colour[keep] = (warped_rgb[keep] * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
                todo = hole & ~warped_hole  # only what was newly revealed
                reused += 1
        if todo.any():
            # Context is this layer and farther ones: nearer layers' pixels (hidden, not yet filled) are unknown.
            unknown = (hidden & ~(hole & ~todo)).astype(np.uint8)
            colour = cv2.inpaint(colour, unknown, options.inpaint.radius, flags)
        layer_rgb = np.where(hole[..., None], colour.astype(np.float32) / 255.0, rgb).astype(np.float32)
        # The grid covers the whole frame: past the layer's own pixels its depth goes on smoothly (transparent
        # there, over farther layers), but behind whatever nearer layer is seen there, so no invisible part of
        # it ever covers nearer content.
        extended = harmonic_extend(disparity, layer.mask, np.ones_like(layer.mask))
        behind = np.minimum(extended, disparity * (1.0 - BEHIND_MARGIN))
        layer_disparity = np.where(layer.mask, disparity, np.where(hidden, behind, extended))
        layer_depth = (1.0 / np.maximum(layer_disparity, 1e-9)).astype(np.float32)
        fills.append(LayerFill(extent=extent, hole=hole, rgb=layer_rgb, depth=layer_depth))
    return fills, reused


def _camera(options: PipelineOptions, width: int, height: int) -> Camera:
    if options.load.focal_px:
        return camera_from_focal(width, height, float(options.load.focal_px))
    return camera_from_fov(width, height, options.load.fov_deg)


def convert_video(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: PipelineOptions | None = None,
    video: VideoOptions | None = None,
    progress: Progress | None = None,
    cache: ModelCache | None = None,
) -> Path:
    """Convert footage (a video file or an image-sequence folder) into a layered video package at ``out_dir``;
    returns its path."""
    options = options or PipelineOptions()
    video = video or VideoOptions()
    progress = progress or Progress()
    options.validate()
    video.validate()
    source = Path(source)
    depth_source = _DepthSource(options, cache)
    if not depth_source.files:
        check_models(options)
    with progress.stage("load"):
        info = None if source.is_dir() else probe_video(source)
        # Cuts first, from a cheap pass over the frames (a small histogram each): every temporal state resets
        # at one. The frames are decoded again below, one at a time, so memory does not grow with the clip.
        signatures, count = [], 0
        for frame in _frames(source, video):
            progress.check()
            if count == 0:
                height, width = frame.rgb.shape[:2]
            count += 1
            if count > video.max_frames:
                raise InputError(f"{source}: more than {video.max_frames} frames in the range asked for")
            signatures.append(frame_signature(frame.rgb))
        if count == 0:
            raise InputError(f"{source}: no frames in the range asked for")
        if depth_source.files and frame.index >= len(depth_source.files):
            # Found before any work: a depth file a frame, in name order.
            raise InputError(
                f"depth folder {depth_source.source} has {len(depth_source.files)} files, but the frames asked "
                f"for run to footage frame {frame.index}: it needs one depth file per frame"
            )
        fps = info.fps if info is not None else SEQUENCE_FPS
        size = _work_size(height, width, options.load.work_size)
        cuts = cuts_from_distances(signature_distances(signatures))
    camera = _camera(options, width, height)  # the footage's; geometry is built on the working grid
    work_camera = camera.scaled(size[1], size[0])
    shot_ranges = shots(count, cuts)
    shot_of = np.zeros(count, np.int64)
    for k, (a, b) in enumerate(shot_ranges):
        shot_of[a : b + 1] = k
    timings: dict[str, float] = {}
    frame_seconds: list[float] = []
    reused_total = resegmented = 0
    with VideoPackageWriter(out_dir) as writer, ThreadPoolExecutor(1, thread_name_prefix="photo3d-texture") as pool:
        pending: list[Future] = []
        temporal = TemporalDepthFilter(alpha=video.depth_alpha)
        state: _ShotState | None = None
        with progress.stage("video"):
            ahead = _read_ahead(_frames(source, video), size, depth_source)
            for position, (frame, rgb, raw, read_s) in enumerate(ahead):
                progress.check()
                started = time.perf_counter() - read_s
                gray = _gray(rgb)
                new_shot = position == 0 or shot_of[position] != shot_of[position - 1]
                if new_shot:
                    temporal.reset()
                    if state is not None:
                        writer.end_shot(state.index, position - 1)
                disparity = temporal.update(gray, raw)
                if new_shot or state is None:
                    span = None if depth_source.metric else relative_range(disparity)
                else:
                    span = state.span
                depth = _to_depth(disparity, span, options)
                layers: list[Layer]
                if new_shot or state is None:
                    layers, state = _segment(
                        rgb, depth, disparity, options, cache, progress, writer, position, span, video
                    )
                else:
                    flow = temporal.last_flow_to_prev
                    consistent = temporal.last_consistent
                    if flow is None or consistent is None:
                        raise InputError("internal: no flow inside a shot")
                    label_map, moved = _propagate(state, disparity, flow, consistent, video.hysteresis)
                    if moved > video.resegment_fraction:
                        resegmented += 1
                        fresh, fresh_state = _segment(
                            rgb, depth, disparity, options, cache, progress, None, position, span, video
                        )
                        if len(fresh) != state.layers:  # the topology changed: a new shot entry, new layers
                            writer.end_shot(state.index, position - 1)
                            layers, state = _segment(
                                rgb, depth, disparity, options, cache, progress, writer, position, span, video
                            )
                        else:
                            state.label_map = fresh_state.label_map
                            state.ranges = fresh_state.ranges
                            layers = fresh
                    else:
                        state.label_map = label_map
                        layers = _layers_from_map(label_map, depth, state.layers)
                flow_to_prev = None if new_shot else temporal.last_flow_to_prev
                previous = None if new_shot else state.fills
                fills, reused = _fill(rgb, depth, layers, options, previous, flow_to_prev, video.reuse_iou)
                reused_total += reused
                state.fills = fills
                for k, fill in enumerate(fills):
                    points = state.grid.points(fill.depth, work_camera)
                    writer.add_layer_points(state.index, k, position, points)
                    if position == state.first:
                        writer.set_layer(
                            state.index, k, f"layer_{k:02d}", state.grid.uvs, state.grid.faces, points,
                            _depth_range(fill), float(layers[k].median_depth), int(layers[k].mask.sum()),
                        )  # fmt: skip
                    pending.append(pool.submit(_write_texture, writer, state.index, k, position, rgb, layers[k], fill))
                pending = _drain(pending, limit=len(fills) * 2)
                frame_seconds.append(time.perf_counter() - started)
                writer.add_frame(position, frame.index, frame.time_s, state.index, frame_seconds[-1])
                progress.update((position + 1) / count, f"frame {position + 1}/{count}")
            _drain(pending, limit=0)
            writer.end_shot(state.index, count - 1)
        timings["video"] = float(sum(frame_seconds))
        fields = {
            "source": {
                "path": str(source.absolute()),
                "sha256": path_sha256(source),
                "width": int(width),
                "height": int(height),
                "fps": float(fps),
                "frame_count": count,
                "first_frame": int(video.start),
                "stride": int(video.stride),
                "variable_rate": bool(info.variable_rate) if info is not None and info.variable_rate else False,
            },
            "camera": camera.to_dict(),
            "work_size": [int(size[0]), int(size[1])],
            "depth": {
                "units": "metres" if depth_source.metric else "relative",
                "kind": "metric" if depth_source.metric else "relative",
                "source": depth_source.source,
            },
            "timings": timings,
            "options": {"pipeline": options.to_dict(), "video": dataclasses.asdict(video)},
            "stats": {"cuts": cuts, "resegmented": resegmented, "fills_reused": reused_total},
            "created_by": f"photo3d {__version__}",
        }
        return writer.publish(fields)


def _read_ahead(
    frames: Iterator[Frame], size: tuple[int, int], depth: _DepthSource
) -> Iterator[tuple[Frame, np.ndarray, np.ndarray, float]]:
    """``(frame, working rgb, raw disparity, seconds it took)`` per frame, the next frame decoded and its depth
    estimated on a helper thread while the caller works on this one (the decoder and the network release the
    GIL): a two-stage pipeline over the frames. Leaving early waits for the frame in flight, at most one."""

    def prepare(frame: Frame) -> tuple[Frame, np.ndarray, np.ndarray, float]:
        started = time.perf_counter()
        rgb = _to_work(frame, size)
        return frame, rgb, depth.disparity(frame, rgb), time.perf_counter() - started

    with ThreadPoolExecutor(1, thread_name_prefix="photo3d-video-read") as pool:
        pending: Future | None = None
        for frame in frames:
            upcoming = pool.submit(prepare, frame)
            if pending is not None:
                yield pending.result()
            pending = upcoming
        if pending is not None:
            yield pending.result()


def _depth_range(fill: LayerFill) -> tuple[float, float]:
    values = fill.depth[fill.extent] if fill.extent.any() else fill.depth
    return float(values.min()), float(values.max())


def _to_depth(disparity: np.ndarray, span: tuple[float, float] | None, options: PipelineOptions) -> np.ndarray:
    if span is None:
        return (1.0 / np.maximum(disparity, 1e-6)).astype(np.float32)
    return map_relative(disparity, span, options.depth.near, options.depth.far)


def _segment(
    rgb: np.ndarray,
    depth: np.ndarray,
    disparity: np.ndarray,
    options: PipelineOptions,
    cache: ModelCache | None,
    progress: Progress,
    writer: VideoPackageWriter | None,
    position: int,
    span: tuple[float, float] | None,
    video: VideoOptions,
) -> tuple[list[Layer], _ShotState]:
    """Layers of a frame from scratch, as for a still; with ``writer``, a new shot entry starts here."""
    labels = segment_image(rgb, depth, options.segment, options.runtime, None, cache)
    harmonized, _ = harmonize_depth(depth, labels, options.harmonize, None)
    layers = build_layers(harmonized, labels, options.layers)
    label_map = np.zeros(depth.shape, np.int64)
    for layer in layers:
        label_map[layer.mask] = layer.index
    label_map, count = _merge_overlapping(label_map, 1.0 / np.maximum(depth.astype(np.float64), 1e-9), len(layers))
    if count < len(layers):
        layers = _layers_from_map(label_map, depth, count)
    shot = writer.begin_shot(position) if writer is not None else -1
    h, w = depth.shape
    grid = _Grid.over(h, w, video.grid_step)
    if writer is not None:
        for k in range(len(layers)):
            writer.begin_layer_points(shot, k, len(grid.u))
    ranges = _layer_ranges(1.0 / np.maximum(depth.astype(np.float64), 1e-9), label_map, len(layers))
    state = _ShotState(shot, position, span, len(layers), ranges, label_map, [], grid)
    return layers, state


def _write_texture(
    writer: VideoPackageWriter, shot: int, layer_index: int, frame: int, rgb: np.ndarray, layer: Layer, fill: LayerFill
) -> str:
    photo = (rgb * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    return writer.write_texture(shot, layer_index, frame, clear_unseen(layer_rgba(photo, None, layer.mask, fill)))


def _drain(pending: list[Future], limit: int) -> list[Future]:
    """Wait for the oldest texture writes until at most ``limit`` are in flight (memory stays bounded); the
    first failure is raised."""
    while len(pending) > limit:
        pending.pop(0).result()
    return pending
