"""Blender side of Photo3D: preferences now; the import operator, worker client and scene builder follow.

Never imports torch: the pipeline runs out of process (``python -m core worker``) and Blender only reads
the layer package it writes.
"""

from __future__ import annotations

import bpy

from .preferences import Photo3DPreferences

_classes = (Photo3DPreferences,)


def register() -> None:
    for cls in _classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(_classes):
        bpy.utils.unregister_class(cls)
