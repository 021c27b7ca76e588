"""The models Photo3D can download: one entry per network, with its files, licence, size and checksum.

The catalog is the model manager's single source (the CLI's ``python -m core models`` and the Blender
preferences list the same entries). Every default is under a licence that allows commercial use
(Apache-2.0 or MIT). A studio mirror or a test server replaces the download addresses with
``with_base_url`` (``$PHOTO3D_MODEL_MIRROR``); a JSON file with the same fields replaces the whole catalog
(``load_catalog``).

A file's checksum is pinned here when known; otherwise the download takes the SHA-256 the Hugging Face hub
publishes for every large file (its ``X-Linked-Etag`` header) and refuses a file for which neither exists.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

from ..errors import InputError
from ..safe_json import JSONRejected, read_json_file

HUB = "https://huggingface.co"
MIRROR_ENV = "PHOTO3D_MODEL_MIRROR"
"""A studio mirror (or a test server): every catalog file is fetched from ``$PHOTO3D_MODEL_MIRROR/<path>``."""
MAX_CATALOG_BYTES = 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ModelFile:
    """One file of a model: where it goes inside the models folder and where it comes from."""

    path: str
    """Relative path inside the models folder (``/``-separated, no ``..``)."""
    url: str
    size: int | None = None
    """Bytes, when known: checked after the download, and against the free disk space before it."""
    sha256: str | None = None
    """Lower-case hex digest, when pinned here (else the server's published one is required)."""


@dataclass(frozen=True)
class CatalogModel:
    """A downloadable network: what the preferences and ``models list`` show, and what it is made of."""

    key: str
    """Short stable name (``depth-small``), used by ``models download KEY``."""
    task: str
    """``depth``, ``segmentation`` or ``inpainting`` (``core.models.protocols.TASKS``)."""
    title: str
    licence: str
    source: str
    """The page that states the licence and where the files come from."""
    files: tuple[ModelFile, ...]
    option: str
    """The option value that selects it, relative to the models folder (a file or folder in it)."""
    default: bool = False
    """One of the networks a default import uses."""
    approx_mb: int | None = None
    """Rough size for display before the exact sizes are known (float32 weights x parameter count)."""

    @property
    def size(self) -> int | None:
        """Total bytes, or None when a file's size is not known."""
        sizes = [item.size for item in self.files]
        return None if any(size is None for size in sizes) else sum(sizes)  # type: ignore[misc]


def _hub_file(repo: str, remote: str, local: str, size: int | None) -> ModelFile:
    return ModelFile(path=local, url=f"{HUB}/{repo}/resolve/main/{remote}", size=size)


CATALOG: tuple[CatalogModel, ...] = (
    CatalogModel(
        key="depth-small",
        task="depth",
        title="Depth Anything V2 Small (ONNX)",
        licence="Apache-2.0",
        source=f"{HUB}/onnx-community/depth-anything-v2-small",
        files=(
            _hub_file(
                "onnx-community/depth-anything-v2-small",
                "onnx/model.onnx",
                "depth-anything-v2-small/model.onnx",
                None,
            ),
        ),
        option="depth-anything-v2-small/model.onnx",
        default=True,
        approx_mb=99,  # 24.8 M parameters
    ),
    CatalogModel(
        key="segment-slimsam",
        task="segmentation",
        title="SlimSAM-77 (ONNX encoder and decoder)",
        licence="Apache-2.0",
        source=f"{HUB}/Xenova/slimsam-77-uniform",
        files=(
            _hub_file("Xenova/slimsam-77-uniform", "onnx/vision_encoder.onnx", "slimsam-77/vision_encoder.onnx", None),
            _hub_file(
                "Xenova/slimsam-77-uniform",
                "onnx/prompt_encoder_mask_decoder.onnx",
                "slimsam-77/prompt_encoder_mask_decoder.onnx",
                None,
            ),
        ),
        option="slimsam-77/vision_encoder.onnx",
        default=True,
    ),
    CatalogModel(
        key="inpaint-lama",
        task="inpainting",
        title="LaMa 512 (ONNX)",
        licence="Apache-2.0",
        source=f"{HUB}/Carve/LaMa-ONNX",
        files=(_hub_file("Carve/LaMa-ONNX", "lama_fp32.onnx", "lama/lama_fp32.onnx", None),),
        option="lama/lama_fp32.onnx",
        default=False,  # the default inpainting (Telea) needs no network; LaMa is the "lama" choice
        approx_mb=205,  # big-lama, 51 M parameters
    ),
)
"""The networks the manager offers; the defaults are what a default import needs."""


def find_model(key: str, catalog: tuple[CatalogModel, ...] = CATALOG) -> CatalogModel:
    """The catalog entry ``key``; InputError listing the keys when there is none."""
    for model in catalog:
        if model.key == key:
            return model
    raise InputError(f"unknown model {key!r}: the catalog has {', '.join(m.key for m in catalog)}")


def with_base_url(catalog: tuple[CatalogModel, ...], base_url: str) -> tuple[CatalogModel, ...]:
    """The catalog with every file fetched from ``base_url/<path>`` instead (a mirror, a test server)."""
    base = base_url.rstrip("/")
    return tuple(
        replace(model, files=tuple(replace(item, url=f"{base}/{item.path}") for item in model.files))
        for model in catalog
    )


def active_catalog() -> tuple[CatalogModel, ...]:
    """The built-in catalog, its downloads sent to ``$PHOTO3D_MODEL_MIRROR`` when that is set."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if mirror and not mirror.startswith(("http://", "https://")):
        raise InputError(f"${MIRROR_ENV} must be an http(s) address, not {mirror!r}")
    return with_base_url(CATALOG, mirror) if mirror else CATALOG


def check_relative_path(path: str) -> str:
    """``path`` if it is a safe relative path inside the models folder; InputError otherwise."""
    parts = path.split("/")
    if not path or os.path.isabs(path) or "\\" in path or not all(_SAFE_PART.match(part) for part in parts):
        raise InputError(f"model file path {path!r} must be relative, '/'-separated, without '..' or odd names")
    return path


def _file_from(data: object, where: str) -> ModelFile:
    if not isinstance(data, dict):
        raise InputError(f"{where} must be an object")
    path, url = data.get("path"), data.get("url")
    if not isinstance(path, str) or not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InputError(f"{where} needs a 'path' and an http(s) 'url'")
    size, digest = data.get("size"), data.get("sha256")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise InputError(f"{where}.size must be a whole number of bytes")
    if digest is not None and (not isinstance(digest, str) or not _SHA256.match(digest.lower())):
        raise InputError(f"{where}.sha256 must be 64 hex digits")
    return ModelFile(check_relative_path(path), url, size, digest.lower() if digest else None)


def load_catalog(path: str) -> tuple[CatalogModel, ...]:
    """A catalog from a JSON file: ``{"models": [{key, task, title, licence, source, option, default,
    files: [{path, url, size, sha256}]}]}``; InputError naming the bad field."""
    try:
        data = read_json_file(path, MAX_CATALOG_BYTES)
    except (OSError, JSONRejected) as exc:
        raise InputError(f"model catalog {path} cannot be read: {exc}") from None
    entries = data.get("models") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise InputError(f"model catalog {path} has no 'models' list")
    models = []
    for number, entry in enumerate(entries):
        where = f"models[{number}]"
        if not isinstance(entry, dict):
            raise InputError(f"{where} must be an object")
        texts = {name: entry.get(name) for name in ("key", "task", "title", "licence", "source", "option")}
        bad = [name for name, value in texts.items() if not isinstance(value, str) or not value]
        if bad:
            raise InputError(f"{where} needs text fields: {', '.join(bad)}")
        files = entry.get("files")
        if not isinstance(files, list) or not files:
            raise InputError(f"{where}.files must be a non-empty list")
        models.append(
            CatalogModel(
                key=texts["key"],
                task=texts["task"],
                title=texts["title"],
                licence=texts["licence"],
                source=texts["source"],
                files=tuple(_file_from(item, f"{where}.files[{i}]") for i, item in enumerate(files)),
                option=texts["option"],
                default=bool(entry.get("default", False)),
                approx_mb=entry.get("approx_mb") if isinstance(entry.get("approx_mb"), int) else None,
            )
        )
    return tuple(models)
