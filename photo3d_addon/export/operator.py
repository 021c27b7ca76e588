"""File > Export > Photo3D Comp Package, and the sidebar's Export button (the same operator).

Thin: it checks there is a photo, asks for a folder and the formats, and runs ``run.ExportTask`` the one way
long work runs (``ui.task_operator``): a progress bar, Esc cancels between EXR frames. Errors are reported
with ``self.report`` and leave nothing written.
"""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, StringProperty

from ...core.errors import Photo3DError
from ..scene.photo_scene import NO_PHOTO, NotAPhoto, PhotoScene
from ..ui.task_operator import TaskOperator
from .run import FORMATS, ExportTask

LABELS = {
    "usd": ("USD", "scene.usda: layer cards, materials and the camera (Nuke, Houdini, Blender)"),
    "gltf": ("glTF", "scene.glb: unlit cards and the camera (After Effects 24.1+, web viewers)"),
    "chan": ("Nuke .chan", "camera.chan: the camera per frame for a classic Nuke Camera"),
    "exr": ("EXR frames", "exr/*.exr: beauty, and RGBA, Z and a matte per layer, rendered with Eevee (slow)"),
    "deep": ("Deep EXR", "exr/*_deep.exr: one deep sample per layer per pixel, for Nuke's DeepRead (slow)"),
    "abc": ("Alembic camera", "camera.abc: the camera through Blender's Alembic exporter"),
    "fbx": ("FBX camera", "camera.fbx: the camera through Blender's FBX exporter"),
}


class PHOTO3D_OT_export_comp(TaskOperator, bpy.types.Operator):
    """Export the photo's layers and camera as a comp package: USD, glTF, Nuke .chan, Alembic and FBX"""

    bl_idname = "photo3d.export_comp"
    bl_label = "Export Comp Package"
    bl_options = {"REGISTER"}
    task_title = "Photo3D export"

    directory: StringProperty(name="Folder", subtype="DIR_PATH", description="The comp package folder to write")
    use_usd: BoolProperty(name=LABELS["usd"][0], description=LABELS["usd"][1], default=True)
    use_gltf: BoolProperty(name=LABELS["gltf"][0], description=LABELS["gltf"][1], default=True)
    use_chan: BoolProperty(name=LABELS["chan"][0], description=LABELS["chan"][1], default=True)
    use_exr: BoolProperty(name=LABELS["exr"][0], description=LABELS["exr"][1], default=False)
    use_deep: BoolProperty(name=LABELS["deep"][0], description=LABELS["deep"][1], default=False)
    use_abc: BoolProperty(name=LABELS["abc"][0], description=LABELS["abc"][1], default=True)
    use_fbx: BoolProperty(name=LABELS["fbx"][0], description=LABELS["fbx"][1], default=True)

    @classmethod
    def poll(cls, context):
        return PhotoScene.active(context) is not None

    def formats(self) -> list[str]:
        return [name for name in FORMATS if getattr(self, f"use_{name}")]

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        photo = PhotoScene.active(context)
        if photo is None:
            self.report({"ERROR"}, NO_PHOTO)
            return {"CANCELLED"}
        if not self.directory:
            self.report({"ERROR"}, "Photo3D: choose a folder for the comp package")
            return {"CANCELLED"}
        target = bpy.path.abspath(self.directory).rstrip("/\\") or self.directory
        try:
            task = ExportTask(photo, target, self.formats())
            return self.run_task(context, task)
        except (Photo3DError, NotAPhoto) as exc:
            self.report({"ERROR"}, f"Photo3D: {exc}")
            return {"CANCELLED"}

    def task_finished(self, context):
        task = self._task
        if task.error is not None:
            self.report({"ERROR"}, f"Photo3D: {task.error}")
            return {"CANCELLED"}
        for warning in task.result.warnings:
            self.report({"WARNING"}, f"Photo3D: {warning}")
        self.report({"INFO"}, f"Photo3D: comp package written to {task.result.folder} ({', '.join(task.result.files)})")
        return {"FINISHED"}


def menu_export(self, context):
    self.layout.operator(PHOTO3D_OT_export_comp.bl_idname, text="Photo3D Comp Package (.usda, .glb, .chan)")


classes = (PHOTO3D_OT_export_comp,)
MENUS = ((bpy.types.TOPBAR_MT_file_export, menu_export),)
