"""Build the Blender scene for one layer package: a collection, a parent empty, the layers and the camera.

Everything here takes a validated ``LayerPackage`` and returns Blender data; it never talks to the worker.
A new import is built completely before the previous import of the same photo is removed, so a failure
leaves the scene as it was.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from ...core.camera import STAGE_EULER
from ...core.package import LayerPackage
from ...core.package.manifest import LayerInfo
from ...core.placement import layer_origins
from .materials import photo_material
from .photo_scene import (
    DEPTH_RANGE_KEY,
    FORMAT_KEY,
    LAYER_KEY,
    MODELS_KEY,
    NAME_KEY,
    OPTIONS_KEY,
    PACKAGE_KEY,
    PLANE_DEPTH_KEY,
    REPRESENTATION_KEY,
    RESOLUTION_KEY,
    SOURCE_KEY,
    TIMINGS_KEY,
    PhotoScene,
)
from .placement import EXIF_DISPLAY, camera_settings


@dataclass
class BuildSettings:
    set_active_camera: bool = True
    """Make the photo's camera the scene camera."""
    set_render_size: bool = True
    """Set the render resolution to the photo's size."""
    set_color_management: bool = True
    """Use the Standard view transform so renders show the photo's own colours (AgX/Filmic would not)."""
    photo: str | None = None
    """The photo the user imported. The camera shows it as its background only when it is the package's
    source: a package names its source by path, and Blender must never load a file a package merely names."""


def remove_photo_collection(collection: bpy.types.Collection) -> None:
    """Remove an imported photo's collection with the objects, meshes, materials and images only it used."""
    datablocks: list[Any] = []
    for obj in list(collection.all_objects):
        if obj.data is not None:
            datablocks.append(obj.data)
            if isinstance(obj.data, bpy.types.Mesh):
                for material in obj.data.materials:
                    if material is not None:
                        datablocks.append(material)
                        datablocks.extend(
                            node.image
                            for node in material.node_tree.nodes
                            if node.type == "TEX_IMAGE" and node.image is not None
                        )
            elif isinstance(obj.data, bpy.types.Camera):
                datablocks.extend(bg.image for bg in obj.data.background_images if bg.image is not None)
        bpy.data.objects.remove(obj)
    for child in list(collection.children_recursive):
        bpy.data.collections.remove(child)
    bpy.data.collections.remove(collection)
    # Materials before images: an image is free only once the materials that used it are gone.
    for kind in (bpy.types.Mesh, bpy.types.Camera, bpy.types.Material, bpy.types.Image):
        for block in datablocks:
            if isinstance(block, kind) and block.users == 0:
                _data_collection(block).remove(block)


def _data_collection(block: Any) -> Any:
    if isinstance(block, bpy.types.Mesh):
        return bpy.data.meshes
    if isinstance(block, bpy.types.Camera):
        return bpy.data.cameras
    if isinstance(block, bpy.types.Material):
        return bpy.data.materials
    return bpy.data.images


def _load_image(path: Path, name: str) -> bpy.types.Image:
    image = bpy.data.images.load(str(path), check_existing=False)
    image.name = name
    image.alpha_mode = "STRAIGHT"
    image.colorspace_settings.name = "sRGB"
    return image


def _mesh_from_arrays(name: str, vertices: np.ndarray, uvs: np.ndarray, faces: np.ndarray) -> bpy.types.Mesh:
    """A triangle mesh with per-corner UVs, filled through foreach_set (from_pydata is slow on 10K faces)."""
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", vertices.astype(np.float32).ravel())
    mesh.loops.add(faces.size)
    mesh.loops.foreach_set("vertex_index", faces.astype(np.int32).ravel())
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    uv_layer = mesh.uv_layers.new(name="UVMap")
    uv_layer.data.foreach_set("uv", uvs[faces.ravel()].astype(np.float32).ravel())
    mesh.update()
    if mesh.validate(verbose=False):
        raise ValueError(f"mesh {name!r} from the package had invalid geometry")
    return mesh


def _layer_object(
    package: LayerPackage, layer: LayerInfo, stem: str, opaque: bool, origin: tuple[float, float, float]
) -> bpy.types.Object:
    label = f"{stem} {layer.name}"
    if layer.plane_depth is not None:
        corners = np.asarray(package.manifest.camera.frustum_corners(layer.plane_depth), np.float32)
        vertices = corners
        uvs = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float32)
        faces = np.array([[0, 3, 2], [0, 2, 1]], np.int32)
    else:
        arrays = package.load_mesh(layer)
        vertices, uvs, faces = arrays["vertices"], arrays["uvs"], arrays["faces"]
    mesh = _mesh_from_arrays(label, vertices - np.asarray(origin, np.float32), uvs, faces)
    image = _load_image(package.path_of(layer.texture), label)
    mesh.materials.append(photo_material(f"Photo3D {label}", image, opaque=opaque))
    obj = bpy.data.objects.new(label, mesh)
    obj.visible_shadow = False  # a cut-out of the photo already carries its shadows
    obj[NAME_KEY] = label
    obj[LAYER_KEY] = layer.index
    if layer.plane_depth is not None:
        obj[PLANE_DEPTH_KEY] = layer.plane_depth
    else:
        obj[DEPTH_RANGE_KEY] = list(layer.depth_range)
    obj.location = origin
    return obj


