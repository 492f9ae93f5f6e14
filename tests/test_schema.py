from __future__ import annotations

import pytest

from esi.paths import DATA_DICTIONARY
from esi.schema import COLUMNS, SCHEMA, column, follow_up_columns, render_data_dictionary


def test_data_readme_is_rendered_from_schema():
    # data/README.md must be exactly what esi/schema.py renders (`make data-dictionary`).
    assert DATA_DICTIONARY.read_text(encoding="utf-8") == render_data_dictionary()


def test_every_column_is_in_the_dictionary():
    text = render_data_dictionary()
    for c in COLUMNS:
        assert f"| `{c.name}` |" in text


def test_required_fields_of_the_issue_exist():
    for name in ["patient_id", "site", "source_study", "procedure_date", "age", "sex", "bmi",
                 "pain_duration_months", "baseline_leg_pain", "baseline_back_pain",
                 "baseline_odi", "opioid_use", "baseline_mme", "depression_anxiety", "smoking",
                 "employment", "prior_spine_surgery", "nerve_root_compression",
                 "disc_herniation_grade", "canal_stenosis_grade", "foraminal_stenosis_grade",
                 "degenerative_grade", "mri_levels", "pathology_concordant", "esi_approach",
                 "esi_level"]:
        assert name in SCHEMA
    for t in (4, 12):
        names = {c.name for c in follow_up_columns(t)}
        assert {f"leg_pain_{t}w", f"back_pain_{t}w", f"odi_{t}w", f"gpe_{t}w",
                f"satisfaction_{t}w", f"analgesic_use_{t}w", f"mme_{t}w",
                f"additional_intervention_{t}w", f"additional_intervention_days_{t}w",
                f"visit_missed_{t}w"} == names


def test_pain_scales_are_half_point_steps():
    assert column("baseline_leg_pain").step == 0.5
    assert column("leg_pain_12w").maximum == 10


def test_unknown_column_and_visit():
    with pytest.raises(KeyError, match="no column 'nope'"):
        column("nope")
    with pytest.raises(ValueError, match="weeks must be one of"):
        follow_up_columns(8)


def test_round_trip_write_read(tmp_path, registry_frame):
    from esi.io import read_registry, write_registry

    path = write_registry(registry_frame, tmp_path / "r.csv", comment="test registry")
    back = read_registry(path)
    assert list(back.index) == list(registry_frame.index)
    assert list(back.columns) == [c for c in SCHEMA if c != "patient_id"]
    for c in back.columns:
        a, b = back[c].astype(object).tolist(), registry_frame[c].astype(object).tolist()
        for x, y in zip(a, b, strict=True):
            if x is None or (isinstance(x, float) and x != x) or x is __import__("pandas").NA:
                assert y is None or y != y
            elif c == "procedure_date":
                assert x.date() == y.date()
            else:
                assert x == y, (c, x, y)
    # writing the read table again gives the same bytes
    again = write_registry(back, tmp_path / "r2.csv", comment="test registry")
    assert again.read_bytes() == path.read_bytes()


def test_data_dictionary_states_the_output_path_rule():
    # issue 12: the data dictionary states the output-path rule beside the disclosure rule and
    # what decides "synthetic"
    text = render_data_dictionary()
    for heading in ("## Synthetic or real", "## Where esi writes",
                    "## Real data: disclosure control"):
        assert heading in text
    assert "esi-output.json" in text and "exit code 2" in text
