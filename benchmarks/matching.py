"""Wall time and peak memory of esi.match on synthetic registries of 10k, 200k and 1M rows.

Each registry has 10% treated units and six covariates (four continuous, two binary); the
match is 1:1 nearest neighbour on the logit of the propensity score, caliper 0.2 SD, without
replacement - the propensity model fit included. If Rscript with MatchIt >= 4.5.4 is found
(set R_LIBS to a private library if needed), MatchIt is timed on the same data the same way
(model fit and matching; reading the CSV excluded), once.

The machine may be shared and noisy: every esi timing is repeated (``--repeat``, default 5)
and reported as the minimum and the median.

Mahalanobis matching (1:1 on the six covariates, ``distance="mahalanobis"``; it compares every
treated unit with every control) is timed on smaller registries (``--mahalanobis-sizes``,
default 5,000 and 20,000 rows; none with ``--mahalanobis-sizes``), against MatchIt's
``distance = "mahalanobis"`` when R is available.

Run:  .venv/bin/python benchmarks/matching.py [--sizes 10000 200000 1000000] [--repeat 5] [--no-r]
          [--mahalanobis-sizes 5000 20000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import esi  # noqa: E402

COVARIATES = ["x1", "x2", "x3", "x4", "b1", "b2"]
R_SCRIPT = """
suppressPackageStartupMessages(library(MatchIt))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
if (packageVersion("MatchIt") < "4.5.4") stop("MatchIt >= 4.5.4 needed (caliper bug #163)")
t <- system.time(m <- if (length(args) > 1 && args[2] == "mahalanobis")
  matchit(treat ~ x1 + x2 + x3 + x4 + b1 + b2, data = d, method = "nearest",
          distance = "mahalanobis") else
  matchit(treat ~ x1 + x2 + x3 + x4 + b1 + b2, data = d, method = "nearest",
          distance = "glm", link = "linear.logit", caliper = 0.2))[["elapsed"]]
cat(sprintf("%s %.3f %d\\n", packageVersion("MatchIt"), t, sum(m$weights[d$treat == 1] > 0)))
"""


def registry(n: int, seed: int = 20250) -> pd.DataFrame:
    """Synthetic registry: treatment depends on all six covariates, about 10% treated."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    b = rng.binomial(1, [0.4, 0.25], size=(n, 2)).astype(float)
    eta = -2.45 + x @ np.array([0.5, -0.3, 0.2, 0.1]) + b @ np.array([0.4, -0.3])
    treat = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    data = pd.DataFrame(np.column_stack([x, b]), columns=COVARIATES)
    data.insert(0, "treat", treat)
    data.index = pd.Index([f"P{i:07d}" for i in range(n)], name="patient_id")
    return data


def run(data: pd.DataFrame) -> esi.MatchResult:
    return esi.match(data, "treat", COVARIATES, distance="logit", caliper=0.2, ratio=1)


def run_mahalanobis(data: pd.DataFrame) -> esi.MatchResult:
    return esi.match(data, "treat", COVARIATES, distance="mahalanobis", caliper=None, ratio=1)


def time_matchit(data: pd.DataFrame, distance: str = "glm") -> str | None:
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        csv, script = Path(tmp) / "d.csv", Path(tmp) / "bench.R"
        data.to_csv(csv, index=False)
        script.write_text(R_SCRIPT)
        out = subprocess.run(["Rscript", str(script), str(csv), distance], capture_output=True,
                             text=True)
    if out.returncode != 0:
        return None
    version, seconds, matched = out.stdout.split()
    return f"MatchIt {version}: {float(seconds):6.2f} s, {int(matched):,} matched treated"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 200_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=5, help="timings per size (min, median)")
    parser.add_argument("--no-r", action="store_true", help="skip timing R MatchIt")
    parser.add_argument("--mahalanobis-sizes", type=int, nargs="*", default=[5_000, 20_000],
                        help="registry sizes for Mahalanobis matching (none: skip)")
    args = parser.parse_args()
    if args.repeat < 1:
        raise ValueError(f"--repeat must be at least 1, got {args.repeat}")
    run(registry(2_000))  # warm-up (imports, first calls)
    print(f"{'rows':>10} {'treated':>8} {'matched':>8} {'wall s min':>10} {'median':>7} "
          f"{'fit s min':>9} {'median':>7} {'peak MB':>8}")
    for n in args.sizes:
        data = registry(n)
        walls, fits = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            res = run(data)
            walls.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            esi.propensity.fit_propensity(data, "treat", COVARIATES, distance="logit")
            fits.append(time.perf_counter() - t0)
        tracemalloc.start()
        run(data)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        n_matched = int(res.sample_sizes().loc["Matched", "treated"])
        print(f"{n:>10,} {int(data.treat.sum()):>8,} {n_matched:>8,} {min(walls):10.2f} "
              f"{np.median(walls):7.2f} {min(fits):9.2f} {np.median(fits):7.2f} {peak:8.0f}",
              flush=True)
        if not args.no_r:
            r = time_matchit(data)
            print(f"{'':>10} {r or 'R MatchIt >= 4.5.4 not available: not timed'}", flush=True)
    print(f"wall s: esi.match incl. the model fit; fit s: fit_propensity alone (min and median "
          f"of {args.repeat} runs); peak MB: Python-side peak allocation (tracemalloc) during "
          "esi.match")
    if args.mahalanobis_sizes:
        run_mahalanobis(registry(2_000))  # warm-up
        print(f"\nMahalanobis matching (1:1 on the six covariates, no caliper)\n"
              f"{'rows':>10} {'treated':>8} {'matched':>8} {'wall s min':>10} {'median':>7}")
    for n in args.mahalanobis_sizes:
        data = registry(n)
        walls = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            res = run_mahalanobis(data)
            walls.append(time.perf_counter() - t0)
        n_matched = int(res.sample_sizes().loc["Matched", "treated"])
        print(f"{n:>10,} {int(data.treat.sum()):>8,} {n_matched:>8,} {min(walls):10.2f} "
              f"{np.median(walls):7.2f}", flush=True)
        if not args.no_r:
            r = time_matchit(data, "mahalanobis")
            print(f"{'':>10} {r or 'R MatchIt >= 4.5.4 not available: not timed'}", flush=True)


if __name__ == "__main__":
    main()
