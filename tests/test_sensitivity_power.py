"""Power, precision and equivalence (esi.sensitivity.power) against R.

Reference values: tests/reference/sensitivity/power_reference.csv and tost_reference.csv,
made by tests/reference/sensitivity/power_reference.R (power.t.test, t.test).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from esi.paths import PROJECT_ROOT
from esi.sensitivity import power as pw

REF_DIR = PROJECT_ROOT / "tests/reference/sensitivity"
POWER_REF = pd.read_csv(REF_DIR / "power_reference.csv")
TOST_REF = pd.read_csv(REF_DIR / "tost_reference.csv").set_index("test")
CASES = np.array([2, 4.5, 0, 3, 6, 1.5, -1, 2.5, 5, 0.5, 3.5, 2, 1, 4])
CONTROLS = np.array([3, 2.5, 1, 4, 5.5, 2, 0, 3.5, 2, 1.5, 4, 3, 2.5, 2])
N_SIM = 4000


def _ref(quantity, difference=None):
    rows = POWER_REF.query("quantity == @quantity")
    if difference is not None:
        rows = rows[np.isclose(rows["difference"], difference)]
    return rows["value"].item()


def test_published_design_is_read_from_the_paper_targets():
    design = pw.published_design()
    assert design == {"n_per_group": 14, "sd_cases": 2.55, "sd_controls": 2.15}
    with pytest.raises(ValueError, match="timepoint"):
        pw.published_design(timepoint=8)


@pytest.mark.parametrize("difference", [0.5, 1.0, 2.0, 3.0])
def test_student_power_matches_power_t_test(difference):
    # R: power.t.test(n = 14, delta = d, sd = sqrt((2.55^2 + 2.15^2) / 2))$power
    expected = _ref("power_student", difference)
    got = pw.power_by_simulation(difference, test="student", n_sim=N_SIM, seed=1)
    assert abs(got["power"].item() - expected) < 4 * np.sqrt(expected * (1 - expected) / N_SIM)


def test_welch_power_is_close_to_student_and_defaults_to_paper_design():
    got = pw.power_by_simulation((1.0, 2.0), n_sim=N_SIM, seed=2)
    assert got["n_per_group"].tolist() == [14, 14]
    for d in (1.0, 2.0):
        expected = _ref("power_student", d)  # Welch loses very little at 14 per group
        power = got.set_index("difference").loc[d, "power"]
        assert abs(power - expected) < 0.03
    assert_allclose(got["mc_se"], np.sqrt(got["power"] * (1 - got["power"]) / N_SIM))


def test_paired_power_with_correlation_matches_power_t_test():
    # R: power.t.test(n = 14, delta = d, sd = sqrt(s1^2 + s2^2 - s1 s2), type = "paired")
    got = pw.power_by_simulation((1.0, 2.0), test="paired_t", correlation=0.5, n_sim=N_SIM,
                                 seed=3).set_index("difference")["power"]
    for d in (1.0, 2.0):
        expected = _ref("power_paired_r05", d)
        assert abs(got[d] - expected) < 4 * np.sqrt(expected * (1 - expected) / N_SIM)


def test_minimum_detectable_difference_matches_power_t_test():
    # R: power.t.test(n = 14, power = 0.8, sd = s)$delta  (2.59 points)
    mdd = pw.minimum_detectable_difference(test="student", n_sim=N_SIM, seed=4)
    assert abs(mdd - _ref("mdd_student")) < 0.12
    # the detectable difference really has 80% power with the same draws
    at = pw.power_by_simulation(mdd, test="student", n_sim=N_SIM, seed=4)["power"].item()
    below = pw.power_by_simulation(mdd - 0.01, test="student", n_sim=N_SIM, seed=4)
    assert at >= 0.8 > below["power"].item()


@pytest.mark.parametrize("difference", [1.0, 2.0])
def test_sample_size_matches_power_t_test(difference):
    # R: ceiling(power.t.test(delta = d, power = 0.8, sd = s)$n)  (89 and 23 per group)
    expected = _ref("n_student", difference)
    n = pw.sample_size_per_group(difference, test="student", n_sim=N_SIM, seed=5)
    assert abs(n - expected) <= max(2, 0.08 * expected)


def _noncentral_t_n(difference, *, welch, sd=(2.55, 2.15), target=0.8, alpha=0.05):
    """Smallest n per group with noncentral-t power >= target: Student (df 2n - 2, as R
    power.t.test) or the Welch approximation (Satterthwaite df of the true SDs)."""
    s1, s2 = sd
    for n in range(3, 1000):
        df = (n - 1) * (s1**2 + s2**2) ** 2 / (s1**4 + s2**4) if welch else 2 * n - 2
        ncp = difference / np.sqrt((s1**2 + s2**2) / n)
        crit = stats.t.ppf(1 - alpha / 2, df)
        if stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp) >= target:
            return n
    raise AssertionError("no n below 1000")


@pytest.mark.parametrize("test", ["student", "welch"])
@pytest.mark.parametrize("difference", [1.0, 2.0])
def test_sample_size_matches_noncentral_t(test, difference):
    expected = _noncentral_t_n(difference, welch=test == "welch")
    if test == "student":  # the same as R's power.t.test
        assert expected == _ref("n_student", difference)
    n = pw.sample_size_per_group(difference, test=test, n_sim=N_SIM, seed=11)
    assert abs(n - expected) <= max(2, 0.08 * expected)


def test_nested_draws_are_the_same_in_any_blocks():
    one = pw._NestedDraws(8, 50, 0.3).take(40)
    blocks = pw._NestedDraws(8, 50, 0.3)
    for n in (3, 17, 5, 40):  # grown in blocks, also asked for fewer than drawn
        case, control = blocks.take(n)
        assert case.shape == control.shape == (50, n)
        np.testing.assert_array_equal(case, one[0][:, :n])
        np.testing.assert_array_equal(control, one[1][:, :n])
    # column-major standard normals from the two generators spawned from the seed
    case_seq, other_seq = np.random.SeedSequence(8).spawn(2)
    z_case = np.random.default_rng(case_seq).standard_normal((40, 50)).T
    z_other = np.random.default_rng(other_seq).standard_normal((40, 50)).T
    np.testing.assert_array_equal(one[0], z_case)
    np.testing.assert_allclose(one[1], 0.3 * z_case + np.sqrt(1 - 0.09) * z_other, rtol=1e-15)


@pytest.mark.parametrize("test", ["welch", "mann_whitney"])
def test_sample_size_does_not_depend_on_n_max(test):
    kwargs = {"test": test, "n_sim": 1000, "seed": 12}
    for difference in (1.0, 2.0):
        n = pw.sample_size_per_group(difference, **kwargs)
        # n_max from the result itself (bisection points above it count as reached) up
        for n_max in (n, n + 1, 2 * n, 500, 5000):
            assert pw.sample_size_per_group(difference, n_max=n_max, **kwargs) == n
        with pytest.raises(ValueError, match="n_max"):
            pw.sample_size_per_group(difference, n_max=n - 1, **kwargs)
        # the simulated power crosses the target between n - 1 and n (nested draws)
        draws, sds = pw._NestedDraws(12, 1000, 0.0), (2.55, 2.15)
        at = pw._power(difference, *draws.take(n), sds, test, 0.05)
        below = pw._power(difference, *draws.take(n - 1), sds, test, 0.05)
        assert at >= 0.8 > below


def test_every_test_simulates_the_analysis_p_values():
    # Issue 15: the simulation must run the test the analysis runs, as it runs it: each row's
    # P is that of the esi.stats function with its default options (for the rank tests, the
    # exact P without ties below 50 per group, as R's wilcox.test; before, the Mann-Whitney
    # simulation took scipy's normal approximation above 8 per group and the signed-rank one
    # scipy's approximation without continuity correction at 50 or more).
    from esi import stats as st

    rng = np.random.default_rng(0)
    for n in (5, 14, 49, 50, 60):
        x, y = rng.normal(size=(5, n)), rng.normal(0.3, 1.2, size=(5, n))
        for test, analysis in (
            ("welch", lambda a, b: st.welch_t(a, b).p_value),
            ("student", lambda a, b: st.student_t(a, b).p_value),
            ("paired_t", lambda a, b: st.paired_t(a, b).p_value),
            ("mann_whitney", lambda a, b: st.mann_whitney(a, b).p_value),
            ("wilcoxon", lambda a, b: st.wilcoxon_signed_rank(a, b).p_value),
        ):
            got = pw._p_values(x, y, test)
            want = [analysis(a, b) for a, b in zip(x, y, strict=True)]
            assert_allclose(got, want, rtol=1e-12, err_msg=f"{test} n={n}")
        # the t tests are scipy's, as before
        assert_allclose(pw._p_values(x, y, "welch"),
                        stats.ttest_ind(x, y, equal_var=False, axis=1).pvalue, rtol=1e-10)
        assert_allclose(pw._p_values(x, y, "student"), stats.ttest_ind(x, y, axis=1).pvalue,
                        rtol=1e-10)
        assert_allclose(pw._p_values(x, y, "paired_t"), stats.ttest_rel(x, y, axis=1).pvalue,
                        rtol=1e-10)
        if n <= 8:  # scipy's method="auto" is exact there too, as it was simulated before
            assert_allclose(pw._p_values(x, y, "mann_whitney"),
                            stats.mannwhitneyu(x, y, axis=1).pvalue, rtol=1e-10)
    power = pw.power_by_simulation(2.0, test="mann_whitney", n_sim=500, seed=6)
    assert 0.3 < power["power"].item() < 0.75


def test_mann_whitney_power_is_the_share_of_analysis_tests_below_alpha():
    # The simulated power is, draw for draw, the share of simulated studies in which
    # esi.stats.mann_whitney (the analysis' test: exact at 14 per group without ties) gives
    # P < alpha; the normal approximation would give another share (the example:
    # 14 per group, SDs 2.55 / 2.15, a 2-point difference: 0.554 exact vs 0.532 approximate
    # with n_sim 20,000, seed 2025).
    from esi.stats import mann_whitney

    n_sim, seed, delta, sds = 400, 2025, 2.0, (2.55, 2.15)
    z_case, z_control = pw._draws(seed, n_sim, 14, 0.0)
    x, y = delta + sds[0] * z_case, sds[1] * z_control
    exact = np.array([mann_whitney(a, b).p_value for a, b in zip(x, y, strict=True)])
    approx = np.array([mann_whitney(a, b, exact=False).p_value
                       for a, b in zip(x, y, strict=True)])
    assert all(mann_whitney(a, b).method == "exact" for a, b in zip(x[:5], y[:5], strict=True))
    got = pw.power_by_simulation(delta, n_sim=n_sim, seed=seed, test="mann_whitney")
    assert got["power"].item() == np.mean(exact < 0.05)
    assert np.mean(approx < 0.05) < np.mean(exact < 0.05)


def test_simulation_is_deterministic_and_seeded():
    a = pw.power_summary(n_sim=300, seed=7)
    b = pw.power_summary(n_sim=300, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert a["quantity"].tolist() == ["power", "power", "minimum_detectable_difference",
                                      "n_per_group_needed", "n_per_group_needed"]
    # power rises with the difference and with n on the curve
    curve = pw.power_curve(n_per_group=(14, 28), n_sim=300, seed=9)
    for _, one in curve.groupby("n_per_group"):
        assert (np.diff(one["power"]) >= 0).all()
    wide = curve.pivot(index="difference", columns="n_per_group", values="power")
    assert (wide[28] >= wide[14] - 0.02).all()
    assert curve.query("difference == 0")["power"].between(0.02, 0.09).all()


@pytest.mark.parametrize("kind", ["welch", "student", "paired_t"])
def test_tost_matches_two_one_sided_t_tests_in_r(kind):
    # R: t.test(cases, controls, mu = -1.5, alternative = "greater") and
    #    t.test(cases, controls, mu = 1.5, alternative = "less"), conf.level = 0.90
    ref = TOST_REF.loc[kind]
    got = pw.tost(CASES, CONTROLS, 1.5, paired=kind == "paired_t",
                  equal_var=kind == "student").iloc[0]
    assert got["test"] == kind
    for column in ("t_lower", "p_lower", "t_upper", "p_upper", "df", "ci_low", "ci_high"):
        assert_allclose(got[column], ref[column], rtol=1e-7)
    assert_allclose(got["p_value"], max(ref["p_lower"], ref["p_upper"]), rtol=1e-7)
    assert got["equivalent"] == (max(ref["p_lower"], ref["p_upper"]) < 0.05)
    # equivalence <=> the 90% interval inside the margin
    assert got["equivalent"] == (-1.5 < got["ci_low"] and got["ci_high"] < 1.5)


def test_tost_not_equivalent_with_narrow_margin():
    got = pw.tost(CASES, CONTROLS, 0.5).iloc[0]
    assert not got["equivalent"]
    assert got["p_value"] > 0.05


def test_argument_errors_name_the_culprit():
    with pytest.raises(ValueError, match="test"):
        pw.power_by_simulation(1.0, test="t")
    with pytest.raises(ValueError, match="n_sim"):
        pw.power_by_simulation(1.0, n_sim=5)
    with pytest.raises(ValueError, match="sd"):
        pw.power_by_simulation(1.0, sd=(1.0, -2.0))
    with pytest.raises(ValueError, match="n_per_group"):
        pw.power_by_simulation(1.0, n_per_group=1)
    with pytest.raises(ValueError, match="difference"):
        pw.sample_size_per_group(0.0)
    with pytest.raises(ValueError, match="n_max"):
        pw.sample_size_per_group(0.1, n_max=20, n_sim=100)
    with pytest.raises(ValueError, match="margin"):
        pw.tost(CASES, CONTROLS, 0)
    with pytest.raises(ValueError, match="controls"):
        pw.tost(CASES, CONTROLS[:5], 1.0, paired=True)
    with pytest.raises(ValueError, match="cases"):
        pw.tost([1.0, np.nan, 2.0], CONTROLS, 1.0)


@pytest.mark.parametrize(("n1", "n2", "ties"), [(14, 14, False), (9, 30, False),
                                                 (86, 86, False), (5, 7, False),
                                                 (49, 49, False), (49, 50, False),
                                                 (14, 14, True)])
def test_fast_mann_whitney_equals_the_analysis_test(n1, n2, ties):
    # esi.stats.mann_whitney (two-sided, default options), row by row: exact below 50 per
    # group without ties, else the normal approximation with tie and continuity corrections.
    from esi.stats import mann_whitney
    from esi.stats.nonparametric import mann_whitney_p_rows

    rng = np.random.default_rng(n1 + n2)
    x, y = rng.normal(size=(300, n1)), rng.normal(0.4, 1.3, size=(300, n2))
    if ties:
        x, y = np.round(x * 2) / 2, np.round(y * 2) / 2
    expected = [mann_whitney(a, b).p_value for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose(pw._mann_whitney_p(x, y), expected, rtol=1e-12, atol=1e-15)
    # the untied shortcut gives the very values of the general function with the same rule
    np.testing.assert_array_equal(pw._mann_whitney_p(x, y),
                                  mann_whitney_p_rows(x, y, exact=None))
    if max(n1, n2) >= 50 or ties:  # the approximation, as before
        np.testing.assert_array_equal(pw._mann_whitney_p(x, y), mann_whitney_p_rows(x, y))


# --- the binary positive outcome -------------------------------------------------------------
BINARY_REF = pd.read_csv(REF_DIR / "binary_power_reference.csv")
BINARY_ROWS = list(BINARY_REF.itertuples())


def _binary_ref_id(r):
    return f"{r.design}-{r.test}-{r.quantity}-{'' if pd.isna(r.n) else int(r.n)}"


@pytest.mark.parametrize("r", BINARY_ROWS, ids=[_binary_ref_id(r) for r in BINARY_ROWS])
def test_binary_power_matches_r(r):
    # R: tests/reference/sensitivity/binary_power_reference.R. power_exact: enumeration of
    # every outcome with fisher.test / chisq.test; power_simulation: 20000 rbinom studies with
    # set.seed(2025); power_normal / n_normal: power.prop.test; n_exact: the smallest n with
    # exact power >= 0.8 (every n tried).
    kw = {"test": r.test}
    if r.quantity == "power_exact":
        got = pw.binary_power(r.p_cases, r.p_controls, n_per_group=int(r.n), **kw)
        assert_allclose(got["power"].item(), r.value, rtol=1e-9, atol=1e-12)
        assert got["mc_se"].item() == 0
    elif r.quantity == "power_simulation":
        got = pw.binary_power(r.p_cases, r.p_controls, n_per_group=int(r.n), n_sim=20000,
                              method="simulation", **kw)
        se = np.hypot(got["mc_se"].item(), r.mc_se)  # two independent simulations
        assert abs(got["power"].item() - r.value) < 4 * se
        exact = BINARY_REF.query("design == @r.design and test == @r.test and "
                                 "quantity == 'power_exact' and n == @r.n")["value"].item()
        assert abs(got["power"].item() - exact) < 4 * got["mc_se"].item()
    elif r.quantity == "power_normal":
        got = pw.binary_power(r.p_cases, r.p_controls, n_per_group=int(r.n), method="normal",
                              **kw)
        assert_allclose(got["power"].item(), r.value, rtol=1e-10)
    elif r.quantity == "n_normal":  # R gives the real root; esi the whole n above it
        assert pw.binary_sample_size(r.p_cases, r.p_controls, method="normal",
                                     **kw) == int(np.ceil(r.value))
    else:
        assert r.quantity == "n_exact"
        n = pw.binary_sample_size(r.p_cases, r.p_controls, **kw)
        assert n == r.value
        # the smallest: every smaller n falls short (the exact power saw-tooths)
        lower = pw.binary_power(r.p_cases, r.p_controls, n_per_group=n, **kw)["power"].item()
        assert lower >= 0.8
        for m in range(3, n):
            assert pw._exact_binary_power(r.p_cases, r.p_controls, m, r.test, 0.05) < 0.8


def test_binary_power_runs_the_analysis_test():
    # The exact power is the probability of the outcomes for which esi.stats.fisher_exact
    # (the default binary_test, fisher_less) or chi2_test gives P < 0.05, table by table.
    from esi.stats import chi2_test, fisher_exact

    n, p1, p2 = 9, 0.2, 0.7
    w = np.outer(stats.binom.pmf(np.arange(n + 1), n, p1),
                 stats.binom.pmf(np.arange(n + 1), n, p2))
    for test, p_of in (
        ("fisher_less", lambda a, c: fisher_exact([[a, n - a], [c, n - c]], alternative="less")),
        ("fisher", lambda a, c: fisher_exact([[a, n - a], [c, n - c]])),
        ("chi2_yates", lambda a, c: chi2_test([[a, n - a], [c, n - c]], correct=True)),
    ):
        reject = np.array([[p_of(a, c).p_value < 0.05 for c in range(n + 1)]
                           for a in range(n + 1)])
        got = pw.binary_power(p1, p2, n_per_group=n, test=test)["power"].item()
        assert_allclose(got, w[reject].sum(), rtol=1e-12)
    # the default (one-sided Fisher) at the study's design: 0.17 (R: see the reference)
    design = pw.published_binary_design()
    assert design == {"n_per_group": 14, "p_cases": 4 / 14, "p_controls": 0.5}
    assert round(pw.binary_power(design["p_cases"], 0.5)["power"].item(), 2) == 0.17
    assert pw.published_binary_design(12)["p_cases"] == 4 / 14
    with pytest.raises(ValueError, match="timepoint"):
        pw.published_binary_design(8)


def test_binary_power_simulation_is_seeded_and_vectorised():
    a = pw.binary_power([0.2, 0.3], 0.5, method="simulation", n_sim=500, seed=3)
    b = pw.binary_power([0.2, 0.3], 0.5, method="simulation", n_sim=500, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["p_cases", "p_controls", "n_per_group", "test", "method",
                               "power", "mc_se", "n_sim", "seed"]
    assert a["power"].iloc[0] > a["power"].iloc[1]  # common random numbers: monotone
    c = pw.binary_power([0.2, 0.3], 0.5, method="simulation", n_sim=500, seed=4)
    assert not a["power"].equals(c["power"])
    # simulated sample size: nested draws, the same answer for the same seed
    n1 = pw.binary_sample_size(0.2, 0.5, method="simulation", n_sim=400, seed=5)
    assert n1 == pw.binary_sample_size(0.2, 0.5, method="simulation", n_sim=400, seed=5)
    assert abs(n1 - pw.binary_sample_size(0.2, 0.5)) <= 6


def test_binary_power_argument_errors():
    with pytest.raises(ValueError, match="test"):
        pw.binary_power(0.2, 0.5, test="mcnemar")
    with pytest.raises(ValueError, match="method"):
        pw.binary_power(0.2, 0.5, method="bootstrap")
    with pytest.raises(ValueError, match="p_cases"):
        pw.binary_power(1.2, 0.5)
    with pytest.raises(ValueError, match="p_controls"):
        pw.binary_power(0.2, [0.5, 0.6])
    with pytest.raises(ValueError, match="n_per_group"):
        pw.binary_power(0.2, 0.5, n_per_group=2)
    with pytest.raises(ValueError, match="p_cases"):
        pw.binary_sample_size(0.6, 0.5)  # fisher_less looks for fewer events among cases
    with pytest.raises(ValueError, match="n_max"):
        pw.binary_sample_size(0.45, 0.5, n_max=40)
    with pytest.raises(ValueError, match="n_max"):
        pw.binary_sample_size(0.45, 0.5, n_max=40, method="normal")
    assert pw.binary_sample_size(0.0, 1.0, test="chi2") == 3


def test_power_summary_adds_the_positive_outcome():
    out = pw.power_summary(n_sim=200, seed=7, test="mann_whitney", binary_test="fisher_less")
    base = pw.power_summary(n_sim=200, seed=7, test="mann_whitney")
    pd.testing.assert_frame_equal(out.iloc[:len(base)], base)  # the primary rows unchanged
    extra = out.iloc[len(base):].set_index("quantity")
    assert list(extra.index) == ["power_positive_outcome", "n_per_group_needed_positive_outcome"]
    assert (extra["test"] == "fisher_less").all()
    assert_allclose(extra["difference"], 4 / 14 - 0.5)
    ref = BINARY_REF.query("design == 'published_4w' and test == 'fisher_less'")
    assert_allclose(extra.loc["power_positive_outcome", "value"],
                    ref.query("quantity == 'power_exact' and n == 14")["value"].item(),
                    rtol=1e-9)
    assert extra.loc["n_per_group_needed_positive_outcome", "value"] == ref.query(
        "quantity == 'n_exact'")["value"].item()
    two = pw.power_summary(n_sim=200, seed=7, binary_test="chi2", proportions=(0.2, 0.45))
    assert two["quantity"].iloc[-1] == "n_per_group_needed_positive_outcome"
    assert two["value"].iloc[-1] == BINARY_REF.query(
        "design == 'larger' and test == 'chi2' and quantity == 'n_exact'")["value"].item()
    with pytest.raises(ValueError, match="proportions"):
        pw.power_summary(n_sim=200, binary_test="fisher", proportions=(0.2,))
    with pytest.raises(ValueError, match="test"):
        pw.power_summary(n_sim=200, binary_test="mcnemar")
