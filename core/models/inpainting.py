"""Inpainting networks: big-lama through its TorchScript file (see ``core.models.lama``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .cache import ModelCache
from .registry import register_backend
from .runtime import Runtime
from .weights import WeightsNeed, locate


@register_backend
class TorchScriptLama:
    """big-lama as the TorchScript file simple-lama-inpainting uses (``big-lama.pt``)."""

    task = "inpainting"
    name = "torchscript-lama"

    def __init__(self, module: Any, device: str, source: str):
        self.module = module
        self.device = device
        self.source = source

    @classmethod
    def handles(cls, model: str) -> bool:
        return True  # the catch-all: any single weights file

    @classmethod
    def needs(cls, model: str) -> tuple[WeightsNeed, ...]:
        return (WeightsNeed("inpainting weights", model, "file"),)

    @classmethod
    def open(cls, model: str, runtime: Runtime, cache: ModelCache) -> TorchScriptLama:
        from .lama import load_lama

        (need,) = cls.needs(model)
        path = locate(need, runtime.models_dir, runtime.offline)
        device = runtime.device
        return cache.get(("lama", path, device), lambda: cls(load_lama(path, device), device, path))

    def fill(self, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        from .lama import run_lama

        return run_lama(self.module, images, masks, self.device)
