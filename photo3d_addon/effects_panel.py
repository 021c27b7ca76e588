"""The sidebar's effects settings and operators, and the viewport depth picker for the camera path's pivot.

Effect settings live on the scene (``scene.photo3d.rain``, ``.snow``, ...). Changing one re-applies the
effects to the photo being worked on at once, so the viewport shows the change; the operators do the same
on demand and report problems.
"""

from __future__ import annotations

import bpy
from mathutils import Vector

from .effect_params import EFFECTS, KINDS, EffectError, EffectSettings
from .effects import apply_effects, remove_effects
from .photo_context import NO_PHOTO, active_photo_collection

DEFAULT_AMOUNT = {"RAIN": 0.6, "SNOW": 0.6, "FOG": 0.35, "DUST": 0.6, "HALOS": 0.5}


def _sync(self, context: bpy.types.Context) -> None:
    """Property update: re-apply the scene's effects to the active photo; a bad combination waits (the panel
    says why) instead of raising inside Blender's property update."""
    collection = active_photo_collection(context)
    if collection is None or not getattr(context.scene.photo3d, "live_effects", True):
        return
    try:
        apply_effects(collection, scene_effects(context.scene))
    except (EffectError, ValueError) as exc:
        print(f"Photo3D: effects not applied: {exc}")


def _settings_class(kind: str) -> type:
    natural = KINDS[kind]
    annotations = {
        "enabled": bpy.props.BoolProperty(name=kind.title(), default=False, update=_sync),
        "amount": bpy.props.FloatProperty(
            name="Amount",
            description="Density (fog: its opacity at the far end)",
            default=DEFAULT_AMOUNT[kind],
            min=0.0,
            max=1.0,
            update=_sync,
        ),  # fmt: skip
        "speed": bpy.props.FloatProperty(
            name="Speed", description="Times the natural speed", default=1.0, min=0.0, max=20.0, update=_sync
        ),
        "size": bpy.props.FloatProperty(
            name="Size", description="Times the natural size", default=1.0, min=0.01, max=50.0, update=_sync
        ),
        "colour": bpy.props.FloatVectorProperty(
            name="Colour", subtype="COLOR", size=3, min=0.0, max=1.0, default=natural.colour, update=_sync
        ),
        "near": bpy.props.FloatProperty(
            name="Near",
            description="Start of the depth band: 0 in front of the nearest layer, 1 the backdrop",
            default=natural.near,
            min=0.0,
            max=1.0,
            update=_sync,
        ),  # fmt: skip
        "far": bpy.props.FloatProperty(
            name="Far", description="End of the depth band", default=natural.far, min=0.0, max=1.0, update=_sync
        ),
    }
    return type(f"Photo3D{kind.title()}Settings", (bpy.types.PropertyGroup,), {"__annotations__": annotations})


EFFECT_CLASSES = {kind: _settings_class(kind) for kind in EFFECTS}


def effect_properties() -> dict[str, object]:
    """The properties ``scene_panel.Photo3DSceneSettings`` gains for the effects."""
    props: dict[str, object] = {k.lower(): bpy.props.PointerProperty(type=c) for k, c in EFFECT_CLASSES.items()}
    props["wind"] = bpy.props.FloatProperty(
        name="Wind", description="Sideways drift, frame heights per second (negative: to the left)",
        default=0.0, min=-20.0, max=20.0, update=_sync,
    )  # fmt: skip
    props["effects_seed"] = bpy.props.IntProperty(name="Seed", default=0, min=0, update=_sync)
    props["live_effects"] = bpy.props.BoolProperty(
        name="Live", description="Re-apply the effects whenever a setting changes", default=True
    )
    return props


def scene_effects(scene: bpy.types.Scene) -> list[EffectSettings]:
    """The enabled effects as the scene's settings describe them."""
    settings = scene.photo3d
    chosen = []
    for kind in EFFECTS:
        item = getattr(settings, kind.lower())
        if item.enabled:
            chosen.append(
                EffectSettings(
                    kind, amount=item.amount, speed=item.speed, size=item.size, colour=tuple(item.colour),
                    wind=settings.wind, near=item.near, far=item.far, seed=settings.effects_seed,
                )
            )  # fmt: skip
    return chosen


class PHOTO3D_OT_apply_effects(bpy.types.Operator):
    """Build the enabled effects in the photo's scene (replacing the ones there)"""

    bl_idname = "photo3d.apply_effects"
    bl_label = "Apply Effects"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        collection = active_photo_collection(context)
        if collection is None:
            self.report({"ERROR"}, NO_PHOTO)
            return {"CANCELLED"}
        try:
            created = apply_effects(collection, scene_effects(context.scene))
        except (EffectError, ValueError) as exc:
            self.report({"ERROR"}, f"Photo3D: {exc}")
            return {"CANCELLED"}
        kinds = [k.title() for k in EFFECTS if getattr(context.scene.photo3d, k.lower()).enabled]
        self.report({"INFO"}, f"Effects: {', '.join(kinds) or 'none'} ({len(created)} particle objects)")
        return {"FINISHED"}


