"""Geometry stage: a constrained-Delaunay mesh per layer, or a multi-plane image (MPI).

Image coordinates follow the pixel-edge convention of ``camera``: the image spans [0, w] x [0, h], pixel
(i, j) covers [i, i + 1] x [j, j + 1] and its centre is at (i + 0.5, j + 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import triangle
from scipy import sparse
from scipy.sparse import csgraph

from .camera import Camera, unproject
from .errors import InputError

# Connected components (and holes) smaller than this many pixels are dropped (filled).
MIN_COMPONENT_PX = 4
# Contour simplification: 0.7 px keeps the mesh within one pixel of the mask; the boundary is exact to
# 0.35 px (concave corners are cut) and a pixel is only misclassified if its centre is within 1.5 px.
CONTOUR_EPS_PX = 0.7
GUARANTEE_EPS_PX = 1.0
# Interior sampling: a quadtree from BASE_CELL_PX down to MIN_CELL_PX cells, split where the expected
# number of points in a cell exceeds one. The density asks for a relative depth error under REL_DEPTH_TOL
# (curvature of disparity: zero for any 3D plane) and a texture swim under TEXTURE_TOL_PX (UVs are
# interpolated perspective-correctly over a triangle, screen positions are not: the gap grows with the
# depth gradient and the square of the triangle size).
BASE_CELL_PX = 64
MIN_CELL_PX = 4
REL_DEPTH_TOL = 1e-3
TEXTURE_TOL_PX = 0.5
DEPTH_SMOOTH_SIGMA = 1.5


@dataclass
class LayerMesh:
    vertices: np.ndarray
    """(N, 3) float32 camera-space positions."""
    uvs: np.ndarray
    """(N, 2) float32 texture coordinates, origin bottom-left."""
    faces: np.ndarray
    """(M, 3) int32, counter-clockwise as seen from the camera."""


@dataclass
class MpiPlane:
    rgba: np.ndarray
    """(h, w, 4) float32, straight alpha."""
    depth: float


def empty_mesh() -> LayerMesh:
    return LayerMesh(np.zeros((0, 3), np.float32), np.zeros((0, 2), np.float32), np.zeros((0, 3), np.int32))


# ---------------------------------------------------------------------------------------------- mesh


def build_layer_mesh(mask: np.ndarray, depth: np.ndarray, camera: Camera, max_triangles: int = 10_000) -> LayerMesh:
    """Triangulate where ``mask`` is set, follow its contour to a pixel, unproject with ``depth``.

    ``depth`` only needs to be valid on the mask; the mesh never has more than ``max_triangles`` faces.
    """
    mask = np.asarray(mask).astype(bool)
    h, w = mask.shape[:2]
    if mask.ndim != 2 or np.shape(depth) != mask.shape:
        raise InputError(f"mask {mask.shape} and depth {np.shape(depth)} must be two matching (h, w) arrays")
    if (camera.width, camera.height) != (w, h):
        raise InputError(f"camera is {camera.width}x{camera.height} but the mask is {w}x{h}")
    if max_triangles < 1:
        raise InputError("max_triangles must be positive")

    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return empty_mesh()
    # Work on the mask's bounding box (padded so every contour is closed inside it).
    x0, y0 = max(xs.min() - 2, 0), max(ys.min() - 2, 0)
    x1, y1 = min(xs.max() + 3, w), min(ys.max() + 3, h)
    crop = np.zeros((y1 - y0 + 2, x1 - x0 + 2), bool)
    crop[1:-1, 1:-1] = mask[y0:y1, x0:x1]
    ox, oy = x0 - 1, y0 - 1  # crop coordinates + (ox, oy) = image coordinates
    given = crop.copy()
    crop = _clean_mask(crop)
    if not crop.any():
        return empty_mesh()

    depth_crop = np.zeros(crop.shape, np.float64)
    depth_crop[1:-1, 1:-1] = np.asarray(depth, np.float64)[y0:y1, x0:x1]
    # Cleaning may close pinholes the depth map knows nothing about: they take their nearest neighbour's depth.
    known = crop & given
    on_mask = depth_crop[known]
    if not np.all(np.isfinite(on_mask) & (on_mask > 0)):
        raise InputError("layer depth must be finite and positive wherever the layer's mask is set")
    filled = _fill_from_nearest(depth_crop, known)
    inside_dist = cv2.distanceTransform(crop.astype(np.uint8), cv2.DIST_L2, 3)
    density = _point_density(filled, inside_dist)

    xy = _triangulate(crop, inside_dist, density, max_triangles)
    if xy is None:
        return empty_mesh()
    points, faces = xy
    z = _bilinear(filled, points[:, 0] - 0.5, points[:, 1] - 0.5)
    u, v = points[:, 0] + ox, points[:, 1] + oy
    vertices = unproject(u, v, z, camera)
    uvs = np.stack([u / w, 1.0 - v / h], axis=-1).astype(np.float32)
    return LayerMesh(vertices, uvs, faces)


def rebase_uvs(
    mesh: LayerMesh, canvas: tuple[int, int], border: int, source_size: tuple[int, int], texture_border: int
) -> LayerMesh:
    """The UVs of a mesh built on a ``canvas`` (height, width) that reaches ``border`` working pixels past
    each edge of the photo (``Camera.extended``), for a texture of the photo's ``source_size`` (height,
    width) grown by ``texture_border`` source pixels on each side (``textures.texture_border``)."""
    if border <= 0 or len(mesh.uvs) == 0:
        return mesh
    (canvas_h, canvas_w), (source_h, source_w) = canvas, source_size
    width, height = canvas_w - 2 * border, canvas_h - 2 * border
    u = mesh.uvs[:, 0].astype(np.float64) * canvas_w
    v = (1.0 - mesh.uvs[:, 1].astype(np.float64)) * canvas_h
    # Canvas pixels to photo pixels at the source resolution, then into the grown texture.
    u_source = (u - border) * source_w / width
    v_source = (v - border) * source_h / height
    uvs = np.stack(
        [
            (u_source + texture_border) / (source_w + 2 * texture_border),
            1.0 - (v_source + texture_border) / (source_h + 2 * texture_border),
        ],
        axis=-1,
    )
    return LayerMesh(mesh.vertices, uvs.astype(np.float32), mesh.faces)


def _clean_mask(mask: np.ndarray) -> np.ndarray:
    """Drop specks and fill pinholes smaller than MIN_COMPONENT_PX."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < MIN_COMPONENT_PX)
    small = small[small > 0]
    if len(small):
        mask = mask & ~np.isin(labels, small)
    # The background is 4-connected when the foreground is 8-connected; the padded corner is outside.
    _, labels, stats, _ = cv2.connectedComponentsWithStats((~mask).astype(np.uint8), connectivity=4)
    outside = labels[0, 0]
    pin = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < MIN_COMPONENT_PX)
    pin = pin[(pin > 0) & (pin != outside)]
    if len(pin):
        mask = mask | np.isin(labels, pin)
    return mask


