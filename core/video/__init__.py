"""Video input (in progress): frames in (``reader``: a video file through PyAV or a numbered image sequence),
shots (``shots``: cut detection, where every temporal state resets) and depth stable over time
(``temporal_depth``: per-frame scale and shift aligned to the shot, a flow-warped moving average with a
forward-backward check). The layered video package (``package``, manifest in ``manifest``, per-frame vertex
positions as PC2 point caches in ``pc2``) is written and read here; those three import only numpy and the
standard library, so Blender reads video packages with them."""

from .manifest import FORMAT_NAME as VIDEO_FORMAT_NAME
from .manifest import FORMAT_VERSION as VIDEO_FORMAT_VERSION
from .manifest import FrameEntry, Shot, ShotLayer, VideoManifest, parse_video_manifest
from .package import VideoPackage, VideoPackageWriter, check_video_replaceable, read_video_package
from .pc2 import PC2Problem, PC2Writer, read_pc2, write_pc2

__all__ = [
    "VIDEO_FORMAT_NAME",
    "VIDEO_FORMAT_VERSION",
    "FrameEntry",
    "PC2Problem",
    "PC2Writer",
    "Shot",
    "ShotLayer",
    "VideoManifest",
    "VideoPackage",
    "VideoPackageWriter",
    "check_video_replaceable",
    "parse_video_manifest",
    "read_pc2",
    "read_video_package",
    "write_pc2",
]
