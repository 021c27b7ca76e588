"""The Flamenco job type (farm/flamenco/photo3d.js), compiled by the Node harness (farm/flamenco/harness.js):
the tasks and their dependencies, every command line, the settings' checks, and the choices against Python."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from core.options import MAX_TEXT_CHARS
from tests.pure_addon import addon

ROOT = Path(__file__).resolve().parents[1]
FLAMENCO = ROOT / "farm" / "flamenco"
HARNESS = FLAMENCO / "harness.js"
SCRIPT = FLAMENCO / "photo3d.js"
ADDON = ROOT / "photo3d_addon"
JOB_DIR = "/mnt/farm/jobs/shoot"
PHOTOS = ["/mnt/farm/photos/beach.jpg", "/mnt/farm/photos/dog.png", "/mnt/farm/other/Street.TIF"]


def _node() -> str:
    # CI has Node: a missing one is a broken setup, not a reason to skip.
    node = shutil.which("node")
    if node is None:
        pytest.fail("the Flamenco job type tests need Node.js (`node` is not on PATH); install Node 18+")
    return node


def _run(*args: str, stdin: str | None = None) -> tuple[int, Any]:
    """The harness's exit code and its JSON output."""
    result = subprocess.run(
        [_node(), str(HARNESS), *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    try:
        output = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"the harness printed no JSON (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.returncode, output


def _submit(settings: dict[str, Any], *args: str) -> tuple[int, Any]:
    job = {"name": "test", "type": "photo3d", "priority": 50, "settings": settings}
    return _run(*args, stdin=json.dumps(job))


def compile_job(**settings: Any) -> dict[str, Any]:
    """The compiled job of ``settings`` (photos and job_dir filled in unless given)."""
    settings.setdefault("photos", PHOTOS[0])
    settings.setdefault("job_dir", JOB_DIR)
    code, output = _submit(settings)
    assert code == 0, output
    return output


def compile_error(**settings: Any) -> str:
    """The error message of a job the script refuses (exit 2)."""
    code, output = _submit(settings)
    assert code == 2, output
    assert set(output) == {"error"}, output
    return output["error"]


def _by_name(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {task["name"]: task for task in job["tasks"]}


def _command(task: dict[str, Any]) -> dict[str, Any]:
    (command,) = task["commands"]
    return command


def _args(task: dict[str, Any]) -> list[str]:
    command = _command(task)
    assert command["type"] == "exec" and command["parameters"]["exe"] == "{blender}"
    return command["parameters"]["args"]


def _render_ranges(job: dict[str, Any], folder: str) -> list[str]:
    prefix = f"render-{folder}-"
    ranges = []
    for task in job["tasks"]:
        if task["name"].startswith(prefix) and task["name"][len(prefix) :][:1].isdigit():
            args = _args(task)
            ranges.append(args[args.index("--frames") + 1])
    return ranges


def _literal(source: Path, name: str) -> Any:
    """The literal assigned to module-level ``name`` in ``source``: for modules that import bpy."""
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return ast.literal_eval(value)
    raise AssertionError(f"{source} assigns no literal {name}")


# -- a three-photo job ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def three_photos() -> dict[str, Any]:
    return compile_job(photos="\n".join(PHOTOS), frames=24)


def test_three_photos_make_convert_render_and_encode_tasks_in_order(three_photos):
    tasks = [(t["name"], t["type"]) for t in three_photos["tasks"]]
    expected = []
    for stem in ("beach", "dog", "Street"):
        expected += [(f"convert-{stem}", "blender"), (f"render-{stem}-1-12", "blender")]
        expected += [(f"render-{stem}-13-24", "blender"), (f"encode-{stem}", "misc")]
    assert tasks == expected
    assert three_photos["job_type"] == "photo3d"


def test_renders_depend_on_their_convert_and_the_encode_on_every_render(three_photos):
    graph = {t["name"]: t["dependencies"] for t in three_photos["tasks"]}
    for stem in ("beach", "dog", "Street"):
        assert graph[f"convert-{stem}"] == []
        assert graph[f"render-{stem}-1-12"] == [f"convert-{stem}"]
        assert graph[f"render-{stem}-13-24"] == [f"convert-{stem}"]
        assert graph[f"encode-{stem}"] == [f"render-{stem}-1-12", f"render-{stem}-13-24"]


def test_convert_command_line(three_photos):
    assert _args(_by_name(three_photos)["convert-dog"]) == [
        "-b",
        "-c",
        "photo3d",
        "/mnt/farm/photos/dog.png",
        "--out",
        f"{JOB_DIR}/dog",
        "--package-out",
        f"{JOB_DIR}/dog/package",
        "--no-video",
        "--no-blend",
    ]


def test_render_command_line(three_photos):
    assert _args(_by_name(three_photos)["render-Street-13-24"]) == [
        "-b",
        "-c",
        "photo3d",
        "--package",
        f"{JOB_DIR}/Street/package",
        "--out",
        f"{JOB_DIR}/Street",
        "--output",
        "PNG",
        "--no-blend",
        "--frames",
        "13-24",
        "--shot-frames",
        "24",
        "--fps",
        "24",
        "--resolution",
        "HD",
        "--quality",
        "FINAL",
        "--path",
        "SWING_H",
    ]


def test_encode_command_parameters(three_photos):
    command = _command(_by_name(three_photos)["encode-beach"])
    assert command == {
        "type": "frames-to-video",
        "parameters": {
            "exe": "ffmpeg",
            "fps": 24,
            "inputGlob": f"{JOB_DIR}/beach/beach_frames/beach_*.png",
            "outputFile": f"{JOB_DIR}/beach/beach.mp4",
            "args": [
                "-c:v",
                "libx264",
                "-preset",
                "medium",
                "-crf",
                "20",
                "-vf",
                "crop=trunc(iw/2)*2:trunc(ih/2)*2",
                "-pix_fmt",
                "yuv420p",
                "-movflags",
                "+faststart",
                "-y",
            ],
        },
    }


def test_preview_quality_encodes_as_blender_does_for_preview():
    (encode,) = [t for t in compile_job(quality="PREVIEW")["tasks"] if t["name"].startswith("encode-")]
    args = _command(encode)["parameters"]["args"]
    assert args[args.index("-crf") + 1] == "23"


# -- frame chunks ---------------------------------------------------------------------------------------------


def test_a_shot_is_chunked_into_frame_ranges():
    job = compile_job(frames=30, chunk_size=12)
    assert _render_ranges(job, "beach") == ["1-12", "13-24", "25-30"]
    assert [t["name"] for t in job["tasks"]][1:4] == ["render-beach-1-12", "render-beach-13-24", "render-beach-25-30"]


def test_a_single_frame_last_chunk_is_a_range_of_one():
    job = compile_job(frames=25, chunk_size=12)
    assert _render_ranges(job, "beach") == ["1-12", "13-24", "25-25"]
    args = _args(_by_name(job)["render-beach-25-25"])
    assert args[args.index("--shot-frames") + 1] == "25"


def test_a_two_frame_last_chunk_is_one_range():
    # frameChunker writes two frames as "25,26"; the batch wants a range.
    assert _render_ranges(compile_job(frames=26, chunk_size=12), "beach") == ["1-12", "13-24", "25-26"]


@pytest.mark.parametrize(
    ("frames", "chunk_size", "path"),
    [(48, 12, "SWING_H"), (30, 12, "DOLLY"), (25, 12, "ZOOM"), (26, 12, "ORBIT"), (1, 1, "NONE"), (7, 100, "NONE")]
    + [(100, 7, "CIRCLE"), (97, 1, "HANDHELD"), (2, 2, "KEN_BURNS")],
)
def test_render_chunks_cover_every_frame_exactly_once(frames, chunk_size, path):
    job = compile_job(photos=";".join(PHOTOS[:2]), frames=frames, chunk_size=chunk_size, path=path)
    for folder in ("beach", "dog"):
        covered: list[int] = []
        for text in _render_ranges(job, folder):
            first, last = (int(n) for n in text.split("-"))
            assert 1 <= first <= last <= frames and last - first < chunk_size, text
            covered += range(first, last + 1)
        assert sorted(covered) == list(range(1, frames + 1)), covered


# -- photos, folders and paths ---------------------------------------------------------------------------------


def test_photos_sharing_a_stem_get_their_own_folders():
    photos = ["/mnt/a/shot.jpg", "/mnt/b/shot.png", "/mnt/c/SHOT.tif", "/mnt/d/shot-2.jpg"]
    job = _by_name(compile_job(photos="\n".join(photos), frames=12))
    assert [name for name in job if name.startswith("convert-")] == [
        "convert-shot",
        "convert-shot-2",
        "convert-SHOT-3",
        "convert-shot-2-2",
    ]
    args = _args(job["convert-shot-2"])
    assert args[3:8] == ["/mnt/b/shot.png", "--out", f"{JOB_DIR}/shot-2", "--package-out", f"{JOB_DIR}/shot-2/package"]
    assert _args(job["render-SHOT-3-1-12"])[4] == f"{JOB_DIR}/SHOT-3/package"
    # The frames are named after the photo's own stem, in the folder with the suffix.
    encode = _command(job["encode-shot-2"])["parameters"]
    assert encode["inputGlob"] == f"{JOB_DIR}/shot-2/shot_frames/shot_*.png"
    assert encode["outputFile"] == f"{JOB_DIR}/shot-2/shot.mp4"
    assert _command(job["encode-SHOT-3"])["parameters"]["inputGlob"] == f"{JOB_DIR}/SHOT-3/SHOT_frames/SHOT_*.png"
    assert _command(job["encode-shot-2-2"])["parameters"]["outputFile"] == f"{JOB_DIR}/shot-2-2/shot-2.mp4"


def test_photos_may_be_separated_by_lines_or_semicolons_with_blanks_ignored():
    job = compile_job(photos=f"  {PHOTOS[0]} ;\r\n\n{PHOTOS[1]};{PHOTOS[2]};\n")
    assert [t["name"] for t in job["tasks"] if t["name"].startswith("convert-")] == [
        "convert-beach",
        "convert-dog",
        "convert-Street",
    ]
    assert _args(_by_name(job)["convert-beach"])[3] == PHOTOS[0]


@pytest.mark.parametrize(
    ("job_dir", "folder"),
    [
        ("/mnt/farm/jobs/shoot/", "/mnt/farm/jobs/shoot/beach"),
        ("/mnt//farm///jobs/", "/mnt/farm/jobs/beach"),
        ("C:\\farm\\jobs\\", "C:/farm/jobs/beach"),
        ("\\\\nas\\share\\jobs", "//nas/share/jobs/beach"),
        ("{jobs}/shoot", "{jobs}/shoot/beach"),  # a path the Manager put under a two-way variable
    ],
)
def test_job_dir_paths_use_forward_slashes_without_doubles(job_dir, folder):
    job = _by_name(compile_job(job_dir=job_dir))
    args = _args(job["convert-beach"])
    assert args[args.index("--out") + 1] == folder
    assert args[args.index("--package-out") + 1] == folder + "/package"
    parameters = _command(job["encode-beach"])["parameters"]
    assert parameters["inputGlob"] == folder + "/beach_frames/beach_*.png"
    for built in (folder + "/package", parameters["inputGlob"], parameters["outputFile"]):
        assert "\\" not in built and "//" not in built.removeprefix("//"), built


# -- the other settings ----------------------------------------------------------------------------------------


def test_effects_and_amplitude_become_render_flags():
    job = compile_job(effects=" rain:amount=0.8:wind=0.3 ; fog;;", amplitude=0.25, path="DOLLY")
    args = _args(_by_name(job)["render-beach-1-12"])
    assert args[-8:] == [
        "--path",
        "DOLLY",
        "--amplitude",
        "0.25",
        "--effect",
        "rain:amount=0.8:wind=0.3",
        "--effect",
        "fog",
    ]
    # Effects and amplitude are render choices: the convert does not get them.
    assert "--effect" not in _args(_by_name(job)["convert-beach"])


def test_a_zero_amplitude_is_the_safe_default_and_a_negative_one_a_move():
    default = _args(_by_name(compile_job(amplitude=0))["render-beach-1-12"])
    assert "--amplitude" not in default
    backwards = _args(_by_name(compile_job(amplitude=-0.5, path="DOLLY"))["render-beach-1-12"])
    assert backwards[backwards.index("--amplitude") + 1] == "-0.5"


def test_layers_and_extra_arguments_are_appended():
    job = _by_name(
        compile_job(layers=6, extra_convert_args=" --device cpu\n--inpaint TELEA ", extra_render_args="--samples 16")
    )
    assert _args(job["convert-beach"])[-6:] == ["--layers", "6", "--device", "cpu", "--inpaint", "TELEA"]
    assert _args(job["render-beach-1-12"])[-2:] == ["--samples", "16"]
    assert "--layers" not in _args(compile_job()["tasks"][0])


def test_render_choices_reach_the_render_command():
    job = compile_job(fps=30, resolution="FULL_HD", quality="PREVIEW", path="NONE", frames=10, chunk_size=5)
    args = _args(_by_name(job)["render-beach-6-10"])
    assert args[args.index("--frames") :] == ["--frames", "6-10", "--shot-frames", "10", "--fps", "30"] + [
        "--resolution",
        "FULL_HD",
        "--quality",
        "PREVIEW",
        "--path",
        "NONE",
    ]
    assert _command(_by_name(job)["encode-beach"])["parameters"]["fps"] == 30


def test_defaults_are_applied_when_settings_are_left_out():
    code, job_type = _run("--job-type")
    assert code == 0
    defaults = {s["key"]: s["default"] for s in job_type["settings"] if "default" in s}
    assert defaults == {
        "frames": 48,
        "chunk_size": 12,
        "fps": 24,
        "resolution": "HD",
        "quality": "FINAL",
        "path": "SWING_H",
        "amplitude": 0,
        "effects": "",
        "layers": 0,
        "extra_convert_args": "",
        "extra_render_args": "",
        "encode": True,
    }
    job = compile_job()
    assert job["settings"] == {"photos": PHOTOS[0], "job_dir": JOB_DIR, **defaults}
    assert _render_ranges(job, "beach") == ["1-12", "13-24", "25-36", "37-48"]
    assert [t["name"] for t in job["tasks"]][-1] == "encode-beach"


def test_the_script_fills_in_defaults_itself_for_api_jobs():
    # The harness fills in left-out settings as the Blender add-on does; a job posted to the API may carry
    # nulls instead, and the script falls back to the same defaults.
    nulls = {key: None for key in ("frames", "chunk_size", "fps", "resolution", "quality", "path", "amplitude")}
    nulls |= {key: None for key in ("effects", "layers", "extra_convert_args", "extra_render_args", "encode")}
    assert compile_job(**nulls)["tasks"] == compile_job()["tasks"]


def test_encode_off_drops_the_encode_tasks():
    job = compile_job(photos=";".join(PHOTOS), encode=False, frames=24)
    names = [t["name"] for t in job["tasks"]]
    assert not [n for n in names if n.startswith("encode-")]
    assert len(names) == 3 * 3  # a convert and two renders per photo
    # Without the encoder's glob, a photo name with glob characters is fine.
    assert compile_job(photos="/mnt/p/take[1].jpg", encode=False)["tasks"][0]["name"] == "convert-take[1]"


# -- settings the script refuses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "settings"),
    [
        ("photos", {"photos": ""}),
        ("photos", {"photos": " ;\n; "}),
        ("photos", {"photos": None}),
        ("photos", {"photos": ["/mnt/p/a\nb.jpg"]}),  # a list through the API is not split again
        ("photos", {"photos": "/mnt/p/a.jpg\r/mnt/p/b.jpg"}),  # a lone carriage return is no separator
        ("photos", {"photos": "/mnt/p/a\x00.jpg"}),
        ("photos", {"photos": "photos/a.jpg"}),
        ("photos", {"photos": "/mnt/p/notes.txt"}),
        ("photos", {"photos": "/mnt/p/a.jpg;/mnt/p/a.jpg"}),
        ("photos", {"photos": "/mnt/p/take*.jpg"}),
        ("photos", {"photos": "/mnt/p/" + "x" * MAX_TEXT_CHARS + ".jpg"}),
        ("job_dir", {"job_dir": "renders/shoot"}),
        ("job_dir", {"job_dir": "./shoot"}),
        ("job_dir", {"job_dir": ""}),
        ("job_dir", {"job_dir": None}),
        ("job_dir", {"job_dir": "/mnt/farm\n/jobs"}),
        ("frames", {"frames": 0}),
        ("frames", {"frames": -5}),
        ("frames", {"frames": 2.5}),
        ("frames", {"frames": 14_401}),
        ("frames", {"frames": 1}),  # a camera path needs two frames
        ("frames", {"frames": 10_000}),  # more than the encoder's glob orders
        ("chunk_size", {"chunk_size": 0}),
        ("chunk_size", {"chunk_size": -12}),
        ("chunk_size", {"chunk_size": "twelve"}),
        ("fps", {"fps": 23}),
        ("fps", {"fps": 23.976}),
        ("resolution", {"resolution": "720p"}),
        ("quality", {"quality": "HIGH"}),
        ("path", {"path": "SPIN"}),
        ("amplitude", {"amplitude": 1000.5}),
        ("amplitude", {"amplitude": "far"}),
        ("amplitude", {"amplitude": -1, "path": "ZOOM"}),
        ("effects", {"effects": "snowy"}),
        ("effects", {"effects": "rain:amount"}),
        ("effects", {"effects": "rain;fog:strength=2"}),
        ("layers", {"layers": 33}),
        ("layers", {"layers": -1}),
        ("extra_convert_args", {"extra_convert_args": "--out /tmp/elsewhere"}),
        ("extra_render_args", {"extra_render_args": "--samples 8 --frames 1-5"}),
        ("extra_render_args", {"extra_render_args": "--fps=30"}),
        ("extra_render_args", {"extra_render_args": "--shot 10"}),  # argparse would take the prefix
        ("encode", {"encode": "yes"}),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(key, settings):
    message = compile_error(**{"photos": PHOTOS[0], "job_dir": JOB_DIR, **settings})
    assert f"Photo3D setting {key}: " in message


def test_a_missing_photos_setting_is_refused():
    code, output = _submit({"job_dir": JOB_DIR})
    assert code == 2 and "setting photos" in output["error"]


# -- the job type against the Python definitions ----------------------------------------------------------------


@pytest.fixture(scope="module")
def job_type() -> dict[str, Any]:
    code, output = _run("--job-type")
    assert code == 0, output
    return output


def _setting(job_type: dict[str, Any], key: str) -> dict[str, Any]:
    (setting,) = [s for s in job_type["settings"] if s["key"] == key]
    return setting


def test_job_type_choices_match_the_python_definitions(job_type):
    settings_py = ADDON / "render" / "settings.py"  # imports bpy: read, not imported
    paths = addon("motion.paths")
    assert _setting(job_type, "resolution")["choices"] == list(_literal(settings_py, "RESOLUTIONS"))
    assert _setting(job_type, "quality")["choices"] == list(_literal(settings_py, "QUALITY"))
    assert _setting(job_type, "path")["choices"] == ["NONE", *paths.PRESETS]
    assert _setting(job_type, "path")["default"] == paths.DEFAULTS.preset


def test_job_type_names_and_describes_every_setting(job_type):
    assert job_type["name"] == "photo3d" and job_type["label"] == "Photo3D"
    keys = [s["key"] for s in job_type["settings"]]
    assert keys == [
        "photos",
        "job_dir",
        "frames",
        "chunk_size",
        "fps",
        "resolution",
        "quality",
        "path",
        "amplitude",
        "effects",
        "layers",
        "extra_convert_args",
        "extra_render_args",
        "encode",
    ]
    for setting in job_type["settings"]:
        assert setting.get("label") and setting.get("description"), setting["key"]
    assert _setting(job_type, "job_dir")["subtype"] == "dir_path"
    assert _setting(job_type, "photos")["required"] and _setting(job_type, "job_dir")["required"]


def test_the_scripts_limits_match_the_batch():
    code, limits = _run("--global", "PHOTO3D")
    assert code == 0, limits
    settings_py = ADDON / "render" / "settings.py"
    paths = addon("motion.paths")
    choices = addon("importing.choices")
    effects = addon("effects.params")
    assert limits["frameRates"] == list(_literal(settings_py, "FRAME_RATES"))
    assert limits["maxFrames"] == _literal(ADDON / "batch" / "run.py", "MAX_FRAMES")
    assert (limits["maxAmplitude"], limits["minZoom"]) == (paths.MAX_AMPLITUDE, paths.MIN_ZOOM)
    assert (limits["minLayers"], limits["maxLayers"]) == (choices.MIN_LAYERS, choices.MAX_LAYERS)
    assert limits["maxPathChars"] == MAX_TEXT_CHARS
    assert limits["imageExtensions"] == list(choices.IMAGE_EXTENSIONS)
    assert limits["effects"] == [e.lower() for e in effects.EFFECTS]
    assert limits["effectOptions"] == list(effects.FIELDS)
    assert set(limits["crf"]) == set(_literal(settings_py, "QUALITY"))


def test_the_script_is_plain_javascript_for_goja():
    # Comments may mention these words; the code may not use them.
    code = re.sub(r"//[^\n]*|/\*.*?\*/", "", SCRIPT.read_text(encoding="utf-8"), flags=re.S)
    for pattern in (r"\brequire\s*\(", r"^\s*(import|export)\b", r"\basync\b", r"\bawait\b", r"\bclass\b"):
        assert not re.search(pattern, code, flags=re.M), pattern
    header = SCRIPT.read_text(encoding="utf-8").split("\n\n", 1)[0]
    assert "scripts/" in header and "restart the Manager" in header and "Photo3D extension" in header


# -- the harness itself ------------------------------------------------------------------------------------------


def _harness_eval(expression: str) -> Any:
    """``expression`` evaluated with the harness's exports as ``h``."""
    program = f"const h = require({json.dumps(str(HARNESS))}); process.stdout.write(JSON.stringify({expression}));"
    result = subprocess.run([_node(), "-e", program], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_harness_frame_chunker_follows_flamenco():
    # Chunks count frames, across the gaps between ranges, as Flamenco does.
    assert _harness_eval('h.frameChunker("1-10,20-25", 4)') == ["1-4", "5-8", "9,10,20,21", "22-25"]
    assert _harness_eval('h.frameChunker("1..3", 2)') == ["1,2", "3"]
    assert _harness_eval('h.frameChunker(" 5, 3,4,4 ", 10)') == ["3-5"]
    assert _harness_eval('h.frameChunker("1-48", 12)') == ["1-12", "13-24", "25-36", "37-48"]
    assert _harness_eval('h.frameCount("1-10,20-25")') == 16
    for bad in ('h.frameChunker("1-10", 0)', 'h.frameChunker("", 1)', 'h.frameChunker("1-2-3", 1)'):
        assert _harness_eval(f"(() => {{ try {{ {bad}; return 'no error'; }} catch (e) {{ return 'error'; }} }})()")


def test_harness_path_helpers_follow_flamenco():
    assert _harness_eval('[h.join("/a/", "b"), h.join("\\\\\\\\NAS\\\\share", "x"), h.join("", "a", "", "b")]') == [
        "/a/b",
        "//NAS/share/x",
        "a/b",
    ]
    assert _harness_eval('[h.stem("C:\\\\x\\\\file.tar.gz"), h.basename("/a/b/"), h.dirname("/a/b")]') == [
        "file.tar",
        "b",
        "/a",
    ]


def _run_script(tmp_path: Path, body: str) -> tuple[int, Any]:
    script = tmp_path / "my_type.js"
    script.write_text('const JOB_TYPE = { label: "T", settings: [] };\nfunction compileJob(job) {\n' + body + "\n}\n")
    return _run("--script", str(script), stdin=json.dumps({"type": "my-type", "settings": {}}))


def test_harness_keeps_a_copy_of_each_task_when_it_is_added(tmp_path):
    code, output = _run_script(
        tmp_path,
        'const t = author.Task("a", "misc"); job.addTask(t); t.addCommand(author.Command("echo", {message: "lost"}));',
    )
    assert code == 0 and output["tasks"] == [{"name": "a", "type": "misc", "commands": [], "dependencies": []}]


@pytest.mark.parametrize(
    "body",
    [
        'const t = author.Task("a", "misc"); t.addCommand(author.Command("exec", {exe: "x", args: [1]}));',
        'author.Command("render", {});',
        'const a = author.Task("a", "misc"); const b = author.Task("b", "misc"); b.addDependency(a); job.addTask(b);',
        'const t = author.Task("a", "misc"); t.addCommand({name: "echo", parameters: {message: "x"}});',
        'require("fs");',
    ],
)
def test_harness_refuses_what_the_manager_or_a_worker_would(tmp_path, body):
    code, output = _run_script(tmp_path, body)
    assert code == 3 or (code == 2 and "require" in output["error"]), output


@pytest.mark.parametrize(
    "setting",
    [
        '{key: "n", type: "int32", choices: ["1"]}',
        '{key: "n", type: "integer"}',
        '{key: "n", type: "string", default: 3}',
        '{key: "n", type: "int32", subtype: "dir_path"}',
        '{key: "n", type: "bool", visible: "sometimes"}',
        '{key: "n", type: "bool"}, {key: "n", type: "bool"}',
    ],
)
def test_harness_refuses_a_job_type_the_manager_cannot_offer(tmp_path, setting):
    script = tmp_path / "bad.js"
    script.write_text(f'const JOB_TYPE = {{ label: "T", settings: [{setting}] }};\nfunction compileJob(job) {{}}\n')
    code, output = _run("--script", str(script), "--job-type")
    assert code == 3 and output["error"].startswith("JOB_TYPE setting"), output
