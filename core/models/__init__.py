"""The models layer: where weights come from, where networks run, and the backends that run them.

``runtime`` resolves the device (``Runtime``); ``weights`` finds weights (explicit path, models folder,
Hugging Face cache, download only when allowed) and checks a model folder is complete; ``cache`` keeps
loaded networks warm; ``registry`` picks the backend for an option value (``backend_for``); ``depth``,
``segmentation`` and ``inpainting`` hold the built-in backends (the only modules here that import torch or
transformers, and only when a network is opened); ``onnx_depth``, ``onnx_sam`` and ``onnx_lama`` run ONNX
exports through ONNX Runtime (``onnx_runtime``: providers and sessions; ``onnx_export``: making them from
torch weights); ``preflight`` checks every model a job needs at once.
Importing this package never imports torch.
"""

from __future__ import annotations

# The built-in backends register themselves when their module is imported.
from . import depth, inpainting, segmentation  # noqa: F401

# isort: split
# The ONNX Runtime backends register after them, so they are asked first; they handle only .onnx files and
# folders of ONNX exports.
from . import onnx_depth, onnx_lama, onnx_sam  # noqa: F401

# isort: split
from .cache import ModelCache, shared_cache
from .preflight import MissingModels, check_models, model_problems, required_models
from .protocols import (
    TASKS,
    AutomaticSegmentationBackend,
    BackendClass,
    DepthBackend,
    InpaintBackend,
    PromptedImage,
    SegmentationBackend,
)
from .registry import (
    SEGMENTATION_WITHOUT_WEIGHTS,
    backend_class,
    backend_for,
    register_backend,
    registered_backends,
    unregister_backend,
)
from .runtime import Runtime, resolve_device
from .weights import (
    BIG_LAMA_URL,
    WeightsNeed,
    dashed_name,
    locate,
    model_dir_candidates,
    resolve_model_source,
    resolve_weights_file,
    transformers_folder_problem,
)

__all__ = [
    "BIG_LAMA_URL",
    "SEGMENTATION_WITHOUT_WEIGHTS",
    "TASKS",
    "AutomaticSegmentationBackend",
    "BackendClass",
    "DepthBackend",
    "InpaintBackend",
    "MissingModels",
    "ModelCache",
    "PromptedImage",
    "Runtime",
    "SegmentationBackend",
    "WeightsNeed",
    "backend_class",
    "backend_for",
    "check_models",
    "dashed_name",
    "locate",
    "model_dir_candidates",
    "model_problems",
    "register_backend",
    "registered_backends",
    "required_models",
    "resolve_device",
    "resolve_model_source",
    "resolve_weights_file",
    "shared_cache",
    "transformers_folder_problem",
    "unregister_backend",
]
