"""What a backend is: the class-level contract the registry and the pre-flight use, and one small protocol
per task for what the stage calls.

A backend class says which option values it ``handles``, what weights it ``needs`` for one of them (the
pre-flight looks those up before any work), and ``open``s a ready instance (weights found, network loaded
once per process through the ``ModelCache``). The instance satisfies its task's protocol. Arrays cross the
protocols as numpy: the stages never see torch, ONNX Runtime or whatever a backend runs on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from ..options import SegmentOptions
    from .cache import ModelCache
    from .runtime import Runtime
    from .weights import WeightsNeed

TASKS = ("depth", "segmentation", "inpainting")
"""The tasks backends exist for; the option each reads: depth.model, segment.model, inpaint.lama_model."""


class BackendClass(Protocol):
    """The class of a backend, as ``register_backend`` takes it."""

    task: ClassVar[str]
    """One of ``TASKS``."""
    name: ClassVar[str]
    """Short name for messages and tests (``transformers``, ``torchscript-lama``...)."""

    @classmethod
    def handles(cls, model: str) -> bool:
        """Whether this backend runs the option value ``model`` (an id, folder, file or name)."""
        ...

    @classmethod
    def needs(cls, model: str) -> Sequence[WeightsNeed]:
        """The weights ``model`` needs on disk (empty when it needs none)."""
        ...

    @classmethod
    def open(cls, model: str, runtime: Runtime, cache: ModelCache) -> Any:
        """A ready instance for ``model``: weights located, network loaded (once, through ``cache``)."""
        ...


class DepthBackend(Protocol):
    """A monocular depth network."""

    source: str
    """What was loaded (folder, file or hub id): recorded as the depth source in the manifest."""
    metric: bool
    """True when ``predict`` gives metres; False for relative (affine-invariant) disparity."""
    multiple: int
    """Network input height and width must be multiples of this (the ViT patch size)."""

    def predict(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Raw prediction for ``image`` ((in_h, in_w, 3) float32 0..1, sides multiples of ``multiple``),
        resampled to ``size`` = (h, w): (h, w) float32 disparity (relative) or metres (metric)."""
        ...


class PromptedImage(Protocol):
    """One photo embedded by a point-promptable segmenter (SAM-style): prompts are cheap after this."""

    frame_size: tuple[int, int]
    """(width, height) of the frame point prompts are given in (the network's resized input)."""

    def masks(
        self, points: np.ndarray, pred_iou_threshold: float, stability_threshold: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Candidate masks for single-point prompts ``points`` ((N, 2) x, y in ``frame_size``):
        ``(masks (M, h, w) bool at the photo's size, scores (M,) float32 predicted IoU)``, only those at or
        above both thresholds and not empty; several candidates per point, in no particular order."""
        ...


class SegmentationBackend(Protocol):
    """A point-promptable segmenter: the stage lays the prompt grid, batches it and removes duplicates."""

    source: str

    def embed(self, rgb: np.ndarray) -> PromptedImage:
        """Embed an (h, w, 3) float32 0..1 photo once, for any number of prompt batches."""
        ...


@runtime_checkable
class AutomaticSegmentationBackend(Protocol):
    """A segmenter that lays its own prompts and removes its own duplicates (segment-anything's generator)."""

    def automatic_masks(
        self, rgb: np.ndarray, options: SegmentOptions, points_per_side: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(masks (M, h, w) bool, scores (M,) float32)`` for an (h, w, 3) float32 0..1 photo, prompted with a
        ``points_per_side`` square grid (``SegmentOptions.grid_points_per_side``)."""
        ...


class InpaintBackend(Protocol):
    """A network that fills holes in colour images."""

    source: str

    def fill(self, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Fill the True pixels of ``masks`` (N, h, w) in ``images`` (N, h, w, 3) float32 0..1; known
        pixels come back unchanged."""
        ...
