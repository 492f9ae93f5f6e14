"""Imports: column mapping, REDCap exports, CSV/Parquet/Excel round trips (esi.imports)."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import pandas as pd
import pytest

from esi.imports import (
    Mapping,
    apply_mapping,
    changed_inputs,
    input_fingerprints,
    load_mapping,
    load_table,
    read_redcap,
)
from esi.io import read_registry, write_registry
from esi.paths import PARAMS_DIR
from esi.schema import SCHEMA
from esi.validate import RawTable, validate_frame

from factory import example_registry

REDCAP = Path(__file__).resolve().parent / "data" / "redcap"
RECORDS = REDCAP / "esi_records.csv"
DICTIONARY = REDCAP / "esi_dictionary.csv"
EXAMPLE = PARAMS_DIR / "mapping.example.yaml"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the example mapping and the REDCap round trip ------------------------------------------

def test_example_mapping_loads():
    m = load_mapping(EXAMPLE)
    assert m.source == str(EXAMPLE)
    assert m.redcap_dictionary == DICTIONARY
    assert m.columns["record_id"] == "patient_id"
    assert m.codes["sex"] == {"Female": "female", "Male": "male"}
    assert m.codes["foraminal_stenosis_grade"] == m.codes["canal_stenosis_grade"]  # anchor
    assert m.drop == ("notes",) and m.missing == ("-99",) and m.date_format == "%Y-%m-%d"
    assert set(m.columns.values()) | {"bmi"} == set(SCHEMA)


def test_redcap_round_trip_passes_validation_and_leaves_inputs_unchanged():
    before = {p: sha(p) for p in (RECORDS, DICTIONARY, EXAMPLE)}
    table, problems = read_redcap(RECORDS, DICTIONARY)
    assert problems == []
    assert "notes" in table.header and "mri_complete" not in table.header
    mapped, problems = apply_mapping(table, load_mapping(EXAMPLE), "esi_records.csv")
    assert problems == []
    problems, registry = validate_frame(mapped, "esi_records.csv")
    assert problems == []
    assert list(registry.index) == [f"ESI-00{i}" for i in range(1, 7)]
    assert registry["sex"].tolist() == ["female", "male", "female", "male", "female", "male"]
    assert registry["source_study"].tolist() == ["mri_rct", "referral", "gabapentin_rct",
                                                 "predictors", "hypersensitivity",
                                                 "other_prospective"]
    assert registry["opioid_use"].tolist() == [True, False, False, True, False, True]
    assert registry["gpe_4w"].tolist()[:2] == [2, 4]
    assert registry["employment"].tolist()[3] == "disabled"
    assert registry["foraminal_stenosis_grade"].tolist()[:2] == [1, 2]
    assert registry["additional_intervention_days_12w"].isna().tolist() == \
        [True, False, True, True, False, True]
    assert registry["visit_missed_12w"].tolist()[3] is True
    assert {p: sha(p) for p in before} == before


def test_load_table_reads_the_redcap_export_named_by_the_mapping():
    result = load_table(RECORDS, mapping=EXAMPLE)
    assert result.problems == ()
    problems, registry = validate_frame(result.table, str(RECORDS))
    assert problems == [] and len(registry) == 6
    assert result.inputs["path"].tolist() == [str(RECORDS), str(DICTIONARY), str(EXAMPLE)]
    assert result.inputs["sha256"].tolist() == [sha(RECORDS), sha(DICTIONARY), sha(EXAMPLE)]
    assert changed_inputs(result.inputs).empty


def test_changed_inputs_notices_an_edit(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("a\n1\n")
    before = input_fingerprints([f])
    assert before["bytes"].tolist() == [4]
    f.write_text("a\n2\n")
    changed = changed_inputs(before)
    assert changed["path"].tolist() == [str(f)] and changed["sha256_after"].iloc[0] == sha(f)
    f.unlink()
    assert changed_inputs(before)["sha256_after"].tolist() == ["(missing)"]


# --- plain files with the user's names and codes ---------------------------------------------

def _user_export(tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A valid registry, and the same written the user's way (names, codes, dates, -99)."""
    registry = read_registry(write_registry(example_registry(10, seed=3),
                                            tmp_path / "canonical.csv"))
    text = pd.read_csv(tmp_path / "canonical.csv", dtype=str, keep_default_na=False)
    user = text.rename(columns={"patient_id": "Study No", "sex": "Gender",
                                "procedure_date": "Injection date"})
    user["Gender"] = user["Gender"].map({"female": "F", "male": "M"})
    user["Injection date"] = pd.to_datetime(user["Injection date"]).dt.strftime("%d/%m/%Y")
    for c, col in SCHEMA.items():
        if col.dtype == "boolean":
            user[c] = user[c].map({"true": "Y", "false": "N", "": "-99"})
    user["comment"] = ["ok"] * len(user)
    return registry, user


