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
process pool (``--workers``, default :func:`esi.processes.default_workers`: 2, or 1 on a
single core, as ``esi run``) or a Dask distributed cluster
(``--scheduler ADDRESS``, through its ``concurrent.futures`` executor). A point that fails is
reported in its row (``status = "error"`` and the message) and does not stop the others.
``sweep.csv`` is sorted by point and holds no timings, so the same grid gives the same bytes.

With ``--reports`` each point is a papermill parameter sweep step: the whole of ``esi run``
(every notebook executed and rendered, one at a time within the point) into
``DIR/points/<NN>/``, a complete run folder with its own ``index.html`` and
``provenance.json``; the point's row then also links its report. The points of a sweep run in
parallel, the notebooks of one point in order.

The sweep folder is built under a temporary name beside ``DIR`` and renamed into place at the
end, so an interrupted sweep leaves no folder that looks complete. SIGINT, SIGTERM or SIGHUP
stop the workers (and their kernels) and remove it; the workers of a killed sweep end with it
(:mod:`esi.processes`), and the next sweep or run into the same parent folder removes what it
left.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd

from esi import pages
from esi.params import DEFAULTS, ParameterError, check_params, load_params, read_yaml
from esi.text import printable, spreadsheet_safe

__all__ = ["expand_grid", "load_grid", "summarise", "sweep", "sweep_cli", "SUMMARY_COLUMNS"]

#: Outcome rows summarised per point: (outcome, timepoint in weeks).
SUMMARY_OUTCOMES = (("leg_pain_reduction", 4), ("leg_pain_reduction", 12),
                    ("positive_outcome", 4), ("positive_outcome", 12))

#: Most points a grid file may hold (grid combinations plus runs); counted before anything is
#: expanded, so a grid of 10^8 points is refused at once instead of filling the memory.
MAX_POINTS = 10_000

#: Counts behind the binary outcomes' estimates (the disclosure control needs them).
SUMMARY_COUNTS = ("n_cases", "n_controls", "events_cases", "events_controls")

#: Result columns of a sweep row, after the parameter columns.
SUMMARY_COLUMNS = (
    ["point", "status", "error", "n_cases_matched", "n_controls_matched", "max_abs_smd"]
    + [f"{o}_{t}w_{s}" for o, t in SUMMARY_OUTCOMES
       for s in ("estimate", "ci_low", "ci_high", "p_value")
       + (SUMMARY_COUNTS if o == "positive_outcome" else ())]
)


