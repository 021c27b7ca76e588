"""Add-on preferences: the worker's Python, model weights, device, default import options, and the button
that sets up a managed worker environment."""

from __future__ import annotations

import sys
from pathlib import Path

import bpy

from .. import EXTENSION_ID
from ..importing.choices import (
    DEFAULTS,
    DEVICE_ITEMS,
    INPAINT_ITEMS,
    MAX_LAYERS,
    MIN_LAYERS,
    QUALITY_ITEMS,
    REPRESENTATION_ITEMS,
)
from ..worker.environment import MANAGED_ENV_NAME, EnvironmentSetup, find_worker_python, missing_worker_message
from .task_operator import TaskOperator


def addon_id() -> str:
    """The extension's package name (``bl_ext.<repo>.photo3d``), which keys its preferences."""
    return EXTENSION_ID


def get_preferences(context: bpy.types.Context | None = None) -> Photo3DPreferences:
    context = context or bpy.context
    return context.preferences.addons[addon_id()].preferences


def managed_env_dir(create: bool = False) -> Path | None:
    """The managed worker environment's folder under the extension's user folder."""
    try:
        return Path(bpy.utils.extension_path_user(addon_id(), path=MANAGED_ENV_NAME, create=create))
    except ValueError:  # not running as an installed extension (e.g. a legacy add-on install)
        return None


def resolve_worker_python(prefs: Photo3DPreferences) -> tuple[str, Path] | None:
    return find_worker_python(bpy.path.abspath(prefs.worker_python) if prefs.worker_python else "", managed_env_dir())


# The one running environment set-up, shared by the operator and the preferences' draw.
_setup: EnvironmentSetup | None = None


class PHOTO3D_OT_setup_worker_env(TaskOperator, bpy.types.Operator):
    """Create a Python environment for the Photo3D worker and install its packages (needs online access)"""

    bl_idname = "photo3d.setup_worker_env"
    bl_label = "Set Up Worker Environment"
    task_title = "Photo3D worker set-up"

    def execute(self, context):
        global _setup
        if not bpy.app.online_access:
            self.report(
                {"ERROR"},
                "Online access is disabled (Preferences > System > Network). Allow it to install the worker's "
                "packages, or set 'Worker Python' to an environment you installed yourself.",
            )
            return {"CANCELLED"}
        if _setup is not None and not _setup.done:
            self.report({"WARNING"}, "The worker environment is already being set up")
            return {"CANCELLED"}
        env_dir = managed_env_dir(create=True)
        if env_dir is None:
            self.report({"ERROR"}, "Photo3D is not installed as an extension; set 'Worker Python' instead")
            return {"CANCELLED"}
        _setup = EnvironmentSetup(env_dir, sys.executable)
        return self.run_task(context, _setup)

    def task_finished(self, context):
        if _setup.error:
            self.report({"ERROR"}, f"Worker environment set-up failed: {_setup.error}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Worker environment {_setup.message}")
        return {"FINISHED"}


class PHOTO3D_OT_stop_worker(bpy.types.Operator):
    """Stop the background worker (it starts again on the next import)"""

    bl_idname = "photo3d.stop_worker"
    bl_label = "Stop Worker"

    def execute(self, context):
        from ..worker.client import stop_shared_worker

        stop_shared_worker()
        return {"FINISHED"}


class Photo3DPreferences(bpy.types.AddonPreferences):
    bl_idname = addon_id()

    worker_python: bpy.props.StringProperty(
        name="Worker Python",
        description="Python interpreter with the Photo3D worker packages (torch, transformers, opencv). "
        "Empty: the managed environment, or the project's .venv",
        subtype="FILE_PATH",
    )
    models_dir: bpy.props.StringProperty(
        name="Models Folder",
        description="Folder holding model weights (owner--name folders for depth and SAM, big-lama.pt)",
        subtype="DIR_PATH",
    )
    packages_dir: bpy.props.StringProperty(
        name="Packages Folder",
        description="Where layer packages are written. Empty: next to the saved .blend, or the extension's "
        "user folder for an unsaved file",
        subtype="DIR_PATH",
    )
    device: bpy.props.EnumProperty(name="Device", items=DEVICE_ITEMS, default=DEFAULTS.device)
    allow_download: bpy.props.BoolProperty(
        name="Download Missing Models",
        description="Let the worker download missing weights from the Hugging Face hub (only with online access)",
        default=False,
    )
    default_representation: bpy.props.EnumProperty(
        name="Representation", items=REPRESENTATION_ITEMS, default=DEFAULTS.representation
    )
    default_layers: bpy.props.IntProperty(name="Layers", default=DEFAULTS.layers, min=MIN_LAYERS, max=MAX_LAYERS)
    default_quality: bpy.props.EnumProperty(name="Quality", items=QUALITY_ITEMS, default=DEFAULTS.quality)
    default_inpaint: bpy.props.EnumProperty(name="Inpainting", items=INPAINT_ITEMS, default=DEFAULTS.inpaint)
    default_segmentation: bpy.props.BoolProperty(name="Segmentation (SAM)", default=DEFAULTS.segmentation)

    def draw(self, context) -> None:
        layout = self.layout
        box = layout.box()
        box.label(text="Worker")
        box.prop(self, "worker_python")
        found = resolve_worker_python(self)
        if found is None:
            box.label(text=missing_worker_message()[:120] + "...", icon="ERROR")
        else:
            origin, path = found
            icon = "CHECKMARK" if path.is_file() else "ERROR"
            box.label(text=f"Using {path} ({origin})", icon=icon)
        row = box.row()
        if _setup is not None and not _setup.done:
            row.label(text=f"Setting up: {_setup.message} ({_setup.progress:.0%})", icon="TIME")
        else:
            sub = row.row()
            sub.enabled = bpy.app.online_access
            sub.operator(PHOTO3D_OT_setup_worker_env.bl_idname, icon="CONSOLE")
            row.operator(PHOTO3D_OT_stop_worker.bl_idname, icon="CANCEL")
            if not bpy.app.online_access:
                box.label(text="Online access is off: allow it under System > Network to set up the environment")
            if _setup is not None and _setup.error:
                box.label(text=f"Last set-up failed: {_setup.error.splitlines()[0]}", icon="ERROR")
        box.prop(self, "device")
        box = layout.box()
        box.label(text="Files")
        box.prop(self, "models_dir")
        box.prop(self, "packages_dir")
        row = box.row()
        row.enabled = bpy.app.online_access
        row.prop(self, "allow_download")
        box = layout.box()
        box.label(text="Import defaults")
        box.prop(self, "default_representation")
        box.prop(self, "default_layers")
        box.prop(self, "default_quality")
        box.prop(self, "default_inpaint")
        box.prop(self, "default_segmentation")


classes = (PHOTO3D_OT_setup_worker_env, PHOTO3D_OT_stop_worker, Photo3DPreferences)
