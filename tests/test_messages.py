"""Bad input gives exit 2 and one clear message, never a traceback nor a patient's row.

Each test calls the real command (``esi.cli.main`` or the console script in a subprocess) on
one kind of bad input and checks the exit code, what the message names (file, line, column,
rule) and that no row of the registry appears in it.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from esi.cli import main
from esi.io import write_registry
from esi.paths import PROJECT_ROOT

from factory import example_registry

ESC = "\x1b[31m"


def _registry(tmp_path: Path, name: str = "registry.csv") -> tuple[Path, list[str]]:
    path = write_registry(example_registry(), tmp_path / name)
    return path, path.read_text(encoding="utf-8").splitlines()


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main([*argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def _no_row_echoed(text: str, lines: list[str]) -> None:
    """No data row, and no run of four cells of one, appears in ``text``."""
    assert "Traceback" not in text
    for line in lines[1:]:
        cells = line.split(",")
        for k in range(len(cells) - 3):
            chunk = ",".join(cells[k:k + 4])
            if len(chunk) >= 12:
                assert chunk not in text


# --- a quote left open -----------------------------------------------------------------------

@pytest.mark.parametrize("column", ["patient_id", "age"])
def test_stray_quote_names_line_column_and_rule_and_echoes_no_row(tmp_path, capsys, column):
    path, lines = _registry(tmp_path)
    header = lines[0].split(",")
    k = header.index(column)
    cells = lines[3].split(",")  # line 4 of the file: patient T003
    cells[k] = '"' + cells[k]
    lines[3] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, text = _run(capsys, "validate", str(path))
    assert code == 2
    assert f"{path}: line 4: column {column}: [unbalanced-quote]" in text
    assert f"runs on to line {len(lines)}" in text
    assert f"{path}: 1 problem(s); no row was read" in text
    assert len(text.splitlines()) == 2  # the problem and the summary line, nothing else
    _no_row_echoed(text, lines)
    for pid in ("T004", "T005", "T006", "T007", "T008"):  # the rows it swallowed
        assert pid not in text


def test_a_quoted_line_break_in_a_free_text_cell_is_not_a_stray_quote(tmp_path, capsys):
    path, lines = _registry(tmp_path)
    lines[0] += ",notes"
    lines[1:] = [line + ',"first line\nsecond line"' for line in lines[1:]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("drop: [notes]\n", encoding="utf-8")
    code, text = _run(capsys, "validate", str(path), "--mapping", str(mapping))
    assert code == 0 and "valid (8 patients" in text


# --- parameter, grid and mapping files that are not UTF-8 ------------------------------------

def _latin1_params(tmp_path: Path) -> Path:
    p = tmp_path / "params.yaml"
    p.write_bytes(b"seed: 12\n# caf\xe9\nratio: 1\n")
    return p


@pytest.mark.parametrize("command", [
    ["run", "--params", "{p}", "--out", "{out}"],
    ["multiverse", "--params", "{p}", "--out", "{out}"],
    ["sweep", "{p}", "--out", "{out}"],
    ["validate", "{registry}", "--mapping", "{p}"],
])
def test_invalid_utf8_names_file_and_line(tmp_path, capsys, command):
    p = _latin1_params(tmp_path)
    registry, _ = _registry(tmp_path)
    out = tmp_path / "out"
    argv = [a.format(p=p, out=out, registry=registry) for a in command]
    code, text = _run(capsys, *argv)
    assert code == 2
    assert str(p) in text and "line 2" in text
    assert "e9 are not UTF-8 text" in text and "save the" in text
    assert "Traceback" not in text and not out.exists()


# --- a broken kernel ------------------------------------------------------------------------

def _kernel_dir(tmp_path: Path, argv: list[str]) -> Path:
    kdir = tmp_path / "jupyter" / "kernels" / "esi"
    kdir.mkdir(parents=True)
    (kdir / "kernel.json").write_text(json.dumps(
        {"argv": argv, "display_name": "Python (esi)", "language": "python"}))
    return kdir


def _esi_run_with_kernel(tmp_path: Path, argv: list[str]) -> subprocess.CompletedProcess:
    kdir = _kernel_dir(tmp_path, argv)
    env = {**os.environ, "JUPYTER_PATH": str(tmp_path / "jupyter")}
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "esi.cli", "run", "--out", str(out),
                           "--workers", "1"], capture_output=True, text=True, env=env,
                          cwd=PROJECT_ROOT)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report")]
    assert str(kdir / "kernel.json") in done.stderr
    return done


def test_kernel_whose_program_is_missing(tmp_path):
    done = _esi_run_with_kernel(tmp_path, [str(tmp_path / "no" / "python"), "-m",
                                           "ipykernel_launcher", "-f", "{connection_file}"])
    assert done.returncode == 2
    assert "the Jupyter kernel 'esi'" in done.stderr
    assert f"its program '{tmp_path / 'no' / 'python'}' does not exist" in done.stderr
    assert "make setup" in done.stderr and "ipykernel install" in done.stderr
    assert "nothing was run" in done.stderr and "Traceback" not in done.stderr


def test_kernel_that_dies_at_start(tmp_path):
    done = _esi_run_with_kernel(tmp_path, [sys.executable, "-c", "raise SystemExit(3)",
                                           "{connection_file}"])
    assert done.returncode == 2
    assert "the Jupyter kernel 'esi'" in done.stderr and "did not start" in done.stderr
    assert "make setup" in done.stderr and "Traceback" not in done.stderr


# --- esi multiverse on an invalid registry -----------------------------------------------------

def test_multiverse_on_an_invalid_registry_lists_the_problems(tmp_path, capsys):
    frame = example_registry()
    frame.iloc[1, frame.columns.get_loc("baseline_odi")] = 120.0
    path = write_registry(frame, tmp_path / "bad.csv")
    params = tmp_path / "params.yaml"
    params.write_text(f"data_path: {path}\n", encoding="utf-8")
    out = tmp_path / "multiverse"
    code, text = _run(capsys, "multiverse", "--params", str(params), "--out", str(out))
    assert code == 2
    assert (f"{path}: line 3: patient T002: column baseline_odi: value '120': [out-of-range]"
            in text)
    assert f"esi multiverse: {path} has 1 problem(s); nothing was run" in text
    assert "Traceback" not in text and not out.exists()


# --- a huge grid ----------------------------------------------------------------------------

def test_grid_of_a_hundred_million_points_is_refused_before_expanding(tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    values = ", ".join(str(i) for i in range(1, 11))
    grid.write_text("grid:\n" + "".join(f"  {name}: [{values}]\n" for name in (
        "seed", "ratio", "caliper", "alpha", "success_threshold", "multiverse_timepoint",
        "power_n_sim", "gamma_max")), encoding="utf-8")
    out = tmp_path / "sweep"
    code, text = _run(capsys, "sweep", str(grid), "--out", str(out))
    assert code == 2
    assert f"{grid}: the sweep has 100,000,000 points" in text
    assert "at most 10,000" in text and "Traceback" not in text and not out.exists()


# --- YAML anchors and aliases ----------------------------------------------------------------

LAUGHS = """\
multiverse_covariate_sets:
  a: &a [age, age, age, age, age, age, age, age, age]
  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
  c: [*b, *b, *b, *b, *b, *b, *b, *b, *b]
