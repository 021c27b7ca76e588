"""Farm-proof items (core/farm): records that tell a finished item from one to redo, frame chunks, and exit
codes that tell a farm whether to retry."""

from __future__ import annotations

import json
import os
import stat

import pytest

from core.errors import (
    EXIT_BAD_INPUT,
    EXIT_CODES,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_OUT_OF_MEMORY,
    EXIT_PARTIAL,
    EXIT_RENDER,
    EXIT_WORKER,
    failure_class,
)
from core.farm.frames import frame_chunks, parse_frame_range
from core.farm.records import (
    ItemLedger,
    ItemLog,
    ItemRecord,
    file_sha256,
    item_name,
    job_exit_code,
    path_sha256,
    progress_line,
    settings_sha256,
    versions,
)


def _record(ledger: ItemLedger, name: str = "moto", outputs=("moto.mp4",)) -> ItemRecord:
    return ItemRecord(name, "/in/moto.png", "abc", settings_sha256({"frames": 4}), versions(), list(outputs))


def test_a_record_is_finished_only_with_the_same_input_settings_versions_and_outputs(tmp_path):
    ledger = ItemLedger(tmp_path)
    (tmp_path / "moto.mp4").write_bytes(b"video")
    ledger.write(_record(ledger))
    shape = settings_sha256({"frames": 4})
    assert ledger.finished("moto", "abc", shape, versions()) is not None
    assert ledger.finished("moto", "abd", shape, versions()) is None  # another photo
    assert ledger.finished("moto", "abc", settings_sha256({"frames": 5}), versions()) is None  # other settings
    assert ledger.finished("moto", "abc", shape, versions(blender="9.9")) is None  # other versions
    assert ledger.finished("other", "abc", shape, versions()) is None
    (tmp_path / "moto.mp4").unlink()
    assert ledger.finished("moto", "abc", shape, versions()) is None  # an output went missing


def test_forget_removes_the_record_so_a_killed_redo_is_not_finished(tmp_path):
    ledger = ItemLedger(tmp_path)
    (tmp_path / "moto.mp4").write_bytes(b"video")
    ledger.write(_record(ledger))
    ledger.forget("moto")
    ledger.forget("moto")  # twice is fine
    assert ledger.read("moto") is None


@pytest.mark.parametrize(
    "text",
    ["", "{", "[]", '{"format": "photo3d.item", "version": 2}', '{"format": "other", "version": 1}',
     '{"format": "photo3d.item", "version": 1, "name": "moto"}'],
)  # fmt: skip
def test_a_damaged_or_foreign_record_reads_as_none(tmp_path, text):
    ledger = ItemLedger(tmp_path)
    ledger.folder.mkdir()
    ledger.record_path("moto").write_text(text)
    assert ledger.read("moto") is None


def test_a_record_listing_an_output_outside_the_folder_is_not_finished(tmp_path):
    ledger = ItemLedger(tmp_path / "out")
    (tmp_path / "elsewhere.mp4").write_bytes(b"x")
    ledger.write(_record(ledger, outputs=["../elsewhere.mp4"]))
    assert ledger.finished("moto", "abc", settings_sha256({"frames": 4}), versions()) is None


def test_records_are_written_atomically_and_readable_by_others(tmp_path):
    ledger = ItemLedger(tmp_path)
    old = os.umask(0o022)
    try:
        path = ledger.write(_record(ledger, outputs=[]))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in ledger.folder.iterdir()] == ["moto.json"]  # no temporary left
    data = json.loads(path.read_text())
    assert data["format"] == "photo3d.item" and data["finished_at"]


