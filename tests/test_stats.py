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


def test_exact_mann_whitney_from_the_null_distribution():
    # esi.stats.nonparametric.mann_whitney_exact_p (the null distribution of U worked out
    # once per (n1, n2) in whole numbers) against scipy's exact method on untied rows, and the
    # row functions with exact=None against the single test (issue 15: one home).
    from scipy import stats as sps

    from esi.stats import mann_whitney
    from esi.stats.nonparametric import (
        mann_whitney_exact_p,
        mann_whitney_p_from_u,
        mann_whitney_p_rows,
        mann_whitney_uses_exact,
    )

    rng = np.random.default_rng(3)
    for n1, n2 in [(1, 1), (1, 6), (4, 9), (14, 14), (30, 7), (49, 49)]:
        x, y = rng.normal(size=(40, n1)), rng.normal(0.5, 1.0, size=(40, n2))
        for alt in ("two-sided", "less", "greater"):
            ref = sps.mannwhitneyu(x, y, axis=1, alternative=alt, method="exact")
            got = mann_whitney_exact_p(ref.statistic, n1, n2, alt)
            np.testing.assert_allclose(got, ref.pvalue, rtol=1e-13, atol=1e-300)
            rows = mann_whitney_p_rows(x, y, alt, exact=None)
            single = [mann_whitney(a, b, alternative=alt).p_value for a, b in zip(x, y, strict=True)]
            np.testing.assert_array_equal(rows, single)
    # the whole distribution: C(6, 3) = 20 arrangements, U = 0..9 with counts
    # 1 1 2 3 3 3 3 2 1 1
    np.testing.assert_allclose(mann_whitney_exact_p(np.arange(10), 3, 3, "less"),
                               np.cumsum([1, 1, 2, 3, 3, 3, 3, 2, 1, 1]) / 20, rtol=1e-15)
    assert mann_whitney_uses_exact(49, 49, False) and not mann_whitney_uses_exact(50, 3, False)
    assert not mann_whitney_uses_exact(5, 5, True)
    with pytest.raises(ValueError, match="exact=True"):
        mann_whitney_uses_exact(5, 5, True, exact=True)
    with pytest.raises(ValueError, match="exact=True"):
        mann_whitney_p_from_u([3.0], [6.0], 4, 4, exact=True)
    with pytest.raises(ValueError, match="whole numbers"):
        mann_whitney_exact_p(2.5, 3, 3)


def test_row_wise_signed_rank_equals_the_single_test():
    from esi.stats import wilcoxon_signed_rank
    from esi.stats.nonparametric import wilcoxon_p_rows

    rng = np.random.default_rng(4)
    for n in (3, 12, 49, 50, 70):
        d = rng.normal(0.3, 1.0, size=(30, n))
        d[0, 0] = 0.0  # a zero difference: the approximation, row by row
        d[1, :2] = [1.5, -1.5]  # tied |d|
        for alt in ("two-sided", "less", "greater"):
            want = [wilcoxon_signed_rank(r, np.zeros(n), alternative=alt).p_value for r in d]
            np.testing.assert_allclose(wilcoxon_p_rows(d, alt), want, rtol=1e-12)


@pytest.mark.parametrize("n1,n2", [(1, 1), (1, 7), (3, 14), (7, 7), (14, 14), (13, 5)])
def test_vectorised_fisher_and_chi2_are_scipy_bit_for_bit(n1, n2):
    # esi.stats.contingency.fisher_p_values / chi2_values apply the very steps of
    # scipy.stats.fisher_exact / chi2_contingency to arrays; fisher_exact and chi2_test (the
    # analysis) and the binary power (esi.sensitivity.binary_power) run through them. Every
    # table with these row totals, and random larger ones.
    from scipy import stats as sps

    from esi.stats.contingency import chi2_values, fisher_p_values

    a, c = (v.ravel() for v in np.meshgrid(np.arange(n1 + 1), np.arange(n2 + 1),
                                           indexing="ij"))
    b, d = n1 - a, n2 - c
    if (n1, n2) == (14, 14):
        rng = np.random.default_rng(9)
        big = rng.integers(0, 120, size=(60, 4))
        a, b, c, d = (np.r_[v, big[:, i]] for i, v in enumerate((a, b, c, d)))
    for alt in ("two-sided", "less", "greater"):
        want = [sps.fisher_exact([[w, x], [y, z]], alternative=alt).pvalue
                for w, x, y, z in zip(a, b, c, d, strict=True)]
        np.testing.assert_array_equal(fisher_p_values(a, b, c, d, alt), want)
    for correct in (True, False):
        stat, p = chi2_values(a, b, c, d, correct)
        for i, (w, x, y, z) in enumerate(zip(a, b, c, d, strict=True)):
            if 0 in (w + x, y + z, w + y, x + z):
                assert np.isnan(stat[i]) and np.isnan(p[i])
                continue
            res = sps.chi2_contingency([[w, x], [y, z]], correction=correct)
            assert (stat[i], p[i]) == (res.statistic, res.pvalue), (w, x, y, z)
