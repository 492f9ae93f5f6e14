"""Outcome comparisons (esi.compare): matched, larger cohort, historical controls."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats as sps

from esi import stats as st
from esi.compare import (
    BINARY_TESTS,
    CONTINUOUS_TESTS,
    OUTCOME_TABLE_COLUMNS,
    compare_historical,
    compare_larger_cohort,
    compare_matched,
    read_reference_cohorts,
)
from esi.outcomes import OUTCOMES, derive_outcomes


@dataclass(frozen=True)
class StandInMatch:
    """The two fields of esi.matching.MatchResult that esi.compare reads."""

    pairs: pd.DataFrame
    weights: pd.Series


def toy_registry(n_cases=8, n_controls=20, seed=1, miss_frac=0.1) -> pd.DataFrame:
    """A registry with the schema's outcome columns, some visits missed."""
    rng = np.random.default_rng(seed)
    n = n_cases + n_controls
    reg = pd.DataFrame({
        "patient_id": [f"P{i:03d}" for i in range(n)],
        "near_normal": np.r_[np.ones(n_cases, int), np.zeros(n_controls, int)],
        "age": rng.normal(50, 12, n).round(), "sex": rng.choice(["female", "male"], n),
        "bmi": rng.normal(29, 5, n).round(1),
        "smoking": rng.choice(["never", "former", "current"], n),
        "baseline_leg_pain": rng.integers(8, 21, n) / 2,
        "baseline_back_pain": rng.integers(4, 21, n) / 2,
        "baseline_odi": rng.integers(20, 70, n).astype(float),
        "opioid_use": rng.random(n) < 0.4, "baseline_analgesic_use": rng.random(n) < 0.6,
    })
    reg["baseline_mme"] = np.where(reg["opioid_use"], rng.integers(10, 60, n), 0).astype(float)
    for t in (4, 12):
        missed = rng.random(n) < miss_frac
        reg[f"leg_pain_{t}w"] = np.clip(reg["baseline_leg_pain"] - rng.integers(0, 9, n) / 2, 0, 10)
        reg[f"back_pain_{t}w"] = np.clip(reg["baseline_back_pain"] - rng.integers(-2, 6, n) / 2,
                                         0, 10)
        reg[f"odi_{t}w"] = np.clip(reg["baseline_odi"] - rng.integers(-5, 20, n), 0, 100) * 1.0
        reg[f"gpe_{t}w"] = rng.integers(1, 8, n).astype(float)
        reg[f"satisfaction_{t}w"] = rng.integers(1, 6, n).astype(float)
        reg[f"analgesic_use_{t}w"] = pd.array(rng.random(n) < 0.5, dtype="boolean")
        reg[f"mme_{t}w"] = reg["baseline_mme"] * rng.choice([0.5, 1.0], n)
        reg[f"additional_intervention_{t}w"] = pd.array(rng.random(n) < 0.15, dtype="boolean")
        reg[f"visit_missed_{t}w"] = missed
        for f in ("leg_pain", "back_pain", "odi", "gpe", "satisfaction", "mme"):
            reg.loc[missed, f"{f}_{t}w"] = np.nan
        for f in ("analgesic_use", "additional_intervention"):
            reg.loc[missed, f"{f}_{t}w"] = pd.NA
    return reg.set_index("patient_id")


def toy_match(reg: pd.DataFrame, ratio: int = 1) -> StandInMatch:
    """Case i gets controls i*ratio .. i*ratio + ratio - 1 (no replacement)."""
    cases = list(reg.index[reg["near_normal"] == 1])
    controls = list(reg.index[reg["near_normal"] == 0])
    rows = [{"treated": c, "control": controls[i * ratio + j], "subclass": i + 1,
             "distance_gap": 0.01} for i, c in enumerate(cases) for j in range(ratio)]
    pairs = pd.DataFrame(rows)
    weights = pd.Series(0.0, index=reg.index)
    weights[cases + list(pairs["control"])] = 1.0
    return StandInMatch(pairs, weights)