"""


@pytest.mark.parametrize("command", [
    ["run", "--params", "{p}", "--out", "{out}"],
    ["multiverse", "--params", "{p}", "--out", "{out}"],
    ["sweep", "{grid}", "--out", "{out}"],
])
def test_yaml_aliases_are_refused_in_parameter_and_grid_files(tmp_path, capsys, command):
    p = tmp_path / "params.yaml"
    p.write_text(LAUGHS, encoding="utf-8")
    grid = tmp_path / "grid.yaml"
    grid.write_text("runs:\n  - &one {seed: 1}\n  - *one\n", encoding="utf-8")
    out = tmp_path / "out"
    argv = [a.format(p=p, grid=grid, out=out) for a in command]
    code, text = _run(capsys, *argv)
    assert code == 2
    f = grid if "sweep" in command else p
    assert f"{f}: line 2, column " in text
    assert "anchor &" in text and "refused" in text
    assert "Traceback" not in text and not out.exists()


def test_nested_aliases_are_refused_in_a_mapping_file(tmp_path, capsys):
    registry, _ = _registry(tmp_path)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("missing: &a [x, y]\ndrop: &b [*a, *a]\n", encoding="utf-8")
    code, text = _run(capsys, "validate", str(registry), "--mapping", str(mapping))
    assert code == 2
    assert (f"esi validate: {mapping}: (file): the alias *a stands inside the anchored value "
            "&b; aliases may not nest" in text)
    assert "(line 2, column " in text and "Traceback" not in text


# --- terminal escapes in the file ------------------------------------------------------------

def test_header_with_terminal_escapes_is_shown_escaped(tmp_path, capsys):
    path, lines = _registry(tmp_path)
    lines[0] += f",x{ESC}red"
    lines[1:] = [line + ",1" for line in lines[1:]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, text = _run(capsys, "validate", str(path))
    assert code == 2
    assert "column x\\x1b[31mred: [unknown-column]" in text
    assert "\x1b" not in text


def test_a_cell_value_is_shown_as_a_short_escaped_excerpt(tmp_path, capsys):
    path, lines = _registry(tmp_path)
    header = lines[0].split(",")
    cells = lines[2].split(",")
    cells[header.index("sex")] = f"{ESC}" + "y" * 200
    lines[2] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, text = _run(capsys, "validate", str(path))
    assert code == 2
    assert "value '\\x1b[31m" + "y" * 52 + "...': [unknown-code]" in text
    assert "\x1b" not in text and "y" * 58 not in text


# --- text that reaches sweep.csv -------------------------------------------------------------

def test_sweep_csv_text_cannot_start_a_formula_and_numbers_stay_numbers(tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text('runs:\n  - {data_path: "=HYPERLINK(\\"http://x\\")"}\n'
                    "  - {seed: 2025}\n", encoding="utf-8")
    out = tmp_path / "sweep"
    code, text = _run(capsys, "sweep", str(grid), "--out", str(out), "--workers", "1")
    assert code == 1  # the first point fails (no such file), the second runs
    with open(out / "sweep.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["data_path"] == "'=HYPERLINK(\"http://x\")"
    assert rows[0]["status"] == "error" and rows[1]["status"] == "ok"
    negative = [v for r in rows for v in r.values() if v.startswith("-")]
    assert negative, "the example sweep has negative estimates or bounds"
    for v in negative:
        float(v)  # written as a number, no apostrophe
    for r in rows:
        for v in r.values():
            assert not v.startswith(("=", "+", "@", "\t", "\r"))
    table = pd.read_csv(out / "sweep.csv")
    assert table["leg_pain_reduction_4w_ci_low"].dtype == float


# --- a semicolon-delimited file --------------------------------------------------------------

def test_semicolon_file_gets_a_delimiter_hint_and_the_mapping_option_reads_it(tmp_path,
                                                                              capsys):
    path, _ = _registry(tmp_path)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    numeric = frame.apply(lambda c: c.str.fullmatch(r"-?\d+\.\d+"))
    frame = frame.mask(numeric, frame.apply(lambda c: c.str.replace(".", ",", regex=False)))
    semi = tmp_path / "excel_export.csv"
    frame.to_csv(semi, sep=";", index=False)
    assert ";" in semi.read_text().splitlines()[0] and any(
        "," in v for v in frame["bmi"])
    code, text = _run(capsys, "validate", str(semi))
    assert code == 2
    assert (f"{semi}: line 1: [wrong-delimiter] the header reads as one column holding "
            f"{len(frame.columns) - 1} semicolons: the file looks semicolon-separated" in text)
    assert 'delimiter: ";"' in text and 'decimal: ","' in text and "Traceback" not in text
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text('delimiter: ";"\ndecimal: ","\n', encoding="utf-8")
    code, text = _run(capsys, "validate", str(semi), "--mapping", str(mapping))
    assert code == 0 and "valid (8 patients" in text


# --- an Excel workbook of several sheets -----------------------------------------------------

def _workbook(tmp_path: Path) -> Path:
    path, _ = _registry(tmp_path)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    book = tmp_path / "export.xlsx"
    with pd.ExcelWriter(book) as writer:
        pd.DataFrame({"note": ["exported 2024"]}).to_excel(writer, sheet_name="About",
                                                           index=False)
        frame.to_excel(writer, sheet_name="Patients", index=False)
    return book


def test_workbook_says_which_sheet_was_read_and_sheet_chooses(tmp_path, capsys):
    book = _workbook(tmp_path)
    code, text = _run(capsys, "validate", str(book))
    assert code == 2
    assert (f"{book}: read sheet 'About' (sheet 1 of 2: 'About', 'Patients'); choose another "
            "with --sheet NAME" in text)
    code, text = _run(capsys, "validate", str(book), "--sheet", "Patients")
    assert code == 0 and "valid (8 patients" in text
    assert "read sheet 'Patients' (sheet 2 of 2" in text
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("sheet: Patients\n", encoding="utf-8")
    code, text = _run(capsys, "validate", str(book), "--mapping", str(mapping))
    assert code == 0 and "valid (8 patients" in text


@pytest.mark.parametrize("command", [
    ["validate", "{book}", "--sheet", "Patienten"],
    ["run", "--data", "{book}", "--sheet", "Patienten", "--out", "{out}"],
    ["run", "--params", "{params}", "--out", "{out}"],
    ["multiverse", "--params", "{params}", "--out", "{out}"],
])
def test_unknown_sheet_names_the_sheets(tmp_path, capsys, command):
    book = _workbook(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text(f"data_path: {book}\nsheet: Patienten\n", encoding="utf-8")
    out = tmp_path / "out"
    argv = [a.format(book=book, params=params, out=out) for a in command]
    code, text = _run(capsys, *argv)
    assert code == 2
    assert (f"{book}: [unknown-sheet] the workbook has no sheet 'Patienten'; its sheets are "
            "'About', 'Patients'" in text)
    assert "Traceback" not in text and not out.exists()


def test_sheet_of_a_csv_file_is_refused(tmp_path, capsys):
    path, _ = _registry(tmp_path)
    code, text = _run(capsys, "validate", str(path), "--sheet", "Patients")
    assert code == 2
    assert f"{path}: [sheet-not-excel] a sheet ('Patients') was chosen" in text


def test_the_chosen_sheet_is_the_one_the_analysis_reads(tmp_path):
    from esi.io import read_registry
    from esi.params import load_params

    book = _workbook(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text(f"data_path: {book}\nsheet: Patients\n", encoding="utf-8")
    p = load_params(params)
    registry = read_registry(p["data_path"], sheet=p["sheet"])
    pd.testing.assert_index_equal(registry.index, example_registry().index)
