"""One comp export from Blender: the spec of the scene (``spec``), the bpy-free writers (``core.export``),
the camera files only Blender writes (``blender_files``) and the EXR frames (``passes``), in one atomic comp
package.

``ExportTask`` is the export as a ``worker.task.Task``, stepped on Blender's main thread (Eevee renders
there): ``start`` writes everything but the EXR frames, each ``step`` renders one frame, the last publishes
the folder. So the sidebar's and File > Export's operator shows progress and Esc cancels between frames,
leaving nothing behind; ``export_comp`` runs the same task to its end in one call (the batch, scripts).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ...core.errors import Cancelled
from ...core.export.comp import ALL_FORMATS, FILES, CompResult, CompWriter, parse_formats
from ...core.export.scene import scene_from_spec
from ...core.progress import Progress, null_progress
from ..scene.photo_scene import PhotoScene
from .blender_files import FILES as BLENDER_FILES
from .blender_files import write_camera_files
from .passes import ExrFrames
from .spec import comp_spec

FORMATS = ALL_FORMATS
"""What Blender exports: the bpy-free formats, EXR frames (``exr`` multilayer, ``deep``) and the camera files."""
PASSES = ("exr", "deep")


class ExportTask:
    """One export, started and then stepped until it has ended; ``result`` or ``error`` says how."""

    def __init__(
        self, photo: PhotoScene, out_dir: str | Path, formats: Iterable[str], frames: tuple[int, int] | None = None
    ):
        self.photo, self.out_dir = photo, out_dir
        self.formats = parse_formats(",".join(formats), FORMATS)
        self.frames = frames
        self.result: CompResult | None = None
        self.error: Exception | None = None
        self._writer: CompWriter | None = None
        self._passes: ExrFrames | None = None
        self._done = 0
        self._text = "starting"

    def start(self) -> None:
        """Check everything, write the bpy-free files and the camera files, and get the EXR frames ready."""
        scene = self.photo.scene
        frames = self.frames or (scene.frame_start, scene.frame_end)
        package = self.photo.package()
        comp_scene = scene_from_spec(package, comp_spec(self.photo, frames))
        camera = scene.camera if scene.camera is not None else self.photo.camera
        core_formats = tuple(name for name in self.formats if name in FILES)
        blender = tuple(name for name in self.formats if name in BLENDER_FILES)
        passes = tuple(name for name in self.formats if name in PASSES)
        # A still camera is one frame in every file, as in the USD and glTF.
        camera_frames = (comp_scene.frame_start, comp_scene.frame_end)
        self._writer = CompWriter(comp_scene, package.root, self.out_dir, core_formats)
        try:
            self._writer.write_files()
            if blender:
                with self._writer.writing():
                    self._writer.add(write_camera_files(scene, camera, self._writer.folder, blender, camera_frames))
            if passes:
                self._passes = ExrFrames(
                    self.photo, self._writer.folder, camera_frames, "deep" in passes, "exr" in passes
                )
                self._passes.open()
        except BaseException:
            self._clean_up()
            raise
        self._text = "files written"

    @property
    def total(self) -> int:
        return len(self._passes.frames) if self._passes is not None else 0

    def step(self) -> bool:
        """Render the next EXR frame, or publish once all are done; True when the export has ended."""
        if self.result is not None or self.error is not None:
            return True
        try:
            if self._done < self.total:
                frame = self._passes.frames[self._done]
                self._text = f"EXR frame {frame} ({self._done + 1} of {self.total})"
                with self._writer.writing():
                    self._passes.render(self._done)
                self._done += 1
                return False
            if self._passes is not None:
                self._passes.close()
                self._writer.add(self._passes.files)
            self.result = self._writer.publish()
            self._text = "done"
        except Exception as exc:  # reported by the caller; nothing of the export stays
            self.error = exc
            self._clean_up()
        return True

    @property
    def status(self) -> tuple[float, str]:
        share = self._done / (self.total + 1) if self.result is None else 1.0
        return share, f"Photo3D export: {self._text}"

    def cancel(self) -> None:
        self.error = Cancelled("export cancelled by the user")
        self._clean_up()

    def _clean_up(self) -> None:
        if self._passes is not None:
            self._passes.close()
        if self._writer is not None:
            self._writer.close()


def export_comp(
    photo: PhotoScene,
    out_dir: str | Path,
    formats: Iterable[str],
    frames: tuple[int, int] | None = None,
    progress: Progress | None = None,
) -> CompResult:
    """Export ``photo`` with the scene's camera over ``frames`` (default: the scene's range) to ``out_dir``,
    in one call; ``progress`` hears of every frame and can cancel between them."""
    progress = progress or null_progress()
    task = ExportTask(photo, out_dir, formats, frames)  # an empty or unknown format list raises here
    with progress.stage("export"):
        task.start()
        try:
            while not task.step():
                progress.update(*task.status)
        except BaseException:
            task.cancel()
            raise
    if task.error is not None:
        raise task.error
    return task.result
