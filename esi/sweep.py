"""Parameter sweeps: one analysis per grid point, in parallel, gathered into one table.

A grid file (YAML) holds any of:

``grid``
    parameter name -> list of values; every combination is one point (Cartesian product,
    in the order the names are written).
``runs``
    a list of parameter sets, each one point (added after the grid's points).
``params``
    a base parameter file the points vary (default ``params/default.yaml``; ``--params``
    on the command line wins).

Each point runs :func:`summarise` (cohort, match and outcome comparisons through
:class:`esi.pipeline.Analysis`, without notebooks or reports) in its own process: a local
process pool (``--workers``, default the CPU count) or a Dask distributed cluster
(``--scheduler ADDRESS``, through its ``concurrent.futures`` executor). A point that fails is
reported in its row (``status = "error"`` and the message) and does not stop the others.
``sweep.csv`` is sorted by point and holds no timings, so the same grid gives the same bytes.
"""

from __future__ import annotations

import itertools
import os
import sys
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from esi.params import DEFAULTS, ParameterError, check_params, load_params

__all__ = ["expand_grid", "load_grid", "summarise", "sweep", "sweep_cli", "SUMMARY_COLUMNS"]

#: Outcome rows summarised per point: (outcome, timepoint in weeks).
SUMMARY_OUTCOMES = (("leg_pain_reduction", 4), ("leg_pain_reduction", 12),
                    ("positive_outcome", 4), ("positive_outcome", 12))

#: Result columns of a sweep row, after the parameter columns.
SUMMARY_COLUMNS = (
    ["point", "status", "error", "n_cases_matched", "n_controls_matched", "max_abs_smd"]
    + [f"{o}_{t}w_{s}" for o, t in SUMMARY_OUTCOMES
       for s in ("estimate", "ci_low", "ci_high", "p_value")]
)


def expand_grid(spec: dict[str, Any], source: str = "grid") -> list[dict[str, Any]]:
    """The parameter sets of a grid specification (see the module docstring).

    Raises
    ------
    ValueError
        For a grid value that is not a non-empty list, an unknown key, or no point at all.
    """
    unknown = set(spec) - {"grid", "runs", "params"}
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}; a grid file "
                         "holds 'grid', 'runs' and 'params'")
    points: list[dict[str, Any]] = []
    grid = spec.get("grid") or {}
    if not isinstance(grid, dict):
        raise ValueError(f"{source}: 'grid' must map parameter names to lists of values")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"{source}: grid parameter {name!r} must be a non-empty list")
    if grid:
        names = list(grid)
        points += [dict(zip(names, combo, strict=True))
                   for combo in itertools.product(*(grid[n] for n in names))]
    runs = spec.get("runs") or []
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise ValueError(f"{source}: 'runs' must be a list of parameter sets")
    points += [dict(r) for r in runs]
    if not points:
        raise ValueError(f"{source}: no grid point (give 'grid' and/or 'runs')")
    return points


