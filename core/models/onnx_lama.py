"""LaMa exported to ONNX, run by ONNX Runtime, with the interface of the TorchScript backend (``fill``).

Published exports take ``image`` (1, 3, 512, 512) in 0..1 and ``mask`` (1, 1, 512, 512) in {0, 1} and
give the image back; some take one (1, 4, H, W) input (masked image and mask). A fixed-size export sees
each hole through a crop: the hole's box widened by context, made square where the photo allows, resized to
the network's size; the result is resized back and only the hole's own pixels are pasted, so every other
pixel comes back unchanged. A dynamic-size export sees the same crops at their own resolution, padded to a
multiple of 32.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import ModelError
from .cache import ModelCache
from .lama import checked_batch
from .onnx_runtime import OnnxNet, is_onnx_file, open_session
from .registry import register_backend
from .runtime import Runtime
from .weights import WeightsNeed, locate

CONTEXT_FRACTION = 0.5
"""Context around a hole, as a share of its box's longest side: LaMa fills best with about as much known
picture as hole around it."""
MIN_CONTEXT = 16
"""Context in pixels around even the smallest hole."""
MULTIPLE = 32
"""Dynamic-size exports get sides padded to this (LaMa's downsampling; some exports require it)."""
SCALED_255 = 1.5
"""An output above this is read as 0..255 (some exports scale the result) and divided by 255."""


@dataclass(frozen=True)
class Crop:
    """One network run: the window ``[top:bottom, left:right]`` and the hole pixels it fills."""

    top: int
    bottom: int
    left: int
    right: int
    fills: np.ndarray
    """(bottom - top, right - left) bool: the hole pixels this crop pastes (the others are another crop's)."""


def _window(start: int, stop: int, length: int, limit: int) -> tuple[int, int]:
    """A window of ``length`` (at most ``limit``) centred on [start, stop), shifted to lie inside [0, limit)."""
    length = min(max(length, stop - start), limit)
    first = (start + stop - length) // 2
    first = min(max(first, 0), limit - length)
    return first, first + length


def hole_crops(hole: np.ndarray, context: float = CONTEXT_FRACTION, min_context: int = MIN_CONTEXT) -> list[Crop]:
    """The crops that cover every True pixel of ``hole`` (h, w) once.

    Holes closer than ``min_context`` share a crop (they are components of the hole dilated by it). A crop is
    the group's box widened by ``max(min_context, context * longest side)`` on every side and made square
    where the photo is large enough.
    """
    hole = np.asarray(hole, bool)
    height, width = hole.shape
    if not hole.any():
        return []
    kernel = np.ones((2 * min_context + 1, 2 * min_context + 1), np.uint8)
    grown = cv2.dilate(hole.astype(np.uint8), kernel)
    count, groups = cv2.connectedComponents(grown, connectivity=8)
    crops = []
    for group in range(1, count):
        member = hole & (groups == group)
        rows, cols = np.nonzero(member.any(axis=1))[0], np.nonzero(member.any(axis=0))[0]
        top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        margin = max(min_context, int(round(context * max(bottom - top, right - left))))
        side = max(bottom - top, right - left) + 2 * margin
        top, bottom = _window(top, bottom, side, height)
        left, right = _window(left, right, side, width)
        crops.append(Crop(top, bottom, left, right, member[top:bottom, left:right]))
    return crops


def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to (h, w): area when shrinking (no aliasing), bilinear when growing."""
    height, width = size
    shrinking = height * width < array.shape[0] * array.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    resized = cv2.resize(np.ascontiguousarray(array, np.float32), (width, height), interpolation=interpolation)
    return resized.reshape(height, width, *array.shape[2:])


@register_backend
class OnnxLama:
    """A LaMa ONNX file (fixed 512 x 512 or dynamic size), run by ONNX Runtime."""

    task = "inpainting"
    name = "onnx-lama"

    def __init__(self, net: OnnxNet):
        self.net = net
        self.source = net.path
        self.provider = net.provider
        """The execution provider that runs the network."""
        names = list(net.inputs)
        if "image" in net.inputs and "mask" in net.inputs:
            self.joined = False
            first = "image"
        elif len(names) == 1 and net.fixed(names[0], 1) == 4:
            self.joined = True  # one (1, 4, H, W) input: image with the hole zeroed, then the mask
            first = names[0]
        else:
            raise ModelError(
                f"LaMa model {net.path} has inputs {', '.join(names)}: expected 'image' (1, 3, H, W) and "
                "'mask' (1, 1, H, W), or one (1, 4, H, W) input"
            )
        self.first = first
        height, width = net.fixed(first, 2), net.fixed(first, 3)
        self.size = (height, width) if height and width else None
        """The network's fixed (h, w), or None when it takes any size."""

    @classmethod
    def handles(cls, model: str) -> bool:
        return is_onnx_file(model)

    @classmethod
    def needs(cls, model: str) -> tuple[WeightsNeed, ...]:
        return (WeightsNeed("LaMa ONNX model", model, "file"),)

    @classmethod
    def open(cls, model: str, runtime: Runtime, cache: ModelCache) -> OnnxLama:
        (need,) = cls.needs(model)
        path = locate(need, runtime.models_dir, runtime.offline)
        return cache.get(
            ("onnx-lama", path, runtime.device), lambda: cls(open_session(path, runtime.device, "LaMa model"))
        )

    def _network(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The network on one (h, w, 3) image and (h, w) {0, 1} mask at its input size: (h, w, 3) 0..1."""
        pixels = image.transpose(2, 0, 1)[None].astype(np.float32)
        holes = mask[None, None].astype(np.float32)
        if self.joined:
            feeds = {self.first: np.concatenate([pixels * (1.0 - holes), holes], axis=1)}
        else:
            feeds = {"image": pixels, "mask": holes}
        (output,) = self.net.run([self.net.outputs[0]], feeds)
        if output.ndim != 4 or output.shape[:2] != (1, 3) or output.shape[2:] != image.shape[:2]:
            raise ModelError(f"LaMa model {self.source} returned shape {output.shape}, expected (1, 3, H, W)")
        output = output[0].transpose(1, 2, 0).astype(np.float32)
        if float(output.max()) > SCALED_255:
            output = output / 255.0
        return np.clip(output, 0.0, 1.0)

    def _fill_crop(self, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """Network output for one crop, at the crop's size."""
        height, width = hole.shape
        if self.size is not None:
            # Any coverage of a network pixel by the hole makes it hole: thin holes must not vanish when shrunk.
            mask = (_resize(hole.astype(np.float32), self.size) > 0).astype(np.float32)
            return _resize(self._network(_resize(image, self.size), mask), (height, width))
        pad_h, pad_w = (-height) % MULTIPLE, (-width) % MULTIPLE
        mode = "reflect" if height > pad_h and width > pad_w else "edge"  # reflect needs more pixels than padding
        padded = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode=mode)
        mask = np.pad(hole.astype(np.float32), ((0, pad_h), (0, pad_w)), mode="constant")
        return self._network(padded, mask)[:height, :width]

    def fill(self, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        images, holes = checked_batch(images, masks, "LaMa")
        result = images.copy()
        for index, hole in enumerate(holes):
            # Every crop reads the untouched image, so the order of the crops does not matter.
            for crop in hole_crops(hole):
                window = (slice(crop.top, crop.bottom), slice(crop.left, crop.right))
                filled = self._fill_crop(images[index][window], hole[window])
                result[index][window][crop.fills] = filled[crop.fills]
        return result
