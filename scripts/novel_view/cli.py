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
from .conditions import (
    CONDITIONS,
    Alignment,
    aligned_pair,
    condition_disparity,
    fit_disparity_affine,
    metric_alignment,
    parse_conditions,
)
from .metrics import METRICS, PSNR_CAP_DB, depth_jumps, edge_measures, loose_score, score, view_masks, worst_window
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
``--depth-condition gt|blur2|blur4|blur8|sgbm`` (a comma list runs several) chooses the depth the pipeline
gets: ``gt`` is the metric ground truth above; the others (blurred ground truth, StereoSGBM) go in as relative
disparity through the model-depth path, with the full harmonize, and the right camera is aligned to the
relative scene by scale and shift (scripts/novel_view/conditions.py). Masks always come from the ground truth.
Per condition the report adds the margins (layers minus stretched_mesh, layers minus splat + Telea), edge
measures of the harmonized depth against the true depth jumps (``metrics.edge_measures``) and a zoomed crop
of the window where the layered render is worst (``--crops``).
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


def condition_setup(
    pair: StereoPair, condition: str, folder: Path
) -> tuple[dict[str, dict[str, Any]], Alignment, np.ndarray]:
    """The pipeline options, camera alignment and input depth (as the pipeline will see it) of one condition.

    ``gt`` writes the metric ground-truth depth (today's path). Any other condition writes its relative
    disparity (``conditions.condition_disparity``) as a disparity file, turns harmonize's trust of depth
    files off (the full harmonize a network's depth gets) and aligns the right camera to the depth the
    pipeline makes of it (``disparity_to_depth``, then ``fit_disparity_affine`` against the true disparity).
    """
    from core.depth import disparity_to_depth
    from core.options import PipelineOptions

    depth_path = folder / "depth.npy"
    if condition == "gt":
        np.save(depth_path, pair.depth.astype(np.float32))
        return pair_options(pair, depth_path), metric_alignment(pair), pair.depth
    disparity = condition_disparity(pair, condition)
    np.save(depth_path, disparity.astype(np.float32))
    base = merge_options(
        pair_options(pair, depth_path),
        {"depth": {"depth_kind": "disparity"}, "harmonize": {"trust_depth_file": False}},
    )
    depth_options = PipelineOptions.from_dict(base).depth
    depth = disparity_to_depth(disparity, depth_options.near, depth_options.far)
    return base, fit_disparity_affine(depth, pair.disparity), depth


