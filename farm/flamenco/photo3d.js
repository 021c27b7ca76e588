// SPDX-License-Identifier: GPL-3.0-or-later
//
// Photo3D job type for Flamenco 3 (https://flamenco.blender.org/usage/job-types/).
//
// One job turns a list of photos into layered 3D scenes and renders a camera move of each on the farm:
//
//   convert-S          (blender)  the photo -> a layer package in JOB_DIR/S/package (once per photo)
//   render-S-A-B       (blender)  frames A..B of the shot, as PNGs, from that package (in parallel)
//   encode-S           (misc)     the PNG frames -> JOB_DIR/S/S.mp4 with FFmpeg (optional)
//
// Installing: copy this file into the `scripts/` folder next to the `flamenco-manager` executable (create the
// folder if there is none) and restart the Manager. The job type is named after the file, `photo3d`; refresh
// the job types in Blender's Flamenco add-on afterwards. Jobs can also be submitted through the Manager's API
// (POST /api/v3/jobs with "type": "photo3d" and the settings below).
//
// What the workers need:
//   - Blender 4.2 or later with the Photo3D extension installed and enabled for the user the Worker runs as,
//     so that `blender -b -c photo3d ...` (Blender's extension command line) finds the `photo3d` command.
//     The convert tasks also need the extension's worker (its Python environment and depth models) set up in
//     that Blender; the render tasks only read packages.
//   - The Manager's `{blender}` variable pointing at that Blender on every platform. The commands are `exec`
//     commands, so the worker runs `{blender}` directly, with no `{blenderArgs}`.
//   - FFmpeg for the encode tasks (the worker looks in its `tools` folder, then on $PATH).
//   - Shared storage: the photos and JOB_DIR must be reachable at the same paths (or through the Manager's
//     two-way variables) from every worker, since each task may run on a different machine.
//
// The script is plain ES5 plus `const` (ES2015), which Flamenco's goja engine runs: no require(), no modules,
// no async. The Manager provides `author`, `path`, `frameChunker` and `print` as globals.
// farm/flamenco/harness.js runs it under Node with a stand-in for that API (tests/test_flamenco.py).

