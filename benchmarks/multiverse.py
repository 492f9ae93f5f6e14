"""Time the multiverse: number of specifications, wall time and peak memory.

Usage (from the project root)::

    .venv/bin/python benchmarks/multiverse.py [--workers 2] [--registry FILE]

Uses the eligible cohort of the synthetic registry (``esi.paths.SYNTHETIC_REGISTRY``) when it
exists, else a seeded stand-in with the same columns (480 controls, 14 cases). The issue's
target: at least 1,000 specifications in under 30 s on 2 cores.
"""

from __future__ import annotations

import argparse
import resource
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
    parser.add_argument("--registry", default=None)
    args = parser.parse_args()
    registry, source = _registry(args.registry)
    specs = specification_grid()
    start = time.perf_counter()
    table = multiverse(registry, specs, workers=args.workers)
    seconds = time.perf_counter() - start
    # ru_maxrss is in KiB on Linux: this process, and the largest finished worker
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    ok = int((table["status"] == "ok").sum())
    print(f"registry: {source} ({len(registry)} eligible patients)")
    print(f"specifications: {len(table)} ({ok} with a result), "
          f"{table.groupby(['covariate_set', 'distance', 'method', 'ratio', 'caliper', 'replace'], dropna=False).ngroups} matchings")
    print(f"workers: {args.workers}")
    print(f"wall time: {seconds:.1f} s ({1000 * seconds / len(table):.2f} ms per specification)")
    print(f"peak memory: {own:.0f} MiB main process, {children:.0f} MiB largest worker")


if __name__ == "__main__":
    main()
