"""Depth Anything (V2) exported to ONNX, run by ONNX Runtime: the same numbers as the transformers backend.

The interface is the onnx-community one: input ``pixel_values`` (1, 3, H, W) normalised like the image
processor, output ``predicted_depth`` (1, H', W') or (1, 1, H', W') relative disparity. An export with
dynamic height and width takes the stage's size (multiples of 14, aspect kept); a fixed-size export gets
the image resized to its size. The output is resized to the photo whatever size it comes out at: traced
exports may not give H' = H (a 924-wide input once came out 770 wide), so its shape is never trusted.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from ..errors import ModelError
from .cache import ModelCache
from .depth import IMAGENET_MEAN, IMAGENET_STD, config_patch_size
from .onnx_runtime import OnnxNet, is_onnx_file, normalisation, open_session, sidecar_json
from .registry import register_backend
from .runtime import Runtime
from .weights import WeightsNeed, locate

INPUT = "pixel_values"
OUTPUT = "predicted_depth"
MODEL_FILES = ("model.onnx", os.path.join("onnx", "model.onnx"))
"""Where a folder holds its network: our export's layout, then onnx-community's."""


def folder_model(folder: str) -> str | None:
    """The ONNX network inside a model folder, or None; a folder with safetensors weights is transformers'."""
    if not os.path.isdir(folder):
        return None
    try:
        if any(name.endswith(".safetensors") for name in os.listdir(folder)):
            return None
    except OSError:
        return None
    for name in MODEL_FILES:
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    return None


@register_backend
class OnnxDepth:
    """A Depth Anything ONNX file (or a folder holding ``model.onnx``), run by ONNX Runtime."""

    task = "depth"
    name = "onnx-depth"

    def __init__(self, net: OnnxNet, mean: np.ndarray, std: np.ndarray, multiple: int, metric: bool):
        self.net = net
        self.mean = mean
        self.std = std
        self.multiple = multiple
        self.metric = metric
        self.source = net.path
        self.provider = net.provider
        """The execution provider that runs the network (``CPUExecutionProvider``...)."""
        self.fixed_size = (net.fixed(INPUT, 2), net.fixed(INPUT, 3))

    @classmethod
    def handles(cls, model: str) -> bool:
        return is_onnx_file(model) or folder_model(os.path.expanduser((model or "").strip())) is not None

    @classmethod
    def needs(cls, model: str) -> tuple[WeightsNeed, ...]:
        inside = folder_model(os.path.expanduser(model.strip()))
        if inside is not None:
            return (WeightsNeed("ONNX depth model", inside, "checkpoint"),)
        return (WeightsNeed("ONNX depth model", model, "file"),)

    @classmethod
    def open(cls, model: str, runtime: Runtime, cache: ModelCache) -> OnnxDepth:
        (need,) = cls.needs(model)
        path = locate(need, runtime.models_dir, runtime.offline)
        return cache.get(("onnx-depth", path, runtime.device), lambda: cls.load(path, runtime.device))

    @classmethod
    def load(cls, path: str, device: str) -> OnnxDepth:
        """Open ``path`` and read its normalisation and kind from the configs beside it (if any)."""
        net = open_session(path, device, "ONNX depth model")
        net.require(inputs=[INPUT], outputs=[OUTPUT])
        config = sidecar_json(path, "config.json")
        mean, std = normalisation(sidecar_json(path, "preprocessor_config.json"), IMAGENET_MEAN, IMAGENET_STD)
        metric = (config or {}).get("depth_estimation_type", "relative") == "metric"
        return cls(net, mean, std, config_patch_size(config), metric)

    def predict(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        height, width = (int(v) for v in size)
        image = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
        fixed_h, fixed_w = self.fixed_size
        if fixed_h and fixed_w and image.shape[:2] != (fixed_h, fixed_w):
            # A fixed-size export cannot take the stage's aspect-kept size: give it its own.
            image = cv2.resize(image, (fixed_w, fixed_h), interpolation=cv2.INTER_CUBIC)
        pixels = ((image - self.mean) / self.std).transpose(2, 0, 1)[None]
        (raw,) = self.net.run([OUTPUT], {INPUT: np.ascontiguousarray(pixels, dtype=np.float32)})
        raw = np.asarray(raw, np.float32)
        while raw.ndim > 2 and raw.shape[0] == 1:
            raw = raw[0]
        if raw.ndim != 2 or min(raw.shape) < 1:
            raise ModelError(f"ONNX depth model {self.source} returned shape {raw.shape}, expected (1, H, W)")
        # cv2's bilinear resize samples pixel centres like torch's interpolate(align_corners=False).
        return cv2.resize(raw, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32)
