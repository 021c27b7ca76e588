"""Where model weights come from (explicit path, models folder, Hugging Face cache, download) and a warm cache.

Weights never download unless the user allowed it (``offline=False``); missing weights fail fast with the
model id or file to get and the exact place to put it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from .errors import InputError, ModelError

T = TypeVar("T")

# A Hugging Face repo id: "name" or "owner/name" with letters, digits, '-', '_' and '.'.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

BIG_LAMA_URL = "https://github.com/enesmsahin/simple-lama-inpainting/releases/download/v0.1.0/big-lama.pt"


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; an explicit ``cuda`` without CUDA is an error."""
    import torch  # lazy: importing core must not need torch

    name = (name or "auto").strip().lower()
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


def _looks_like_path(model: str) -> bool:
    """True for things only a path can be; ``owner/name`` stays a hub id even though it contains '/'."""
    return (
        os.path.isabs(model)
        or model.startswith((".", "~"))
        or "\\" in model
        or model.count("/") > 1
        or not _HUB_ID.match(model)
    )


def dashed_name(model: str) -> str:
    """Folder name for a hub id inside the models folder: ``owner/name`` -> ``owner--name``."""
    return model.replace("/", "--")


def model_dir_candidates(model: str, models_dir: str | None) -> list[str]:
    """Folders inside ``models_dir`` that may hold ``model``, in lookup order."""
    if not models_dir:
        return []
    root = os.path.expanduser(models_dir)
    names = [dashed_name(model), model.rsplit("/", 1)[-1], model]
    candidates: list[str] = []
    for name in names:
        path = os.path.join(root, *name.split("/"))
        if path not in candidates:
            candidates.append(path)
    return candidates


def _from_hf_cache(model: str) -> str | None:
    """The cached snapshot folder of a hub id, or None; never touches the network."""
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(model, local_files_only=True)
    except Exception:  # not cached, hub library missing or a broken cache: all mean "not here"
        return None
    return path if path and os.path.isdir(path) else None


def resolve_model_source(model: str, models_dir: str | None, offline: bool, what: str) -> str:
    """A local folder holding ``model``, or (only when ``offline`` is False) the hub id to download.

    Order: an existing folder given explicitly; ``models_dir/owner--name``, ``models_dir/name``,
    ``models_dir/owner/name``; the Hugging Face cache; the id itself when downloads are allowed.
    """
    model = (model or "").strip()
    if not model:
        raise ModelError(f"no {what} given")
    explicit = os.path.expanduser(model)
    if os.path.isdir(explicit):
        return os.path.abspath(explicit)
    if os.path.isfile(explicit):
        raise ModelError(
            f"{what} {model!r} is a file, but a model folder is expected (the folder with config.json and the weights)"
        )
    if _looks_like_path(model):
        raise ModelError(f"{what} folder not found: {model}")

    candidates = model_dir_candidates(model, models_dir)
    for path in candidates:
        if os.path.isdir(path):
            return os.path.abspath(path)
    cached = _from_hf_cache(model)
    if cached is not None:
        return cached
    if not offline:
        return model

    target_root = os.path.expanduser(models_dir) if models_dir else "MODELS_DIR"
    target = os.path.join(target_root, dashed_name(model))
    searched = ", ".join(candidates) if candidates else "no models folder set"
    hint = "" if models_dir else f" and set the models folder to {target_root}"
    raise ModelError(
        f"{what} {model!r} is not available offline. Searched: {searched}; the Hugging Face cache. "
        f"Download it with `hf download {model} --local-dir {target}`{hint}, "
        "or pass --online to allow downloading it"
    )


def _torch_hub_checkpoints() -> str:
    """Where torch.hub (and simple-lama-inpainting) caches checkpoints, computed without importing torch."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch"
    )
    return os.path.join(torch_home, "hub", "checkpoints")


def resolve_weights_file(name: str, models_dir: str | None) -> str:
    """Path of a single-file checkpoint (e.g. ``big-lama.pt``): explicit file, ``models_dir/name``, torch hub.

    The torch hub checkpoints folder is searched too because simple-lama-inpainting caches big-lama there.
    """
    name = (name or "").strip()
    if not name:
        raise ModelError("no weights file given")
    explicit = os.path.expanduser(name)
    if os.path.isfile(explicit):
        return os.path.abspath(explicit)
    if os.path.isdir(explicit):
        raise ModelError(f"weights file {name!r} is a folder; give the path of the file itself")

    base = os.path.basename(explicit)
    searched = [explicit]
    if models_dir:
        searched.append(os.path.join(os.path.expanduser(models_dir), base))
    searched.append(os.path.join(_torch_hub_checkpoints(), base))
    for path in searched[1:]:
        if os.path.isfile(path):
            return os.path.abspath(path)

    where = os.path.join(os.path.expanduser(models_dir), base) if models_dir else f"MODELS_DIR/{base}"
    source = f" (from {BIG_LAMA_URL})" if base == "big-lama.pt" else ""
    hint = "" if models_dir else " and set the models folder to MODELS_DIR"
    raise ModelError(
        f"weights file {base!r} not found. Searched: {', '.join(searched)}. "
        f"Download {base}{source} and put it at {where}{hint}"
    )


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
