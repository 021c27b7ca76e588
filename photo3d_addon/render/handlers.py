"""Render handlers: any Eevee render of a Photo3D scene, F12 and Render Animation included, gets the Eevee
settings its content allows, checked as it starts, and gives them back when it ends or is cancelled.

``apply_render_settings`` picks the lean settings for Photo3D's own renders, but a render the user starts later
(a light added since the import, a material edited, or Photo3D's Render in the UI, whose render job outlives
the operator) needs the check at the render itself: ``render_pre`` re-runs ``apply_eevee_look`` (a lit scene
gets the settings the lean ones replaced, a lean-ok scene the lean ones) and ``render_complete`` /
``render_cancel`` restore, so the file never keeps the lean settings after a render.
"""

from __future__ import annotations

import bpy
from bpy.app.handlers import persistent

from ..scene.photo_scene import LEAN_SAVED_KEY, SOURCE_KEY
from .settings import apply_eevee_look, eevee_engine_id, lean_holders, probe_before_lean, restore_eevee_look

_lent: dict[str, str] = {}
"""Worlds another scene holds lean that a lit scene renders with: world name -> the lean resolution to put back
when the render ends (the lit scene renders with the world's own probe)."""


def is_photo3d_scene(scene: bpy.types.Scene) -> bool:
    """Whether ``scene`` holds a Photo3D import or Photo3D's lean settings: the scenes the handlers look after."""
    if LEAN_SAVED_KEY in scene:
        return True
    return any(SOURCE_KEY in collection for collection in scene.collection.children_recursive)


@persistent
def on_render_pre(scene: bpy.types.Scene, *_args) -> None:
    """Before a frame renders: the lean settings when the scene allows them, else the ones they replaced; a world
    another scene holds lean gets its own probe back for a scene that needs it."""
    if scene.render.engine != eevee_engine_id():
        return
    lean = is_photo3d_scene(scene) and apply_eevee_look(scene).lean
    world = scene.world
    if lean or world is None or world.name in _lent:
        return
    if any(holder != scene for holder in lean_holders(world)):
        original = probe_before_lean(world)
        if world.probe_resolution != original:
            _lent[world.name] = world.probe_resolution
            world.probe_resolution = original


@persistent
def on_render_end(scene: bpy.types.Scene, *_args) -> None:
    """After a render (complete or cancelled): the settings the lean ones replaced come back, and a world lent
    to a lit scene goes back to the lean resolution its holders still want."""
    if is_photo3d_scene(scene):
        restore_eevee_look(scene)
    for name, resolution in list(_lent.items()):
        world = bpy.data.worlds.get(name)
        if world is not None and lean_holders(world):
            world.probe_resolution = resolution
        del _lent[name]


_HANDLERS = (
    (bpy.app.handlers.render_pre, on_render_pre),
    (bpy.app.handlers.render_complete, on_render_end),
    (bpy.app.handlers.render_cancel, on_render_end),
)


def _remove(handlers: list, function) -> None:
    # By name, not identity: a reloaded add-on's functions are new objects, and persistent handlers stay.
    for handler in list(handlers):
        if getattr(handler, "__name__", "") == function.__name__ and handler.__module__ == function.__module__:
            handlers.remove(handler)


def register() -> None:
    for handlers, function in _HANDLERS:
        _remove(handlers, function)
        handlers.append(function)


def unregister() -> None:
    for handlers, function in _HANDLERS:
        _remove(handlers, function)
    _lent.clear()
