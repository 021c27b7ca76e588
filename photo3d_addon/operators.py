"""The "Image to 3D Layers" operator, its drag-and-drop handler and menu entries.

The operator validates, hands the photo to the worker and polls it from a timer (never blocking Blender);
in background mode it waits instead. The scene is touched only once a package is complete and valid.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from ..core.package import read_package
from .import_job import ImportJob, JobState, package_dir_for
from .job_options import IMAGE_EXTENSIONS, ChoiceError, ImportChoices, check_image_path, pipeline_options
from .preferences import (
    INPAINT_ITEMS,
    QUALITY_ITEMS,
    REPRESENTATION_ITEMS,
    addon_id,
    get_preferences,
    resolve_worker_python,
)
from .scene_builder import BuildSettings, build_scene
from .worker_client import WorkerError, shared_worker
from .worker_env import missing_worker_message

_DEFAULTED = ("representation", "layers", "quality", "inpaint", "segmentation")


def packages_root(prefs) -> Path:
    """Where this import's package goes: the preference, next to the saved .blend, or the user folder."""
    if prefs.packages_dir:
        return Path(bpy.path.abspath(prefs.packages_dir))
    if bpy.data.filepath:
        return Path(bpy.data.filepath).parent / "photo3d_packages"
    return Path(bpy.utils.extension_path_user(addon_id(), path="packages", create=True))


