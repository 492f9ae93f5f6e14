"""esi.match: argument errors, optimal matching, missing values, figures, and properties."""

from __future__ import annotations

import itertools

import matplotlib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import esi

matplotlib.use("Agg")
COVS = ["x1", "x2", "grp"]


def registry(n=200, seed=1, p_treat=0.2):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=(2, n))
    grp = rng.choice(["a", "b", "c"], size=n)
    eta = -1.5 + 0.8 * x1 - 0.5 * x2 + 0.3 * (grp == "b") + np.log(p_treat / 0.2)
    treat = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    ids = [f"P{i:04d}" for i in range(n)]
    return pd.DataFrame({"near_normal": treat, "x1": x1, "x2": x2, "grp": grp},
                        index=pd.Index(ids, name="patient_id"))


def test_defaults_and_result_shape():
    res = esi.match(registry(), "near_normal", COVS)
    assert list(res.pairs.columns) == ["treated", "control", "subclass", "distance_gap"]
    assert res.pairs["distance_gap"].le(res.params["caliper_width"]).all()
    assert res.pairs["control"].is_unique
    ss = res.sample_sizes()
    assert ss.loc["Matched", "treated"] == res.pairs["treated"].nunique()
    assert ss.loc["All"].sum() == 200
    bal = res.balance()
    assert {"smd_before", "smd_after", "ks_after", "variance_ratio_before"} <= set(bal.columns)
    assert list(bal.index[:2]) == ["distance", "x1"]
    assert "grp_a" in bal.index  # every level, the reference included


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "full"}, "method"),
        ({"distance": "mahalanobis"}, "distance"),
        ({"ratio": 0}, "ratio"),
        ({"caliper": -1}, "caliper"),
        ({"order": "closest"}, "order"),
        ({"order": "random"}, "random_state"),
        ({"discard": "hull"}, "discard"),
        ({"estimand": "ATE"}, "estimand"),
        ({"missing": "impute"}, "missing"),
        ({"method": "optimal", "replace": True}, "optimal"),
        ({"exact": ["nope"]}, "nope"),
    ],
)
def test_argument_errors_name_the_culprit(kwargs, message):
    with pytest.raises(ValueError, match=message):
        esi.match(registry(), "near_normal", COVS, **kwargs)


def test_missing_values_named_or_dropped():
    data = registry()
    data.loc[["P0003", "P0010"], "x2"] = np.nan
    with pytest.raises(ValueError, match=r"P0003.*P0010|x2"):
        esi.match(data, "near_normal", COVS)
    res = esi.match(data, "near_normal", COVS, missing="drop")
    assert list(res.dropped) == ["P0003", "P0010"]
    assert res.params["n_dropped"] == 2 and "P0003" not in res.distance.index


def test_constant_and_separating_covariates():
    data = registry()
    data["const"] = 3.0
    with pytest.raises(ValueError, match="'const' is constant"):
        esi.match(data, "near_normal", [*COVS, "const"])
    data["sep"] = data["near_normal"] * 2.0 + np.linspace(0, 0.1, len(data))
    with pytest.raises(ValueError, match="'sep' perfectly separates"):
        esi.match(data, "near_normal", [*COVS, "sep"])


def test_treatment_errors():
    data = registry()
    with pytest.raises(ValueError, match="no treated"):
        esi.match(data.assign(near_normal=0), "near_normal", COVS)
    bad = data.copy()
    bad.iloc[0, 0] = 2
    with pytest.raises(ValueError, match="binary"):
        esi.match(bad, "near_normal", COVS)
    with pytest.raises(ValueError, match="fewer control units"):
        esi.match(registry(p_treat=0.6), "near_normal", COVS, ratio=3)
    res = esi.match(data.assign(near_normal=data["near_normal"].astype(bool)), "near_normal", COVS)
    assert len(res.pairs) > 0


def test_random_order_is_seeded():
    a = esi.match(registry(), "near_normal", COVS, order="random", random_state=7)
    b = esi.match(registry(), "near_normal", COVS, order="random", random_state=7)
    pd.testing.assert_frame_equal(a.pairs, b.pairs)


