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
from esi import matching as M

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
        ({"distance": "euclidean"}, "distance"),
        ({"distance": "mahalanobis"}, "caliper=None"),
        ({"distance": "mahalanobis", "caliper": None, "discard": "both"}, "discard"),
        ({"distance": "mahalanobis", "caliper": None, "order": "largest"}, "order"),
        ({"distance": "mahalanobis", "caliper": None, "method": "optimal"}, "method='nearest'"),
        ({"distance": "mahalanobis", "caliper": None, "mahvars": ["x1"]}, "mahvars"),
        ({"mahvars": ["x1"], "method": "optimal"}, "method='nearest'"),
        ({"mahvars": "nope"}, "nope"),
        ({"mahvars": [1]}, "mahvars"),
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
    # Ties are broken by row position (as MatchIt); the export's row order does not matter
    # once the rows are put in the canonical order (by patient id), as the pipeline does.
    shuffled = data.sample(frac=1.0, random_state=seed)
    res2 = esi.match(shuffled.sort_index(), "near_normal", COVS, **kwargs)
    pd.testing.assert_frame_equal(res.pairs, res2.pairs)
    pd.testing.assert_series_equal(res.weights, res2.weights)
    # the distances do not depend on the row order at all (the model is fitted in id order)
    res3 = esi.match(shuffled, "near_normal", COVS, **kwargs)
    pd.testing.assert_series_equal(res.distance, res3.distance.reindex(res.distance.index))


def test_pipeline_matches_in_canonical_order(tmp_path):
    # match() breaks ties by row (as MatchIt); the pipeline sorts the eligible patients by
    # (pseudonymous) patient id first, so a registry exported in another row order gives the
    # same matched pairs
    from esi.params import DEFAULTS
    from esi.paths import SYNTHETIC_REGISTRY
    from esi.pipeline import Analysis

    lines = SYNTHETIC_REGISTRY.read_text(encoding="utf-8").splitlines(keepends=True)
    head = next(i for i, line in enumerate(lines) if not line.startswith("#")) + 1
    body = lines[head:]
    shuffled = tmp_path / "shuffled.csv"
    order = np.random.default_rng(3).permutation(len(body))
    shuffled.write_text("".join(lines[:head] + [body[i] for i in order]), encoding="utf-8")
    # the shuffled copy is not a file esi generated, so both are analysed as real data
    # (pseudonymised ids, the same key): only the row order differs between the two
    results, eligible = [], []
    for path in (SYNTHETIC_REGISTRY, shuffled):
        analysis = Analysis({**DEFAULTS, "data_path": str(path), "synthetic": False},
                            persist=False)
        eligible.append(analysis.cohort().eligible)
        results.append(analysis.match())
    assert not eligible[0].index.equals(eligible[1].index)
    assert eligible[0].index.sort_values().equals(eligible[1].index.sort_values())
    pd.testing.assert_frame_equal(results[0].pairs, results[1].pairs)
    pd.testing.assert_series_equal(results[0].weights, results[1].weights)


# ---------------------------------------------------------------- Mahalanobis matching


def test_jacobi_eigen_equals_numpy():
    rng = np.random.default_rng(21)
    for p in (1, 2, 5, 9):
        a = rng.normal(size=(p, p))
        a = a @ a.T
        if p > 2:
            a[:, -1] = a[-1, :] = a[:, 0] + a[:, 1]  # singular
            a[-1, -1] = a[0, 0] + a[1, 1] + 2 * a[0, 1]
        values, vectors = M._jacobi_eigen(a.tolist())
        v = np.array(vectors)
        np.testing.assert_allclose(np.sort(values), np.linalg.eigvalsh(a), atol=1e-10)
        np.testing.assert_allclose(v @ np.diag(values) @ v.T, a, atol=1e-10)
        np.testing.assert_allclose(v.T @ v, np.eye(p), atol=1e-12)


def mahalanobis_by_formula(x, treated, use, singular):
    """sqrt(d' S^-1 d) (S^+ when singular) of every pair, on standardised columns, S the pooled
    within-group covariance of the used units: MatchIt's definition written out with numpy."""
    xs = (x - x.mean(axis=0)) / x.std(axis=0, ddof=1)
    dev = np.concatenate([xs[g & use] - xs[g & use].mean(axis=0) for g in (treated, ~treated)])
    s = dev.T @ dev / (dev.shape[0] - 2)
    inv = np.linalg.pinv(s, rtol=1e-8) if singular else np.linalg.inv(s)
    diff = xs[:, None, :] - xs[None, :, :]
    return np.sqrt(np.einsum("ijk,kl,ijl->ij", diff, inv, diff))