@pytest.fixture(scope="module")
def registry():
    return toy_registry()


@pytest.fixture(scope="module")
def match(registry):
    return toy_match(registry)


def test_table_shape_and_columns(registry, match):
    table = compare_matched(registry, match)
    assert list(table.columns) == list(OUTCOME_TABLE_COLUMNS)
    assert len(table) == len(OUTCOMES) == 14
    assert list(zip(table["outcome"], table["timepoint_weeks"], strict=True)) == [
        (s.name, s.timepoint_weeks) for s in OUTCOMES]
    assert (table["missing_rule"] == "complete_case").all()
    assert set(table.loc[table["kind"] == "continuous", "test"]) == {"welch"}
    assert set(table.loc[table["kind"] == "binary", "test"]) == {"fisher"}
    assert table.loc[table["primary"], "outcome"].unique().tolist() == ["leg_pain_reduction"]
    assert "complete case" in table.attrs["missing_rule_text"]


def test_welch_row_equals_independent_scipy(registry, match):
    table = compare_matched(registry, match).set_index(["outcome", "timepoint_weeks"])
    out = derive_outcomes(registry)
    x = out.loc[match.pairs["treated"], "odi_reduction_12w"].dropna()
    y = out.loc[match.pairs["control"], "odi_reduction_12w"].dropna()
    row = table.loc[("odi_reduction", 12)]
    ref = sps.ttest_ind(x, y, equal_var=False)
    assert_allclose(row["p_value"], ref.pvalue, rtol=1e-10)
    assert row["n_cases"] == len(x) and row["n_controls"] == len(y)
    assert_allclose(row["estimate"], x.mean() - y.mean())
    assert_allclose(row["sd_cases"], x.std(ddof=1))


@pytest.mark.parametrize(("test", "binary_test"),
                         list(zip(CONTINUOUS_TESTS + ("welch",), BINARY_TESTS, strict=True)))
def test_every_test_runs_and_is_named(registry, match, test, binary_test):
    table = compare_matched(registry, match, test=test, binary_test=binary_test)
    assert set(table.loc[table["kind"] == "continuous", "test"]) == {test}
    assert set(table.loc[table["kind"] == "binary", "test"]) == {binary_test}
    assert table["p_value"].between(0, 1).all()


def test_unknown_names_raise(registry, match):
    with pytest.raises(ValueError, match="test must be one of"):
        compare_matched(registry, match, test="ttest")
    with pytest.raises(ValueError, match="binary_test must be one of"):
        compare_matched(registry, match, binary_test="fisher_two")
    with pytest.raises(ValueError, match="missing must be one of"):
        compare_matched(registry, match, missing="worst_case")
    with pytest.raises(ValueError, match="alpha"):
        compare_matched(registry, match, alpha=5)


def test_paired_with_ratio_uses_mean_of_controls(registry):
    m2 = toy_match(registry, ratio=2)
    table = compare_matched(registry, m2, test="paired_t", binary_test="fisher")
    out = derive_outcomes(registry)["leg_pain_reduction_4w"]
    pairs = m2.pairs.assign(c=out.reindex(m2.pairs["control"]).to_numpy())
    ctrl = pairs.groupby("treated")["c"].mean()
    case = out.reindex(ctrl.index)
    keep = case.notna() & ctrl.notna()
    ref = sps.ttest_rel(case[keep], ctrl[keep])
    row = table.iloc[0]
    assert_allclose(row["p_value"], ref.pvalue, rtol=1e-10)
    assert row["n_pairs"] == keep.sum()
    with pytest.raises(ValueError, match="mcnemar.*1:1"):
        compare_matched(registry, m2, binary_test="mcnemar")


