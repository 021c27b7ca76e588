"""Registers the add-on with Blender: preferences, the import and export operators and their menus, the
sidebar's settings, operators and panel, and the batch command. Imported only when Blender enables the extension.
"""

from __future__ import annotations

import bpy

from .batch import run as batch
from .export import operator as exporting
from .importing import operator as importing
from .render import handlers as render_handlers
from .ui import operators, panels, preferences, properties
from .worker.client import stop_shared_worker

# Property groups before the classes that point at them; panels last.
_classes = (
    *preferences.classes,
    *importing.classes,
    *exporting.classes,
    *properties.classes,
    *operators.classes,
    *panels.classes,
)


def register() -> None:
    for cls in _classes:
        bpy.utils.register_class(cls)
    properties.register()
    for menu, entry in (*importing.MENUS, *exporting.MENUS):
        menu.append(entry)
    batch.register()
    render_handlers.register()


def unregister() -> None:
    # Only the add-on's own code goes: everything it built in the scene stays, and renders without it.
    stop_shared_worker()
    render_handlers.unregister()
    batch.unregister()
    properties.unregister()
    for menu, entry in (*importing.MENUS, *exporting.MENUS):
        menu.remove(entry)
    for cls in reversed(_classes):
        bpy.utils.unregister_class(cls)
