"""The 3D Viewport sidebar tab "Photo3D": layers, camera path and render of the photo being worked on.

Settings live on the scene (``scene.photo3d``), so they are saved with the .blend and undo with it. The
operators here are thin: they gather settings and call ``camera_animation`` and ``render_settings``.
"""

from __future__ import annotations

import bpy

from .camera_animation import (
    apply_preset,
    clear_camera_path,
    photo_camera,
    pivot_depth_from_layer,
    scene_info_from_collection,
)
from .camera_paths import EASINGS, PRESETS, PathSettings, reveal_ratio, safe_amplitude
from .effects_panel import PHOTO3D_OT_pick_pivot, draw_effects, effect_properties
from .effects_panel import classes as effect_classes
from .photo_context import NO_PHOTO, active_photo_collection
from .render_settings import (
    FRAME_RATES,
    OUTPUTS,
    QUALITY,
    RESOLUTIONS,
    RenderError,
    RenderSettings,
    apply_render_settings,
    render_frames,
)

_PRESET_ITEMS = [(name, name.replace("_", " ").title(), "") for name in PRESETS]


class Photo3DSceneSettings(bpy.types.PropertyGroup):
    path_preset: bpy.props.EnumProperty(name="Preset", items=_PRESET_ITEMS, default="SWING_H")
    use_safe_amplitude: bpy.props.BoolProperty(
        name="Safe Amplitude",
        description="Keep what the camera reveals inside the inpainted bands (off: use Amplitude)",
        default=True,
    )
    amplitude: bpy.props.FloatProperty(
        name="Amplitude", description="Metres for moves, radians for orbit, a factor for zoom", default=0.1, min=0.0
    )
    duration: bpy.props.IntProperty(name="Frames", default=120, min=2, max=100000)
    easing: bpy.props.EnumProperty(
        name="Easing", items=[(e, e.replace("_", " ").title(), "") for e in EASINGS], default="EASE_IN_OUT"
    )
    loop: bpy.props.BoolProperty(name="Seamless Loop", default=True)
    overscan: bpy.props.BoolProperty(
        name="Overscan", description="Zoom in just enough never to show past the photo's edge", default=True
    )
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)
    pivot_layer: bpy.props.IntProperty(
        name="Pivot Layer", description="Layer whose depth is the pivot and focus (-1: automatic)", default=-1, min=-1
    )
    pivot_depth: bpy.props.FloatProperty(
        name="Pivot Depth",
        description="Depth picked in the viewport for the pivot and focus (0: use the pivot layer or automatic)",
        default=0.0,
        min=0.0,
    )
    use_dof: bpy.props.BoolProperty(name="Depth of Field", description="Focus on the pivot", default=False)
    fstop: bpy.props.FloatProperty(name="F-Stop", default=2.8, min=0.1, max=128.0)

    resolution: bpy.props.EnumProperty(
        name="Resolution", items=[(r, r.replace("_", " ").title(), "") for r in RESOLUTIONS], default="PHOTO"
    )
    fps: bpy.props.EnumProperty(name="Frame Rate", items=[(str(f), f"{f} fps", "") for f in FRAME_RATES])
    quality: bpy.props.EnumProperty(name="Quality", items=[(q, q.title(), "") for q in QUALITY], default="FINAL")
    output: bpy.props.EnumProperty(name="Output", items=[(o, o, "") for o in OUTPUTS], default="MP4")
    motion_blur: bpy.props.BoolProperty(name="Motion Blur", default=True)
    filepath: bpy.props.StringProperty(name="Output Path", default="//photo3d_render/", subtype="FILE_PATH")


Photo3DSceneSettings.__annotations__.update(effect_properties())


def path_settings(settings: Photo3DSceneSettings, collection: bpy.types.Collection, fps: float) -> PathSettings:
    """The scene's camera-path choices as ``PathSettings`` for ``collection``."""
    if settings.pivot_depth > 0.0:  # picked in the viewport
        pivot = float(settings.pivot_depth)
    elif settings.pivot_layer >= 0:
        pivot = pivot_depth_from_layer(collection, settings.pivot_layer)
    else:
        pivot = None
    return PathSettings(
        preset=settings.path_preset,
        amplitude=None if settings.use_safe_amplitude else settings.amplitude,
        duration_frames=settings.duration,
        easing=settings.easing,
        loop=settings.loop,
        pivot_depth=pivot,
        seed=settings.seed,
        fps=fps,
        overscan=settings.overscan,
    )


