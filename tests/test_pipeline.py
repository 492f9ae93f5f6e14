"""esi run: atomic run folders, failures and interruptions, provenance (tiny notebooks)."""

from __future__ import annotations

import json
import os

import nbformat
import pytest

import esi.pipeline as pipeline
from esi.io import write_registry
from esi.params import load_params

from factory import example_registry, tiny_notebook

WRITE_RESULTS = """import os, pathlib
d = pathlib.Path(os.environ["ESI_RUN_DIR"])
for f in ["matched_pairs.csv", "balance.csv", "outcomes.csv", "reproduction.csv"]:
    (d / f).write_text("x\\n1\\n")
print("caliper", caliper)"""


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    tiny_notebook(nbdir / "01_a.ipynb", "print('first')")
    tiny_notebook(nbdir / "02_b.ipynb", WRITE_RESULTS)
    monkeypatch.setattr(pipeline, "NOTEBOOKS_DIR", nbdir)
    monkeypatch.setattr(pipeline, "NOTEBOOKS", ("01_a", "02_b"))
    data = write_registry(example_registry(), tmp_path / "registry.csv")
    params = load_params(overrides={"data_path": str(data), "caliper": 0.3})
    return tmp_path, nbdir, params, data


def test_successful_run_is_complete(tiny):
    tmp_path, _, params, data = tiny
    before = data.read_bytes()
    out = pipeline.run(params, tmp_path / "run", timeout=120, log=lambda m: None)
    names = {p.name for p in out.iterdir()}
    assert {"index.html", "provenance.json", "01_a.html", "02_b.html", "01_a.ipynb",
            "matched_pairs.csv"} <= names
    assert not [n for n in names if n.startswith(".")]
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["parameters"]["caliper"] == 0.3
    assert prov["data"]["sha256_before"] == prov["data"]["sha256_after"]
    assert set(prov["versions"]) >= {"numpy", "pandas", "papermill", "python"}
    assert prov["synthetic"] is False  # not the shipped synthetic registry
    html = (out / "02_b.html").read_text()
    assert "caliper 0.3" in html and "os.environ" not in html  # outputs, no code
    assert data.read_bytes() == before
    assert not list(tmp_path.glob(".run.partial-*"))
    mask = os.umask(0o022)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask  # not mkdtemp's private 0700


@pytest.mark.parametrize("workers", [1, 2])
def test_failing_notebook_leaves_no_folder(tiny, workers):
    tmp_path, nbdir, params, _ = tiny
    tiny_notebook(nbdir / "02_b.ipynb", "raise RuntimeError('boom in cell')")
    with pytest.raises(pipeline.RunFailed, match="02_b.ipynb: cell .* raised RuntimeError: "
                                                 "boom in cell"):
        pipeline.run(params, tmp_path / "run", timeout=120, log=lambda m: None,
                     workers=workers)
    assert not (tmp_path / "run").exists()
    assert not list(tmp_path.glob(".run.*"))


def test_missing_result_file_fails(tiny):
    tmp_path, nbdir, params, _ = tiny
    tiny_notebook(nbdir / "02_b.ipynb", "print('writes nothing')")
    with pytest.raises(pipeline.RunFailed, match="did not write matched_pairs.csv"):
        pipeline.run(params, tmp_path / "run", timeout=120, log=lambda m: None)
    assert not (tmp_path / "run").exists()


def test_interrupted_run_keeps_the_previous_folder(tiny, monkeypatch):
    tmp_path, _, params, _ = tiny
    out = pipeline.run(params, tmp_path / "run", timeout=120, log=lambda m: None)
    stamp = (out / "provenance.json").read_text()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_execute", interrupted)
    with pytest.raises(KeyboardInterrupt):  # in-process execution, so the patch applies
        pipeline.run(params, tmp_path / "run", timeout=120, log=lambda m: None, workers=1)
    assert (out / "provenance.json").read_text() == stamp  # the old complete run is intact
    assert not list(tmp_path.glob(".run.*"))


def test_run_dir_resolution(monkeypatch, tmp_path):
    from esi.params import DEFAULTS

    monkeypatch.delenv("ESI_RUN_DIR", raising=False)
    assert pipeline.resolve_run_dir("") == pipeline.REPORTS_DIR / "interactive"
    # with the parameters: one folder per parameter set (tests/test_handover.py)
    one = pipeline.resolve_run_dir("", dict(DEFAULTS))
    assert one.parent == pipeline.REPORTS_DIR / "interactive"
    assert one == pipeline.interactive_folder(dict(DEFAULTS))[0]
    assert pipeline.resolve_run_dir("", dict(DEFAULTS, caliper=0.1)) != one
    monkeypatch.setenv("ESI_RUN_DIR", str(tmp_path))
    assert pipeline.resolve_run_dir("") == tmp_path
    assert pipeline.resolve_run_dir("", dict(DEFAULTS)) == tmp_path
    assert pipeline.resolve_run_dir("reports/x") == pipeline.PROJECT_ROOT / "reports" / "x"


