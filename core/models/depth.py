"""Depth networks through transformers (Depth Anything and any ``AutoModelForDepthEstimation`` model)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ModelError
from .cache import ModelCache
from .registry import register_backend
from .runtime import Runtime
from .weights import WeightsNeed, locate

# Depth Anything's normalisation, used when a model folder has no image processor config.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _field(holder: object, name: str) -> object:
    """``name`` of a transformers config object or of the same config read as JSON (a dict)."""
    return holder.get(name) if isinstance(holder, dict) else getattr(holder, name, None)


def config_patch_size(config: object) -> int:
    """The multiple the network input must be (ViT patch size); 14 for DINOv2 backbones. ``config`` is a
    transformers config or its ``config.json`` as a dict (the ONNX backend's), or None."""
    for holder in (config, _field(config, "backbone_config") if config is not None else None):
        patch = _field(holder, "patch_size") if holder is not None else None
        if isinstance(patch, (list, tuple)):
            patch = patch[0]
        if isinstance(patch, int) and patch > 0:
            return patch
    return 14


@register_backend
class TransformersDepth:
    """A transformers depth-estimation model folder or hub id, safetensors weights only."""

    task = "depth"
    name = "transformers"

    def __init__(
        self, model: Any, mean: np.ndarray, std: np.ndarray, multiple: int, metric: bool, device: str, source: str
    ):
        self.model = model
        self.mean = mean
        self.std = std
        self.multiple = multiple
        self.metric = metric
        self.device = device
        self.source = source

    @classmethod
    def handles(cls, model: str) -> bool:
        return True  # the catch-all: a hub id or a model folder

    @classmethod
    def needs(cls, model: str) -> tuple[WeightsNeed, ...]:
        return (WeightsNeed("depth model", model, "transformers"),)

    @classmethod
    def open(cls, model: str, runtime: Runtime, cache: ModelCache) -> TransformersDepth:
        (need,) = cls.needs(model)
        source = locate(need, runtime.models_dir, runtime.offline)
        return cache.get(("depth", source, runtime.device), lambda: cls.load(source, runtime))

    @classmethod
    def load(cls, source: str, runtime: Runtime) -> TransformersDepth:
        import torch
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        offline = runtime.offline
        try:
            model = AutoModelForDepthEstimation.from_pretrained(source, local_files_only=offline, use_safetensors=True)
        except Exception as exc:
            raise ModelError(
                f"cannot load depth model from {source}: {exc}. "
                "It must be a transformers depth-estimation model (config.json plus model.safetensors: weights in "
                "pickle formats such as pytorch_model.bin are not loaded, they can run code)"
            ) from exc
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        try:
            processor = AutoImageProcessor.from_pretrained(source, local_files_only=offline)
            if getattr(processor, "do_normalize", True):
                mean = tuple(getattr(processor, "image_mean", None) or mean)
                std = tuple(getattr(processor, "image_std", None) or std)
            else:
                mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        except Exception:
            pass  # a folder without preprocessor_config.json: Depth Anything's own normalisation is right
        model = model.to(device=runtime.device, dtype=getattr(torch, runtime.dtype)).eval()
        config = model.config
        return cls(
            model=model,
            mean=np.asarray(mean, dtype=np.float32).reshape(1, 1, 3),
            std=np.asarray(std, dtype=np.float32).reshape(1, 1, 3),
            multiple=config_patch_size(config),
            metric=getattr(config, "depth_estimation_type", "relative") == "metric",
            device=runtime.device,
            source=source,
        )

    def predict(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        import torch

        in_h, in_w = image.shape[:2]
        normalised = (np.clip(image, 0.0, 1.0) - self.mean) / self.std
        pixels = torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))[None].to(
            device=self.device, dtype=self.model.dtype
        )
        try:
            with torch.inference_mode():
                predicted = self.model(pixel_values=pixels).predicted_depth
                if predicted.ndim == 3:
                    predicted = predicted[:, None]
                predicted = torch.nn.functional.interpolate(
                    predicted.float(), size=tuple(size), mode="bilinear", align_corners=False
                )
        except torch.cuda.OutOfMemoryError as exc:
            raise ModelError(
                f"depth model {self.source} ran out of GPU memory at {in_w}x{in_h}; "
                "lower depth.input_size or use the cpu device"
            ) from exc
        return predicted[0, 0].cpu().numpy().astype(np.float32)