def test_settings_hash_ignores_key_order_and_item_names_are_file_safe(tmp_path):
    assert settings_sha256({"a": 1, "b": [1, 2]}) == settings_sha256({"b": [1, 2], "a": 1})
    assert settings_sha256({"a": 1}) != settings_sha256({"a": 2})
    assert item_name("my photo (1)") == "my_photo_1"
    assert item_name("../../etc") == "etc"
    assert item_name("...") == "item"
    assert item_name("moto", (13, 24)) == "moto@13-24"
    (tmp_path / "f").write_bytes(b"abc")
    assert file_sha256(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_an_item_log_appends_time_stamped_lines(tmp_path):
    path = tmp_path / "items" / "moto.log"
    with ItemLog(path) as log:
        log.write("first")
    with ItemLog(path) as log:
        log.write("second")
    lines = path.read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["first", "second"]


def test_progress_lines_are_one_json_object_each():
    line = progress_line("frame", "moto@1-2", message="a\nb", done=1, total=2)
    prefix, payload = line.split(" ", 1)
    assert prefix == "photo3d-progress" and "\n" not in line
    data = json.loads(payload)
    assert data["event"] == "frame" and data["item"] == "moto@1-2" and data["done"] == 1 and data["message"] == "a\nb"


def test_frame_ranges_and_chunks():
    assert parse_frame_range("13-24", 48) == (13, 24)
    assert parse_frame_range(" 5 - 5 ", 5) == (5, 5)
    for bad in ("0-3", "5-4", "1-49", "3", "a-b", "-3", "1-2-3"):
        with pytest.raises(ValueError):
            parse_frame_range(bad, 48)
    assert frame_chunks(1, 30, 12) == [(1, 12), (13, 24), (25, 30)]
    assert frame_chunks(1, 25, 12)[-1] == (25, 25)
    with pytest.raises(ValueError):
        frame_chunks(1, 10, 0)


def test_failure_classes_tell_a_farm_whether_to_retry():
    assert failure_class(EXIT_OK) == "ok"
    assert failure_class(EXIT_BAD_INPUT) == "permanent" and failure_class(EXIT_INTERNAL) == "permanent"
    for code in (EXIT_WORKER, EXIT_RENDER, EXIT_OUT_OF_MEMORY, 143, 129):
        assert failure_class(code) == "retryable"
    assert failure_class(EXIT_PARTIAL) == "partial"
    assert EXIT_PARTIAL in EXIT_CODES and EXIT_OUT_OF_MEMORY in EXIT_CODES


def test_a_jobs_exit_code():
    assert job_exit_code([]) == EXIT_OK
    assert job_exit_code([("ok", 0), ("skipped", 0)]) == EXIT_OK
    # Every failure permanent: a retry cannot help, even though some items are done.
    assert job_exit_code([("failed", EXIT_BAD_INPUT), ("ok", 0)]) == EXIT_BAD_INPUT
    # Some done and a failure that may go away: retry with --resume.
    assert job_exit_code([("ok", 0), ("failed", EXIT_RENDER)]) == EXIT_PARTIAL
    # Nothing done: the first failure says it all.
    assert job_exit_code([("failed", EXIT_WORKER), ("failed", EXIT_BAD_INPUT)]) == EXIT_WORKER


def test_a_folder_hashes_as_its_files_names_and_bytes(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.npy").write_bytes(b"1")
    (tmp_path / "d" / "b.npy").write_bytes(b"2")
    first = path_sha256(tmp_path / "d")
    assert first == path_sha256(tmp_path / "d") and len(first) == 64
    (tmp_path / "d" / "b.npy").write_bytes(b"3")
    assert path_sha256(tmp_path / "d") != first
    (tmp_path / "d" / "b.npy").write_bytes(b"2")
    (tmp_path / "d" / "b.npy").rename(tmp_path / "d" / "c.npy")
    assert path_sha256(tmp_path / "d") != first
    assert path_sha256(tmp_path / "d" / "a.npy") == file_sha256(tmp_path / "d" / "a.npy")


def test_the_core_batch_offers_the_blender_batchs_render_choices():
    """``python -m core batch`` checks --resolution and --quality before any work, with lists of its own (the
    add-on's render settings import bpy): they must be the add-on's."""
    import ast
    from pathlib import Path

    from core.farm.batch import QUALITIES, RESOLUTIONS

    source = Path(__file__).resolve().parents[1] / "photo3d_addon" / "render" / "settings.py"
    found = {}
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Dict):
            found[node.targets[0].id] = [ast.literal_eval(key) for key in node.value.keys]
    assert list(RESOLUTIONS) == found["RESOLUTIONS"] and list(QUALITIES) == found["QUALITY"]