def expand_grid(spec: dict[str, Any], source: str = "grid") -> list[dict[str, Any]]:
    """The parameter sets of a grid specification (see the module docstring).

    Raises
    ------
    ValueError
        For a grid value that is not a non-empty list, an unknown key, no point at all, or
        more than :data:`MAX_POINTS` points (counted before any point is built).
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
    runs = spec.get("runs") or []
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise ValueError(f"{source}: 'runs' must be a list of parameter sets")
    n_grid = math.prod(len(v) for v in grid.values()) if grid else 0
    if n_grid + len(runs) > MAX_POINTS:
        sizes = " x ".join(str(len(v)) for v in grid.values())
        raise ValueError(f"{source}: the sweep has {n_grid + len(runs):,} points ("
                         + (f"grid {sizes} = {n_grid:,}" if grid else "")
                         + (" + " if grid and runs else "")
                         + (f"{len(runs):,} runs" if runs else "")
                         + f"); at most {MAX_POINTS:,} are allowed: vary fewer parameters "
                         "or fewer values at once")
    if grid:
        names = list(grid)
        points += [dict(zip(names, combo, strict=True))
                   for combo in itertools.product(*(grid[n] for n in names))]
    points += [dict(r) for r in runs]
    if not points:
        raise ValueError(f"{source}: no grid point (give 'grid' and/or 'runs')")
    return points


def load_grid(path: str | os.PathLike[str], base: str | None = None,
              extra: tuple[str, ...] = ()
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Read a grid file; return (the varied values of each point, each point's full checked
    parameters). Every point is checked before anything runs; ``extra`` names further
    parameters a point may set (the notebooks' own, for report sweeps)."""
    from esi.paths import resolve

    p = resolve(path)
    spec = read_yaml(p, "grid file") or {}
    if not isinstance(spec, dict):
        raise ParameterError(f"{p}: a grid file maps 'grid', 'runs' and 'params'")
    try:
        points = expand_grid(spec, str(p))
    except ValueError as exc:
        raise ParameterError(str(exc)) from None
    base_params = load_params(base or spec.get("params"), extra=extra)
    full = [check_params({**base_params, **pt}, source=f"{p} point {i + 1}", extra=extra)
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
        controls), ``_ci_low``, ``_ci_high``, ``_p_value``; for the positive outcome also
        ``_n_cases``, ``_n_controls`` (patients with the outcome known) and ``_events_cases``,
        ``_events_controls`` (how many of them had it).
    """
    from esi.pipeline import Analysis

    row: dict[str, Any] = {c: float("nan") for c in SUMMARY_COLUMNS[3:]}
    try:
        analysis = Analysis(params, persist=False,
                            extra=tuple(k for k in params if k not in DEFAULTS))
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
            if o == "positive_outcome":
                for s in SUMMARY_COUNTS:
                    row[f"{o}_{t}w_{s}"] = int(round(float(r[s])))
        row.update(status="ok", error="")
    except Exception as exc:  # a failing point is reported in its row, not raised
        row.update(status="error", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
    return row


def _run_point(args: tuple[int, dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    index, params = args
    return index, summarise(params)


def point_folder(index: int, n_points: int) -> str:
    """The report folder of point ``index`` (0-based) under the sweep folder:
    ``points/01`` ... (zero-padded to the number of points)."""
    return f"points/{index + 1:0{max(2, len(str(n_points)))}d}"


def _run_point_report(args: tuple[int, dict[str, Any], str, str, float]
                      ) -> tuple[int, dict[str, Any]]:
    """One point of a report sweep: ``esi run`` into ``<root>/<folder>``, then its row."""
    from esi.pipeline import RunFailed, run

    index, params, root, folder, timeout = args
    row = {c: float("nan") for c in SUMMARY_COLUMNS[3:]}
    try:
        run(params, Path(root) / folder, timeout=timeout,
            params_source=f"sweep point {index + 1}", log=lambda m: None, workers=1)
    except Exception as exc:  # reported in its row, like a failing summary point
        error = str(exc) if isinstance(exc, RunFailed) else f"{type(exc).__name__}: {exc}"
        row.update(status="error", error=error.splitlines()[0], report="")
        return index, row
    return index, {**summarise(params), "report": f"{folder}/index.html"}


def _executor(workers: int | None, scheduler: str | None,
              preload: list[dict[str, Any]], reports: bool = False) -> tuple[Executor, Any]:
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

    if reports:  # papermill and nbconvert once here; no kernel or socket exists yet
        import nbconvert  # noqa: F401
        import papermill  # noqa: F401

    for params in {p["data_path"]: p for p in preload}.values():
        try:
            Analysis(params, persist=False).registry()
        except Exception:  # reported per point when the points run
            pass

    from esi.processes import pool_worker_init

    # Each worker ends when this process ends, however it ends, and takes its kernels along.
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    from esi.processes import default_workers

    return ProcessPoolExecutor(max_workers=workers or default_workers(), mp_context=ctx,
                               initializer=pool_worker_init, initargs=(os.getpid(),)), None


def sweep(points: list[dict[str, Any]], full: list[dict[str, Any]], *,
          workers: int | None = None, scheduler: str | None = None,
          progress: bool = True, reports: str | os.PathLike[str] | None = None,
          timeout: float = 600.0) -> pd.DataFrame:
    """Run every point and gather one row each.

    Parameters
    ----------
    points
        The varied values of each point (become the leading columns).
    full
        Each point's complete checked parameters (what runs).
    workers
        Local processes (default: :func:`esi.processes.default_workers`, as ``esi run``).
        Ignored with ``scheduler``.
    scheduler
        Address of a Dask distributed scheduler; the points then run on its workers.
    progress
        Show a progress bar on standard error.
    reports
        A folder: each point also runs every notebook (``esi run``, notebooks one at a time)
        into ``<reports>/points/<NN>/`` (:func:`point_folder`). ``None``: summaries only.
    timeout
        Seconds a notebook cell may run (report sweeps).

    Returns
    -------
    pandas.DataFrame
        One row per point, in point order: the varied parameters, then
        :data:`SUMMARY_COLUMNS`, then with ``reports`` a ``report`` column (the point's
        ``index.html`` relative to ``reports``; empty for a failed point).
    """
    from tqdm import tqdm

    if workers is not None and workers < 1:
        raise ValueError(f"workers must be 1 or more, got {workers}")
    varied = list(dict.fromkeys(k for pt in points for k in pt))
    rows: dict[int, dict[str, Any]] = {}
    bar = tqdm(total=len(full), desc="sweep", unit="point", disable=not progress,
               file=sys.stderr)
    first = 0
    if scheduler is None and reports is None:
        # The first point runs here, before the workers are forked: it warms every lazy
        # import and cache once, and the forked workers inherit them instead of each
        # paying for them again.
        rows[0] = summarise(full[0])
        bar.update(1)
        first = 1
    executor, client = _executor(workers, scheduler, full, reports=reports is not None)
    try:
        if reports is None:
            futures = [executor.submit(_run_point, (i, full[i]))
                       for i in range(first, len(full))]
        else:
            root = str(Path(reports).resolve())
            futures = [executor.submit(_run_point_report,
                                       (i, full[i], root, point_folder(i, len(full)), timeout))
                       for i in range(len(full))]
        for fut in as_completed(futures):
            i, row = fut.result()
            rows[i] = row
            bar.update(1)
        bar.close()
    except BaseException:  # interrupted: stop the points still running, do not await them
        from esi.pipeline import stop_pool

        bar.close()
        stop_pool(executor)
        raise
    else:
        executor.shutdown(wait=True)
    finally:
        if client is not None:
            client.close()
    table = [{**{k: _cell(full[i][k]) for k in varied}, "point": i + 1, **rows[i]}
             for i in range(len(points))]
    return disclosed(pd.DataFrame(table, columns=varied + SUMMARY_COLUMNS
                                  + (["report"] if reports is not None else [])), full)


def disclosed(table: pd.DataFrame, full: list[dict[str, Any]]) -> pd.DataFrame:
    """The sweep table with the rows of real-data points under disclosure control
    (:func:`esi.disclosure.disclose`, declaration ``sweep``: matched counts of 1-4 as ``"<5"``
    and that point's estimates, intervals, P values and SMD as ``"-"``); rows of a registry esi
    generated (:func:`esi.pipeline.is_synthetic`) are shown as they are."""
    from esi.disclosure import THRESHOLD, disclose
    from esi.pipeline import is_synthetic

    verdicts: dict[tuple[Any, ...], bool] = {}
    real = []
    for params in full:
        key = (params["data_path"], params.get("mapping"), params.get("synthetic"))
        if key not in verdicts:
            try:
                verdicts[key] = not is_synthetic(params)
            except ParameterError:
                verdicts[key] = True
        real.append(verdicts[key])
    if not any(real):
        return table
    mask = pd.Series(real, index=table.index)
    shown = disclose(table[mask], "sweep", threshold=THRESHOLD)
    out = table.astype({c: object for c in shown.columns if shown[c].dtype == object
                        and table[c].dtype != object})
    out.loc[mask, shown.columns] = shown
    return out


def _cell(v: Any) -> Any:
    if isinstance(v, list):
        return "+".join(map(str, v)) if v else "none"
    return "none" if v is None else v


def _csv_cells(table: pd.DataFrame) -> pd.DataFrame:
    """The table as sweep.csv writes it: every text cell made :func:`esi.text.spreadsheet_safe`
    (a value or error text starting with = + - @ cannot start a spreadsheet formula); numbers
    untouched."""
    out = table.copy()
    for c in out.columns:
        if out[c].dtype == object or pd.api.types.is_string_dtype(out[c]):
            out[c] = out[c].map(spreadsheet_safe).astype(out[c].dtype)
    return out


def write_sweep(table: pd.DataFrame, out: Path, grid: str = "") -> tuple[Path, Path, Path]:
    """Write ``sweep.csv``, ``specification_curve.png`` and ``index.html`` into ``out``
    (each atomically); return their paths. ``grid`` names the grid file on the page."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from esi.io import atomic_write
    from esi.plots.sensitivity import specification_curve

    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "sweep.csv"
    with atomic_write(csv_path) as fh:
        _csv_cells(table).to_csv(fh, index=False, float_format="%.10g", lineterminator="\n")
    fig = specification_curve(table, outcome="leg_pain_reduction_4w",
                              choices=[c for c in table.columns if c in DEFAULTS],
                              ylabel="Leg-pain reduction, 4 weeks\n(cases - controls)")
    png = out / "specification_curve.png"
    with atomic_write(png, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    page = out / "index.html"
    with atomic_write(page) as fh:
        fh.write(_index_page(table, grid))
    return csv_path, png, page


def _index_page(table: pd.DataFrame, grid: str) -> str:
    """The sweep's index.html: one row per point, linking its report when there is one."""
    import html

    e = html.escape
    varied = list(table.columns[:list(table.columns).index("point")])

    from esi.disclosure import shown_count

    def num(v: Any, fmt: str = ".3f") -> str:
        if isinstance(v, str):  # hidden by the disclosure control
            return v
        return "" if pd.isna(v) else format(v, fmt)

    def effect(r: pd.Series, prefix: str) -> str:
        if _missing(r[f"{prefix}_estimate"]):
            return ""
        return (f"{num(r[f'{prefix}_estimate'], '.2f')} ({num(r[f'{prefix}_ci_low'], '.2f')} to "
                f"{num(r[f'{prefix}_ci_high'], '.2f')}); P = {num(r[f'{prefix}_p_value'])}")

    columns = varied + ["point", "status", "matched cases / controls", "max |SMD|",
                        "leg-pain reduction, 4 weeks: difference (95% CI)",
                        "positive outcome, 4 weeks: risk difference (95% CI)", "report"]
    numeric = [False] * len(varied) + [True, False, True, True, True, True, False]
    num_class = ' class="num"'
    head = "".join(f'<th scope="col"{num_class if n else ""}>{e(c)}</th>'
                   for c, n in zip(columns, numeric, strict=True))
    body = []
    for _, r in table.iterrows():
        link = r.get("report") or ""
        cells = [e("none" if _missing(r[c]) else str(r[c])) for c in varied] + [
            str(r["point"]),
            e(r["status"] if r["status"] == "ok" else f"error: {r['error']}"),
            "" if _missing(r["n_cases_matched"]) else
            e(f"{shown_count(r['n_cases_matched'], None)} / "
              f"{shown_count(r['n_controls_matched'], None)}"),
            e(num(r["max_abs_smd"])), e(effect(r, "leg_pain_reduction_4w")),
            e(effect(r, "positive_outcome_4w")),
            f'<a href="{e(link)}">report</a>' if link else ""]
        body.append("<tr>" + "".join(f'<td{num_class if n else ""}>{c}</td>'
                                     for c, n in zip(cells, numeric, strict=True)) + "</tr>")
    content = f"""<h1>Parameter sweep{": " + e(grid) if grid else ""}</h1>
<p>One analysis per grid point (Cohen et al., Interventional Pain Medicine 2025); the tidy
table is <a href="sweep.csv">sweep.csv</a>.</p>
<p><img src="specification_curve.png" alt="Specification curve of the 4-week leg-pain
difference across the sweep's points"></p>
<div class="esi-scroll"><table><thead><tr>{head}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table></div>"""
    return pages.page(pages.page_title(f"Parameter sweep{': ' + grid if grid else ''}"),
                      content, body_class="esi-wide")


def _missing(v: Any) -> bool:
    return not isinstance(v, str) and pd.isna(v)


def sweep_cli(grid: str, workers: int | None, scheduler: str | None, out: str | None,
              params: str | None = None, reports: bool = False,
              timeout: float = 600.0) -> int:
    """``esi sweep``: returns 0 when every point ran, 1 when any failed, 2 for bad input.

    The sweep folder is built as ``.<name>.partial-*`` beside ``out`` (private until
    complete) and renamed into place when every point has ended (failed points included); an
    interrupted sweep removes it and exits with 128 + the signal number (130 SIGINT, 143
    SIGTERM, 129 SIGHUP). ``out`` (relative: from the current working folder) may replace
    only an earlier esi sweep folder; anything else is refused before any point runs
    (:mod:`esi.outputs`).
    """
    import shutil

    from esi.io import partial_folder, publish_folder, remove_stale_partials
    from esi.outputs import OutputRefused, check_output_target
    from esi.paths import REPORTS_DIR, resolve
    from esi.processes import (
        Interrupted,
        deferred_signals,
        exit_code,
        interruptible,
        remove_stale_kernel_folders,
    )

    extra: tuple[str, ...] = ()
    if reports:
        from esi.pipeline import notebook_extra

        extra = notebook_extra()
    try:
        points, full = load_grid(grid, params, extra=extra)
    except ParameterError as exc:
        print(printable(f"esi sweep: {exc}"), file=sys.stderr)
        return 2
    if workers is not None and workers < 1:
        print(f"esi sweep: --workers must be 1 or more, got {workers}", file=sys.stderr)
        return 2
    from esi.pipeline import is_synthetic

    for i, pt in enumerate(full):  # a false synthetic claim is refused before anything runs
        if pt.get("synthetic") is True:
            try:
                is_synthetic(pt)
            except ParameterError as exc:
                print(printable(f"esi sweep: point {i + 1}: {exc}"), file=sys.stderr)
                return 2
    # inputs: the grid, the base parameter file (--params, or the one the grid names), and
    # every point's registry and mapping
    spec = read_yaml(resolve(grid), what="grid file")  # load_grid read it without error
    base = params or (spec.get("params") if isinstance(spec, dict) else None)
    inputs = [resolve(grid), resolve(base) if base else None]
    inputs += [resolve(p[k]) for p in full for k in ("data_path", "mapping") if p.get(k)]
    try:  # before any work: the output may not replace anything esi did not make
        target = check_output_target(out if out else REPORTS_DIR / f"sweep-{Path(grid).stem}",
                                     "sweep", inputs=inputs).resolve()
    except OutputRefused as exc:
        print(printable(f"esi sweep: {exc}"), file=sys.stderr)
        return 2
    try:
        with interruptible() as guard:
            for stale in remove_stale_partials(target.parent):
                print(f"esi sweep: removed {stale.name}, left by a sweep or run that was "
                      "killed", file=sys.stderr)
            remove_stale_kernel_folders()
            build = partial_folder(target)
            try:
                table = sweep(points, full, workers=workers, scheduler=scheduler,
                              reports=build if reports else None, timeout=timeout)
                write_sweep(table, build, grid=Path(grid).name)
                with deferred_signals():  # published whole, or not at all
                    publish_folder(build, target, "sweep")
            except BaseException:
                shutil.rmtree(build, ignore_errors=True)
                raise
    except OutputRefused as exc:  # not writable, or something appeared there meanwhile
        print(printable(f"esi sweep: {exc}"), file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"esi sweep: {exc}; the points were stopped and the partial folder removed, "
              "nothing was written", file=sys.stderr)
        return exit_code(exc)
    if target.parent == REPORTS_DIR.resolve():
        from esi.pipeline import write_reports_index

        write_reports_index()
    failed = table[table["status"] != "ok"]
    for _, r in failed.iterrows():
        print(printable(f"esi sweep: point {r['point']} failed: {r['error']}"), file=sys.stderr)
    print(f"{len(table) - len(failed)} of {len(table)} point(s) ran; wrote {target}/sweep.csv, "
          f"specification_curve.png and index.html")
    if guard.received is not None:  # arrived while the folder was being published
        late = Interrupted(guard.received)
        print(f"esi sweep: {late} after the sweep was complete", file=sys.stderr)
        return exit_code(late)
    return 1 if len(failed) else 0
