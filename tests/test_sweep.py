from __future__ import annotations

import pandas as pd
import pytest

from esi.io import write_registry
from esi.params import ParameterError
from esi.sweep import SUMMARY_COLUMNS, expand_grid, load_grid, sweep, write_sweep

from factory import example_registry


@pytest.fixture(scope="module")
def registry_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "registry.csv"
    return write_registry(example_registry(n=120, seed=3), path)


def _grid(tmp_path, registry_file, body: str):
    p = tmp_path / "grid.yaml"
    p.write_text(f"params: params/default.yaml\n{body}")
    base = tmp_path / "base.yaml"
    base.write_text(f"data_path: {registry_file}\nsynthetic: true\n")
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
    base.write_text(f"data_path: {registry_file}\nsynthetic: true\n")
    grid.write_text("grid:\n  ratio: [1]\n")
    assert main(["sweep", str(grid), "--params", str(base), "--workers", "1",
                 "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "sweep.csv").exists()
    grid.write_text("grid:\n  ratio: [one]\n")
    assert main(["sweep", str(grid), "--params", str(base)]) == 2
    assert "parameter 'ratio' = 'one'" in capsys.readouterr().err
