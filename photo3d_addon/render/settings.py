"""Render settings for Photo3D scenes: Eevee, resolution and frame-rate presets, quality, video or PNG frames.

Stills and animations go through ``render_frames``, which renders frame by frame so long renders report
progress (and can be stopped between frames) both in the UI and in ``blender -b``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bpy

RESOLUTIONS = {
    "PHOTO": None,  # the photo's own size (set by the import)
    "HD": (1280, 720),
    "FULL_HD": (1920, 1080),
    "UHD": (3840, 2160),
    "SQUARE": (1080, 1080),
    "VERTICAL": (1080, 1920),
}
FRAME_RATES = (24, 25, 30, 50, 60)
# Eevee samples per pixel, and the share of the resolution: preview is for checking a move quickly.
QUALITY = {"PREVIEW": (16, 50), "FINAL": (64, 100)}
OUTPUTS = ("MP4", "PNG")


class RenderError(RuntimeError):
    """A render that cannot start or did not write what it should."""


@dataclass
class RenderSettings:
    resolution: str = "PHOTO"
    fps: int = 24
    quality: str = "FINAL"
    output: str = "MP4"
    """``MP4`` (H.264 video) or ``PNG`` (one file per frame)."""
    motion_blur: bool = True
    filepath: str = "//photo3d_render/"
    frame_start: int | None = None
    frame_end: int | None = None


DEFAULTS = RenderSettings()
"""The sidebar's and the batch's render settings when nothing is chosen."""


def eevee_engine_id() -> str:
    """Eevee's engine id in this Blender: ``BLENDER_EEVEE_NEXT`` in 4.2-4.5, ``BLENDER_EEVEE`` in 5.x."""
    items = {item.identifier for item in bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items}
    return "BLENDER_EEVEE_NEXT" if "BLENDER_EEVEE_NEXT" in items else "BLENDER_EEVEE"


def apply_render_settings(scene: bpy.types.Scene, settings: RenderSettings) -> None:
    """Set ``scene`` up to render ``settings``; bad choices raise RenderError naming them."""
    if settings.resolution not in RESOLUTIONS:
        raise RenderError(f"unknown resolution preset {settings.resolution!r} ({', '.join(RESOLUTIONS)})")
    if settings.quality not in QUALITY:
        raise RenderError(f"unknown quality {settings.quality!r} ({', '.join(QUALITY)})")
    if settings.output not in OUTPUTS:
        raise RenderError(f"unknown output {settings.output!r} ({', '.join(OUTPUTS)})")
    if settings.fps <= 0:
        raise RenderError(f"the frame rate must be positive, not {settings.fps}")
    render = scene.render
    render.engine = eevee_engine_id()
    size = RESOLUTIONS[settings.resolution]
    if size is not None:
        render.resolution_x, render.resolution_y = size
    samples, percentage = QUALITY[settings.quality]
    scene.eevee.taa_render_samples = samples
    render.resolution_percentage = percentage
    render.fps, render.fps_base = int(settings.fps), 1.0
    render.use_motion_blur = bool(settings.motion_blur)
    if settings.frame_start is not None:
        scene.frame_start = int(settings.frame_start)
    if settings.frame_end is not None:
        scene.frame_end = int(settings.frame_end)
    if scene.frame_end < scene.frame_start:
        raise RenderError(f"the last frame ({scene.frame_end}) is before the first ({scene.frame_start})")
    render.filepath = settings.filepath
    image = render.image_settings
    if settings.output == "MP4":
        # H.264 needs even sizes: drop a pixel row or column rather than fail (the camera keeps its fit).
        render.resolution_x -= render.resolution_x % 2
        render.resolution_y -= render.resolution_y % 2
        image.file_format = "FFMPEG"
        render.ffmpeg.format = "MPEG4"
        render.ffmpeg.codec = "H264"
        render.ffmpeg.constant_rate_factor = "HIGH" if settings.quality == "FINAL" else "MEDIUM"
        render.ffmpeg.ffmpeg_preset = "GOOD"
        render.ffmpeg.audio_codec = "NONE"
    else:
        image.file_format = "PNG"
        image.color_mode = "RGB"
        image.color_depth = "8"
    render.use_file_extension = True


def output_size(scene: bpy.types.Scene) -> tuple[int, int]:
    """The size of the frames written, after the resolution percentage."""
    render = scene.render
    scale = render.resolution_percentage / 100.0
    return int(render.resolution_x * scale), int(render.resolution_y * scale)


def render_frames(
    scene: bpy.types.Scene,
    on_frame: Callable[[int, int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Path]:
    """Render the scene's frame range to its output; returns the files written.

    PNG frames are rendered one by one (progress per frame, a stop between frames). A video is one
    ``render(animation=True)`` call whose frames report through ``render_post``.
    """
    start, end = scene.frame_start, scene.frame_end
    total = end - start + 1
    render = scene.render
    if render.image_settings.file_format == "FFMPEG":
        width, height = output_size(scene)
        if width % 2 or height % 2:
            # H.264 needs even sizes; Blender would silently write nothing usable.
            raise RenderError(f"an MP4 needs an even width and height, not {width}x{height}")
        done = [0]

        def count(_scene, _depsgraph=None) -> None:
            done[0] += 1
            if on_frame is not None:
                on_frame(scene.frame_current, done[0], total)

        bpy.app.handlers.render_post.append(count)
        try:
            bpy.ops.render.render(animation=True, scene=scene.name)
        finally:
            bpy.app.handlers.render_post.remove(count)
        path = Path(bpy.path.abspath(render.frame_path(frame=start)))
        if not path.is_file() or path.stat().st_size == 0:
            raise RenderError(f"the video {path} was not written")
        return [path]

    written = []
    saved_frame = scene.frame_current
    try:
        for index, frame in enumerate(range(start, end + 1)):
            if should_stop is not None and should_stop():
                break
            scene.frame_set(frame)
            path = Path(bpy.path.abspath(render.frame_path(frame=frame)))
            # A still render writes to the output path as it is (no frame number): give it this frame's name.
            saved = render.filepath
            render.filepath = str(path.with_suffix(""))
            try:
                bpy.ops.render.render(write_still=True, scene=scene.name)
            finally:
                render.filepath = saved
            if not path.is_file():
                raise RenderError(f"frame {frame} was not written to {path}")
            written.append(path)
            if on_frame is not None:
                on_frame(frame, index + 1, total)
    finally:
        scene.frame_set(saved_frame)
    return written
