"""Segment Anything backends: transformers ``SamModel`` (point prompts from the stage) and official
``segment-anything`` checkpoints (``sam_vit_b_01ec64.pth`` ...) through that package's own generator.

The official package needs torchvision; where it does not import, the user gets a clear message pointing at
the transformers SAM models, which run everywhere. transformers' mask-generation helpers need torchvision
too, so the transformers backend only embeds and decodes; the prompt grid and NMS live in ``core.segment``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ModelError
from .cache import ModelCache
from .registry import register_backend
from .runtime import Runtime
from .weights import WeightsNeed, locate

if TYPE_CHECKING:  # torch loads lazily: importing core must not need it
    import torch

    from ..options import SegmentOptions

MASK_THRESHOLD = 0.0
STABILITY_OFFSET = 1.0
"""SAM's automatic mask generator: a mask is logits > 0; stability compares thresholds at +-1."""

UPSCALE_CHUNK = 16
"""Masks upscaled to full resolution at a time: bounds memory to a few full-size float maps."""

_MODEL_TYPES = ("vit_h", "vit_l", "vit_b")


def stability_scores(
    logits: torch.Tensor, threshold: float = MASK_THRESHOLD, offset: float = STABILITY_OFFSET
) -> torch.Tensor:
    """IoU of the mask at ``threshold + offset`` with the mask at ``threshold - offset`` (per mask)."""
    import torch

    # int32 sums: several times faster than the default int64 reduction of a bool tensor.
    inner = (logits > threshold + offset).flatten(1).sum(dim=1, dtype=torch.int32)
    outer = (logits > threshold - offset).flatten(1).sum(dim=1, dtype=torch.int32)
    return inner.float() / outer.clamp(min=1).float()


