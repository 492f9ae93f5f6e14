"""Timings of the synthetic registry and of SPRITE.

Prints: one SPRITE solution for n = 14 (the study's group size) with common and per-patient
bounds; ``generate_registry`` (the work of ``esi synth``, imports excluded) and the whole
``esi synth`` command (a fresh interpreter, imports included); the SPRITE audit of the
published table.

Run:  .venv/bin/python benchmarks/synth.py [--repeat 200]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from esi import audit  # noqa: E402
from esi.sprite import sprite  # noqa: E402
from esi.synthetic import generate_registry  # noqa: E402


def _time(fn, repeat: int) -> list[float]:
    out = []
    for i in range(repeat):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()

    base = np.array([8, 7.5, 6, 5, 9, 6.5, 7, 4.5, 8.5, 6, 5.5, 7, 6, 9.5])
    cases = [
        ("leg pain 2.36 (2.55), bounds -10..10", dict(lower=-10, upper=10, step=0.5)),
        ("leg pain 2.36 (2.55), per-patient bounds",
         dict(lower=np.maximum(base - 10, -3), upper=base, step=0.5)),
    ]
    for label, kw in cases:
        t = _time(lambda s, kw=kw: sprite(14, 2.36, 2.55, seed=s, **kw), args.repeat)
        print(f"SPRITE n=14, {label}: median {statistics.median(t) * 1e3:.2f} ms, "
              f"max {max(t) * 1e3:.2f} ms over {args.repeat}")
    t = _time(lambda s: sprite(14, 8.64, 11.36, lower=-40, upper=40, step=2.0,
                               fixed=[20.5, 22.5], seed=s), args.repeat)
    print(f"SPRITE n=14, ODI 8.64 (11.36) with two fixed values: median "
          f"{statistics.median(t) * 1e3:.2f} ms")

    t = _time(lambda s: generate_registry(), 3)
    print(f"generate_registry (default seed): median {statistics.median(t):.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "esi.cli", "synth", "--out",
                        str(Path(tmp) / "x.csv")], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        print(f"esi synth (fresh interpreter, imports included): "
              f"{time.perf_counter() - t0:.2f} s")
    t0 = time.perf_counter()
    audit.sprite_audit(audit.read_published(), k=200, seed=0)
    print(f"SPRITE audit of the published table (200 samples per mean/SD): "
          f"{time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
