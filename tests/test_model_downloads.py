"""The model manager's downloads against an HTTP server on 127.0.0.1: progress, resume, checksum, cancel,
offline, disk problems, and the ``python -m core models`` command."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.errors import EXIT_DOWNLOAD, EXIT_MISSING_MODEL, Cancelled, DownloadError, InputError
from core.models import download as dl
from core.models.catalog import CATALOG, CatalogModel, ModelFile, find_model, load_catalog, with_base_url
from tests.download_server import FileServer

ROOT = Path(__file__).resolve().parents[1]
BODY = bytes(range(256)) * 3000  # 768,000 bytes: several chunks
OTHER = b"decoder" * 10000


@pytest.fixture
def server():
    files = {"tiny/encoder.onnx": BODY, "tiny/decoder.onnx": OTHER}
    served = FileServer(files)
    yield served
    served.stop()


def _model(server: FileServer, sha: str | None = None, size: int | None = len(BODY)) -> CatalogModel:
    return CatalogModel(
        key="tiny",
        task="segmentation",
        title="Tiny test model",
        licence="MIT",
        source=server.url,
        files=(
            ModelFile("tiny/encoder.onnx", f"{server.url}/tiny/encoder.onnx", size, sha),
            ModelFile("tiny/decoder.onnx", f"{server.url}/tiny/decoder.onnx", len(OTHER), None),
        ),
        option="tiny",
    )


def _gets(server: FileServer, path: str) -> list[str | None]:
    return [rng for method, url, rng in server.requests if method == "GET" and url.endswith(path)]


def test_download_reports_progress_and_publishes_only_verified_files(server, tmp_path):
    events = []
    paths = dl.download_models([_model(server)], tmp_path, online=True, progress=events.append)
    assert [p.read_bytes() for p in paths] == [BODY, OTHER]
    assert paths[0] == tmp_path / "tiny" / "encoder.onnx"
    assert not list(tmp_path.rglob("*.part"))
    encoder = [e for e in events if e.path == "tiny/encoder.onnx"]
    done = [e.done for e in encoder if not e.message]
    assert done == sorted(done) and done[-1] == len(BODY) and len(done) >= 1
    assert encoder[-1].message == "verified" and encoder[-1].fraction == 1.0
    assert dl.model_status(tmp_path, _model(server), check_sum=True) == "ok"


def test_a_second_download_keeps_a_verified_file(server, tmp_path):
    model = _model(server)
    dl.download_models([model], tmp_path, online=True)
    before = len(_gets(server, "encoder.onnx"))
    events = []
    dl.download_models([model], tmp_path, online=True, progress=events.append)
    assert len(_gets(server, "encoder.onnx")) == before
    assert {e.message for e in events} == {"already present"}


def test_resume_after_the_server_drops_the_connection(server, tmp_path):
    server.faults.drop_after, server.faults.drops = 300_000, 1
    dl.download_file("tiny", _model(server).files[0], tmp_path, backoff_s=0.0)
    assert (tmp_path / "tiny" / "encoder.onnx").read_bytes() == BODY
    ranges = _gets(server, "encoder.onnx")
    assert ranges[0] is None and ranges[1] == "bytes=300000-"


def test_a_server_that_ignores_ranges_restarts_the_file(server, tmp_path):
    part = tmp_path / "tiny" / "encoder.onnx.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 1000)  # junk from an earlier try
    server.faults.ignore_range = True
    dl.download_file("tiny", _model(server).files[0], tmp_path)
    assert (tmp_path / "tiny" / "encoder.onnx").read_bytes() == BODY


def test_checksum_mismatch_is_rejected_and_nothing_is_left(server, tmp_path):
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(DownloadError, match="checksum mismatch.*deleted"):
        dl.download_file("tiny", _model(server, sha=wrong).files[0], tmp_path)
    assert not list((tmp_path / "tiny").iterdir())


def test_the_published_checksum_is_read_before_the_redirect(server, tmp_path):
    server.faults.redirect = True
    assert dl.published_sha256(f"{server.url}/tiny/encoder.onnx") == hashlib.sha256(BODY).hexdigest()
    dl.download_file("tiny", _model(server).files[0], tmp_path)
    assert (tmp_path / "tiny" / "encoder.onnx").read_bytes() == BODY
    assert any(url.startswith("/cdn/") for _, url, _ in server.requests)


def test_no_checksum_anywhere_is_refused(server, tmp_path):
    server.faults.publish_sha = False
    with pytest.raises(DownloadError, match="publishes no SHA-256.*by hand"):
        dl.download_file("tiny", _model(server).files[0], tmp_path)
    assert not (tmp_path / "tiny").exists()


def test_cancel_keeps_the_part_and_the_next_download_resumes_it(server, tmp_path):
    server.faults.chunk_delay_s = 0.002
    seen = []

    def stop_after_some() -> bool:
        return len(seen) >= 2

    with pytest.raises(Cancelled):
        dl.download_file("tiny", _model(server).files[0], tmp_path, progress=seen.append, should_stop=stop_after_some)
    part = tmp_path / "tiny" / "encoder.onnx.part"
    assert part.is_file() and 0 < part.stat().st_size < len(BODY)
    assert not (tmp_path / "tiny" / "encoder.onnx").exists()
    assert dl.file_status(tmp_path, _model(server).files[0]) == "partial"
    kept = part.stat().st_size
    server.faults.chunk_delay_s = 0.0
    dl.download_file("tiny", _model(server).files[0], tmp_path)
    assert (tmp_path / "tiny" / "encoder.onnx").read_bytes() == BODY
    assert _gets(server, "encoder.onnx")[-1] == f"bytes={kept}-"


def test_offline_refusal_names_every_file_and_where_to_put_it(server, tmp_path):
    model = _model(server)
    with pytest.raises(dl.OfflineError) as caught:
        dl.download_models([model], tmp_path, online=False)
    message = str(caught.value)
    for item in model.files:
        assert item.url in message and str(tmp_path / item.path) in message
    assert server.requests == [] and not any(tmp_path.iterdir())


def test_offline_is_fine_when_everything_is_there(server, tmp_path):
    model = _model(server)
    dl.download_models([model], tmp_path, online=True)
    count = len(server.requests)
    assert dl.offline_instructions([model], tmp_path) == ""
    paths = dl.download_models([model], tmp_path, online=False)
    assert paths == [tmp_path / item.path for item in model.files]
    assert len(server.requests) == count  # offline: the network is never touched


def test_not_enough_disk_space_is_reported_before_downloading(server, tmp_path, monkeypatch):
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda _p: _Usage(10))
    with pytest.raises(DownloadError, match="not enough disk space.*MB needed"):
        dl.download_file("tiny", _model(server).files[0], tmp_path)
    assert _gets(server, "encoder.onnx") == []


class _Usage:
    def __init__(self, free: int):
        self.free = free


def test_a_full_disk_while_writing_is_reported_and_the_part_removed(server, tmp_path, monkeypatch):
    real_open = open

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    def fake_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        return FullDisk(handle) if str(path).endswith(".part") else handle

    monkeypatch.setattr(dl, "open", fake_open, raising=False)
    with pytest.raises(DownloadError, match="is full; the partial download was removed"):
        dl.download_file("tiny", _model(server).files[0], tmp_path)
    assert not list(tmp_path.rglob("*.part"))


def test_an_unusable_destination_is_reported(server, tmp_path):
    blocker = tmp_path / "models"
    blocker.write_text("a file where the models folder should be")
    with pytest.raises(DownloadError, match="cannot create the models folder"):
        dl.download_file("tiny", _model(server).files[0], blocker)


def test_a_missing_file_is_a_clear_error_and_server_errors_are_retried(server, tmp_path):
    item = ModelFile("tiny/none.onnx", f"{server.url}/tiny/none.onnx", None, "0" * 64)
    with pytest.raises(DownloadError, match="404"):
        dl.download_file("tiny", item, tmp_path)
    server.faults.status = 503
    with pytest.raises(DownloadError, match="after 3 tries.*503"):
        dl.download_file("tiny", _model(server).files[0], tmp_path, attempts=3, backoff_s=0.0)


def test_nothing_listening_is_a_clear_error(tmp_path):
    item = ModelFile("x/y.onnx", "http://127.0.0.1:9/y.onnx", None, None)
    with pytest.raises(DownloadError, match="cannot reach"):
        dl.download_file("x", item, tmp_path, timeout=2)


def test_status_reports_wrong_sizes_and_bad_checksums(server, tmp_path):
    model = _model(server, sha=hashlib.sha256(BODY).hexdigest())
    assert dl.model_status(tmp_path, model) == "missing"
    dl.download_models([model], tmp_path, online=True)
    path = tmp_path / "tiny" / "encoder.onnx"
    path.write_bytes(BODY[:-1] + b"\0")
    assert dl.model_status(tmp_path, model) == "ok"  # same size: only the checksum tells
    assert dl.model_status(tmp_path, model, check_sum=True) == "checksum mismatch"
    path.write_bytes(BODY[:10])
    assert dl.model_status(tmp_path, model) == "wrong size"


def test_the_catalog_defaults_are_permissive_and_complete():
    defaults = [model for model in CATALOG if model.default]
    assert {model.task for model in defaults} == {"depth", "segmentation"}  # the default inpainting is Telea
    assert {model.task for model in CATALOG} == {"depth", "segmentation", "inpainting"}
    assert all(model.licence in ("Apache-2.0", "MIT") for model in CATALOG)
    assert len({model.key for model in CATALOG}) == len(CATALOG)
    mirrored = with_base_url(CATALOG, "http://mirror.example/models/")
    assert all(item.url == f"http://mirror.example/models/{item.path}" for m in mirrored for item in m.files)
    with pytest.raises(InputError, match="unknown model 'nope'.*depth-small"):
        find_model("nope")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("path", "../escape.onnx", "must be relative"),
        ("path", "/abs.onnx", "must be relative"),
        ("url", "file:///etc/passwd", "http"),
        ("sha256", "abc", "64 hex digits"),
        ("size", -1, "whole number"),
    ],
)
def test_a_bad_catalog_file_is_refused_naming_the_field(tmp_path, field, value, message):
    item = {"path": "a/b.onnx", "url": "http://x/b.onnx", "size": 1, "sha256": "0" * 64, field: value}
    entry = {"key": "k", "task": "depth", "title": "t", "licence": "MIT", "source": "s", "option": "a/b.onnx"}
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"models": [{**entry, "files": [item]}]}))
    with pytest.raises(InputError, match=message):
        load_catalog(str(path))


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PHOTO3D_MODELS_DIR"}
    return subprocess.run([sys.executable, "-m", "core", "models", *args], cwd=ROOT, capture_output=True,
                          text=True, env=env, timeout=60)  # fmt: skip


def _catalog_file(server: FileServer, tmp_path: Path, corrupt_sha: bool = False) -> Path:
    sha = hashlib.sha256(BODY).hexdigest()
    entry = {
        "key": "tiny",
        "task": "segmentation",
        "title": "Tiny test model",
        "licence": "MIT",
        "source": server.url,
        "option": "tiny",
        "default": True,
        "files": [{"path": "tiny/encoder.onnx", "url": "http://unused/", "size": len(BODY), "sha256": sha}],
    }
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"models": [entry]}))
    return path


def test_cli_download_list_and_verify(server, tmp_path):
    catalog = _catalog_file(server, tmp_path)
    models = tmp_path / "models"
    common = ["--catalog", str(catalog), "--base-url", server.url, "--models-dir", str(models)]
    offline = _cli("download", "--offline", *common)
    assert offline.returncode == EXIT_DOWNLOAD and "save it as" in offline.stderr and "Traceback" not in offline.stderr
    listed = _cli("list", "--json", *common)
    assert listed.returncode == 0 and json.loads(listed.stdout.splitlines()[0])["status"] == "missing"
    fetched = _cli("download", "--json", *common)
    assert fetched.returncode == 0, fetched.stderr
    events = [json.loads(line) for line in fetched.stdout.splitlines()]
    assert events[-1]["event"] == "done" and any(e["event"] == "progress" for e in events)
    assert (models / "tiny" / "encoder.onnx").read_bytes() == BODY
    assert _cli("verify", *common).returncode == 0
    (models / "tiny" / "encoder.onnx").write_bytes(b"\0" * len(BODY))
    bad = _cli("verify", *common)
    assert bad.returncode == EXIT_MISSING_MODEL and "checksum mismatch" in bad.stdout


def test_cli_without_a_models_folder_says_how_to_give_one():
    result = _cli("list")
    assert result.returncode == 2 and "--models-dir" in result.stderr and "Traceback" not in result.stderr


# -- the Blender side's task, in plain Python ----------------------------------------------------------------
def _task_model(server: FileServer):
    from tests.pure_addon import core

    catalog = core("models.catalog")
    return catalog.CatalogModel(
        key="tiny", task="segmentation", title="Tiny test model", licence="MIT", source=server.url,
        files=(catalog.ModelFile("tiny/encoder.onnx", f"{server.url}/tiny/encoder.onnx", len(BODY), None),),
        option="tiny",
    )  # fmt: skip


def test_the_download_task_reports_progress_and_finishes(server, tmp_path):
    from tests.pure_addon import addon

    task_module, downloads = addon("worker.task"), addon("worker.downloads")
    task = downloads.ModelDownload([_task_model(server)], tmp_path, online=True)
    assert isinstance(task, task_module.Task)
    shares = []
    task_module.run_blocking(task, on_progress=lambda share, text: shares.append(share))
    assert task.error is None and task.status == (1.0, "all models verified")
    assert shares == sorted(shares)
    assert (tmp_path / "tiny" / "encoder.onnx").read_bytes() == BODY


def test_the_download_task_cancels_within_a_read_and_keeps_the_part(server, tmp_path):
    from tests.pure_addon import addon

    downloads = addon("worker.downloads")
    server.faults.chunk_delay_s = 0.01
    task = downloads.ModelDownload([_task_model(server)], tmp_path, online=True)
    task.start()
    part = tmp_path / "tiny" / "encoder.onnx.part"
    deadline = time.monotonic() + 20
    while not (part.is_file() and part.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    task.cancel()
    while not task.step() and time.monotonic() - started < 5:
        time.sleep(0.01)
    assert task.done and task.cancelled and "resumes" in task.error
    assert time.monotonic() - started < 2.0
    assert part.is_file() and not (tmp_path / "tiny" / "encoder.onnx").exists()


def test_worker_missing_model_errors_read_in_blenders_terms(tmp_path):
    from core.errors import ModelError
    from core.models import weights
    from core.models.preflight import MissingModels, model_problems
    from core.options import PipelineOptions
    from tests.pure_addon import addon

    job = addon("worker.job")
    options = PipelineOptions.from_dict({"segment": {"model": "facebook/sam-vit-base"}})
    problems = model_problems(options)  # no models folder, offline: every model missing, with terminal hints
    with pytest.raises(ModelError) as refill:
        weights.locate(weights.WeightsNeed("depth model", "owner/name", "transformers"), str(tmp_path), True)
    (tmp_path / "owner--name").mkdir()
    with pytest.raises(ModelError) as incomplete:
        weights.locate(weights.WeightsNeed("depth model", "owner/name", "transformers"), str(tmp_path), True)
    for message in (str(MissingModels(problems)), str(refill.value), str(incomplete.value)):
        assert "--" in message or "hf download" in message  # the terminal wording is what the worker sends
        state = job.JobState(status="failed", error_code="missing_model", error=message)
        shown = state.describe_error()
        assert "hf download" not in shown and not re.search(r"(^|\s)--[a-z]", shown), shown
        assert "Hugging Face hub" in shown
