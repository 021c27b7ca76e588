"""Node trees for the effects: the particle motion (geometry nodes), the sprite and fog materials.

The motion is computed from the scene time inside the node group, so a saved .blend plays and renders the
effects without the add-on, and frame N always looks the same (no simulation cache, nothing to bake).
"""

from __future__ import annotations

import math
from typing import Any

import bpy

from ..scene.photo_scene import UNLIT_KEY
from .params import FogLayout, ParticleLayout

PARTICLES_GROUP = "Photo3D Particles"
GROUP_VERSION = 1
RADIAL = "p3d_radial"
"""Sprite attribute: 0 at a sprite's centre, 1 at its rim (the material's soft falloff)."""
BRIGHTNESS = "p3d_brightness"
"""Per-particle brightness, 0.55-1, drawn from the seed."""
SPRITE_VERTICES = 10
FOG_NODE = "Photo3D Fog"


class _Tree:
    """A few helpers that keep node-tree code readable: add a node, link by socket."""

    def __init__(self, tree: bpy.types.NodeTree):
        self.tree = tree

    def node(self, kind: str, x: float = 0.0, y: float = 0.0, **props: Any) -> bpy.types.Node:
        node = self.tree.nodes.new(kind)
        node.location = (x, y)
        for key, value in props.items():
            setattr(node, key, value)
        return node

    def math(self, operation: str, a: Any, b: Any = None, x: float = 0.0, y: float = 0.0) -> bpy.types.NodeSocket:
        node = self.node("ShaderNodeMath", x, y, operation=operation)
        self.feed(node.inputs[0], a)
        if b is not None:
            self.feed(node.inputs[1], b)
        return node.outputs[0]

    def vmath(self, operation: str, a: Any, b: Any = None, c: Any = None, x: float = 0.0, y: float = 0.0) -> Any:
        node = self.node("ShaderNodeVectorMath", x, y, operation=operation)
        for socket, value in zip(node.inputs, (a, b, c), strict=False):
            if value is not None:
                self.feed(socket, value)
        return node

    def feed(self, socket: bpy.types.NodeSocket, value: Any) -> None:
        """Link ``value`` into ``socket`` if it is a socket, else set it as the socket's value."""
        if isinstance(value, bpy.types.NodeSocket):
            self.tree.links.new(value, socket)
        else:
            socket.default_value = value


def _interface(group: bpy.types.NodeTree, inputs: list[tuple[str, str, Any]], outputs: list[tuple[str, str]]) -> None:
    for name, socket_type in outputs:
        group.interface.new_socket(name, in_out="OUTPUT", socket_type=socket_type)
    for name, socket_type, default in inputs:
        socket = group.interface.new_socket(name, in_out="INPUT", socket_type=socket_type)
        if default is not None:
            socket.default_value = default


PARTICLE_INPUTS: list[tuple[str, str, Any]] = [
    ("Geometry", "NodeSocketGeometry", None),
    ("Velocity", "NodeSocketVector", (0.0, 0.0, 0.0)),
    ("Sway", "NodeSocketVector", (0.0, 0.0, 0.0)),
    ("Sway Rate", "NodeSocketFloat", 0.0),
    ("Frame Min", "NodeSocketVector", (-1.0, -1.0, 0.0)),
    ("Frame Max", "NodeSocketVector", (1.0, 1.0, 1.0)),
    ("Sprite Size", "NodeSocketVector", (0.01, 0.01, 1.0)),
    ("Sprite Angle", "NodeSocketFloat", 0.0),
    ("Size Depth", "NodeSocketFloat", 1.0),
    ("Origin", "NodeSocketVector", (0.0, 0.0, 0.0)),
    ("Seed", "NodeSocketInt", 0),
    ("Material", "NodeSocketMaterial", None),
]