PRIVATE_BUILD = """import os, pathlib, stat
d = pathlib.Path(os.environ["ESI_RUN_DIR"])
print("build mode", oct(stat.S_IMODE(d.stat().st_mode)), "owner",
      (d / ".esi-owner.json").exists())
for f in ["matched_pairs.csv", "balance.csv", "outcomes.csv", "reproduction.csv"]:
    (d / f).write_text("x\\n1\\n")"""


@pytest.mark.parametrize("workers", [1, 2])
def test_partial_folder_is_private_and_kernels_leave_nothing(tiny, workers, monkeypatch):
    import tempfile

    tmp_path, nbdir, params, _ = tiny
    tiny_notebook(nbdir / "02_b.ipynb", PRIVATE_BUILD)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))  # where the kernels' folders go
    out = pipeline.run(params, tmp_path / "run", timeout=120, log=lambda m: None,
                       workers=workers)
    assert "build mode 0o700 owner True" in (out / "02_b.html").read_text()
    mask = os.umask(0o022)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~mask  # published: the usual permissions
    assert not (out / ".esi-owner.json").exists()
    assert not list(tmp.glob("esi-kernel-*"))  # both kernels' folders removed


def test_stale_partial_folders_are_removed_by_the_next_run(tiny, monkeypatch):
    import socket
    import subprocess
    import tempfile

    from esi.processes import OWNER_FILE, write_owner

    tmp_path, _, params, _ = tiny

    def partial(name: str, owner: dict | None) -> object:
        d = tmp_path / name
        (d / "state").mkdir(parents=True)
        (d / "state" / "registry.parquet").write_text("patients")
        if owner is not None:
            (d / OWNER_FILE).write_text(json.dumps(owner))
        return d

    gone = subprocess.Popen(["true"])
    gone.wait()
    host = socket.gethostname()
    dead = partial(".run.partial-dead1234", {"pid": gone.pid, "host": host,
                                              "identity": "linux:old-boot:1"})
    dead_sweep = partial(".sweep.partial-a_b1234", {"pid": gone.pid, "host": host,
                                                    "identity": None})
    unowned = partial(".run.partial-nowner12", None)  # not recognisably esi's: kept
    elsewhere = partial(".run.partial-otherhst", {"pid": gone.pid, "host": host + "-other",
                                                  "identity": "x"})
    alive = tmp_path / ".run.partial-alive123"
    alive.mkdir()
    write_owner(alive)  # this process: still building
    not_partial = partial("run.partial-notdot12", {"pid": gone.pid, "host": host,
                                                   "identity": "x"})
    kernels = tmp_path / "tmp"
    stale_kernel = kernels / "esi-kernel-stale123"
    stale_kernel.mkdir(parents=True)
    (stale_kernel / OWNER_FILE).write_text(json.dumps({"pid": gone.pid, "host": host,
                                                       "identity": "y"}))
    monkeypatch.setattr(tempfile, "tempdir", str(kernels))
    messages: list[str] = []
    pipeline.run(params, tmp_path / "run", timeout=120, log=messages.append, workers=1)
    assert not dead.exists() and not dead_sweep.exists() and not stale_kernel.exists()
    assert unowned.exists() and elsewhere.exists() and alive.exists() and not_partial.exists()
    assert any(".run.partial-dead1234" in m and "killed" in m for m in messages)


