"""Wall time of `esi run` with the default parameters, against its floor; sweep scaling.

Prints:
- `esi run` (every notebook executed with papermill and rendered to HTML), wall seconds;
- the floor: the same notebooks reduced to their parameters cell and their import lines,
  executed and rendered the same way (kernel start-up, imports and rendering: what no
  analysis can avoid), one notebook at a time and two at a time as `esi run` does;
- `esi sweep params/sweep_example.yaml` (8 grid points) on 1 and on 2 workers, and the speed-up.

Targets (issue 6): the whole run under 30 s on 2 cores and under twice the floor; the 8-point
sweep at least 1.7 times faster on 2 workers than on 1. Run: .venv/bin/python benchmarks/pipeline.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
ESI = [sys.executable, "-m", "esi.cli"]


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def floor_notebooks(folder: Path) -> None:
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


def run_floor(folder: Path, workers: int) -> float:
    """The floor notebooks through the same machinery as `esi run` (execute + render)."""
    import esi.pipeline as pipeline

    out = folder / f"out-{workers}"
    out.mkdir()
    jobs = [(n, folder / f"{n}.ipynb", out / f"{n}.ipynb", out / f"{n}.html")
            for n in pipeline.NOTEBOOKS]
    t = time.perf_counter()
    pipeline._run_notebooks(jobs, {}, pipeline._kernel_name(), 600, workers, lambda m: None)
    return time.perf_counter() - t


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        full = timed(ESI + ["run", "--out", str(tmp / "run")])
        floor_notebooks(tmp)
        floor1, floor2 = run_floor(tmp, 1), run_floor(tmp, 2)
        print(f"esi run (default parameters, 2 notebooks at a time): {full:6.1f} s")
        print(f"floor, one notebook at a time:                       {floor1:6.1f} s")
        print(f"floor, two notebooks at a time (as esi run):         {floor2:6.1f} s")
        print(f"ratio run / floor (one at a time):                   {full / floor1:6.2f}")
        print(f"ratio run / floor (two at a time):                   {full / floor2:6.2f}")
        one = timed(ESI + ["sweep", "params/sweep_example.yaml", "--workers", "1",
                           "--out", str(tmp / "s1")])
        two = timed(ESI + ["sweep", "params/sweep_example.yaml", "--workers", "2",
                           "--out", str(tmp / "s2")])
        same = (tmp / "s1" / "sweep.csv").read_bytes() == (tmp / "s2" / "sweep.csv").read_bytes()
        print(f"sweep, 8 points, 1 worker:          {one:6.1f} s")
        print(f"sweep, 8 points, 2 workers:         {two:6.1f} s")
        print(f"speed-up:                           {one / two:6.2f}  (target >= 1.7)")
        print(f"sweep.csv identical on 1 and 2 workers: {same}")
        # the points alone, without the command's start-up, imports and figure
        from esi.sweep import load_grid, sweep

        points, full = load_grid(ROOT / "params" / "sweep_example.yaml")
        sweep(points, full, workers=1, progress=False)  # warm the imports
        t = time.perf_counter()
        sweep(points, full, workers=1, progress=False)
        inner1 = time.perf_counter() - t
        t = time.perf_counter()
        sweep(points, full, workers=2, progress=False)
        inner2 = time.perf_counter() - t
        print(f"sweep() of the 8 points only, 1 / 2 workers:  {inner1:5.2f} / {inner2:5.2f} s, "
              f"speed-up {inner1 / inner2:4.2f}")


if __name__ == "__main__":
    main()