def particles_group() -> bpy.types.NodeTree:
    """The shared geometry-nodes group that moves particles and turns each into a camera-facing sprite.

    Input mesh vertices are rest positions (u, v, depth) in tangent space (see ``effect_params``). At time t
    each moves by ``Velocity * t`` plus a sway, wraps around inside [Frame Min, Frame Max] in tangent space
    (so the frame stays filled however long the shot), and lands at (u d, v d, -d) in camera space.
    """
    group = bpy.data.node_groups.get(PARTICLES_GROUP)
    if group is not None and group.get("photo3d_version") == GROUP_VERSION:
        return group
    if group is not None:  # an older add-on's group: rebuild it under the same name
        group.name = f"{PARTICLES_GROUP} (old)"
    group = bpy.data.node_groups.new(PARTICLES_GROUP, "GeometryNodeTree")
    group["photo3d_version"] = GROUP_VERSION
    _interface(group, PARTICLE_INPUTS, [("Geometry", "NodeSocketGeometry")])
    t = _Tree(group)
    gin = t.node("NodeGroupInput", -1800, 0)
    gout = t.node("NodeGroupOutput", 1400, 0)
    inp = {socket.name: socket for socket in gin.outputs}

    points = t.node("GeometryNodeMeshToPoints", -1500, 300)
    t.feed(points.inputs["Mesh"], inp["Geometry"])
    rest = t.node("ShaderNodeSeparateXYZ", -1500, 0)
    t.feed(rest.inputs[0], t.node("GeometryNodeInputPosition", -1700, -100).outputs[0])
    u, v, depth = rest.outputs
    seconds = t.node("GeometryNodeInputSceneTime", -1700, -300).outputs["Seconds"]

    # Sway: a per-particle phase from the seed, x on a sine and y on a slower cosine.
    phase = t.node("FunctionNodeRandomValue", -1500, -400, data_type="FLOAT")
    t.feed(phase.inputs[3], 2.0 * math.pi)
    t.feed(phase.inputs["Seed"], inp["Seed"])
    turn = t.math("MULTIPLY", seconds, inp["Sway Rate"], -1300, -300)
    angle = t.math("ADD", t.math("MULTIPLY", turn, 2.0 * math.pi, -1150, -300), phase.outputs[1], -1000, -300)
    sway_axes = t.node("ShaderNodeCombineXYZ", -850, -300)
    t.feed(sway_axes.inputs["X"], t.math("SINE", angle, None, -1000, -450))
    t.feed(sway_axes.inputs["Y"], t.math("COSINE", t.math("MULTIPLY", angle, 1.3, -1000, -550), None, -850, -550))
    sway = t.vmath("MULTIPLY", sway_axes.outputs[0], inp["Sway"], x=-700, y=-300).outputs[0]
    drift = t.vmath("SCALE", inp["Velocity"], x=-700, y=-150)
    t.feed(drift.inputs["Scale"], seconds)
    offset = t.vmath("ADD", drift.outputs[0], sway, x=-550, y=-200).outputs[0]

    # Tangent-space motion: an offset of x scene units at depth d moves u by x / d.
    per_depth = t.node("ShaderNodeCombineXYZ", -550, 0)
    t.feed(per_depth.inputs["X"], depth)
    t.feed(per_depth.inputs["Y"], depth)
    t.feed(per_depth.inputs["Z"], 1.0)
    tangent_offset = t.vmath("DIVIDE", offset, per_depth.outputs[0], x=-400, y=-100).outputs[0]
    uv = t.node("ShaderNodeCombineXYZ", -550, 150)
    t.feed(uv.inputs["X"], u)
    t.feed(uv.inputs["Y"], v)
    t.feed(uv.inputs["Z"], 0.5)
    moved = t.vmath("ADD", uv.outputs[0], tangent_offset, x=-250, y=50).outputs[0]
    wrapped = t.vmath("WRAP", moved, inp["Frame Max"], inp["Frame Min"], x=-100, y=50).outputs[0]
    scale = t.node("ShaderNodeCombineXYZ", -100, -150)
    t.feed(scale.inputs["X"], depth)
    t.feed(scale.inputs["Y"], depth)
    t.feed(scale.inputs["Z"], 0.0)
    camera_xy = t.vmath("MULTIPLY", wrapped, scale.outputs[0], x=50, y=50).outputs[0]
    back = t.node("ShaderNodeCombineXYZ", 50, -150)
    t.feed(back.inputs["Z"], t.math("MULTIPLY", depth, -1.0, -100, -300))
    camera = t.vmath("ADD", camera_xy, back.outputs[0], x=200, y=0).outputs[0]
    local = t.vmath("SUBTRACT", camera, inp["Origin"], x=350, y=0).outputs[0]

    # Brightness per particle, read before the positions move (the same particle keeps its value).
    brightness = t.node("FunctionNodeRandomValue", -1300, 500, data_type="FLOAT")
    t.feed(brightness.inputs[2], 0.55)
    t.feed(brightness.inputs[3], 1.0)
    t.feed(brightness.inputs["Seed"], t.math("ADD", inp["Seed"], 7.0, -1500, 600))
    store_bright = t.node("GeometryNodeStoreNamedAttribute", -1100, 300, data_type="FLOAT", domain="POINT")
    t.feed(store_bright.inputs["Geometry"], points.outputs[0])
    store_bright.inputs["Name"].default_value = BRIGHTNESS
    t.feed(store_bright.inputs["Value"], brightness.outputs[1])

    # Size: constant in the scene up to Size Depth, constant on screen beyond (far flakes stay visible).
    grow = t.math("MAXIMUM", t.math("DIVIDE", depth, inp["Size Depth"], 200, -400), 1.0, 350, -400)
    jitter = t.node("FunctionNodeRandomValue", 200, -550, data_type="FLOAT")
    t.feed(jitter.inputs[2], 0.6)
    t.feed(jitter.inputs[3], 1.4)
    t.feed(jitter.inputs["Seed"], t.math("ADD", inp["Seed"], 13.0, 50, -650))
    size = t.math("MULTIPLY", grow, jitter.outputs[1], 500, -450)

    set_position = t.node("GeometryNodeSetPosition", 550, 250)
    t.feed(set_position.inputs["Geometry"], store_bright.outputs[0])
    t.feed(set_position.inputs["Position"], local)

    # The sprite: a fan-filled disc facing the camera (+z), stretched and turned along the motion.
    circle = t.node("GeometryNodeMeshCircle", 300, 700, fill_type="TRIANGLE_FAN")
    circle.inputs["Vertices"].default_value = SPRITE_VERTICES
    circle.inputs["Radius"].default_value = 1.0
    radial = t.node("GeometryNodeStoreNamedAttribute", 500, 700, data_type="FLOAT", domain="POINT")
    t.feed(radial.inputs["Geometry"], circle.outputs[0])
    radial.inputs["Name"].default_value = RADIAL
    length = t.vmath("LENGTH", t.node("GeometryNodeInputPosition", 300, 550).outputs[0], x=400, y=550)
    t.feed(radial.inputs["Value"], length.outputs["Value"])
    turn_z = t.node("ShaderNodeCombineXYZ", 500, 500)
    t.feed(turn_z.inputs["Z"], inp["Sprite Angle"])
    sprite = t.node("GeometryNodeTransform", 700, 650)
    t.feed(sprite.inputs["Geometry"], radial.outputs[0])
    t.feed(sprite.inputs["Rotation"], turn_z.outputs[0])
    t.feed(sprite.inputs["Scale"], inp["Sprite Size"])

    instances = t.node("GeometryNodeInstanceOnPoints", 900, 250)
    t.feed(instances.inputs["Points"], set_position.outputs[0])
    t.feed(instances.inputs["Instance"], sprite.outputs[0])
    t.feed(instances.inputs["Scale"], size)
    realize = t.node("GeometryNodeRealizeInstances", 1150, 250)
    t.feed(realize.inputs["Geometry"], instances.outputs[0])
    # Geometry made inside the group has no material of its own.
    material = t.node("GeometryNodeSetMaterial", 1300, 250)
    t.feed(material.inputs["Geometry"], realize.outputs[0])
    t.feed(material.inputs["Material"], inp["Material"])
    t.feed(gout.inputs[0], material.outputs[0])
    return group


