"""The 3D Viewport sidebar tab "Photo3D": layers, camera path, effects and render of the photo being worked on.

``draw`` only lays out properties and labels: what it shows that takes computing (the package, the safe
amplitude) comes from the ``PhotoScene``'s cache, computed once per package and settings, and the amplitude
shown is the one Apply uses.
"""

from __future__ import annotations

import bpy

from ..effects.params import EFFECTS
from ..motion.paths import path_amplitude
from ..scene.photo_scene import DEPTH_RANGE_KEY, LAYER_KEY, PATH_KEY, PLANE_DEPTH_KEY, NotAPhoto, PhotoScene
from . import operators
from .properties import path_settings


def shown_amplitude(context: bpy.types.Context, photo: PhotoScene) -> float:
    """The amplitude Apply Camera Path would use with the sidebar's settings, from the photo's cache."""
    scene = context.scene
    path = path_settings(scene.photo3d, photo, scene.render.fps / scene.render.fps_base)
    return photo.cached(("amplitude", path), lambda: path_amplitude(path, photo.scene_info()))


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
    row.operator(operators.PHOTO3D_OT_apply_effects.bl_idname, icon="FILE_REFRESH")
    row.operator(operators.PHOTO3D_OT_remove_effects.bl_idname, icon="X", text="")


class VIEW3D_PT_photo3d(bpy.types.Panel):
    bl_label = "Photo3D"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Photo3D"

    def draw(self, context):
        layout = self.layout
        photo = PhotoScene.active(context)
        layout.operator("photo3d.import_image", icon="IMAGE_DATA")
        if photo is None:
            layout.label(text="Import a photo to begin")
            return
        settings = context.scene.photo3d
        box = layout.box()
        box.label(text=photo.name, icon="OUTLINER_COLLECTION")
        for obj in reversed(photo.layers):
            row = box.row(align=True)
            row.prop(obj, "hide_viewport", text="", emboss=False)
            row.prop(obj, "hide_render", text="", emboss=False)
            depth = obj.get(PLANE_DEPTH_KEY) or (obj.get(DEPTH_RANGE_KEY) or [0.0])[0]
            row.label(text=f"{obj[LAYER_KEY]}: {obj.name}  ({depth:.2f} m)")

        box = layout.box()
        box.label(text="Camera Path", icon="CAMERA_DATA")
        box.prop(settings, "path_preset")
        box.prop(settings, "use_safe_amplitude")
        row = box.row()
        row.enabled = not settings.use_safe_amplitude
        row.prop(settings, "amplitude")
        if settings.use_safe_amplitude:
            try:
                box.label(text=f"Safe amplitude: {shown_amplitude(context, photo):.3f}")
            except (NotAPhoto, ValueError) as exc:
                box.label(text=str(exc), icon="ERROR")
        for name in ("duration", "easing", "loop", "overscan", "pivot_layer"):
            box.prop(settings, name)
        row = box.row(align=True)
        row.prop(settings, "pivot_depth")
        row.operator(operators.PHOTO3D_OT_pick_pivot.bl_idname, text="", icon="EYEDROPPER")
        box.prop(settings, "use_dof")
        if settings.use_dof:
            box.prop(settings, "fstop")
        if settings.path_preset == "HANDHELD":
            box.prop(settings, "seed")
        camera = photo.camera
        if camera is not None and camera.get(PATH_KEY):
            box.label(text=f"Current path: {camera[PATH_KEY]}")
        row = box.row()
        row.operator(operators.PHOTO3D_OT_apply_camera_path.bl_idname, icon="ANIM")
        row.operator(operators.PHOTO3D_OT_clear_camera_path.bl_idname, icon="X")

        draw_effects(layout, context.scene)

        box = layout.box()
        box.label(text="Render", icon="RENDER_ANIMATION")
        for name in ("resolution", "fps", "quality", "output", "motion_blur", "filepath"):
            box.prop(settings, name)
        row = box.row()
        row.operator(operators.PHOTO3D_OT_render.bl_idname, text="Render Still", icon="RENDER_STILL").still = True
        row.operator(operators.PHOTO3D_OT_render.bl_idname, icon="RENDER_ANIMATION").still = False

        box = layout.box()
        box.label(text="Compositing", icon="NODE_COMPOSITING")
        box.operator("photo3d.export_comp", text="Export Comp Package", icon="EXPORT")


classes = (VIEW3D_PT_photo3d,)