class PHOTO3D_OT_apply_camera_path(bpy.types.Operator):
    """Key the photo's camera along the chosen path (replaces a path applied before)"""

    bl_idname = "photo3d.apply_camera_path"
    bl_label = "Apply Camera Path"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        collection = active_photo_collection(context)
        if collection is None:
            self.report({"ERROR"}, NO_PHOTO)
            return {"CANCELLED"}
        settings = context.scene.photo3d
        if (
            settings.pivot_depth <= 0.0
            and settings.pivot_layer >= 0
            and not any(o.get("photo3d_layer") == settings.pivot_layer for o in collection.objects)
        ):
            self.report({"ERROR"}, f"{collection.name} has no layer {settings.pivot_layer}")
            return {"CANCELLED"}
        fps = context.scene.render.fps / context.scene.render.fps_base
        path = path_settings(settings, collection, fps)
        try:
            apply_preset(collection, path, context.scene, fstop=settings.fstop if settings.use_dof else None)
        except ValueError as exc:
            self.report({"ERROR"}, f"Photo3D: {exc}")
            return {"CANCELLED"}
        ratio = reveal_ratio(path, scene_info_from_collection(collection, path.pivot_depth))
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
        collection = active_photo_collection(context)
        camera = photo_camera(collection) if collection is not None else None
        if camera is None:
            self.report({"ERROR"}, "No Photo3D camera here")
            return {"CANCELLED"}
        clear_camera_path(camera)
        return {"FINISHED"}


def render_settings(settings: Photo3DSceneSettings) -> RenderSettings:
    return RenderSettings(
        resolution=settings.resolution,
        fps=int(settings.fps),
        quality=settings.quality,
        output=settings.output,
        motion_blur=settings.motion_blur,
        filepath=settings.filepath,
    )


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


class VIEW3D_PT_photo3d(bpy.types.Panel):
    bl_label = "Photo3D"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Photo3D"

    def draw(self, context):
        layout = self.layout
        collection = active_photo_collection(context)
        layout.operator("photo3d.import_image", icon="IMAGE_DATA")
        if collection is None:
            layout.label(text="Import a photo to begin")
            return
        settings = context.scene.photo3d
        box = layout.box()
        box.label(text=collection.name, icon="OUTLINER_COLLECTION")
        for obj in sorted((o for o in collection.objects if "photo3d_layer" in o), key=lambda o: -o["photo3d_layer"]):
            row = box.row(align=True)
            row.prop(obj, "hide_viewport", text="", emboss=False)
            row.prop(obj, "hide_render", text="", emboss=False)
            depth = obj.get("photo3d_plane_depth") or (obj.get("photo3d_depth_range") or [0.0])[0]
            row.label(text=f"{obj['photo3d_layer']}: {obj.name}  ({depth:.2f} m)")

        box = layout.box()
        box.label(text="Camera Path", icon="CAMERA_DATA")
        box.prop(settings, "path_preset")
        box.prop(settings, "use_safe_amplitude")
        row = box.row()
        row.enabled = not settings.use_safe_amplitude
        row.prop(settings, "amplitude")
        if settings.use_safe_amplitude:
            info = scene_info_from_collection(collection)
            box.label(text=f"Safe amplitude: {safe_amplitude(settings.path_preset, info):.3f}")
        for name in ("duration", "easing", "loop", "overscan", "pivot_layer"):
            box.prop(settings, name)
        row = box.row(align=True)
        row.prop(settings, "pivot_depth")
        row.operator(PHOTO3D_OT_pick_pivot.bl_idname, text="", icon="EYEDROPPER")
        box.prop(settings, "use_dof")
        if settings.use_dof:
            box.prop(settings, "fstop")
        if settings.path_preset == "HANDHELD":
            box.prop(settings, "seed")
        camera = photo_camera(collection)
        if camera is not None and camera.get("photo3d_path"):
            box.label(text=f"Current path: {camera['photo3d_path']}")
        row = box.row()
        row.operator(PHOTO3D_OT_apply_camera_path.bl_idname, icon="ANIM")
        row.operator(PHOTO3D_OT_clear_camera_path.bl_idname, icon="X")

        draw_effects(layout, context.scene)

        box = layout.box()
        box.label(text="Render", icon="RENDER_ANIMATION")
        for name in ("resolution", "fps", "quality", "output", "motion_blur", "filepath"):
            box.prop(settings, name)
        row = box.row()
        row.operator(PHOTO3D_OT_render.bl_idname, text="Render Still", icon="RENDER_STILL").still = True
        row.operator(PHOTO3D_OT_render.bl_idname, icon="RENDER_ANIMATION").still = False


classes = (
    *effect_classes,
    Photo3DSceneSettings,
    PHOTO3D_OT_apply_camera_path,
    PHOTO3D_OT_clear_camera_path,
    PHOTO3D_OT_render,
    VIEW3D_PT_photo3d,
)


def register() -> None:
    bpy.types.Scene.photo3d = bpy.props.PointerProperty(type=Photo3DSceneSettings)


def unregister() -> None:
    del bpy.types.Scene.photo3d