def set_particle_inputs(
    modifier: bpy.types.NodesModifier, layout: ParticleLayout, origin_depth: float, material: bpy.types.Material
) -> None:
    """Put one effect's motion, sprite and material into its geometry-nodes modifier."""
    values = {
        "Material": material,
        "Velocity": layout.velocity,
        "Sway": layout.sway,
        "Sway Rate": layout.sway_rate,
        "Frame Min": (layout.u_range[0], layout.v_range[0], 0.0),
        "Frame Max": (layout.u_range[1], layout.v_range[1], 1.0),
        "Sprite Size": layout.sprite_size,
        "Sprite Angle": layout.sprite_angle,
        "Size Depth": layout.size_depth,
        "Origin": (0.0, 0.0, -origin_depth),
        "Seed": layout.seed,
    }
    for item in modifier.node_group.interface.items_tree:
        if getattr(item, "in_out", None) == "INPUT" and item.name in values:
            value = values[item.name]
            modifier[item.identifier] = tuple(float(c) for c in value) if isinstance(value, tuple) else value


def sprite_material(name: str, layout: ParticleLayout, additive: bool, fog: bpy.types.NodeTree | None) -> Any:
    """Unlit soft sprites: colour times brightness, alpha falling off from the centre.

    Depth-writing (dithered) sprites are hidden per pixel by nearer layers wherever they are in depth.
    Additive halos are blended (light adds up, never darkens) and drawn in the order of their origin.
    """
    material = bpy.data.materials.new(name)
    material.use_nodes = True
    t = _Tree(material.node_tree)
    t.tree.nodes.clear()
    radial = t.node("ShaderNodeAttribute", -900, 200, attribute_name=RADIAL, attribute_type="GEOMETRY")
    bright = t.node("ShaderNodeAttribute", -900, -100, attribute_name=BRIGHTNESS, attribute_type="GEOMETRY")
    falloff = t.math("POWER", t.math("SUBTRACT", 1.0, radial.outputs["Fac"], -700, 200), layout.softness, -550, 200)
    falloff.node.use_clamp = True
    alpha = t.math("MULTIPLY", t.math("MULTIPLY", falloff, bright.outputs["Fac"], -400, 150), layout.opacity, -250, 150)
    colour = t.node("ShaderNodeRGB", -700, -300)
    colour.outputs[0].default_value = (*layout.colour, 1.0)
    colour_out = colour.outputs[0]
    if fog is not None:
        fogged = t.node("ShaderNodeGroup", -500, -300, node_tree=fog, name=FOG_NODE, label=FOG_NODE)
        t.feed(fogged.inputs[0], colour_out)
        colour_out = fogged.outputs[0]
    emission = t.node("ShaderNodeEmission", -250, -200)
    t.feed(emission.inputs["Color"], colour_out)
    transparent = t.node("ShaderNodeBsdfTransparent", -250, 0)
    output = t.node("ShaderNodeOutputMaterial", 250, 0)
    if additive:
        t.feed(emission.inputs["Strength"], alpha)
        add = t.node("ShaderNodeAddShader", 50, 0)
        t.feed(add.inputs[0], transparent.outputs[0])
        t.feed(add.inputs[1], emission.outputs[0])
        t.feed(output.inputs["Surface"], add.outputs[0])
    else:
        mix = t.node("ShaderNodeMixShader", 50, 0)
        t.feed(mix.inputs["Fac"], alpha)
        t.feed(mix.inputs[1], transparent.outputs[0])
        t.feed(mix.inputs[2], emission.outputs[0])
        t.feed(output.inputs["Surface"], mix.outputs[0])
    # Eevee Next (Blender 4.2+, the manifest's minimum): additive halos blend, other sprites dither.
    material.surface_render_method = "BLENDED" if additive else "DITHERED"
    material.use_backface_culling = False
    material.use_transparent_shadow = True
    material[UNLIT_KEY] = True
    return material


