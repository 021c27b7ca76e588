"""ONNX Runtime for the ONNX backends: which execution providers to ask for, and one checked session per file.

A session is opened with a chain of providers (the GPU ones this ``onnxruntime`` build lists, then CPU) and
falls back along it when a provider cannot start; the provider that actually runs is recorded, so it can go
into the manifest. Model files are found through ``weights.locate`` like every other weights file, and a
missing, unreadable or corrupt file is a ``ModelError`` naming it. ``onnxruntime`` is imported only here and
only when a session is opened: importing ``core`` never needs it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ModelError
from ..safe_json import JSONRejected, read_json_file

CPU = "CPUExecutionProvider"
GPU_CHAIN = (
    "CUDAExecutionProvider",
    "DmlExecutionProvider",  # DirectML: any GPU on Windows
    "CoreMLExecutionProvider",  # Apple silicon
)
"""Tried in this order when the runtime's device is not ``cpu``; CPU always closes the chain. TensorRT builds an
engine per input shape (minutes for a ViT) and is used only when named in ``PROVIDERS_ENV``."""
PROVIDERS_ENV = "PHOTO3D_ONNX_PROVIDERS"
"""Comma-separated providers to try first (``TensorrtExecutionProvider,CUDAExecutionProvider``); those this
build does not list are skipped."""
MAX_SIDECAR_BYTES = 1_000_000
"""Largest config.json / preprocessor_config.json read beside an ONNX file (real ones are a few kB)."""


def available_providers() -> list[str]:
    """The providers this ``onnxruntime`` build lists (``ModelError`` when it is not installed)."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelError(
            f"ONNX models need the onnxruntime package, which does not import here ({exc}); "
            "install it into the worker's environment (pip install onnxruntime)"
        ) from exc
    return list(onnxruntime.get_available_providers())


def choose_providers(
    device: str, available: Sequence[str] | None = None, requested: Sequence[str] | None = None
) -> list[str]:
    """Providers to open a session with, best first, only ones in ``available``, always ending with CPU.

    ``device`` ``cpu`` gives CPU alone (the user asked for it); any other device tries ``requested`` (default:
    the ``PROVIDERS_ENV`` variable) and then ``GPU_CHAIN``.
    """
    listed = list(available) if available is not None else available_providers()
    if requested is None:
        requested = [name.strip() for name in os.environ.get(PROVIDERS_ENV, "").split(",") if name.strip()]
    chain: list[str] = []
    if (device or "cpu").strip().lower() != "cpu":
        for name in [*requested, *GPU_CHAIN]:
            if name in listed and name not in chain and name != CPU:
                chain.append(name)
    chain.append(CPU)
    return chain


TRT_CACHE_ENV = "PHOTO3D_TRT_CACHE"
"""Where TensorRT keeps the engines it builds (default: ``photo3d/tensorrt`` in the user's cache folder)."""


def tensorrt_cache_dir() -> str:
    """The TensorRT engine cache: building an engine takes minutes, so every later session reuses it."""
    if os.environ.get(TRT_CACHE_ENV):
        return os.path.expanduser(os.environ[TRT_CACHE_ENV])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "photo3d", "tensorrt")


def provider_options(provider: str, device: str) -> dict[str, str]:
    """``cuda:N`` picks the GPU for the CUDA and TensorRT providers (the others take no device index);
    TensorRT caches its engines and timing data on disk and may use FP16."""
    options: dict[str, str] = {}
    if provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider") and ":" in device:
        options["device_id"] = device.split(":", 1)[1]
    if provider == "TensorrtExecutionProvider":
        cache = tensorrt_cache_dir()
        options.update(
            trt_engine_cache_enable="True",
            trt_engine_cache_path=cache,
            trt_timing_cache_enable="True",
            trt_timing_cache_path=cache,
            trt_fp16_enable="True",
        )
    return options


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


