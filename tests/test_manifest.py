"""The typed manifest (``core/package/manifest.py``): a round trip through ``to_dict`` is exact, every field
that is missing, mistyped or out of range is refused naming it, and an older 1.x manifest still reads."""

from __future__ import annotations

import copy
import json

import pytest

from core.errors import PackageError
from core.package import read_package, write_package_atomically
from core.package.manifest import FORMAT_VERSION, Manifest, parse_manifest
from tests.manifests import manifest_dict


def test_round_trip_is_exact():
    manifest = parse_manifest(manifest_dict(layer_ranges=[(4.0, 6.0), (2.0, 3.0)], band_fraction=0.1))
    assert isinstance(manifest, Manifest)
    again = parse_manifest(json.loads(json.dumps(manifest.to_dict())))
    assert again == manifest
    assert again.to_dict() == manifest.to_dict()
    assert manifest.band_fraction == 0.1 and manifest.options == {"inpaint": {"band_fraction": 0.1}}


def test_a_written_package_is_its_typed_manifest(tmp_path):
    """The writer rebuilds the JSON from the typed manifest; what is read back is what was returned."""
    import numpy as np
    from PIL import Image

    data = manifest_dict(width=16, height=12, focal_px=20.0, depth_range=(2.0, 6.0))
    data["work_size"] = [12, 16]
    data["stats"] = {"regions": 3}

    def fill(folder):
        (folder / "layers").mkdir()
        Image.fromarray(np.zeros((12, 16, 4), np.uint8)).save(folder / "layers" / "00_color.png")
        np.savez(
            folder / "layers" / "00_mesh.npz",
            vertices=np.array([[0, 0, -3], [1, 0, -3], [0, 1, -3]], np.float32),
            uvs=np.zeros((3, 2), np.float32),
            faces=np.array([[0, 1, 2]], np.int32),
        )
        np.save(folder / "depth.npy", np.full((12, 16), 3.0, np.float32))
        return dict(data, unknown_extra="dropped")

    written = write_package_atomically(tmp_path / "pkg", fill)
    on_disk = json.loads((tmp_path / "pkg" / "manifest.json").read_text())
    assert "unknown_extra" not in on_disk and on_disk == written.manifest.to_dict()
    assert read_package(tmp_path / "pkg").manifest == written.manifest
    assert written.manifest.stats == {"regions": 3}


# (where, value): each malformed field, and the words the error must name.
MALFORMED = [
    (("format",), "photo3d.other", "not a Photo3D layer package"),
    (("version",), "2.0", "version"),
    (("version",), 1.0, "version"),
    (("source",), None, "source"),
    (("source", "width"), "wide", "source.width"),
    (("source", "height"), 3, "source.height"),
    (("source", "sha256"), "xyz", "source.sha256"),
    (("source", "has_alpha"), "yes", "source.has_alpha"),
    (("source", "orientation"), 9, "source.orientation"),
    (("camera",), [], "camera"),
    (("camera", "width"), 0, "camera.width"),
    (("camera", "focal_px"), float("nan"), "camera.focal_px"),
    (("camera", "focal_px"), 1e-3, "camera.focal_px"),
    (("camera", "cx"), "middle", "camera.cx"),
    (("camera", "fov_x_deg"), 10.0, "camera.fov_x_deg"),
    (("camera", "focal_source"), "guess", "camera.focal_source"),
    (("work_size",), [480], "work_size"),
    (("work_size",), [480, 100], "work_size"),
    (("depth",), "deep", "depth"),
    (("depth", "min"), -1.0, "depth.min"),
    (("depth", "max"), 1.0, "depth"),
    (("depth", "map"), "../../etc/passwd", "depth.map"),
    (("depth", "units"), 3, "depth.units"),
    (("representation",), "voxels", "representation"),
    (("layers",), [], "no layers"),
    (("layers", 0, "index"), 1, "layers[0].index"),
    (("layers", 0, "name"), "", "layers[0].name"),
    (("layers", 0, "texture"), "/abs/olute.png", "layers[0].texture"),
    (("layers", 0, "mesh"), None, "layers[0].mesh"),
    (("layers", 0, "depth_range"), [3.0, 2.0], "layers[0].depth_range"),
    (("layers", 0, "pixel_count"), -1, "layers[0].pixel_count"),
    (("layers", 0, "inpainted_fraction"), 1.5, "layers[0].inpainted_fraction"),
    (("layers", 0, "vertices"), 2, "layers[0].vertices"),
    (("contact_sheet",), "C:\\sheet.png", "contact_sheet"),
    (("models",), {"depth": 3}, "models"),
    (("timings",), {"load": -1.0}, "timings"),
    (("options",), [], "options"),
    (("options", "inpaint"), {"band_fraction": 2.0}, "options.inpaint"),
    (("stats",), "many", "stats"),
]


def _set(tree, where, value):
    node = tree
    for key in where[:-1]:
        node = node[key]
    if value is None and where[-1] in node and where != ("source",):
        del node[where[-1]]
    else:
        node[where[-1]] = value


@pytest.mark.parametrize(("where", "value", "named"), MALFORMED, ids=[".".join(map(str, m[0])) for m in MALFORMED])
def test_every_malformed_field_is_refused_naming_it(where, value, named):
    data = copy.deepcopy(manifest_dict())
    _set(data, where, value)
    with pytest.raises(PackageError) as refused:
        parse_manifest(data)
    assert named in str(refused.value)


def test_an_older_1x_manifest_still_reads():
    """A 1.0 manifest as the first writer made it: no options, stats, models, timings, contact sheet,
    created_by or created_at, no source hash, no principal-point or field-of-view fields' extras."""
    data = manifest_dict(band_fraction=None)
    for key in ("options",):
        data.pop(key)
    data["camera"] = {"width": 640, "height": 480, "focal_px": 500.0, "cx": 320.0, "cy": 240.0}
    data["version"] = "1.0"
    manifest = parse_manifest(data)
    assert manifest.version == "1.0" and manifest.band_fraction is None
    assert (manifest.options, manifest.stats, manifest.models, manifest.timings) == ({}, {}, {}, {})
    assert manifest.camera.focal_source == "default"
    assert FORMAT_VERSION.startswith("1.")
