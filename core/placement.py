"""Where a scene places each layer: shared by the Blender scene builder and the comp exports, so a layer
imported from a USD or glTF file sits where Photo3D's own import puts it."""

from __future__ import annotations

from collections.abc import Sequence

from .package.manifest import LayerInfo


def layer_origins(layers: Sequence[LayerInfo]) -> list[tuple[float, float, float]]:
    """Camera-space object origins for the layers (back to front): on the view axis at each layer's depth.

    Eevee draws blended surfaces sorted by their object origin's distance to the camera. Origins at the
    layers' own centroids can sort a farther layer in front of a nearer one (seen with 12+ layers); on the
    axis, strictly nearer for each nearer layer, the draw order is the layer order from the photo's camera
    and stays close to it for camera moves.
    """
    origins = []
    previous = float("inf")
    for layer in layers:
        depth = float(layer.plane_depth or layer.median_depth or 0.0)
        if not depth > 0.0:
            depth = float(layer.depth_range[0])
        depth = min(depth, previous * (1.0 - 1e-4))
        origins.append((0.0, 0.0, -depth))
        previous = depth
    return origins
