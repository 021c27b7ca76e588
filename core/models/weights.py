"""Where model weights come from (explicit path, models folder, Hugging Face cache, download) and whether
a model folder is complete.

Weights never download unless the user allowed it (``offline=False``); missing weights fail fast with the
model id or file to get and the exact place to put it. A backend says what it needs as ``WeightsNeed``
values; ``locate`` finds each one (the stage loading it and the pre-flight use the same call).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..errors import ModelError
from ..safe_json import JSONRejected, read_json_file

# A Hugging Face repo id: "name" or "owner/name" with letters, digits, '-', '_' and '.'.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

BIG_LAMA_URL = "https://github.com/enesmsahin/simple-lama-inpainting/releases/download/v0.1.0/big-lama.pt"

MAX_INDEX_BYTES = 16 * 1024 * 1024
"""Largest sharded-weights index read (real ones are well under 1 MB)."""
_SAFETENSORS_INDEX = "model.safetensors.index.json"
_PICKLE_WEIGHTS = "pytorch_model.bin"
_PICKLE_INDEX = "pytorch_model.bin.index.json"


def _looks_like_path(model: str) -> bool:
    """True for things only a path can be; ``owner/name`` stays a hub id even though it contains '/'."""
    return (
        os.path.isabs(model)
        or model.startswith((".", "~"))
        or "\\" in model
        or model.count("/") > 1
        or not _HUB_ID.match(model)
    )


def is_hub_id(model: str) -> bool:
    """True when ``model`` reads as a Hugging Face id (``name`` or ``owner/name``) rather than a path."""
    model = (model or "").strip()
    return bool(model) and not _looks_like_path(model)


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


MANAGER_COMMAND = "python -m core models download"
"""The command that fetches a catalog model; Blender's wording names the preferences' button instead."""


def _catalog_hint(name: str) -> str | None:
    """How to get ``name`` when it is a file of a model the model manager offers, else None."""
    from .catalog import CATALOG  # the manager's catalog: plain data, no heavy imports

    wanted = name.strip().replace("\\", "/")
    for model in CATALOG:
        for item in model.files:
            if item.path == wanted:
                return f"get it with `{MANAGER_COMMAND} {model.key}` ({model.title}, {model.licence})"
    return None


def _inside_models_dir(name: str, models_dir: str | None) -> str | None:
    """``models_dir/name`` for a relative ``name`` (subfolders kept), or None."""
    name = name.strip()
    if not models_dir or os.path.isabs(os.path.expanduser(name)) or name.startswith("~"):
        return None
    return os.path.join(os.path.expanduser(models_dir), *name.replace("\\", "/").split("/"))


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
    inside = _inside_models_dir(name, models_dir)
    if inside is not None:
        searched.append(inside)  # a relative path the catalog uses (``lama/lama_fp32.onnx``), as given
    if models_dir:
        searched.append(os.path.join(os.path.expanduser(models_dir), base))
    searched.append(os.path.join(_torch_hub_checkpoints(), base))
    searched = list(dict.fromkeys(searched))
    for path in searched[1:]:
        if os.path.isfile(path):
            return os.path.abspath(path)

    where = inside or (os.path.join(os.path.expanduser(models_dir), base) if models_dir else f"MODELS_DIR/{base}")
    source = f" (from {BIG_LAMA_URL})" if base == "big-lama.pt" else ""
    hint = "" if models_dir else " and set the models folder to MODELS_DIR"
    catalog = _catalog_hint(name)
    if catalog is not None:
        raise ModelError(f"{name} is not in the models folder: {catalog}, which puts it at {where}{hint}")
    raise ModelError(
        f"weights file {base!r} not found. Searched: {', '.join(searched)}. "
        f"Download {base}{source} and put it at {where}{hint}"
    )


# --- is a model folder complete? ------------------------------------------------------------------------


def _missing_shards(folder: str, index_name: str) -> list[str] | str:
    """Shard files a sharded-weights index names that are not in ``folder``, or why the index is unusable."""
    try:
        index = read_json_file(os.path.join(folder, index_name), MAX_INDEX_BYTES)
    except (OSError, JSONRejected) as exc:
        return f"its {index_name} cannot be read ({exc})"
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        return f"its {index_name} lists no shards (no weight_map)"
    shards = sorted({str(name) for name in weight_map.values()})
    bad = [name for name in shards if os.path.basename(name) != name or name in ("", ".", "..")]
    if bad:
        return f"its {index_name} names shards outside the folder: {', '.join(bad[:3])}"
    return [name for name in shards if not os.path.isfile(os.path.join(folder, name))]


def _describe_missing(index_name: str, missing: list[str] | str) -> str:
    if isinstance(missing, str):
        return missing
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    return f"{len(missing)} weight shard(s) its {index_name} lists are missing: {shown}"


def _weights_problem(folder: str, entries: list[str], safetensors_only: bool) -> str | None:
    """Why the folder's weights are missing or unusable, or None (the order transformers looks them up)."""

    def present(name: str) -> bool:
        return os.path.isfile(os.path.join(folder, name))

    if present("model.safetensors"):
        return None
    if present(_SAFETENSORS_INDEX):
        missing = _missing_shards(folder, _SAFETENSORS_INDEX)
        return _describe_missing(_SAFETENSORS_INDEX, missing) if missing else None
    if any(name.endswith(".safetensors") and present(name) for name in entries):
        return None
    if present(_PICKLE_WEIGHTS) or present(_PICKLE_INDEX):
        if safetensors_only:
            return (
                f"it holds only {_PICKLE_WEIGHTS} weights, which are not loaded because pickle files can run "
                "code; get the model.safetensors version"
            )
        if present(_PICKLE_WEIGHTS):
            return None
        missing = _missing_shards(folder, _PICKLE_INDEX)
        return _describe_missing(_PICKLE_INDEX, missing) if missing else None
    return "it has no weights file (model.safetensors)"


