"""An imported photo as one object: its collection, root, camera, layers, package and every custom property
key the add-on writes on them, in one place.

The import builds a collection (``Photo3D <stem>``) holding an empty (the root, which stands the camera space
up), the photo's camera and one object per layer; everything the add-on needs later is found from that
collection through ``PhotoScene``. The package is read through ``core.package`` (every file it opens is
checked to lie inside it), and what the sidebar shows is computed once per package and settings, not on
every redraw.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import bpy
import numpy as np

from ...core.errors import PackageError
from ...core.package import LayerPackage, Manifest, read_package
from ..motion.paths import SceneInfo

T = TypeVar("T")

# -- custom properties: on the collection ---------------------------------------------------------------------
SOURCE_KEY = "photo3d_source"
"""The photo's path as the package names it; marks a collection as an imported photo."""
PACKAGE_KEY = "photo3d_package"
"""The package folder the import came from."""
REPRESENTATION_KEY = "photo3d_representation"
FORMAT_KEY = "photo3d_format"
MODELS_KEY = "photo3d_models"
TIMINGS_KEY = "photo3d_timings"
OPTIONS_KEY = "photo3d_options"
"""The pipeline options as JSON (ID properties cannot hold the options' nulls)."""
EFFECTS_KEY = "photo3d_effects"
"""The effects applied, as a list of dicts (what ``apply_effects`` was given)."""
# -- on layer objects -----------------------------------------------------------------------------------------
LAYER_KEY = "photo3d_layer"
"""The layer's index in the package, 0 = backmost."""
NAME_KEY = "photo3d_name"
PLANE_DEPTH_KEY = "photo3d_plane_depth"
DEPTH_RANGE_KEY = "photo3d_depth_range"
# -- on effect objects ----------------------------------------------------------------------------------------
EFFECT_KEY = "photo3d_effect"
"""An effect object's kind (RAIN, SNOW, DUST, HALOS)."""
# -- on materials and the scene ------------------------------------------------------------------------------
UNLIT_KEY = "photo3d_unlit"
"""On Photo3D's own materials (layers, effect sprites): unlit, so the render may drop shadows (``render``)."""
LEAN_SAVED_KEY = "photo3d_lean_saved"
"""On the scene: the shadow and world-probe settings the lean render settings replaced, to put back."""
# -- on the camera object -------------------------------------------------------------------------------------
RESOLUTION_KEY = "photo3d_resolution"
PATH_KEY = "photo3d_path"
"""The preset of the path its keys came from (absent: no path)."""
FRAMES_KEY = "photo3d_path_frames"
"""[first, last] frame of the path's playback range."""
BASE_LENS_KEY = "photo3d_base_lens"
"""The lens before any path, so a path's zoom is always relative to the photo's."""

NO_PHOTO = "No Photo3D scene here: import a photo first (File > Import > Image to 3D Layers)"

_CACHE_SIZE = 64
_cache: dict[Hashable, Any] = {}


class NotAPhoto(ValueError):
    """The collection is not an imported photo, or its package cannot be read; the message says which."""


