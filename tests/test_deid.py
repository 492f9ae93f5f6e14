"""De-identification guard: identifier detection, date reduction, pseudonyms, suppression, leak
scan (esi.deid)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from esi.deid import (
    IDENTIFIER_KINDS,
    KEY_ENV_VAR,
    Pseudonymizer,
    default_key_path,
    find_identifiers,
    identifier_by_content,
    identifier_by_name,
    pseudonymize,
    pseudonymize_frame,
    reduce_dates,
    scan_for_markers,
    suppress_count_text,
    suppress_small_counts,
)
from esi.io import read_registry, write_registry
from esi.paths import PROJECT_ROOT
from esi.schema import IDENTIFIER_NAME_HINTS, SCHEMA
from esi.validate import RawTable, read_raw

from factory import example_registry

REDCAP = Path(__file__).resolve().parent / "data" / "redcap"

# --- by name --------------------------------------------------------------------------------


@pytest.mark.parametrize("name, kind", [
    ("name", "name"), ("patient_name", "name"), ("First Name", "name"), ("lastName", "name"),
    ("surname", "name"), ("pt_name", "name"), ("name_first", "name"), ("maiden_name", "name"),
    ("initials", "initials"), ("MRN", "mrn"), ("mrn_2", "mrn"), ("hospital_number", "mrn"),
    ("medical_record_no", "mrn"), ("ssn", "national_id"), ("NHS number", "national_id"),
    ("passport_no", "national_id"), ("dob", "date_of_birth"), ("patientDOB", "date_of_birth"),
    ("DateOfBirth", "date_of_birth"), ("birth_date", "date_of_birth"),
    ("home_address", "address"), ("street", "address"), ("city", "address"),
    ("zip", "postal_code"), ("zipcode", "postal_code"), ("post_code", "postal_code"),
    ("phone", "phone"), ("Telephone", "phone"), ("mobile_no", "phone"), ("fax", "phone"),
    ("email", "email"), ("E-mail", "email"), ("e_mail_address", "email"),
    ("contact_mail", "email"),
])
def test_identifier_by_name(name, kind):
    assert identifier_by_name(name) == kind


@pytest.mark.parametrize("frag", sorted(IDENTIFIER_NAME_HINTS))
def test_every_schema_hint_is_detected(frag):
    assert identifier_by_name(frag) in IDENTIFIER_KINDS


@pytest.mark.parametrize("name", sorted(SCHEMA) + [
    "redcap_event_name", "redcap_data_access_group", "site_name", "study_name", "drug_name",
    "record_id", "mri_complete", "gender", "notes", "dobutamine_dose", "zipped", "level",
    "meds___1", "inj_date", "odi_0", "centre", "pathway", "missed_12",
])
def test_no_identifier_by_name(name):
    assert identifier_by_name(name) is None


# --- by content -----------------------------------------------------------------------------

@pytest.mark.parametrize("values, kind", [
    (["John Smith", "Mary O'Neil", "Anne-Marie van der Berg", "Smith, John", "José Müller",
      "Li Wei"], "name"),
    (["12345678", "23456789", "MRN 34567890", "45678901"], "mrn"),
    ([12345678, 23456789, 34567890], "mrn"),          # integers from Parquet/Excel
    ([12345678.0, 23456789.0, np.nan], "mrn"),        # floats from a numeric column
    (["+1 (555) 123-4567", "555-987-6543", "020 7946 0958", "+44 20 7946 0018"], "phone"),
    (["a.b@example.org", "c@d.co.uk"], "email"),
    (["fine", "call j.doe@example.com after 5pm", "ok", "", "ok"], "email"),  # one is enough
    (["1956-03-12", "12/03/1961", "1948-11-30", ""], "date_of_birth"),
    ([dt.date(1950, 1, 2), pd.Timestamp("1962-07-08"), None], "date_of_birth"),
    (["12 Oak Street", "221B Baker St.", "Hauptstrasse 5", "rue de la Paix 12",
      "PO Box 77"], "address"),
    (["SW1A 1AA", "90210-1234", "EC1A 1BB"], "postal_code"),
    (["123-45-6789", "987-65-4321"], "national_id"),
])
def test_identifier_by_content(values, kind):
    assert identifier_by_content(values) == kind


@pytest.mark.parametrize("values", [
    ["female", "male", "female"], ["A", "B", "B"], ["L4-L5;L5-S1", "L5-S1", ""],
    ["2012-03-14", "2019-09-30", "2022-05-09"],       # procedure dates are not birth dates
    ["7", "4.5", "10", "0"], [27.4, 31.2, 22.9], [0, 30, 45, 60],
    ["Very much improved", "Much improved", "No change", "Slightly worse"],
    ["Very Satisfied", "Very Dissatisfied", "Neutral"],  # Title Case labels
    ["Site A", "Site B"], ["Referral, surgeon or neurologist", "MRI RCT (2012)"],
    ["John Smith"] * 6,                               # one repeated value is a category
    ["123456"] * 6,                                   # likewise for record numbers
    ["Tolerated well", "Vasovagal episode, recovered", ""],
    ["ESI-001", "ESI-002", "P-K3V7Q2MZ4A"], [True, False, True], [],
    ["fine", "ok", "555-987-6543", "good", "well"],   # one phone among five: below the share
])
def test_no_identifier_by_content(values):
    assert identifier_by_content(values) is None


def test_min_share_is_checked():
    with pytest.raises(ValueError, match="min_share"):
        identifier_by_content(["a"], min_share=0)
    assert identifier_by_content(["fine", "ok", "555-987-6543"], min_share=0.3) == "phone"


def test_find_identifiers_on_a_raw_table_never_echoes_values():
    header = ["record_id", "pt_email", "contact", "notes", "home", "born", "sex"]
    values = [
        ["1", "a@x.org", "+1 555 123 4567", "ok", "12 Oak Street", "1950-01-02", "F"],
        ["2", "b@x.org", "+1 555 765 4321", "fine", "3 Elm Road", "1961-02-03", "M"],
        ["3", "c@x.org", "+1 555 999 0000", "", "7 Pine Avenue", "1970-03-04", "F"],
    ]
    found = find_identifiers(RawTable(header, values, [2, 3, 4]))
    assert list(found.columns) == ["column", "kind", "evidence"]
    assert dict(zip(found["column"], found["kind"], strict=True)) == {
        "pt_email": "email", "contact": "phone", "home": "address", "born": "date_of_birth"}
    row = found.set_index("column").loc["pt_email", "evidence"]
    assert row == ("name: 'pt_email' suggests an e-mail address; content: 3 of 3 values look "
                   "like e-mail addresses")
    assert found.set_index("column").loc["contact", "evidence"] == \
        "content: 3 of 3 values look like telephone numbers"
    text = " ".join(found["evidence"])
    for r in values:
        for v in r[1:6]:
            if v not in ("ok", "fine", ""):
                assert v not in text


def test_find_identifiers_checks_the_index_and_schema_contents():
    frame = example_registry(6)
    frame.index = pd.Index([f"{10_000_000 + 7 * i}" for i in range(6)], name="patient_id")
    found = find_identifiers(frame)
    assert found.to_dict("records") == [{
        "column": "patient_id", "kind": "mrn",
        "evidence": "content: 6 of 6 values look like 6-15 digit numbers (like medical "
                    "record numbers)"}]


def test_no_false_positive_on_valid_registries(tmp_path):
    frame = example_registry(120, seed=7)
    assert find_identifiers(frame).empty
    path = write_registry(frame, tmp_path / "registry.csv")
    typed = read_registry(path)
    assert find_identifiers(typed).empty
    table, problems = read_raw(path, path.read_bytes(), "registry.csv")
    assert not problems and find_identifiers(table).empty
    # REDCap labels before mapping ("Very much improved", "Referral, surgeon or ...").
    from esi.imports import read_redcap
    rc, problems = read_redcap(REDCAP / "esi_records.csv", REDCAP / "esi_dictionary.csv")
    assert not problems and find_identifiers(rc).empty


def test_find_identifiers_rejects_other_types():
    with pytest.raises(ValueError, match="RawTable or a pandas.DataFrame"):
        find_identifiers([["a"]])


# --- dates ----------------------------------------------------------------------------------

def _dated() -> pd.DataFrame:
    frame = example_registry(4)
    frame["procedure_date"] = pd.to_datetime(["2009-01-03", "2009-01-05", "2024-11-01",
                                              "2024-11-02"])
    frame["mri_date"] = pd.to_datetime(["2008-12-01", "2009-01-05", "2024-12-01", None])
    frame.attrs["sha256"] = "abc"
    return frame


def test_reduce_dates_to_year():
    out = reduce_dates(_dated(), "year")
    assert "procedure_date" not in out and "mri_date" not in out
    assert out["procedure_year"].tolist() == [2009, 2009, 2024, 2024]
    assert str(out["procedure_year"].dtype) == "Int64"
    assert out["mri_year"].tolist()[:3] == [2008, 2009, 2024]
    assert out["mri_year"].isna().tolist() == [False, False, False, True]
    assert list(out.columns).index("procedure_year") == list(_dated().columns).index(
        "procedure_date")
    assert out.attrs == {"sha256": "abc", "date_reduction": "year"}
    assert not any(pd.api.types.is_datetime64_any_dtype(out[c]) for c in out)


def test_reduce_dates_to_days_and_window():
    out = reduce_dates(_dated(), "days", window=(dt.date(2009, 1, 5), dt.date(2024, 11, 1)))
    assert out["procedure_year"].tolist() == [2009, 2009, 2024, 2024]
    assert out["mri_days"].tolist()[:3] == [-33, 0, 30]
    assert out["in_study_window"].tolist() == [False, True, True, False]


def test_reduce_dates_arguments():
    with pytest.raises(ValueError, match="mode must be 'year' or 'days'"):
        reduce_dates(_dated(), "month")
    with pytest.raises(ValueError, match="needs a procedure_date"):
        reduce_dates(_dated().drop(columns="procedure_date"), "days")
    with pytest.raises(ValueError, match="window ends"):
        reduce_dates(_dated(), window=(dt.date(2020, 1, 1), dt.date(2019, 1, 1)))


# --- pseudonyms -----------------------------------------------------------------------------

KEY = b"k" * 32


def test_pseudonyms_match_an_independent_hmac():
    # openssl: printf 'ESI-001' | openssl dgst -sha256 -hmac kkkk...(32) -binary | base32
    assert pseudonymize(["ESI-001", "ESI-002"], key=KEY).tolist() == ["P-NONLOEMQ2U",
                                                                      "P-SLZMI76OPB"]


def test_pseudonyms_are_stable_and_keyed():
    ids = pd.Series([f"T{i:03d}" for i in range(300)], index=range(5, 305))
    a = pseudonymize(ids, key=KEY)
    assert a.index.equals(ids.index) and a.name == "pseudonym"
    assert a.str.fullmatch(r"P-[A-Z2-7]{10}").all()
    assert a.is_unique
    assert a.equals(Pseudonymizer(KEY)(ids))
    b = pseudonymize(ids, key=b"other key of 32 bytes..........!")
    assert not (a.to_numpy() == b.to_numpy()).any()
    assert pseudonymize(["T001", "T001"], key=KEY).nunique() == 1
    assert "kkkk" not in repr(Pseudonymizer(KEY))


def test_pseudonymizer_arguments():
    with pytest.raises(ValueError, match="key must be bytes"):
        Pseudonymizer(b"short")
    with pytest.raises(ValueError, match="length"):
        Pseudonymizer(KEY, length=4)
    with pytest.raises(ValueError, match="patient_id is missing"):
        pseudonymize(["T1", None], key=KEY)


def test_key_file_created_on_first_use_with_0600(tmp_path, monkeypatch):
    path = tmp_path / "cfg" / "esi" / "pseudonym.key"
    monkeypatch.setenv(KEY_ENV_VAR, str(path))
    assert default_key_path() == path
    first = pseudonymize(["T001", "T002"])
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(bytes.fromhex(path.read_text().strip())) == 32
    before = path.read_bytes()
    assert pseudonymize(["T001", "T002"]).equals(first)  # reused, not recreated
    assert path.read_bytes() == before
    assert not path.resolve().is_relative_to(PROJECT_ROOT)


def test_default_key_path_is_in_the_home_config(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_key_path() == tmp_path / ".config" / "esi" / "pseudonym.key"
    Pseudonymizer.from_key_file()
    assert stat.S_IMODE((tmp_path / ".config/esi/pseudonym.key").stat().st_mode) == 0o600


def test_key_inside_the_project_is_refused(monkeypatch):
    inside = PROJECT_ROOT / "params" / "pseudonym.key"
    monkeypatch.setenv(KEY_ENV_VAR, str(inside))
    with pytest.raises(ValueError, match="lies inside the project"):
        pseudonymize(["T001"])
    with pytest.raises(ValueError, match="outside the repository"):
        Pseudonymizer.from_key_file(PROJECT_ROOT / "x" / ".." / "k.key")
    assert not inside.exists()


def test_key_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "k.key"
    path.write_text(KEY.hex())
    os.chmod(path, 0o644)
    with pytest.raises(ValueError, match="readable by others"):
        pseudonymize(["T1"], key=path)
    os.chmod(path, 0o600)
    assert pseudonymize(["ESI-001"], key=str(path)).tolist() == ["P-NONLOEMQ2U"]
    path.write_text("not hex")
    with pytest.raises(ValueError, match="does not hold a hex key"):
        pseudonymize(["T1"], key=path)


def _create_key_at_once(path, start, gate, inside, finished, results):
    """One of four processes creating the same key file. They start together, and the one
    random draw of a key (``secrets.token_hex``) is held until either all four processes are
    drawing a key or the three others have finished: a creator that made ``path`` visible
    before writing the key into it is caught, since the others then read it unwritten."""
    import secrets

    draw = secrets.token_hex

    def held_draw(n):
        with gate:
            inside.value += 1
            gate.notify_all()
            gate.wait_for(lambda: inside.value == 4 or finished.value == 3, timeout=120)
        return draw(n)

    secrets.token_hex = held_draw  # in this child process only
    start.wait(120)
    try:
        results.put(("ok", Pseudonymizer.from_key_file(path).key.hex()))
    except Exception as exc:  # reported to the parent, which fails the test
        results.put(("error", f"{type(exc).__name__}: {exc}"))
    with gate:
        finished.value += 1
        gate.notify_all()


def test_four_processes_creating_the_key_at_once_all_get_the_same_key(tmp_path):
    import multiprocessing as mp
    import sys

    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    path = tmp_path / "cfg" / "pseudonym.key"
    start, gate, results = ctx.Barrier(4), ctx.Condition(), ctx.Queue()
    inside, finished = ctx.Value("i", 0), ctx.Value("i", 0)
    procs = [ctx.Process(target=_create_key_at_once,
                         args=(path, start, gate, inside, finished, results))
             for _ in range(4)]
    for p in procs:
        p.start()
    got = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join()
    assert [status for status, _ in got] == ["ok"] * 4, got
    keys = {key for _, key in got}
    assert len(keys) == 1  # one winner; the others read its key
    assert bytes.fromhex(path.read_text(encoding="ascii").strip()).hex() in keys
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["pseudonym.key"]  # no temp left
    assert all(p.exitcode == 0 for p in procs)


def test_pseudonymize_frame():
    pairs = pd.DataFrame({"case_id": ["T001", "T003"], "control_id": ["T002", "T001"],
                          "distance": [0.1, 0.2]})
    out = pseudonymize_frame(pairs, ["case_id", "control_id"], key=KEY)
    assert out["case_id"].iloc[0] == out["control_id"].iloc[1]
    assert not set(out[["case_id", "control_id"]].stack()) & {"T001", "T002", "T003"}
    assert out["distance"].equals(pairs["distance"])
    reg = example_registry(3)
    out = pseudonymize_frame(reg, key=KEY)
    assert out.index.name == "patient_id"
    assert out.index.tolist() == pseudonymize(reg.index, key=KEY).tolist()
    with pytest.raises(ValueError, match="id_columns not in the frame: x"):
        pseudonymize_frame(pairs, ["x"], key=KEY)


# --- small counts ---------------------------------------------------------------------------

def test_suppress_small_counts_flow_table():
    flow = pd.DataFrame({"step": ["a", "b", "c"], "n_before": [500, 497, 14],
                         "n_excluded": [3, 0, 5], "n_after": [497, 497, 9],
                         "n_excluded_pct": [0.6, 0.0, 35.7],
                         "reasons": ["x: 3", "", "y: 1; z: 4"]})
    out = suppress_small_counts(flow)
    assert out["n_excluded"].tolist() == ["<5", 0, 5]
    assert out["n_excluded_pct"].tolist() == ["-", 0.0, 35.7]
    assert out["n_before"].tolist() == [500, 497, 14]
    assert out["reasons"].tolist() == ["x: 3", "", "y: 1; z: 4"]  # not a count column
    out = suppress_small_counts(flow, columns=["n_excluded", "reasons"])
    assert out["reasons"].tolist() == ["x: <5", "", "y: <5; z: <5"]
    assert out["n_after"].tolist() == [497, 497, 9]
    out = suppress_small_counts(flow, threshold=10)
    assert out["n_after"].tolist() == [497, 497, "<10"]
    assert flow["n_excluded"].tolist() == [3, 0, 5]  # the input is untouched


def test_suppress_count_text_cells():
    table = pd.DataFrame({"group": ["near", "abn"], "positive": ["3 (21.4%)", "9 (64.3%)"],
                          "of": ["3/14", "0/14"], "note": ["few", "many"]})
    out = suppress_small_counts(table)
    assert out["positive"].tolist() == ["<5", "9 (64.3%)"]
    assert out["of"].tolist() == ["<5/14", "0/14"]
    assert out["note"].tolist() == ["few", "many"]
    assert suppress_count_text("4/14 (28.6%)") == "<5/14"
    assert suppress_count_text("12") == "12"
    assert suppress_count_text(3) == 3  # not text: unchanged (use suppress_small_counts)
    with pytest.raises(ValueError, match="threshold"):
        suppress_count_text("3", threshold=0)


def test_suppress_small_counts_arguments():
    t = pd.DataFrame({"n": [1, 2], "flag": [True, False]})
    assert suppress_small_counts(t)["flag"].tolist() == [True, False]  # booleans untouched
    with pytest.raises(ValueError, match="columns not in the table: m"):
        suppress_small_counts(t, columns=["m"])
    with pytest.raises(ValueError, match="percent_columns"):
        suppress_small_counts(t, percent_columns={"p": "n"})
    with pytest.raises(ValueError, match="threshold must be a whole number"):
        suppress_small_counts(t, threshold=2.5)


# --- marker scan ----------------------------------------------------------------------------

def test_scan_for_markers(tmp_path):
    m1, m2, m3 = "ZQX-Müller-1", "ZQX&O'Brien", "ZQX/33"
    (tmp_path / "a.csv").write_text("x,y\n1,ZQX-Müller-1\n")
    (tmp_path / "sub" / ".hidden").mkdir(parents=True)
    (tmp_path / "sub" / ".hidden" / "r.html").write_text(
        "<p>\n<td>ZQX&amp;O&#x27;Brien</td>\n")
    nb = {"cells": [{"outputs": [{"text": f"id {m1} and {m3}"}]}]}
    (tmp_path / "sub" / "n.ipynb").write_text(json.dumps(nb, indent=1).replace("/", "\\/"))
    (tmp_path / "u16.txt").write_bytes(f"\n\n{m2}".encode("utf-16-le"))
    (tmp_path / "z.gz").write_bytes(gzip.compress(m1.encode()))  # not decompressed
    (tmp_path / "clean.json").write_text('{"n": 14}')
    found = scan_for_markers(tmp_path, [m1, m2, m3])
    got = set(found.itertuples(index=False, name=None))
    assert got == {("a.csv", m1, 2), ("sub/.hidden/r.html", m2, 2), ("sub/n.ipynb", m1, 6),
                   ("sub/n.ipynb", m3, 6), ("u16.txt", m2, 3)}
    assert scan_for_markers(tmp_path, ["never-there"]).empty
    with pytest.raises(ValueError, match="non-empty strings"):
        scan_for_markers(tmp_path, [""])
    with pytest.raises(ValueError, match="is not a folder"):
        scan_for_markers(tmp_path / "a.csv", [m1])


# --- issue 12: every column, dates of birth of adults, bare ZIP codes, notes naming patients --

def _raw_with_extra(frame: pd.DataFrame, extra: dict[str, list[str]]) -> RawTable:
    raw = frame.reset_index()
    for name, values in extra.items():
        raw[name] = values
    header = list(raw.columns)
    rows = [["" if pd.isna(v) else (v.date().isoformat() if isinstance(v, pd.Timestamp)
                                    else str(v)) for v in r]
            for r in raw.itertuples(index=False, name=None)]
    return RawTable(header=header, rows=rows, lines=list(range(2, len(rows) + 2)))


def _adult_birth_dates(frame: pd.DataFrame) -> list[str]:
    """Dates of birth consistent with each patient's age at the procedure (born 1990-2004
    for a young cohort)."""
    out = []
    for i, (d, age) in enumerate(zip(frame["procedure_date"], frame["age"], strict=True)):
        out.append((d - pd.DateOffset(years=int(age), days=40 + 11 * i)).date().isoformat())
    return out


def test_dates_of_birth_of_young_adults_are_recognised_by_content():
    frame = example_registry(40, seed=5)
    frame["procedure_date"] = [pd.Timestamp(2022, 1 + i % 12, 1 + i % 27)
                               for i in range(len(frame))]
    frame["age"] = [18 + i % 14 for i in range(len(frame))]  # born about 1990-2004
    dob = _adult_birth_dates(frame)
    assert min(dob) >= "1990-01-01" and max(dob) <= "2004-12-31"
    found = find_identifiers(_raw_with_extra(frame, {"d1": dob}))
    assert found["column"].tolist() == ["d1"]
    assert found.loc[0, "kind"] == "date_of_birth"
    assert "40 of 40 values look like dates 18 to 110 years before" in found.loc[0, "evidence"]
    # dates around the procedure (an MRI, a follow-up visit) are not dates of birth
    mri = [(d - pd.Timedelta(days=30 + i)).date().isoformat()
           for i, d in enumerate(frame["procedure_date"])]
    assert find_identifiers(_raw_with_extra(frame, {"mri_when": mri})).empty
    # without a procedure date in the table, the ages are counted to the row's other dates
    other = _raw_with_extra(frame.drop(columns=["procedure_date"]),
                            {"d1": dob, "seen": [d.date().isoformat()
                                                 for d in frame["procedure_date"]]})
    assert find_identifiers(other)["column"].tolist() == ["d1"]


def test_bare_zip_codes_and_notes_naming_patients():
    frame = example_registry(30, seed=6)
    zips = [f"{(2139 + 97 * (i % 7)):05d}" for i in range(len(frame))]
    notes = ["" if i % 3 else f"Seen with daughter; Mr. Okafor reports less pain {i}"
             for i in range(len(frame))]
    plain_notes = ["Patient reports less leg pain after the injection" if i % 2 else ""
                   for i in range(len(frame))]
    found = find_identifiers(_raw_with_extra(frame, {"area": zips, "remarks": notes,
                                                     "comment": plain_notes}))
    assert found["column"].tolist() == ["area", "remarks"]
    assert found["kind"].tolist() == ["postal_code", "name"]
    text = found.to_csv(index=False)
    assert "Okafor" not in text and "02139" not in text
    for values, kind in ((["SW1A 1AA", "M1 1AE", "EC1A 1BB"], "postal_code"),
                         (["K1A 0B1", "M5V 3L9", "H2X 1Y4"], "postal_code"),
                         (["1012 AB", "3511 LX", "9711 JS"], "postal_code"),
                         (["John Smith came with his wife for the follow-up"], "name"),
                         (["patient: Anna Berg, pain better at 4 weeks"], "name")):
        assert identifier_by_content(values) == kind, values
    # 5-digit numbers that are ids (unique by design) are not postal codes
    ids = pd.Index([f"{10000 + i}" for i in range(30)], name="patient_id")
    assert find_identifiers(frame.set_axis(ids)).empty


def test_a_mapping_never_drops_an_identifier_silently(tmp_path):
    """esi validate on a file whose mapping drops notes naming patients, an adult date of
    birth and ZIP codes: refused, naming file, column and rule, never a value."""
    from esi.validate import validate_file

    frame = example_registry(40, seed=8)
    frame["procedure_date"] = [pd.Timestamp(2021, 1 + i % 12, 1 + i % 27)
                               for i in range(len(frame))]
    frame["age"] = [19 + i % 12 for i in range(len(frame))]
    raw = _raw_with_extra(frame, {
        "birth": _adult_birth_dates(frame),
        "area": [f"{(10001 + 13 * (i % 9)):05d}" for i in range(len(frame))],
        "free_text": [f"Dr. Lindqvist saw the patient, doing well at visit {i}"
                      for i in range(len(frame))]})
    path = tmp_path / "export.csv"
    pd.DataFrame(raw.rows, columns=raw.header).to_csv(path, index=False)
    mapping = tmp_path / "m.yaml"
    mapping.write_text("drop: [birth, area, free_text]\n")
    report = validate_file(path, mapping=mapping)
    assert not report.ok
    bad = {p.column: p for p in report.problems if p.rule == "direct-identifier"}
    assert set(bad) == {"birth", "area", "free_text"}
    assert all(p.privacy and p.file == str(path) for p in bad.values())
    assert "a date of birth" in bad["birth"].message and "18 to 110 years" in bad["birth"].message
    assert "a postal code" in bad["area"].message and "5-digit codes" in bad["area"].message
    assert "a person's name" in bad["free_text"].message
    text = "\n".join(p.message for p in report.problems)
    for secret in ("Lindqvist", "10001", raw.rows[0][raw.header.index("birth")]):
        assert secret not in text
