"""Derived outcomes and the single-imputation missing-data rules (esi.outcomes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from esi.outcomes import (
    OUTCOMES,
    apply_missing_rule,
    derive_outcomes,
    describe_missing_rule,
    mice_imputations,
    outcome_spec,
)


def patient(**over):
    """One patient who attended both visits; keyword arguments override fields."""
    row = dict(near_normal=1, age=50.0, baseline_leg_pain=7.0, baseline_back_pain=5.0,
               baseline_odi=40.0, baseline_mme=0.0, baseline_analgesic_use=False,
               opioid_use=False)
    for t in (4, 12):
        row.update({f"leg_pain_{t}w": 4.0, f"back_pain_{t}w": 4.0, f"odi_{t}w": 30.0,
                    f"gpe_{t}w": 2.0, f"satisfaction_{t}w": 4.0, f"analgesic_use_{t}w": False,
                    f"mme_{t}w": 0.0, f"additional_intervention_{t}w": False,
                    f"visit_missed_{t}w": False})
    row.update(over)
    return row


def frame(*rows):
    reg = pd.DataFrame(list(rows))
    reg.index = [f"P{i}" for i in range(len(reg))]
    reg.index.name = "patient_id"
    return reg


def test_outcome_specs():
    assert len(OUTCOMES) == 14
    primary = [s for s in OUTCOMES if s.primary]
    assert [(s.name, s.timepoint_weeks) for s in primary] == [
        ("leg_pain_reduction", 4), ("leg_pain_reduction", 12)]
    assert outcome_spec("odi_reduction", 12).column == "odi_reduction_12w"
    assert {s.kind for s in OUTCOMES} == {"continuous", "binary"}
    with pytest.raises(ValueError, match="no outcome"):
        outcome_spec("odi_reduction", 8)


def test_reductions_are_baseline_minus_follow_up():
    out = derive_outcomes(frame(patient(leg_pain_4w=3.5, back_pain_12w=6.0, odi_12w=10.0)))
    assert out.loc["P0", "leg_pain_reduction_4w"] == 3.5
    assert out.loc["P0", "back_pain_reduction_12w"] == -1.0  # worse = negative
    assert out.loc["P0", "odi_reduction_12w"] == 30.0
    assert out.index.name == "patient_id"
    assert str(out["positive_outcome_4w"].dtype) == "boolean"


def test_composite_positive_outcome_threshold_and_components():
    reg = frame(
        patient(leg_pain_4w=5.0),  # exactly 2 points: success
        patient(leg_pain_4w=5.5),  # 1.5 points: not
        patient(gpe_4w=3.0),  # slightly improved only
        patient(additional_intervention_4w=True),
        patient(),
    )
    out = derive_outcomes(reg)
    assert out["positive_outcome_4w"].tolist() == [True, False, False, False, True]
    strict = derive_outcomes(reg, success_threshold=3.0)
    assert strict["positive_outcome_4w"].tolist() == [False, False, False, False, True]


def test_missed_visit_is_missing_not_zero():
    reg = frame(patient(visit_missed_12w=True, leg_pain_12w=np.nan, back_pain_12w=np.nan,
                        odi_12w=np.nan, gpe_12w=np.nan, satisfaction_12w=np.nan,
                        analgesic_use_12w=None, mme_12w=np.nan,
                        additional_intervention_12w=None))
    out = derive_outcomes(reg)
    for spec in OUTCOMES:
        value = out.loc["P0", spec.column]
        if spec.timepoint_weeks == 12:
            assert pd.isna(value), spec.column
        else:
            assert not pd.isna(value), spec.column
    assert out.loc["P0", "visit_missed_12w"]


def test_missed_flag_wins_over_stray_values():
    out = derive_outcomes(frame(patient(visit_missed_4w=True)))
    assert np.isnan(out.loc["P0", "leg_pain_reduction_4w"])
    assert pd.isna(out.loc["P0", "satisfied_4w"])


def test_analgesic_reduction_definition():
    reg = frame(
        patient(baseline_mme=50.0, mme_4w=40.0),  # exactly 20 % less: reduction
        patient(baseline_mme=50.0, mme_4w=41.0),  # 18 %: not
        patient(baseline_analgesic_use=True, analgesic_use_4w=False),  # stopped
        patient(baseline_analgesic_use=True, analgesic_use_4w=True),  # continued
        patient(),  # nothing to reduce: False, not missing
        patient(baseline_mme=30.0, mme_4w=np.nan),  # unknown MME, nothing else: missing
    )
    out = derive_outcomes(reg)["analgesic_reduction_4w"]
    assert out.iloc[:5].tolist() == [True, False, True, False, False]
    assert pd.isna(out.iloc[5])


def test_satisfaction_and_gpe_cut_points():
    reg = frame(*[patient(satisfaction_4w=s, gpe_4w=g) for s, g in
                  [(5, 1), (4, 2), (3, 3), (1, 7)]])
    out = derive_outcomes(reg)
    assert out["satisfied_4w"].tolist() == [True, True, False, False]
    assert out["positive_gpe_4w"].tolist() == [True, True, False, False]


def test_patient_id_column_and_errors():
    reg = frame(patient()).reset_index()
    assert list(derive_outcomes(reg).index) == ["P0"]
    with pytest.raises(ValueError, match="success_threshold"):
        derive_outcomes(reg, success_threshold=0)
    with pytest.raises(ValueError, match="gpe_4w"):
        derive_outcomes(reg.drop(columns="gpe_4w"))
    with pytest.raises(ValueError, match="patient_id"):
        derive_outcomes(reg.drop(columns="patient_id"))


def _missed(t):
    return {f"visit_missed_{t}w": True, f"leg_pain_{t}w": np.nan, f"back_pain_{t}w": np.nan,
            f"odi_{t}w": np.nan, f"gpe_{t}w": np.nan, f"satisfaction_{t}w": np.nan,
            f"analgesic_use_{t}w": None, f"mme_{t}w": np.nan,
            f"additional_intervention_{t}w": None}


def test_locf_and_bocf():
    reg = frame(patient(leg_pain_4w=3.0, **_missed(12)), patient(**_missed(4)), patient())
    cc = apply_missing_rule(reg, "complete_case")
    assert np.isnan(derive_outcomes(cc).loc["P0", "leg_pain_reduction_12w"])
    locf = derive_outcomes(apply_missing_rule(reg, "locf"))
    assert locf.loc["P0", "leg_pain_reduction_12w"] == 4.0  # 4-week value carried
    assert bool(locf.loc["P0", "positive_outcome_12w"])  # GPE and no intervention carried too
    assert locf.loc["P1", "leg_pain_reduction_4w"] == 0.0  # nothing before: no change
    assert not locf.loc["P1", "positive_gpe_4w"]
    bocf = derive_outcomes(apply_missing_rule(reg, "bocf"))
    assert bocf.loc["P0", "leg_pain_reduction_12w"] == 0.0
    assert not bocf.loc["P0", "satisfied_12w"] and not bocf.loc["P0", "positive_outcome_12w"]
    assert bocf.loc["P2", "leg_pain_reduction_12w"] == 3.0  # observed values untouched
    filled = apply_missing_rule(reg, "bocf")
    assert filled["imputed_12w"].tolist() == [True, False, False]
    assert not filled["visit_missed_12w"].any()


def test_unknown_rule_names_the_argument():
    with pytest.raises(ValueError, match="missing must be one of"):
        apply_missing_rule(frame(patient()), "lvcf")
    with pytest.raises(ValueError, match="mice"):
        apply_missing_rule(frame(patient()), "mice")
    assert "complete case" in describe_missing_rule("complete_case")


def test_mice_imputations_are_seeded_and_on_scale():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        leg = float(rng.integers(8, 20)) / 2
        over = dict(near_normal=i % 2, baseline_leg_pain=leg, age=float(30 + i),
                    leg_pain_4w=max(0.0, leg - float(rng.integers(0, 8)) / 2),
                    leg_pain_12w=max(0.0, leg - float(rng.integers(0, 8)) / 2),
                    gpe_4w=float(rng.integers(1, 8)), gpe_12w=float(rng.integers(1, 8)),
                    odi_4w=float(rng.integers(10, 60)), odi_12w=float(rng.integers(10, 60)))
        if i % 7 == 3:
            over.update(_missed(12))
        rows.append(patient(**over))
    reg = frame(*rows)
    a = mice_imputations(reg, m=3, random_state=11, burn_in=2, between=1)
    b = mice_imputations(reg, m=3, random_state=11, burn_in=2, between=1)
    assert len(a) == 3
    for x, y in zip(a, b, strict=True):
        pd.testing.assert_frame_equal(x, y)
    filled = a[0]
    miss = reg["visit_missed_12w"]
    assert filled.loc[miss, "leg_pain_12w"].notna().all()
    assert set(filled["gpe_12w"]) <= set(reg["gpe_12w"].dropna())  # predictive mean matching
    assert filled["imputed_12w"].sum() == miss.sum()
    pd.testing.assert_series_equal(filled.loc[~miss, "odi_12w"], reg.loc[~miss, "odi_12w"],
                                   check_dtype=False)
    with pytest.raises(ValueError, match="m must be"):
        mice_imputations(reg, m=1)
