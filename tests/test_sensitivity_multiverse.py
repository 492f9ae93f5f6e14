"""Multiverse (esi.sensitivity.multiverse): the grid, agreement with esi.compare, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from esi.balance import smd
from esi.compare import compare_matched
from esi.matching import match
from esi.propensity import design_matrix
from esi.sensitivity._example import example_registry
from esi.sensitivity.multiverse import (
    DEFAULT_COVARIATE_SETS,
    MULTIVERSE_COLUMNS,
    _t_ppf,
    _t_sf,
    multiverse,
    specification_grid,
)


@pytest.fixture(scope="module")
def registry():
    return example_registry(n_controls=200, n_cases=14, seed=7)


def test_default_grid_has_every_valid_combination():
    grid = specification_grid()
    # 4 covariate sets x 2 distances x (nearest 3x4x2 + optimal 3x4) x 3 rules x 5 tests
    assert len(grid) == 4 * 2 * (24 + 12) * 3 * 5 == 4320
    assert not ((grid["method"] == "optimal") & grid["replace"]).any()
    assert grid["spec_id"].tolist() == list(range(len(grid)))
    paired_1to1 = grid["test"].isin(["paired_t", "wilcoxon"]) & (grid["ratio"] == 1)
    assert (grid.loc[paired_1to1, "binary_test"] == "mcnemar").all()
    assert (grid.loc[~paired_1to1, "binary_test"] == "fisher").all()
    assert set(grid["covariate_set"]) == set(DEFAULT_COVARIATE_SETS)
    assert grid["caliper"].isna().sum() == len(grid) // 4


def test_grid_errors():
    with pytest.raises(ValueError, match="missing"):
        specification_grid(missing=["mice"])
    with pytest.raises(ValueError, match="dimensions"):
        specification_grid(kernel=["x"])
    with pytest.raises(ValueError, match="covariate_sets"):
        specification_grid({"empty": []})


SPECS = [
    # (distance, method, ratio, caliper, replace, missing, test)
    ("logit", "nearest", 1, 0.2, False, "complete_case", "welch"),
    ("propensity", "optimal", 2, None, False, "locf", "student"),
    ("logit", "nearest", 3, 0.5, True, "bocf", "mann_whitney"),
    ("logit", "nearest", 1, None, False, "complete_case", "paired_t"),
    ("propensity", "nearest", 2, 0.1, True, "locf", "wilcoxon"),
    ("logit", "optimal", 1, 0.2, False, "bocf", "wilcoxon"),
]


@pytest.mark.parametrize("choice", SPECS)
def test_rows_equal_compare_matched(registry, choice):
    distance, method, ratio, caliper, replace, missing, test = choice
    grid = specification_grid({"default": DEFAULT_COVARIATE_SETS["default"]},
                              distance=[distance], method=[method], ratio=[ratio],
                              caliper=[caliper], replace=[replace], missing=[missing],
                              test=[test])
    row = multiverse(registry, grid, covariate_sets=DEFAULT_COVARIATE_SETS).iloc[0]
    assert row["status"] == "ok"
    m = match(registry, "near_normal", DEFAULT_COVARIATE_SETS["default"], method=method,
              distance=distance, ratio=ratio, caliper=caliper, replace=replace,
              missing="drop")
    table = compare_matched(registry, m, test=test, binary_test=row["binary_test"],
                            missing=missing)
    for prefix, name in (("primary", "leg_pain_reduction"), ("positive", "positive_outcome")):
        ref = table[(table["outcome"] == name) & (table["timepoint_weeks"] == 4)].iloc[0]
        for column in ("estimate", "ci_low", "ci_high", "p_value", "n_cases", "n_controls"):
            assert_allclose(row[f"{prefix}_{column}"], ref[column], rtol=1e-9,
                            err_msg=f"{prefix}_{column}")
    assert row["n_cases_matched"] == m.pairs["treated"].nunique()
    assert row["n_controls_matched"] == m.pairs["control"].nunique()
    # max |SMD| over every covariate term, as the balance table reports it
    balance = m.balance(include_distance=False)
    assert_allclose(row["max_abs_smd"], balance["smd_after"].abs().max(), rtol=1e-9)


def test_mahalanobis_distances_are_available_choices():
    grid = specification_grid({"default": DEFAULT_COVARIATE_SETS["default"]},
                              distance=["logit", "mahalanobis", "ps_caliper_mahalanobis"],
                              missing=["complete_case"], test=["welch"])
    full = grid[grid["distance"] == "mahalanobis"]
    within = grid[grid["distance"] == "ps_caliper_mahalanobis"]
    # nearest only; "mahalanobis" without a caliper, "ps_caliper_mahalanobis" with one
    assert (full["method"] == "nearest").all() and full["caliper"].isna().all()
    assert len(full) == 3 * 2
    assert (within["method"] == "nearest").all() and within["caliper"].notna().all()
    assert len(within) == 3 * 3 * 2
    assert len(grid[grid["distance"] == "logit"]) == 3 * 4 * 2 + 3 * 4
    with pytest.raises(ValueError, match="distance"):
        specification_grid(distance=["euclidean"])


@pytest.mark.parametrize(("distance", "ratio", "caliper", "replace", "test"), [
    ("mahalanobis", 1, None, False, "welch"),
    ("mahalanobis", 2, None, True, "mann_whitney"),
    ("ps_caliper_mahalanobis", 1, 0.2, False, "paired_t"),
    ("ps_caliper_mahalanobis", 2, 0.5, False, "student"),
])
def test_mahalanobis_rows_equal_compare_matched(registry, distance, ratio, caliper, replace,
                                                test):
    covariates = DEFAULT_COVARIATE_SETS["default"]
    grid = specification_grid({"default": covariates}, distance=[distance], method=["nearest"],
                              ratio=[ratio], caliper=[caliper], replace=[replace],
                              missing=["complete_case"], test=[test])
    row = multiverse(registry, grid, covariate_sets=DEFAULT_COVARIATE_SETS).iloc[0]
    assert row["status"] == "ok"
    if distance == "mahalanobis":
        m = match(registry, "near_normal", covariates, distance="mahalanobis", ratio=ratio,
                  caliper=None, replace=replace, missing="drop")
    else:  # Mahalanobis on the covariates within the caliper on the logit
        m = match(registry, "near_normal", covariates, distance="logit", mahvars=covariates,
                  ratio=ratio, caliper=caliper, replace=replace, missing="drop")
    table = compare_matched(registry, m, test=test, binary_test=row["binary_test"],
                            missing="complete_case")
    for prefix, name in (("primary", "leg_pain_reduction"), ("positive", "positive_outcome")):
        ref = table[(table["outcome"] == name) & (table["timepoint_weeks"] == 4)].iloc[0]
        for column in ("estimate", "ci_low", "ci_high", "p_value", "n_cases", "n_controls"):
            assert_allclose(row[f"{prefix}_{column}"], ref[column], rtol=1e-9,
                            err_msg=f"{prefix}_{column}")
    assert row["n_controls_matched"] == m.pairs["control"].nunique()
    balance = m.balance(include_distance=False)
    assert_allclose(row["max_abs_smd"], balance["smd_after"].abs().max(), rtol=1e-9)


def test_max_abs_smd_uses_every_level(registry):
    covariates = ["age", "smoking"]
    grid = specification_grid({"two": covariates}, distance=["logit"], method=["nearest"],
                              ratio=[1], caliper=[None], replace=[False],
                              missing=["complete_case"], test=["welch"])
    row = multiverse(registry, grid, covariate_sets={"two": covariates}).iloc[0]
    m = match(registry, "near_normal", covariates, caliper=None)
    x = design_matrix(registry, covariates, all_levels=True)
    t = registry["near_normal"].to_numpy()
    w = m.weights.reindex(registry.index).to_numpy()
    expected = max(abs(smd(x[c].to_numpy(float), t, w)) for c in x.columns)
    assert x.shape[1] == 4  # age and the three smoking levels
    assert_allclose(row["max_abs_smd"], expected)


def test_results_do_not_depend_on_workers(registry, monkeypatch):
    import sys

    grid = specification_grid({"demographic": DEFAULT_COVARIATE_SETS["demographic"]},
                              ratio=[1, 2], caliper=[None, 0.2], missing=["complete_case"],
                              test=["welch", "paired_t"])
    one = multiverse(registry, grid, covariate_sets=DEFAULT_COVARIATE_SETS)
    # a worker is started however little work is left
    monkeypatch.setattr(sys.modules["esi.sensitivity.multiverse"], "WORKER_START_SECONDS", 0)
    two = multiverse(registry, grid, covariate_sets=DEFAULT_COVARIATE_SETS, workers=2)
    assert list(one.columns) == MULTIVERSE_COLUMNS
    assert len(one) == len(grid)
    pd.testing.assert_frame_equal(one, two)
    again = multiverse(registry, grid, covariate_sets=DEFAULT_COVARIATE_SETS)
    pd.testing.assert_frame_equal(one, again)


def test_failed_matching_is_reported_not_dropped(registry):
    small = registry.loc[(registry["near_normal"] == 1) | (np.arange(len(registry)) < 20)]
    grid = specification_grid({"default": DEFAULT_COVARIATE_SETS["default"]},
                              distance=["logit"], method=["nearest"], ratio=[3],
                              caliper=[None], replace=[False], missing=["complete_case"],
                              test=["welch"])
    row = multiverse(small, grid, covariate_sets=DEFAULT_COVARIATE_SETS).iloc[0]
    assert row["status"].startswith("matching failed")
    assert np.isnan(row["primary_estimate"])


def test_multiverse_errors(registry):
    grid = specification_grid({"default": DEFAULT_COVARIATE_SETS["default"]}, ratio=[1],
                              caliper=[0.2], missing=["complete_case"], test=["welch"])
    with pytest.raises(ValueError, match="covariate_sets"):
        multiverse(registry, grid, covariate_sets={"other": ["age"]})
    with pytest.raises(ValueError, match="timepoint"):
        multiverse(registry, grid, timepoint=8)
    with pytest.raises(ValueError, match="workers"):
        multiverse(registry, grid, workers=0)
    with pytest.raises(ValueError, match="covariate_sets"):
        multiverse(registry, grid, covariate_sets={"default": ["not_a_column"]})


def test_row_does_not_depend_on_the_other_specifications(registry):
    # Results are memoised on their inputs and the propensity model is fitted once per
    # covariate set and scale: a specification run alone, or after others in another
    # order, gives the very same row.
    grid = specification_grid({"default": DEFAULT_COVARIATE_SETS["default"],
                               "demographic": DEFAULT_COVARIATE_SETS["demographic"]},
                              ratio=[1, 2], caliper=[None, 0.1], missing=["complete_case", "bocf"],
                              test=["welch", "wilcoxon", "mann_whitney"])
    full = multiverse(registry, grid, covariate_sets=DEFAULT_COVARIATE_SETS)
    backwards = multiverse(registry, grid.iloc[::-1], covariate_sets=DEFAULT_COVARIATE_SETS)
    pd.testing.assert_frame_equal(full, backwards)
    for i in (0, len(grid) // 2, len(grid) - 1):
        alone = multiverse(registry, grid.iloc[[i]], covariate_sets=DEFAULT_COVARIATE_SETS)
        pd.testing.assert_frame_equal(alone, full.iloc[[i]].reset_index(drop=True))


def test_failed_propensity_fit_reports_match_error(registry):
    # collinear covariates: match() refuses to fit, and every row says why, in its words
    data = registry.assign(twice_age=2 * registry["age"])
    covariates = ["age", "twice_age"]
    grid = specification_grid({"bad": covariates}, distance=["logit"], method=["nearest"],
                              ratio=[1], caliper=[0.2], replace=[False],
                              missing=["complete_case"], test=["welch"])
    row = multiverse(data, grid, covariate_sets={"bad": covariates}).iloc[0]
    with pytest.raises(ValueError) as err:
        match(data, "near_normal", covariates, caliper=0.2, missing="drop")
    assert row["status"] == f"matching failed: {err.value}"


def test_prepared_matching_equals_match(registry, monkeypatch):
    # every matching of the grid from the prepared arrays, and through match() itself: the
    # same rows (pairs, weights, balance, outcomes); covariates with missing values (rows
    # dropped) and a set too small for 1:3 without replacement (match()'s own error)
    import sys

    mv = sys.modules["esi.sensitivity.multiverse"]
    rng = np.random.default_rng(5)
    data = registry.assign(bmi=registry["bmi"].mask(rng.random(len(registry)) < 0.1))
    data = data.loc[(data["near_normal"] == 1) | (np.arange(len(data)) < 35)]
    sets = {"demographic": DEFAULT_COVARIATE_SETS["demographic"],
            "default": DEFAULT_COVARIATE_SETS["default"]}
    grid = specification_grid(sets, missing=["complete_case", "locf"],
                              test=["welch", "paired_t"])
    fast_match, used = mv._fast_match, []

    def counted(key):
        found = fast_match(key)
        used.append(found is not None)
        return found

    monkeypatch.setattr(mv, "_fast_match", counted)
    fast = multiverse(data, grid, covariate_sets=sets)
    assert 0 < sum(used) < len(used)  # the prepared arrays, and match() for its errors
    assert fast["status"].str.startswith("matching failed: fewer control units").any()
    monkeypatch.setattr(mv, "_fast_match", lambda key: None)
    pd.testing.assert_frame_equal(fast, multiverse(data, grid, covariate_sets=sets))


def test_t_distribution_shortcuts_equal_scipy():
    # the multiverse calls scipy.special directly; the values must be scipy.stats.t's exactly
    rng = np.random.default_rng(3)
    for df in [1, 2, 5, 13, 26, 40, *rng.uniform(1.5, 80, 40)]:
        for q in (0.95, 0.975, 0.995, 0.9):
            assert _t_ppf(q, df) == float(stats.t.ppf(q, df))
        for x in [0.0, 0.3, 1.96, 4.5, *rng.uniform(0, 6, 5)]:
            assert _t_sf(x, df) == float(stats.t.sf(x, df))


def test_table_does_not_depend_on_the_registry_row_order(registry):
    # matching breaks ties by row (as MatchIt); multiverse() puts the registry in id order
    grid = specification_grid({"default": DEFAULT_COVARIATE_SETS["default"]},
                              distance=["logit", "mahalanobis"], method=["nearest"],
                              ratio=[1, 2], caliper=[None], replace=[False],
                              missing=["complete_case"], test=["welch", "wilcoxon"])
    a = multiverse(registry, grid)
    b = multiverse(registry.sample(frac=1.0, random_state=4), grid)
    pd.testing.assert_frame_equal(a, b)
