"""Compare the harmonic depth fill (``core.harmonic.harmonic_extend``, the full multigrid solver) with the earlier
cascade of Jacobi-preconditioned CG, on the fills of a real conversion, and print a table.

The inputs are the calls the pipeline makes: ``core.pipeline.convert_image`` runs on the Motorcycle photo at
1080p (``scripts/bench_pipeline.py``'s input, with its ground-truth depth as the depth file and the
weights-free segmentation), with ``core.inpaint.harmonic_extend`` replaced by a recorder; each call's
(values, known, domain) is saved to ``--data`` and reused by later runs (``--record`` records again).

Each fill is compared with the converged solution of the same problem (every pyramid level solved directly in
float64 by ``scipy.sparse.linalg.spsolve``, seeded by the coarser level as the solver is; cached in
``--data``), and, for information, with the plain Laplace solution (no regulariser): their gap is the
regulariser's own pull, which no solver of this problem removes. Errors are in % of the layer's known value
range, over the unknown pixels of components that touch a known pixel (a component with none has no harmonic
extension to compare with). CPU time is ``time.process_time()`` (this process, all threads), the minimum over
``--repeat`` interleaved runs (the machine may be shared).

    .venv/bin/python scripts/bench_harmonic.py [--data /tmp/photo3d_harmonic] [--repeat 7] [--record]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.harmonic import harmonic_extend  # noqa: E402
from core.pcg import pcg  # noqa: E402
from tests.harmonic_reference import REGULARISATION, exact_harmonic, exact_pyramid  # noqa: E402

# The earlier solver (a cascade of Jacobi-preconditioned CG), kept here for the comparison only.
_CROSS = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.float32)


def _old_shift_sum(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    return cv2.filter2D(x, -1, _CROSS, dst=out, borderType=cv2.BORDER_CONSTANT)


def _old_cg(values, known, domain, init, iterations):
    unknown = domain & ~known
    if not unknown.any():
        return values
    rows, cols = np.nonzero(unknown)
    y0, y1 = max(rows.min() - 1, 0), min(rows.max() + 2, unknown.shape[0])
    x0, x1 = max(cols.min() - 1, 0), min(cols.max() + 2, unknown.shape[1])
    crop = (slice(y0, y1), slice(x0, x1))
    unknown_c, domain_c, known_c = unknown[crop], domain[crop], known[crop] & domain[crop]
    scratch = np.empty(unknown_c.shape, np.float32)
    degree = _old_shift_sum(domain_c.astype(np.float32), scratch.copy())
    diag = np.where(unknown_c, degree + REGULARISATION, 1.0).astype(np.float32)
    known_sum = _old_shift_sum(np.where(known_c, values[crop], 0.0).astype(np.float32), scratch.copy())
    mask = unknown_c.astype(np.float32)
    b = mask * (known_sum + REGULARISATION * init[crop])

    def apply(x):
        out = np.multiply(diag, x)
        out -= _old_shift_sum(x, scratch)
        out *= mask
        return out

    x, _, _ = pcg(apply, b, diag, (mask * init[crop]).astype(np.float32), iterations)
    out = values.astype(np.float32).copy()
    out[crop] = np.where(unknown_c, x, out[crop])
    return out


def old_harmonic_extend(values, known, domain, iterations=60, fine_iterations=12):
    """The earlier solver: coarse to fine, 60 Jacobi-CG iterations on every coarser level and 12 on the finest."""
    values = values.astype(np.float32)
    h, w = values.shape
    fallback = float(np.median(values[known])) if known.any() else 0.0
    if min(h, w) >= 16 and (domain & ~known).sum() > 256:
        size = (max(1, w // 2), max(1, h // 2))
        weight = cv2.resize(known.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        total = cv2.resize(np.where(known, values, 0.0).astype(np.float32), size, interpolation=cv2.INTER_AREA)
        coarse_known = weight > 0.5
        coarse_values = np.where(coarse_known, total / np.maximum(weight, 1e-6), fallback)
        coarse_domain = cv2.resize(domain.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        coarse_domain |= coarse_known
        coarse = old_harmonic_extend(coarse_values, coarse_known, coarse_domain, iterations, iterations)
        init = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
        iterations = fine_iterations
    else:
        init = np.full_like(values, fallback)
        iterations = max(iterations, 200)
    return _old_cg(values, known, domain, init, iterations)


# References.


def plain_laplace(values, known, domain):
    """The Laplace equation without the regulariser (a vanishing one keeps components with no known pixel
    solvable; they are left out of the comparison)."""
    fallback = float(np.median(values[known]))
    return exact_harmonic(values, known & domain, domain, 1e-9, np.full(values.shape, fallback))


def held(known, domain):
    """Unknown pixels in components that touch a known pixel."""
    unknown = domain & ~known
    labels, _ = ndimage.label(unknown)
    touching = np.unique(labels[ndimage.binary_dilation(known & domain) & unknown])
    return np.isin(labels, touching[touching > 0])


# Recording.


def record(folder: Path) -> int:
    """Convert the 1080p Motorcycle photo with the fill recorded; the calls go to ``folder/call{i}.npz``."""
    import core.inpaint as inpaint
    from core.options import PipelineOptions
    from core.pipeline import convert_image
    from scripts.bench_pipeline import RESOLUTIONS, _make_inputs

    calls = []
    fill = inpaint.harmonic_extend

    def recorder(values, known, domain, *args, **kwargs):
        calls.append((values.copy(), known.copy(), domain.copy()))
        return fill(values, known, domain, *args, **kwargs)

    inpaint.harmonic_extend = recorder
    try:
        with tempfile.TemporaryDirectory() as tmp:
            image, depth = _make_inputs(Path(tmp), *RESOLUTIONS["1080p"])
            options = PipelineOptions.from_dict({"depth": {"depth_file": str(depth)}, "segment": {"model": "none"}})
            convert_image(image, Path(tmp) / "out", options)
    finally:
        inpaint.harmonic_extend = fill
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.np[yz]"):
        stale.unlink()
    for i, (values, known, domain) in enumerate(calls):
        np.savez(folder / f"call{i}.npz", values=values, known=known, domain=domain)
    return len(calls)


def _cached(path: Path, compute):
    if path.exists():
        return np.load(path)
    result = compute()
    np.save(path, result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "photo3d_harmonic")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--record", action="store_true", help="record the calls again")
    args = parser.parse_args()
    if args.record or not sorted(args.data.glob("call*.npz")):
        print(f"recording the fills of a 1080p conversion into {args.data} ...", flush=True)
        print(f"  {record(args.data)} calls", flush=True)
    paths = sorted(args.data.glob("call*.npz"), key=lambda p: int(p.stem[4:]))
    calls = [np.load(p) for p in paths]
    calls = [(c["values"], c["known"], c["domain"]) for c in calls]
    print("references (direct float64 solves, cached) ...", flush=True)
    converged, laplace = [], []
    for i, call in enumerate(calls):
        converged.append(_cached(args.data / f"converged{i}.npy", lambda call=call: exact_pyramid(*call)))
        laplace.append(_cached(args.data / f"laplace{i}.npy", lambda call=call: plain_laplace(*call)))

    solvers = {"old": old_harmonic_extend, "new": harmonic_extend}
    times = {name: [[] for _ in calls] for name in solvers}
    results = {}
    for _ in range(args.repeat):
        for i, (values, known, domain) in enumerate(calls):
            for name, solver in solvers.items():
                start = time.process_time()
                results[name, i] = solver(values, known, domain)
                times[name][i].append(time.process_time() - start)

    def errors(fill, reference, mask, data_range):
        error = np.abs(fill.astype(np.float64) - reference)[mask] / data_range * 100
        return error.mean(), error.max()

    header = (
        f"{'call':>4} {'unknown':>8} | {'CPU ms old':>10} {'new':>6} {'ratio':>5} | "
        f"{'vs converged, mean/max %: old':>30} {'new':>12} | {'vs plain Laplace: old':>22} {'new':>12}"
    )
    print(header)
    print("-" * len(header))
    totals = {"old": 0.0, "new": 0.0}
    weighted = {key: [0.0, 0] for key in ("old", "new")}
    for i, (values, known, domain) in enumerate(calls):
        mask = held(known, domain)
        data_range = float(values[known].max() - values[known].min()) or 1.0
        cpu = {name: min(times[name][i]) for name in solvers}
        for name in solvers:
            totals[name] += cpu[name]
        conv = {name: errors(results[name, i], converged[i], mask, data_range) for name in solvers}
        lap = {name: errors(results[name, i], laplace[i], mask, data_range) for name in solvers}
        for name in solvers:
            weighted[name][0] += conv[name][0] * mask.sum()
            weighted[name][1] += mask.sum()
        print(
            f"{i:>4} {int((domain & ~known).sum()):>8} | {cpu['old'] * 1e3:>10.1f} {cpu['new'] * 1e3:>6.1f} "
            f"{cpu['new'] / cpu['old']:>5.2f} | {conv['old'][0]:>24.2f}/{conv['old'][1]:<5.2f} "
            f"{conv['new'][0]:>6.2f}/{conv['new'][1]:<5.2f} | {lap['old'][0]:>16.2f}/{lap['old'][1]:<5.2f} "
            f"{lap['new'][0]:>6.2f}/{lap['new'][1]:<5.2f}"
        )
    print("-" * len(header))
    mean = {name: weighted[name][0] / max(weighted[name][1], 1) for name in solvers}
    print(
        f"{'all':>4} {'':>8} | {totals['old'] * 1e3:>10.1f} {totals['new'] * 1e3:>6.1f} "
        f"{totals['new'] / totals['old']:>5.2f} | {mean['old']:>24.2f} (mean over pixels) {mean['new']:>6.2f}"
    )


if __name__ == "__main__":
    main()
