"""Long fuzz run of the layer-package reader, with per-class statistics.

    .venv/bin/python scripts/fuzz_package.py --examples 15000 --seed 0

Each example copies a tiny real package (mesh or MPI), applies 1-3 mutations (``tests/package_fuzz.py``, the
module the CI test uses), reads it with ``core.package.read_package`` and ``python -m core validate
[--json]``, and classifies the result: rejected (PackageError, exit 5), accepted (and the fuzzer's own oracle
agrees), inconsistent (accepted, or disagreeing, although the package is not valid), crashed (any other
exception or exit code, or no answer within --timeout). Prints, per mutation class, the counts, the mean
and max time, and how far that class raised the peak RSS (and, with --trace-memory, tracemalloc's peak);
then the distinct crash signatures (exception, message head, innermost frame in core/) and the oracle's
problem codes, each with an example to replay (``--replay N`` rebuilds example N exactly and keeps it).
Then runs the resource cases of ``scripts/hostile_resources.py`` (bombs, huge manifests and configs, a 200 MB
worker line: each refused in its own process, with its peak memory and time; ``--no-resources`` skips them).
Exits 1 when anything crashed or was inconsistent, or a resource case broke its bounds.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.hostile_resources import print_rows as print_resource_rows  # noqa: E402
from scripts.hostile_resources import run_cases as run_resource_cases  # noqa: E402
from tests.package_fuzz import (  # noqa: E402
    FUZZER_ERROR,
    MUTATION_NAMES,
    OUTCOMES,
    Case,
    RandomDraw,
    make_seed_packages,
    run_case,
)


@dataclass
class ClassStats:
    counts: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    max_seconds: float = 0.0
    rss_growth_kb: int = 0
    traced_peak: int = 0

    def add(self, case: Case) -> None:
        outcome = case.outcome
        self.counts[outcome.kind] += 1
        self.seconds += outcome.seconds
        self.max_seconds = max(self.max_seconds, outcome.seconds)
        self.rss_growth_kb = max(self.rss_growth_kb, outcome.rss_growth_kb)
        self.traced_peak = max(self.traced_peak, outcome.traced_peak)

    @property
    def tried(self) -> int:
        return sum(self.counts.values())


@dataclass
class Finding:
    """A crash signature or an oracle problem code, with where it was seen."""

    count: int = 0
    classes: Counter = field(default_factory=Counter)
    example: int = -1
    detail: str = ""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=15000, help="inputs to try (default 15000)")
    parser.add_argument("--seed", type=int, default=0, help="base seed; example N uses random seed 'SEED:N'")
    parser.add_argument("--min-ops", type=int, default=1, help="fewest mutations per input (default 1)")
    parser.add_argument("--max-ops", type=int, default=3, help="most mutations per input (default 3)")
    parser.add_argument("--only", action="append", choices=MUTATION_NAMES, help="use only this class (repeatable)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one input may take (default 60)")
    parser.add_argument("--trace-memory", action="store_true", help="also record tracemalloc's peak (slower)")
    parser.add_argument("--keep", metavar="DIR", help="keep crashed and inconsistent inputs under DIR")
    parser.add_argument("--replay", type=int, metavar="N", help="rebuild only example N, keep and describe it")
    parser.add_argument("--json", metavar="FILE", help="also write the statistics and findings as JSON")
    parser.add_argument("--progress", type=int, default=500, help="a progress line every N inputs (0: none)")
    parser.add_argument(
        "--resources",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="then run the resource cases of scripts/hostile_resources.py (default on)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="photo3d-fuzz-"))
    keep = Path(args.keep) if args.keep else None
    try:
        print(f"making seed packages in {scratch} ...", file=sys.stderr)
        seeds = make_seed_packages(scratch / "seeds")
        if args.replay is not None:
            folder = keep or Path(tempfile.mkdtemp(prefix="photo3d-fuzz-replay-"))
            case = _case(args, seeds, folder, args.replay, keep_failures=True, keep_all=True)
            print(case.describe())
            for problem in case.outcome.problems:
                print(f"  {problem}")
            return 1 if case.outcome.kind in ("crashed", "inconsistent") else 0
        return _run(args, seeds, scratch, keep)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _case(args, seeds, workdir: Path, index: int, keep_failures: bool, keep_all: bool = False) -> Case:
    draw = RandomDraw(random.Random(f"{args.seed}:{index}"))
    return run_case(
        seeds,
        workdir,
        draw,
        args.min_ops,
        args.max_ops,
        only=args.only,
        keep_failures=keep_failures,
        timeout=args.timeout,
        trace_memory=args.trace_memory,
        keep_all=keep_all,
    )


def _run(args, seeds, scratch: Path, keep: Path | None) -> int:
    stats: dict[str, ClassStats] = defaultdict(ClassStats)
    total = ClassStats()
    crashes: dict[str, Finding] = defaultdict(Finding)
    problems: dict[str, Finding] = defaultdict(Finding)
    errors: dict[str, Finding] = defaultdict(Finding)
    started = time.perf_counter()
    done = 0
    try:
        for index in range(args.examples):
            case = _case(args, seeds, keep or scratch / "cases", index, keep_failures=keep is not None)
            done += 1
            total.add(case)
            for name in case.classes:
                stats[name].add(case)
            outcome = case.outcome
            if outcome.kind == "crashed":
                _note(crashes[outcome.signature], case, index, case.describe())
            for name, what in case.mutations:
                if what.startswith(FUZZER_ERROR):
                    _note(errors[f"{name}: {what[len(FUZZER_ERROR) :].strip()[:100]}"], case, index, case.describe())
            for code in outcome.codes if outcome.kind == "inconsistent" else []:
                detail = next(p for p in outcome.problems if p.split(":", 1)[0] == code)
                _note(problems[code], case, index, detail)
            if args.progress and done % args.progress == 0:
                print(
                    f"{done}/{args.examples} inputs, {time.perf_counter() - started:.0f} s, {_summary(total)}",
                    file=sys.stderr,
                )
    except KeyboardInterrupt:
        print(f"interrupted after {done} inputs", file=sys.stderr)
    elapsed = time.perf_counter() - started
    print(_report(stats, total, crashes, problems, done, elapsed, args))
    if errors:
        print(f"\nfuzzer errors (bugs of tests/package_fuzz.py, not of the reader): {len(errors)}")
        for title, finding in sorted(errors.items(), key=lambda item: -item[1].count):
            print("\n".join(_finding(title, finding)))
    report = _as_json(stats, total, crashes, problems, done, elapsed, args)
    resources_ok = True
    if args.resources:
        rows, resources_ok = run_resource_cases()
        print_resource_rows(rows)
        report["resource_cases"] = rows
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    failed = total.counts["crashed"] or total.counts["inconsistent"] or errors or not resources_ok
    return 1 if failed else 0


def _note(finding: Finding, case: Case, index: int, detail: str) -> None:
    finding.count += 1
    finding.classes.update(case.classes)
    if finding.example < 0:
        finding.example, finding.detail = index, detail


def _summary(stats: ClassStats) -> str:
    return ", ".join(f"{kind} {stats.counts[kind]}" for kind in OUTCOMES)


def _report(stats, total, crashes, problems, done, elapsed, args) -> str:
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        f"photo3d package fuzz: {done} inputs, seed {args.seed}, {args.min_ops}-{args.max_ops} mutations each, "
        f"{elapsed:.0f} s, process peak RSS {peak_mb:.0f} MB",
        "(an input with several mutation classes counts in each of their rows)",
        "",
    ]
    header = f"{'class':<20} {'tried':>6} {'rejected':>8} {'accepted':>8} {'inconsist':>9} {'crashed':>7}"
    header += f" {'mean ms':>8} {'max ms':>8} {'+RSS MB':>8}"
    if args.trace_memory:
        header += f" {'traced MB':>9}"
    lines.append(header)
    lines.append("-" * len(header))
    for name in sorted(stats, key=lambda n: MUTATION_NAMES.index(n)):
        lines.append(_row(name, stats[name], args.trace_memory))
    lines.append("-" * len(header))
    lines.append(_row("all inputs", total, args.trace_memory))
    lines.append("")
    lines.append(f"crash signatures: {len(crashes)} distinct, {total.counts['crashed']} inputs")
    for signature, finding in sorted(crashes.items(), key=lambda item: -item[1].count):
        lines += _finding(signature, finding)
    lines.append("")
    lines.append(f"inconsistent (oracle problem codes): {len(problems)} codes, {total.counts['inconsistent']} inputs")
    for code, finding in sorted(problems.items(), key=lambda item: -item[1].count):
        lines += _finding(code, finding)
    return "\n".join(lines)


def _row(name: str, s: ClassStats, traced: bool) -> str:
    mean = 1000 * s.seconds / s.tried if s.tried else 0.0
    row = f"{name:<20} {s.tried:>6} {s.counts['rejected']:>8} {s.counts['accepted']:>8} "
    row += f"{s.counts['inconsistent']:>9} {s.counts['crashed']:>7} {mean:>8.1f} {1000 * s.max_seconds:>8.1f} "
    row += f"{s.rss_growth_kb / 1024:>8.1f}"
    if traced:
        row += f" {s.traced_peak / 2**20:>9.1f}"
    return row


def _finding(title: str, finding: Finding) -> list[str]:
    classes = ", ".join(f"{name} {count}" for name, count in finding.classes.most_common(4))
    return [
        f"  {finding.count:>5}  {title}",
        f"         classes: {classes}",
        f"         e.g. #{finding.example}: {finding.detail[:220]}",
    ]


def _as_json(stats, total, crashes, problems, done, elapsed, args) -> dict:
    def row(s: ClassStats) -> dict:
        return {
            "tried": s.tried,
            **{kind: s.counts[kind] for kind in OUTCOMES},
            "mean_seconds": s.seconds / s.tried if s.tried else 0.0,
            "max_seconds": s.max_seconds,
            "rss_growth_kb": s.rss_growth_kb,
            "traced_peak_bytes": s.traced_peak,
        }

    def found(items: dict[str, Finding]) -> dict:
        return {
            key: {"count": f.count, "classes": dict(f.classes), "example": f.example, "detail": f.detail}
            for key, f in items.items()
        }

    return {
        "inputs": done,
        "seed": args.seed,
        "seconds": elapsed,
        "classes": {name: row(s) for name, s in stats.items()},
        "total": row(total),
        "crash_signatures": found(crashes),
        "inconsistent_codes": found(problems),
    }


if __name__ == "__main__":
    sys.exit(main())
