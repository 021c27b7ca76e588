"""The "Image to 3D Layers" operator, its drag-and-drop handler and menu entries.

The operator only validates and gathers the choices; the import service (``service``) sends the photos to the
worker, run by the one task pattern (``ui.task_operator``): modal in the UI, where Esc returns at once,
blocking in background mode. The scene is touched only once a package is complete and valid.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from ...core.package import read_package
from ...core.video.package import read_video_package
from ..scene.builder import BuildSettings, build_scene
from ..scene.video_builder import build_video_scene
from ..ui.preferences import addon_id, get_preferences, resolve_worker, resolved_models_dir
from ..ui.task_operator import TaskOperator
from ..worker.client import WorkerError, shared_worker
from ..worker.downloads import missing_models_message
from ..worker.environment import missing_worker_message
from .choices import (
    DEFAULTS,
    DEPTH_KIND_ITEMS,
    DEPTH_SOURCE_ITEMS,
    FOOTAGE_EXTENSIONS,
    IMAGE_EXTENSIONS,
    INPAINT_ITEMS,
    MAX_LAYERS,
    MIN_LAYERS,
    QUALITY_ITEMS,
    REPRESENTATION_ITEMS,
    ChoiceError,
    ImportChoices,
    catalog_models,
    check_image_path,
    pipeline_options,
)
from .service import ImportService, PhotoOutcome

# The choices whose defaults come from the preferences (``default_<name>``).
_DEFAULTED = ("representation", "layers", "quality", "inpaint", "segmentation")


def packages_root(prefs) -> Path:
    """Where this import's package goes: the preference, next to the saved .blend, or the user folder."""
    if prefs.packages_dir:
        return Path(bpy.path.abspath(prefs.packages_dir))
    if bpy.data.filepath:
        return Path(bpy.data.filepath).parent / "photo3d_packages"
    return Path(bpy.utils.extension_path_user(addon_id(), path="packages", create=True))


