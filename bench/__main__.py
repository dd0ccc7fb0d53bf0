"""Run the benchmarks, write the results file and rewrite the benchmark section of BENCHMARKS.md.

Usage: python -m bench [--runs N] [--sizes 10,50,200] [--shapes chain,fanout,mixed] [--skip PART] ...
`make bench` runs it with the defaults below; see `python -m bench --help`.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from bench.graphs import SHAPES
from bench.report import update_markdown
from bench.suite import Options, run_benchmarks
from bench.tools import PROJECT_DIR

PARTS = ("seed", "peer", "scale")


def _numbers(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(item) for item in text.split(",") if item)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected sizes of at least 1, got {text!r}")
    return sizes


def _shapes(text: str) -> tuple[str, ...]:
    shapes = tuple(item for item in text.split(",") if item)
    unknown = [shape for shape in shapes if shape not in SHAPES]
    if unknown or not shapes:
        raise argparse.ArgumentTypeError(f"unknown shape in {text!r}; use a comma-separated list of {', '.join(SHAPES)}")
    return shapes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])

    # What to measure.
    parser.add_argument("--runs", type=int, default=3, help="Repetitions of every measurement; figures are medians (default 3).")
    parser.add_argument(
        "--seconds-per-minute",
        type=float,
        default=1.0,
        help="Seconds of sleep per expected build minute of the seed graph (default 1).",
    )
    parser.add_argument("--sizes", type=_numbers, default=(10, 50, 200), help="Image counts of the scale graphs (default 10,50,200).")
    parser.add_argument("--shapes", type=_shapes, default=SHAPES, help=f"Scale graph shapes (default {','.join(SHAPES)}).")
    parser.add_argument(
        "--skip", action="append", choices=PARTS, default=[], help="Leave out a part (peer is part of the seed graph); repeat for more."
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="MINUTES",
        help="Wait up to this many minutes for a load average below 0.7 and no other build or test (default 0).",
    )

    # Where the images go.
    parser.add_argument("--registry", default="localhost:5000", help="Registry that receives the images (default localhost:5000).")
    parser.add_argument(
        "--base",
        default="localhost:5000/fixtures/busybox:1",
        help="Base of every root image, which `make fixture-base` pushes (default localhost:5000/fixtures/busybox:1).",
    )

    # Where the figures go.
    parser.add_argument("--results", type=Path, default=PROJECT_DIR / "bench" / "results.json", help="Results file to write.")
    parser.add_argument("--markdown", type=Path, default=PROJECT_DIR / "BENCHMARKS.md", help="Markdown file whose benchmark section to rewrite.")
    parser.add_argument("--keep-work", action="store_true", help="Keep the temporary folder with projects, scripts and logs.")

    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="bench: %(message)s")
    args = parse_args(argv)
    # The private buildkitd runs in a session of its own and would outlive a
    # terminated harness; exiting on SIGTERM runs the cleanup that stops it.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    options = Options(
        runs=args.runs,
        seconds_per_minute=args.seconds_per_minute,
        shapes=args.shapes,
        sizes=args.sizes,
        parts=tuple(part for part in PARTS if part not in args.skip),
        registry=args.registry,
        base=args.base,
        keep_work=args.keep_work,
        wait_quiet_minutes=args.wait_quiet,
    )
    results = run_benchmarks(options)

    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    update_markdown(args.markdown, results)
    logging.getLogger("bench").info("wrote %s and %s", args.results, args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
