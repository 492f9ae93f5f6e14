"""Outputs that never destroy (esi.outputs): every command that writes refuses, with exit code 2
and a one-line message naming the path and the rule, to write over anything it did not make;
an earlier esi output of the same kind is replaced atomically.

The refusals are checked before any work starts, so most tests here run no notebook; the
replacement tests run two tiny notebooks in place of the real ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path

import pytest

import esi.outputs as outputs
import esi.pipeline as pipeline
import esi.sweep
from esi.cli import main
from esi.io import partial_folder, publish_folder, write_registry
from esi.outputs import MARKER, OutputRefused, check_output_target, read_marker, write_marker
from esi.paths import PROJECT_ROOT, SYNTHETIC_REGISTRY

from factory import example_registry, tiny_notebook

WRITE_RESULTS = """import os, pathlib
d = pathlib.Path(os.environ["ESI_RUN_DIR"])
for f in ["matched_pairs.csv", "balance.csv", "outcomes.csv", "reproduction.csv"]:
    (d / f).write_text("x\\n1\\n")
print("caliper", caliper)"""


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry below ``folder``: file -> its bytes, folder -> None."""
    out: dict[str, bytes | None] = {}
    for p in sorted(folder.rglob("*")):
        out[p.relative_to(folder).as_posix()] = None if p.is_dir() else p.read_bytes()
    return out


def no_partial_left(parent: Path) -> bool:
    return not [p for p in parent.iterdir() if ".partial-" in p.name or ".old-" in p.name]


@pytest.fixture
def export(tmp_path):
    """A registry export in its own folder, with a neighbour, as a user would have it."""
    folder = tmp_path / "export"
    folder.mkdir()
    data = write_registry(example_registry(), folder / "registry.csv")
    (folder / "codebook.pdf").write_bytes(b"%PDF-1.4 the site's codebook")
    return data


@pytest.fixture
def thesis(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "thesis.docx").write_text("t\n")
    return folder


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """Two tiny notebooks in place of the real ones, and a registry outside the output."""
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    tiny_notebook(nbdir / "01_a.ipynb", "print('first')")
    tiny_notebook(nbdir / "02_b.ipynb", WRITE_RESULTS)
    monkeypatch.setattr(pipeline, "NOTEBOOKS_DIR", nbdir)
    monkeypatch.setattr(pipeline, "NOTEBOOKS", ("01_a", "02_b"))
    monkeypatch.setenv("ESI_PSEUDONYM_KEY", str(tmp_path / "key" / "pseudonym.key"))
    data = write_registry(example_registry(), tmp_path / "data" / "registry.csv")
    return tmp_path, data


def _never(*args, **kwargs):
    raise AssertionError("work started although the output was refused")


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a run, a sweep or a multiverse starts its work."""
    monkeypatch.setattr(pipeline, "_run_notebooks", _never)
    monkeypatch.setattr(pipeline, "partial_folder", _never)
    monkeypatch.setattr(esi.sweep, "sweep", _never)
    monkeypatch.setattr("esi.pipeline.Analysis.cohort", _never)
    monkeypatch.setattr("esi.validate.validate_file", _never)


def refused(capsys, path: Path, *words: str) -> str:
    """The error of a refused command: one line, naming ``path`` and the rule."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0], err
    for w in words:
        assert w in lines[0], err
    return lines[0]


# --- the data-loss cases of issue 12 --------------------------------------------------------

@pytest.mark.parametrize("command", [["run"], ["sweep", "GRID"], ["sweep", "GRID", "--reports"],
                                     ["multiverse"]])
def test_a_folder_holding_a_users_file_is_refused(command, thesis, tmp_path, capsys, no_work):
    grid = tmp_path / "g.yaml"
    grid.write_text("grid:\n  ratio: [1]\n")
    before = snapshot(thesis)
    argv = [str(grid) if a == "GRID" else a for a in command]
    assert main([*argv, "--out", str(thesis)]) == 2
    refused(capsys, thesis, "esi did not make", MARKER)
    assert snapshot(thesis) == before
    assert no_partial_left(tmp_path)


