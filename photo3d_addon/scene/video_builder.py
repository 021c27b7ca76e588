"""Build the Blender scene for a layered video package: the footage plays in its layers.

Per shot and layer: one mesh with the shot's stable topology, moved frame by frame by a Mesh Cache modifier
reading the package's PC2 point cache, and an unlit material whose texture is the layer's image sequence.
A shot's objects are shown only over its frames. The camera is the footage's, as a still's is, so camera
paths, effects, rendering and the comp exports work on the result as on a photo.

The caches hold camera-space positions; each layer object sits at its own origin on the view axis (Eevee
sorts blended surfaces by origin, see ``core.placement``), and a Geometry Nodes modifier after the cache
moves the points back by that origin.
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from ...core.camera import STAGE_EULER
from ...core.video.package import VideoPackage
from .builder import _mesh_from_arrays, remove_photo_collection
from .materials import photo_material
from .photo_scene import DEPTH_RANGE_KEY, FORMAT_KEY, LAYER_KEY, NAME_KEY, PACKAGE_KEY, RESOLUTION_KEY, SOURCE_KEY
from .placement import camera_settings

SHOT_KEY = "photo3d_shot"
OFFSET_GROUP = "Photo3D Cache Offset"


def _offset_group() -> bpy.types.NodeTree:
    """Geometry Nodes that translate the geometry by an ``Offset`` input (one group, shared)."""
    group = bpy.data.node_groups.get(OFFSET_GROUP)
    if group is not None:
        return group
    group = bpy.data.node_groups.new(OFFSET_GROUP, "GeometryNodeTree")
    group.interface.new_socket(name="Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    group.interface.new_socket(name="Offset", in_out="INPUT", socket_type="NodeSocketVector")
    group.interface.new_socket(name="Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    nodes, links = group.nodes, group.links
    given, result = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    move = nodes.new("GeometryNodeTransform")
    links.new(given.outputs["Geometry"], move.inputs["Geometry"])
    links.new(given.outputs["Offset"], move.inputs["Translation"])
    links.new(move.outputs["Geometry"], result.inputs["Geometry"])
    return group


def _origins(depths: list[float]) -> list[float]:
    """Origin depths on the view axis, strictly nearer for each nearer layer (as ``core.placement``)."""
    out, previous = [], float("inf")
    for depth in depths:
        depth = min(depth, previous * (1.0 - 1e-4))
        out.append(depth)
        previous = depth
    return out


def _sequence_image(path: Path, name: str) -> bpy.types.Image:
    image = bpy.data.images.load(str(path), check_existing=False)
    image.name = name
    image.source = "SEQUENCE"
    image.alpha_mode = "STRAIGHT"
    image.colorspace_settings.name = "sRGB"
    return image


def _show_only_during(obj: bpy.types.Object, first: int, last: int, scene: bpy.types.Scene) -> None:
    """Keyframe the object hidden outside scene frames ``first``..``last`` (constant steps)."""
    keys = [(first - 1, True), (first, False), (last + 1, True)]
    for frame, hidden in keys:
        if frame < scene.frame_start - 1:
            continue
        for attribute in ("hide_render", "hide_viewport"):
            setattr(obj, attribute, hidden)
            obj.keyframe_insert(attribute, frame=frame)
    if obj.animation_data and obj.animation_data.action:
        for curve in _fcurves(obj.animation_data.action):
            for point in curve.keyframe_points:
                point.interpolation = "CONSTANT"


def _fcurves(action: bpy.types.Action):
    """The action's F-curves (Blender 4.4+ keeps them in layered channelbags)."""
    if hasattr(action, "fcurves") and len(action.fcurves):
        return list(action.fcurves)
    curves = []
    for layer in getattr(action, "layers", []):
        for strip in layer.strips:
            for bag in getattr(strip, "channelbags", []):
                curves.extend(bag.fcurves)
    return curves


