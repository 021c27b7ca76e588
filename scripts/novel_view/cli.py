"""The benchmark's command line: the methods, one pair's run and ``main``."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import ROOT
from .metrics import METRICS, PSNR_CAP_DB, loose_score, score, view_masks
from .pairs import StereoPair, load_pair, right_camera
from .references import reference_rubber_sheet, reference_splat_telea
from .render import camera_check_points, pair_options, render_right_view, run_pipeline
from .report import DESIGN_REFERENCE, json_safe, markdown_table, mask_overlay, rounded, side_by_side, targets

DESCRIPTION = """\
Novel-view benchmark: build the scene from the left photo of a stereo pair, render the right camera, score it.

Pairs: ``motorcycle`` (the Middlebury 2014 pair that ships with scikit-image) or any folder laid out like
Middlebury 2003 (im2.png, im6.png, disp2.pgm, disp6.pgm). Each pair runs the pipeline on the left photo with
its ground-truth depth, builds the Blender scene with the add-on's scene builder, renders the right camera
with Eevee and scores PSNR and SSIM against the true right photo over two masks (``view_masks``):

- overlap: right pixels that some left pixel with known disparity lands on (pixel-exact forward warping,
  rounded to the nearest pixel, larger disparity wins);
- disoccluded: right pixels nothing lands on, except pixels outside the left camera's view and holes that
  come only from unknown ground truth.

Methods rendered in Eevee: ``layers`` (the default pipeline with ground-truth depth; ``--layers``, ``--band``,
``--triangles``, ``--representation`` and ``--set`` change it), ``stretched_mesh`` (the same with one layer:
one mesh stretched over every depth edge), optionally ``mpi``, the ``--tuned`` presets and any ``--variant``.
Two numpy references are computed as DESIGN.md names them (``reference_splat_telea``,
``reference_rubber_numpy``) and scored with the same masks. The report also carries, per method, the numbers
over cruder masks (``loose_score``: whole frame, every pixel nothing lands on), with which the numpy splat +
Telea reproduces DESIGN.md's Motorcycle row.

    .venv/bin/python scripts/bench_novel_view.py [motorcycle] [FOLDER ...] [--tuned] \\
        --json out/novel_view.json --png out/novel_view.png

The pure functions (camera, warping, masks, metrics, references) import without bpy.
"""
"""The ``--help`` text."""

DEFAULT_CONES = ROOT.parent / "shared" / "data" / "middlebury" / "cones"
TUNED_OPTIONS: dict[str, dict[str, Any]] = {
    "harmonize": {"data_weight_edge": 2.0, "data_weight_interior": 4.0, "boundary_weight": 0.5},
    "segment": {"superpixels": 1000},
    "layers": {"max_layers": 8, "min_gap": 0.02, "overlap_factor": 1.0},
}
"""Best pipeline settings found on Motorcycle and Cones with ground-truth depth; ``--tuned`` renders them as a
mesh (``layers_tuned``) and as an MPI (``mpi_tuned``)."""
TUNED_MPI_PLANES = 96
PICTURED = ("layers", "stretched_mesh", "mpi", "layers_tuned", "mpi_tuned")
Row = list[tuple[str, np.ndarray]]
"""One row of the side-by-side picture: labelled panels."""


@dataclass
class Method:
    """One way of making the right view: pipeline option overrides rendered in Eevee."""

    name: str
    options: dict[str, dict[str, Any]] = field(default_factory=dict)


def merge_options(base: dict[str, dict[str, Any]], extra: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Section-wise merge of two nested option dicts (``extra`` wins)."""
    merged = {section: dict(values) for section, values in base.items()}
    for section, values in extra.items():
        merged.setdefault(section, {}).update(values)
    return merged


