"""The add-on's plain-Python parts: options from the operator's choices, the import job's state machine over
a real worker, worker discovery, and the camera math checked against Blender's own projection."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy", reason="the add-on's modules live in the Blender extension package")

from core.options import PipelineOptions  # noqa: E402
from tests.blender_support import addon_module  # noqa: E402
from tests.scenes import square_scene  # noqa: E402


@pytest.fixture(scope="module")
def mods(photo3d_extension):
    names = {
        "job_options": "importing.choices",
        "import_job": "worker.job",
        "worker_client": "worker.client",
        "worker_env": "worker.environment",
        "camera_math": "scene.placement",
    }
    return {name: addon_module(f"photo3d_addon.{module}") for name, module in names.items()}


# -- options ----------------------------------------------------------------------------------------------
def test_choices_become_valid_pipeline_options(mods, tmp_path):
    jo = mods["job_options"]
    depth = tmp_path / "d.npy"
    np.save(depth, np.ones((4, 4), np.float32))
    choices = jo.ImportChoices(
        representation="MPI", layers=6, quality="HIGH", depth_source="FILE", depth_file=str(depth),
        depth_kind="DISPARITY", depth_scale=4.0, segmentation=False, inpaint="NS", device="cpu", focal_px=995.0,
    )  # fmt: skip
    options = jo.pipeline_options(choices)
    parsed = PipelineOptions.from_dict(options)  # the worker accepts exactly this
    assert parsed.geometry.representation == "mpi" and parsed.geometry.mpi_planes == 48
    assert parsed.load.work_size == 1536 and parsed.layers.max_layers == 6 and parsed.load.focal_px == 995.0
    assert parsed.depth.depth_file == str(depth) and parsed.depth.depth_kind == "disparity"
    assert parsed.depth.depth_scale == 4.0 and parsed.segment.model == "none"
    assert parsed.inpaint.method == "ns" and parsed.runtime.device == "cpu" and parsed.runtime.offline


def test_default_choices_use_the_models(mods):
    jo = mods["job_options"]
    parsed = PipelineOptions.from_dict(jo.pipeline_options(jo.ImportChoices()))
    assert parsed.depth.depth_file is None and parsed.segment.model != "none"
    assert parsed.geometry.representation == "mesh" and parsed.geometry.max_triangles == 10000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"depth_source": "FILE", "depth_file": "/nowhere/depth.npy"}, "depth file"),
        ({"depth_source": "FILE", "depth_file": ""}, "none chosen"),
        ({"layers": 0}, "between 1 and 32"),
        ({"quality": "ULTRA"}, "unknown quality"),
        ({"focal_px": -3.0}, "focal length must be positive"),
    ],
)
def test_impossible_choices_are_named(mods, change, message):
    jo = mods["job_options"]
    with pytest.raises(jo.ChoiceError, match=message):
        jo.pipeline_options(jo.ImportChoices(**change))


def test_image_path_checks(mods, tmp_path):
    jo = mods["job_options"]
    (tmp_path / "a.JPG").write_bytes(b"x")
    assert jo.check_image_path(str(tmp_path / "a.JPG")) == tmp_path / "a.JPG"
    with pytest.raises(jo.ChoiceError, match="no image"):
        jo.check_image_path("")
    with pytest.raises(jo.ChoiceError, match="does not exist"):
        jo.check_image_path(str(tmp_path / "b.jpg"))


def test_package_dir_is_stable_per_photo_and_safe(mods, tmp_path):
    ij = mods["import_job"]
    a = ij.package_dir_for(tmp_path / "My Photo: 1.jpg", tmp_path / "pkgs")
    assert a == ij.package_dir_for(tmp_path / "My Photo: 1.jpg", tmp_path / "pkgs")
    assert a != ij.package_dir_for(tmp_path / "other" / "My Photo: 1.jpg", tmp_path / "pkgs")
    assert a.parent == tmp_path / "pkgs" and ":" not in a.name and " " not in a.name


# -- the job over a real worker ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def worker(mods):
    client = mods["worker_client"].WorkerClient(sys.executable)
    client.start()
    yield client
    client.stop()


def test_job_reports_progress_then_done(mods, worker, tmp_path):
    image, depth = square_scene(h=480, w=640).write(tmp_path / "in")
    options = {"depth": {"depth_file": str(depth)}, "segment": {"model": "none"}}
    job = mods["import_job"].ImportJob(worker, str(image), str(tmp_path / "pkg"), options)
    job.start()
    seen = []
    state = job.wait(on_progress=lambda s: seen.append((s.stage, s.overall)), timeout=120, interval=0.005)
    assert state.status == "done" and Path(state.package) == tmp_path / "pkg"
    assert state.timings and state.overall == 1.0
    overall = [o for _, o in seen]
    assert overall == sorted(overall) and len({stage for stage, _ in seen if stage}) >= 2


def test_job_error_is_described_in_words(mods, worker, tmp_path):
    _, depth = square_scene().write(tmp_path / "in")
    options = {"depth": {"depth_file": str(depth)}, "segment": {"model": "none"}}
    job = mods["import_job"].ImportJob(worker, str(tmp_path / "nope.png"), str(tmp_path / "pkg"), options)
    job.start()
    state = job.wait(timeout=60)
    assert state.status == "failed" and state.error_code == "bad_input"
    assert state.describe_error().startswith("The photo or an option could not be used: ")
    assert "nope.png" in state.describe_error()


def test_late_events_of_an_abandoned_job_are_ignored(mods, worker, tmp_path):
    image, depth = square_scene().write(tmp_path / "in")
    options = {"depth": {"depth_file": str(depth)}, "segment": {"model": "none"}}
    first = mods["import_job"].ImportJob(worker, str(image), str(tmp_path / "a"), options)
    first.start()
    second = mods["import_job"].ImportJob(worker, str(image), str(tmp_path / "b"), options)
    second.start()
    assert second.wait(timeout=120).package == str(tmp_path / "b")  # the first job's events were skipped


def test_dead_worker_fails_the_job_with_its_last_words(mods, tmp_path):
    fake = tmp_path / "fake_python"
    fake.write_text(
        "#!/bin/sh\necho '{\"type\": \"ready\"}'\nread line\necho 'Segmentation fault in libtorch' >&2\nexit 139\n"
    )
    fake.chmod(0o755)
    client = mods["worker_client"].WorkerClient(str(fake))
    client.start()
    job = mods["import_job"].ImportJob(client, "x.png", str(tmp_path / "pkg"), {})
    job.start()
    state = job.wait(timeout=30)
    assert state.status == "failed" and state.error_code == "worker_died"
    assert "exit code 139" in state.error and "Segmentation fault in libtorch" in state.error
    client.stop()


def test_worker_that_cannot_start_is_explained(mods, tmp_path):
    wc = mods["worker_client"]
    with pytest.raises(wc.WorkerError, match="does not exist"):
        wc.WorkerClient(str(tmp_path / "no-python")).start()
    broken = tmp_path / "broken_python"
    broken.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named torch' >&2\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(wc.WorkerError, match="No module named torch"):
        wc.WorkerClient(str(broken)).start()


def test_cancel_stops_the_job_quickly(mods, worker, tmp_path):
    image, depth = square_scene(h=480, w=640).write(tmp_path / "in")
    options = {"depth": {"depth_file": str(depth)}, "segment": {"model": "none"}, "geometry": {"max_triangles": 50000}}
    job = mods["import_job"].ImportJob(worker, str(image), str(tmp_path / "pkg"), options)
    job.start()
    while job.poll().stage in ("", "load"):
        time.sleep(0.01)
    started = time.monotonic()
    job.cancel()
    assert job.wait_cancelled().status == "cancelled"
    assert time.monotonic() - started < 5.0
    assert not (tmp_path / "pkg").exists()
    assert worker.alive  # the worker stays up for the next job


# -- worker discovery and set-up ---------------------------------------------------------------------------
def test_worker_python_search_order(mods, tmp_path, monkeypatch):
    we = mods["worker_env"]
    managed = tmp_path / "managed"
    monkeypatch.delenv("PHOTO3D_WORKER_PYTHON", raising=False)
    # Nothing configured, no managed environment: the installed extension has no .venv either.
    assert we.find_worker_python("", managed) is None
    python = we.venv_python(managed)
    python.parent.mkdir(parents=True)
    python.write_text("")
    assert we.find_worker_python("", managed) == ("managed environment", python)
    monkeypatch.setenv("PHOTO3D_WORKER_PYTHON", sys.executable)
    assert we.find_worker_python("", managed) == ("PHOTO3D_WORKER_PYTHON", Path(sys.executable))
    # What the user set wins, even when it is wrong: the error must name it.
    assert we.find_worker_python("/no/python", managed) == ("preferences", Path("/no/python"))


def test_setup_commands_install_the_shipped_requirements(mods, tmp_path):
    we = mods["worker_env"]
    commands = we.setup_commands(tmp_path / "env", "/blender/python")
    assert commands[0] == ["/blender/python", "-m", "venv", str(tmp_path / "env")]
    assert commands[2][-2:] == ["-r", str(we.REQUIREMENTS_FILE)]
    assert we.REQUIREMENTS_FILE.is_file()  # shipped inside the extension
    assert "torch==2.13.0" in we.REQUIREMENTS_FILE.read_text()


def test_environment_setup_reports_failure_with_output(mods, tmp_path):
    we = mods["worker_env"]
    setup = we.EnvironmentSetup(tmp_path / "env", sys.executable)
    setup.commands = [[sys.executable, "-c", "print('Collecting numpy'); raise SystemExit(3)"]]
    setup.start()
    setup.thread.join(30)
    assert setup.done and "exit code 3" in setup.error and "Collecting numpy" in setup.error


# -- camera --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("width", "height", "cx", "cy"), [(640, 480, 300.5, 250.0), (480, 640, 260.0, 300.0)])
def test_blender_camera_projects_like_the_photo_camera(mods, width, height, cx, cy):
    """The one camera model round-trips against Blender: a point ``core.camera`` unprojects from pixel (u, v)
    lands at (u, v) in Blender's render (``world_to_camera_view``) and in ``Camera.project``, for the photo's
    camera and for a moved, turned, zoomed one; the frustum corners land on the frame's corners."""
    import mathutils
    from bpy_extras.object_utils import world_to_camera_view

    camera_module = addon_module("core.camera")
    camera = camera_module.Camera(width, height, 700.0, cx, cy)
    settings = mods["camera_math"].camera_settings(camera, 1.0, 10.0)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = settings.resolution_x, settings.resolution_y
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    data = bpy.data.cameras.new("probe")
    for name in ("sensor_fit", "sensor_width", "sensor_height", "lens", "shift_x", "shift_y"):
        setattr(data, name, getattr(settings, name))
    obj = bpy.data.objects.new("probe", data)
    scene.collection.objects.link(obj)
    try:
        pixels = np.array([(10.0, 20.0), (width - 5.0, height - 7.0), (cx, cy)])
        points = camera.unproject(pixels[:, 0], pixels[:, 1], np.array([2.0, 5.0, 3.0]))
        assert camera.project(points) == pytest.approx(pixels, abs=1e-9)
        for point, (u, v) in zip(points, pixels, strict=True):
            ndc = world_to_camera_view(scene, obj, mathutils.Vector(point))
            assert (ndc.x * width, (1.0 - ndc.y) * height) == pytest.approx((u, v), abs=1e-3)
            assert ndc.z == pytest.approx(-point[2], abs=1e-6)
        # A moved camera: Blender's object transform and lens against Camera.project's pose and lens scale.
        location, rotation, lens_scale = (0.3, -0.2, 0.5), (0.05, -0.1, 0.2), 1.3
        obj.location, obj.rotation_euler, data.lens = location, rotation, settings.lens * lens_scale
        bpy.context.view_layer.update()
        expected = camera.project(points, location, camera_module.euler_matrix(rotation), lens_scale)
        for point, (u, v) in zip(points, expected, strict=True):
            ndc = world_to_camera_view(scene, obj, mathutils.Vector(point))
            assert (ndc.x * width, (1.0 - ndc.y) * height) == pytest.approx((u, v), abs=1e-3)
        obj.location, obj.rotation_euler, data.lens = (0.0, 0.0, 0.0), (0.0, 0.0, 0.0), settings.lens
        bpy.context.view_layer.update()
        frame = [(0.0, 1.0), (1.0, 1.0), (1.0, 0.0), (0.0, 0.0)]  # NDC of top-left, top-right, bottom-right...
        for corner, ndc_expected in zip(camera.frustum_corners(4.0), frame, strict=True):
            ndc = world_to_camera_view(scene, obj, mathutils.Vector(corner))
            assert (ndc.x, ndc.y) == pytest.approx(ndc_expected, abs=1e-6)
    finally:
        bpy.data.objects.remove(obj)
        bpy.data.cameras.remove(data)


def test_layer_origins_sort_like_the_layers(mods):
    """Eevee sorts blended layers by origin distance: origins on the axis, strictly nearer front to back."""
    info = addon_module("core.package.manifest").LayerInfo
    layers = [
        info(0, "a", "a.png", (8.0, 10.0), 1, median_depth=9.0),
        info(1, "b", "b.png", (3.0, 9.5), 1, median_depth=4.0),
        info(2, "c", "c.png", (3.5, 4.5), 1, median_depth=4.0),  # a tie must still be ordered
        info(3, "d", "d.png", (2.0, 2.0), 1, plane_depth=2.0),
    ]
    origins = addon_module("core.placement").layer_origins(layers)
    assert all(x == 0.0 and y == 0.0 for x, y, _ in origins)
    distances = [-z for _, _, z in origins]
    assert distances[0] == 9.0 and distances[1] == 4.0 and distances[3] == 2.0
    assert all(a > b for a, b in zip(distances, distances[1:], strict=False))