def brute_force_optimal(d, t, ratio):
    treated = np.flatnonzero(t)
    controls = np.flatnonzero(~t)
    best = np.inf
    for perm in itertools.permutations(controls, len(treated) * ratio):
        cost = sum(abs(d[treated[i // ratio]] - d[c]) for i, c in enumerate(perm))
        best = min(best, cost)
    return best


@pytest.mark.parametrize("ratio", [1, 2])
def test_optimal_matches_brute_force_and_beats_greedy(ratio):
    data = registry(n=9 if ratio == 1 else 8, seed=3)
    data["near_normal"] = [1, 1, 0, 0, 0, 0, 1, 0, 0][: len(data)] if ratio == 1 else [1, 0, 0, 1, 0, 0, 0, 0]
    kwargs = {"covariates": ["x1"], "caliper": None, "ratio": ratio}
    opt = esi.match(data, "near_normal", method="optimal", **kwargs)
    greedy = esi.match(data, "near_normal", **kwargs)
    d = opt.distance.to_numpy()
    t = data["near_normal"].to_numpy() == 1
    assert opt.pairs["distance_gap"].sum() == pytest.approx(brute_force_optimal(d, t, ratio))
    assert opt.pairs["distance_gap"].sum() <= greedy.pairs["distance_gap"].sum() + 1e-12
    assert opt.pairs.groupby("treated").size().eq(ratio).all()


def test_optimal_respects_caliper_and_exact():
    res = esi.match(registry(), "near_normal", COVS, method="optimal", caliper=0.1, exact="grp")
    data = registry()
    assert res.pairs["distance_gap"].le(res.params["caliper_width"]).all()
    g = data["grp"]
    assert (g[res.pairs["treated"]].to_numpy() == g[res.pairs["control"]].to_numpy()).all()


def test_atc_swaps_roles():
    data = registry(p_treat=0.9)
    res = esi.match(data, "near_normal", COVS, estimand="ATC", caliper=None)
    assert res.pairs["treated"].is_unique  # one row per matched treated unit
    assert (res.weights[data["near_normal"] == 0] == 1).all()


def test_figures():
    from esi.plots.matching import love_plot, overlap_plot

    res = esi.match(registry(), "near_normal", COVS)
    fig = love_plot(res)
    assert len(fig.axes[0].collections) == 2
    fig2 = overlap_plot(res)
    assert len(fig2.axes) == 2
    matplotlib.pyplot.close("all")


# ---------------------------------------------------------------- properties (hypothesis)


@st.composite
def specs(draw):
    n = draw(st.integers(40, 160))
    seed = draw(st.integers(0, 10_000))
    ratio = draw(st.integers(1, 3))
    caliper = draw(st.sampled_from([None, 0.05, 0.2, 0.5]))
    replace = draw(st.booleans())
    order = draw(st.sampled_from(["largest", "smallest", "random"]))
    exact = draw(st.sampled_from([None, "grp"]))
    method = draw(st.sampled_from(["nearest", "nearest", "optimal"])) if not replace else "nearest"
    return n, seed, dict(ratio=ratio, caliper=caliper, replace=replace, order=order,
                         exact=exact, method=method, random_state=seed)


def _fit_or_skip(data, kwargs):
    try:
        return esi.match(data, "near_normal", COVS, **kwargs)
    except ValueError as err:  # too few controls for the ratio, or separation in tiny samples
        msg = str(err)
        assert any(s in msg for s in ("fewer control", "separates", "no treated", "constant"))
        return None


@settings(max_examples=60, deadline=None)
@given(specs())
def test_matching_properties(spec):
    n, seed, kwargs = spec
    data = registry(n=n, seed=seed, p_treat=0.25)
    # integer-valued covariates make ties in the distance common
    data["x2"] = np.round(data["x2"])
    res = _fit_or_skip(data, kwargs)
    if res is None:
        return
    pairs = res.pairs
    if not kwargs["replace"]:
        assert pairs["control"].is_unique  # no control used twice
    if kwargs["caliper"] is not None:
        assert (pairs["distance_gap"] <= res.params["caliper_width"]).all()
    assert pairs.groupby("treated").size().le(kwargs["ratio"]).all()
    if kwargs["exact"]:
        g = data["grp"]
        assert (g[pairs["treated"]].to_numpy() == g[pairs["control"]].to_numpy()).all()
    t = data["near_normal"]
    assert set(pairs["treated"]) <= set(t.index[t == 1])
    # row order does not matter (ties broken by patient id)
    shuffled = data.sample(frac=1.0, random_state=seed)
    res2 = esi.match(shuffled, "near_normal", COVS, **kwargs)
    cols = ["treated", "control", "subclass"]
    pd.testing.assert_frame_equal(res.pairs[cols], res2.pairs[cols])
    # the fit itself may differ in the last digits (tiny, nearly separated samples)
    np.testing.assert_allclose(res.pairs["distance_gap"], res2.pairs["distance_gap"], rtol=1e-4)
    pd.testing.assert_series_equal(res.weights, res2.weights.reindex(res.weights.index))
