from __future__ import annotations

import pandas as pd
import pytest

from esi.io import write_registry
from esi.params import ParameterError
from esi.sweep import SUMMARY_COLUMNS, expand_grid, load_grid, sweep, write_sweep

from factory import example_registry, tiny_notebook


@pytest.fixture(scope="module")
def registry_file(tmp_path_factory):
    """A registry esi did not generate: real data to esi (pseudonymised, counts disclosed)."""
    folder = tmp_path_factory.mktemp("sweep")
    mp = pytest.MonkeyPatch()
    mp.setenv("ESI_PSEUDONYM_KEY", str(folder / "pseudonym.key"))
    yield write_registry(example_registry(n=120, seed=3), folder / "registry.csv")
    mp.undo()


def _grid(tmp_path, registry_file, body: str):
    p = tmp_path / "grid.yaml"
    p.write_text(f"params: params/default.yaml\n{body}")
    base = tmp_path / "base.yaml"
    base.write_text(f"data_path: {registry_file}\n")
    return load_grid(p, base=str(base))


def test_expand_grid_is_the_cartesian_product_plus_runs():
    pts = expand_grid({"grid": {"caliper": [0.1, 0.2], "ratio": [1, 2]},
                       "runs": [{"method": "optimal"}]})
    assert pts == [{"caliper": 0.1, "ratio": 1}, {"caliper": 0.1, "ratio": 2},
                   {"caliper": 0.2, "ratio": 1}, {"caliper": 0.2, "ratio": 2},
                   {"method": "optimal"}]


@pytest.mark.parametrize(("spec", "message"), [
    ({}, "no grid point"),
    ({"grid": {"caliper": 0.1}}, "grid parameter 'caliper' must be a non-empty list"),
    ({"gird": {"caliper": [0.1]}}, "unknown key(s) gird"),
    ({"runs": [1, 2]}, "'runs' must be a list of parameter sets"),
])
def test_bad_grids(spec, message):
    with pytest.raises(ValueError) as err:
        expand_grid(spec, "g.yaml")
    assert message in str(err.value)


def test_every_point_is_checked_before_running(tmp_path, registry_file):
    with pytest.raises(ParameterError, match="point 2: parameter 'ratio' = 0"):
        _grid(tmp_path, registry_file, "grid:\n  ratio: [1, 0]\n")


def test_sweep_gathers_rows_and_reports_a_failing_point(tmp_path, registry_file):
    points, full = _grid(tmp_path, registry_file,
                         "grid:\n  caliper: [0.2, null]\n"
                         "runs:\n  - {covariates: [age, sex, smoking]}\n")
    table = sweep(points, full, workers=2, progress=False)
    assert list(table.columns) == ["caliper", "covariates"] + SUMMARY_COLUMNS
    assert list(table["point"]) == [1, 2, 3]
    assert list(table["status"]) == ["ok", "ok", "error"]
    assert "smoking" in table.loc[2, "error"] and "constant" in table.loc[2, "error"]
    assert table.loc[1, "n_cases_matched"] >= table.loc[0, "n_cases_matched"]
    # the same grid gives the same bytes, whatever the number of workers
    again = sweep(points, full, workers=1, progress=False)
    a, b = write_sweep(table, tmp_path / "a"), write_sweep(again, tmp_path / "b")
    assert a[0].read_bytes() == b[0].read_bytes()
    assert a[1].stat().st_size > 0


