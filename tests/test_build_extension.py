"""Extension packaging: scripts/build_extension.py builds validated per-platform zips with Blender's CLI."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_build_script():
    """Import scripts/build_extension.py by path (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("build_extension", ROOT / "scripts" / "build_extension.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load_build_script()
fetch_wheels = build._load_fetch_wheels()
MANIFEST = tomllib.loads((ROOT / build.MANIFEST_NAME).read_text(encoding="utf-8"))
# Requirements of the bundled wheels that are deliberately not bundled, with the reason (see bundled.txt).
NOT_BUNDLED = {
    "numpy": "Blender's own numpy 1.26.4",
    "coloredlogs": "onnxruntime tools only",
    "flatbuffers": "onnxruntime tools only (ORT format)",
    "protobuf": "onnxruntime tools only",
    "sympy": "onnxruntime tools only (symbolic shape inference)",
}


@pytest.fixture(scope="module")
def cli() -> Path:
    """Blender's blender_ext.py (from the bpy wheel; bpy itself is never imported)."""
    try:
        return build.find_blender_ext_cli()
    except build.BuildError as ex:
        pytest.skip(f"Blender's extension CLI is not installed: {ex}")


@pytest.fixture(scope="module")
def zips(cli, tmp_path_factory) -> list[Path]:
    """The repository built once, split per platform, with its bundled wheels, validated by build_extension."""
    return build.build_extension(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def bundled_wheels() -> dict[str, list[Path]]:
    """Each platform's pinned wheels (from the cache; downloaded and hash-checked when absent)."""
    return fetch_wheels.fetch()


def _platform_of(zip_path: Path) -> str:
    """``linux-x64`` from ``photo3d-0.2.0-linux_x64.zip``."""
    return zip_path.stem.rsplit("-", 1)[1].replace("_", "-")


def _minimal_source(tmp_path: Path, wheels: list[str] | None = None) -> Path:
    """A copy of just the files build_extension requires, with ``wheels`` written into the manifest."""
    source = tmp_path / "src"
    for name in build.REQUIRED_ENTRIES:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    if wheels is not None:
        # Top-level keys may precede everything else in TOML, so prepending avoids editing the tables.
        manifest = source / build.MANIFEST_NAME
        listed = ", ".join(f'"{w}"' for w in wheels)
        manifest.write_text(f"wheels = [{listed}]\n" + manifest.read_text(encoding="utf-8"), encoding="utf-8")
    return source


def test_manifest_declares_platforms_and_blender_version():
    assert MANIFEST["id"] == "photo3d"
    assert MANIFEST["blender_version_min"] == "4.2.0"
    assert set(MANIFEST["platforms"]) == {"windows-x64", "macos-arm64", "macos-x64", "linux-x64"}
    assert set(MANIFEST["permissions"]) == {"files", "network"}


def test_one_zip_per_declared_platform(zips):
    assert [_platform_of(z) for z in zips] == MANIFEST["platforms"]
    assert all(z.name.startswith(f"{MANIFEST['id']}-{MANIFEST['version']}-") for z in zips)


def test_each_zip_passes_blender_validation(cli, zips):
    tags = build.find_valid_tags(cli)
    for zip_path in zips:
        result = subprocess.run(
            [sys.executable, str(cli), "validate", "--valid-tags", str(tags), str(zip_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Success parsing TOML" in result.stdout
        assert not any(line.startswith(build.PROBLEM_PREFIXES) for line in result.stdout.splitlines())


def test_zip_holds_the_add_on_and_core_but_no_dev_files(zips):
    for zip_path in zips:
        with zipfile.ZipFile(zip_path) as zf:
            names = zf.namelist()
        for required in build.REQUIRED_ENTRIES:
            assert required in names, f"{zip_path.name} lacks {required}"
        assert any(n.startswith("photo3d_addon/") and n.endswith(".py") for n in names)
        # Every tracked core module ships: the worker runs `python -m core worker` from the extension folder.
        assert {f"core/{p.name}" for p in (ROOT / "core").glob("*.py")} <= set(names)
        for name in names:
            top = name.split("/", 1)[0]
            assert top not in {"tests", "scripts", "requirements", "out", "dist", "examples", "docs", "farm"}, name
            # wheels/ holds the bundled wheels only (its README stays out).
            assert top != "wheels" or (name.endswith(".whl") and name.count("/") == 1), name
            assert not top.startswith("."), name
            assert "__pycache__" not in name and not name.endswith((".pyc", ".zip")), name
        assert "pyproject.toml" not in names


def test_zip_manifest_has_id_version_and_its_platform(zips):
    for zip_path in zips:
        with zipfile.ZipFile(zip_path) as zf:
            manifest = tomllib.loads(zf.read(build.MANIFEST_NAME).decode("utf-8"))
        assert manifest["id"] == MANIFEST["id"]
        assert manifest["version"] == MANIFEST["version"]
        # The CLI records the zip's platform in a generated table; Blender installs it only there.
        assert manifest["build"]["generated"]["platforms"] == [_platform_of(zip_path)]


def test_without_split_one_universal_zip(cli, tmp_path):
    # All four platforms' wheels in one zip would pass the upload limit: a universal zip is add-on only.
    (zip_path,) = build.build_extension(tmp_path, split_platforms=False, validate=False, bundle_wheels=False)
    assert zip_path.name == f"{MANIFEST['id']}-{MANIFEST['version']}.zip"
    with zipfile.ZipFile(zip_path) as zf:
        assert not [n for n in zf.namelist() if n.endswith(".whl")]


def test_repository_lists_no_wheels_so_a_clean_clone_builds():
    assert "wheels" not in MANIFEST
    assert not list((ROOT / "wheels").glob("*.whl"))
    assert (ROOT / build.BUNDLED_REQUIREMENTS).is_file()


def test_each_zip_bundles_exactly_its_platforms_wheels_under_the_upload_limit(zips, bundled_wheels):
    for zip_path in zips:
        platform = _platform_of(zip_path)
        with zipfile.ZipFile(zip_path) as zf:
            names = {n for n in zf.namelist() if n.endswith(".whl")}
            manifest = tomllib.loads(zf.read(build.MANIFEST_NAME).decode("utf-8"))
        expected = {f"wheels/{w.name}" for w in bundled_wheels[platform]}
        assert names == expected, platform
        assert sorted(manifest["build"]["generated"]["wheels"]) == sorted(f"./{n}" for n in expected)
        assert not any(n.startswith(("wheels/numpy-", "wheels/torch-", "wheels/transformers-")) for n in names)
        assert zip_path.stat().st_size < build.UPLOAD_LIMIT_BYTES, f"{zip_path.name}: over the upload limit"
    # The build staged a copy: the repository's manifest and wheels/ are as they were.
    assert "wheels" not in tomllib.loads((ROOT / build.MANIFEST_NAME).read_text(encoding="utf-8"))
    assert not list((ROOT / "wheels").glob("*.whl"))


def test_bundled_pins_are_hashed_cp311_and_closed_over_their_requirements(bundled_wheels):
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name, parse_wheel_filename

    pins = fetch_wheels.read_pins()
    assert all(pin.hashes for pin in pins), "run scripts/fetch_wheels.py --lock"
    assert not {"numpy", "torch", "transformers"} & {pin.key for pin in pins}
    for platform, wheels in bundled_wheels.items():
        bundled = {parse_wheel_filename(w.name)[0] for w in wheels}
        assert len(bundled) == len(wheels) == len(fetch_wheels.pins_for(platform, pins)), platform
        environment = {"python_version": "3.11", "extra": "", **fetch_wheels.PLATFORM_MARKERS[platform]}
        for wheel in wheels:
            tags = parse_wheel_filename(wheel.name)[3]
            assert all(t.interpreter in ("cp311", "cp37", "py3") for t in tags), wheel.name
            with zipfile.ZipFile(wheel) as zf:
                (metadata,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
                lines = zf.read(metadata).decode("utf-8").splitlines()
            for line in lines:
                if not line.startswith("Requires-Dist:"):
                    continue
                requirement = Requirement(line.removeprefix("Requires-Dist:").strip())
                if requirement.marker is not None and not requirement.marker.evaluate(environment):
                    continue
                name = canonicalize_name(requirement.name)
                assert name in bundled or name in NOT_BUNDLED, f"{wheel.name} needs {requirement} ({platform})"


def test_markers_pick_each_platforms_triangle():
    pins = fetch_wheels.read_pins()
    triangle = {
        platform: [pin.version for pin in fetch_wheels.pins_for(platform, pins) if pin.key == "triangle"]
        for platform in MANIFEST["platforms"]
    }
    assert triangle["macos-x64"] == ["20230923"]
    assert triangle["macos-arm64"] == triangle["linux-x64"] == triangle["windows-x64"] == ["20250106"]


def test_fetch_covers_the_manifest_platforms_and_the_add_on_agrees_on_macos():
    assert set(fetch_wheels.PLATFORMS) == set(MANIFEST["platforms"])
    from tests.pure_addon import addon

    assert addon("worker.environment").BUNDLED_MACOS_MIN == fetch_wheels.MACOS_TARGET


def test_a_cached_wheel_that_does_not_match_its_hash_is_refused(tmp_path):
    folder = tmp_path / "linux-x64"
    folder.mkdir()
    (folder / "pkg-1.0-py3-none-any.whl").write_bytes(b"tampered")
    pin = fetch_wheels.Pin("pkg", "1.0", None, frozenset({"0" * 64}))
    with pytest.raises(fetch_wheels.FetchError, match="does not match the hashes"):
        fetch_wheels.select_wheels(folder, [pin], "linux-x64")
    # A pure wheel suits every platform; a folder without the pin's wheel is named.
    with pytest.raises(fetch_wheels.FetchError, match="no windows-x64 wheel .* for pkg==1.0"):
        fetch_wheels.select_wheels(tmp_path / "empty", [pin], "windows-x64")


def test_hand_listed_wheels_next_to_bundled_requirements_are_refused(cli, tmp_path):
    source = _minimal_source(tmp_path, ["./wheels/pure-1.0-py3-none-any.whl"])
    (source / "wheels").mkdir()
    (source / "wheels" / "pure-1.0-py3-none-any.whl").touch()
    (source / "requirements").mkdir()
    shutil.copy2(ROOT / build.BUNDLED_REQUIREMENTS, source / build.BUNDLED_REQUIREMENTS)
    with pytest.raises(build.BuildError, match="lists wheels by hand"):
        build.build_extension(tmp_path / "dist", source_dir=source)


def test_wheels_are_split_by_platform(cli, tmp_path):
    # The CLI only reads wheel names (platform tags), so empty files stand in for real wheels.
    wheels = [
        "./wheels/pure-1.0-py3-none-any.whl",
        "./wheels/native-1.0-cp311-cp311-manylinux_2_28_x86_64.whl",
        "./wheels/native-1.0-cp311-cp311-win_amd64.whl",
    ]
    source = _minimal_source(tmp_path, wheels)
    (source / "wheels").mkdir()
    for wheel in wheels:
        (source / wheel).touch()
    zips = build.build_extension(tmp_path / "dist", source_dir=source)
    contents = {}
    for zip_path in zips:
        with zipfile.ZipFile(zip_path) as zf:
            contents[_platform_of(zip_path)] = {n for n in zf.namelist() if n.endswith(".whl")}
    assert contents["linux-x64"] == {"wheels/pure-1.0-py3-none-any.whl", wheels[1][2:]}
    assert contents["windows-x64"] == {"wheels/pure-1.0-py3-none-any.whl", wheels[2][2:]}
    assert contents["macos-arm64"] == {"wheels/pure-1.0-py3-none-any.whl"}


def test_missing_listed_wheel_is_a_clear_error(cli, tmp_path):
    source = _minimal_source(tmp_path, ["./wheels/gone-1.0-py3-none-any.whl"])
    with pytest.raises(build.BuildError, match=r"lists wheel\(s\) that do not exist.*gone-1\.0-py3-none-any\.whl"):
        build.build_extension(tmp_path / "dist", source_dir=source)
    assert not (tmp_path / "dist").exists(), "nothing is built when a wheel is missing"


def test_unlisted_wheel_is_a_clear_error(cli, tmp_path):
    source = _minimal_source(tmp_path)
    (source / "wheels").mkdir()
    (source / "wheels" / "stray-1.0-py3-none-any.whl").touch()
    with pytest.raises(build.BuildError, match=r"not listed.*wheels/stray-1\.0-py3-none-any\.whl"):
        build.build_extension(tmp_path / "dist", source_dir=source)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        # Blender rejects taglines that end in punctuation.
        ("tagline", '"Bad."', "must not end with punctuation"),
        # The standalone CLI checks tags only when given Blender's list, which the script always passes.
        ("tags", '["Nonsense"]', 'invalid tag "Nonsense"'),
    ],
)
def test_cli_failures_reach_the_user_with_exit_code(cli, tmp_path, capsys, key, value, message):
    source = _minimal_source(tmp_path)
    manifest = source / build.MANIFEST_NAME
    text = re.sub(rf"^{key} = .*$", f"{key} = {value}", manifest.read_text(encoding="utf-8"), count=1, flags=re.M)
    manifest.write_text(text, encoding="utf-8")
    assert build.main(["--source-dir", str(source), "--out-dir", str(tmp_path / "dist")]) == 1
    captured = capsys.readouterr()
    assert "error: blender_ext.py build failed (exit code 1)" in captured.err
    assert message in captured.err
    assert not list((tmp_path / "dist").glob("*.zip"))


def test_missing_cli_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(build.CLI_ENV_VAR, str(tmp_path / "nowhere" / "blender_ext.py"))
    with pytest.raises(build.BuildError, match=build.CLI_ENV_VAR):
        build.build_extension(tmp_path / "dist")
