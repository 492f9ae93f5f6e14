"""Rosenbaum bounds (esi.sensitivity.rosenbaum) against a published worked example and R.

Reference values: tests/reference/sensitivity/rosenbaum_reference.csv, made by
tests/reference/sensitivity/rosenbaum_reference.R (formulas of rbounds::psens,
DOS2::senWilcox, DOS2::senWilcoxExact, written out in base R; the textbook McNemar tail; and
the real output of rbounds 2.2's binarysens, whose tail differs, see
test_mcnemar_bound_and_rbounds_binarysens_differ_by_the_observed_count).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from esi.paths import PROJECT_ROOT
from esi.sensitivity.rosenbaum import (
    gamma_at_change,
    gamma_grid,
    mcnemar_sensitivity,
    rosenbaum_bounds,
    wilcoxon_sensitivity,
)

REFERENCE = pd.read_csv(PROJECT_ROOT / "tests/reference/sensitivity/rosenbaum_reference.csv",
                        keep_default_na=False, na_values=["NA"])

# Morton et al. (1982) lead exposure, 33 matched pairs: the worked example of
# Rosenbaum (2002) Observational Studies, 2nd ed., section 4.3.3 (data as printed in the
# rbounds::psens documentation).
LEAD_EXPOSED = np.array([38, 23, 41, 18, 37, 36, 23, 62, 31, 34, 24, 14, 21, 17, 16, 20, 15,
                         10, 45, 39, 22, 35, 49, 48, 44, 35, 43, 39, 34, 13, 73, 25, 27])
LEAD_CONTROL = np.array([16, 18, 18, 24, 19, 11, 10, 15, 16, 18, 18, 13, 19, 10, 16, 16, 24,
                         13, 9, 14, 21, 19, 7, 18, 19, 12, 11, 22, 25, 16, 13, 11, 13])
LEAD = LEAD_EXPOSED - LEAD_CONTROL
SMALL_NOTIES = np.array([1.5, -0.3, 2.2, 0.7, -1.1, 3.4, 0.2, 2.9, -0.6, 1.8, 4.1, -2.5, 0.9,
                         2.6])
SMALL_TIES = np.array([2, -1, 0, 3, 2, -0.5, 1, 0, 4, 2, -2, 1, 3.5, 1])
EXAMPLES = {"lead": LEAD, "small_noties": SMALL_NOTIES, "small_ties": SMALL_TIES}


def test_lead_example_reproduces_rosenbaum_2002_table_4_3():
    # Published: Rosenbaum (2002), Observational Studies, 2nd ed., Table 4.3 (section 4.3.3),
    # upper bounds on the one-sided significance level of Wilcoxon's signed-rank test for the
    # lead data: Gamma 1: < 0.0001, 2: 0.0018, 3: 0.0136, 4: 0.0388, 4.25: 0.0468, so the
    # conclusion changes a little above Gamma = 4.25. DOS2::senWilcox, whose documentation
    # says it reproduces Table 4.3, ranks |d| with the zero difference (rank 0): our
    # zero_method="pratt".
    # R: DOS2::senWilcox(lead$dif, gamma = g)
    table = wilcoxon_sensitivity(LEAD, [1, 2, 3, 4, 4.25], zero_method="pratt")
    assert table["p_upper"].iloc[0] < 0.0001
    assert_allclose(table["p_upper"].iloc[1:].round(4), [0.0018, 0.0136, 0.0388, 0.0468])
    assert (table["p_lower"] < 0.0001).all()
    pairs = pd.DataFrame({"treated": [f"t{i}" for i in range(33)],
                          "control": [f"c{i}" for i in range(33)]})
    outcomes = pd.DataFrame({"lead": np.r_[LEAD_EXPOSED, LEAD_CONTROL]},
                            index=pd.Index([*pairs["treated"], *pairs["control"]],
                                           name="patient_id"))
    change = gamma_at_change(pairs, outcomes, primary="lead", binary=None,
                             zero_method="pratt")
    assert change["significant"].item()
    assert change["bound"].item() == "p_upper"
    assert 4.25 < change["gamma_at_change"].item() < 4.5


SIGNED_RANK_CASES = sorted(set(map(tuple, REFERENCE.query("test == 'wilcoxon'")[
    ["example", "zero_method", "method"]].to_numpy())))


def test_reference_covers_every_signed_rank_variant():
    assert len(SIGNED_RANK_CASES) == 10  # lead: normal x 2 zero methods; small: all four


@pytest.mark.parametrize(("example", "zero_method", "method"), SIGNED_RANK_CASES)
def test_signed_rank_bounds_match_r(example, zero_method, method):
    ref = REFERENCE.query("example == @example and test == 'wilcoxon' and method == @method "
                          "and zero_method == @zero_method")
    # R: rbounds::psens(x, y, Gamma, GammaInc) (wilcox); DOS2::senWilcox(d, gamma) (pratt)
    table = wilcoxon_sensitivity(EXAMPLES[example], ref["gamma"], method=method,
                                 zero_method=zero_method)
    assert_allclose(table["p_upper"], ref["p_upper"], rtol=1e-9, atol=1e-14)
    assert_allclose(table["p_lower"], ref["p_lower"], rtol=1e-9, atol=1e-14)


def test_exact_at_gamma_one_is_the_exact_signed_rank_test():
    # R: wilcox.test(small_noties, alternative = "greater", exact = TRUE)$p.value
    r_value = REFERENCE.query("test == 'wilcox.test'")["p_upper"].item()
    table = wilcoxon_sensitivity(SMALL_NOTIES, 1.0, method="exact")
    assert_allclose(table["p_upper"], r_value, rtol=1e-12)
    assert_allclose(table["p_upper"], stats.wilcoxon(SMALL_NOTIES, alternative="greater",
                                                     method="exact").pvalue, rtol=1e-12)


def test_normal_at_gamma_one_is_scipy_signed_rank_without_correction():
    for d in (LEAD, SMALL_TIES):
        expected = stats.wilcoxon(d, alternative="greater", zero_method="wilcox",
                                  correction=False, method="approx").pvalue
        got = wilcoxon_sensitivity(d, 1.0)["p_upper"].item()
        assert_allclose(got, expected, rtol=1e-10)


def test_hammond_mcnemar_matches_rosenbaum_2002():
    # R: sum(dbinom(110:122, 122, g / (1 + g))), the tail P(B >= 110) of Rosenbaum (2002)
    # p. 112 (not rbounds::binarysens, which computes P(B > 110): see the next test)
    ref = REFERENCE.query("example == 'hammond' and test == 'mcnemar'")
    table = mcnemar_sensitivity(110, 12, ref["gamma"])
    assert_allclose(table["p_upper"], ref["p_upper"], rtol=1e-9)
    assert_allclose(table["p_lower"], ref["p_lower"], rtol=1e-9)
    # Rosenbaum (2002, section 4.3.2): the association survives a bias of Gamma = 5 but not
    # Gamma = 6 (upper bound 0.10 at Gamma = 6, about 0.02 at Gamma = 5).
    assert table.set_index("gamma").loc[5.0, "p_upper"] < 0.05
    assert table.set_index("gamma").loc[6.0, "p_upper"].round(2) == 0.10
    # the same through gamma_at_change on a pairs table: 110 + 12 discordant, 20 concordant
    n = 142
    case_event = np.r_[np.ones(110), np.zeros(12), np.ones(10), np.zeros(10)]
    control_event = np.r_[np.zeros(110), np.ones(12), np.ones(10), np.zeros(10)]
    pairs = pd.DataFrame({"treated": [f"s{i}" for i in range(n)],
                          "control": [f"n{i}" for i in range(n)]})
    outcomes = pd.DataFrame({"died": np.r_[case_event, control_event].astype(bool)},
                            index=[*pairs["treated"], *pairs["control"]])
    change = gamma_at_change(pairs, outcomes, primary=None, binary="died")
    assert 5 < change["gamma_at_change"].item() < 6
    p_at_change = mcnemar_sensitivity(110, 12, change["gamma_at_change"].item())
    assert_allclose(p_at_change["p_upper"], 0.05, rtol=1e-5)


BINARYSENS = [("hammond", 110, 12), ("small_binary", 7, 3), ("default_positive", 2, 5)]


@pytest.mark.parametrize(("example", "x", "y"), BINARYSENS)
def test_mcnemar_bound_and_rbounds_binarysens_differ_by_the_observed_count(example, x, y):
    # R: rbounds::binarysens(x, y, Gamma, GammaInc) (rbounds 2.2, its bounds table rounded to
    # 5 decimals) and its expression 1 - pbinom(D, n, p), D = max(x, y): P(B > D). esi keeps
    # the textbook tail P(B >= D) (the observed count included, as a P-value), so
    # esi = binarysens + dbinom(D, n, p); equivalently esi at D is binarysens' expression at
    # D - 1.
    ref = REFERENCE.query("example == @example and test == 'binarysens'")
    formula = REFERENCE.query("example == @example and test == 'binarysens_formula'")
    assert len(ref) >= 5 and np.array_equal(ref["gamma"], formula["gamma"])
    d, n = max(x, y), x + y
    table = mcnemar_sensitivity(d, n - d, ref["gamma"])  # the direction of the larger count
    g = ref["gamma"].to_numpy()
    for col, p in (("p_upper", g / (1 + g)), ("p_lower", 1 / (1 + g))):
        observed = stats.binom.pmf(d, n, p)
        assert_allclose(table[col] - observed, formula[col], rtol=1e-9, atol=1e-15)
        assert_allclose(table[col] - observed, ref[col], rtol=0, atol=5e-6 + 1e-12)
        assert_allclose(table[col], stats.binom.sf(d - 1, n, p), rtol=1e-12)
        assert (table[col].to_numpy() > ref[col].to_numpy()).all()
    if example == "default_positive":
        # The default run's positive outcome at 4 weeks: 5 pairs in which only the control
        # had a positive outcome, 2 in which only the case had. At Gamma = 1 binarysens says
        # 0.0625 (= P(B >= 6)); esi 0.2266 = binom.test(5, 7, alternative = "greater").
        assert ref["p_upper"].iloc[0] == 0.0625
        assert table["p_upper"].iloc[0] == pytest.approx(0.2265625, abs=1e-15)
        binom_ref = REFERENCE.query("example == @example and test == 'binom.test'")
        assert_allclose(table["p_upper"].iloc[0], binom_ref["p_upper"].item(), rtol=1e-12)
        own = REFERENCE.query("example == @example and test == 'mcnemar'")
        less = mcnemar_sensitivity(2, 5, own["gamma"], alternative="less")
        assert_allclose(less["p_upper"], own["p_upper"], rtol=1e-9)
        assert_allclose(less["p_lower"], own["p_lower"], rtol=1e-9)
        # the same through rosenbaum_bounds on pairs (direction "observed" -> "less")
        pairs = pd.DataFrame({"treated": [f"t{i}" for i in range(14)],
                              "control": [f"c{i}" for i in range(14)]})
        yt = np.r_[np.ones(2), np.zeros(5), np.ones(2), np.zeros(5)]
        yc = np.r_[np.zeros(2), np.ones(5), np.ones(2), np.zeros(5)]
        outcomes = pd.DataFrame({"positive_outcome_4w": np.r_[yt, yc]},
                                index=pd.Index([*pairs["treated"], *pairs["control"]],
                                               name="patient_id"))
        rb = rosenbaum_bounds(pairs, outcomes, primary=None, gammas=own["gamma"])
        assert (rb["alternative"] == "less").all() and (rb["statistic"] == 5).all()
        assert_allclose(rb["p_upper"], own["p_upper"], rtol=1e-9)


def test_small_binary_matches_r():
    # R: sum(dbinom(7:10, 10, g / (1 + g))); binom.test(7, 10, alternative = "greater")
    ref = REFERENCE.query("example == 'small_binary' and test == 'mcnemar'")
    table = mcnemar_sensitivity(7, 3, ref["gamma"])
    assert_allclose(table["p_upper"], ref["p_upper"], rtol=1e-9)
    assert_allclose(table["p_lower"], ref["p_lower"], rtol=1e-9)
    binom_ref = REFERENCE.query("example == 'small_binary' and test == 'binom.test'")[
        "p_upper"].item()
    assert_allclose(table["p_upper"].iloc[0], binom_ref, rtol=1e-12)
    less = mcnemar_sensitivity(3, 7, ref["gamma"], alternative="less")
    assert_allclose(less["p_upper"], table["p_upper"])


def test_bounds_bracket_and_are_monotone():
    g = gamma_grid(3.0, 0.1)
    for method in ("normal", "exact"):
        table = wilcoxon_sensitivity(SMALL_TIES, g, method=method)
        assert (table["p_upper"] >= table["p_lower"] - 1e-15).all()
        assert (np.diff(table["p_upper"]) >= -1e-15).all()
        assert (np.diff(table["p_lower"]) <= 1e-15).all()
        assert table["p_upper"].iloc[0] == pytest.approx(table["p_lower"].iloc[0])


def test_gamma_grid():
    assert_allclose(gamma_grid(2.0, 0.1), np.round(np.arange(1.0, 2.05, 0.1), 10))
    assert gamma_grid(1.0, 0.5).tolist() == [1.0]
    with pytest.raises(ValueError, match="gamma_max"):
        gamma_grid(0.5)
    with pytest.raises(ValueError, match="gamma_step"):
        gamma_grid(2, 0)


def _study_like(seed=11, n=14):
    rng = np.random.default_rng(seed)
    ids_t = [f"P{i:03d}" for i in range(n)]
    ids_c = [f"P{100 + i:03d}" for i in range(n)]
    reduction = np.round(rng.normal(2.4, 2.3, 2 * n) * 2) / 2
    reduction[n:] += 0.5
    positive = rng.random(2 * n) < 0.4
    outcomes = pd.DataFrame({"leg_pain_reduction_4w": reduction,
                             "positive_outcome_4w": positive},
                            index=pd.Index(ids_t + ids_c, name="patient_id"))
    pairs = pd.DataFrame({"treated": ids_t, "control": ids_c, "subclass": range(1, n + 1),
                          "distance_gap": 0.01})
    return pairs, outcomes


def test_rosenbaum_bounds_table_for_a_match():
    pairs, outcomes = _study_like()
    table = rosenbaum_bounds(pairs, outcomes, gamma_max=2.0, gamma_step=0.5)
    assert list(table.columns[:5]) == ["outcome", "test", "gamma", "p_upper", "p_lower"]
    assert table["outcome"].unique().tolist() == ["leg_pain_reduction_4w",
                                                  "positive_outcome_4w"]
    assert table["gamma"].tolist() == [1.0, 1.5, 2.0] * 2
    d = (outcomes["leg_pain_reduction_4w"].to_numpy()[:14]
         - outcomes["leg_pain_reduction_4w"].to_numpy()[14:])
    direction = "less" if d.mean() < 0 else "greater"
    primary = table.query("test == 'wilcoxon_signed_rank'")
    assert (primary["alternative"] == direction).all()
    expected = wilcoxon_sensitivity(d, [1.0, 1.5, 2.0], alternative=direction)
    assert_allclose(primary["p_upper"], expected["p_upper"])
    assert_allclose(primary["p_lower"], expected["p_lower"])
    # an explicit direction is honoured
    greater = rosenbaum_bounds(pairs, outcomes, gammas=[1.0], alternative="greater",
                               binary=None)
    assert greater["alternative"].item() == "greater"


def test_incomplete_pairs_are_left_out_and_counted():
    pairs, outcomes = _study_like()
    outcomes.loc["P003", "leg_pain_reduction_4w"] = np.nan
    table = rosenbaum_bounds(pairs, outcomes, gammas=[1.0], binary=None)
    assert table["n_pairs"].item() == 14
    assert table["n_complete"].item() == 13


def test_argument_errors_name_the_culprit():
    pairs, outcomes = _study_like()
    with pytest.raises(ValueError, match="method"):
        wilcoxon_sensitivity(SMALL_TIES, 1.0, method="approx")
    with pytest.raises(ValueError, match="gammas"):
        wilcoxon_sensitivity(SMALL_TIES, [0.5])
    with pytest.raises(ValueError, match="differences"):
        wilcoxon_sensitivity([1.0, np.nan], 1.0)
    with pytest.raises(ValueError, match="n_case_only"):
        mcnemar_sensitivity(-1, 3)
    with pytest.raises(ValueError, match="column"):
        rosenbaum_bounds(pairs, outcomes, primary="leg_pain_8w")
    two_controls = pd.concat([pairs, pairs.assign(control=pairs["control"].iloc[::-1].values)])
    with pytest.raises(ValueError, match="1:1"):
        rosenbaum_bounds(two_controls, outcomes)
    with pytest.raises(ValueError, match="binary"):
        rosenbaum_bounds(pairs, outcomes, binary="leg_pain_reduction_4w", primary=None)
    with pytest.raises(ValueError, match="alpha"):
        gamma_at_change(pairs, outcomes, alpha=5)