@pytest.mark.parametrize("singular", [False, True])
def test_mahalanobis_space_gives_the_mahalanobis_distance(singular):
    rng = np.random.default_rng(4)
    n = 120
    x = np.column_stack([rng.normal(size=n), rng.integers(0, 4, n) * 3.0,
                         rng.gamma(2, size=n) * 1000])
    if singular:  # every level of a three-level factor: the dummies sum to one
        x = np.column_stack([x, np.eye(3)[rng.integers(0, 3, n)]])
    treated = rng.random(n) < 0.3
    use = rng.random(n) < 0.9
    z, key = M._mahalanobis_space(x, treated, use)
    assert z.shape[1] == x.shape[1] - singular
    mine = np.sqrt(M._squared_distances(z, z))
    np.testing.assert_allclose(mine, mahalanobis_by_formula(x, treated, use, singular),
                               atol=1e-9)
    # without a singular covariance the distance does not depend on the scale of a column
    if not singular:
        z2, _ = M._mahalanobis_space(x * [1.0, 1e-3, 50.0], treated, use)
        np.testing.assert_allclose(np.sqrt(M._squared_distances(z2, z2)), mine, atol=1e-9)


def test_mahalanobis_space_same_bits_on_every_cpu_kernel(tmp_path):
    # no BLAS or LAPACK kernel decides the coordinates (they feed tie-breaking comparisons)
    import os
    import subprocess
    import sys

    script = tmp_path / "z.py"
    script.write_text(
        "import hashlib, numpy as np\n"
        "from esi import matching as M\n"
        "rng = np.random.default_rng(5)\n"
        "n = 2000\n"
        "x = np.column_stack([rng.normal(size=n), rng.integers(0, 5, n),\n"
        "                     rng.gamma(2, size=n) * 1000, *np.eye(3)[rng.integers(0, 3, n)].T])\n"
        "z, key = M._mahalanobis_space(x, rng.random(n) < 0.3, np.ones(n, bool))\n"
        "print(hashlib.sha256(z.tobytes() + key.tobytes()).hexdigest())\n")
    digests = set()
    for env in ({}, {"OPENBLAS_CORETYPE": "Nehalem"}, {"OPENBLAS_CORETYPE": "Sandybridge"},
                {"NPY_DISABLE_CPU_FEATURES": "AVX2,FMA3"}):
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                             env={**os.environ, **env}, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def mahalanobis_reference(z, key, d, focal, eligible, strata, ratio, replace, caliper, order):
    """MatchIt's nn_matchC_mahcovs search written plainly: units sorted by (stratum, key, row);
    from the focal unit, step left and right alternately; keep the least distance, of equal
    ones the candidate reached last."""
    n = z.shape[0]
    stratum = np.zeros(n, dtype=int) if strata is None else strata
    ordered = sorted(range(n), key=lambda u: (stratum[u], key[u], u))
    pos = {u: i for i, u in enumerate(ordered)}
    foc = [u for u in range(n) if focal[u] and eligible[u]]
    if order == "largest":
        foc.sort(key=lambda u: (-d[u], u))
    elif order == "smallest":
        foc.sort(key=lambda u: (d[u], u))
    used = set()
    found = []

    def candidates(f):
        out = []
        for c in range(n):
            if focal[c] or not eligible[c] or stratum[c] != stratum[f] or c in used:
                continue
            if caliper is not None and abs(d[f] - d[c]) > caliper:
                continue
            dist = (z[f, 0] - z[c, 0]) ** 2
            for i in range(1, z.shape[1]):
                dist += (z[f, i] - z[c, i]) ** 2
            step = pos[f] - pos[c]
            reached = 2 * step - 1 if step > 0 else -2 * step
            out.append((dist, -reached, c))
        return sorted(out)

    if replace:
        for f in foc:
            for r, (_, _, c) in enumerate(candidates(f)[:ratio], start=1):
                found.append((f, c, r))
        return found
    active = foc
    for r in range(1, ratio + 1):
        still = []
        for f in active:
            cands = candidates(f)
            if cands:
                used.add(cands[0][2])
                found.append((f, cands[0][2], r))
                still.append(f)
        active = still
    return found