@dataclass
class OnnxNet:
    """One opened ONNX file: its session, where it came from and the provider that runs it."""

    session: Any
    path: str
    provider: str
    what: str
    inputs: dict[str, list[int | str | None]] = field(default_factory=dict)
    """Input name -> declared shape (ints for fixed axes, names or None for dynamic ones)."""
    outputs: list[str] = field(default_factory=list)

    def fixed(self, name: str, axis: int) -> int | None:
        """The declared size of ``axis`` of input ``name`` when it is fixed, else None."""
        shape = self.inputs.get(name) or []
        value = shape[axis] if -len(shape) <= axis < len(shape) else None
        return value if isinstance(value, int) and value > 0 else None

    def require(self, inputs: Sequence[str] = (), outputs: Sequence[str] = ()) -> None:
        """``ModelError`` unless the file has these inputs and outputs (a different export's interface)."""
        missing = [f"input {name!r}" for name in inputs if name not in self.inputs]
        missing += [f"output {name!r}" for name in outputs if name not in self.outputs]
        if missing:
            raise ModelError(
                f"{self.what} {self.path} is not the expected export: it has no {', '.join(missing)} "
                f"(its inputs are {', '.join(self.inputs) or 'none'}; outputs {', '.join(self.outputs) or 'none'})"
            )

    def run(self, outputs: Sequence[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the session; a runtime failure (shape mismatch, out of memory) is a ``ModelError``."""
        try:
            return self.session.run(list(outputs) if outputs else None, feeds)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidArgument/RuntimeException types
            shapes = ", ".join(f"{name} {tuple(value.shape)}" for name, value in feeds.items())
            raise ModelError(
                f"{self.what} {self.path} failed on {shapes} ({self.provider}): {_first_line(exc)}"
            ) from exc


def open_session(path: str, device: str, what: str) -> OnnxNet:
    """Open ``path`` with the provider chain for ``device``; ``ModelError`` naming the file when it is missing,
    unreadable or not a valid ONNX model."""
    if not os.path.isfile(path):
        raise ModelError(f"{what} {path} not found")
    chain = choose_providers(device)
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: a provider falling back is reported through `provider`
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = None
    errors: list[str] = []
    # Fall back along the chain: a GPU provider whose libraries are missing or whose device is busy must not
    # stop a job that CPU can run.
    if "TensorrtExecutionProvider" in chain:
        os.makedirs(tensorrt_cache_dir(), exist_ok=True)  # TensorRT writes its engines while the session opens
    for start in range(len(chain)):
        providers = chain[start:]
        try:
            session = onnxruntime.InferenceSession(
                path,
                sess_options=options,
                providers=[(name, provider_options(name, device)) for name in providers],
            )
            break
        except Exception as exc:
            errors.append(f"{providers[0]}: {_first_line(exc)}")
    if session is None:
        raise ModelError(f"cannot load {what} {path}: not a usable ONNX model ({errors[-1]})")
    inputs = {item.name: list(item.shape) for item in session.get_inputs()}
    outputs = [item.name for item in session.get_outputs()]
    return OnnxNet(session, os.path.abspath(path), session.get_providers()[0], what, inputs, outputs)


def is_onnx_file(model: str) -> bool:
    """True for an option value naming an ``.onnx`` file (a path or a name in the models folder)."""
    return (model or "").strip().lower().endswith(".onnx")


def sidecar_json(model_path: str, name: str) -> dict[str, Any] | None:
    """``name`` (``config.json``, ``preprocessor_config.json``) beside an ONNX file or one folder up (the
    ``onnx/model.onnx`` layout of published exports), parsed; None when absent or unreadable."""
    folder = os.path.dirname(os.path.abspath(model_path))
    for candidate in (os.path.join(folder, name), os.path.join(os.path.dirname(folder), name)):
        if os.path.isfile(candidate):
            try:
                data = read_json_file(candidate, MAX_SIDECAR_BYTES)
            except (OSError, JSONRejected):
                return None  # a broken config only loses the defaults it would override
            return data if isinstance(data, dict) else None
    return None


def normalisation(config: dict[str, Any] | None, mean: Sequence[float], std: Sequence[float]) -> tuple[np.ndarray, ...]:
    """(mean, std) as (1, 1, 3) float32 from an image processor config, else the given defaults."""
    if config is not None:
        if config.get("do_normalize") is False:
            mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        else:
            mean = _three(config.get("image_mean"), mean)
            std = _three(config.get("image_std"), std)
            if not all(v > 0 for v in std):
                raise ModelError(f"image_std {list(std)} in the preprocessor config must be positive")
    return (np.asarray(mean, np.float32).reshape(1, 1, 3), np.asarray(std, np.float32).reshape(1, 1, 3))


def _three(value: Any, default: Sequence[float]) -> Sequence[float]:
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value):
        return [float(v) for v in value]
    return default
