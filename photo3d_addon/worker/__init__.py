"""The worker room, bpy-free: the JSON-lines worker client, its Python environment, and an import job."""
