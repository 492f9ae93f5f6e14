"""Argument checks and edge cases of esi.stats not covered by the R reference file."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from esi import stats as st


def test_missing_values_are_dropped_and_nullable_dtypes_accepted():
    x = pd.Series([1.0, 2.0, None, 4.0], dtype="Float64")
    a = st.welch_t(x, [2, 3, 5])
    b = st.welch_t([1, 2, 4], [2, 3, 5])
    assert a == b


def test_paired_inputs_must_align():
    with pytest.raises(ValueError, match="equal length"):
        st.paired_t([1, 2, 3], [1, 2])
    res = st.paired_t([1, 2, np.nan, 4], [0.5, np.nan, 2, 2])  # two complete pairs
    assert res.n1 == 2


def test_zero_variance_gives_nan_not_an_error():
    res = st.welch_t([2, 2, 2], [2, 2, 2])  # R: t.test stops ("data are essentially constant")
    assert math.isnan(res.p_value) and res.estimate == 0
    assert math.isnan(st.hedges_g([1, 1], [1, 1]).estimate)
    assert math.isnan(st.paired_t([1, 2, 3], [0, 1, 2]).p_value)  # constant differences


def test_exact_with_ties_is_refused():
    with pytest.raises(ValueError, match="exact=True"):
        st.mann_whitney([1, 2, 2], [3, 4], exact=True)
    with pytest.raises(ValueError, match="exact=True"):
        st.wilcoxon_signed_rank([1, 2, 3], [1, 1, 1], exact=True)  # a zero difference


@pytest.mark.parametrize("bad", [[[1, 2, 3], [4, 5, 6]], [[1, -1], [2, 3]], [[1.5, 1], [2, 3]]])
def test_tables_are_validated(bad):
    with pytest.raises(ValueError, match="table"):
        st.fisher_exact(bad)


def test_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match="alternative"):
        st.welch_t([1, 2], [3, 4], alternative="two.sided")
    with pytest.raises(ValueError, match="confidence"):
        st.hedges_g([1, 2], [3, 4], confidence=95)
    with pytest.raises(ValueError, match="correct"):
        st.chi2_test([[1, 2], [3, 4]], correct="yes")
    with pytest.raises(ValueError, match="kind"):
        st.odds_ratio([[1, 2], [3, 4]], kind="woolf")
    with pytest.raises(ValueError, match="reference_rate"):
        st.binomial_test_rate(3, 10, 35)
    with pytest.raises(ValueError, match="percent"):
        st.counts_from_percent(50.0, 7)  # 3.5 of 7 is no whole count
    with pytest.raises(ValueError, match="sd1"):
        st.ttest_from_summary(1, -1, 10, 2, 1, 10)


def test_one_sided_fisher_directions():
    table = [[12, 2], [5, 9]]  # more events among cases
    assert st.fisher_exact(table, alternative="greater").p_value < 0.05
    assert st.fisher_exact(table, alternative="less").p_value > 0.95


def test_summary_t_equals_raw_t():
    rng = np.random.default_rng(4)
    x, y = rng.normal(2, 1, 12), rng.normal(1, 2, 9)
    raw = st.welch_t(x, y)
    summ = st.ttest_from_summary(x.mean(), x.std(ddof=1), 12, y.mean(), y.std(ddof=1), 9)
    assert math.isclose(raw.p_value, summ.p_value, rel_tol=1e-12)
    assert summ.test == "welch_summary"


def test_noncentral_interval_far_in_the_tail():
    # scipy 1.17's nct.cdf(-2.1591, 299, 8) is NaN; the interval must still be found
    # (it occurred for the 12-week back-pain row against the larger cohort).
    from scipy import stats as sps

    from esi.stats.effsize import _ncp_interval

    lo, hi = _ncp_interval(-2.1591, 299, 0.95)
    assert np.isfinite(lo) and np.isfinite(hi) and lo < -2.1591 < hi
    assert abs(sps.nct.sf(2.1591, 299, -lo) - 0.975) < 1e-9
    assert abs(sps.nct.sf(2.1591, 299, -hi) - 0.025) < 1e-9


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize(("lead", "n1", "n2", "ties"), [((400,), 14, 14, True),
                                                        ((400,), 14, 14, False),
                                                        ((20, 30), 9, 6, True),
                                                        ((50,), 1, 2, True)])
def test_row_wise_mann_whitney_equals_scipy(alternative, lead, n1, n2, ties):
    # scipy.stats.mannwhitneyu(method="asymptotic", use_continuity=True), i.e. R's
    # wilcox.test(x, y, exact = FALSE, correct = TRUE)
    from scipy import stats as sps

    from esi.stats.nonparametric import mann_whitney_p_rows

    rng = np.random.default_rng(n1 * 100 + n2)
    x = rng.normal(size=lead + (n1,))
    y = rng.normal(0.3, 1.2, size=lead + (n2,))
    if ties:
        x, y = np.round(x * 2) / 2, np.round(y * 2) / 2
    expected = sps.mannwhitneyu(x, y, axis=-1, alternative=alternative,
                                method="asymptotic").pvalue
    np.testing.assert_allclose(mann_whitney_p_rows(x, y, alternative), expected, rtol=1e-12,
                               atol=1e-15)


def test_row_wise_mann_whitney_all_tied_and_bad_alternative():
    from esi.stats.nonparametric import mann_whitney_p_rows

    assert (mann_whitney_p_rows(np.ones((2, 3)), np.ones((2, 4))) == 1).all()
    with pytest.raises(ValueError, match="alternative must be"):
        mann_whitney_p_rows(np.ones(3), np.ones(3), "two_sided")