def test_pair_with_missing_member_is_dropped():
    reg = toy_registry(n_cases=6, n_controls=6, miss_frac=0.0, seed=3)
    m = toy_match(reg)
    control = m.pairs["control"].iloc[0]
    for f in ("leg_pain", "back_pain", "odi", "gpe", "satisfaction", "mme"):
        reg.loc[control, f"{f}_4w"] = np.nan
    reg.loc[control, "visit_missed_4w"] = True
    table = compare_matched(reg, m, test="wilcoxon", binary_test="mcnemar")
    row4 = table[(table["timepoint_weeks"] == 4)]
    assert (row4["n_pairs"] == 5).all() and (row4["n_cases"] == 5).all()
    assert (table[table["timepoint_weeks"] == 12]["n_pairs"] == 6).all()
    unpaired = compare_matched(reg, m)
    first = unpaired.iloc[0]
    assert (first["n_cases"], first["n_controls"]) == (6, 5)


def test_one_patient_per_group():
    reg = toy_registry(n_cases=1, n_controls=1, miss_frac=0.0)
    table = compare_matched(reg, toy_match(reg))
    cont = table[table["kind"] == "continuous"]
    assert cont["p_value"].isna().all() and cont["effect_size"].isna().all()
    assert (cont["n_cases"] == 1).all()
    binary = table[table["kind"] == "binary"]
    assert (binary["p_value"] == 1.0).all()  # R: fisher.test on a 1 + 1 table gives 1
    mw = compare_matched(reg, toy_match(reg), test="mann_whitney")
    mw_p = mw.loc[mw["kind"] == "continuous", "p_value"]
    # R: wilcox.test(1, 2) gives P = 1; with the two values tied (wilcox.test(2, 2)) the normal
    # approximation has zero variance and R returns NA, as we do.
    assert (mw_p.isna() | (mw_p == 1.0)).all() and (mw_p == 1.0).any()


def test_zero_variance_and_all_successes():
    reg = toy_registry(n_cases=5, n_controls=5, miss_frac=0.0)
    for t in (4, 12):
        reg[f"leg_pain_{t}w"] = reg["baseline_leg_pain"] - 3.0  # every reduction is 3
        reg[f"gpe_{t}w"] = 1.0
        reg[f"additional_intervention_{t}w"] = pd.array([False] * len(reg), dtype="boolean")
    table = compare_matched(reg, toy_match(reg)).set_index(["outcome", "timepoint_weeks"])
    leg = table.loc[("leg_pain_reduction", 4)]
    assert leg["estimate"] == 0 and math.isnan(leg["p_value"]) and math.isnan(leg["effect_size"])
    success = table.loc[("positive_outcome", 4)]
    assert success["percent_cases"] == success["percent_controls"] == 100
    assert success["p_value"] == 1.0 and math.isnan(success["effect_size"])
    assert success["estimate"] == 0 and success["ci_low"] < 0 < success["ci_high"]
    chi = compare_matched(reg, toy_match(reg), binary_test="chi2")
    assert chi.loc[chi["outcome"] == "positive_outcome", "p_value"].isna().all()  # R: NaN


def test_locf_and_bocf_use_more_patients(registry, match):
    cc = compare_matched(registry, match)
    for rule in ("locf", "bocf"):
        filled = compare_matched(registry, match, missing=rule)
        assert (filled["missing_rule"] == rule).all()
        assert (filled["n_cases"] >= cc["n_cases"]).all()
        assert (filled["n_cases"] == 8).all()


def test_mice_is_seeded_and_pools(registry, match):
    kwargs = dict(missing="mice", binary_test="chi2", random_state=5, n_imputations=2,
                  mice_cycles=(2, 1))
    a = compare_matched(registry, match, **kwargs)
    b = compare_matched(registry, match, **kwargs)
    pd.testing.assert_frame_equal(a, b)
    assert (a["n_imputations"] == 2).all() and (a["n_cases"] == 8).all()
    assert a["p_value"].between(0, 1).all()
    assert a["method"].str.contains("Rubin|D2").all()
    with pytest.raises(ValueError, match="binary_test='fisher' cannot be pooled"):
        compare_matched(registry, match, missing="mice")
    with pytest.raises(ValueError, match="test='mann_whitney' cannot be pooled"):
        compare_matched(registry, match, missing="mice", test="mann_whitney", binary_test="chi2")