USER_MAPPING = """\
columns:
  Study No: patient_id
  Gender: sex
  Injection date: procedure_date
codes:
  sex: {F: female, M: male}
  boolean: {Y: "true", N: "false"}
drop: [comment]
date_format: "%d/%m/%Y"
missing: ["-99"]
"""


@pytest.mark.parametrize("fmt", ["csv", "parquet", "xlsx"])
def test_user_export_round_trip(tmp_path, fmt):
    registry, user = _user_export(tmp_path)
    path = tmp_path / f"export.{fmt}"
    if fmt == "csv":
        user.to_csv(path, index=False)
    elif fmt == "parquet":
        user.to_parquet(path, index=False)
    else:
        user.to_excel(path, index=False)
    mapping = tmp_path / "m.yaml"
    mapping.write_text(USER_MAPPING)
    digest = sha(path)
    result = load_table(path, mapping=mapping)
    assert result.problems == ()
    problems, typed = validate_frame(result.table, str(path))
    assert problems == []
    pd.testing.assert_frame_equal(typed, registry)
    assert sha(path) == digest


# --- mapping errors: one exact message each -------------------------------------------------

@pytest.mark.parametrize("text, key, rule", [
    ("columns: [a, b", "(file)", "not valid YAML"),
    ("", "(file)", "the mapping is empty; expected some of the keys columns, codes, drop, "
                   "date_format, missing, redcap_dictionary"),
    ("- a\n- b\n", "(file)", "the mapping must be a set of `key: value` entries"),
    ("colums:\n  a: sex\n", "colums", "unknown key; allowed keys are columns, codes, drop, "
                                      "date_format, missing, redcap_dictionary"),
    ("columns:\n  gender: sexx\n", "columns.gender",
     "'sexx' is not a column of the registry schema (data/README.md)"),
    ("columns:\n  gender: sex\n  sex_code: sex\n", "columns.sex_code",
     "'gender' and 'sex_code' both map to schema column 'sex'; map one user column to each "
     "schema column"),
    ("columns:\n  gender: sex\n  gender: age\n", "gender",
     "key written twice (lines 2 and 3)"),
    ("columns:\n  gender: [sex]\n", "columns.gender", "must be a schema column name"),
    ("columns:\n  MRN: patient_id\n", "columns.MRN",
     "the name suggests a medical record number; a direct identifier cannot be imported: "
     "remove the column from the export"),
    ("codes:\n  sex: {F: woman}\n", "codes.sex.F",
     "'woman' is not an allowed code of 'sex' (female, male)"),
    ("codes:\n  sexx: {F: female}\n", "codes.sexx",
     "'sexx' is not a column of the registry schema (data/README.md) nor 'boolean'"),
    ("codes:\n  boolean: {Y: yes}\n", "codes.boolean.Y",
     "'yes' is not a boolean code; use \"true\" or \"false\""),
    ("codes:\n  gpe_4w: {Much improved: two}\n", "codes.gpe_4w.Much improved",
     "'two' is not a number, as 'gpe_4w' needs"),
    ("codes:\n  gpe_4w: {Much improved: '2.5'}\n", "codes.gpe_4w.Much improved",
     "'2.5' is not a whole number, as 'gpe_4w' needs"),
    ("codes:\n  procedure_date: {x: '2020-01-01'}\n", "codes.procedure_date.x",
     "codes cannot target a date column; use date_format"),
    ("codes:\n  sex: {}\n", "codes.sex", "must map user codes to schema codes"),
    ("drop: [patient_name]\n", "drop.patient_name",
     "the name suggests a person's name; a direct identifier is never dropped silently: "
     "remove the column from the export"),
    ("columns:\n  notes: mri_levels\ndrop: [notes]\n", "drop.notes",
     "the column is also mapped under columns; drop it or map it, not both"),
    ("drop: [a, a]\n", "drop", "'a' is listed twice"),
    ("missing: {a: b}\n", "missing", "must be a list of texts"),
    ("date_format: dd/mm/yyyy\n", "date_format",
     "must be a strptime format such as \"%d/%m/%Y\""),
    ("date_format: '%m/%Y'\n", "date_format", "'%m/%Y' does not hold day, month and year"),
])
def test_mapping_errors(tmp_path, text, key, rule):
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        load_mapping(path)
    assert str(err.value).startswith(f"{path}: {key}: {rule}")


