"""Weather and particle effects in an imported photo's scene: rain, snow, fog, dust and halos.

Each particle effect is one object in the photo's collection, parented to its root like the layers: a
point per particle, moved by the shared ``Photo3D Particles`` geometry-nodes group and drawn as soft,
camera-facing sprites. Fog is a shader group mixed into every layer's (and particle's) colour by its
distance from the camera. Applying effects replaces the effects applied before; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Iterable

import bpy
import numpy as np

from ..scene.photo_scene import EFFECT_KEY, EFFECTS_KEY, PhotoScene
from .nodes import fog_group, insert_fog, particles_group, remove_fog, set_particle_inputs, sprite_material
from .params import EFFECTS, EffectSettings, Frustum, fog_layout, particle_layout, validate


def _fog_group_name(collection: bpy.types.Collection) -> str:
    return f"Photo3D Fog {collection.name}"


def remove_effects(photo: PhotoScene) -> None:
    """Take every effect out of an imported photo: its objects, their meshes and materials, and the fog."""
    collection = photo.collection
    for obj in photo.effect_objects:
        mesh, materials = obj.data, [m for m in obj.data.materials if m is not None]
        bpy.data.objects.remove(obj)
        if mesh.users == 0:
            bpy.data.meshes.remove(mesh)
        for material in materials:
            if material.users == 0:
                bpy.data.materials.remove(material)
    for material in photo.layer_materials():
        remove_fog(material)
    group = bpy.data.node_groups.get(_fog_group_name(collection))
    if group is not None and group.users == 0:
        bpy.data.node_groups.remove(group)
    if EFFECTS_KEY in collection:
        del collection[EFFECTS_KEY]


def _particle_object(
    collection: bpy.types.Collection, root: bpy.types.Object, effect: EffectSettings, frustum: Frustum, fog
) -> bpy.types.Object:
    layout = particle_layout(effect, frustum)
    label = f"Photo3D {effect.kind.title()} {collection.name.removeprefix('Photo3D ')}"
    mesh = bpy.data.meshes.new(label)
    mesh.vertices.add(len(layout.points))
    mesh.vertices.foreach_set("co", layout.points.astype(np.float32).ravel())
    mesh.update()
    obj = bpy.data.objects.new(label, mesh)
    obj[EFFECT_KEY] = effect.kind
    # On the view axis at the particles' middle depth: blended halos then sort among the layers by depth.
    obj.location = (0.0, 0.0, -layout.origin_depth)
    modifier = obj.modifiers.new("Photo3D Motion", "NODES")
    modifier.node_group = particles_group()
    additive = effect.kind == "HALOS"
    material = sprite_material(label, layout, additive=additive, fog=None if additive else fog)
    mesh.materials.append(material)
    set_particle_inputs(modifier, layout, layout.origin_depth, material)
    obj.visible_shadow = False
    collection.objects.link(obj)
    obj.parent = root
    return obj


def apply_effects(
    photo: PhotoScene, effects: Iterable[EffectSettings], pivot_depth: float | None = None
) -> list[bpy.types.Object]:
    """Replace the effects of an imported photo with ``effects`` (an empty list removes them all).

    ``pivot_depth`` is the camera path's pivot (the picked one, or None for the default): the particles' sizes
    and the frame they fill are measured there. Settings are checked before anything changes, so a bad value
    leaves the scene as it was.
    """
    collection = photo.collection
    effects = [validate(e) for e in effects]
    kinds = [e.kind for e in effects]
    duplicated = sorted({k for k in kinds if kinds.count(k) > 1})
    if duplicated:
        raise ValueError(f"one of each effect at most; got {', '.join(d.lower() for d in duplicated)} twice")
    root = photo.root
    if root is None:
        raise ValueError(f"{collection.name} has no Photo3D camera: is it an imported photo?")
    frustum = Frustum.from_scene(photo.scene_info(), pivot_depth=pivot_depth)
    remove_effects(photo)
    fog = None
    created: list[bpy.types.Object] = []
    by_kind = {e.kind: e for e in effects}
    if "FOG" in by_kind and by_kind["FOG"].amount > 0.0:
        fog = fog_group(_fog_group_name(collection), fog_layout(by_kind["FOG"], frustum), photo.scene)
        for material in photo.layer_materials():
            insert_fog(material, fog)
    for kind in EFFECTS:
        effect = by_kind.get(kind)
        if kind == "FOG" or effect is None or effect.amount <= 0.0:
            continue
        created.append(_particle_object(collection, root, effect, frustum, fog))
    collection[EFFECTS_KEY] = [_as_dict(e) for e in effects]
    return created


def _as_dict(effect: EffectSettings) -> dict:
    data = {key: getattr(effect, key) for key in ("kind", "amount", "speed", "size", "wind", "seed")}
    near, far = effect.band()
    data.update(near=near, far=far, colour=list(effect.resolved_colour()))
    return data


def applied_effects(photo: PhotoScene) -> list[EffectSettings]:
    """The effects last applied to an imported photo."""
    out = []
    for item in photo.collection.get(EFFECTS_KEY) or []:
        data = dict(item)
        data["colour"] = tuple(data["colour"])
        out.append(EffectSettings(**data))
    return out
