"""Geometry stage: layer meshes follow their masks and depth; MPIs reproduce the layer composite."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from core.camera import camera_from_fov, unproject
from core.errors import InputError
from core.geometry import (
    LayerMesh,
    build_layer_mesh,
    build_mpi,
    composite_back_to_front,
    mpi_plane_depths,
)

H, W = 120, 160
CAMERA = camera_from_fov(W, H, 60.0)


def image_xy(mesh: LayerMesh, w: int = W, h: int = H) -> np.ndarray:
    """Vertex positions in image (pixel-corner) coordinates, recovered from the UVs."""
    return np.stack([mesh.uvs[:, 0].astype(np.float64) * w, (1.0 - mesh.uvs[:, 1].astype(np.float64)) * h], 1)


def rasterize(mesh: LayerMesh, w: int = W, h: int = H) -> np.ndarray:
    """Pixels whose centre lies in (or on the edge of) a triangle; exact, unlike cv2's fill."""
    xy = image_xy(mesh, w, h)
    out = np.zeros((h, w), bool)
    for tri in xy[mesh.faces]:
        x0, y0 = np.floor(tri.min(0)).astype(int)
        x1, y1 = np.ceil(tri.max(0)).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        py, px = np.mgrid[y0:y1, x0:x1] + 0.5
        inside = np.ones(px.shape, bool)
        area = np.cross(tri[1] - tri[0], tri[2] - tri[0])
        for i in range(3):
            a, b = tri[i], tri[(i + 1) % 3]
            edge = (b[0] - a[0]) * (py - a[1]) - (b[1] - a[1]) * (px - a[0])
            inside &= edge * np.sign(area) >= -1e-9
        out[y0:y1, x0:x1] |= inside
    return out


def boundary_band(mask: np.ndarray) -> np.ndarray:
    """Pixels touching the mask boundary (inside or outside, 8-neighbourhood)."""
    kernel = np.ones((3, 3), np.uint8)
    m = mask.astype(np.uint8)
    return (cv2.dilate(m, kernel) != cv2.erode(m, kernel, borderValue=1)).astype(bool)


def assert_follows(mesh: LayerMesh, mask: np.ndarray) -> None:
    raster = rasterize(mesh, mask.shape[1], mask.shape[0])
    wrong = raster != mask
    assert not (wrong & ~boundary_band(mask)).any(), f"{int((wrong & ~boundary_band(mask)).sum())} px off"


def assert_valid(mesh: LayerMesh) -> None:
    assert mesh.vertices.dtype == np.float32 and mesh.vertices.shape[1] == 3
    assert mesh.uvs.dtype == np.float32 and mesh.uvs.shape == (len(mesh.vertices), 2)
    assert mesh.faces.dtype == np.int32 and mesh.faces.shape[1] == 3
    assert mesh.faces.min() >= 0 and mesh.faces.max() < len(mesh.vertices)
    assert np.all((mesh.uvs >= 0) & (mesh.uvs <= 1))
    assert len(np.unique(mesh.faces)) == len(mesh.vertices), "unused vertices"


def normals(mesh: LayerMesh) -> np.ndarray:
    v = mesh.vertices.astype(np.float64)[mesh.faces]
    return np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])


