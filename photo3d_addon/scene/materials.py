"""Materials that show a layer texture exactly as it is in the photo.

Emission (no lighting) mixed with transparency by the texture's straight alpha: with the Standard view
transform the rendered pixel is the photo's pixel, and an edge pixel blends with the layers behind it the
way the package's textures composite.
"""

from __future__ import annotations

import bpy

from .photo_scene import UNLIT_KEY


def _render_method(material: bpy.types.Material, opaque: bool) -> None:
    # Eevee Next (Blender 4.2+, the manifest's minimum). Blended surfaces composite exactly (sorted by object
    # origin); the opaque backdrop writes depth so particles and fog behind nearer layers are hidden correctly.
    material.surface_render_method = "DITHERED" if opaque else "BLENDED"
    material.use_backface_culling = False


def photo_material(name: str, image: bpy.types.Image, opaque: bool = False) -> bpy.types.Material:
    """Unlit material for one layer: ``image`` as emission, its alpha as coverage."""
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = image
    texture.interpolation = "Linear"
    texture.extension = "EXTEND"
    texture.location = (-600, 0)
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Strength"].default_value = 1.0
    emission.location = (-300, -100)
    transparent = nodes.new("ShaderNodeBsdfTransparent")
    transparent.location = (-300, 100)
    mix = nodes.new("ShaderNodeMixShader")
    mix.location = (-100, 0)
    output = nodes.new("ShaderNodeOutputMaterial")
    output.location = (100, 0)
    links.new(texture.outputs["Color"], emission.inputs["Color"])
    links.new(texture.outputs["Alpha"], mix.inputs["Fac"])
    links.new(transparent.outputs["BSDF"], mix.inputs[1])
    links.new(emission.outputs["Emission"], mix.inputs[2])
    links.new(mix.outputs["Shader"], output.inputs["Surface"])
    _render_method(material, opaque)
    material[UNLIT_KEY] = True
    return material