def load_grid(path: str | os.PathLike[str], base: str | None = None
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Read a grid file; return (the varied values of each point, each point's full checked
    parameters). Every point is checked before anything runs."""
    from esi.paths import resolve

    p = resolve(path)
    try:
        spec = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ParameterError(f"{p}: cannot read the grid file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ParameterError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(spec, dict):
        raise ParameterError(f"{p}: a grid file maps 'grid', 'runs' and 'params'")
    try:
        points = expand_grid(spec, str(p))
    except ValueError as exc:
        raise ParameterError(str(exc)) from None
    base_params = load_params(base or spec.get("params"))
    full = [check_params({**base_params, **pt}, source=f"{p} point {i + 1}")
            for i, pt in enumerate(points)]
    return points, full


def summarise(params: dict[str, Any]) -> dict[str, Any]:
    """Run the analysis for one parameter set and return its summary row.

    Returns
    -------
    dict
        ``status`` ("ok" or "error"), ``error`` (message or empty), ``n_cases_matched``,
        ``n_controls_matched``, ``max_abs_smd`` (largest absolute SMD after matching over the
        covariate terms, distance excluded), and for the primary outcome
        (``leg_pain_reduction``) and the positive outcome at 4 and 12 weeks:
        ``<outcome>_<t>w_estimate`` (mean difference or risk difference, cases minus
        controls), ``_ci_low``, ``_ci_high``, ``_p_value``.
    """
    from esi.pipeline import Analysis

    row: dict[str, Any] = {c: float("nan") for c in SUMMARY_COLUMNS[3:]}
    try:
        analysis = Analysis(params, persist=False)
        m = analysis.match()
        sizes = m.sample_sizes()
        bal = m.balance(include_distance=False)
        out = analysis.outcomes().set_index(["outcome", "timepoint_weeks"])
        row.update(n_cases_matched=int(sizes.loc["Matched", "treated"]),
                   n_controls_matched=int(sizes.loc["Matched", "control"]),
                   max_abs_smd=float(bal["smd_after"].abs().max()))
        for o, t in SUMMARY_OUTCOMES:
            r = out.loc[(o, t)]
            for s in ("estimate", "ci_low", "ci_high", "p_value"):
                row[f"{o}_{t}w_{s}"] = float(r[s])
        row.update(status="ok", error="")
    except Exception as exc:  # a failing point is reported in its row, not raised
        row.update(status="error", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
    return row


def _run_point(args: tuple[int, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    index, params = args
    return index, summarise(params)


def _executor(workers: int | None, scheduler: str | None,
              preload: list[dict[str, Any]]) -> tuple[Executor, Any]:
    if scheduler:
        from distributed import Client

        client = Client(scheduler)
        return client.get_executor(pure=False), client
    import multiprocessing as mp

    # Forked workers inherit what the parent holds: the analysis modules, and the registry
    # read once here (esi.pipeline keeps the last in-memory read).
    import esi.compare  # noqa: F401
    import esi.matching  # noqa: F401
    from esi.pipeline import Analysis

    for params in {p["data_path"]: p for p in preload}.values():
        try:
            Analysis(params, persist=False).registry()
        except Exception:  # reported per point when the points run
            pass

    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    return ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1,
                               mp_context=ctx), None


def sweep(points: list[dict[str, Any]], full: list[dict[str, Any]], *,
          workers: int | None = None, scheduler: str | None = None,
          progress: bool = True) -> pd.DataFrame:
    """Run every point and gather one row each.

    Parameters
    ----------
    points
        The varied values of each point (become the leading columns).
    full
        Each point's complete checked parameters (what runs).
    workers
        Local processes (default: the CPU count). Ignored with ``scheduler``.
    scheduler
        Address of a Dask distributed scheduler; the points then run on its workers.
    progress
        Show a progress bar on standard error.

    Returns
    -------
    pandas.DataFrame
        One row per point, in point order: the varied parameters, then
        :data:`SUMMARY_COLUMNS`.
    """
    from tqdm import tqdm

    if workers is not None and workers < 1:
        raise ValueError(f"workers must be 1 or more, got {workers}")
    varied = list(dict.fromkeys(k for pt in points for k in pt))
    rows: dict[int, dict[str, Any]] = {}
    bar = tqdm(total=len(full), desc="sweep", unit="point", disable=not progress,
               file=sys.stderr)
    first = 0
    if scheduler is None:
        # The first point runs here, before the workers are forked: it warms every lazy
        # import and cache once, and the forked workers inherit them instead of each
        # paying for them again.
        rows[0] = summarise(full[0])
        bar.update(1)
        first = 1
    executor, client = _executor(workers, scheduler, full)
    try:
        futures = [executor.submit(_run_point, (i, full[i])) for i in range(first, len(full))]
        for fut in as_completed(futures):
            i, row = fut.result()
            rows[i] = row
            bar.update(1)
        bar.close()
    finally:
        executor.shutdown(wait=True)
        if client is not None:
            client.close()
    table = [{**{k: _cell(full[i][k]) for k in varied}, "point": i + 1, **rows[i]}
             for i in range(len(points))]
    return pd.DataFrame(table, columns=varied + SUMMARY_COLUMNS)


def _cell(v: Any) -> Any:
    if isinstance(v, list):
        return "+".join(map(str, v)) if v else "none"
    return "none" if v is None else v


def write_sweep(table: pd.DataFrame, out: Path) -> tuple[Path, Path]:
    """Write ``sweep.csv`` and ``specification_curve.png`` into ``out`` (atomically)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from esi.io import atomic_write
    from esi.plots.sensitivity import specification_curve

    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "sweep.csv"
    with atomic_write(csv_path) as fh:
        table.to_csv(fh, index=False, float_format="%.10g", lineterminator="\n")
    fig = specification_curve(table, outcome="leg_pain_reduction_4w",
                              choices=[c for c in table.columns if c in DEFAULTS],
                              ylabel="Leg-pain reduction, 4 weeks\n(cases - controls)")
    png = out / "specification_curve.png"
    with atomic_write(png, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return csv_path, png


def sweep_cli(grid: str, workers: int | None, scheduler: str | None, out: str | None,
              params: str | None = None) -> int:
    """``esi sweep``: returns 0 when every point ran, 1 when any failed, 2 for bad input."""
    from esi.paths import REPORTS_DIR

    try:
        points, full = load_grid(grid, params)
    except ParameterError as exc:
        print(f"esi sweep: {exc}", file=sys.stderr)
        return 2
    try:
        table = sweep(points, full, workers=workers, scheduler=scheduler)
    except ValueError as exc:
        print(f"esi sweep: {exc}", file=sys.stderr)
        return 2
    target = Path(out) if out else REPORTS_DIR / f"sweep-{Path(grid).stem}"
    csv_path, png = write_sweep(table, target)
    failed = table[table["status"] != "ok"]
    for _, r in failed.iterrows():
        print(f"esi sweep: point {r['point']} failed: {r['error']}", file=sys.stderr)
    print(f"{len(table) - len(failed)} of {len(table)} point(s) ran; wrote {csv_path} and {png}")
    return 1 if len(failed) else 0