def transformers_folder_problem(folder: str, safetensors_only: bool = True) -> str | None:
    """Why ``folder`` is not a complete transformers model folder, or None when it looks complete.

    Complete means ``config.json`` plus weights: a ``*.safetensors`` file, or a sharded index whose shards
    are all there; with ``safetensors_only`` False ``pytorch_model.bin`` (or its sharded index) counts too.
    Files are tested with ``isfile``, so a Hugging Face cache snapshot whose download stopped (a link to a
    blob that is not there) counts as missing. Nothing is parsed but a sharded index.
    """
    try:
        entries = sorted(os.listdir(folder))
    except OSError as exc:
        return f"it cannot be listed ({exc.strerror or exc})"
    if not entries:
        return "it is empty"
    problems = []
    if not os.path.isfile(os.path.join(folder, "config.json")):
        problems.append("it has no config.json")
    weights = _weights_problem(folder, entries, safetensors_only)
    if weights:
        problems.append(weights)
    return "; ".join(problems) if problems else None


# --- what a backend needs, found ------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightsNeed:
    """One set of weights a backend needs before it can run, as the pre-flight and the loader look it up."""

    what: str
    """How messages name it: ``depth model``, ``segmentation model``, ``segment-anything checkpoint``..."""
    name: str
    """The option value: a hub id or folder, a file name or a path."""
    kind: str
    """``transformers`` (a hub id or model folder: config.json plus weights), ``file`` (one weights file,
    looked up in the models folder and the torch hub cache) or ``checkpoint`` (a file at exactly this path)."""
    safetensors_only: bool = True
    """For ``transformers``: only safetensors weights count (pickle weights can run code and are refused)."""


NEED_KINDS = ("transformers", "file", "checkpoint")


def _refill_hint(model: str, source: str, models_dir: str | None) -> str:
    """How to complete the folder ``source`` that ``model`` resolved to."""
    model = model.strip()
    if os.path.isdir(os.path.expanduser(model)) or not is_hub_id(model):
        return "put the model's config.json and model.safetensors there"
    if source in (os.path.abspath(path) for path in model_dir_candidates(model, models_dir)):
        return f"get it with `hf download {model} --local-dir {source}`"
    return f"the Hugging Face cache holds part of it: get it again with `hf download {model}`"


def locate(need: WeightsNeed, models_dir: str | None, offline: bool) -> str:
    """The local folder or file for ``need`` (or, online, the hub id to download); ``ModelError`` if it is
    missing or incomplete, saying what to get and where to put it."""
    if need.kind == "transformers":
        source = resolve_model_source(need.name, models_dir, offline, need.what)
        if os.path.isdir(source):
            problem = transformers_folder_problem(source, need.safetensors_only)
            if problem:
                hint = _refill_hint(need.name, source, models_dir)
                raise ModelError(f"{need.what} folder {source} is incomplete: {problem}; {hint}")
        return source
    if need.kind == "file":
        return resolve_weights_file(need.name, models_dir)
    if need.kind == "checkpoint":
        path = os.path.expanduser(need.name.strip())
        if os.path.isfile(path):
            return path
        inside = _inside_models_dir(need.name, models_dir)
        if inside is not None and os.path.isfile(inside):
            return os.path.abspath(inside)
        where = f"; put it at {inside}" if inside is not None else ""
        catalog = _catalog_hint(need.name)
        if catalog is not None and inside is not None:
            raise ModelError(
                f"{need.what} {need.name} is not in the models folder: {catalog}, which puts it at {inside}"
            )
        raise ModelError(f"{need.what} not found: {need.name}{where}")
    raise ValueError(f"unknown weights kind {need.kind!r}: use one of {', '.join(NEED_KINDS)}")
