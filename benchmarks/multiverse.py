"""Time the multiverse: number of specifications, wall time and peak memory.

Usage (from the project root)::

    .venv/bin/python benchmarks/multiverse.py [--workers 2] [--repeat 5] [--registry FILE]

Uses the eligible cohort of the synthetic registry (``esi.paths.SYNTHETIC_REGISTRY``) when it
exists, else a seeded stand-in with the same columns (480 controls, 14 cases). Targets: the
default grid (4,320 specifications from 288 matchings) in under 6 s on 1 worker and under 4 s
on 2, because notebook 04 runs it inside ``esi run``. The machine may be shared: the minimum
and the median of ``--repeat`` runs are printed.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

from esi.paths import SYNTHETIC_REGISTRY, resolve
from esi.sensitivity.multiverse import multiverse, specification_grid


def _registry(path):
    if path is None and not SYNTHETIC_REGISTRY.exists():
        from esi.sensitivity._example import example_registry

        return example_registry(), "seeded stand-in (esi.sensitivity._example, 494 patients)"
    from esi.cohort import define_cohort
    from esi.io import read_registry

    file = resolve(path) if path else SYNTHETIC_REGISTRY
    return define_cohort(read_registry(file)).eligible, str(file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--registry", default=None)
    args = parser.parse_args()
    registry, source = _registry(args.registry)
    specs = specification_grid()
    times = []
    for _ in range(max(1, args.repeat)):
        start = time.perf_counter()
        table = multiverse(registry, specs, workers=args.workers)
        times.append(time.perf_counter() - start)
    # ru_maxrss is in KiB on Linux: this process, and the largest finished worker
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    ok = int((table["status"] == "ok").sum())
    matchings = table.groupby(["covariate_set", "distance", "method", "ratio", "caliper",
                               "replace"], dropna=False).ngroups
    print(f"registry: {source} ({len(registry)} eligible patients)")
    print(f"specifications: {len(table)} ({ok} with a result), {matchings} matchings")
    print(f"workers: {args.workers}")
    best, median = min(times), statistics.median(times)
    print(f"wall time over {len(times)} runs: min {best:.2f} s, median {median:.2f} s "
          f"({1000 * best / len(table):.2f} ms per specification at the minimum)")
    print(f"peak memory: {own:.0f} MiB main process, {children:.0f} MiB largest worker")


if __name__ == "__main__":
    main()