def jagged_blob(h: int, w: int, seed: int = 0, roughness: float = 8.0, sigma: float = 3.0) -> np.ndarray:
    """An ellipse with a noisy, fractal-ish outline, pinholes and specks."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), sigma)
    noise /= noise.std()
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((xx - w / 2) / (0.35 * w), (yy - h / 2) / (0.38 * h))
    return r + noise * roughness / min(h, w) < 1.0


def sphere_cap(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    r2 = ((xx - w / 2) / (0.5 * w)) ** 2 + ((yy - h / 2) / (0.5 * w)) ** 2
    return (4.0 - 1.5 * np.sqrt(np.maximum(1.2 - r2, 0.0))).astype(np.float32)


# ---------------------------------------------------------------------------------------------- mesh


def test_square_mask_is_matched_exactly():
    mask = np.zeros((H, W), bool)
    mask[30:80, 40:110] = True
    mesh = build_layer_mesh(mask, np.full((H, W), 3.0, np.float32), CAMERA)
    assert_valid(mesh)
    # Edges on pixel edges: the rasterization is the mask itself, not just within a pixel of it.
    assert np.array_equal(rasterize(mesh), mask)


def test_fronto_parallel_plane():
    mask = np.zeros((H, W), bool)
    mask[30:80, 40:110] = True
    depth = np.full((H, W), 3.0, np.float32)
    depth[~mask] = 100.0  # outside the layer: must not leak into boundary vertices
    mesh = build_layer_mesh(mask, depth, CAMERA)
    assert np.all(mesh.vertices[:, 2] == np.float32(-3.0))
    xy = image_xy(mesh)
    corner = np.flatnonzero(np.all(np.abs(xy - [40.0, 30.0]) < 1e-3, axis=1))
    assert len(corner) == 1
    expected = unproject(np.array([40.0]), np.array([30.0]), np.array([3.0]), CAMERA)[0]
    np.testing.assert_array_equal(mesh.vertices[corner[0]], expected)
    np.testing.assert_array_equal(mesh.uvs[corner[0]], np.float32([40.0 / W, 1.0 - 30.0 / H]))
    # Every vertex is the unprojection of its own image position.
    np.testing.assert_allclose(mesh.vertices, unproject(xy[:, 0], xy[:, 1], np.full(len(xy), 3.0), CAMERA), atol=1e-5)
    n = normals(mesh)
    assert np.all(n[:, 2] > 0) and np.allclose(n[:, :2], 0, atol=1e-6)
    # A fronto-parallel plane needs no interior vertices beyond the coarse grid.
    assert len(mesh.faces) < 100


def test_pinhole_closed_by_cleaning_takes_its_neighbours_depth():
    """A 1-px hole in the mask is closed; the depth map has nothing there (0), the mesh must still build."""
    mask = np.zeros((H, W), bool)
    mask[30:80, 40:110] = True
    mask[50, 70] = False
    depth = np.where(mask, 3.0, 0.0).astype(np.float32)
    mesh = build_layer_mesh(mask, depth, CAMERA)
    assert np.all(mesh.vertices[:, 2] == np.float32(-3.0))


def test_annulus_keeps_its_hole():
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    r = np.hypot(xx - 80, yy - 60)
    mask = (r < 50) & (r > 20)
    mesh = build_layer_mesh(mask, np.full((H, W), 2.0, np.float32), CAMERA)
    assert_valid(mesh)
    raster = rasterize(mesh)
    assert not raster[60, 80] and not raster[45:75, 65:95][r[45:75, 65:95] < 18].any()
    assert_follows(mesh, mask)


def test_island_inside_a_hole_and_disconnected_blobs():
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    r = np.hypot(xx - 60, yy - 60)
    mask = ((r < 45) & (r > 25)) | (r < 10)  # ring with an island in its hole
    mask[20:50, 120:150] = True  # a separate blob
    mask[100:103, 130:133] = True  # a small one, still meshed
    mask[5, 5] = True  # a speck, dropped
    mesh = build_layer_mesh(mask, np.full((H, W), 2.0, np.float32), CAMERA)
    assert_valid(mesh)
    raster = rasterize(mesh)
    assert raster[60, 60] and raster[35, 135] and raster[101, 131] and not raster[60, 78]
    mask[5, 5] = False
    assert_follows(mesh, mask)


def test_jagged_mask_within_one_pixel():
    mask = jagged_blob(H, W, seed=1)
    depth = sphere_cap(H, W)
    mesh = build_layer_mesh(mask, depth, CAMERA)
    assert_valid(mesh)
    assert_follows(mesh, mask)
    # Pinholes and specks under 4 px are dropped on purpose: no check needed beyond the band test.
    # Every face looks at the camera (at the origin), even steep ones near the sphere's rim.
    centroids = mesh.vertices.astype(np.float64)[mesh.faces].mean(axis=1)
    assert np.all(np.einsum("ij,ij->i", normals(mesh), -centroids) > 0)


@pytest.mark.parametrize("budget", [16, 200, 10_000])
def test_triangle_budget_is_respected(budget):
    h, w = 240, 320
    mask = jagged_blob(h, w, seed=2, roughness=14.0, sigma=1.5)
    camera = camera_from_fov(w, h, 60.0)
    mesh = build_layer_mesh(mask, sphere_cap(h, w), camera, max_triangles=budget)
    assert_valid(mesh)
    assert 0 < len(mesh.faces) <= budget
    raster = rasterize(mesh, w, h)
    iou = (raster & mask).sum() / (raster | mask).sum()
    if budget == 10_000:
        assert_follows(mesh, mask)
    else:
        assert iou > (0.85 if budget == 200 else 0.6)  # the budget wins over the one-pixel tolerance


def test_curved_depth_gets_more_vertices_than_a_plane():
    mask = np.zeros((H, W), bool)
    mask[10:110, 20:140] = True
    plane = build_layer_mesh(mask, np.full((H, W), 3.0, np.float32), CAMERA)
    depth = sphere_cap(H, W)
    sphere = build_layer_mesh(mask, depth, CAMERA)
    assert len(sphere.vertices) > 3 * len(plane.vertices)
    # The mesh follows the surface: linear interpolation of disparity (exact for 3D triangles) stays
    # within a fraction of a percent of the depth map at every covered pixel centre.
    xy = image_xy(sphere)
    disparity = -1.0 / sphere.vertices[:, 2].astype(np.float64)
    worst = 0.0
    for face in sphere.faces:
        tri = xy[face]
        x0, y0 = np.floor(tri.min(0)).astype(int)
        x1, y1 = np.ceil(tri.max(0)).astype(int)
        py, px = np.mgrid[y0:y1, x0:x1] + 0.5
        t = np.linalg.solve(np.vstack([tri.T, np.ones(3)]), np.stack([px.ravel(), py.ravel(), np.ones(px.size)]))
        inside = np.all(t >= -1e-9, axis=0)
        if inside.any():
            z = 1.0 / (disparity[face] @ t[:, inside])
            truth = depth[py.ravel()[inside].astype(int), px.ravel()[inside].astype(int)]
            worst = max(worst, float(np.max(np.abs(z - truth) / truth)))
    assert worst < 0.01


def test_uvs_match_pixel_corners():
    mask = jagged_blob(H, W, seed=3)
    mesh = build_layer_mesh(mask, sphere_cap(H, W), CAMERA)
    assert np.all((mesh.uvs >= 0) & (mesh.uvs <= 1))
    xy = image_xy(mesh)
    on_corner = np.all(np.abs(xy - np.round(xy)) < 1e-4, axis=1)
    assert on_corner.sum() > 10  # boundary vertices sit on pixel corners
    x, y = np.round(xy[on_corner]).T
    np.testing.assert_array_equal(mesh.uvs[on_corner], np.stack([x / W, 1.0 - y / H], 1).astype(np.float32))


def test_bad_depth_or_camera_is_refused():
    mask = np.zeros((H, W), bool)
    mask[10:20, 10:20] = True
    depth = np.ones((H, W), np.float32)
    depth[15, 15] = 0.0
    with pytest.raises(InputError, match="positive"):
        build_layer_mesh(mask, depth, CAMERA)
    depth[15, 15] = np.nan
    with pytest.raises(InputError):
        build_layer_mesh(mask, depth, CAMERA)
    depth[15, 15] = 1.0
    depth[50, 50] = np.nan  # outside the mask: irrelevant
    build_layer_mesh(mask, depth, CAMERA)
    with pytest.raises(InputError, match="camera"):
        build_layer_mesh(mask, depth, camera_from_fov(W * 2, H * 2, 60.0))


def test_empty_mask_gives_empty_mesh():
    mesh = build_layer_mesh(np.zeros((H, W), bool), np.ones((H, W), np.float32), CAMERA)
    assert mesh.vertices.shape == (0, 3) and mesh.vertices.dtype == np.float32
    assert mesh.uvs.shape == (0, 2) and mesh.uvs.dtype == np.float32
    assert mesh.faces.shape == (0, 3) and mesh.faces.dtype == np.int32


def test_full_frame_mask():
    mask = np.ones((H, W), bool)
    mesh = build_layer_mesh(mask, sphere_cap(H, W), CAMERA)
    assert_valid(mesh)
    assert rasterize(mesh).all()
    xy = image_xy(mesh)
    assert xy.min() == 0 and np.isclose(xy[:, 0].max(), W) and np.isclose(xy[:, 1].max(), H)


# ----------------------------------------------------------------------------------------------- MPI


def test_mpi_plane_depths_uniform_in_disparity():
    depths = mpi_plane_depths(1.0, 20.0, 8)
    assert len(depths) == 8 and depths[0] == pytest.approx(20.0) and depths[-1] == pytest.approx(1.0)
    assert np.all(np.diff(depths) < 0)
    np.testing.assert_allclose(np.diff(1.0 / depths), (1.0 - 1.0 / 20.0) / 7)


def random_layers(h: int, w: int, n: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    rgba, depth = [], []
    for i in range(n):
        layer = rng.random((h, w, 4)).astype(np.float32)
        if i == 0:
            layer[..., 3] = 1.0
        else:
            layer[..., 3] *= rng.random((h, w)) < 0.6  # some pixels fully transparent
        rgba.append(layer)
        # Depth ranges overlap across layers so the monotonic constraint matters.
        depth.append((rng.random((h, w)) * 8.0 + 10.0 - 3.0 * i).astype(np.float32))
    return rgba, depth


@pytest.mark.parametrize("n_planes", [2, 8, 32])
def test_mpi_reproduces_layer_composite(n_planes):
    rgba, depth = random_layers(40, 50, 3)
    planes = build_mpi(rgba, depth, n_planes)
    assert len(planes) == n_planes
    assert all(p.rgba.shape == (40, 50, 4) and p.rgba.dtype == np.float32 for p in planes)
    assert all(a.depth > b.depth for a, b in zip(planes, planes[1:], strict=False))
    assert np.all([(p.rgba >= 0).all() and (p.rgba <= 1 + 1e-6).all() for p in planes])
    expected = composite_back_to_front(rgba)
    got = composite_back_to_front([p.rgba for p in planes])
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_mpi_assigns_nearest_plane():
    rgba = [np.ones((2, 2, 4), np.float32)]
    depth = [np.array([[1.0, 2.0], [4.0, 1.9]], np.float32)]
    planes = build_mpi(rgba, depth, 4)  # disparities 0.25, 0.5, 0.75, 1.0
    alpha = np.stack([p.rgba[..., 3] for p in planes])
    # Each opaque pixel sits on its nearest plane and is backed by a copy on the plane just behind it.
    assert alpha[:, 0, 0].tolist() == [0, 0, 1, 1]
    assert alpha[:, 0, 1].tolist() == [1, 1, 0, 0]
    assert alpha[:, 1, 0].tolist() == [1, 0, 0, 0]
    assert alpha[:, 1, 1].tolist() == [1, 1, 0, 0]


def test_mpi_backing_keeps_filtered_bands_opaque():
    """A slope cut into bands: averaged over 2x2 pixels (a smaller render), the planes still cover fully."""
    rgba = [np.ones((4, 8, 4), np.float32)]
    depth = [np.repeat(np.linspace(1.0, 4.0, 8, dtype=np.float32)[None, :], 4, axis=0)]
    planes = build_mpi(rgba, depth, 4)
    # GPUs filter premultiplied colour; pool that, then go back to straight alpha for compositing.
    pooled = []
    for plane in planes:
        premultiplied = np.concatenate([plane.rgba[..., :3] * plane.rgba[..., 3:], plane.rgba[..., 3:]], -1)
        mean = premultiplied.reshape(2, 2, 4, 2, 4).mean(axis=(1, 3))
        alpha = mean[..., 3:]
        pooled.append(np.concatenate([mean[..., :3] / np.maximum(alpha, 1e-9), alpha], -1))
    np.testing.assert_allclose(composite_back_to_front(pooled), 1.0, atol=1e-6)


def test_composite_back_to_front_over():
    back = np.zeros((1, 1, 4), np.float32)
    back[..., :] = [1.0, 0.0, 0.0, 1.0]
    front = np.array([[[0.0, 0.0, 1.0, 0.25]]], np.float32)
    np.testing.assert_allclose(composite_back_to_front([back, front])[0, 0], [0.75, 0.0, 0.25])