class _SamPrompts:
    """A photo embedded by a transformers SAM: decodes batches of single-point prompts."""

    def __init__(self, backend: TransformersSam, rgb: np.ndarray):
        import torch

        self.backend = backend
        self.size = rgb.shape[:2]
        model, processor, device = backend.model, backend.processor, backend.device
        image = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        inputs = processor(images=image, return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(device=device, dtype=model.dtype)
        self.padded_size = tuple(pixel_values.shape[-2:])
        resized_h, resized_w = (int(v) for v in inputs["reshaped_input_sizes"][0])
        # Prompts live in the processor's resized frame (what the model saw before padding).
        self.frame_size = (resized_w, resized_h)
        with torch.inference_mode():
            self.embeddings = model.get_image_embeddings(pixel_values)

    def masks(
        self, points: np.ndarray, pred_iou_threshold: float, stability_threshold: float
    ) -> tuple[np.ndarray, np.ndarray]:
        import torch
        import torch.nn.functional as functional

        model, device = self.backend.model, self.backend.device
        h, w = self.size
        resized_w, resized_h = self.frame_size
        new_masks, new_scores = [np.zeros((0, h, w), bool)], [np.zeros(0, np.float32)]
        with torch.inference_mode():
            chunk = torch.as_tensor(np.asarray(points), dtype=torch.float32, device=device)
            outputs = model(
                image_embeddings=self.embeddings,
                input_points=chunk[None, :, None, :],
                input_labels=torch.ones((1, len(chunk), 1), dtype=torch.long, device=device),
                multimask_output=True,
            )
            logits = outputs.pred_masks[0].flatten(0, 1).float()  # (points * 3, low_h, low_w)
            ious = outputs.iou_scores[0].flatten().float()
            # Cheap filter first, so only survivors are upscaled to full resolution.
            survivors = torch.nonzero(ious >= pred_iou_threshold).flatten()
            for part in survivors.split(UPSCALE_CHUNK):
                # Like SAM: bilinear to the padded input, crop the padding, then to the image size.
                full = functional.interpolate(
                    logits[part, None], self.padded_size, mode="bilinear", align_corners=False
                )
                full = full[..., :resized_h, :resized_w]
                full = functional.interpolate(full, (h, w), mode="bilinear", align_corners=False)[:, 0]
                stable = stability_scores(full) >= stability_threshold
                masks = full > MASK_THRESHOLD
                good = stable & masks.flatten(1).any(dim=1)
                new_masks.append(masks[good].cpu().numpy())
                new_scores.append(ious[part][good].cpu().numpy())
        return np.concatenate(new_masks), np.concatenate(new_scores).astype(np.float32)


@register_backend
class TransformersSam:
    """A SAM checkpoint in transformers format (hub id or folder): ``SamModel`` and ``SamProcessor``."""

    task = "segmentation"
    name = "transformers-sam"

    def __init__(self, model: Any, processor: Any, device: str, source: str):
        self.model = model
        self.processor = processor
        self.device = device
        self.source = source

    @classmethod
    def handles(cls, model: str) -> bool:
        return True  # the catch-all: a hub id or a model folder

    @classmethod
    def needs(cls, model: str) -> tuple[WeightsNeed, ...]:
        return (WeightsNeed("segmentation model", model, "transformers"),)

    @classmethod
    def open(cls, model: str, runtime: Runtime, cache: ModelCache) -> TransformersSam:
        (need,) = cls.needs(model)
        source = locate(need, runtime.models_dir, runtime.offline)
        try:
            return cache.get(("sam", source, runtime.device), lambda: cls.load(source, runtime.device))
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            raise ModelError(
                f"cannot load segmentation model {model!r} from {source}: {error}. "
                "It must be a SAM checkpoint in transformers format (config.json, weights, processor config)"
            ) from error

    @classmethod
    def load(cls, source: str, device: str) -> TransformersSam:
        from transformers import SamModel, SamProcessor

        processor = SamProcessor.from_pretrained(source)
        model = SamModel.from_pretrained(source, use_safetensors=True).to(device).eval()
        return cls(model, processor, device, source)

    def embed(self, rgb: np.ndarray) -> _SamPrompts:
        return _SamPrompts(self, rgb)


def is_official_checkpoint(model: str) -> bool:
    """True for a ``.pth`` file path: the official checkpoint format, not a transformers folder or id."""
    return model.lower().endswith(".pth")


def _model_type(path: str) -> str:
    name = os.path.basename(path).lower()
    for model_type in _MODEL_TYPES:
        if model_type in name:
            return model_type
    raise ModelError(f"cannot tell the SAM variant of {path}: its name must contain vit_h, vit_l or vit_b")


@register_backend
class OfficialSam:
    """An official segment-anything ``.pth`` checkpoint, run by that package's automatic mask generator."""

    task = "segmentation"
    name = "segment-anything"

    def __init__(self, model: Any, source: str):
        self.model = model
        self.source = source

    @classmethod
    def handles(cls, model: str) -> bool:
        return is_official_checkpoint(model)

    @classmethod
    def needs(cls, model: str) -> tuple[WeightsNeed, ...]:
        return (WeightsNeed("segment-anything checkpoint", model, "checkpoint"),)

    @classmethod
    def open(cls, model: str, runtime: Runtime, cache: ModelCache) -> OfficialSam:
        (need,) = cls.needs(model)
        path = locate(need, runtime.models_dir, runtime.offline)
        try:
            from segment_anything import sam_model_registry
        except Exception as exc:  # ImportError, or torchvision failing inside it
            raise ModelError(
                f"the official checkpoint {path} needs the segment-anything package with torchvision, which does "
                f"not import here ({type(exc).__name__}: {exc}); use a transformers SAM model instead, "
                "e.g. --segment facebook/sam-vit-base"
            ) from exc
        device = runtime.device

        def load() -> OfficialSam:
            network = sam_model_registry[_model_type(path)](checkpoint=path)
            return cls(network.to(device).eval(), path)

        return cache.get(("sam-official", path, device), load)

    def automatic_masks(
        self, rgb: np.ndarray, options: SegmentOptions, points_per_side: int
    ) -> tuple[np.ndarray, np.ndarray]:
        from segment_anything import SamAutomaticMaskGenerator

        generator = SamAutomaticMaskGenerator(
            self.model,
            points_per_side=points_per_side,
            points_per_batch=options.points_per_batch,
            pred_iou_thresh=options.pred_iou_threshold,
            stability_score_thresh=options.stability_threshold,
            box_nms_thresh=options.nms_iou_threshold,
        )
        records = generator.generate((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8))
        if not records:
            return np.zeros((0, *rgb.shape[:2]), bool), np.zeros(0, np.float32)
        masks = np.stack([record["segmentation"].astype(bool) for record in records])
        scores = np.array([record["predicted_iou"] for record in records], np.float32)
        return masks, scores