def _fill_from_nearest(depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Depth where every pixel outside the mask takes its nearest mask pixel's value (no leaks)."""
    if mask.all():
        return depth
    # Each mask pixel is its own label; every other pixel gets the label of its nearest mask pixel.
    _, labels = cv2.distanceTransformWithLabels(
        (~mask).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    lut = np.zeros(labels.max() + 1, depth.dtype)
    lut[labels[mask]] = depth[mask]
    return lut[labels]


def _bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear sample at array coordinates (pixel centres at integers), clamped to the image."""
    hh, ww = image.shape
    x = np.clip(x, 0.0, ww - 1.0)
    y = np.clip(y, 0.0, hh - 1.0)
    xi = np.minimum(np.floor(x).astype(np.intp), ww - 2) if ww > 1 else np.zeros(len(x), np.intp)
    yi = np.minimum(np.floor(y).astype(np.intp), hh - 2) if hh > 1 else np.zeros(len(y), np.intp)
    fx, fy = x - xi, y - yi
    xj, yj = np.minimum(xi + 1, ww - 1), np.minimum(yi + 1, hh - 1)
    top = image[yi, xi] * (1 - fx) + image[yi, xj] * fx
    bottom = image[yj, xi] * (1 - fx) + image[yj, xj] * fx
    return top * (1 - fy) + bottom * fy


def _point_density(filled: np.ndarray, inside_dist: np.ndarray) -> np.ndarray:
    """Interior vertices wanted per square pixel, from the bending and the slope of depth."""
    z = np.maximum(cv2.GaussianBlur(filled, (0, 0), DEPTH_SMOOTH_SIGMA), 1e-6)

    def derivative(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
        # 3x3 Sobel kernels, scaled to plain finite differences (8 for first order, 4 for second).
        return cv2.Sobel(image, cv2.CV_64F, dx, dy, ksize=3, scale=0.125 if dx + dy == 1 else 0.25)

    slope = np.hypot(derivative(z, 1, 0), derivative(z, 0, 1))
    slope /= z
    disparity = 1.0 / z
    # bend = sqrt(dxx^2 + 2 dxy^2 + dyy^2) * z, in place on the second derivatives (the same operations).
    bend, dxy, dyy = derivative(disparity, 2, 0), derivative(disparity, 1, 1), derivative(disparity, 0, 2)
    bend *= bend
    dxy *= dxy
    dxy *= 2.0
    dyy *= dyy
    bend += dxy
    bend += dyy
    np.sqrt(bend, out=bend)
    bend *= z
    # density = bend / (8 REL_DEPTH_TOL) + slope / (4 TEXTURE_TOL_PX)
    density = bend
    density /= 8.0 * REL_DEPTH_TOL
    slope /= 4.0 * TEXTURE_TOL_PX
    density += slope
    # Near the boundary the filled depth has artificial kinks; boundary vertices cover that band.
    density[inside_dist < 3.0] = 0.0
    return density


# --------------------------------------------------------------------------------- contours, PSLG


def _contours(mask: np.ndarray) -> tuple[list[np.ndarray], list[bool]]:
    """Contours of the union of closed pixel squares, in half-pixel integer units, and whether each is a hole.

    Tracing the mask at corner resolution puts the polygon on pixel edges instead of pixel centres.
    """
    hh, ww = mask.shape
    corner = np.zeros((2 * hh + 1, 2 * ww + 1), np.uint8)
    corner[1::2, 1::2] = mask
    corner = cv2.dilate(corner, np.ones((3, 3), np.uint8))
    contours, hierarchy = cv2.findContours(corner, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return [], []
    holes = (hierarchy[0][:, 3] >= 0).tolist()
    return [c.reshape(-1, 2) for c in contours], holes


def _simplify(
    contours: list[np.ndarray], holes: list[bool], eps_px: float
) -> tuple[list[np.ndarray], list[bool], list[float]]:
    """approxPolyDP in half-pixel units, largest first, with areas in square pixels; tiny ones dropped."""
    out = []
    for c, hole in zip(contours, holes, strict=True):
        if len(c) < 3 or cv2.contourArea(c) < 4.0 * MIN_COMPONENT_PX:  # half-pixel units: 4 per pixel
            continue
        # Thin parts (one-pixel lines, specks) collapse under a large tolerance: retry with a smaller one.
        eps = eps_px
        while True:
            s = cv2.approxPolyDP(c.reshape(-1, 1, 2), 2.0 * eps, True).reshape(-1, 2)
            area = cv2.contourArea(s) / 4.0
            if (len(s) >= 3 and area > 0) or eps < 0.25:
                break
            eps /= 2.0
        if len(s) >= 3 and area > 0:
            out.append((area, s, hole))
    out.sort(key=lambda item: -item[0])
    return [s for _, s, _ in out], [hole for _, _, hole in out], [area for area, _, _ in out]


def _resample(poly: np.ndarray, density: np.ndarray, base: float, threshold: float) -> np.ndarray:
    """Keep the polygon's corners and add points along its edges as densely as the quadtree would.

    ``poly`` is closed, in pixel units; spacing is ``base`` at most, ``sqrt(threshold / density)`` where
    depth asks for more, never below MIN_CELL_PX.
    """
    nxt = np.roll(poly, -1, axis=0)
    lengths = np.hypot(*(nxt - poly).T)
    pieces = np.maximum(np.ceil(lengths / MIN_CELL_PX).astype(int), 1)
    # i / k for i in 0..k-1 along each edge (k = its pieces), in one go: the same divisions as per edge.
    repeats = np.repeat(pieces, pieces)
    t = (np.arange(len(repeats)) - np.repeat(np.cumsum(pieces) - pieces, pieces)) / repeats
    start, end = np.repeat(poly, pieces, axis=0), np.repeat(nxt, pieces, axis=0)
    dense = start + (end - start) * t[:, None]
    corner = t == 0
    step = np.repeat(lengths / pieces, pieces)
    hh, ww = density.shape
    mid = dense + (np.roll(dense, -1, axis=0) - dense) / 2.0
    rho = density[np.clip(mid[:, 1].astype(int), 0, hh - 1), np.clip(mid[:, 0].astype(int), 0, ww - 1)]
    # Expected number of points on each dense step; a point wherever the running count passes an integer.
    need = np.minimum(step * np.maximum(1.0 / base, np.sqrt(rho / threshold)), 1.0)
    count = np.floor(np.concatenate([[0.0], np.cumsum(need)[:-1]]))
    keep = corner | (count != np.roll(count, 1))
    return dense[keep]


def _pslg(polys: list[np.ndarray], density: np.ndarray, base: float, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (pixel units, duplicates merged) and segments of the simplified contours."""
    verts, segs, offset = [], [], 0
    for p in polys:
        q = _resample(p / 2.0, density, base, threshold)
        idx = offset + np.arange(len(q))
        verts.append(q)
        segs.append(np.stack([idx, np.roll(idx, -1)], axis=1))
        offset += len(q)
    verts_all = np.concatenate(verts)
    # Contours touching at a pixel corner share a vertex; Triangle wants it once.
    unique, inverse = np.unique(np.round(verts_all, 6), axis=0, return_inverse=True)
    segments = inverse.reshape(-1)[np.concatenate(segs)]
    segments = segments[segments[:, 0] != segments[:, 1]]
    segments = np.unique(np.sort(segments, axis=1), axis=0)
    return unique, segments.astype(np.int32)


# ---------------------------------------------------------------------------------- interior points


def _quadtree_points(integral: np.ndarray, eligible: np.ndarray, base: int, threshold: float) -> np.ndarray:
    """Leaf centres of a quadtree split where a cell expects more than ``threshold`` points.

    ``integral`` is the summed-area table of the point density.
    """
    hh, ww = eligible.shape
    gy, gx = np.mgrid[0:hh:base, 0:ww:base]
    cells = np.stack([gx.ravel(), gy.ravel()], axis=1)
    size, leaves = base, []
    while len(cells):
        xa, ya = cells[:, 0], cells[:, 1]
        xb, yb = np.minimum(xa + size, ww), np.minimum(ya + size, hh)
        mass = integral[yb, xb] - integral[ya, xb] - integral[yb, xa] + integral[ya, xa]
        split = (mass > threshold) & (size > MIN_CELL_PX)
        leaf = cells[~split]
        centre = leaf + size / 2.0
        cx = np.minimum(centre[:, 0].astype(int), ww - 1)
        cy = np.minimum(centre[:, 1].astype(int), hh - 1)
        leaves.append(centre[eligible[cy, cx]])
        half = size // 2
        parents = cells[split]
        cells = np.concatenate([parents + (dx, dy) for dx in (0, half) for dy in (0, half)])
        cells = cells[(cells[:, 0] < ww) & (cells[:, 1] < hh)]
        size = half
    return np.concatenate(leaves)


def _fit_points(
    polys: list[np.ndarray], density: np.ndarray, eligible: np.ndarray, limit: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boundary vertices, segments and interior points costing at most ``limit`` triangles.

    A vertex on the boundary costs one triangle, one inside costs two. Thinning goes by asking for
    fewer splits first, then a coarser base grid, finally the bare simplified outline.
    """
    integral = cv2.integral(density.astype(np.float64))
    # Boundary spacing looks a few pixels inside, where the density is not masked out.
    edge_density = cv2.dilate(density.astype(np.float32), np.ones((9, 9), np.uint8))
    peak = float(density.max())
    base = BASE_CELL_PX
    while base <= 2 * max(density.shape):
        threshold = 1.0
        while True:
            verts, segments = _pslg(polys, edge_density, base, threshold)
            interior = _quadtree_points(integral, eligible, base, threshold)
            if len(verts) + 2 * len(interior) <= limit:
                return verts, segments, interior
            if threshold > peak * base**2:
                break  # no cell splits any more: only a coarser grid helps
            threshold *= 2.0
        base *= 2
    verts, segments = _pslg(polys, edge_density, np.inf, np.inf)
    return verts, segments, np.zeros((0, 2))


# ------------------------------------------------------------------------------------ triangulation


def _triangulate(
    mask: np.ndarray, inside_dist: np.ndarray, density: np.ndarray, max_triangles: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Pick contour tolerance, boundary spacing and interior points to fit the budget, then triangulate."""
    contours, holes = _contours(mask)
    eps, slack = CONTOUR_EPS_PX, 0
    while True:
        polys, kinds, areas = _simplify(contours, holes, eps)
        if not polys:
            return None
        # A hole costs two triangles more than its vertices; an outline two less (not counted: margin).
        costs = np.array([len(p) + 2 * k for p, k in zip(polys, kinds, strict=True)])
        limit = max_triangles - slack
        boundary = int(costs.sum())
        # Within the one-pixel tolerance the outline comes first; past it, keep half the budget inside.
        if eps < GUARANTEE_EPS_PX and boundary > limit // 2:
            eps = GUARANTEE_EPS_PX
            continue
        if boundary > limit and eps <= GUARANTEE_EPS_PX:
            eps *= 1.5
            continue
        if eps > GUARANTEE_EPS_PX:
            # Largest contours first; coarser outlines until what does not fit is a small share of the area.
            keep = np.cumsum(costs) <= limit // 2
            keep[0] = costs[0] <= limit
            lost = sum(a for a, k, kept in zip(areas, kinds, keep, strict=True) if not k and not kept)
            if lost > 0.05 * sum(areas) and eps < max(mask.shape) / 4:
                eps *= 1.5
                continue
            polys = [p for p, kept in zip(polys, keep, strict=True) if kept]
            if not polys:
                return None
        eligible = inside_dist >= max(2.0, eps + 1.5)
        verts, segments, interior = _fit_points(polys, density, eligible, limit)
        result = triangle.triangulate({"vertices": np.concatenate([verts, interior]), "segments": segments}, "pQn")
        points, faces = _inside_cells(result, polys)
        if len(faces) <= max_triangles:
            if len(faces) == 0:
                return None
            # Triangle winds counter-clockwise with y up; image y points down, so flip for the camera.
            return points, faces[:, ::-1].astype(np.int32)
        # Steiner points (crossing segments) or a count estimate off: tighten and retry.
        slack += len(faces) - max_triangles + 2
        if slack > max_triangles // 2:
            eps, slack = eps * 1.5, 0


def _inside_cells(result: dict, polys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Keep the triangles of the regions (cells bounded by segments) inside the polygons, even-odd.

    Classifying cells instead of seeding Triangle with a point per hole stays right when simplified
    contours cross or pinch, and needs no hole points at all.
    """
    points, tris = result["vertices"], result.get("triangles", np.zeros((0, 3), np.int32))
    if len(tris) == 0:
        return points[:0], tris
    n, m = len(points), len(tris)
    seg = np.sort(result["segments"], axis=1)
    seg_keys = seg[:, 0].astype(np.int64) * n + seg[:, 1]
    src, dst = [], []
    for i in range(3):
        a, b = tris[:, (i + 1) % 3], tris[:, (i + 2) % 3]
        key = np.minimum(a, b).astype(np.int64) * n + np.maximum(a, b)
        link = (result["neighbors"][:, i] >= 0) & ~np.isin(key, seg_keys)
        src.append(np.flatnonzero(link))
        dst.append(result["neighbors"][link, i])
    src, dst = np.concatenate(src), np.concatenate(dst)
    graph = sparse.coo_matrix((np.ones(len(src)), (src, dst)), shape=(m, m))
    n_cells, cell = csgraph.connected_components(graph, directed=False)
    # One probe per cell: the centroid of its largest triangle, strictly inside the cell.
    corners = points[tris]
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    area = np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    order = np.lexsort((area, cell))
    last = order[np.r_[cell[order][1:] != cell[order][:-1], True]]
    inside = np.zeros(n_cells, bool)
    inside[cell[last]] = _even_odd(corners[last].mean(axis=1), polys)
    faces = tris[inside[cell]]
    used, faces = np.unique(faces, return_inverse=True)
    return points[used], faces.reshape(-1, 3).astype(np.int32)


def _even_odd(probes: np.ndarray, polys: list[np.ndarray]) -> np.ndarray:
    """Whether each probe point (pixel units) is inside an odd number of the half-pixel-unit polygons."""
    a = np.concatenate(polys).astype(np.float64) / 2.0
    b = np.concatenate([np.roll(p, -1, axis=0) for p in polys]).astype(np.float64) / 2.0
    odd = np.zeros(len(probes), bool)
    chunk = max(1, 4_000_000 // len(a))
    for start in range(0, len(probes), chunk):
        px, py = probes[start : start + chunk, :1], probes[start : start + chunk, 1:]
        straddle = (a[:, 1] > py) != (b[:, 1] > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = a[:, 0] + (py - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
        odd[start : start + chunk] = (np.count_nonzero(straddle & (px < x_cross), axis=1) % 2) == 1
    return odd


# ----------------------------------------------------------------------------------------------- MPI


def mpi_plane_depths(near: float, far: float, n: int) -> np.ndarray:
    """``n`` plane depths from ``far`` to ``near``, uniformly spaced in disparity."""
    if not 0 < near <= far:
        raise InputError(f"MPI needs 0 < near <= far, got near={near}, far={far}")
    if n < 1:
        raise InputError("an MPI needs at least one plane")
    return 1.0 / np.linspace(1.0 / far, 1.0 / near, n)


def build_mpi(layers_rgba: list[np.ndarray], layers_depth: list[np.ndarray], n_planes: int) -> list[MpiPlane]:
    """Bin layered RGBA into ``n_planes`` fronto-parallel planes, back to front.

    Layers come back to front. Each pixel goes to the plane nearest in disparity, never behind the plane a
    farther layer used at that pixel, so compositing the planes reproduces compositing the layers.
    """
    if len(layers_rgba) != len(layers_depth) or not layers_rgba:
        raise InputError("build_mpi needs one depth map per layer and at least one layer")
    h, w = layers_rgba[0].shape[:2]
    alphas = [np.asarray(rgba[..., 3], np.float32) for rgba in layers_rgba]
    covered = [a > 0 for a in alphas]
    values = [np.asarray(d, np.float64)[c] for d, c in zip(layers_depth, covered, strict=True)]
    values = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in values])
    if len(values) == 0:
        raise InputError("build_mpi: no layer has visible pixels with a positive depth")
    depths = mpi_plane_depths(float(values.min()), float(values.max()), n_planes)
    disparities = 1.0 / depths

    planes = np.zeros((n_planes, h, w, 4), np.float32)
    floor = np.full((h, w), -1, np.int64)  # plane used by the nearest layer so far, per pixel
    for rgba, alpha, cover, depth in zip(layers_rgba, alphas, covered, layers_depth, strict=True):
        z = np.asarray(depth, np.float64)
        disparity = 1.0 / np.where(cover & (z > 0), z, depths[0])
        if n_planes > 1 and disparities[-1] > disparities[0]:
            step = (disparities[-1] - disparities[0]) / (n_planes - 1)
            index = np.rint((disparity - disparities[0]) / step).astype(np.int64)
        else:
            index = np.zeros((h, w), np.int64)
        index = np.maximum(np.clip(index, 0, n_planes - 1), floor)
        floor = np.where(cover, index, floor)
        ys, xs = np.nonzero(cover)
        k = index[ys, xs]
        # "over" in straight alpha, only where this layer shows (a > 0, so the new alpha is too); one layer
        # puts each pixel in one plane, so no index repeats within the scatter.
        a = alpha[ys, xs, None]
        below = planes[k, ys, xs]
        out_a = a + below[:, 3:] * (1.0 - a)
        out_rgb = (np.asarray(rgba, np.float32)[ys, xs, :3] * a + below[:, :3] * below[:, 3:] * (1.0 - a)) / out_a
        planes[k, ys, xs] = np.concatenate([out_rgb, out_a], axis=1)
        # Back each opaque pixel with a copy on the plane just behind. A sloped surface is cut into bands on
        # neighbouring planes; filtered (a smaller render, mipmaps) the two half-covered band edges would
        # composite to less than full coverage and let the background bleed through as dark stripes. The copy
        # is hidden wherever the band itself is opaque, so full-resolution compositing is unchanged.
        solid = (alpha[ys, xs] >= 1.0) & (k > 0)
        behind = k[solid] - 1
        planes[behind, ys[solid], xs[solid], :3] = np.asarray(rgba, np.float32)[ys[solid], xs[solid], :3]
        planes[behind, ys[solid], xs[solid], 3] = 1.0
    # The planes are views of one array, not copies of it.
    return [MpiPlane(planes[k], float(depths[k])) for k in range(n_planes)]


def composite_back_to_front(rgba_list: list[np.ndarray]) -> np.ndarray:
    """Straight-alpha "over" compositing of RGBA images, first one at the back, over black."""
    out = None
    for rgba in rgba_list:
        rgba = np.asarray(rgba, np.float32)
        a = rgba[..., 3:4]
        out = rgba[..., :3] * a if out is None else rgba[..., :3] * a + out * (1.0 - a)
    if out is None:
        raise InputError("nothing to composite")
    return out