class PHOTO3D_OT_remove_effects(bpy.types.Operator):
    """Remove every effect from the photo's scene and switch them off"""

    bl_idname = "photo3d.remove_effects"
    bl_label = "Remove Effects"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        collection = active_photo_collection(context)
        if collection is None:
            self.report({"ERROR"}, NO_PHOTO)
            return {"CANCELLED"}
        settings = context.scene.photo3d
        live, settings.live_effects = settings.live_effects, False
        try:
            for kind in EFFECTS:
                getattr(settings, kind.lower()).enabled = False
        finally:
            settings.live_effects = live
        remove_effects(collection)
        return {"FINISHED"}


def depth_along_ray(
    context: bpy.types.Context, collection: bpy.types.Collection, origin: Vector, direction: Vector
) -> float | None:
    """Depth, in the photo camera's frame, of the first layer of ``collection`` the world-space ray hits.

    Effects and other objects in the way are skipped; None when the ray misses every layer.
    """
    root = next((o.parent for o in collection.objects if o.type == "CAMERA"), None)
    if root is None:
        return None
    depsgraph = context.evaluated_depsgraph_get()
    layers = {o.name for o in collection.objects if "photo3d_layer" in o}
    start, step = Vector(origin), Vector(direction).normalized()
    for _ in range(64):  # skip hits on anything that is not one of the photo's layers
        hit, location, _normal, _index, obj, _matrix = context.scene.ray_cast(depsgraph, start, step)
        if not hit:
            return None
        if obj is not None and obj.name in layers:
            local = root.matrix_world.inverted() @ location
            return float(-local.z)
        start = location + step * 1e-4
    return None


class PHOTO3D_OT_pick_pivot(bpy.types.Operator):
    """Click on the photo in the 3D Viewport: that point's depth becomes the camera path's pivot and focus"""

    bl_idname = "photo3d.pick_pivot"
    bl_label = "Pick Pivot in Viewport"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return context.area is not None and context.area.type == "VIEW_3D"

    def invoke(self, context, event):
        if active_photo_collection(context) is None:
            self.report({"ERROR"}, NO_PHOTO)
            return {"CANCELLED"}
        context.window.cursor_modal_set("EYEDROPPER")
        context.area.header_text_set("Click the photo where the pivot should be (Esc or right-click cancels)")
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def _finish(self, context) -> None:
        context.window.cursor_modal_restore()
        context.area.header_text_set(None)

    def modal(self, context, event):
        from bpy_extras import view3d_utils

        if event.type in {"ESC", "RIGHTMOUSE"}:
            self._finish(context)
            return {"CANCELLED"}
        if event.type != "LEFTMOUSE" or event.value != "PRESS":
            return {"RUNNING_MODAL"}
        region, rv3d = context.region, context.region_data
        coord = (event.mouse_region_x, event.mouse_region_y)
        origin = view3d_utils.region_2d_to_origin_3d(region, rv3d, coord)
        direction = view3d_utils.region_2d_to_vector_3d(region, rv3d, coord)
        depth = depth_along_ray(context, active_photo_collection(context), origin, direction)
        if depth is None:
            self.report({"WARNING"}, "That click missed the photo's layers: click on the photo")
            return {"RUNNING_MODAL"}
        settings = context.scene.photo3d
        settings.pivot_depth, settings.pivot_layer = depth, -1
        self._finish(context)
        self.report({"INFO"}, f"Pivot depth {depth:.3f}")
        return {"FINISHED"}


def draw_effects(layout: bpy.types.UILayout, scene: bpy.types.Scene) -> None:
    """The panel's effects box."""
    settings = scene.photo3d
    box = layout.box()
    box.label(text="Effects", icon="OUTLINER_OB_FORCE_FIELD")
    for kind in EFFECTS:
        item = getattr(settings, kind.lower())
        header = box.row()
        header.prop(item, "enabled")
        if not item.enabled:
            continue
        col = box.column(align=True)
        for name in ("amount", "speed", "size", "colour"):
            col.prop(item, name)
        row = col.row(align=True)
        row.prop(item, "near")
        row.prop(item, "far")
        if item.near >= item.far:
            col.label(text="Near must be less than Far", icon="ERROR")
    box.prop(settings, "wind")
    box.prop(settings, "effects_seed")
    row = box.row()
    row.prop(settings, "live_effects")
    row.operator(PHOTO3D_OT_apply_effects.bl_idname, icon="FILE_REFRESH")
    row.operator(PHOTO3D_OT_remove_effects.bl_idname, icon="X", text="")


classes = (*EFFECT_CLASSES.values(), PHOTO3D_OT_apply_effects, PHOTO3D_OT_remove_effects, PHOTO3D_OT_pick_pivot)
