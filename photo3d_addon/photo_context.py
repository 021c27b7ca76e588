"""Which imported photo the sidebar's operators work on."""

from __future__ import annotations

import bpy

from .scene_builder import SOURCE_KEY

NO_PHOTO = "No Photo3D scene here: import a photo first (File > Import > Image to 3D Layers)"


def active_photo_collection(context: bpy.types.Context) -> bpy.types.Collection | None:
    """The imported photo the user is working on: the active object's, else the scene camera's."""
    for obj in (context.active_object, context.scene.camera):
        if obj is None:
            continue
        for collection in obj.users_collection:
            if SOURCE_KEY in collection:
                return collection
    photos = [c for c in context.scene.collection.children_recursive if SOURCE_KEY in c]
    return photos[-1] if photos else None