def test_esi_run_refuses_an_invalid_registry(tmp_path, capsys):
    from esi.cli import main

    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id\nP1\n")
    assert main(["run", "--data", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "[missing-column] required column is absent" in err
    assert "nothing was run" in err and not (tmp_path / "out").exists()


def test_esi_run_refuses_zero_workers(tmp_path, capsys):
    from esi.cli import main

    assert main(["run", "--workers", "0", "--out", str(tmp_path / "out")]) == 2
    assert "--workers must be 1 or more" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_start_first_notebooks_exist():
    assert set(pipeline.START_FIRST) <= set(pipeline.NOTEBOOKS)


@pytest.mark.slow
def test_papermill_cli_runs_a_notebook_alone_from_any_folder(tmp_path):
    import os
    import subprocess
    import sys

    from esi.paths import NOTEBOOKS_DIR

    env = {**os.environ, "ESI_RUN_DIR": str(tmp_path / "run")}
    out = tmp_path / "out.ipynb"
    cmd = [sys.executable, "-m", "papermill", str(NOTEBOOKS_DIR / "02_matching.ipynb"),
           str(out), "-p", "caliper", "0.1", "-k", pipeline._kernel_name(),
           "--log-level", "ERROR"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    nb = nbformat.read(out, as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert "caliper 0.1)" in text
    assert (tmp_path / "run" / "matched_pairs.csv").exists()


def test_one_to_one_pairs_keep_each_cases_closest_control(tmp_path):
    from esi.params import DEFAULTS

    one = pipeline.Analysis(dict(DEFAULTS, run_dir=str(tmp_path)), persist=False)
    assert one.one_to_one_pairs() is one.match().pairs  # 1:1 already: the pairs themselves
    two = pipeline.Analysis(dict(DEFAULTS, ratio=2, run_dir=str(tmp_path)), persist=False)
    full, pairs = two.match().pairs, two.one_to_one_pairs()
    assert full["treated"].duplicated().any() and not pairs["treated"].duplicated().any()
    assert list(pairs["treated"]) == list(dict.fromkeys(full["treated"]))
    closest = full.groupby("treated")["distance_gap"].min()
    assert (pairs.set_index("treated")["distance_gap"] == closest.loc[pairs["treated"]]).all()
    kept = pairs[["treated", "control"]].apply(tuple, axis=1)
    assert set(kept) <= set(full[["treated", "control"]].apply(tuple, axis=1))


def test_esi_run_passes_each_notebook_only_the_parameters_it_declares(tiny, monkeypatch):
    # papermill warns "Passed unknown parameter" for any other name
    tmp_path, nbdir, params, _ = tiny
    seen = {}
    real = pipeline._execute

    def spy(src, dst, parameters, kernel, timeout):
        seen[src.name] = dict(parameters)
        real(src, dst, parameters, kernel, timeout)

    monkeypatch.setattr(pipeline, "_execute", spy)
    pipeline.run({**params, "power_n_sim": 10}, tmp_path / "run", timeout=120,
                 log=lambda m: None, workers=1)
    assert set(seen) == {"01_a.ipynb", "02_b.ipynb"}
    for parameters in seen.values():
        assert set(parameters) == {"caliper", "data_path"}
        assert parameters["caliper"] == 0.3
    assert pipeline.notebook_parameters(nbdir / "01_a.ipynb") == ("caliper", "data_path")


def test_analysis_from_notebook_takes_the_parameters_of_the_namespace(tmp_path):
    import types

    from esi.params import DEFAULTS, ParameterError

    data = write_registry(example_registry(), tmp_path / "registry.csv")
    namespace = {**DEFAULTS, "data_path": str(data), "caliper": 0.3, "gamma_max": 2.0,
                 "multiverse_ratio": None,  # a notebook parameter left at its default
                 "In": ["", "x = 1"], "Out": {}, "_": 5, "__name__": "__main__",
                 "exit": None, "quit": None, "get_ipython": lambda: None,
                 "pd": types.ModuleType("pandas"), "Analysis": pipeline.Analysis,
                 "audit": {"table": example_registry()}, "frame": example_registry()}
    a = pipeline.Analysis.from_notebook(namespace)
    assert a.params["caliper"] == 0.3 and a.params["gamma_max"] == 2.0
    assert set(a.params) == set(DEFAULTS) | {"gamma_max"}
    # a misspelt name papermill injected stops the notebook, as esi run would
    with pytest.raises(ParameterError, match=r"unknown parameter 'calliper' \(did you mean "
                                             r"'caliper'\?\)"):
        pipeline.Analysis.from_notebook({**namespace, "calliper": 0.05})
    with pytest.raises(ParameterError, match="'extra_list'"):
        pipeline.Analysis.from_notebook({**namespace, "extra_list": [1, "a", {"b": None}]})
    with pytest.raises(ParameterError, match="parameter 'caliper' = -1"):
        pipeline.Analysis.from_notebook({**namespace, "caliper": -1})


@pytest.mark.slow
def test_papermill_stops_a_notebook_on_a_misspelt_parameter(tmp_path):
    import subprocess
    import sys

    from esi.paths import NOTEBOOKS_DIR

    env = {**os.environ, "ESI_RUN_DIR": str(tmp_path / "run")}
    cmd = [sys.executable, "-m", "papermill", str(NOTEBOOKS_DIR / "02_matching.ipynb"),
           str(tmp_path / "out.ipynb"), "-p", "calliper", "0.05", "-k",
           pipeline._kernel_name()]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode != 0
    assert "ParameterError: notebook parameters: unknown parameter 'calliper' (did you mean " \
           "'caliper'?)" in done.stderr
    assert "without encryption" not in done.stderr  # esi.kernel.EncryptedProvisioner
    assert not (tmp_path / "run" / "matched_pairs.csv").exists()
