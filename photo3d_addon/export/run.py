"""One comp export from Blender: the spec of the scene (``spec``), the bpy-free writers (``core.export``)
and the camera files only Blender writes (``blender_files``), all in one atomic comp package."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ...core.errors import ExportError
from ...core.export.comp import ALL_FORMATS, FILES, CompResult, parse_formats, write_comp_package
from ...core.export.scene import scene_from_spec
from ...core.progress import Progress, null_progress
from ..scene.photo_scene import PhotoScene
from .blender_files import FILES as BLENDER_FILES
from .blender_files import write_camera_files
from .passes import render_exr_frames
from .spec import comp_spec

FORMATS = ALL_FORMATS
"""What Blender exports: the bpy-free formats, EXR frames (``exr`` multilayer, ``deep``) and the camera files."""
PASSES = ("exr", "deep")


def export_comp(
    photo: PhotoScene,
    out_dir: str | Path,
    formats: Iterable[str],
    frames: tuple[int, int] | None = None,
    progress: Progress | None = None,
) -> CompResult:
    """Export ``photo`` with the scene's camera over ``frames`` (default: the scene's range) to ``out_dir``."""
    chosen = parse_formats(",".join(formats), FORMATS)
    scene = photo.scene
    frames = frames or (scene.frame_start, scene.frame_end)
    package = photo.package()
    spec = comp_spec(photo, frames)
    comp_scene = scene_from_spec(package, spec)
    camera = scene.camera if scene.camera is not None else photo.camera
    blender = tuple(name for name in chosen if name in BLENDER_FILES)
    passes = tuple(name for name in chosen if name in PASSES)
    extra_progress = progress or null_progress()
    # A still camera is one frame in every file, as in the USD and glTF.
    camera_frames = (comp_scene.frame_start, comp_scene.frame_end)

    def extra(folder: Path) -> dict[str, str | list[str]]:
        files: dict[str, str | list[str]] = {}
        if blender:
            files.update(write_camera_files(scene, camera, folder, blender, camera_frames))
        if passes:
            files.update(
                render_exr_frames(photo, folder, camera_frames, "deep" in passes, "exr" in passes, extra_progress)
            )
        return files

    core_formats = tuple(name for name in chosen if name in FILES)
    if not core_formats and not blender and not passes:
        raise ExportError("no export format chosen")
    return write_comp_package(
        comp_scene,
        package.root,
        out_dir,
        core_formats,
        extra=extra if blender or passes else None,
        progress=extra_progress,
    )