def build_video_scene(package: VideoPackage, scene: bpy.types.Scene, frame_start: int = 1) -> bpy.types.Collection:
    """Add ``package`` to ``scene`` as one collection playing from scene frame ``frame_start``; sets the scene's
    camera, frame range, frame rate and render size. Nothing is left behind when it fails."""
    manifest = package.manifest
    stem = Path(manifest.source.path).stem or "footage"
    depths = [d for shot in manifest.shots for layer in shot.layers for d in layer.depth_range]
    collection = bpy.data.collections.new(f"Photo3D {stem}")
    scene.collection.children.link(collection)
    try:
        root = bpy.data.objects.new(f"Photo3D {stem}", None)
        root.rotation_euler = STAGE_EULER
        collection.objects.link(root)
        settings = camera_settings(manifest.camera, min(depths), max(depths))
        data = bpy.data.cameras.new(f"{stem} camera")
        data.sensor_fit, data.sensor_width, data.sensor_height = (
            settings.sensor_fit, settings.sensor_width, settings.sensor_height,
        )  # fmt: skip
        data.lens, data.shift_x, data.shift_y = settings.lens, settings.shift_x, settings.shift_y
        data.clip_start, data.clip_end = settings.clip_start, settings.clip_end
        camera = bpy.data.objects.new(f"{stem} camera", data)
        camera[RESOLUTION_KEY] = [settings.resolution_x, settings.resolution_y]
        collection.objects.link(camera)
        camera.parent = root
        group = _offset_group()
        several = len(manifest.shots) > 1
        for shot in manifest.shots:
            medians = [float(layer.median_depth or layer.depth_range[0]) for layer in shot.layers]
            for layer, depth in zip(shot.layers, _origins(medians), strict=True):
                label = f"{stem} s{shot.index:03d} {layer.name}"
                arrays = package.load_mesh(shot.index, layer.index)
                origin = np.array([0.0, 0.0, -depth], np.float32)
                mesh = _mesh_from_arrays(label, arrays["vertices"] - origin, arrays["uvs"], arrays["faces"])
                image = _sequence_image(package.texture_path(shot.index, layer.index, shot.first), label)
                material = photo_material(f"Photo3D {label}", image, opaque=layer.index == 0)
                node = next(n for n in material.node_tree.nodes if n.type == "TEX_IMAGE")
                user = node.image_user
                user.frame_duration = shot.last - shot.first + 1
                user.frame_start = frame_start + shot.first
                user.frame_offset = shot.first - 1  # files are numbered by package frame
                user.use_auto_refresh = True
                mesh.materials.append(material)
                obj = bpy.data.objects.new(label, mesh)
                obj.visible_shadow = False
                obj.location = origin
                cache = obj.modifiers.new("Photo3D points", "MESH_CACHE")
                cache.cache_format = "PC2"
                cache.filepath = str(package.points_path(shot.index, layer.index))
                cache.time_mode = "FRAME"
                cache.play_mode = "SCENE"
                cache.frame_start = float(frame_start + shot.first)
                cache.interpolation = "NONE"
                offset = obj.modifiers.new("Photo3D origin", "NODES")
                offset.node_group = group
                offset[group.interface.items_tree["Offset"].identifier] = [float(v) for v in -origin]
                obj[NAME_KEY] = label
                obj[LAYER_KEY] = layer.index
                obj[SHOT_KEY] = shot.index
                obj[DEPTH_RANGE_KEY] = list(layer.depth_range)
                collection.objects.link(obj)
                obj.parent = root
                if several:
                    _show_only_during(obj, frame_start + shot.first, frame_start + shot.last, scene)
        collection[SOURCE_KEY] = manifest.source.path
        collection[PACKAGE_KEY] = str(package.root)
        collection[FORMAT_KEY] = f"{manifest.format} {manifest.version}"
    except Exception:
        remove_photo_collection(collection)
        raise
    scene.camera = camera
    scene.frame_start, scene.frame_end = frame_start, frame_start + len(manifest.frames) - 1
    fps = float(manifest.source.fps)
    scene.render.fps = max(1, round(fps))
    scene.render.fps_base = scene.render.fps / fps if fps > 0 else 1.0
    scene.render.resolution_x, scene.render.resolution_y = camera[RESOLUTION_KEY]
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    return collection
