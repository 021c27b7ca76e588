"""Add-on preferences: the worker's Python, model weights, device, default import options, and the button
that sets up a managed worker environment."""

from __future__ import annotations

import sys
from pathlib import Path

import bpy

from ...core.models.catalog import active_catalog, find_model
from ...core.models.download import destination, model_status, offline_instructions
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
from ..worker.client import WorkerLaunch, remember_launch
from ..worker.downloads import DOWNLOAD_BUTTON, MODELS_FOLDER_NAME, ModelDownload
from ..worker.environment import (
    EXTENSION_SITE_PACKAGES,
    MANAGED_ENV_NAME,
    BlenderPython,
    EnvironmentSetup,
    bundled_problem,
    describe_worker,
    find_worker,
    missing_worker_message,
)
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


def resolved_models_dir(prefs: Photo3DPreferences, create: bool = False) -> str:
    """The models folder: the preference when set, else ``models`` in the extension's user folder."""
    if prefs.models_dir:
        return bpy.path.abspath(prefs.models_dir)
    try:
        return bpy.utils.extension_path_user(addon_id(), path=MODELS_FOLDER_NAME, create=create)
    except ValueError:  # not running as an installed extension
        return ""


def blender_python() -> BlenderPython:
    """Blender's own Python, how Blender asks it to be run, and where it extracted the bundled wheels."""
    return BlenderPython(
        executable=sys.executable,
        python_args=tuple(bpy.app.python_args),
        site_packages=bpy.utils.user_resource("EXTENSIONS", path=EXTENSION_SITE_PACKAGES),
    )


def resolve_worker(prefs: Photo3DPreferences) -> WorkerLaunch | None:
    """The worker the preferences choose: a configured or managed torch worker, else the bundled one."""
    configured = bpy.path.abspath(prefs.worker_python) if prefs.worker_python else ""
    launch = find_worker(configured, managed_env_dir(), blender_python())
    if launch is not None:
        # Callers that start the worker by path (shared_worker(str(path))) get this launch, the bundled
        # worker's isolated start included.
        remember_launch(launch)
    return launch


def resolve_worker_python(prefs: Photo3DPreferences) -> tuple[str, Path] | None:
    """``resolve_worker`` as (origin, interpreter path)."""
    launch = resolve_worker(prefs)
    return None if launch is None else (launch.origin, Path(launch.python))


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


# The one running model download, shared by its operator, the cancel button and the preferences' draw.
_download: ModelDownload | None = None


class PHOTO3D_OT_download_models(TaskOperator, bpy.types.Operator):
    """Download the models Photo3D needs into the Models Folder (resumes an interrupted download; every file is
    checked against its SHA-256 before it is used)"""

    bl_idname = "photo3d.download_models"
    bl_label = DOWNLOAD_BUTTON
    task_title = "Photo3D model download"

    key: bpy.props.StringProperty(name="Model", description="Catalog key; empty: every missing default model")

    def execute(self, context):
        global _download
        prefs = get_preferences(context)
        models_dir = resolved_models_dir(prefs, create=True)
        if not models_dir:
            self.report({"ERROR"}, "Set 'Models Folder' in Photo3D's preferences first")
            return {"CANCELLED"}
        try:
            catalog = active_catalog()
            models = [find_model(self.key, catalog)] if self.key else [m for m in catalog if m.default]
        except Exception as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if not bpy.app.online_access:
            self.report(
                {"ERROR"},
                "Online access is off (Preferences > System > Network). Allow it, or put these files in place "
                "by hand:\n" + (offline_instructions(models, models_dir) or "(all are already there)"),
            )
            return {"CANCELLED"}
        if _download is not None and not _download.done:
            self.report({"WARNING"}, "A model download is already running")
            return {"CANCELLED"}
        _download = ModelDownload(models, models_dir, online=True)
        return self.run_task(context, _download)

    def task_finished(self, context):
        if _download.error:
            level = {"WARNING"} if _download.cancelled else {"ERROR"}
            self.report(level, f"Model download: {_download.error}")
            return {"CANCELLED"}
        self.report({"INFO"}, "Photo3D models downloaded and verified")
        return {"FINISHED"}


class PHOTO3D_OT_cancel_model_download(bpy.types.Operator):
    """Stop the model download (the partial file is kept: the next download resumes it)"""

    bl_idname = "photo3d.cancel_model_download"
    bl_label = "Cancel Download"

    def execute(self, context):
        if _download is not None and not _download.done:
            _download.cancel()
        return {"FINISHED"}


def _draw_models(layout: bpy.types.UILayout, prefs: Photo3DPreferences) -> None:
    """The model manager: each catalog model's task, licence, size, status and where it goes."""
    box = layout.box()
    box.label(text="Models")
    models_dir = resolved_models_dir(prefs)
    box.label(text=f"Folder: {models_dir or '(set Models Folder below)'}")
    try:
        catalog = active_catalog()
    except Exception as exc:  # a bad $PHOTO3D_MODEL_MIRROR: say so instead of breaking the panel
        box.label(text=str(exc), icon="ERROR")
        return
    for model in catalog:
        status = model_status(models_dir, model) if models_dir else "missing"
        row = box.row()
        icon = "CHECKMARK" if status == "ok" else ("TIME" if status == "partial" else "ERROR")
        size = f"{model.size / 1e6:.0f} MB" if model.size else (f"~{model.approx_mb} MB" if model.approx_mb else "")
        row.label(text=f"{model.title} [{model.task}]", icon=icon)
        row.label(text=f"{model.licence}  {size}  {status}")
        if status != "ok":
            sub = row.row()
            sub.enabled = bpy.app.online_access and (_download is None or _download.done)
            sub.operator(PHOTO3D_OT_download_models.bl_idname, text="Download", icon="IMPORT").key = model.key
        if models_dir and status != "ok":
            for item in model.files:
                box.label(text=f"    -> {destination(models_dir, item)}")
    row = box.row()
    if _download is not None and not _download.done:
        share, text = _download.status
        row.label(text=f"Downloading: {text} ({share:.0%})", icon="TIME")
        row.operator(PHOTO3D_OT_cancel_model_download.bl_idname, icon="CANCEL")
    else:
        sub = row.row()
        sub.enabled = bpy.app.online_access
        sub.operator(PHOTO3D_OT_download_models.bl_idname, icon="IMPORT").key = ""
        if _download is not None and _download.error:
            box.label(text=f"Last download: {_download.error.splitlines()[0]}", icon="ERROR")
    if not bpy.app.online_access:
        box.label(text="Online access is off (System > Network): allow it, or put the files above in place by hand")


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
        description="Python interpreter with the torch worker's packages (torch, transformers, opencv). "
        "Empty: the managed environment once set up, else the bundled worker (Blender's own Python with the "
        "packages this extension ships; no torch)",
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
        launch = resolve_worker(self)
        if launch is None:
            box.label(text=missing_worker_message()[:120] + "...", icon="ERROR")
        else:
            icon = "CHECKMARK" if Path(launch.python).is_file() else "ERROR"
            box.label(text=describe_worker(launch), icon=icon)
        if launch is None or not launch.bundled:
            problem = bundled_problem(blender_python())
            box.label(text=f"Bundled worker: {problem or 'available (clear Worker Python to use it)'}", icon="INFO")
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
        _draw_models(layout, self)
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


classes = (
    PHOTO3D_OT_setup_worker_env,
    PHOTO3D_OT_download_models,
    PHOTO3D_OT_cancel_model_download,
    PHOTO3D_OT_stop_worker,
    Photo3DPreferences,
)