def fog_group(name: str, layout: FogLayout, scene: bpy.types.Scene) -> bpy.types.NodeTree:
    """A shader group ``Color -> Color`` that mixes in fog by the surface's distance from the camera.

    Opacity is ``1 - exp(-density * (distance - start) * wisp)``, where ``wisp`` is a drifting 3D noise
    around 1 (``noise_amount`` 0 makes the fog even). Every fogged material shares the one group, so
    changing the fog changes every layer at once.
    """
    group = bpy.data.node_groups.get(name)
    if group is None or group.bl_idname != "ShaderNodeTree":
        group = bpy.data.node_groups.new(name, "ShaderNodeTree")
        _interface(group, [("Color", "NodeSocketColor", (1.0, 1.0, 1.0, 1.0))], [("Color", "NodeSocketColor")])
    group.nodes.clear()
    if group.animation_data is not None:
        group.animation_data_clear()
    t = _Tree(group)
    gin = t.node("NodeGroupInput", -1200, 200)
    gout = t.node("NodeGroupOutput", 600, 0)
    distance = t.node("ShaderNodeCameraData", -1200, 0).outputs["View Distance"]
    travelled = t.math("MAXIMUM", t.math("SUBTRACT", distance, layout.start, -1000, 0), 0.0, -850, 0)

    # Wisps: noise over the surface's world position, drifting with the scene time (a driver on "frame").
    seconds = t.node("ShaderNodeValue", -1200, -300, name="seconds", label="Seconds")
    driver = seconds.outputs[0].driver_add("default_value").driver
    driver.type = "SCRIPTED"
    # Seconds from the scene's own frame rate, read live: changing the fps later keeps the drift speed.
    for name, path in (("fps", "render.fps"), ("fps_base", "render.fps_base")):
        variable = driver.variables.new()
        variable.name, variable.type = name, "SINGLE_PROP"
        variable.targets[0].id_type = "SCENE"
        variable.targets[0].id = scene
        variable.targets[0].data_path = path
    driver.expression = "frame * fps_base / fps"  # a simple expression: no Python, runs in untrusted files
    drift = t.vmath("SCALE", layout.drift, x=-1000, y=-300)
    t.feed(drift.inputs["Scale"], seconds.outputs[0])
    position = t.node("ShaderNodeNewGeometry", -1200, -500).outputs["Position"]
    moved = t.vmath("SUBTRACT", position, drift.outputs[0], x=-850, y=-400).outputs[0]
    noise = t.node("ShaderNodeTexNoise", -700, -400)
    t.feed(noise.inputs["Vector"], moved)
    noise.inputs["Scale"].default_value = layout.noise_scale
    noise.inputs["Detail"].default_value = 3.0
    # 1 - a + 2 a n: mean about 1 (noise averages 0.5), from 1 - a to 1 + a.
    wisp = t.math(
        "ADD", t.math("MULTIPLY", noise.outputs["Fac"], 2.0 * layout.noise_amount, -500, -400),
        1.0 - layout.noise_amount, -350, -400,
    )  # fmt: skip
    optical = t.math("MULTIPLY", t.math("MULTIPLY", travelled, layout.density, -700, 0), wisp, -200, -100)
    opacity = t.math("SUBTRACT", 1.0, t.math("EXPONENT", t.math("MULTIPLY", optical, -1.0, -50, -100)), 100, -100)
    colour = t.node("ShaderNodeRGB", 100, -300, name="fog colour")
    colour.outputs[0].default_value = (*layout.colour, 1.0)
    mix = t.node("ShaderNodeMix", 350, 0, data_type="RGBA", blend_type="MIX")
    t.feed(mix.inputs["Factor"], opacity)
    t.feed(mix.inputs[6], gin.outputs[0])  # A (colour)
    t.feed(mix.inputs[7], colour.outputs[0])  # B (colour)
    t.feed(gout.inputs[0], mix.outputs[2])
    return group