class PhotoScene:
    """One imported photo in a Blender file, found from its collection."""

    def __init__(self, collection: bpy.types.Collection) -> None:
        if collection is None or SOURCE_KEY not in collection:
            name = getattr(collection, "name", None)
            raise NotAPhoto(f"collection {name!r} is not a Photo3D import")
        self.collection = collection

    # -- finding -----------------------------------------------------------------------------------------------
    @classmethod
    def active(cls, context: bpy.types.Context) -> PhotoScene | None:
        """The imported photo the user is working on: the active object's, else the scene camera's, else the
        last one imported into the scene."""
        for obj in (context.active_object, context.scene.camera):
            if obj is None:
                continue
            for collection in obj.users_collection:
                if SOURCE_KEY in collection:
                    return cls(collection)
        photos = [c for c in context.scene.collection.children_recursive if SOURCE_KEY in c]
        return cls(photos[-1]) if photos else None

    @classmethod
    def find(cls, scene: bpy.types.Scene, source_path: str) -> PhotoScene | None:
        """The earlier import of ``source_path`` in ``scene``, if any."""
        for collection in scene.collection.children_recursive:
            if collection.get(SOURCE_KEY) == source_path:
                return cls(collection)
        return None

    @classmethod
    def of_object(cls, obj: bpy.types.Object) -> PhotoScene | None:
        """The imported photo an object (layer, camera, effect) belongs to."""
        for collection in obj.users_collection:
            if SOURCE_KEY in collection:
                return cls(collection)
        return None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PhotoScene) and other.collection == self.collection

    def __hash__(self) -> int:
        return hash(self.collection.as_pointer())

    # -- the objects -------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.collection.name

    @property
    def source_path(self) -> str:
        return str(self.collection[SOURCE_KEY])

    @property
    def camera(self) -> bpy.types.Object | None:
        """The photo's camera object (the one camera in the collection)."""
        return next((obj for obj in self.collection.objects if obj.type == "CAMERA"), None)

    @property
    def root(self) -> bpy.types.Object | None:
        """The empty every object of the import is parented to; it stands the camera space up."""
        camera = self.camera
        if camera is not None and camera.parent is not None:
            return camera.parent
        return next((obj for obj in self.collection.objects if obj.type == "EMPTY"), None)

    @property
    def layers(self) -> list[bpy.types.Object]:
        """The layer objects, back to front (by package index)."""
        return sorted((o for o in self.collection.objects if LAYER_KEY in o), key=lambda o: int(o[LAYER_KEY]))

    def layer(self, index: int) -> bpy.types.Object | None:
        return next((o for o in self.layers if int(o[LAYER_KEY]) == int(index)), None)

    @property
    def effect_objects(self) -> list[bpy.types.Object]:
        return [obj for obj in self.collection.objects if EFFECT_KEY in obj]

    def layer_materials(self) -> list[bpy.types.Material]:
        materials: list[bpy.types.Material] = []
        for obj in self.layers:
            if obj.data is not None:
                materials += [m for m in obj.data.materials if m is not None and m not in materials]
        return materials

    @property
    def scene(self) -> bpy.types.Scene:
        """The scene showing the import (the fog reads its frame rate), else the current one."""
        for scene in bpy.data.scenes:
            if self.collection in scene.collection.children_recursive:
                return scene
        return bpy.context.scene

    # -- the package -------------------------------------------------------------------------------------------
    @property
    def package_root(self) -> Path:
        package = self.collection.get(PACKAGE_KEY)
        if not package:
            raise NotAPhoto(f"collection {self.name!r} is not a Photo3D import (no {PACKAGE_KEY})")
        return Path(str(package))

    def _stamp(self) -> tuple[str, float]:
        """The package and its manifest's modification time: what every cached value depends on."""
        root = self.package_root
        try:
            return str(root), (root / "manifest.json").stat().st_mtime
        except OSError:
            return str(root), -1.0

    def package(self) -> LayerPackage:
        """The package, read and checked once per change of its manifest."""
        return self.cached("package", self._read_package)

    def _read_package(self) -> LayerPackage:
        try:
            # Textures and meshes are already in Blender: check the manifest and the files' kinds only.
            return read_package(self.package_root, check_meshes=False, check_data=False)
        except PackageError as exc:
            raise NotAPhoto(f"the package of {self.name!r} cannot be read: {exc}") from None

    @property
    def manifest(self) -> Manifest:
        return self.package().manifest

    def depth_map(self) -> np.ndarray:
        """The harmonized depth map (working resolution), checked."""
        try:
            return self.cached("depth_map", lambda: self.package().load_depth_map())
        except PackageError as exc:
            raise NotAPhoto(f"the package's depth map cannot be read: {exc}") from None

    def scene_info(self, pivot_depth: float | None = None) -> SceneInfo:
        """The camera, depth range and inpainted band a camera path or an effect needs.

        The border depth (for overscan) is the nearest content anywhere along the photo's border: a move that
        backs away shrinks near content most, and its edge must stay outside the view too. A backdrop that
        reaches past the photo (format 1.1 ``border``) is filled behind every nearer layer, so then only its
        own nearest depth counts.
        """
        return replace(self.cached("scene_info", self._scene_info), pivot_depth=pivot_depth)

    def _scene_info(self) -> SceneInfo:
        info = SceneInfo.from_manifest(self.manifest)
        if info.border_px > 0:
            return info
        try:
            border = _border_depth(self.depth_map())
        except NotAPhoto:
            border = None  # no usable depth map: overscan falls back to the layers' depth range
        if border is not None:
            info = replace(info, border_depth=min(border, info.border_depth or border))
        return info

    def cached(self, what: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, remembered for this package until its manifest changes (redraws stay cheap)."""
        key = (self._stamp(), what)
        if key not in _cache:
            if len(_cache) >= _CACHE_SIZE:
                _cache.pop(next(iter(_cache)))
            _cache[key] = compute()
        return _cache[key]


def _border_depth(depth: np.ndarray) -> float | None:
    """The nearest depth along the photo's border (1st percentile, so one stray pixel does not count)."""
    edge = np.concatenate([depth[0], depth[-1], depth[:, 0], depth[:, -1]]).astype(np.float64)
    edge = edge[np.isfinite(edge) & (edge > 0)]
    return float(np.percentile(edge, 1)) if edge.size else None
