"""Photo3D core: one photograph in, a validated layered 3D package out. Never imports bpy."""

__version__ = "0.2.0"
