#!/usr/bin/env node
// SPDX-License-Identifier: GPL-3.0-or-later
//
// Runs a Flamenco job compiler script (photo3d.js by default) under Node, outside a Flamenco Manager.
//
//   node harness.js [--script FILE] [JOB.json]     compile a job (JSON on stdin without JOB.json)
//   node harness.js [--script FILE] --job-type     print the script's JOB_TYPE
//   node harness.js [--script FILE] --global NAME  print another top-level value of the script
//
// The job is a submitted job as the Manager's API takes it ({"name", "type", "priority", "settings",
// "metadata"}). Settings left out get their JOB_TYPE default, as a submitter (the Blender add-on) fills them
// in; `eval` expressions need Blender and are not run. The compiled job is printed as
//   {"job_type", "settings", "tasks": [{"name", "type", "commands": [{"type", "parameters"}], "dependencies"}]}
// with dependencies by task name. An error the script throws prints {"error": message} and exits 2; a misuse
// of the API that the Manager or a Worker would refuse prints {"error": ...} and exits 3.
//
// The stand-in follows Flamenco 3's job compiler API (flamenco.blender.org/usage/job-types/ and
// /usage/jobs-tasks-commands/commands/): the globals `author` (Task, Command), `path` (basename, dirname,
// join, stem), `frameChunker`, `frameCount`, `formatTimestampLocal`, `print` and `alert`; tasks with
// addCommand/addDependency, the job with addTask. The script runs in a fresh `vm` context that has no
// require, module or process, like goja. Only Node's standard library is used.

"use strict";

const fs = require("fs");
const nodePath = require("path");
const vm = require("vm");

const EXIT_SCRIPT_ERROR = 2;
const EXIT_API_MISUSE = 3;

class ApiMisuse extends Error {}

// -- JOB_TYPE: the AvailableJobType / AvailableJobSetting schema of the Manager's OpenAPI ---------------------

const SETTING_TYPES = { string: "string", int32: "number", float: "number", bool: "boolean" };
const SUBTYPES = ["file_path", "dir_path", "file_name", "hashed_file_path"];
const VISIBILITIES = ["visible", "hidden", "submission", "web"];

function checkJobType(jobType) {
    if (!jobType || typeof jobType !== "object") {
        throw new ApiMisuse("the script defines no JOB_TYPE object");
    }
    if (typeof jobType.label !== "string" || jobType.label === "") {
        throw new ApiMisuse("JOB_TYPE.label must be a non-empty string");
    }
    if (!Array.isArray(jobType.settings)) {
        throw new ApiMisuse("JOB_TYPE.settings must be an array");
    }
    const keys = new Set();
    for (const setting of jobType.settings) {
        const where = `JOB_TYPE setting ${JSON.stringify(setting && setting.key)}`;
        if (!setting || typeof setting.key !== "string" || setting.key === "") {
            throw new ApiMisuse(`${where}: every setting needs a key`);
        }
        if (keys.has(setting.key)) {
            throw new ApiMisuse(`${where}: the key is used twice`);
        }
        keys.add(setting.key);
        if (!(setting.type in SETTING_TYPES)) {
            throw new ApiMisuse(`${where}: type must be one of ${Object.keys(SETTING_TYPES).join(", ")}`);
        }
        if (setting.subtype !== undefined && (setting.type !== "string" || !SUBTYPES.includes(setting.subtype))) {
            throw new ApiMisuse(`${where}: a subtype (${SUBTYPES.join(", ")}) is only for string settings`);
        }
        if (setting.choices !== undefined) {
            const strings = Array.isArray(setting.choices) && setting.choices.every((c) => typeof c === "string");
            if (setting.type !== "string" || !strings || setting.choices.length === 0) {
                throw new ApiMisuse(`${where}: choices must be a non-empty list of strings, on a string setting`);
            }
        }
        if (setting.visible !== undefined && !VISIBILITIES.includes(setting.visible)) {
            throw new ApiMisuse(`${where}: visible must be one of ${VISIBILITIES.join(", ")}`);
        }
        for (const flag of ["required", "editable"]) {
            if (setting[flag] !== undefined && typeof setting[flag] !== "boolean") {
                throw new ApiMisuse(`${where}: ${flag} must be true or false`);
            }
        }
        if (setting.eval !== undefined && typeof setting.eval !== "string") {
            throw new ApiMisuse(`${where}: eval must be a Python expression in a string`);
        }
        if (setting.default !== undefined) {
            checkValue(setting, setting.default, `${where}: the default`);
        }
    }
}

