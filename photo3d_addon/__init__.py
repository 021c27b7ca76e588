"""Blender side of Photo3D, in rooms by role (see docs/ARCHITECTURE.md).

This package and its bpy-free modules import without Blender: registration (which needs bpy) lives in
``registration.py`` and is imported only when Blender enables the extension. Never imports torch: the
pipeline runs out of process (``python -m core worker``) and Blender only reads the layer package it writes.
"""

from __future__ import annotations

EXTENSION_ID = __name__.rpartition(".")[0]
"""The extension's package name (``bl_ext.<repository>.photo3d``), which keys its preferences."""


def register() -> None:
    from . import registration

    registration.register()


def unregister() -> None:
    from . import registration

    registration.unregister()
