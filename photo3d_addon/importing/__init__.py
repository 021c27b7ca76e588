"""The import room: the operator's choices (bpy-free), the one import service and the operator."""