def test_sweep_on_a_local_dask_cluster(tmp_path, registry_file):
    import distributed
    points, full = _grid(tmp_path, registry_file, "grid:\n  caliper: [0.1, 0.2]\n")
    local = sweep(points, full, workers=1, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        remote = sweep(points, full, scheduler=cluster.scheduler_address, progress=False)
    pd.testing.assert_frame_equal(local, remote)


def test_sweep_cli_exit_codes(tmp_path, registry_file, capsys):
    from esi.cli import main

    grid = tmp_path / "g.yaml"
    base = tmp_path / "base.yaml"
    base.write_text(f"data_path: {registry_file}\n")
    grid.write_text("grid:\n  ratio: [1]\n")
    assert main(["sweep", str(grid), "--params", str(base), "--workers", "1",
                 "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "sweep.csv").exists()
    grid.write_text("grid:\n  ratio: [one]\n")
    assert main(["sweep", str(grid), "--params", str(base)]) == 2
    assert "parameter 'ratio' = 'one'" in capsys.readouterr().err


def test_sweep_refuses_a_false_synthetic_claim(tmp_path, registry_file, capsys):
    from esi.cli import main

    grid = tmp_path / "g.yaml"
    base = tmp_path / "base.yaml"
    base.write_text(f"data_path: {registry_file}\nsynthetic: true\n")
    grid.write_text("grid:\n  ratio: [1]\n")
    assert main(["sweep", str(grid), "--params", str(base), "--workers", "1",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "point 1: synthetic: true" in err and "not a registry that esi generated" in err
    assert not (tmp_path / "out").exists()


def _tiny_notebooks(tmp_path, monkeypatch):
    """Two tiny notebooks in place of the real ones; the second refuses caliper 0.1."""
    import esi.pipeline as pipeline

    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    code = {"01_a": "print('caliper is', caliper)",
            "02_b": ("import os, pathlib\n"
                     "assert caliper != 0.1, 'caliper 0.1 refused'\n"
                     "d = pathlib.Path(os.environ['ESI_RUN_DIR'])\n"
                     "for f in ['matched_pairs.csv', 'balance.csv', 'outcomes.csv',"
                     " 'reproduction.csv']:\n"
                     "    (d / f).write_text('x\\n1\\n')")}
    for name, source in code.items():
        tiny_notebook(nbdir / f"{name}.ipynb", source)
    monkeypatch.setattr(pipeline, "NOTEBOOKS_DIR", nbdir)
    monkeypatch.setattr(pipeline, "NOTEBOOKS", ("01_a", "02_b"))


def test_report_sweep_renders_every_point_and_reports_a_failing_one(tmp_path, registry_file,
                                                                     monkeypatch):
    from esi.sweep import point_folder

    _tiny_notebooks(tmp_path, monkeypatch)
    points, full = _grid(tmp_path, registry_file, "grid:\n  caliper: [0.2, 0.1, null]\n")
    root = tmp_path / "sweep"
    table = sweep(points, full, workers=2, progress=False, reports=root, timeout=120)
    assert list(table.columns) == ["caliper", *SUMMARY_COLUMNS, "report"]
    assert list(table["status"]) == ["ok", "error", "ok"]
    assert "02_b.ipynb" in table.loc[1, "error"] and "caliper 0.1 refused" in table.loc[1, "error"]
    assert list(table["report"]) == ["points/01/index.html", "", "points/03/index.html"]
    assert (root / "points" / "01" / "02_b.html").exists()
    assert "caliper is None" in (root / "points" / "03" / "01_a.html").read_text()
    assert not (root / "points" / "02").exists()  # a failed run leaves no folder
    assert not [p for p in (root / "points").iterdir() if p.name.startswith(".")]
    # the summary columns are the same as a summary-only sweep's
    plain = sweep(points, full, workers=1, progress=False)
    pd.testing.assert_frame_equal(table.loc[[0, 2], SUMMARY_COLUMNS[3:]],
                                  plain.loc[[0, 2], SUMMARY_COLUMNS[3:]], check_dtype=False)
    assert point_folder(0, 8) == "points/01" and point_folder(99, 100) == "points/100"


def test_sweep_cli_with_reports_builds_the_folder_then_renames_it(tmp_path, registry_file,
                                                                   monkeypatch, capsys):
    from esi.cli import main

    _tiny_notebooks(tmp_path, monkeypatch)
    base = tmp_path / "base.yaml"
    base.write_text(f"data_path: {registry_file}\n")
    grid = tmp_path / "g.yaml"
    grid.write_text("grid:\n  caliper: [0.2, 0.1]\n")
    from esi.outputs import write_marker

    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("from an older sweep")
    write_marker(out, "sweep")  # an older esi sweep folder (esi replaces only its own outputs)
    assert main(["sweep", str(grid), "--params", str(base), "--workers", "1", "--reports",
                 "--out", str(out)]) == 1  # one point failed
    err = capsys.readouterr().err
    assert "point 2 failed" in err and "caliper 0.1 refused" in err
    assert not (out / "stale.txt").exists()  # replaced as a whole
    page = (out / "index.html").read_text()
    assert 'href="points/01/index.html"' in page and "caliper 0.1 refused" in page
    assert (out / "points" / "01" / "index.html").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_interrupted_sweep_leaves_no_folder(tmp_path, registry_file, monkeypatch):
    import esi.sweep
    from esi.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(esi.sweep, "sweep", interrupted)
    base = tmp_path / "base.yaml"
    base.write_text(f"data_path: {registry_file}\n")
    grid = tmp_path / "g.yaml"
    grid.write_text("grid:\n  ratio: [1]\n")
    assert main(["sweep", str(grid), "--params", str(base), "--out",
                 str(tmp_path / "out")]) == 130
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_stop_pool_stops_local_pools_and_dask_executors():
    import time
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool
    from multiprocessing.connection import wait as wait_ended

    import distributed

    from esi.pipeline import stop_pool

    pool = ProcessPoolExecutor(max_workers=1)
    futures = [pool.submit(time.sleep, 30) for _ in range(5)]
    while not futures[0].running():  # handed to the worker
        time.sleep(0.05)
    procs = list(pool._processes.values())
    assert procs
    stop_pool(pool)
    # When stop_pool returns, every worker has ended: its sentinel is ready (a process that
    # has ended, whoever reaps it; the pool's own thread may join it too, so is_alive() is no
    # test here).
    for proc in procs:
        assert wait_ended([proc.sentinel], 0) == [proc.sentinel]
    # The futures settle once the pool's thread has seen the worker go (polled: wait() is no
    # help, a future cancelled by shutdown never notifies its waiters). The running sleep was
    # terminated, not awaited: it fails rather than returns; the others are cancelled.
    deadline = time.monotonic() + 120
    while not all(f.done() for f in futures) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(f.done() for f in futures)
    assert isinstance(futures[0].exception(), BrokenProcessPool)
    assert all(f.cancelled() or isinstance(f.exception(), BrokenProcessPool)
               for f in futures[1:])
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        executor = client.get_executor(pure=False)
        fut = executor.submit(time.sleep, 2)
        stop_pool(executor)  # Dask's shutdown takes no cancel_futures
        deadline = time.monotonic() + 60
        while not fut.cancelled() and time.monotonic() < deadline:  # cancelling is async
            time.sleep(0.05)
        assert fut.cancelled()


def _mark_then_sleep(marker: str) -> None:
    import pathlib
    import time

    pathlib.Path(marker).write_text("started")
    time.sleep(60)


def test_stop_pool_stops_workers_that_ignore_sigterm(tmp_path):
    """A worker that does not end on SIGTERM is killed after the grace period."""
    import signal
    import time
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing.connection import wait as wait_ended

    from esi.pipeline import stop_pool

    pool = ProcessPoolExecutor(max_workers=1, initializer=signal.signal,
                               initargs=(signal.SIGTERM, signal.SIG_IGN))
    marker = tmp_path / "started"
    pool.submit(_mark_then_sleep, str(marker))
    while not marker.exists():  # the task runs: the worker's initializer has run before it
        time.sleep(0.05)
    procs = list(pool._processes.values())
    stop_pool(pool, grace=1.0)
    for proc in procs:
        assert wait_ended([proc.sentinel], 0) == [proc.sentinel]
        proc.join()
        assert proc.exitcode == -signal.SIGKILL