function checkValue(setting, value, what) {
    if (typeof value !== SETTING_TYPES[setting.type]) {
        throw new ApiMisuse(`${what} must be a ${setting.type}, not ${JSON.stringify(value)}`);
    }
    if (setting.type === "int32" && (!Number.isInteger(value) || value < -(2 ** 31) || value >= 2 ** 31)) {
        throw new ApiMisuse(`${what} must be a 32-bit integer, not ${value}`);
    }
    if (setting.choices !== undefined && !setting.choices.includes(value)) {
        throw new ApiMisuse(`${what} ${JSON.stringify(value)} is not one of the choices`);
    }
}

// -- frame ranges: frameChunker and frameCount ------------------------------------------------------------------

// The sorted, de-duplicated frames of a range like "1-10,20-25,40" (Blender's "1..10" is read as "1-10").
function explodeFrames(frameRange) {
    const text = String(frameRange).trim().split("..").join("-");
    if (text === "") {
        throw new Error(`invalid range "${frameRange}": empty range`);
    }
    const frames = new Set();
    const parseFrame = (part, piece) => {
        const trimmed = piece.trim();
        if (!/^[+-]?\d+$/.test(trimmed)) {
            throw new Error(`invalid range "${text}": ${part}`);
        }
        return parseInt(trimmed, 10);
    };
    for (const part of text.split(",")) {
        const ends = part.split("-");
        if (ends.length === 1) {
            frames.add(parseFrame(part, ends[0]));
        } else if (ends.length === 2) {
            const first = parseFrame(part, ends[0]);
            const last = parseFrame(part, ends[1]);
            for (let frame = first; frame <= last; frame++) {
                frames.add(frame);
            }
        } else {
            throw new Error(`invalid range "${text}": ${part}`);
        }
    }
    return Array.from(frames).sort((a, b) => a - b);
}

// Consecutive frames as "A-B"; a run of one frame as "A" and of two as "A,B", as Flamenco writes them.
function mergeFrames(frames) {
    const parts = [];
    let start = frames[0];
    for (let i = 1; i <= frames.length; i++) {
        if (i < frames.length && frames[i] === frames[i - 1] + 1) {
            continue;
        }
        const end = frames[i - 1];
        if (start === end) {
            parts.push(String(start));
        } else if (start + 1 === end) {
            parts.push(String(start), String(end));
        } else {
            parts.push(`${start}-${end}`);
        }
        start = frames[i];
    }
    return parts.join(",");
}

function frameChunker(frameRange, chunkSize) {
    const size = Math.trunc(Number(chunkSize)); // the Manager takes a Go int
    if (!(size >= 1)) {
        throw new Error(`invalid chunk size, must be positive number: ${chunkSize}`);
    }
    const frames = explodeFrames(frameRange);
    if (frames.length === 0) {
        throw new Error(`invalid range "${frameRange}": empty range`);
    }
    const chunks = [];
    for (let i = 0; i < frames.length; i += size) {
        chunks.push(mergeFrames(frames.slice(i, i + size)));
    }
    return chunks;
}

function frameCount(frameRange) {
    return explodeFrames(frameRange).length;
}

// -- path: Go's `path` on forward slashes, after turning backslashes into slashes ---------------------------

const toSlash = (p) => String(p).split("\\").join("/");