def test_mapping_file_missing(tmp_path):
    with pytest.raises(ValueError, match=r"nope\.yaml: \(file\): no such mapping file$"):
        load_mapping(tmp_path / "nope.yaml")


def test_yaml_scalars_stay_text(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("codes:\n  boolean: {yes: 'true', no: 'false', 1: 'true', 0: 'false'}\n")
    assert load_mapping(path).codes["boolean"] == {"yes": "true", "no": "false", "1": "true",
                                                   "0": "false"}


# --- apply_mapping problems -------------------------------------------------------------------

def _table() -> RawTable:
    return RawTable(["id", "gender", "sex", "when", "email_notes", "odd"],
                    [["T1", "F", "female", "31/12/2019", "a@b.org", 1.0],
                     ["T2", "X", "male", "2019-12-31", "c@d.org", 0.0]], [2, 3])


def test_apply_mapping_reports_each_problem():
    m = Mapping(source="m.yaml", columns={"id": "patient_id", "gender": "sex",
                                          "when": "procedure_date", "absent": "age",
                                          "odd": "opioid_use"},
                codes={"sex": {"F": "female", "M": "male"},
                       "boolean": {"1": "true", "0": "false"}},
                drop=("email_notes", "gone"), date_format="%d/%m/%Y")
    out, problems = apply_mapping(_table(), m, "reg.csv")
    assert out.header == ["patient_id", "sex", "sex", "procedure_date", "opioid_use"]
    assert out.rows[0] == ["T1", "female", "female", "2019-12-31", "true"]
    assert out.rows[1][1] == "X" and out.rows[1][3] == "2019-12-31"
    assert out.lines == [2, 3]
    got = [(p.rule, p.line, p.patient_id, p.column, p.value, p.privacy) for p in problems]
    assert got == [
        ("mapping-collision", None, None, "sex", None, False),
        ("mapped-column-missing", None, None, "absent", None, False),
        ("direct-identifier", None, None, "email_notes", None, True),
        ("dropped-column-missing", None, None, "gone", None, False),
        ("unmapped-code", 3, "T2", "sex", "X", False),
        ("date-format", 3, "T2", "procedure_date", "2019-12-31", False),
    ]
    msgs = {p.rule: p.message for p in problems}
    assert msgs["mapped-column-missing"] == ("m.yaml maps 'absent' to 'age', but the file has "
                                             "no column 'absent'")
    assert msgs["unmapped-code"] == ("no entry for this value under codes.sex of m.yaml "
                                     "(user column 'gender')")
    assert msgs["direct-identifier"].startswith("listed under drop: in m.yaml, but its values "
                                                "look like an e-mail address")
    assert "a@b.org" not in " ".join(str(p) for p in problems)


def test_apply_mapping_missing_texts_and_arguments():
    table = RawTable(["patient_id", "baseline_mme"], [["T1", "-99"], ["T2", -99]], [2, 3])
    out, problems = apply_mapping(table, Mapping("m.yaml", missing=("-99",)), "r.csv")
    assert problems == [] and out.rows == [["T1", ""], ["T2", ""]]
    with pytest.raises(ValueError, match="RawTable"):
        apply_mapping(pd.DataFrame(), Mapping("m.yaml"), "r.csv")
    with pytest.raises(ValueError, match="Mapping"):
        apply_mapping(table, {"columns": {}}, "r.csv")


# --- REDCap specifics -------------------------------------------------------------------------

DICT_HEADER = ["Variable / Field Name", "Form Name", "Section Header", "Field Type",
               "Field Label", "Choices, Calculations, OR Slider Labels", "Field Note",
               "Text Validation Type OR Show Slider Number", "Text Validation Min",
               "Text Validation Max", "Identifier?"]


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    path.write_text(buf.getvalue())
    return path


def _small_project(tmp_path: Path, records: list[list[str]], header: list[str],
                   identifier: str = "") -> tuple[Path, Path]:
    fields = [["record_id", "base", "", "text", "ID", "", "", "", "", "", ""],
              ["sex", "base", "", "radio", "Sex", "1, Female | 2, Male", "", "", "", "", ""],
              ["meds", "base", "", "checkbox", "Meds", "1, Opioid | 2, NSAID", "", "", "", "",
               ""],
              ["pt_phone", "base", "", "text", "Phone", "", "", "phone", "", "", identifier],
              ["leg_4", "week4", "", "text", "Leg pain", "", "", "number", "", "", ""],
              ["improved", "week4", "", "yesno", "Improved", "", "", "", "", "", ""]]
    d = _write_csv(tmp_path / "dict.csv", DICT_HEADER, fields)
    r = _write_csv(tmp_path / "records.csv", header, records)
    return r, d


FLAT = ["record_id", "sex", "meds___1", "meds___2", "pt_phone", "base_complete", "leg_4",
        "improved", "week4_complete"]


def test_redcap_decoding_and_identifier_tag(tmp_path):
    r, d = _small_project(tmp_path, [["1", "1", "1", "0", "", "2", "4.5", "1", "2"],
                                     ["2", "3", "0", "1", "", "2", "", "0", "0"]], FLAT,
                          identifier="y")
    before = (sha(r), sha(d))
    table, problems = read_redcap(r, d)
    assert table.header == ["record_id", "sex", "meds___1", "meds___2", "pt_phone", "leg_4",
                            "improved"]
    assert table.rows[0] == ["1", "Female", "true", "false", "", "4.5", "Yes"]
    assert table.rows[1][1] == "3" and table.rows[1][6] == "No"
    got = [(p.rule, p.line, p.patient_id, p.column, p.value, p.privacy) for p in problems]
    assert got == [("direct-identifier", None, None, "pt_phone", None, True),
                   ("redcap-unknown-code", 3, "2", "sex", "3", False)]
    raw, _ = read_redcap(r, d, labels=False)
    assert raw.rows[0][:4] == ["1", "1", "1", "0"]
    assert (sha(r), sha(d)) == before


def test_redcap_longitudinal_events_are_merged(tmp_path):
    header = ["record_id", "redcap_event_name"] + FLAT[1:]
    rows = [["1", "baseline_arm_1", "2", "1", "0", "", "2", "", "", ""],
            ["1", "week_4_arm_1", "", "0", "0", "", "", "3", "1", "2"],
            ["2", "baseline_arm_1", "1", "0", "1", "", "2", "", "", ""]]
    r, d = _small_project(tmp_path, rows, header)
    table, problems = read_redcap(r, d)
    assert problems == []
    assert "redcap_event_name" not in table.header
    assert table.lines == [2, 4]
    # the week-4 row's unchecked boxes do not count: its "base" form holds no data there
    assert table.rows[0] == ["1", "Male", "true", "false", "", "3", "Yes"]
    rows[1][2] = "1"  # the base form filled in two events, with different values
    r, d = _small_project(tmp_path, rows, header)
    _, problems = read_redcap(r, d)
    assert [(p.rule, p.line, p.column, p.value) for p in problems] == [
        ("redcap-event-conflict", 3, "sex", "1"), ("redcap-event-conflict", 3, "meds___1", "0")]
    assert problems[0].message == ("record '1' has '2' in the event on line 2 and another "
                                   "value here; a field must be filled in one event only")


def test_redcap_repeating_rows_are_refused(tmp_path):
    header = ["record_id", "redcap_repeat_instrument", "redcap_repeat_instance"] + FLAT[1:]
    rows = [["1", "", "", "1", "1", "0", "", "2", "4", "1", "2"],
            ["1", "week4", "2", "", "", "", "", "", "3", "0", "2"]]
    r, d = _small_project(tmp_path, rows, header)
    table, problems = read_redcap(r, d)
    assert [(p.rule, p.line, p.patient_id, p.value) for p in problems] == [
        ("redcap-repeating", 3, "1", "week4")]
    assert len(table.rows) == 1 and "redcap_repeat_instance" not in table.header


def test_redcap_unknown_field_and_bad_dictionary(tmp_path):
    r, d = _small_project(tmp_path, [["1", "1", "1", "0", "", "2", "4", "1", "2", "x"]],
                          FLAT + ["mystery"])
    _, problems = read_redcap(r, d)
    assert [(p.rule, p.column) for p in problems] == [("redcap-unknown-field", "mystery")]
    bad = _write_csv(tmp_path / "bad.csv", ["field", "type"], [["a", "text"]])
    table, problems = read_redcap(r, bad)
    assert table is None
    assert problems[0].rule == "redcap-dictionary"
    assert "'Variable / Field Name'" in problems[0].message
    table, problems = read_redcap(tmp_path / "none.csv", d)
    assert table is None and [p.rule for p in problems] == ["no-file"]


@pytest.mark.parametrize("text, key, rule", [
    ("delimiter: ':'\n", "delimiter", "must be one of ',', ';', '\\t', '|' (one character)"),
    ("decimal: ';'\n", "decimal", "must be \".\" or \",\""),
    ("decimal: ','\n", "decimal", "a decimal comma needs another field delimiter"),
    ("sheet: ''\n", "sheet", "must be the name of a sheet of the Excel file"),
    ("columns: \"\\e[31m\"\n", "columns", "must map user column names to schema column names"),
    ("columns:\n  \"x\\e[31m\": sexx\n", "columns.x\\x1b[31m", "'sexx' is not a column"),
    ("missing: &a [x]\ndrop: &b [*a]\n", "(file)", "the alias *a stands inside the "
                                                   "anchored value &b; aliases may not nest"),
])
def test_more_mapping_errors(tmp_path, text, key, rule):
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        load_mapping(path)
    assert str(err.value).startswith(f"{path}: {key}: {rule}")
    assert "\x1b" not in str(err.value)


def test_mapping_bytes_that_are_not_utf8(tmp_path):
    path = tmp_path / "mapping.yaml"
    path.write_bytes(b"drop: [caf\xe9]\n")
    with pytest.raises(ValueError) as err:
        load_mapping(path)
    assert str(err.value) == (f"{path}: (file): byte(s) e9 are not UTF-8 text; save the "
                              "mapping file as UTF-8 (line 1, column 11)")


def test_redcap_event_conflict_shows_short_excerpts():
    from esi.imports import _Field, _merge_events

    f = _Field("notes", "baseline", "text", {}, False)
    rid = _Field("record_id", "baseline", "text", {}, False)
    header = ["record_id", "redcap_event_name", "notes"]
    rows = [["1", "base", "a" * 500], ["1", "week4", "b" * 500]]
    problems: list = []
    _merge_events(rows, [2, 3], header, {"record_id": rid, "notes": f}, {}, 0, "r.csv",
                  problems)
    assert len(problems) == 1 and len(str(problems[0])) < 300
    assert "a" * 58 not in str(problems[0]) and "b" * 58 not in str(problems[0])
