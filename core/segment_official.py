"""Official ``segment-anything`` checkpoints (``sam_vit_b_01ec64.pth`` ...), when that package imports.

The package needs torchvision; where it does not import, the user gets a clear message pointing at the
transformers SAM models, which run everywhere through ``core.segment``.
"""

from __future__ import annotations

import os

import numpy as np

from .errors import ModelError
from .models import ModelCache, resolve_device, shared_cache
from .options import RuntimeOptions, SegmentOptions

_MODEL_TYPES = ("vit_h", "vit_l", "vit_b")


def is_official_checkpoint(model: str) -> bool:
    """True for a ``.pth`` file path: the official checkpoint format, not a transformers folder or id."""
    return model.lower().endswith(".pth")


def _model_type(path: str) -> str:
    name = os.path.basename(path).lower()
    for model_type in _MODEL_TYPES:
        if model_type in name:
            return model_type
    raise ModelError(f"cannot tell the SAM variant of {path}: its name must contain vit_h, vit_l or vit_b")


def official_sam_masks(
    rgb: np.ndarray, options: SegmentOptions, runtime: RuntimeOptions, cache: ModelCache | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Masks and predicted-IoU scores from segment-anything's automatic mask generator."""
    path = options.model
    if not os.path.isfile(path):
        raise ModelError(f"segment-anything checkpoint not found: {path}")
    try:
        from segment_anything import SamAutomaticMaskGenerator, sam_model_registry
    except Exception as exc:  # ImportError, or torchvision failing inside it
        raise ModelError(
            f"the official checkpoint {path} needs the segment-anything package with torchvision, which does "
            f"not import here ({type(exc).__name__}: {exc}); use a transformers SAM model instead, "
            "e.g. --segment facebook/sam-vit-base"
        ) from exc
    device = resolve_device(runtime.device)
    cache = cache if cache is not None else shared_cache()

    def load():
        model = sam_model_registry[_model_type(path)](checkpoint=path)
        return model.to(device).eval()

    model = cache.get(("sam-official", path, device), load)
    generator = SamAutomaticMaskGenerator(
        model,
        points_per_side=options.points_per_side,
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