@pytest.mark.parametrize("command", [["run"], ["sweep", "GRID"], ["multiverse"]])
def test_the_registry_folder_and_the_folders_above_it_are_refused(command, export, tmp_path,
                                                                   capsys, no_work):
    params = tmp_path / "p.yaml"
    params.write_text(f"data_path: {export}\n")
    grid = tmp_path / "g.yaml"
    grid.write_text("grid:\n  ratio: [1]\n")
    argv = [str(grid) if a == "GRID" else a for a in command]
    data = ["--data", str(export)] if command == ["run"] else ["--params", str(params)]
    before = snapshot(tmp_path)
    for out in (export.parent, tmp_path):
        assert main([*argv, *data, "--out", str(out)]) == 2
        refused(capsys, out, "holds the input file")
        assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", [["run"], ["sweep", "GRID"], ["multiverse"]])
def test_an_input_file_is_refused_as_output(command, export, tmp_path, capsys, no_work):
    params = tmp_path / "p.yaml"
    params.write_text(f"data_path: {export}\n")
    grid = tmp_path / "g.yaml"
    grid.write_text("grid:\n  ratio: [1]\n")
    argv = [str(grid) if a == "GRID" else a for a in command]
    before = snapshot(tmp_path)
    targets = [export, params] + ([grid] if "sweep" in command else [])
    for out in targets:
        assert main([*argv, "--params", str(params), "--out", str(out)]) == 2
        refused(capsys, out, "is an input file")
        assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", [["run"], ["sweep", "g.yaml"], ["multiverse"]])
def test_relative_parameter_and_grid_files_mean_the_current_folder(command, export, tmp_path,
                                                                   capsys, monkeypatch, no_work):
    # --params and the grid file given relative to the current folder are read from there
    # (they were taken from the project root: "cannot read the parameter file")
    (tmp_path / "p.yaml").write_text(f"data_path: {export}\n")
    (tmp_path / "g.yaml").write_text("grid:\n  ratio: [1]\n")
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    assert main([*command, "--params", "p.yaml", "--out", "export"]) == 2
    refused(capsys, export.parent, "holds the input file")
    assert main([*command, "--params", "p.yaml", "--out", "p.yaml"]) == 2
    refused(capsys, tmp_path / "p.yaml", "is an input file")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", [["run"], ["sweep", "GRID"], ["multiverse"]])
def test_the_project_root_and_its_source_folders_are_refused(command, tmp_path, capsys,
                                                             monkeypatch, no_work):
    grid = tmp_path / "g.yaml"
    grid.write_text("grid:\n  ratio: [1]\n")
    argv = [str(grid) if a == "GRID" else a for a in command]
    listing = sorted(os.listdir(PROJECT_ROOT))
    for out in (PROJECT_ROOT, PROJECT_ROOT.parent, PROJECT_ROOT / "notebooks",
                PROJECT_ROOT / "data", PROJECT_ROOT / "data" / "raw" / "results",
                PROJECT_ROOT / "esi" / "new", PROJECT_ROOT / ".git", PROJECT_ROOT / "tests"):
        assert main([*argv, "--out", str(out)]) == 2
        line = refused(capsys, out)
        assert "project root" in line or "project's" in line
    monkeypatch.chdir(PROJECT_ROOT)  # relative paths mean the current folder: "." is the root
    assert main([*argv, "--out", "."]) == 2
    refused(capsys, PROJECT_ROOT, "project root")
    link = tmp_path / "link"
    link.symlink_to(PROJECT_ROOT)  # a symbolic link is followed
    assert main([*argv, "--out", str(link)]) == 2
    refused(capsys, PROJECT_ROOT, "project root")
    assert sorted(os.listdir(PROJECT_ROOT)) == listing