def insert_fog(material: bpy.types.Material, group: bpy.types.NodeTree) -> bool:
    """Put the fog group between a photo material's texture and its emission colour (once). True if added."""
    tree = material.node_tree
    if tree is None or FOG_NODE in tree.nodes:
        if tree is not None:
            tree.nodes[FOG_NODE].node_tree = group
        return False
    emission = next((n for n in tree.nodes if n.bl_idname == "ShaderNodeEmission"), None)
    if emission is None or not emission.inputs["Color"].is_linked:
        return False
    link = emission.inputs["Color"].links[0]
    source = link.from_socket
    node = tree.nodes.new("ShaderNodeGroup")
    node.node_tree = group
    node.name = node.label = FOG_NODE
    node.location = (emission.location.x - 200, emission.location.y - 150)
    tree.links.remove(link)
    tree.links.new(source, node.inputs[0])
    tree.links.new(node.outputs[0], emission.inputs["Color"])
    return True


def remove_fog(material: bpy.types.Material) -> bool:
    """Undo ``insert_fog``: the texture feeds the emission directly again. True if fog was there."""
    tree = material.node_tree
    node = tree.nodes.get(FOG_NODE) if tree is not None else None
    if node is None:
        return False
    source = node.inputs[0].links[0].from_socket if node.inputs[0].is_linked else None
    targets = [link.to_socket for link in node.outputs[0].links]
    tree.nodes.remove(node)
    for target in targets:
        if source is not None:
            tree.links.new(source, target)
    return True