def test_pairs_must_agree_with_treatment(registry, match):
    swapped = StandInMatch(match.pairs.rename(columns={"treated": "control",
                                                      "control": "treated"}), match.weights)
    with pytest.raises(ValueError, match="disagrees with registry"):
        compare_matched(registry, swapped)
    with pytest.raises(ValueError, match="pairs"):
        compare_matched(registry, object())


def test_with_the_real_matching_engine(registry):
    from esi.matching import match

    result = match(registry, "near_normal", ["age", "baseline_leg_pain", "baseline_odi"],
                   caliper=None)
    table = compare_matched(registry, result, test="paired_t", binary_test="mcnemar")
    assert len(table) == 14
    assert (table["n_pairs"] <= 8).all()
    assert table["p_value"].between(0, 1).all()


def test_larger_cohort(registry):
    table = compare_larger_cohort(registry)
    out = derive_outcomes(registry)
    controls = registry.index[registry["near_normal"] == 0]
    assert table.iloc[0]["n_controls"] == out.loc[controls, "leg_pain_reduction_4w"].notna().sum()
    assert (table["comparison"] == "larger_cohort").all()
    assert table["source"].str.contains("concordant pathology").all()
    assert table["measure"].iloc[0] == "leg_pain_reduction_4w"
    with pytest.raises(ValueError, match="paired test"):
        compare_larger_cohort(registry, test="paired_t")


def test_reference_cohorts_are_parsed():
    ref = read_reference_cohorts()
    hyper = ref[ref["statistic"] == "leg_pain_reduction_1mo_mean_sd"]
    assert hyper["n"].tolist() == [61, 52, 24]
    assert hyper["mean"].tolist() == [1.8, 1.6, 0.1] and hyper["sd"].tolist() == [2.1, 3.1, 2.7]
    mri = ref[ref["statistic"] == "percent_positive_outcome_3mo"]
    assert mri["n"].tolist() == [65, 67] and mri["percent"].tolist() == [35.4, 40.7]
    gaba = ref[ref["statistic"] == "leg_pain_change_1mo_mean_sd"].iloc[0]
    assert (gaba["mean"], gaba["sd"], gaba["n"]) == (-2.2, 2.4, 73)


def test_historical_comparison(registry):
    table = compare_historical(registry)
    assert {"source", "measure", "test", "p_value", "n_reference"} <= set(table.columns)
    gaba = table[table["measure"] == "leg_pain_change_1mo_mean_sd"].iloc[0]
    assert gaba["mean_reference"] == 2.2  # a change of -2.2 is a reduction of 2.2
    out = derive_outcomes(registry)
    x = out.loc[registry["near_normal"] == 1, "leg_pain_reduction_4w"].dropna()
    ref = st.ttest_from_summary(x.mean(), x.std(ddof=1), len(x), 2.2, 2.4, 73)
    assert_allclose(gaba["p_value"], ref.p_value)
    assert gaba["source"].startswith("ESI vs gabapentin RCT")
    rate = table[(table["measure"] == "percent_positive_outcome_3mo")].iloc[0]
    assert rate["test"] == "binomial" and rate["arm"] == "MRI-blinded"
    y = out.loc[registry["near_normal"] == 1, "positive_outcome_12w"].dropna()
    assert_allclose(rate["p_value"], sps.binomtest(int(y.sum()), len(y), 0.354).pvalue)
    fisher = compare_historical(registry, rate_test="fisher")
    row = fisher[fisher["measure"] == "percent_positive_outcome_3mo"].iloc[0]
    assert row["test"] == "fisher" and "23/65" in row["note"]
    with pytest.raises(ValueError, match="rate_test"):
        compare_historical(registry, rate_test="z")
    cases_only = compare_historical(out[registry["near_normal"] == 1])
    assert cases_only["p_value"].notna().sum() >= 4