class PHOTO3D_OT_import_image(TaskOperator, bpy.types.Operator):
    """Turn a photograph into a layered 3D scene with a camera that sees exactly the photo"""

    bl_idname = "photo3d.import_image"
    bl_label = "Image to 3D Layers"
    bl_options = {"REGISTER", "UNDO"}
    task_title = "Photo3D import"

    filepath: bpy.props.StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})
    directory: bpy.props.StringProperty(subtype="DIR_PATH", options={"SKIP_SAVE", "HIDDEN"})
    files: bpy.props.CollectionProperty(type=bpy.types.OperatorFileListElement, options={"SKIP_SAVE", "HIDDEN"})
    filter_glob: bpy.props.StringProperty(
        default=";".join(f"*{ext}" for ext in IMAGE_EXTENSIONS + FOOTAGE_EXTENSIONS), options={"HIDDEN"}
    )
    filter_image: bpy.props.BoolProperty(default=True, options={"HIDDEN"})

    representation: bpy.props.EnumProperty(
        name="Representation", items=REPRESENTATION_ITEMS, default=DEFAULTS.representation
    )
    layers: bpy.props.IntProperty(
        name="Layers", description="Most depth layers", default=DEFAULTS.layers, min=MIN_LAYERS, max=MAX_LAYERS
    )
    quality: bpy.props.EnumProperty(name="Quality", items=QUALITY_ITEMS, default=DEFAULTS.quality)
    depth_source: bpy.props.EnumProperty(name="Depth", items=DEPTH_SOURCE_ITEMS, default=DEFAULTS.depth_source)
    depth_file: bpy.props.StringProperty(name="Depth File", subtype="FILE_PATH")
    depth_kind: bpy.props.EnumProperty(name="Depth File Holds", items=DEPTH_KIND_ITEMS, default=DEFAULTS.depth_kind)
    depth_scale: bpy.props.FloatProperty(
        name="Depth Scale", description="Stored values are divided by this", default=DEFAULTS.depth_scale, min=1e-6
    )
    segmentation: bpy.props.BoolProperty(
        name="Segmentation",
        description="Cut layers along Segment Anything masks (off: superpixels)",
        default=DEFAULTS.segmentation,
    )
    inpaint: bpy.props.EnumProperty(name="Inpainting", items=INPAINT_ITEMS, default=DEFAULTS.inpaint)

    # -- entry points -----------------------------------------------------------------------------------
    def invoke(self, context, event):
        prefs = get_preferences(context)
        for name in _DEFAULTED:
            if not self.properties.is_property_set(name):
                setattr(self, name, getattr(prefs, f"default_{name}"))
        if self.filepath or self.files:
            # Dropped on the viewport: the file is known, show the options.
            return context.window_manager.invoke_props_dialog(self, width=360, confirm_text="Import")
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        for name in ("representation", "layers", "quality", "depth_source"):
            layout.prop(self, name)
        if self.depth_source == "FILE":
            layout.prop(self, "depth_file")
            layout.prop(self, "depth_kind")
            layout.prop(self, "depth_scale")
        layout.prop(self, "segmentation")
        layout.prop(self, "inpaint")

    def execute(self, context):
        prefs = get_preferences(context)
        try:
            images = self._chosen_images()
            launch = resolve_worker(prefs)
            if launch is None:
                raise ChoiceError(missing_worker_message())
            choices = self._choices(prefs)
            # The default networks are the model manager's: say which are missing, and the button that
            # fetches them, before any work starts.
            missing = missing_models_message(catalog_models(choices), choices.models_dir, bpy.app.online_access)
            if missing:
                raise ChoiceError(missing)
            options = pipeline_options(choices)
            root = packages_root(prefs)
        except (ChoiceError, OSError) as exc:
            self.report({"ERROR"}, f"Photo3D: {exc}")
            return {"CANCELLED"}
        self._built: list[str] = []
        service = ImportService(images, options, root, lambda: shared_worker(launch), self._take_result)
        try:
            return self.run_task(context, service)
        except WorkerError as exc:
            self.report({"ERROR"}, f"Photo3D: {exc}")
            return {"CANCELLED"}

    def task_finished(self, context):
        return {"FINISHED"} if self._built else {"CANCELLED"}

    def task_cancelled(self, context):
        self.report({"WARNING"}, "Photo3D import cancelled; the scene is unchanged")
        return {"FINISHED"} if self._built else {"CANCELLED"}

    # -- steps ------------------------------------------------------------------------------------------
    def _choices(self, prefs) -> ImportChoices:
        return ImportChoices(
            representation=self.representation,
            layers=self.layers,
            quality=self.quality,
            depth_source=self.depth_source,
            depth_file=bpy.path.abspath(self.depth_file) if self.depth_file else "",
            depth_kind=self.depth_kind,
            depth_scale=self.depth_scale,
            segmentation=self.segmentation,
            inpaint=self.inpaint,
            device=prefs.device,
            models_dir=resolved_models_dir(prefs),
            allow_download=prefs.allow_download and bpy.app.online_access,
        )

    def _chosen_images(self) -> list[Path]:
        if self.files and self.directory:
            paths = [str(Path(self.directory) / item.name) for item in self.files if item.name]
        else:
            paths = [bpy.path.abspath(self.filepath)] if self.filepath else []
        if not paths:
            raise ChoiceError("no image was chosen")
        return [check_image_path(path) for path in paths]

    def _take_result(self, outcome: PhotoOutcome) -> None:
        """A photo is through the worker: build its scene, or say why not (the photos after it go on)."""
        if not outcome.ok:
            self.report({"ERROR"}, f"Photo3D: {outcome.image.name}: {outcome.state.describe_error()}")
            return
        if outcome.state.kind == "video":
            self._take_footage(outcome)
            return
        try:
            package = read_package(outcome.package)
            # The scene of the moment the photo finishes (a modal operator's own context does not last).
            photo = build_scene(package, bpy.context.scene, BuildSettings(photo=str(outcome.image)))
        except Exception as exc:  # the package or Blender refused: say so, leave the scene as it was
            self.report({"ERROR"}, f"Photo3D: could not build the scene from {outcome.package}: {exc}")
            return
        total = sum(outcome.state.timings.values())
        self._built.append(photo.name)
        self.report({"INFO"}, f"Photo3D: {photo.name}: {len(package.layers)} layers in {total:.1f} s")

    def _take_footage(self, outcome: PhotoOutcome) -> None:
        """Footage is through the worker: build the scene that plays its layered video package."""
        try:
            package = read_video_package(outcome.package)
            collection = build_video_scene(package, bpy.context.scene)
        except Exception as exc:  # the package or Blender refused: say so
            self.report({"ERROR"}, f"Photo3D: could not build the scene from {outcome.package}: {exc}")
            return
        self._built.append(collection.name)
        frames, shots = len(package.manifest.frames), len(package.manifest.shots)
        self.report({"INFO"}, f"Photo3D: {collection.name}: {frames} frames in {shots} shots")


class PHOTO3D_FH_image(bpy.types.FileHandler):
    """Drop a photo on the 3D Viewport to turn it into layers."""

    bl_idname = "PHOTO3D_FH_image"
    bl_label = "Photo3D: Image to 3D Layers"
    bl_import_operator = PHOTO3D_OT_import_image.bl_idname
    bl_file_extensions = ";".join(IMAGE_EXTENSIONS + FOOTAGE_EXTENSIONS)

    @classmethod
    def poll_drop(cls, context):
        return context.area is not None and context.area.type == "VIEW_3D"


def menu_import(self, context):
    self.layout.operator(PHOTO3D_OT_import_image.bl_idname, text="Image to 3D Layers (Photo3D)", icon="IMAGE_DATA")


def menu_add(self, context):
    self.layout.operator(PHOTO3D_OT_import_image.bl_idname, text="Image to 3D Layers", icon="IMAGE_DATA")


classes = (PHOTO3D_OT_import_image, PHOTO3D_FH_image)
MENUS = ((bpy.types.TOPBAR_MT_file_import, menu_import), (bpy.types.VIEW3D_MT_add, menu_add))
