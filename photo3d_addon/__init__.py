"""Blender side of Photo3D: preferences, the "Image to 3D Layers" operator, the worker client and the scene.

Never imports torch: the pipeline runs out of process (``python -m core worker``) and Blender only reads
the layer package it writes.
"""

from __future__ import annotations

import bpy

from . import batch, operators, preferences, scene_panel
from .worker_client import stop_shared_worker

_classes = (*preferences.classes, *operators.classes, *scene_panel.classes)


def register() -> None:
    for cls in _classes:
        bpy.utils.register_class(cls)
    scene_panel.register()
    for menu, entry in operators.MENUS:
        menu.append(entry)
    batch.register()


def unregister() -> None:
    # Only the add-on's own code goes: everything it built in the scene stays, and renders without it.
    stop_shared_worker()
    batch.unregister()
    scene_panel.unregister()
    for menu, entry in operators.MENUS:
        menu.remove(entry)
    for cls in reversed(_classes):
        bpy.utils.unregister_class(cls)