function cleanPath(p) {
    if (p === "") {
        return ".";
    }
    const rooted = p.startsWith("/");
    const parts = [];
    for (const part of p.split("/")) {
        if (part === "" || part === ".") {
            continue;
        }
        if (part === ".." && parts.length > 0 && parts[parts.length - 1] !== "..") {
            parts.pop();
        } else if (part !== ".." || !rooted) {
            parts.push(part);
        }
    }
    const joined = (rooted ? "/" : "") + parts.join("/");
    return joined === "" ? "." : joined;
}

function basename(p) {
    const trimmed = toSlash(p).replace(/\/+$/, "");
    if (toSlash(p) === "") {
        return ".";
    }
    return trimmed === "" ? "/" : trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

function dirname(p) {
    const slashed = toSlash(p);
    if (slashed === "") {
        return ".";
    }
    // Not cleaned, so the "//" of a UNC path survives.
    const dir = slashed.slice(0, slashed.lastIndexOf("/") + 1);
    if (dir === "") {
        return ".";
    }
    return dir.length > 1 ? dir.slice(0, -1) : dir;
}

function join(...elements) {
    // Go's path.Join works on "/" only: backslashes become slashes after it, so "\\\\NAS" stays "//NAS".
    const first = elements.findIndex((e) => e !== "");
    return first < 0 ? "" : toSlash(cleanPath(elements.slice(first).join("/")));
}

function stem(p) {
    const base = basename(p);
    const dot = base.lastIndexOf(".");
    return dot < 0 ? base : base.slice(0, dot);
}

// -- author: tasks and commands -------------------------------------------------------------------------------

// Parameter types of the worker commands (flamenco.blender.org/usage/jobs-tasks-commands/commands/).
const COMMANDS = {
    "blender-render": { exe: "string", exeArgs: "string?", argsBefore: "strings?", blendfile: "string?", args: "strings?" },
    "frames-to-video": {
        exe: "string", exeArgs: "string?", fps: "number", inputGlob: "string", outputFile: "string",
        argsBefore: "strings?", args: "strings?",
    },
    "make-directory": { path: "string" },
    "move-directory": { src: "string", dest: "string" },
    "copy-file": { src: "string", dest: "string" },
    exec: { exe: "string", args: "strings?" },
    echo: { message: "string" },
    sleep: { duration_in_seconds: "number" },
};

function checkCommand(name, parameters) {
    const spec = COMMANDS[name];
    if (spec === undefined) {
        throw new ApiMisuse(`author.Command: workers have no command ${JSON.stringify(name)}`);
    }
    for (const [key, kind] of Object.entries(spec)) {
        const value = parameters[key];
        const optional = kind.endsWith("?");
        if (value === undefined && optional) {
            continue;
        }
        const base = kind.replace("?", "");
        const ok =
            base === "strings"
                ? Array.isArray(value) && value.every((v) => typeof v === "string")
                : typeof value === base && (base !== "string" || value !== "") && (base !== "number" || value >= 0);
        if (!ok) {
            const want = base === "strings" ? "a list of strings" : `a non-empty ${base}`;
            throw new ApiMisuse(`${name}: parameter ${key} must be ${want}, not ${JSON.stringify(value)}`);
        }
    }
    if (name === "frames-to-video" && parameters.fps === 0) {
        throw new ApiMisuse("frames-to-video: fps must not be 0");
    }
}

function makeAuthor(created) {
    const tasks = new WeakSet();
    const commands = new WeakSet();
    const author = {
        Task(name, type) {
            const taskName = String(name === undefined ? "" : name).trim();
            const taskType = String(type === undefined ? "" : type).trim();
            if (taskName === "") {
                throw new Error("author.Task(name, type): name is required");
            }
            if (taskType === "") {
                throw new Error("author.Task(name, type): type is required");
            }
            const task = {
                name: taskName,
                type: taskType,
                priority: 50,
                commands: [],
                dependencies: [],
                addCommand(command) {
                    if (!commands.has(command)) {
                        throw new ApiMisuse(`task ${taskName}: addCommand takes what author.Command returns`);
                    }
                    task.commands.push(command);
                },
                addDependency(dependency) {
                    if (!tasks.has(dependency)) {
                        throw new ApiMisuse(`task ${taskName}: addDependency takes what author.Task returns`);
                    }
                    task.dependencies.push(dependency);
                },
            };
            tasks.add(task);
            created.push(task);
            return task;
        },
        Command(name, parameters, totalStepCount) {
            if (typeof name !== "string" || !parameters || typeof parameters !== "object") {
                throw new ApiMisuse("author.Command(name, parameters): a name and an object of parameters");
            }
            // The Manager converts the parameters to a Go map at this call: later changes do not reach it.
            const command = { name, parameters: JSON.parse(JSON.stringify(parameters)), totalStepCount };
            checkCommand(name, command.parameters);
            commands.add(command);
            return command;
        },
    };
    return { author, isTask: (t) => tasks.has(t) };
}

function makeJob(submitted, settings, isTask) {
    const added = [];
    const job = {
        name: submitted.name,
        jobType: submitted.type,
        priority: submitted.priority,
        created: new Date(),
        settings,
        metadata: submitted.metadata,
        addTask(task) {
            if (!isTask(task)) {
                throw new ApiMisuse("job.addTask takes what author.Task returns");
            }
            if (added.some((a) => a.task === task)) {
                throw new ApiMisuse(`job.addTask: task ${task.name} is added twice`);
            }
            // The Manager appends a copy of the task: commands or dependencies added afterwards are lost.
            added.push({ task, commands: task.commands.slice(), dependencies: task.dependencies.slice() });
        },
    };
    return { job, added };
}

// The compiled tasks, with dependencies by name; every dependency must be a task of this job.
function describeTasks(added) {
    const names = new Map();
    for (const { task } of added) {
        if (names.has(task.name)) {
            throw new ApiMisuse(`two tasks are named ${task.name} (this harness names dependencies by task name)`);
        }
        names.set(task.name, task);
    }
    return added.map(({ task, commands, dependencies }) => ({
        name: task.name,
        type: task.type,
        commands: commands.map((c) => ({ type: c.name, parameters: c.parameters })),
        dependencies: dependencies.map((dep) => {
            if (names.get(dep.name) !== dep) {
                throw new ApiMisuse(`task ${task.name} depends on ${dep.name}, which is not added to the job`);
            }
            return dep.name;
        }),
    }));
}

// -- running the script ---------------------------------------------------------------------------------------

function formatTimestampLocal(date) {
    const d = date instanceof Date ? date : new Date(date);
    const two = (n) => String(n).padStart(2, "0");
    return (
        `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}_` +
        `${two(d.getHours())}${two(d.getMinutes())}${two(d.getSeconds())}`
    );
}

function loadScript(scriptPath, created) {
    const show = (a) => (a !== null && typeof a === "object" ? JSON.stringify(a) : String(a));
    const log = (kind) => (...args) => process.stderr.write(`${kind}: ${args.map(show).join(" ")}\n`);
    const { author, isTask } = makeAuthor(created);
    const context = vm.createContext({
        author,
        path: { basename, dirname, join, stem },
        frameChunker,
        frameCount,
        formatTimestampLocal,
        print: log("print"),
        alert: log("alert"),
    });
    vm.runInContext(fs.readFileSync(scriptPath, "utf8"), context, { filename: scriptPath });
    // Top-level const and function declarations live in the context's global scope, as goja's runtime.Get sees them.
    const global = (name) => vm.runInContext(`typeof ${name} === "undefined" ? undefined : ${name}`, context);
    return { global, isTask };
}

// The job type's name, from the file name as the Manager derives it: my_type.js -> my-type.
function jobTypeName(scriptPath) {
    return nodePath.basename(scriptPath, nodePath.extname(scriptPath)).split("_").join("-");
}

function readJob(file) {
    const text = fs.readFileSync(file === undefined ? 0 : file, "utf8");
    const job = JSON.parse(text);
    if (!job || typeof job !== "object" || Array.isArray(job)) {
        throw new ApiMisuse("the job must be a JSON object");
    }
    if (job.settings !== undefined && (typeof job.settings !== "object" || Array.isArray(job.settings))) {
        throw new ApiMisuse("the job's settings must be an object");
    }
    return job;
}

function compile(scriptPath, submitted) {
    const created = [];
    const { global, isTask } = loadScript(scriptPath, created);
    const jobType = global("JOB_TYPE");
    checkJobType(jobType);
    const compileJob = global("compileJob");
    if (typeof compileJob !== "function") {
        throw new ApiMisuse("the script defines no compileJob(job) function");
    }
    const name = jobTypeName(scriptPath);
    if (submitted.type !== undefined && submitted.type !== name) {
        throw new ApiMisuse(`the job's type is ${JSON.stringify(submitted.type)}, the script's is ${name}`);
    }
    const settings = Object.assign({}, submitted.settings || {});
    for (const setting of jobType.settings) {
        if (settings[setting.key] === undefined && setting.default !== undefined) {
            settings[setting.key] = setting.default;
        }
    }
    const job = makeJob(
        {
            name: submitted.name || "harness job",
            type: name,
            priority: submitted.priority === undefined ? 50 : submitted.priority,
            metadata: Object.assign({}, submitted.metadata || {}),
        },
        settings,
        isTask,
    );
    try {
        compileJob(job.job);
    } catch (err) {
        if (err instanceof ApiMisuse) {
            throw err;
        }
        // A thrown Error comes from the script's realm (instanceof Error fails across contexts); a thrown
        // string is allowed too, as the built-in scripts do.
        const message = err && typeof err.message === "string" ? err.message : String(err);
        return { exit: EXIT_SCRIPT_ERROR, output: { error: message } };
    }
    return { exit: 0, output: { job_type: name, settings, tasks: describeTasks(job.added) } };
}

function main(argv) {
    let scriptPath = nodePath.join(__dirname, "photo3d.js");
    let mode = "compile";
    let globalName;
    let jobFile;
    for (let i = 0; i < argv.length; i++) {
        if (argv[i] === "--script") {
            scriptPath = argv[++i];
        } else if (argv[i] === "--job-type") {
            mode = "job-type";
        } else if (argv[i] === "--global") {
            mode = "global";
            globalName = argv[++i];
        } else if (jobFile === undefined && !argv[i].startsWith("--")) {
            jobFile = argv[i];
        } else {
            throw new ApiMisuse(`unknown argument ${argv[i]}`);
        }
    }
    if (mode === "compile") {
        return compile(scriptPath, readJob(jobFile));
    }
    const { global } = loadScript(scriptPath, []);
    const jobType = global("JOB_TYPE");
    checkJobType(jobType);
    if (mode === "job-type") {
        return { exit: 0, output: Object.assign({ name: jobTypeName(scriptPath) }, jobType) };
    }
    if (!/^[A-Za-z_$][\w$]*$/.test(globalName || "")) {
        throw new ApiMisuse("--global needs the name of a top-level value");
    }
    return { exit: 0, output: global(globalName) === undefined ? null : global(globalName) };
}

if (require.main === module) {
    let result;
    try {
        result = main(process.argv.slice(2));
    } catch (err) {
        result = { exit: EXIT_API_MISUSE, output: { error: err && err.message ? err.message : String(err) } };
    }
    process.stdout.write(JSON.stringify(result.output, null, 2) + "\n");
    process.exitCode = result.exit;
}

module.exports = { frameChunker, frameCount, basename, dirname, join, stem, compile };
