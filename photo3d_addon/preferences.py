"""Add-on preferences: where the worker's Python and the model weights live."""

from __future__ import annotations

import bpy


def _package_name() -> str:
    # Installed as bl_ext.<repo>.photo3d: preferences are keyed by the extension's package name.
    return __package__.rsplit(".", 1)[0]


class Photo3DPreferences(bpy.types.AddonPreferences):
    bl_idname = _package_name()

    worker_python: bpy.props.StringProperty(
        name="Worker Python",
        description="Python interpreter with the Photo3D worker dependencies (torch, transformers, opencv)",
        subtype="FILE_PATH",
    )
    models_dir: bpy.props.StringProperty(
        name="Models Folder",
        description="Folder holding model weights (depth, segmentation, big-lama.pt)",
        subtype="DIR_PATH",
    )
    device: bpy.props.EnumProperty(
        name="Device",
        items=[("auto", "Auto", "GPU when available"), ("cpu", "CPU", ""), ("cuda", "CUDA", "NVIDIA GPU")],
        default="auto",
    )

    def draw(self, context) -> None:
        layout = self.layout
        layout.prop(self, "worker_python")
        layout.prop(self, "models_dir")
        layout.prop(self, "device")
