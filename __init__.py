"""Photo3D Blender extension: the repository root is the extension package; it only registers the add-on.

Imports nothing from Blender itself, so the bpy-free modules below it import in plain Python too.
"""

from . import photo3d_addon


def register() -> None:
    photo3d_addon.register()


def unregister() -> None:
    photo3d_addon.unregister()
