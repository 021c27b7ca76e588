"""The effects room: parameters and layouts (bpy-free), the node groups, and building them into a scene."""
