"""Which backend runs an option value: every backend class registers itself for its task here.

``backend_for(task, model, runtime, cache)`` asks the registered classes of ``task``, newest first, whether
they handle ``model``; the first that does opens it. Built-in backends register when ``core.models`` is
imported and handle everything of their task, so a backend registered later (an ONNX file, a test's fake)
is asked before them: adding a backend is adding a module that calls ``register_backend``, with no change
to the stage that uses it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import ModelError
from .cache import ModelCache, shared_cache
from .protocols import TASKS, BackendClass
from .runtime import Runtime

SEGMENTATION_WITHOUT_WEIGHTS = ("none", "superpixel")
"""``segment.model`` values that use the weights-free superpixel fallback instead of a backend."""

_BACKENDS: dict[str, list[type]] = {task: [] for task in TASKS}
_LOCK = threading.Lock()


def _check_task(task: str) -> None:
    if task not in _BACKENDS:
        raise ValueError(f"unknown model task {task!r}: use one of {', '.join(TASKS)}")


def register_backend(cls: type[BackendClass]) -> type[BackendClass]:
    """Register a backend class for ``cls.task`` (usable as a class decorator); it is asked before every
    backend registered earlier. Registering a class again moves it to the front."""
    _check_task(cls.task)
    for method in ("handles", "needs", "open"):
        if not callable(getattr(cls, method, None)):
            raise TypeError(f"backend {cls.__name__} has no {method}(): see core.models.protocols.BackendClass")
    with _LOCK:
        entries = _BACKENDS[cls.task]
        if cls in entries:
            entries.remove(cls)
        entries.insert(0, cls)
    return cls


def unregister_backend(cls: type) -> None:
    """Forget a backend class (tests, plugins being unloaded); unknown classes are ignored."""
    with _LOCK:
        for entries in _BACKENDS.values():
            if cls in entries:
                entries.remove(cls)


def registered_backends(task: str) -> list[type]:
    """The classes registered for ``task``, in the order they are asked."""
    _check_task(task)
    with _LOCK:
        return list(_BACKENDS[task])


def backend_class(task: str, model: str) -> type:
    """The backend class that runs ``model`` for ``task``; ``ModelError`` when none does."""
    for cls in registered_backends(task):
        if cls.handles(model):
            return cls
    raise ModelError(f"no {task} backend runs {model!r}")


_RECORDERS: list[dict[str, str]] = []


@contextmanager
def recording_backends() -> Iterator[dict[str, str]]:
    """Collect, per task, which backend ``backend_for`` opened and what it runs on (``onnx-depth on
    CPUExecutionProvider``, ``transformers on cuda``) while the block runs: the manifest records it."""
    used: dict[str, str] = {}
    with _LOCK:
        _RECORDERS.append(used)
    try:
        yield used
    finally:
        with _LOCK:
            _RECORDERS.remove(used)


def backend_for(task: str, model: str, runtime: Runtime, cache: ModelCache | None = None) -> Any:
    """A ready backend for ``model``: found through the registry, opened on ``runtime`` and kept warm in
    ``cache`` (the process-wide cache when None)."""
    cls = backend_class(task, model)
    backend = cls.open(model, runtime, cache if cache is not None else shared_cache())
    # ONNX backends know the execution provider that actually runs (after any fallback); torch ones the device.
    runs_on = f"{cls.name} on {getattr(backend, 'provider', None) or runtime.device}"
    with _LOCK:
        for used in _RECORDERS:
            used[task] = runs_on
    return backend
