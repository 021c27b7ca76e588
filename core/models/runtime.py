"""Where models run: the device, resolved once, and the settings every backend reads (a ``Runtime``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError, ModelError
from ..options import RuntimeOptions


def _onnx_device(name: str) -> str:
    """The device without torch (the bundled, ONNX-only worker): what ONNX Runtime's providers offer.

    ``auto`` is ``cuda`` with the CUDA provider, ``gpu`` with another GPU provider (DirectML, CoreML), else
    ``cpu``; the ONNX backends try the GPU providers for any device but ``cpu``."""
    from .onnx_runtime import CPU, GPU_CHAIN, available_providers

    try:
        listed = available_providers()
    except ModelError:
        listed = [CPU]
    if name == "auto":
        if "CUDAExecutionProvider" in listed:
            return "cuda"
        return "gpu" if any(provider in listed for provider in GPU_CHAIN) else "cpu"
    if name == "cpu":
        return "cpu"
    if name == "gpu" or name == "cuda" or name.startswith("cuda:"):
        wanted = ["CUDAExecutionProvider"] if name.startswith("cuda") else list(GPU_CHAIN)
        if not any(provider in listed for provider in wanted):
            raise ModelError(
                f"device {name!r} was requested but ONNX Runtime offers no GPU provider here "
                f"(it has {', '.join(listed)}); set the device to cpu or auto"
            )
        return name
    raise InputError(f"unknown device {name!r}: use auto, cpu or cuda")


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; an explicit ``cuda`` without CUDA is an error.

    Without torch (the bundled worker runs ONNX models only) the device comes from ONNX Runtime instead."""
    name = (name or "auto").strip().lower()
    try:
        import torch  # lazy: importing core must not need torch
    except ImportError:
        return _onnx_device(name)

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ModelError(
                f"device {name!r} was requested but this torch build sees no CUDA GPU "
                f"(torch {torch.__version__}); set the device to cpu or auto, or install a CUDA build of torch"
            )
        if ":" in name:
            index = name.split(":", 1)[1]
            if not index.isdigit() or int(index) >= torch.cuda.device_count():
                raise ModelError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
        return name
    raise InputError(f"unknown device {name!r}: use auto, cpu or cuda")


@dataclass(frozen=True)
class Runtime:
    """What a backend needs to know besides its model: a resolved device and where weights may come from."""

    device: str
    """Resolved: ``cpu``, ``cuda`` or ``cuda:N`` (never ``auto``); ``gpu`` (ONNX Runtime's DirectML or CoreML)
    only where torch is absent."""
    models_dir: str | None = None
    """The user's models folder, searched before the Hugging Face cache."""
    offline: bool = True
    """Never download weights unless this is False."""
    dtype: str = "float32"
    """Precision the networks run in."""

    @classmethod
    def from_options(cls, options: RuntimeOptions | None = None) -> Runtime:
        """Resolve ``options.device`` (through torch when installed); keep the models folder and download permission."""
        options = options or RuntimeOptions()
        return cls(device=resolve_device(options.device), models_dir=options.models_dir, offline=options.offline)
