"""The layer package: the versioned on-disk contract between the worker and Blender.

A package is a directory holding ``manifest.json`` (typed and checked in ``manifest``), one RGBA PNG texture
per layer (straight alpha, source resolution) and, for the mesh representation, one NPZ per layer (float32
camera-space vertices, float32 UVs, int32 faces), plus the depth map and a contact sheet.

- ``manifest``: the typed manifest (dataclasses), its one parser and its one writer (``to_dict``);
- ``files``: the path check every file reference passes and the bounded file readers;
- ``reader``: ``read_package``, total and typed;
- ``writer``: ``write_package_atomically`` over ``staging``, the locked staging folder;

No module outside this package parses a manifest. Imports only numpy and the standard library, so Blender
reads packages with it.
"""

from .files import MANIFEST_NAME, inside_package, save_mesh_file
from .manifest import FORMAT_NAME, FORMAT_VERSION, Manifest, parse_manifest
from .reader import LayerPackage, read_package
from .writer import check_replaceable, write_package_atomically

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "LayerPackage",
    "Manifest",
    "check_replaceable",
    "inside_package",
    "parse_manifest",
    "read_package",
    "save_mesh_file",
    "write_package_atomically",
]
