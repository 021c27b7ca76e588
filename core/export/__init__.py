"""Comp exports: a layer package as USD, glTF and a Nuke camera, for compositors (``comp``).

``scene`` turns a package (and, from Blender, the animated camera) into a ``CompScene``; ``usd``, ``gltf``
and ``chan`` write it; ``comp`` writes the comp package folder atomically; ``cli`` is
``python -m core export``. Imports of usd-core happen only when a USD file is written.
"""