// Limits of the Photo3D batch (photo3d_addon/...), checked here so a bad job fails at submission rather than
// on a worker. tests/test_flamenco.py compares each with the Python definitions.
const PHOTO3D = {
    resolutions: ["PHOTO", "HD", "FULL_HD", "UHD", "SQUARE", "VERTICAL"], // render/settings.py RESOLUTIONS
    qualities: ["PREVIEW", "FINAL"], // render/settings.py QUALITY
    frameRates: [24, 25, 30, 50, 60], // render/settings.py FRAME_RATES
    presets: ["DOLLY", "ZOOM", "SWING_H", "SWING_V", "CIRCLE", "ORBIT", "DOLLY_ZOOM", "KEN_BURNS", "HANDHELD"],
    maxAmplitude: 1000, // motion/paths.py MAX_AMPLITUDE
    minZoom: 0.001, // motion/paths.py MIN_ZOOM
    maxFrames: 14400, // batch/run.py MAX_FRAMES
    minLayers: 1, // importing/choices.py MIN_LAYERS
    maxLayers: 32, // importing/choices.py MAX_LAYERS
    maxPathChars: 4096, // core/options.py MAX_TEXT_CHARS
    imageExtensions: [".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".exr", ".bmp"], // importing/choices.py
    effects: ["rain", "snow", "fog", "dust", "halos"], // effects/params.py EFFECTS, lower case as typed
    effectOptions: ["amount", "speed", "size", "colour", "wind", "near", "far", "seed"], // effects/params.py FIELDS
    // Blender numbers frames with 4 digits (S_0001.png) until 9999, then 5: past that the encoder's glob,
    // which sorts by name, would put frame 10000 between 1000 and 1001.
    maxEncodedFrames: 9999,
    // FFmpeg's H.264 quality per render quality: Blender's own MP4 output uses "HIGH" (CRF 20) for FINAL
    // and "MEDIUM" (CRF 23) for PREVIEW (render/settings.py), so the farm's videos look the same.
    crf: { PREVIEW: "23", FINAL: "20" },
};

const JOB_TYPE = {
    label: "Photo3D",
    description: "Turn photos into layered 3D scenes and render a camera move of each, in frame chunks",
    settings: [
        {
            key: "photos", label: "Photos", type: "string", required: true,
            description: "Absolute paths of the photos on shared storage, separated by new lines or ';'",
        },
        {
            key: "job_dir", label: "Output Folder", type: "string", subtype: "dir_path", required: true,
            description: "Absolute folder on shared storage; each photo gets a sub-folder named after it",
        },
        {
            key: "frames", label: "Frames", type: "int32", default: 48,
            propargs: { min: 1, max: PHOTO3D.maxFrames },
            description: "Length of each photo's shot, in frames",
        },
        {
            key: "chunk_size", label: "Chunk Size", type: "int32", default: 12,
            propargs: { min: 1, max: PHOTO3D.maxFrames }, visible: "submission",
            description: "Frames per render task: each task loads the package once, then renders this many",
        },
        {
            key: "fps", label: "Frame Rate", type: "int32", default: 24,
            description: "Frames per second: " + PHOTO3D.frameRates.join(", "),
        },
        {
            key: "resolution", label: "Resolution", type: "string", choices: PHOTO3D.resolutions, default: "HD",
            description: "Output size: HD is 1280x720, FULL_HD 1920x1080, PHOTO the photo's own size",
        },
        {
            key: "quality", label: "Quality", type: "string", choices: PHOTO3D.qualities, default: "FINAL",
            description: "PREVIEW renders one sample at half size, to check a move quickly",
        },
        {
            key: "path", label: "Camera Path", type: "string", choices: ["NONE"].concat(PHOTO3D.presets),
            default: "SWING_H", description: "Camera move preset (NONE keeps the photo's own view)",
        },
        {
            key: "amplitude", label: "Amplitude", type: "float", default: 0,
            propargs: { min: -PHOTO3D.maxAmplitude, max: PHOTO3D.maxAmplitude },
            description: "Size of the move in the preset's unit; 0 picks the safe amplitude for each photo",
        },
        {
            key: "effects", label: "Effects", type: "string", default: "",
            description: "Effects separated by ';', each with options after colons, e.g. rain:amount=0.8;fog",
        },
        {
            key: "layers", label: "Layers", type: "int32", default: 0,
            propargs: { min: 0, max: PHOTO3D.maxLayers },
            description: "Most depth layers per photo; 0 keeps the add-on's default",
        },
        {
            key: "extra_convert_args", label: "Extra Convert Arguments", type: "string", default: "",
            visible: "submission",
            description: "More photo3d flags for the convert tasks, separated by spaces (no quoting)",
        },
        {
            key: "extra_render_args", label: "Extra Render Arguments", type: "string", default: "",
            visible: "submission",
            description: "More photo3d flags for the render tasks, separated by spaces (no quoting)",
        },
        {
            key: "encode", label: "Encode Video", type: "bool", default: true,
            description: "Encode each photo's frames into an H.264 MP4 once they are all rendered",
        },
    ],
};

// Flags the job sets itself, per command: passing them again in the extra arguments would break the job's
// layout (argparse keeps the last one), so they are refused with the setting to use instead.
const RESERVED_CONVERT_FLAGS = {
    "--out": "job_dir", "--package-out": "job_dir", "--package": "photos", "--video": "", "--no-video": "",
    "--blend": "", "--no-blend": "", "--layers": "layers",
};
const RESERVED_RENDER_FLAGS = {
    "--package": "", "--out": "job_dir", "--output": "", "--blend": "", "--no-blend": "", "--video": "",
    "--no-video": "", "--frames": "frames", "--shot-frames": "frames", "--fps": "fps", "--resolution": "resolution",
    "--quality": "quality", "--path": "path", "--amplitude": "amplitude", "--effect": "effects",
};

function compileJob(job) {
    const settings = readSettings(job.settings || {});
    const shots = planShots(settings.photos, settings.encode);
    const chunks = frameChunker("1-" + settings.frames, settings.chunk_size);
    print("Photo3D: " + shots.length + " photo(s), " + chunks.length + " render task(s) each, in " +
        settings.job_dir);

    for (var i = 0; i < shots.length; i++) {
        const shot = shots[i];
        const folder = joinPath(settings.job_dir, shot.folder);
        const packageDir = joinPath(folder, "package");

        // A task must be complete (commands and dependencies) before job.addTask: the Manager keeps a copy.
        const convert = author.Task("convert-" + shot.folder, "blender");
        convert.addCommand(author.Command("exec", {
            exe: "{blender}",
            args: convertArgs(settings, shot.photo, folder, packageDir),
        }));
        job.addTask(convert);

        const renders = [];
        for (var c = 0; c < chunks.length; c++) {
            const range = chunkRange(chunks[c]);
            const render = author.Task("render-" + shot.folder + "-" + range, "blender");
            render.addCommand(author.Command("exec", {
                exe: "{blender}",
                args: renderArgs(settings, packageDir, folder, range),
            }));
            render.addDependency(convert);
            job.addTask(render);
            renders.push(render);
        }

        if (settings.encode) {
            const encode = author.Task("encode-" + shot.folder, "misc");
            encode.addCommand(author.Command("frames-to-video", {
                exe: "ffmpeg",
                fps: settings.fps,
                // The batch names the frames after the photo's own stem, also when the folder got a suffix.
                inputGlob: joinPath(joinPath(folder, shot.stem + "_frames"), shot.stem + "_*.png"),
                outputFile: joinPath(folder, shot.stem + ".mp4"),
                args: encodeArgs(settings),
            }));
            for (var r = 0; r < renders.length; r++) {
                encode.addDependency(renders[r]);
            }
            job.addTask(encode);
        }
    }
}

// -- command lines -------------------------------------------------------------------------------------------

function convertArgs(settings, photo, folder, packageDir) {
    var args = ["-b", "-c", "photo3d", photo, "--out", folder, "--package-out", packageDir, "--no-video",
        "--no-blend"];
    if (settings.layers > 0) {
        args.push("--layers", String(settings.layers));
    }
    return args.concat(settings.extra_convert_args);
}

function renderArgs(settings, packageDir, folder, range) {
    var args = ["-b", "-c", "photo3d", "--package", packageDir, "--out", folder, "--output", "PNG", "--no-blend",
        "--frames", range, "--shot-frames", String(settings.frames), "--fps", String(settings.fps),
        "--resolution", settings.resolution, "--quality", settings.quality, "--path", settings.path];
    if (settings.amplitude !== 0) {
        args.push("--amplitude", String(settings.amplitude));
    }
    for (var i = 0; i < settings.effects.length; i++) {
        args.push("--effect", settings.effects[i]);
    }
    return args.concat(settings.extra_render_args);
}

function encodeArgs(settings) {
    return [
        "-c:v", "libx264", "-preset", "medium", "-crf", PHOTO3D.crf[settings.quality],
        // yuv420p (what players expect) needs an even size; the PHOTO resolution may be odd. Blender's own MP4
        // output drops the odd row or column, so this does the same.
        "-vf", "crop=trunc(iw/2)*2:trunc(ih/2)*2", "-pix_fmt", "yuv420p",
        "-movflags", "+faststart",
        "-y", // FFmpeg would otherwise wait for an answer on a rerun, with no one to give it
    ];
}

// frameChunker gives "1-12", a single frame as "25", and two frames as "25,26"; the batch wants "A-B". The
// shot's range has no gaps, so a chunk is its first frame to its last.
function chunkRange(chunk) {
    const frames = String(chunk).split(/[-,]/);
    return frames[0] + "-" + frames[frames.length - 1];
}

// -- settings ------------------------------------------------------------------------------------------------

// The settings, checked and with their defaults: the Blender add-on submits every setting, but a job posted
// to the API may leave some out. A thrown Error rejects the job with its message.
function readSettings(raw) {
    const s = {};
    for (var i = 0; i < JOB_TYPE.settings.length; i++) {
        const spec = JOB_TYPE.settings[i];
        const value = raw[spec.key];
        if (spec.required && (value === undefined || value === null)) {
            fail(spec.key, "is missing (" + spec.description + ")");
        }
        s[spec.key] = value === undefined || value === null ? spec.default : value;
    }

    s.photos = splitPhotos(s.photos);
    s.job_dir = checkedFolder(s.job_dir);
    s.frames = integer("frames", s.frames, 1, PHOTO3D.maxFrames);
    if (s.path !== "NONE" && s.frames < 2) {
        fail("frames", "a camera path needs at least 2 frames, not " + s.frames + " (or set path to NONE)");
    }
    s.chunk_size = integer("chunk_size", s.chunk_size, 1, PHOTO3D.maxFrames);
    s.fps = integer("fps", s.fps, 1, 1000);
    if (PHOTO3D.frameRates.indexOf(s.fps) < 0) {
        fail("fps", "must be one of " + PHOTO3D.frameRates.join(", ") + ", not " + s.fps);
    }
    choice("resolution", s.resolution, PHOTO3D.resolutions);
    choice("quality", s.quality, PHOTO3D.qualities);
    choice("path", s.path, ["NONE"].concat(PHOTO3D.presets));
    s.amplitude = amplitude(s.amplitude, s.path);
    s.effects = splitEffects(s.effects);
    s.layers = integer("layers", s.layers, 0, PHOTO3D.maxLayers);
    if (s.layers !== 0 && s.layers < PHOTO3D.minLayers) {
        fail("layers", "must be 0 (the default) or " + PHOTO3D.minLayers + ".." + PHOTO3D.maxLayers);
    }
    s.extra_convert_args = extraArgs("extra_convert_args", s.extra_convert_args, RESERVED_CONVERT_FLAGS);
    s.extra_render_args = extraArgs("extra_render_args", s.extra_render_args, RESERVED_RENDER_FLAGS);
    if (typeof s.encode !== "boolean") {
        fail("encode", "must be true or false, not " + describe(s.encode));
    }
    if (s.encode && s.frames > PHOTO3D.maxEncodedFrames) {
        fail("frames", "at most " + PHOTO3D.maxEncodedFrames + " frames can be encoded (Blender names frames " +
            "past 9999 with 5 digits, which the encoder's glob sorts out of order); turn encode off for more");
    }
    return s;
}

function fail(key, message) {
    throw new Error("Photo3D setting " + key + ": " + message);
}

function describe(value) {
    return typeof value === "string" ? JSON.stringify(value) : String(value);
}

function text(key, value) {
    if (typeof value !== "string") {
        fail(key, "must be text, not " + describe(value));
    }
    return value;
}

function integer(key, value, low, high) {
    // The API may carry an int32 setting as a number or as text ("48").
    var number = typeof value === "string" && /^\s*-?\d+\s*$/.test(value) ? parseInt(value, 10) : value;
    if (typeof number !== "number" || !isFinite(number) || Math.floor(number) !== number) {
        fail(key, "must be a whole number, not " + describe(value));
    }
    if (number < low || number > high) {
        fail(key, "must be between " + low + " and " + high + ", not " + number);
    }
    return number;
}

function choice(key, value, choices) {
    if (choices.indexOf(value) < 0) {
        fail(key, "must be one of " + choices.join(", ") + ", not " + describe(value));
    }
}

function amplitude(value, preset) {
    var number = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
    if (typeof number !== "number" || !isFinite(number)) {
        fail("amplitude", "must be a finite number, not " + describe(value));
    }
    if (Math.abs(number) > PHOTO3D.maxAmplitude) {
        fail("amplitude", "must be within -" + PHOTO3D.maxAmplitude + ".." + PHOTO3D.maxAmplitude + ", not " + number);
    }
    // 0 means the safe default; a negative amplitude is a real move (a DOLLY away from the scene) except for
    // ZOOM, whose amplitude is a zoom factor.
    if (preset === "ZOOM" && number !== 0 && number < PHOTO3D.minZoom) {
        fail("amplitude", "a ZOOM amplitude is a zoom factor of at least " + PHOTO3D.minZoom + ", not " + number);
    }
    return number;
}

// Control characters (a line break, a NUL) cannot be in a path the batch takes.
function hasControl(value) {
    return /[\u0000-\u001f\u007f]/.test(value);
}

// Absolute on a worker: a POSIX path, a Windows drive or UNC path, or a Flamenco variable such as {jobs}/x
// (the Manager turns paths under a two-way variable into that form before this script runs).
function isAbsolute(value) {
    return /^[\\/]/.test(value) || /^[A-Za-z]:[\\/]/.test(value) || /^\{[^{}\s]+\}([\\/]|$)/.test(value);
}

function checkedFolder(value) {
    const dir = text("job_dir", value).trim();
    if (dir === "") {
        fail("job_dir", "is empty: give an absolute folder on the farm's shared storage");
    }
    if (hasControl(dir)) {
        fail("job_dir", "contains a line break or another control character: " + describe(dir));
    }
    if (!isAbsolute(dir)) {
        fail("job_dir", "must be an absolute folder on the farm's shared storage, not " + describe(dir));
    }
    if (dir.length > PHOTO3D.maxPathChars) {
        fail("job_dir", "is longer than " + PHOTO3D.maxPathChars + " characters");
    }
    return normaliseFolder(dir);
}

// Forward slashes, no doubled or trailing ones (a leading "//" of a UNC path stays).
function normaliseFolder(dir) {
    var slashed = dir.replace(/\\/g, "/");
    const unc = /^\/\//.test(slashed);
    slashed = slashed.replace(/\/{2,}/g, "/");
    if (unc) {
        slashed = "/" + slashed;
    }
    return slashed.length > 1 && /\/$/.test(slashed) && !/^[A-Za-z]:\/$/.test(slashed) ? slashed.slice(0, -1)
        : slashed;
}

function joinPath(dir, name) {
    return /\/$/.test(dir) ? dir + name : dir + "/" + name;
}

// `photos` is one text (job settings are scalars): paths separated by new lines or ';'. A list of texts
// (possible through the API) is taken as it is, one path per item.
function splitPhotos(value) {
    var items;
    if (Array.isArray(value)) {
        items = value;
    } else {
        items = text("photos", value).split(/\r?\n|;/);
    }
    const photos = [];
    for (var i = 0; i < items.length; i++) {
        const photo = text("photos", items[i]).trim();
        if (photo === "") {
            continue; // blank lines and a trailing ';'
        }
        if (hasControl(photo)) {
            fail("photos", "the path " + describe(photo) + " contains a line break or another control character");
        }
        if (!isAbsolute(photo)) {
            fail("photos", describe(photo) + " is not an absolute path (workers do not share a working folder)");
        }
        if (photo.length > PHOTO3D.maxPathChars) {
            fail("photos", "a path is longer than " + PHOTO3D.maxPathChars + " characters");
        }
        if (photos.indexOf(photo) >= 0) {
            fail("photos", describe(photo) + " is listed twice");
        }
        photos.push(photo);
    }
    if (photos.length === 0) {
        fail("photos", "no photo given: list their paths, one per line or separated by ';'");
    }
    return photos;
}

// The photo's file name and stem as the batch (Python's pathlib) sees them: the stem names its frames.
function photoName(photo) {
    const parts = photo.replace(/[\\/]+$/, "").split(/[\\/]/);
    return parts[parts.length - 1];
}

function pythonStem(name) {
    const dot = name.lastIndexOf(".");
    return dot > 0 && dot < name.length - 1 ? name.slice(0, dot) : name;
}

function pythonSuffix(name) {
    const dot = name.lastIndexOf(".");
    return dot > 0 && dot < name.length - 1 ? name.slice(dot) : "";
}

// One output folder per photo, named after its stem; photos sharing a stem get -2, -3, ... Folder names are
// compared case-insensitively, since shared storage may be a Windows or macOS share.
function planShots(photos, encode) {
    const taken = {};
    const shots = [];
    for (var i = 0; i < photos.length; i++) {
        const name = photoName(photos[i]);
        const suffix = pythonSuffix(name).toLowerCase();
        if (PHOTO3D.imageExtensions.indexOf(suffix) < 0) {
            fail("photos", describe(photos[i]) + " is not a photo the batch reads (" +
                PHOTO3D.imageExtensions.join(", ") + ")");
        }
        const stem = pythonStem(name);
        if (encode && /[*?\[\]]/.test(stem)) {
            fail("photos", "the name of " + describe(photos[i]) + " has glob characters (* ? [ ]) that the " +
                "encoder's frame pattern would misread: rename the photo or turn encode off");
        }
        var folder = stem;
        for (var n = 2; taken.hasOwnProperty(folder.toLowerCase()); n++) {
            folder = stem + "-" + n;
        }
        taken[folder.toLowerCase()] = true;
        shots.push({ photo: photos[i], stem: stem, folder: folder });
    }
    return shots;
}

// `effects` is one text: effects separated by ';', each passed to the batch as one --effect. Names and option
// names are checked here; the values are checked by the batch.
function splitEffects(value) {
    const items = text("effects", value).split(";");
    const effects = [];
    for (var i = 0; i < items.length; i++) {
        const item = items[i].trim();
        if (item === "") {
            continue;
        }
        if (hasControl(item)) {
            fail("effects", describe(item) + " contains a line break or another control character");
        }
        const parts = item.split(":");
        const kind = parts[0].trim().toLowerCase();
        if (PHOTO3D.effects.indexOf(kind) < 0) {
            fail("effects", "unknown effect " + describe(parts[0].trim()) + " (choose from " +
                PHOTO3D.effects.join(", ") + ")");
        }
        for (var p = 1; p < parts.length; p++) {
            const eq = parts[p].indexOf("=");
            const option = eq < 0 ? "" : parts[p].slice(0, eq).trim();
            if (eq < 0) {
                fail("effects", "option " + describe(parts[p].trim()) + " of " + kind + " must be name=value");
            }
            if (PHOTO3D.effectOptions.indexOf(option) < 0) {
                fail("effects", kind + ": unknown option " + describe(option) + " (known: " +
                    PHOTO3D.effectOptions.join(", ") + ")");
            }
        }
        effects.push(item);
    }
    return effects;
}

// Extra flags, split on white space (no quoting: a value with spaces cannot be passed this way).
function extraArgs(key, value, reserved) {
    const trimmed = text(key, value).trim();
    const args = trimmed === "" ? [] : trimmed.split(/\s+/);
    for (var i = 0; i < args.length; i++) {
        const flag = args[i].split("=")[0];
        if (!/^--./.test(flag)) {
            continue;
        }
        var hit = reserved.hasOwnProperty(flag) ? flag : null;
        for (var known in reserved) {
            // argparse also takes an unambiguous prefix (--fram for --frames).
            if (hit === null && reserved.hasOwnProperty(known) && known.indexOf(flag) === 0) {
                hit = known;
            }
        }
        if (hit !== null) {
            const instead = reserved[hit] ? ": use the " + reserved[hit] + " setting" : "";
            fail(key, args[i] + " is set by the job itself" + instead);
        }
    }
    return args;
}