def bench_pair(
    pair: StereoPair, methods: list[Method], args: argparse.Namespace, work: Path, condition: str = "gt"
) -> tuple[dict[str, dict[str, float]], dict[str, Any], Row]:
    """Run every method on one pair under one depth condition; returns scores, extra details and the PNG row."""
    import cv2

    h, w = pair.disparity.shape
    folder = work / (pair.name if condition == "gt" else f"{pair.name}_{condition}")
    folder.mkdir(parents=True, exist_ok=True)
    image_path = folder / "left.png"
    cv2.imwrite(str(image_path), cv2.cvtColor(pair.left, cv2.COLOR_RGB2BGR))
    pair_base, alignment, input_depth = condition_setup(pair, condition, folder)
    camera_pair = pair if condition == "gt" else aligned_pair(pair, alignment)
    masks = view_masks(pair.disparity, pair.right_disparity)
    scores: dict[str, dict[str, float]] = {}
    details: dict[str, Any] = {
        "size": [w, h],
        "condition": condition,
        "alignment": {"a": round(alignment.a, 6), "b": round(alignment.b, 6)},
        "masks": masks.counts(),
        "methods": {},
    }

    started = time.perf_counter()
    references = {
        "reference_splat_telea": reference_splat_telea(pair.left, pair.disparity),
        "reference_rubber_numpy": reference_rubber_sheet(pair.left, pair.disparity),
    }
    if condition != "gt":
        # The same splat with the condition's depth (aligned to pixels), for comparison.
        references["reference_splat_telea_condition"] = reference_splat_telea(
            pair.left, alignment.disparity(input_depth)
        )
    renders: dict[str, np.ndarray] = {}
    for name, image in references.items():
        scores[name] = rounded(score(image, pair.right, masks))
        details["methods"][name] = {"loose": rounded(loose_score(image, pair.right, masks))}
        cv2.imwrite(str(folder / f"{name}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    details["reference_seconds"] = round(time.perf_counter() - started, 3)

    harmonized: np.ndarray | None = None
    for method in methods:
        options = merge_options(pair_base, method.options)
        t0 = time.perf_counter()
        try:
            package, manifest = run_pipeline(image_path, options, folder / f"{method.name}_package")
        except Exception as error:  # one failing setting must not lose the others' numbers
            print(f"  {pair.name} {condition} {method.name}: pipeline failed: {error}", flush=True)
            scores[method.name] = dict.fromkeys(METRICS, float("nan"))
            details["methods"][method.name] = {"options": options, "error": f"{type(error).__name__}: {error}"}
            continue
        t1 = time.perf_counter()
        if harmonized is None or method.name == "layers":
            # The harmonized depth is the same for every method that only changes layers; prefer "layers".
            harmonized = np.load(package / manifest["depth"]["map"])
        cam = manifest["camera"]
        right = right_camera(w, h, cam["focal_px"], cam["cx"], cam["cy"], camera_pair.baseline_m, camera_pair.doffs_px)
        check = camera_check_points(camera_pair, manifest)
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
            # Pure black is the empty world: a camera move that sees past the layers' border.
            "black_px": int((image.max(axis=2) == 0).sum()),
        }
        label = f"{pair.name} {condition} {method.name}"
        whole = details["methods"][method.name]["loose"]["all_psnr"]
        black = details["methods"][method.name]["black_px"]
        timing = f"({t1 - t0:.1f} s + {t2 - t1:.1f} s)"
        print(f"  {label}: {scores[method.name]}, whole frame {whole} dB, {black} black px {timing}", flush=True)

    details["margins"] = condition_margins(scores)
    details["edges"] = {"input": rounded(edge_measures(alignment.disparity(input_depth), pair.disparity))}
    if harmonized is not None:
        harmonized_disparity = alignment.disparity(harmonized)
        details["edges"]["harmonized"] = rounded(edge_measures(harmonized_disparity, pair.disparity))
        if "layers" in renders:
            crop, window = worst_crop(pair, masks, renders, references, harmonized_disparity)
            details["worst_window"] = window
            cv2.imwrite(str(folder / "worst_crop.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
            if args.crops:
                args.crops.mkdir(parents=True, exist_ok=True)
                target = args.crops / f"{pair.name}_{condition}_worst.png"
                cv2.imwrite(str(target), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))

    # The picture shows the named methods; --variant renders stay in the work folder.
    row = [("left photo", pair.left), ("true right", pair.right)]
    row.extend((f"{name} (Eevee)", renders[name]) for name in PICTURED if name in renders)
    if harmonized is not None:
        row.append(("harmonized disparity, true jumps white", disparity_picture(alignment.disparity(harmonized), pair)))
    row.append(("disoccluded red / unknown blue / out of view dark", mask_overlay(pair.right, masks)))
    return scores, details, row


def condition_margins(scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """layers minus stretched_mesh and layers minus splat + Telea (ground truth), per metric, where both exist."""
    out: dict[str, dict[str, float]] = {}
    layers = scores.get("layers")
    if layers is None:
        return out
    for name, other in (("vs_stretched_mesh", "stretched_mesh"), ("vs_splat_telea", "reference_splat_telea")):
        if other in scores:
            out[name] = {m: round(layers[m] - scores[other][m], 4) for m in METRICS}
    return out


def disparity_picture(disparity: np.ndarray, pair: StereoPair) -> np.ndarray:
    """A disparity map in the turbo colour map over the true range, with the true jumps drawn white."""
    import cv2

    low, high = np.nanpercentile(pair.disparity, [1.0, 99.0])
    normalised = np.clip((np.nan_to_num(disparity, nan=low) - low) / max(high - low, 1e-6), 0.0, 1.0)
    picture = cv2.applyColorMap((normalised * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    picture = cv2.cvtColor(picture, cv2.COLOR_BGR2RGB)
    picture[depth_jumps(pair.disparity)] = 255
    return picture


CROP_SIZE = 160
CROP_ZOOM = 2


def worst_crop(
    pair: StereoPair,
    masks: Any,
    renders: dict[str, np.ndarray],
    references: dict[str, np.ndarray],
    harmonized_disparity: np.ndarray,
) -> tuple[np.ndarray, list[int]]:
    """Side-by-side ``CROP_SIZE`` crops (zoomed ``CROP_ZOOM`` x) where the layered render is worst.

    The window maximises the layered render's summed squared error over the scored pixels (overlap and
    disoccluded, ``worst_window``); the panels are the true right view, the Eevee renders, splat + Telea, the
    harmonized disparity (true jumps white) and the scored-mask overlay. Returns the picture and
    [row, col, size].
    """
    import cv2

    from .report import _label

    truth = pair.right.astype(np.float64)
    error = ((renders["layers"].astype(np.float64) - truth) ** 2).mean(axis=2)
    row, col = worst_window(error, masks.overlap | masks.disoccluded, CROP_SIZE)
    size_h, size_w = min(CROP_SIZE, error.shape[0]), min(CROP_SIZE, error.shape[1])
    panels = [("true right", pair.right)]
    panels.extend((name, renders[name]) for name in PICTURED if name in renders)
    panels.append(("splat+Telea (GT)", references["reference_splat_telea"]))
    panels.append(("harmonized disp.", disparity_picture(harmonized_disparity, pair)))
    panels.append(("masks", mask_overlay(pair.right, masks)))
    out = []
    for text, image in panels:
        crop = np.ascontiguousarray(image[row : row + size_h, col : col + size_w])
        crop = cv2.resize(crop, (size_w * CROP_ZOOM, size_h * CROP_ZOOM), interpolation=cv2.INTER_NEAREST)
        out.append(_label(crop, text))
    return np.concatenate(out, axis=1), [row, col, CROP_SIZE]


def conditions_table(report: dict[str, Any]) -> str:
    """One line per pair and condition: layered and stretched scores, margins, harmonized edge measures."""
    lines = [
        "| pair | depth | layers ov PSNR/SSIM | layers dis PSNR/SSIM | stretched ov | stretched dis "
        "| layers-stretched ov / dis dB | layers-splat+Telea ov / dis dB | edge P / R @2px | dist h->t / t->h px "
        "| band MAE px |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def pair_of(m: dict[str, float] | None, key: str) -> str:
        if not m:
            return "-"
        return f"{m[key + '_psnr']:.2f} / {m[key + '_ssim']:.3f}"

    for name, details in report["details"].items():
        scores = report["pairs"][name]
        layers, stretched = scores.get("layers"), scores.get("stretched_mesh")
        margins = details.get("margins", {})
        vs_s, vs_t = margins.get("vs_stretched_mesh"), margins.get("vs_splat_telea")
        edges = details.get("edges", {}).get("harmonized")
        lines.append(
            f"| {name.split('/')[0]} | {details.get('condition', 'gt')} | {pair_of(layers, 'overlap')} "
            f"| {pair_of(layers, 'disoccluded')} | {pair_of(stretched, 'overlap')} "
            f"| {pair_of(stretched, 'disoccluded')} "
            + (f"| {vs_s['overlap_psnr']:+.2f} / {vs_s['disoccluded_psnr']:+.2f} " if vs_s else "| - ")
            + (f"| {vs_t['overlap_psnr']:+.2f} / {vs_t['disoccluded_psnr']:+.2f} " if vs_t else "| - ")
            + (
                f"| {edges['precision']:.2f} / {edges['recall']:.2f} "
                f"| {edges['distance_to_true']:.2f} / {edges['distance_from_true']:.2f} | {edges['band_error']:.2f} |"
                if edges
                else "| - | - | - |"
            )
        )
    return "\n".join(lines)


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
    parser.add_argument(
        "--depth-condition",
        default="gt",
        metavar="|".join(CONDITIONS),
        help="depth given to the pipeline; a comma list runs several (see scripts/novel_view/conditions.py)",
    )
    parser.add_argument("--crops", type=Path, help="write each pair and condition's worst-window crops here")
    parser.add_argument("--work-dir", type=Path, help="keep packages and renders here (default: a temporary folder)")
    args = parser.parse_args(argv)

    methods = build_methods(args)
    conditions = parse_conditions(args.depth_condition)
    specs = args.pairs or ["motorcycle", str(DEFAULT_CONES)]
    started = time.perf_counter()
    report: dict[str, Any] = {"pairs": {}, "details": {}}
    rows = []
    with tempfile.TemporaryDirectory(prefix="photo3d_novel_") as tmp:
        work = args.work_dir or Path(tmp)
        for spec in specs:
            pair = load_pair(spec)
            print(f"{pair.name}: {pair.left.shape[1]}x{pair.left.shape[0]}", flush=True)
            for condition in conditions:
                # gt keeps the plain pair name, so the default report reads as before.
                key = pair.name if condition == "gt" else f"{pair.name}/{condition}"
                scores, details, row = bench_pair(pair, methods, args, work, condition)
                report["pairs"][key] = scores
                report["details"][key] = details
                rows.append(row)
    report["settings"] = {
        "methods": {m.name: m.options for m in methods},
        "samples": args.samples,
        "depth_conditions": conditions,
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
    print()
    print(conditions_table(report))
    print(f"total {report['seconds']:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(json_safe(report), indent=2))
    if args.png:
        import cv2

        args.png.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(args.png), cv2.cvtColor(side_by_side(rows), cv2.COLOR_RGB2BGR))
    return 0
