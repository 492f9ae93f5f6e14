"""Leave-one-pair-out influence (esi.sensitivity.influence)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from esi.sensitivity.influence import leave_one_pair_out


def _match(n=14, ratio=1, seed=3):
    rng = np.random.default_rng(seed)
    cases = [f"C{i:02d}" for i in range(n)]
    controls = [f"K{i:02d}" for i in range(n * ratio)]
    pairs = pd.DataFrame({"treated": np.repeat(cases, ratio), "control": controls,
                          "subclass": np.repeat(np.arange(1, n + 1), ratio)})
    values = np.round(rng.normal(2.5, 2.3, n * (1 + ratio)) * 2) / 2
    outcomes = pd.DataFrame({"leg_pain_reduction_4w": values},
                            index=pd.Index(cases + controls, name="patient_id"))
    return pairs, outcomes


def test_each_row_is_the_estimate_without_that_pair():
    pairs, outcomes = _match()
    table = leave_one_pair_out(pairs, outcomes)
    assert len(table) == 15
    assert table["left_out"].tolist() == ["none"] + ["set"] * 14
    y = outcomes["leg_pain_reduction_4w"]
    x_all, c_all = y.loc[pairs["treated"]].to_numpy(), y.loc[pairs["control"]].to_numpy()
    full = stats.ttest_ind(x_all, c_all, equal_var=False)  # R: t.test(x, y)
    assert_allclose(table["p_value"].iloc[0], full.pvalue, rtol=1e-10)
    for k in range(14):
        keep = np.arange(14) != k
        row = table.iloc[k + 1]
        assert row["treated"] == pairs["treated"].iloc[k]
        assert_allclose(row["estimate"], x_all[keep].mean() - c_all[keep].mean())
        ref = stats.ttest_ind(x_all[keep], c_all[keep], equal_var=False)
        assert_allclose(row["p_value"], ref.pvalue, rtol=1e-10)
        ci = ref.confidence_interval()
        assert_allclose([row["ci_low"], row["ci_high"]], [ci.low, ci.high], rtol=1e-10)
    assert_allclose(table["change"], table["estimate"] - table["estimate"].iloc[0])


def test_paired_jackknife_mean_equals_full_estimate():
    pairs, outcomes = _match(seed=4)
    table = leave_one_pair_out(pairs, outcomes, test="paired_t")
    # leaving out each pair once: the mean of the 14 leave-one-out means is the full mean
    assert_allclose(table["estimate"].iloc[1:].mean(), table["estimate"].iloc[0])
    d = (outcomes.loc[pairs["treated"], "leg_pain_reduction_4w"].to_numpy()
         - outcomes.loc[pairs["control"], "leg_pain_reduction_4w"].to_numpy())
    assert_allclose(table["p_value"].iloc[0], stats.ttest_1samp(d, 0).pvalue, rtol=1e-10)


def test_sets_with_several_controls_enter_as_case_and_control_mean():
    pairs, outcomes = _match(n=6, ratio=2, seed=5)
    table = leave_one_pair_out(pairs, outcomes, test="wilcoxon")
    assert len(table) == 7
    y = outcomes["leg_pain_reduction_4w"]
    first = table.iloc[1]
    assert first["control"] == "K00;K01"
    assert_allclose(first["y_control"], y.loc[["K00", "K01"]].mean())


def test_conclusion_change_is_flagged():
    pairs, outcomes = _match(seed=6)
    # make one pair carry a large difference
    outcomes.loc["C00", "leg_pain_reduction_4w"] = 30.0
    table = leave_one_pair_out(pairs, outcomes, test="welch", alpha=0.5)
    assert table.loc[table["treated"] == "C00", "change"].item() < -1.5
    expected = table["significant"] != table["significant"].iloc[0]
    assert (table["changes_conclusion"] == expected).all()


def test_missing_outcomes_and_errors():
    pairs, outcomes = _match()
    outcomes.loc["K03", "leg_pain_reduction_4w"] = np.nan
    table = leave_one_pair_out(pairs, outcomes)
    assert table["n_sets"].iloc[0] == 13
    with pytest.raises(ValueError, match="test"):
        leave_one_pair_out(pairs, outcomes, test="t")
    with pytest.raises(ValueError, match="outcome|column"):
        leave_one_pair_out(pairs, outcomes, outcome="odi_reduction_4w")
    with pytest.raises(ValueError, match="pairs"):
        leave_one_pair_out(pairs.iloc[:2], outcomes)
