"""Our EXR encoder (``core.export.exr``), read back with the OpenEXR bindings; and our reader on files the
bindings wrote."""

from __future__ import annotations

import numpy as np
import OpenEXR
import pytest

from core.errors import ExportError
from core.export.exr import FLOAT, HALF, NO_COMPRESSION, ZIP, ZIPS, read_exr, write_deep_exr, write_exr


def _channels(h=37, w=53):
    rng = np.random.default_rng(0)
    return {
        "R": rng.random((h, w)),
        "G": rng.random((h, w)) * 4.0,  # above 1: scene-linear highlights
        "B": np.zeros((h, w)),
        "A": np.ones((h, w)),
        "Z": rng.random((h, w)) * 100.0,
        "L00.R": rng.random((h, w)),
        "L00.Z": np.full((h, w), np.inf),
        "L01_with_a_name_longer_than_31_characters.A": rng.random((h, w)),
    }


@pytest.mark.parametrize("compression", [ZIP, ZIPS, NO_COMPRESSION])
def test_flat_files_read_back_exactly(tmp_path, compression):
    channels = _channels()
    types = {"Z": FLOAT, "L00.Z": FLOAT}
    write_exr(tmp_path / "f.exr", channels, types, compression, {"comment": "Photo3D"})
    exr = OpenEXR.File(str(tmp_path / "f.exr"), separate_channels=True)
    read = {name: channel.pixels for name, channel in exr.channels().items()}
    assert set(read) == set(channels)
    for name, values in channels.items():
        want = values.astype(np.float32 if types.get(name, HALF) == FLOAT else np.float16)
        assert read[name].dtype == want.dtype and np.array_equal(read[name], want), name
    assert exr.header()["comment"] == "Photo3D"
    assert int(exr.header()["compression"].value) == compression
    assert exr.header()["dataWindow"][1].tolist() == [52, 36]
    # Our own reader gets what the bindings get.
    mine = read_exr(tmp_path / "f.exr")
    assert all(np.array_equal(mine[name], read[name].astype(np.float32)) for name in read)


def test_our_reader_reads_what_the_bindings_write(tmp_path):
    rng = np.random.default_rng(1)
    channels = {
        "ViewLayer.Combined.R": rng.random((40, 30)).astype(np.float32),
        "ViewLayer.Depth.Z": rng.random((40, 30)).astype(np.float32),
    }
    for compression in (OpenEXR.ZIP_COMPRESSION, OpenEXR.ZIPS_COMPRESSION, OpenEXR.NO_COMPRESSION):
        header = {"compression": compression, "type": OpenEXR.scanlineimage}
        OpenEXR.File(header, dict(channels)).write(str(tmp_path / "b.exr"))  # it turns values into Channels
        mine = read_exr(tmp_path / "b.exr")
        assert all(np.array_equal(mine[name], values) for name, values in channels.items()), compression


def test_deep_files_keep_every_sample_in_order(tmp_path):
    rng = np.random.default_rng(2)
    counts = rng.integers(0, 4, (21, 17))
    total = int(counts.sum())
    z = np.sort(rng.random(total)).astype(np.float32)
    samples = {"R": rng.random(total), "A": rng.random(total), "Z": z, "ZBack": z}
    write_deep_exr(tmp_path / "d.exr", counts, samples)
    exr = OpenEXR.File(str(tmp_path / "d.exr"), separate_channels=True)
    assert exr.header()["type"] == OpenEXR.deepscanline
    assert exr.header()["compression"] == OpenEXR.ZIPS_COMPRESSION
    read = exr.channels()["Z"].pixels
    start = 0
    for (y, x), count in np.ndenumerate(counts):
        got = read[y, x]
        assert (0 if got is None else len(got)) == count
        if count:
            assert np.array_equal(got, z[start : start + count])
        start += count


def test_bad_input_is_an_export_error(tmp_path):
    with pytest.raises(ExportError, match="one size"):
        write_exr(tmp_path / "x.exr", {"R": np.zeros((2, 2)), "G": np.zeros((3, 2))})
    with pytest.raises(ExportError, match="at least one channel"):
        write_exr(tmp_path / "x.exr", {})
    with pytest.raises(ExportError, match="needs 3 samples"):
        write_deep_exr(tmp_path / "x.exr", np.array([[1, 2]]), {"Z": np.zeros(2)})
    assert not list(tmp_path.iterdir())  # nothing half-written
    (tmp_path / "broken.exr").write_bytes(b"v/1\x01" + b"\0" * 20)
    with pytest.raises(ExportError, match="cannot read"):
        read_exr(tmp_path / "broken.exr")
