"""Comp exports from Blender: the photo's layers and its animated camera as a comp package (``run``), the
camera through Blender's own Alembic and FBX exporters (``blender_files``), and File > Export (``operator``)."""
