"""The notebooks are thin and share one parameter vocabulary."""

from __future__ import annotations

import ast
import json

import pytest

from esi.params import DEFAULTS
from esi.paths import NOTEBOOKS_DIR
from esi.pipeline import NOTEBOOKS, notebook_extra, notebook_parameters

NAMES = list(NOTEBOOKS)


def _cells(name):
    nb = json.loads((NOTEBOOKS_DIR / f"{name}.ipynb").read_text())
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("name", NAMES)
def test_one_parameters_cell_of_literals_with_the_shared_names(name):
    cells = [c for c in _cells(name) if "parameters" in c["metadata"].get("tags", [])]
    assert len(cells) == 1
    tree = ast.parse("".join(cells[0]["source"]))
    values = {}
    for node in tree.body:
        assert isinstance(node, ast.Assign), "only assignments in the parameters cell"
        values[node.targets[0].id] = ast.literal_eval(node.value)  # literals only
    shared = {k: v for k, v in values.items() if k in DEFAULTS}
    assert shared == DEFAULTS, "parameters cell disagrees with esi.params.DEFAULTS"
    assert set(values) - set(DEFAULTS) <= set(notebook_extra())


@pytest.mark.parametrize("name", NAMES)
def test_no_function_or_class_definitions(name):
    for cell in _cells(name):
        tree = ast.parse("".join(cell["source"]))
        for node in ast.walk(tree):
            assert not isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Lambda), name


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebooks_hold_no_outputs(name):
    # the sources are clean; executed copies live in the run folders and reports/reference
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in _cells(name))


@pytest.mark.parametrize("name", NAMES)
def test_opens_with_a_question_and_ends_with_findings(name):
    nb = json.loads((NOTEBOOKS_DIR / f"{name}.ipynb").read_text())
    first = "".join(nb["cells"][0]["source"])
    assert "**Question.**" in first
    md = [c for c in nb["cells"] if c["cell_type"] == "markdown"]
    assert "".join(md[-1]["source"]).strip() == "## What was found"
    last = "".join(nb["cells"][-1]["source"])
    assert "esi.report." in last and "findings" in last
    assert nb["metadata"]["kernelspec"]["name"] == "esi"


@pytest.mark.slow
def test_every_notebook_runs_with_non_default_choices(tmp_path):
    """The nbval replay covers the default parameters; these points run all five notebooks
    with several controls per case, replacement, paired and unpaired tests and other
    missing-data rules (a report sweep), and every one must succeed."""
    from esi.sweep import load_grid, sweep

    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "runs:\n"
        "  - {ratio: 2, test: paired_t, binary_test: chi2, power_n_sim: 200}\n"
        "  - {ratio: 3, replace: true, missing: locf, test: welch, binary_test: fisher,"
        " power_n_sim: 200}\n")
    points, full = load_grid(grid, extra=notebook_extra())
    table = sweep(points, full, workers=2, progress=False, reports=tmp_path / "sweep",
                  timeout=300)
    assert list(table["status"]) == ["ok", "ok"], list(table["error"])
    assert list(table["n_controls_matched"]) == [28, 38]
    notebook = json.loads((tmp_path / "sweep" / "points" / "01" / "04_sensitivity.ipynb")
                          .read_text())
    text = "".join("".join(o.get("text", "")) for c in notebook["cells"]
                   for o in c.get("outputs", []))
    assert "use each case with its closest control: 14 pairs" in text


def test_every_run_parameter_reaches_a_notebook():
    # esi run passes each notebook only the names its parameters cell declares
    # (esi.pipeline.notebook_parameters): a name no notebook declares would be dropped
    declared = {n for name in NAMES
                for n in notebook_parameters(NOTEBOOKS_DIR / f"{name}.ipynb")}
    assert set(DEFAULTS) | set(notebook_extra()) <= declared


@pytest.mark.parametrize("name", NAMES)
def test_the_analysis_is_built_from_the_notebooks_parameters(name):
    # one call, no list of names to keep in step with the parameters cell
    cells = ["".join(c["source"]) for c in _cells(name)]
    assert sum("Analysis.from_notebook(globals())" in c for c in cells) == 1
    assert not any("Analysis(" in c.replace("Analysis.from_notebook(", "") for c in cells)


@pytest.mark.parametrize("name", NAMES)
def test_no_cell_relies_on_a_semicolon_to_hide_its_value(name):
    # nbval shows the value of a last expression even when it ends in ";" ("Unexpected output
    # fields: text/plain" when a user replays the reference run): assign it instead
    for cell in _cells(name):
        lines = [ln for ln in "".join(cell["source"]).rstrip().splitlines()
                 if ln.strip() and not ln.lstrip().startswith("#")]
        assert not (lines and lines[-1].rstrip().endswith(";")), lines[-1]
