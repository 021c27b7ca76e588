"""A warm cache of loaded models, so a worker loads each model once per process and keeps it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class ModelCache:
    """Process-wide cache of loaded models, so a worker loads each model once and keeps it warm."""

    def __init__(self) -> None:
        self._items: dict[Hashable, Any] = {}
        # Reentrant: a loader may itself use the cache (e.g. a processor and a model).
        self._lock = threading.RLock()

    def get(self, key: tuple, loader: Callable[[], T]) -> T:
        """The cached value for ``key``, calling ``loader`` once to create it."""
        with self._lock:
            if key not in self._items:
                self._items[key] = loader()
            return self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        # An empty cache is still a cache: ``cache or ModelCache()`` must keep the caller's object.
        return True

    def clear(self) -> None:
        """Drop every model (and free GPU memory they held)."""
        with self._lock:
            self._items.clear()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass


_SHARED_CACHE = ModelCache()


def shared_cache() -> ModelCache:
    """The one cache this process uses when a caller does not pass its own."""
    return _SHARED_CACHE