def test_an_existing_file_is_refused_as_an_output_folder(tmp_path, capsys, no_work):
    target = tmp_path / "results.xlsx"
    target.write_bytes(b"a spreadsheet")
    for command in (["run"], ["multiverse"]):
        assert main([*command, "--out", str(target)]) == 2
        refused(capsys, target, "existing file")
    assert target.read_bytes() == b"a spreadsheet"


def test_synth_refuses_a_registry_export_and_a_folder(export, tmp_path, capsys, monkeypatch):
    import esi.synthetic

    monkeypatch.setattr(esi.synthetic, "generate_registry", _never)
    before = snapshot(tmp_path)
    assert main(["synth", "--out", str(export)]) == 2
    refused(capsys, export, "esi synth did not write")
    assert main(["synth", "--out", str(export.parent)]) == 2
    refused(capsys, export.parent, "is a folder", "--out takes a file name")
    assert main(["synth", "--out", str(PROJECT_ROOT / "README.md")]) == 2
    refused(capsys, PROJECT_ROOT / "README.md", "esi synth did not write")
    assert main(["synth", "--out", str(PROJECT_ROOT / "esi" / "registry.csv")]) == 2
    refused(capsys, PROJECT_ROOT / "esi" / "registry.csv", "project's esi/ folder")
    assert main(["synth", "--out", str(PROJECT_ROOT / "data" / "README.md")]) == 2
    refused(capsys, PROJECT_ROOT / "data" / "README.md", "esi synth did not write")
    assert snapshot(tmp_path) == before


def test_synth_replaces_only_a_file_it_wrote(tmp_path, capsys, monkeypatch):
    import esi.synthetic

    monkeypatch.setattr(esi.synthetic, "generate_registry", lambda seed: example_registry())
    monkeypatch.chdir(tmp_path)
    assert main(["synth", "--out", "reg.csv", "--seed", "7"]) == 0  # relative: current folder
    first = (tmp_path / "reg.csv").read_bytes()
    assert first.startswith(b"# SYNTHETIC DATA - not patients. Generated by")
    assert main(["synth", "--out", "reg.csv"]) == 0  # its own file: replaced
    assert (tmp_path / "reg.csv").read_bytes() != first  # the other seed's header
    # the header of the committed registry is recognised too
    check_output_target(SYNTHETIC_REGISTRY, "synth")
    capsys.readouterr()


def test_the_synthetic_header_is_what_esi_synth_writes(tmp_path):
    # the real generator, once: the recognised header follows write_synthetic_registry
    from esi.synthetic import write_synthetic_registry

    path = write_synthetic_registry(tmp_path / "r.csv", seed=11)
    assert outputs.SYNTHETIC_HEADER.fullmatch(path.read_text().splitlines()[0])
    assert check_output_target(path, "synth") == path.resolve()


def test_schema_writes_only_the_generated_data_dictionary(tmp_path, capsys, monkeypatch):
    import esi.paths

    readme = tmp_path / "README.md"
    monkeypatch.setattr(esi.paths, "DATA_DICTIONARY", readme)
    monkeypatch.setattr(outputs, "DATA_DICTIONARY", readme)
    readme.write_text("# my own notes\n")
    assert main(["schema", "--write"]) == 2
    refused(capsys, readme, "generated marker")
    assert readme.read_text() == "# my own notes\n"
    readme.write_text(f"# Data dictionary\n\n{outputs.GENERATED_DICTIONARY} Do not edit. -->\n")
    assert main(["schema", "--write"]) == 0
    assert readme.read_text().startswith("# Data dictionary: registry of lumbar")
    with pytest.raises(OutputRefused, match="writes data/README.md only"):
        check_output_target(tmp_path / "other.md", "schema")


def test_the_committed_data_dictionary_carries_the_generated_marker():
    check_output_target(PROJECT_ROOT / "data" / "README.md", "schema")


