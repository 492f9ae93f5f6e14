"""Wall time of `esi run` with the default parameters, against its floor; sweep scaling.

Prints:
- `esi run` (every notebook executed with papermill and rendered to HTML), wall seconds, two
  notebooks at a time (the default) and one at a time (`--workers 1`);
- the floor: the same command on the same notebooks reduced to their parameters cell and their
  import lines (interpreter and command start-up, registry validation, kernel start-up,
  imports, rendering, provenance: what no analysis can avoid), two at a time and one at a time;
- `esi sweep params/sweep_example.yaml` (8 grid points) on 1 and on 2 workers, and the
  speed-up: the summary sweep (cohort, match and comparisons per point) and the report sweep
  (`--reports`: every notebook rendered for every point, as a papermill parameter sweep);
- the summary sweep's points alone (`esi.sweep.sweep`, without the command's start-up and
  figure).

Each figure is the best of `--repeat` runs (default 2; the machine is shared and noisy).

Targets (issue 6): the whole run under 30 s on 2 cores and under twice the floor; the 8-point
sweep at least 1.7 times faster on 2 workers than on 1.

Run: .venv/bin/python benchmarks/pipeline.py [--repeat N] [--no-report-sweep]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
ESI = [sys.executable, "-m", "esi.cli"]

# `esi run` with the notebooks folder swapped for the floor notebooks. They write no result
# file, so the run ends with exit code 1 ("the notebooks did not write ...") after everything
# else - kernels, imports, rendering, provenance - has run as in a real run.
FLOOR_RUN = """
import sys
from pathlib import Path
import esi.pipeline
from esi.cli import main
esi.pipeline.NOTEBOOKS_DIR = Path(sys.argv[1])
sys.exit(main(["run", "--out", sys.argv[2], "--workers", sys.argv[3]]))
"""


def timed(cmd: list[str], ok: tuple[int, ...] = (0,)) -> float:
    t = time.perf_counter()
    rc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t
    if rc.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} exited {rc.returncode}:\n{rc.stderr}")
    return seconds


def best(repeat: int, cmd: list[str], ok: tuple[int, ...] = (0,)) -> float:
    return min(timed(cmd, ok) for _ in range(repeat))


def floor_notebooks(folder: Path) -> None:
    """Write the floor notebooks: each notebook's parameters cell and its import lines."""
    from esi.pipeline import NOTEBOOKS

    for name in NOTEBOOKS:
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        cells = []
        for c in nb.cells:
            if c.cell_type != "code":
                continue
            if "parameters" in c.metadata.get("tags", []):
                cells.append(c)
                continue
            imports = [line for line in c.source.splitlines()
                       if line.startswith(("import ", "from "))]
            if imports:
                c.source = "\n".join(imports)
                c.outputs = []
                cells.append(c)
        nb.cells = cells
        nbformat.write(nb, folder / f"{name}.ipynb")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="runs per figure (best taken)")
    parser.add_argument("--no-report-sweep", action="store_true",
                        help="skip the report sweep (about 4 minutes on 2 cores)")
    args = parser.parse_args()
    n = args.repeat
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        floor_dir = tmp / "floor"
        floor_dir.mkdir()
        floor_notebooks(floor_dir)
        run2 = best(n, ESI + ["run", "--out", str(tmp / "run")])
        run1 = best(n, ESI + ["run", "--workers", "1", "--out", str(tmp / "run")])
        floor2 = best(n, [sys.executable, "-c", FLOOR_RUN, str(floor_dir), str(tmp / "f"), "2"],
                      ok=(1,))
        floor1 = best(n, [sys.executable, "-c", FLOOR_RUN, str(floor_dir), str(tmp / "f"), "1"],
                      ok=(1,))
        print(f"esi run, two notebooks at a time (default):   {run2:6.1f} s")
        print(f"  floor, two at a time:                       {floor2:6.1f} s   "
              f"ratio {run2 / floor2:4.2f} (target < 2)")
        print(f"esi run --workers 1, one notebook at a time:  {run1:6.1f} s")
        print(f"  floor, one at a time:                       {floor1:6.1f} s   "
              f"ratio {run1 / floor1:4.2f}")

        sweep = ESI + ["sweep", "params/sweep_example.yaml"]
        one = best(n, sweep + ["--workers", "1", "--out", str(tmp / "s1")])
        two = best(n, sweep + ["--workers", "2", "--out", str(tmp / "s2")])
        same = (tmp / "s1" / "sweep.csv").read_bytes() == (tmp / "s2" / "sweep.csv").read_bytes()
        print(f"summary sweep, 8 points, 1 / 2 workers:       {one:6.1f} / {two:4.1f} s   "
              f"speed-up {one / two:4.2f}; sweep.csv identical: {same}")

        from esi.sweep import load_grid
        from esi.sweep import sweep as sweep_points

        points, full = load_grid(ROOT / "params" / "sweep_example.yaml")
        sweep_points(points, full, workers=1, progress=False)  # warm the imports
        inner = {}
        for w in (1, 2):
            inner[w] = float("inf")
            for _ in range(n):
                t = time.perf_counter()
                sweep_points(points, full, workers=w, progress=False)
                inner[w] = min(inner[w], time.perf_counter() - t)
        print(f"  its 8 points alone, 1 / 2 workers:          {inner[1]:6.2f} / {inner[2]:4.2f} s"
              f"   speed-up {inner[1] / inner[2]:4.2f}")

        if not args.no_report_sweep:
            one = timed(sweep + ["--reports", "--workers", "1", "--out", str(tmp / "r1")])
            two = timed(sweep + ["--reports", "--workers", "2", "--out", str(tmp / "r2")])
            same = ((tmp / "r1" / "sweep.csv").read_bytes()
                    == (tmp / "r2" / "sweep.csv").read_bytes())
            print(f"report sweep, 8 points, 1 / 2 workers:        {one:6.1f} / {two:4.1f} s   "
                  f"speed-up {one / two:4.2f} (target >= 1.7); sweep.csv identical: {same}")


if __name__ == "__main__":
    main()
