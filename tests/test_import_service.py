"""The one import service over a real worker, in plain Python: photos one after another with a result each,
a failed photo never stopping the next, cancel returning before the worker has confirmed (the UI is never
blocked) with the clean-up finished in the background, and a worker that cannot start named per photo."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from tests.pure_addon import addon
from tests.scenes import square_scene

service_module = addon("importing.service")
client_module = addon("worker.client")
task_module = addon("worker.task")


@pytest.fixture(scope="module")
def worker():
    client = client_module.WorkerClient(sys.executable)
    client.start()
    yield client
    client.stop()


def _options(depth: Path) -> dict:
    return {"depth": {"depth_file": str(depth)}, "segment": {"model": "none"}}


def test_photos_go_through_one_by_one_and_a_failure_does_not_stop_the_next(worker, tmp_path):
    image, depth = square_scene().write(tmp_path / "in")
    broken = tmp_path / "in" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    seen = []
    service = service_module.ImportService(
        [broken, image], _options(depth), tmp_path / "packages", lambda: worker, on_result=seen.append
    )
    statuses = []
    task_module.run_blocking(service, on_progress=lambda share, text: statuses.append((share, text)))
    assert [(o.image.name, o.ok) for o in seen] == [("broken.png", False), (image.name, True)]
    assert seen[0].state.error_code == "bad_input" and "broken.png" in seen[0].state.describe_error()
    assert seen[1].package.parent == tmp_path / "packages" and (seen[1].package / "manifest.json").is_file()
    shares = [share for share, _ in statuses]
    assert shares == sorted(shares) and 0.5 <= shares[-1] <= 1.0
    assert any("(2/2)" in text for _, text in statuses)
    assert isinstance(service, task_module.Task)


def test_cancel_returns_before_the_worker_confirms_and_cleans_up_behind(worker, tmp_path):
    image, depth = square_scene(h=1200, w=1600).write(tmp_path / "in")
    service = service_module.ImportService([image, image], _options(depth), tmp_path / "packages", lambda: worker)
    service.start()
    job = service.job
    while not service.step():
        if job.state.stage:  # the conversion is under way in the worker
            break
    # The background clean-up is held until the checks below: had cancel() waited for the worker itself, it
    # would sit here for a minute and return with the job cancelled; it returns with the job being stopped.
    release = threading.Event()
    confirm = job.wait_cancelled
    job.wait_cancelled = lambda: release.wait(60) and confirm()
    service.cancel()
    assert job.state.status == "cancelling"
    assert service.step() is True and service.job is None
    assert task_module.cleanups_running()
    release.set()
    assert task_module.wait_for_cleanups(timeout=60)
    assert job.state.status == "cancelled"
    assert service.outcomes == []  # the second photo never started
    packages = tmp_path / "packages"
    assert not packages.exists() or not any(packages.iterdir())  # no package, no staging folder


def test_a_worker_that_cannot_start_fails_each_photo_with_the_reason(tmp_path):
    image, depth = square_scene().write(tmp_path / "in")

    def connect():
        client = client_module.WorkerClient(str(tmp_path / "no-python"))
        client.start()
        return client

    service = service_module.ImportService([image, image], _options(depth), tmp_path / "packages", connect)
    task_module.run_blocking(service)
    assert [o.ok for o in service.outcomes] == [False, False]
    assert all("no-python" in o.state.describe_error() for o in service.outcomes)
