#!/usr/bin/env node
// Validate a glTF or GLB file with the Khronos glTF validator (the gltf-validator npm package pinned in
// package.json; install it with `npm ci --prefix scripts/node`).
//
//   node scripts/node/validate_gltf.js FILE.glb
//
// Prints the validator's report as JSON on stdout and exits 0, whatever issues it lists. The asset must be
// self-contained: any external resource (a buffer or image URI) is refused, and shows up in the report as
// an issue. Exits 2 on a usage error or an unreadable file, 1 when the validator itself gives up.
"use strict";

const fs = require("fs");
const path = require("path");
const validator = require("gltf-validator");

function main(argv) {
    if (argv.length !== 1) {
        process.stderr.write("usage: node validate_gltf.js FILE.glb\n");
        return Promise.resolve(2);
    }
    const file = argv[0];
    let bytes;
    try {
        // A fresh Uint8Array: a Buffer from readFileSync may be a view into Node's shared pool.
        bytes = new Uint8Array(fs.readFileSync(file));
    } catch (error) {
        process.stderr.write(`cannot read ${file}: ${error.message}\n`);
        return Promise.resolve(2);
    }
    return validator
        .validateBytes(bytes, {
            uri: path.basename(file),
            maxIssues: 0,
            writeTimestamp: false,
            externalResourceFunction: (uri) =>
                Promise.reject(new Error(`external resource ${uri} refused: the asset must be self-contained`)),
        })
        .then(
            (report) => {
                process.stdout.write(JSON.stringify(report, null, 2) + "\n");
                return 0;
            },
            (error) => {
                process.stderr.write(`the validator could not read ${file}: ${error}\n`);
                return 1;
            }
        );
}

main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
});