@st.composite
def mahalanobis_problems(draw):
    n = draw(st.integers(6, 70))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    p = draw(st.integers(1, 3))
    z = rng.integers(0, draw(st.integers(1, 4)), size=(n, p)).astype(float)  # many ties
    key = z[:, 0] * 0.5 + rng.integers(0, 2, n)  # ties in the search order too
    d = np.round(rng.normal(size=n), 1)
    focal = rng.random(n) < draw(st.sampled_from([0.2, 0.4]))
    eligible = rng.random(n) < draw(st.sampled_from([1.0, 0.85]))
    strata = None if draw(st.booleans()) else rng.integers(0, 2, n)
    ratio = draw(st.integers(1, 3))
    replace = draw(st.booleans())
    caliper = draw(st.sampled_from([None, 0.3, 1.0]))
    order = draw(st.sampled_from(["largest", "smallest", "data"]))
    block = draw(st.sampled_from([1, 7, 2**21]))
    return z, key, d, focal, eligible, strata, ratio, replace, caliper, order, block


@settings(max_examples=300, deadline=None)
@given(mahalanobis_problems())
def test_mahalanobis_matching_equals_plain_search(problem):
    z, key, d, focal, eligible, strata, ratio, replace, caliper, order, block = problem
    n = z.shape[0]
    old = M._MAH_BLOCK_CELLS
    M._MAH_BLOCK_CELLS = block  # exercise the blocks of proposals
    try:
        f, c, r = M._match_mahalanobis(z, key, d, focal, eligible, strata,
                                       np.arange(n), ratio, replace, caliper, order, None)
    finally:
        M._MAH_BLOCK_CELLS = old
    expected = mahalanobis_reference(z, key, d, focal, eligible, strata, ratio, replace,
                                     caliper, order)
    assert sorted(zip(f.tolist(), c.tolist(), r.tolist(), strict=True)) == sorted(expected)


def test_mahalanobis_match_result():
    data = registry(n=300, seed=8)
    res = esi.match(data, "near_normal", COVS, distance="mahalanobis", caliper=None)
    assert res.model is None and res.distance.isna().all()
    assert res.params["order"] == "data" and res.params["distance"] == "mahalanobis"
    bal = res.balance()
    assert "distance" not in bal.index and "grp_a" in bal.index
    assert res.pairs["control"].is_unique
    assert res.sample_sizes().loc["Matched", "treated"] == (data["near_normal"] == 1).sum()
    # distance_gap: the Mahalanobis distance of the pair (grp enters with all three levels)
    x = esi.propensity.design_matrix(data, COVS, all_levels=True).to_numpy(float)
    t = data["near_normal"].to_numpy() == 1
    full = mahalanobis_by_formula(x, t, np.ones(t.size, dtype=bool), singular=True)
    i = data.index.get_indexer(res.pairs["treated"])
    j = data.index.get_indexer(res.pairs["control"])
    np.testing.assert_allclose(res.pairs["distance_gap"], full[i, j], atol=1e-9)
    # each treated unit (in row order: "data") took the nearest control still free
    free = np.ones(t.size, dtype=bool)
    free[t] = False
    for a, b in zip(i, j, strict=True):
        assert full[a, b] == pytest.approx(full[a, free].min(), abs=1e-12)
        free[b] = False


def test_mahvars_within_the_propensity_caliper():
    data = registry(n=300, seed=9)
    res = esi.match(data, "near_normal", COVS, mahvars=["x1", "x2"], caliper=0.1)
    width = res.params["caliper_width"]
    gap = np.abs(res.distance[res.pairs["treated"]].to_numpy()
                 - res.distance[res.pairs["control"]].to_numpy())
    assert (gap <= width).all() and res.model is not None
    assert res.params["mahvars"] == ["x1", "x2"] and res.params["order"] == "largest"
    assert "distance" in res.balance().index
    plain = esi.match(data, "near_normal", COVS, caliper=0.1)
    # the same treated units find a control inside the caliper; the controls differ
    assert set(res.pairs["treated"]) == set(plain.pairs["treated"])
    assert set(res.pairs["control"]) != set(plain.pairs["control"])


def test_mahalanobis_figures_and_findings():
    from esi.plots.matching import overlap_plot
    from esi.report import matching_findings

    res = esi.match(registry(), "near_normal", COVS, distance="mahalanobis", caliper=None)
    assert len(overlap_plot(res).axes) == 2
    assert "Mahalanobis distance of the covariates" in matching_findings(res)
    res = esi.match(registry(), "near_normal", COVS, mahvars="x1")
    assert "Mahalanobis distance of x1 within the caliper" in matching_findings(res)
