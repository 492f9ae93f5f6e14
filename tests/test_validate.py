"""A corpus of broken registry files: each asserts the exact problem and unchanged bytes."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from esi.io import RegistryError, read_registry, write_registry
from esi.validate import validate_file


def _csv(tmp_path: Path, frame: pd.DataFrame, name: str = "r.csv") -> Path:
    return write_registry(frame, tmp_path / name)


def _edit(path: Path, old: str, new: str, count: int = 1) -> Path:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, count))
    return path


def _check(path: Path, expected: list[str]) -> None:
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    report = validate_file(path)
    got = [str(p) for p in report.problems]
    assert got == expected
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_clean_file_has_no_problem(tmp_path, registry_frame):
    path = _csv(tmp_path, registry_frame)
    report = validate_file(path)
    assert report.ok and report.n_rows == 8 and report.registry is not None


def test_empty_file(tmp_path):
    p = tmp_path / "empty.csv"
    p.write_bytes(b"")
    _check(p, [f"{p}: [empty-file] the file is empty"])


def test_header_only(tmp_path, registry_frame):
    p = _csv(tmp_path, registry_frame.iloc[:0])
    _check(p, [f"{p}: [no-patients] the file has a header but no patients"])


def test_missing_required_column(tmp_path, registry_frame):
    p = _csv(tmp_path, registry_frame)
    lines = p.read_text().splitlines()
    rows = [line.split(",") for line in lines]
    k = rows[0].index("bmi")
    p.write_text("\n".join(",".join(r[:k] + r[k + 1:]) for r in rows) + "\n")
    _check(p, [f"{p}: column bmi: [missing-column] required column is absent"])


def test_unknown_extra_column(tmp_path, registry_frame):
    p = _csv(tmp_path, registry_frame.assign(favourite_colour="blue"), "x.csv")
    text = p.read_text().splitlines()
    text[0] += ",favourite_colour"
    p.write_text("\n".join([text[0]] + [t + ",blue" for t in text[1:]]) + "\n")
    _check(p, [f"{p}: column favourite_colour: [unknown-column] not in the data dictionary "
               "(data/README.md)"])


def test_identifier_column_by_name(tmp_path, registry_frame):
    p = _csv(tmp_path, registry_frame)
    text = p.read_text().splitlines()
    p.write_text("\n".join([text[0] + ",patient_name"] + [t + ",Jane Doe" for t in text[1:]])
                 + "\n")
    _check(p, [f"{p}: column patient_name: [direct-identifier] column looks like a direct "
               "identifier (a person's name); remove it before analysis"])


def test_identifier_column_by_content(tmp_path, registry_frame):
    p = _csv(tmp_path, registry_frame)
    text = p.read_text().splitlines()
    p.write_text("\n".join([text[0] + ",contact"]
                           + [t + f",pat{i}@example.org" for i, t in enumerate(text[1:])])
                 + "\n")
    _check(p, [f"{p}: column contact: [direct-identifier] column looks like a direct "
               "identifier (an e-mail address); remove it before analysis"])


def test_mrn_like_patient_ids(tmp_path, registry_frame):
    frame = registry_frame.copy()
    frame.index = [f"{1234567 + i}" for i in range(len(frame))]
    p = _csv(tmp_path, frame)
    _check(p, [f"{p}: column patient_id: [direct-identifier] patient_id values look like "
               "a medical record number; use study pseudonyms"])


def test_wrong_type(tmp_path, registry_frame):
    p = _csv(tmp_path, registry_frame)
    lines = p.read_text().splitlines()
    cells = lines[3].split(",")
    cells[lines[0].split(",").index("age")] = "fifty"
    lines[3] = ",".join(cells)
    p.write_text("\n".join(lines) + "\n")
    _check(p, [f"{p}: line 4: patient T003: column age: value 'fifty': [wrong-type] expected "
               "a whole number"])


def test_out_of_range(tmp_path, registry_frame):
    frame = registry_frame.copy()
    frame.iloc[0, frame.columns.get_loc("baseline_odi")] = 120.0
    p = _csv(tmp_path, frame)
    _check(p, [f"{p}: line 2: patient T001: column baseline_odi: value '120': [out-of-range] "
               "must lie in 0 to 100"])


def test_off_step_score(tmp_path, registry_frame):
    frame = registry_frame.copy()
    frame.iloc[1, frame.columns.get_loc("leg_pain_4w")] = 6.3
    p = _csv(tmp_path, frame)
    _check(p, [f"{p}: line 3: patient T002: column leg_pain_4w: value '6.3': [off-step] must "
               "lie in 0 to 10, steps of 0.5"])


def test_unknown_category_code(tmp_path, registry_frame):
    frame = registry_frame.copy()
    frame.iloc[0, frame.columns.get_loc("sex")] = "F"
    p = _csv(tmp_path, frame)
    _check(p, [f"{p}: line 2: patient T001: column sex: value 'F': [unknown-code] allowed "
               "codes are female, male"])


def test_duplicate_id(tmp_path, registry_frame):
    frame = registry_frame.copy()
    frame.index = ["T001"] + list(frame.index[1:4]) + ["T001"] + list(frame.index[5:])
    p = _csv(tmp_path, frame)
    _check(p, [f"{p}: line 6: patient T001: column patient_id: value 'T001': [duplicate-id] "
               "patient_id already used on line 2"])


def test_impossible_date(tmp_path, registry_frame):
    p = _csv(tmp_path, registry_frame)
    first = registry_frame["procedure_date"].iloc[0].date().isoformat()
    _edit(p, f",{first},", ",2021-02-30,")
    _check(p, [f"{p}: line 2: patient T001: column procedure_date: value '2021-02-30': "
               "[impossible-date] no such calendar date"])


def test_future_date(tmp_path, registry_frame):
    p = _csv(tmp_path, registry_frame)
    first = registry_frame["procedure_date"].iloc[0].date().isoformat()
    _edit(p, f",{first},", ",2999-01-01,")
    _check(p, [f"{p}: line 2: patient T001: column procedure_date: value '2999-01-01': "
               "[date-future] the date lies in the future"])


def test_follow_up_values_for_missed_visit(tmp_path, registry_frame):
    frame = registry_frame.copy()
    frame.iloc[0, frame.columns.get_loc("visit_missed_12w")] = True
    for c in ["back_pain_12w", "odi_12w", "gpe_12w", "satisfaction_12w", "analgesic_use_12w",
              "mme_12w", "additional_intervention_12w"]:
        frame[c] = frame[c].astype(object)
        frame.iloc[0, frame.columns.get_loc(c)] = None
    p = _csv(tmp_path, frame)
    leg = frame["leg_pain_12w"].iloc[0]
    leg_txt = str(int(leg)) if float(leg).is_integer() else str(leg)
    _check(p, [f"{p}: line 2: patient T001: column leg_pain_12w: value '{leg_txt}': "
               "[missed-visit-empty] the 12-week visit was missed, so this must be empty"])


def test_contradictory_mri_fields(tmp_path, registry_frame):
    frame = registry_frame.copy()
    # T001 is near-normal (no compression, grades <= 1) yet marked concordant.
    frame.iloc[0, frame.columns.get_loc("pathology_concordant")] = True
    p = _csv(tmp_path, frame)
    _check(p, [f"{p}: line 2: patient T001: column pathology_concordant: value 'true': "
               "[concordant-without-pathology] pathology_concordant is true but the MRI shows "
               "no root compression, no herniation grade 2+ and no stenosis grade 2+"])


def test_mme_without_opioid(tmp_path, registry_frame):
    frame = registry_frame.copy()
    frame.iloc[1, frame.columns.get_loc("baseline_mme")] = 40.0  # T002 takes no opioid
    p = _csv(tmp_path, frame)
    _check(p, [f"{p}: line 3: patient T002: column baseline_mme: value '40': "
               "[mme-without-opioid] baseline_mme is above 0 but opioid_use is false"])


def test_truncated_row(tmp_path, registry_frame):
    p = _csv(tmp_path, registry_frame)
    lines = p.read_text().splitlines()
    lines[3] = ",".join(lines[3].split(",")[:20])
    p.write_text("\n".join(lines) + "\n")
    n = len(lines[0].split(","))
    _check(p, [f"{p}: line 4: patient T003: [truncated-row] the row has 20 fields where the "
               f"header has {n}; it was cut short"])


def test_undecodable_bytes(tmp_path, registry_frame):
    p = _csv(tmp_path, registry_frame)
    data = p.read_bytes().replace(b",never,", b",n\xe9ver,", 1)
    p.write_bytes(data)
    off = data.index(b"\xe9")
    _check(p, [f"{p}: line 2: [undecodable-bytes] byte(s) e9 at offset {off} are not UTF-8; "
               "save the file as UTF-8"])


def test_unsupported_format(tmp_path):
    p = tmp_path / "registry.sav"
    p.write_bytes(b"\x00\x01binary")
    _check(p, [f"{p}: [unsupported-format] file type '.sav' is not supported; use CSV (.csv), "
               "Parquet (.parquet) or Excel (.xlsx)"])


def test_corrupt_parquet(tmp_path):
    p = tmp_path / "registry.parquet"
    p.write_bytes(b"PAR1 this is not really parquet")
    report = validate_file(p)
    assert [q.rule for q in report.problems] == ["unreadable"]
    assert str(report.problems[0]).startswith(f"{p}: [unreadable] not a readable Parquet file")


def test_parquet_and_excel_are_checked_like_csv(tmp_path, registry_frame):
    frame = registry_frame.copy()
    frame.iloc[2, frame.columns.get_loc("gpe_4w")] = 9
    flat = frame.reset_index()
    flat["procedure_date"] = flat["procedure_date"].dt.strftime("%Y-%m-%d")
    pq, xl = tmp_path / "r.parquet", tmp_path / "r.xlsx"
    flat.to_parquet(pq)
    flat.to_excel(xl, index=False)
    for p in (pq, xl):
        _check(p, [f"{p}: line 4: patient T003: column gpe_4w: value '9': [out-of-range] must "
                   "lie in 1 to 7, whole numbers"])


def test_read_registry_refuses_with_every_problem(tmp_path, registry_frame):
    frame = registry_frame.copy()
    frame.iloc[0, frame.columns.get_loc("sex")] = "F"
    frame.iloc[1, frame.columns.get_loc("baseline_odi")] = 101.0
    p = _csv(tmp_path, frame)
    with pytest.raises(RegistryError) as err:
        read_registry(p)
    assert len(err.value.problems) == 2
    assert "2 problem(s); the registry was not read" in str(err.value)


def test_cli_validate_exit_codes(tmp_path, registry_frame):
    good = _csv(tmp_path, registry_frame, "good.csv")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"")
    run = [sys.executable, "-m", "esi.cli", "validate"]
    ok = subprocess.run(run + [str(good)], capture_output=True, text=True)
    assert ok.returncode == 0 and "valid (8 patients" in ok.stdout
    ko = subprocess.run(run + [str(bad)], capture_output=True, text=True)
    assert ko.returncode == 2
    assert ko.stdout.strip() == f"{bad}: [empty-file] the file is empty"
    assert "Traceback" not in ko.stderr
    missing = subprocess.run(run + [str(tmp_path / "nope.csv")], capture_output=True, text=True)
    assert missing.returncode == 2 and "[no-file] no such file" in missing.stdout


def test_stray_quote_that_closes_later_is_still_named(tmp_path, registry_frame):
    # A second stray quote closes the field three lines on: the row has the header's number
    # of fields again, but the field swallowed whole rows.
    p = _csv(tmp_path, registry_frame)
    lines = p.read_text().splitlines()
    header = lines[0].split(",")
    a, b = lines[2].split(","), lines[5].split(",")
    a[header.index("bmi")] = '"' + a[header.index("bmi")]
    b[header.index("bmi")] += '"'
    lines[2], lines[5] = ",".join(a), ",".join(b)
    p.write_text("\n".join(lines) + "\n")
    report = validate_file(p)
    assert [str(q) for q in report.problems] == [
        f"{p}: line 3: column bmi: [unbalanced-quote] a field of this row starts with a quote "
        "(\") that is not closed on its line, so the field runs on to line 6 and swallows the "
        "3 line(s) below it; remove the stray quote (a quote that belongs to a value is "
        "written doubled inside a quoted field: \"5\"\" disc\")"]


def test_stray_quote_beyond_the_field_limit(tmp_path, registry_frame):
    import csv

    p = _csv(tmp_path, registry_frame)
    lines = p.read_text().splitlines()
    body = lines[1:] * (csv.field_size_limit() // sum(map(len, lines[1:])) + 2)
    p.write_text("\n".join([lines[0], '"' + lines[1]] + body) + "\n")
    report = validate_file(p)
    assert [q.rule for q in report.problems] == ["unbalanced-quote"]
    assert report.problems[0].line == 2
    assert "T00" not in str(report.problems[0])


def test_tab_separated_file_gets_a_delimiter_hint(tmp_path, registry_frame):
    p = _csv(tmp_path, registry_frame)
    p.write_text(p.read_text().replace(",", "\t"))
    report = validate_file(p)
    assert [q.rule for q in report.problems] == ["wrong-delimiter"]
    assert "the file looks tab-separated" in str(report.problems[0])
    assert 'delimiter: "\\t"' in str(report.problems[0])


def test_problem_values_and_ids_are_one_short_line():
    from esi.validate import Problem

    q = Problem("f.csv", "wrong-type", "expected a number", line=2,
                patient_id="P1,2,3\nP2,4,5", column="bmi", value="x" * 100 + "\nnext row")
    assert q.value == "x" * 57 + "..." and q.patient_id == "P1,2,3..."
    assert str(q) == (f"f.csv: line 2: patient P1,2,3...: column bmi: value '{q.value}': "
                      "[wrong-type] expected a number")