def _same_file(photo: str, source: str) -> bool:
    try:
        return Path(photo).resolve() == Path(source).resolve() and Path(photo).is_file()
    except (OSError, RuntimeError, ValueError):
        return False


def _camera_object(package: LayerPackage, stem: str, photo: str | None) -> bpy.types.Object:
    manifest = package.manifest
    settings = camera_settings(manifest.camera, manifest.depth.min, manifest.depth.max)
    data = bpy.data.cameras.new(f"{stem} camera")
    data.sensor_fit = settings.sensor_fit
    data.sensor_width = settings.sensor_width
    data.sensor_height = settings.sensor_height
    data.lens = settings.lens
    data.shift_x = settings.shift_x
    data.shift_y = settings.shift_y
    data.clip_start = settings.clip_start
    data.clip_end = settings.clip_end
    if photo is not None and _same_file(photo, manifest.source.path):
        _add_reference_image(data, photo, manifest.source.orientation)
    obj = bpy.data.objects.new(f"{stem} camera", data)
    obj[RESOLUTION_KEY] = [settings.resolution_x, settings.resolution_y]
    return obj


def _add_reference_image(camera: bpy.types.Camera, photo: str, orientation: int) -> None:
    """Show the original photo behind the scene in the camera view, turned upright as its EXIF says."""
    try:
        image = bpy.data.images.load(photo, check_existing=True)
    except RuntimeError:
        return  # a format Blender cannot read; the reference is a convenience, the layers carry the photo
    background = camera.background_images.new()
    background.image = image
    background.alpha = 0.5
    background.frame_method = "FIT"
    rotation, flip_x, flip_y = EXIF_DISPLAY.get(orientation, (0.0, False, False))
    background.rotation = math.radians(rotation)
    background.use_flip_x = flip_x
    background.use_flip_y = flip_y
    camera.show_background_images = True


def _set_properties(collection: bpy.types.Collection, package: LayerPackage) -> None:
    manifest = package.manifest
    collection[SOURCE_KEY] = manifest.source.path
    collection[PACKAGE_KEY] = str(package.root)
    collection[REPRESENTATION_KEY] = manifest.representation
    collection[FORMAT_KEY] = f"{manifest.format} {manifest.version}"
    collection[MODELS_KEY] = dict(manifest.models)
    collection[TIMINGS_KEY] = dict(manifest.timings)
    # Options hold nulls, which ID properties cannot store: keep them as the JSON the worker received.
    collection[OPTIONS_KEY] = json.dumps(manifest.options, sort_keys=True)


def _intended_names(collection: bpy.types.Collection, stem: str) -> list[tuple[Any, str]]:
    """Each block of a new import with the name it would have had alone in the file."""
    names: list[tuple[Any, str]] = [(collection, f"Photo3D {stem}")]
    for obj in collection.objects:
        if obj.type == "EMPTY":
            names.append((obj, f"Photo3D {stem}"))
        elif obj.type == "CAMERA":
            names += [(obj, f"{stem} camera"), (obj.data, f"{stem} camera")]
        else:
            layer = next(entry for entry in obj.data.materials[0].node_tree.nodes if entry.type == "TEX_IMAGE")
            label = obj.get(NAME_KEY, obj.name)
            names += [
                (obj, label),
                (obj.data, label),
                (layer.image, label),
                (obj.data.materials[0], f"Photo3D {label}"),
            ]
    return names


def build_scene(package: LayerPackage, scene: bpy.types.Scene, settings: BuildSettings | None = None) -> PhotoScene:
    """Add ``package`` to ``scene`` as one collection, replacing an earlier import of the same photo."""
    settings = settings or BuildSettings()
    manifest = package.manifest
    source_path = manifest.source.path
    stem = Path(source_path).stem or "photo"
    previous = PhotoScene.find(scene, source_path)

    collection = bpy.data.collections.new(f"Photo3D {stem}")
    scene.collection.children.link(collection)
    try:
        root = bpy.data.objects.new(f"Photo3D {stem}", None)
        root.empty_display_type = "PLAIN_AXES"
        root.empty_display_size = 0.25 * manifest.depth.min
        root.rotation_euler = STAGE_EULER
        collection.objects.link(root)
        camera = _camera_object(package, stem, settings.photo)
        collection.objects.link(camera)
        camera.parent = root
        layers = package.layers
        # Only a mesh package's backmost layer is opaque everywhere; MPI planes all have holes.
        backdrop = package.representation == "mesh"
        for position, (layer, origin) in enumerate(zip(layers, layer_origins(layers), strict=True)):
            obj = _layer_object(package, layer, stem, opaque=backdrop and position == 0, origin=origin)
            collection.objects.link(obj)
            obj.parent = root
        _set_properties(collection, package)
    except Exception:
        remove_photo_collection(collection)
        raise
    if previous is not None:
        # Built beside the old import, the new blocks got ".001" names; take the plain names back.
        intended = _intended_names(collection, stem)
        remove_photo_collection(previous.collection)
        for block, name in intended:
            block.name = name

    if settings.set_active_camera:
        scene.camera = camera
    if settings.set_render_size:
        scene.render.resolution_x, scene.render.resolution_y = camera[RESOLUTION_KEY]
        scene.render.resolution_percentage = 100
        scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    if settings.set_color_management:
        scene.view_settings.view_transform = "Standard"
        scene.view_settings.look = "None"
        scene.view_settings.exposure = 0.0
        scene.view_settings.gamma = 1.0
    return PhotoScene(collection)
