"""The sidebar's operators: camera path, effects, pivot picking and render. Thin: they check that there is a
photo, gather the sidebar's settings (``properties``) and call the motion, effects and render rooms."""

from __future__ import annotations

import bpy
from mathutils import Vector

from ..effects.build import remove_effects
from ..effects.params import EFFECTS, EffectError
from ..motion.keyframes import apply_preset, clear_camera_path
from ..motion.paths import reveal_ratio
from ..render.settings import RenderError, apply_render_settings, render_frames
from ..scene.photo_scene import NO_PHOTO, PhotoScene
from .properties import apply_scene_effects, path_settings, render_settings


def active_photo(operator: bpy.types.Operator, context: bpy.types.Context) -> PhotoScene | None:
    """The photo the sidebar works on, or None after telling the user there is none."""
    photo = PhotoScene.active(context)
    if photo is None:
        operator.report({"ERROR"}, NO_PHOTO)
    return photo


class PHOTO3D_OT_apply_camera_path(bpy.types.Operator):
    """Key the photo's camera along the chosen path (replaces a path applied before)"""

    bl_idname = "photo3d.apply_camera_path"
    bl_label = "Apply Camera Path"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        photo = active_photo(self, context)
        if photo is None:
            return {"CANCELLED"}
        settings = context.scene.photo3d
        if settings.pivot_depth <= 0.0 and settings.pivot_layer >= 0 and photo.layer(settings.pivot_layer) is None:
            self.report({"ERROR"}, f"{photo.name} has no layer {settings.pivot_layer}")
            return {"CANCELLED"}
        fps = context.scene.render.fps / context.scene.render.fps_base
        try:
            path = path_settings(settings, photo, fps)
            apply_preset(photo, path, context.scene, fstop=settings.fstop if settings.use_dof else None)
        except ValueError as exc:
            self.report({"ERROR"}, f"Photo3D: {exc}")
            return {"CANCELLED"}
        ratio = reveal_ratio(path, photo.scene_info())
        if ratio > 1.0:
            self.report(
                {"WARNING"},
                f"This move reveals {ratio:.1f}x the inpainted band: expect stretched or empty areas behind edges",
            )
        else:
            self.report(
                {"INFO"}, f"{settings.path_preset.replace('_', ' ').title()} path over {settings.duration} frames"
            )
        return {"FINISHED"}


class PHOTO3D_OT_clear_camera_path(bpy.types.Operator):
    """Remove the camera path's keys and put the camera back at the photo's viewpoint"""

    bl_idname = "photo3d.clear_camera_path"
    bl_label = "Clear Camera Path"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        photo = PhotoScene.active(context)
        camera = photo.camera if photo is not None else None
        if camera is None:
            self.report({"ERROR"}, "No Photo3D camera here")
            return {"CANCELLED"}
        clear_camera_path(camera)
        return {"FINISHED"}


class PHOTO3D_OT_render(bpy.types.Operator):
    """Render the animation with the Photo3D render settings (Blender's own render job, with its progress)"""

    bl_idname = "photo3d.render"
    bl_label = "Render Animation"

    still: bpy.props.BoolProperty(name="Still", description="Render only the current frame", default=False)

    def execute(self, context):
        scene = context.scene
        try:
            apply_render_settings(scene, render_settings(scene.photo3d))
            if bpy.app.background:
                saved = scene.frame_start, scene.frame_end
                if self.still:  # one frame, the current one, without changing the user's range for good
                    scene.frame_start = scene.frame_end = scene.frame_current
                try:
                    files = render_frames(
                        scene, on_frame=lambda frame, done, total: print(f"Photo3D: frame {done}/{total}")
                    )
                finally:
                    scene.frame_start, scene.frame_end = saved
                self.report({"INFO"}, f"Photo3D: wrote {files[-1]}" if files else "Photo3D: nothing rendered")
                return {"FINISHED"}
        except (RenderError, RuntimeError) as exc:
            self.report({"ERROR"}, f"Photo3D: {exc}")
            return {"CANCELLED"}
        # In the UI, Blender's render job shows progress, can be cancelled with Esc and keeps Blender alive.
        bpy.ops.render.render("INVOKE_DEFAULT", animation=not self.still, write_still=self.still)
        return {"FINISHED"}


class PHOTO3D_OT_apply_effects(bpy.types.Operator):
    """Build the enabled effects in the photo's scene (replacing the ones there)"""

    bl_idname = "photo3d.apply_effects"
    bl_label = "Apply Effects"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        photo = active_photo(self, context)
        if photo is None:
            return {"CANCELLED"}
        try:
            created = apply_scene_effects(context, photo)
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
        photo = active_photo(self, context)
        if photo is None:
            return {"CANCELLED"}
        settings = context.scene.photo3d
        live, settings.live_effects = settings.live_effects, False
        try:
            for kind in EFFECTS:
                getattr(settings, kind.lower()).enabled = False
        finally:
            settings.live_effects = live
        remove_effects(photo)
        return {"FINISHED"}


def depth_along_ray(context: bpy.types.Context, photo: PhotoScene, origin: Vector, direction: Vector) -> float | None:
    """Depth, in the photo camera's frame, of the first layer of ``photo`` the world-space ray hits.

    Effects and other objects in the way are skipped; None when the ray misses every layer.
    """
    root = photo.root
    if root is None:
        return None
    depsgraph = context.evaluated_depsgraph_get()
    layers = {o.name for o in photo.layers}
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
        if active_photo(self, context) is None:
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
        depth = depth_along_ray(context, PhotoScene.active(context), origin, direction)
        if depth is None:
            self.report({"WARNING"}, "That click missed the photo's layers: click on the photo")
            return {"RUNNING_MODAL"}
        settings = context.scene.photo3d
        settings.pivot_depth, settings.pivot_layer = depth, -1
        self._finish(context)
        self.report({"INFO"}, f"Pivot depth {depth:.3f}")
        return {"FINISHED"}


classes = (
    PHOTO3D_OT_apply_camera_path,
    PHOTO3D_OT_clear_camera_path,
    PHOTO3D_OT_render,
    PHOTO3D_OT_apply_effects,
    PHOTO3D_OT_remove_effects,
    PHOTO3D_OT_pick_pivot,
)