def parse_assignments(text: str) -> dict[str, dict[str, Any]]:
    """``section.key=value,section.key=value`` to nested option dicts; values are JSON where they parse."""
    out: dict[str, dict[str, Any]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise SystemExit(f"option {item!r} must look like section.key=value")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(section, {})[name] = value
    return out


def layered_options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Options of the layered method: the ``--layers/--band/--triangles/--representation`` flags, then ``--set``."""
    options: dict[str, dict[str, Any]] = {
        "layers": {},
        "inpaint": {},
        "geometry": {"representation": args.representation},
    }
    if args.layers is not None:
        options["layers"]["max_layers"] = args.layers
    if args.band is not None:
        options["inpaint"]["band_fraction"] = args.band
    if args.triangles is not None:
        options["geometry"]["max_triangles"] = args.triangles
    for text in args.set:
        options = merge_options(options, parse_assignments(text))
    return options


def build_methods(args: argparse.Namespace) -> list[Method]:
    """The Eevee methods asked for: layers, stretched_mesh, optionally mpi, ``--tuned`` and ``--variant`` ones.

    Every method but the tuned ones starts from the layered options; stretched_mesh then forces one layer,
    mpi the MPI representation, a variant its own overrides. The tuned ones are fixed presets
    (``TUNED_OPTIONS``, as a mesh and as a ``TUNED_MPI_PLANES``-plane MPI).
    """
    layered = layered_options(args)
    fixed = {
        "layers": {},
        "stretched_mesh": {"layers": {"max_layers": 1}},
        "mpi": {"geometry": {"representation": "mpi"}},
    }
    methods = []
    for name in filter(None, (part.strip() for part in args.methods.split(","))):
        if name not in fixed:
            raise SystemExit(f"unknown method {name!r} (layers, stretched_mesh, mpi)")
        methods.append(Method(name, merge_options(layered, fixed[name])))
    if args.tuned:
        methods.append(Method("layers_tuned", TUNED_OPTIONS))
        mpi = {"geometry": {"representation": "mpi", "mpi_planes": TUNED_MPI_PLANES}}
        methods.append(Method("mpi_tuned", merge_options(TUNED_OPTIONS, mpi)))
    for variant in args.variant:
        name, sep, assignments = variant.partition(":")
        if not sep or not name:
            raise SystemExit(f"--variant {variant!r} must look like NAME:section.key=value,...")
        methods.append(Method(name, merge_options(layered, parse_assignments(assignments))))
    return methods


def bench_pair(
    pair: StereoPair, methods: list[Method], args: argparse.Namespace, work: Path
) -> tuple[dict[str, dict[str, float]], dict[str, Any], Row]:
    """Run every method on one pair; returns per-method scores, extra details and the PNG row."""
    import cv2

    h, w = pair.disparity.shape
    folder = work / pair.name
    folder.mkdir(parents=True, exist_ok=True)
    image_path, depth_path = folder / "left.png", folder / "depth.npy"
    cv2.imwrite(str(image_path), cv2.cvtColor(pair.left, cv2.COLOR_RGB2BGR))
    np.save(depth_path, pair.depth.astype(np.float32))
    masks = view_masks(pair.disparity, pair.right_disparity)
    scores: dict[str, dict[str, float]] = {}
    details: dict[str, Any] = {"size": [w, h], "masks": masks.counts(), "methods": {}}

    started = time.perf_counter()
    references = {
        "reference_splat_telea": reference_splat_telea(pair.left, pair.disparity),
        "reference_rubber_numpy": reference_rubber_sheet(pair.left, pair.disparity),
    }
    renders: dict[str, np.ndarray] = {}
    for name, image in references.items():
        scores[name] = rounded(score(image, pair.right, masks))
        details["methods"][name] = {"loose": rounded(loose_score(image, pair.right, masks))}
        cv2.imwrite(str(folder / f"{name}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    details["reference_seconds"] = round(time.perf_counter() - started, 3)

    pair_base = pair_options(pair, depth_path)
    for method in methods:
        options = merge_options(pair_base, method.options)
        t0 = time.perf_counter()
        try:
            package, manifest = run_pipeline(image_path, options, folder / f"{method.name}_package")
        except Exception as error:  # one failing setting must not lose the others' numbers
            print(f"  {pair.name} {method.name}: pipeline failed: {error}", flush=True)
            scores[method.name] = dict.fromkeys(METRICS, float("nan"))
            details["methods"][method.name] = {"options": options, "error": f"{type(error).__name__}: {error}"}
            continue
        t1 = time.perf_counter()
        cam = manifest["camera"]
        right = right_camera(w, h, cam["focal_px"], cam["cx"], cam["cy"], pair.baseline_m, pair.doffs_px)
        check = camera_check_points(pair, manifest)
        out_png = folder / f"{method.name}_right.png"
        image, error = render_right_view(package, right, out_png, args.samples, check)
        t2 = time.perf_counter()
        renders[method.name] = image
        scores[method.name] = rounded(score(image, pair.right, masks))
        details["methods"][method.name] = {
            "options": options,
            "layers": len(manifest["layers"]),
            "triangles": sum(int(layer.get("triangles", 0)) for layer in manifest["layers"]),
            "pipeline_seconds": round(t1 - t0, 2),
            "render_seconds": round(t2 - t1, 2),
            "camera_error_px": round(error, 5),
            "loose": rounded(loose_score(image, pair.right, masks)),
        }
        print(f"  {pair.name} {method.name}: {scores[method.name]} ({t1 - t0:.1f} s + {t2 - t1:.1f} s)", flush=True)

    # The picture shows the named methods; --variant renders stay in the work folder.
    row = [("left photo", pair.left), ("true right", pair.right)]
    row.extend((f"{name} (Eevee)", renders[name]) for name in PICTURED if name in renders)
    row.append(("disoccluded red / unknown blue / out of view dark", mask_overlay(pair.right, masks)))
    return scores, details, row


def main(argv: list[str] | None = None) -> int:
    """The command line: bench every pair, print the table and targets, write the JSON and PNG; returns 0."""
    parser = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "pairs", nargs="*", help=f"motorcycle and/or Middlebury 2003 folders (default: both, {DEFAULT_CONES})"
    )
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--png", type=Path, help="write the side-by-side picture here (one row per pair)")
    # Unset flags keep the pipeline's own defaults, so the benchmark measures what users get.
    parser.add_argument("--layers", type=int, help="layers.max_layers of the layered method")
    parser.add_argument("--band", type=float, help="inpaint.band_fraction")
    parser.add_argument("--triangles", type=int, help="geometry.max_triangles per layer")
    parser.add_argument("--representation", default="mesh", choices=["mesh", "mpi"])
    parser.add_argument("--methods", default="layers,stretched_mesh", help="comma list of layers, stretched_mesh, mpi")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE,...",
        help="pipeline options for the layered method and every method built from it",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:SECTION.KEY=VALUE,...",
        help="an extra method: the layered options plus these overrides",
    )
    parser.add_argument("--tuned", action="store_true", help="also run the tuned presets (layers_tuned, mpi_tuned)")
    parser.add_argument("--samples", type=int, default=1, help="Eevee TAA render samples")
    parser.add_argument("--work-dir", type=Path, help="keep packages and renders here (default: a temporary folder)")
    args = parser.parse_args(argv)

    methods = build_methods(args)
    specs = args.pairs or ["motorcycle", str(DEFAULT_CONES)]
    started = time.perf_counter()
    report: dict[str, Any] = {"pairs": {}, "details": {}}
    rows = []
    with tempfile.TemporaryDirectory(prefix="photo3d_novel_") as tmp:
        work = args.work_dir or Path(tmp)
        for spec in specs:
            pair = load_pair(spec)
            print(f"{pair.name}: {pair.left.shape[1]}x{pair.left.shape[0]}", flush=True)
            scores, details, row = bench_pair(pair, methods, args, work)
            report["pairs"][pair.name] = scores
            report["details"][pair.name] = details
            rows.append(row)
    report["settings"] = {
        "methods": {m.name: m.options for m in methods},
        "samples": args.samples,
        "engine": "BLENDER_EEVEE_NEXT",
        "masks": view_masks.__doc__.split("Rules, ")[1].strip() if view_masks.__doc__ else "",
        "psnr_cap_db": PSNR_CAP_DB,
    }
    report["design_reference"] = {
        pair: {m: dict(zip(METRICS, v, strict=True)) for m, v in refs.items()}
        for pair, refs in DESIGN_REFERENCE.items()
    }
    report["targets"] = targets(report["pairs"], [m.name for m in methods])
    report["seconds"] = round(time.perf_counter() - started, 1)

    print()
    print(markdown_table(report["pairs"]))
    print()
    for pair, entry in report["targets"].items():
        for method, verdicts in entry.items():
            for against, t in verdicts.items():
                print(
                    f"{pair} {method} {against}: {'PASS' if t['pass'] else 'FAIL'} (disoccluded "
                    f"{t['disoccluded_psnr']:.2f} >= {t['disoccluded_psnr_needed']:.2f}, overlap "
                    f"{t['overlap_psnr']:.2f} >= {t['overlap_psnr_needed']:.2f})"
                )
    print(f"total {report['seconds']:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(json_safe(report), indent=2))
    if args.png:
        import cv2

        args.png.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.png), cv2.cvtColor(side_by_side(rows), cv2.COLOR_RGB2BGR))
    return 0