# --- read-only places ---------------------------------------------------------------------

@contextlib.contextmanager
def read_only(folder: Path):
    """Make ``folder`` unwritable for this process: mode 0555, or for root (whom modes do not
    stop) the immutable attribute."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root and chattr +i is not available: no read-only folder")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@pytest.mark.parametrize("command", [["run"], ["sweep", "GRID"], ["multiverse"], ["synth"]])
def test_a_read_only_place_gives_exit_2_and_a_clear_message(command, tmp_path, capsys,
                                                            no_work, monkeypatch):
    import esi.synthetic

    monkeypatch.setattr(esi.synthetic, "generate_registry", _never)
    grid = tmp_path / "g.yaml"
    grid.write_text("grid:\n  ratio: [1]\n")
    argv = [str(grid) if a == "GRID" else a for a in command]
    ro = tmp_path / "ro"
    ro.mkdir()
    with read_only(ro):
        for out in (ro / "out", ro / "deeper" / "out"):
            assert main([*argv, "--out", str(out)]) == 2
            refused(capsys, out, "read-only")
    assert list(ro.iterdir()) == []


def test_partial_folder_in_a_read_only_place_is_refused_not_a_traceback(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    with read_only(ro), pytest.raises(OutputRefused, match="cannot be written"):
        partial_folder(ro / "out")


# --- replacing an earlier output: only esi's own, atomically --------------------------------

def test_publish_folder_replaces_only_a_marked_output_of_the_same_kind(tmp_path):
    def build(text: str) -> Path:
        b = partial_folder(tmp_path / "out")
        (b / "result.csv").write_text(text)
        return b

    target = tmp_path / "out"
    target.mkdir()
    (target / "thesis.docx").write_text("t\n")
    b = build("1")
    with pytest.raises(OutputRefused, match="esi did not make"):
        publish_folder(b, target, "run")
    assert snapshot(target) == {"thesis.docx": b"t\n"}
    (target / "thesis.docx").unlink()  # an empty folder is replaced
    publish_folder(b, target, "run")
    marker = read_marker(target)
    assert marker["kind"] == "run" and marker["files"] == ["result.csv"]
    publish_folder(build("2"), target, "run")  # its own earlier output: replaced
    assert (target / "result.csv").read_text() == "2"
    b = build("3")
    with pytest.raises(OutputRefused, match="holds an esi run output, not a sweep output"):
        publish_folder(b, target, "sweep")
    (target / "notes.txt").write_text("mine")  # a user's file inside an esi output
    with pytest.raises(OutputRefused, match="holds notes.txt, which esi did not write"):
        publish_folder(b, target, "run")
    assert (target / "notes.txt").read_text() == "mine"
    assert (target / "result.csv").read_text() == "2"
    (target / MARKER).write_text("{not json")
    with pytest.raises(OutputRefused, match="no valid"):
        publish_folder(b, target, "run")


def test_run_replaces_its_own_earlier_folder_atomically(tiny, capsys, monkeypatch):
    tmp_path, data = tiny
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--data", str(data), "--out", "out", "--workers", "1"]) == 0
    out = tmp_path / "out"  # relative --out: the current folder
    marker = json.loads((out / MARKER).read_text())
    assert marker["kind"] == "run" and "provenance.json" in marker["files"]
    assert MARKER not in marker["files"]
    first = (out / "provenance.json").read_text()
    events = []
    real_replace = os.replace

    def replace(src, dst):  # watch the swap: the old folder stays whole until the new is
        src, dst = Path(src), Path(dst)
        if src == out:  # the old folder moved aside in one rename
            events.append(("aside", (src / "provenance.json").read_text() == first))
        elif dst == out:  # the finished, marked build renamed into place
            events.append(("in", (src / MARKER).exists(), out.exists()))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    assert main(["run", "--data", str(data), "--out", "out", "--workers", "1"]) == 0
    monkeypatch.setattr(os, "replace", real_replace)
    assert events == [("aside", True), ("in", True, False)]
    assert (out / "provenance.json").read_text() != first
    assert no_partial_left(tmp_path)
    # a file the user put into the run folder is never deleted: the next run is refused
    (out / "my_notes.txt").write_text("keep me")
    before = snapshot(out)
    capsys.readouterr()
    assert main(["run", "--data", str(data), "--out", "out", "--workers", "1"]) == 2
    refused(capsys, out, "my_notes.txt", "esi did not write")
    assert snapshot(out) == before


def test_default_reports_target_and_index_twice_in_a_row(tiny, capsys, monkeypatch):
    tmp_path, data = tiny
    reports = tmp_path / "reports"
    reports.mkdir()
    monkeypatch.setattr(pipeline, "REPORTS_DIR", reports)
    monkeypatch.setattr(outputs, "REPORTS_DIR", reports)
    monkeypatch.setattr(pipeline.write_reports_index, "__defaults__", (reports,))
    for _ in range(2):  # `make reports` twice: the second replaces the first
        assert main(["run", "--data", str(data), "--workers", "1"]) == 0
        assert (reports / "default" / MARKER).exists()
        assert 'href="default/index.html"' in (reports / "index.html").read_text()
    # a reports/index.html that esi did not write is not replaced
    (reports / "index.html").write_text("<html>my page</html>")
    capsys.readouterr()
    assert main(["run", "--data", str(data), "--workers", "1"]) == 2
    refused(capsys, reports / "index.html", "esi did not write")
    assert (reports / "index.html").read_text() == "<html>my page</html>"


def test_sweep_replaces_only_its_own_earlier_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ESI_PSEUDONYM_KEY", str(tmp_path / "key" / "pseudonym.key"))
    data = write_registry(example_registry(n=120, seed=3), tmp_path / "data" / "registry.csv")
    base = tmp_path / "base.yaml"
    base.write_text(f"data_path: {data}\n")
    grid = tmp_path / "g.yaml"
    grid.write_text("grid:\n  ratio: [1]\n")
    out = tmp_path / "sweep"
    argv = ["sweep", str(grid), "--params", str(base), "--workers", "1", "--out", str(out)]
    assert main(argv) == 0
    assert read_marker(out)["kind"] == "sweep"
    first = snapshot(out)
    assert main(argv) == 0  # its own earlier folder: replaced
    assert snapshot(out) == first  # same grid, same bytes
    assert no_partial_left(tmp_path)
    # a sweep folder is not a multiverse folder
    capsys.readouterr()
    assert main(["multiverse", "--params", str(base), "--out", str(out)]) == 2
    refused(capsys, out, "holds an esi sweep output, not a multiverse output")
    assert snapshot(out) == first


def test_an_unmarked_or_mismarked_folder_is_never_taken_for_an_output(tmp_path):
    folder = tmp_path / "reports-like"
    folder.mkdir()
    (folder / "index.html").write_text("<html></html>")  # looks like a run folder: not enough
    with pytest.raises(OutputRefused, match="esi did not make"):
        check_output_target(folder, "run")
    (folder / MARKER).write_text(json.dumps({"kind": "run"}))  # no file list: not a marker
    with pytest.raises(OutputRefused, match="esi did not make"):
        check_output_target(folder, "run")
    write_marker(folder, "run")
    assert check_output_target(folder, "run") == folder.resolve()
    with pytest.raises(ValueError, match="kind must be one of"):
        check_output_target(folder, "report")


def test_the_committed_reference_run_is_a_marked_run_folder():
    # `make reference` (esi run --out reports/reference) may replace it, and only it
    from esi.paths import REFERENCE_RUN_DIR

    check_output_target(REFERENCE_RUN_DIR, "run")
    with pytest.raises(OutputRefused):
        check_output_target(REFERENCE_RUN_DIR, "sweep")