class PHOTO3D_OT_import_image(bpy.types.Operator):
    """Turn a photograph into a layered 3D scene with a camera that sees exactly the photo"""

    bl_idname = "photo3d.import_image"
    bl_label = "Image to 3D Layers"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE"})
    directory: bpy.props.StringProperty(subtype="DIR_PATH", options={"SKIP_SAVE", "HIDDEN"})
    files: bpy.props.CollectionProperty(type=bpy.types.OperatorFileListElement, options={"SKIP_SAVE", "HIDDEN"})
    filter_glob: bpy.props.StringProperty(default=";".join(f"*{ext}" for ext in IMAGE_EXTENSIONS), options={"HIDDEN"})
    filter_image: bpy.props.BoolProperty(default=True, options={"HIDDEN"})

    representation: bpy.props.EnumProperty(name="Representation", items=REPRESENTATION_ITEMS)
    layers: bpy.props.IntProperty(name="Layers", description="Most depth layers", default=5, min=1, max=16)
    quality: bpy.props.EnumProperty(name="Quality", items=QUALITY_ITEMS, default="STANDARD")
    depth_source: bpy.props.EnumProperty(
        name="Depth",
        items=[
            ("MODEL", "Depth Model", "Estimate depth with the depth network"),
            ("FILE", "Depth File", "Use a depth or disparity map you have (PNG, PFM, EXR, NPY, ...)"),
        ],
    )
    depth_file: bpy.props.StringProperty(name="Depth File", subtype="FILE_PATH")
    depth_kind: bpy.props.EnumProperty(
        name="Depth File Holds",
        items=[("DEPTH", "Depth", "Distance along the view axis, in metres"), ("DISPARITY", "Disparity", "")],
    )
    depth_scale: bpy.props.FloatProperty(
        name="Depth Scale", description="Stored values are divided by this", default=1.0, min=1e-6
    )
    segmentation: bpy.props.BoolProperty(
        name="Segmentation", description="Cut layers along Segment Anything masks (off: superpixels)", default=True
    )
    inpaint: bpy.props.EnumProperty(name="Inpainting", items=INPAINT_ITEMS, default="TELEA")

    _timer = None
    _job = None  # the ImportJob in flight (a plain attribute: annotations here would be read as properties)

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
            self._images = self._chosen_images()
            self._options = pipeline_options(self._choices(prefs))
            found = resolve_worker_python(prefs)
            if found is None:
                raise ChoiceError(missing_worker_message())
            self._client = shared_worker(str(found[1]))
            self._root = packages_root(prefs)
        except (ChoiceError, WorkerError, OSError) as exc:
            self.report({"ERROR"}, f"Photo3D: {exc}")
            return {"CANCELLED"}
        self._built = []
        if bpy.app.background or context.window is None:
            return self._run_blocking(context)
        if not self._start_next_reporting():
            return self._finished(context)
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0.0, 1.0)
        self._show_progress(context)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC" and event.value == "PRESS":
            self._job.cancel()
            self._job.wait_cancelled()
            self._end_ui(context)
            self.report({"WARNING"}, "Photo3D import cancelled; the scene is unchanged")
            return {"CANCELLED"} if not self._built else {"FINISHED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        state = self._job.poll()
        self._show_progress(context)
        if not state.finished:
            return {"PASS_THROUGH"}
        self._take_result(context, state)
        if self._start_next_reporting():
            return {"PASS_THROUGH"}
        self._end_ui(context)
        return self._finished(context)

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
            models_dir=bpy.path.abspath(prefs.models_dir) if prefs.models_dir else "",
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

    def _start_next(self) -> bool:
        """Send the next photo to the worker; False when none is left."""
        if not self._images:
            return False
        image = self._images.pop(0)
        if not self._client.alive:  # a worker that died on an earlier photo is replaced
            self._client = shared_worker(self._client.python)
        output = package_dir_for(image, self._root)
        self._job = ImportJob(self._client, str(image), str(output), self._options)
        self._job.start()
        return True

    def _start_next_reporting(self) -> bool:
        """``_start_next``, with a worker that cannot start reported instead of raised (photos left are skipped)."""
        try:
            return self._start_next()
        except WorkerError as exc:
            self.report({"ERROR"}, f"Photo3D: {exc}")
            self._images = []
            return False

    def _take_result(self, context, state: JobState) -> None:
        if state.status != "done":
            self.report({"ERROR"}, f"Photo3D: {Path(self._job.request['image']).name}: {state.describe_error()}")
            return
        try:
            package = read_package(state.package)
            collection = build_scene(package, context.scene, BuildSettings(photo=self._job.request["image"]))
        except Exception as exc:  # the package or Blender refused: say so, leave the scene as it was
            self.report({"ERROR"}, f"Photo3D: could not build the scene from {state.package}: {exc}")
            return
        total = sum(state.timings.values())
        self._built.append(collection.name)
        self.report({"INFO"}, f"Photo3D: {collection.name}: {len(package.layers)} layers in {total:.1f} s")

    def _run_blocking(self, context):
        last = [""]

        def show(state: JobState) -> None:
            line = f"Photo3D: {state.stage} {state.overall:.0%}"
            if line != last[0]:
                print(line, flush=True)
                last[0] = line

        while self._start_next_reporting():
            try:
                state = self._job.wait(on_progress=show)
            except KeyboardInterrupt:
                self.report({"WARNING"}, "Photo3D import cancelled")
                return {"CANCELLED"}
            self._take_result(context, state)
        return self._finished(context)

    def _finished(self, context):
        return {"FINISHED"} if self._built else {"CANCELLED"}

    def _show_progress(self, context) -> None:
        state = self._job.state if self._job else None
        if state is None:
            return
        context.window_manager.progress_update(state.overall)
        name = Path(self._job.request["image"]).name
        context.workspace.status_text_set(
            f"Photo3D: {name}: {state.stage or 'starting'} {state.overall:.0%} (Esc to cancel)"
        )

    def _end_ui(self, context) -> None:
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        context.workspace.status_text_set(None)


class PHOTO3D_FH_image(bpy.types.FileHandler):
    """Drop a photo on the 3D Viewport to turn it into layers."""

    bl_idname = "PHOTO3D_FH_image"
    bl_label = "Photo3D: Image to 3D Layers"
    bl_import_operator = PHOTO3D_OT_import_image.bl_idname
    bl_file_extensions = ";".join(IMAGE_EXTENSIONS)

    @classmethod
    def poll_drop(cls, context):
        return context.area is not None and context.area.type == "VIEW_3D"


def menu_import(self, context):
    self.layout.operator(PHOTO3D_OT_import_image.bl_idname, text="Image to 3D Layers (Photo3D)", icon="IMAGE_DATA")


def menu_add(self, context):
    self.layout.operator(PHOTO3D_OT_import_image.bl_idname, text="Image to 3D Layers", icon="IMAGE_DATA")


classes = (PHOTO3D_OT_import_image, PHOTO3D_FH_image)
MENUS = ((bpy.types.TOPBAR_MT_file_import, menu_import), (bpy.types.VIEW3D_MT_add, menu_add))
