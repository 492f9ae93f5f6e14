"""The fast greedy search and id handling of esi.match give exactly the reference results.

``esi.matching._greedy_fast`` (proposals computed with numpy, the one-unit search only for
units whose proposal was taken) and the faster sorts before it must produce the same pairs, in
the same order, as ``_match_nearest_reference``: plain lexicographic sorts and
``_greedy_reference``, the one-unit-at-a-time loop that follows MatchIt's ``nn_matchC_vec``
(the code that tests/test_matching_reference.py checked against R MatchIt 4.7.2). The fast
patient-id paths (already sorted ids, string ids) must give the same ranks and the same result
columns as the generic ones.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import esi
from esi import matching as M

# ---------------------------------------------------------------- greedy search, unit level


@st.composite
def greedy_problems(draw):
    n = draw(st.integers(2, 120))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["grid", "coarse", "continuous"]))
    if kind == "grid":  # many exact ties in the distance
        d = rng.integers(0, draw(st.integers(1, 12)), n).astype(float) / 4
    elif kind == "coarse":
        d = np.round(rng.normal(size=n), 1)
    else:
        d = rng.normal(size=n)
    focal = rng.random(n) < draw(st.sampled_from([0.1, 0.3, 0.5, 0.7]))
    eligible = rng.random(n) < draw(st.sampled_from([1.0, 0.8]))
    strata = None if draw(st.booleans()) else rng.integers(0, draw(st.integers(1, 3)), n)
    id_rank = rng.permutation(n)
    ratio = draw(st.integers(1, 4))
    caliper = draw(st.sampled_from([None, 0.05, 0.25, 1.0]))
    order = draw(st.sampled_from(M.ORDERS))
    return d, focal, eligible, strata, id_rank, ratio, caliper, order, seed


@settings(max_examples=400, deadline=None)
@given(greedy_problems())
def test_fast_greedy_equals_reference_loop(problem):
    d, focal, eligible, strata, id_rank, ratio, caliper, order, seed = problem
    args = (d, focal, eligible, strata, id_rank, ratio, False, caliper, order)
    fast = M._match_nearest(*args, np.random.default_rng(seed))
    reference = M._match_nearest_reference(*args, np.random.default_rng(seed))
    assert fast == reference  # same pairs, same rounds, same order


def test_fast_greedy_equals_reference_on_dense_registry():
    # A registry where many treated units compete for the same controls (about one in eight
    # proposals is taken first), in every order and for 1:1 and 1:3.
    rng = np.random.default_rng(7)
    n = 60_000
    d = rng.normal(size=n)
    focal = rng.random(n) < 1 / (1 + np.exp(-(d * 1.5 - 2.5)))
    strata = rng.integers(0, 2, n)
    id_rank = rng.permutation(n)
    width = 0.2 * d.std(ddof=1)
    for order in M.ORDERS:
        for ratio, s in ((1, None), (3, strata)):
            args = (d, focal, np.ones(n, dtype=bool), s, id_rank, ratio, False, width, order)
            fast = M._match_nearest(*args, np.random.default_rng(3))
            reference = M._match_nearest_reference(*args, np.random.default_rng(3))
            assert fast == reference, (order, ratio)
            # contention was real: many units did not get their nearest control in round 1
            f, c, _ = (np.array(col) for col in zip(*[m for m in fast if m[2] == 1], strict=True))
            controls = np.sort(d[~focal])
            i = np.clip(np.searchsorted(controls, d[f]), 1, controls.size - 1)
            nearest = np.minimum(np.abs(controls[i] - d[f]), np.abs(controls[i - 1] - d[f]))
            if s is None:
                assert np.mean(np.abs(d[c] - d[f]) > nearest) > 0.05


def test_distance_sort_equals_lexsort():
    rng = np.random.default_rng(11)
    for trial in range(200):
        n = int(rng.integers(1, 400))
        d = rng.integers(0, int(rng.integers(1, 30)), n).astype(float)
        if trial % 3 == 0:
            d = rng.normal(size=n)
        if trial % 4 == 0:
            d[rng.random(n) < 0.3] = -0.0  # -0.0 == 0.0: a tie, broken by rank
        id_rank = rng.permutation(n)
        assert np.array_equal(M._sort_by_distance_then_rank(d, id_rank), np.lexsort((id_rank, d)))


# ---------------------------------------------------------------- end to end, esi.match

COVS = ["x1", "x2", "x3", "b1"]


def registry(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    x[:, 2] = np.round(x[:, 2])  # ties in the distance
    b1 = rng.binomial(1, 0.4, n).astype(float)
    eta = -2.0 + x @ np.array([0.6, -0.3, 0.4]) + 0.5 * b1
    treat = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    data = pd.DataFrame({"treat": treat, "x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "b1": b1})
    data.index = pd.Index([f"P{i:06d}" for i in range(n)], name="patient_id")
    return data


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"ratio": 2, "order": "smallest"},
        {"ratio": 3, "caliper": 0.05, "order": "random", "random_state": 5},
        {"order": "data", "caliper": None},
        {"exact": "b1", "ratio": 2},
        {"estimand": "ATC", "caliper": 0.1},
    ],
)
def test_match_same_as_with_reference_loop(kwargs, monkeypatch):
    data = registry(20_000, seed=3)
    if kwargs.get("estimand") == "ATC":  # controls are then the minority
        data["treat"] = 1 - data["treat"]
    fast = esi.match(data, "treat", COVS, **kwargs)
    monkeypatch.setattr(M, "_match_nearest_arrays",
                        functools.partial(M._match_nearest_arrays, reference=True))
    slow = esi.match(data, "treat", COVS, **kwargs)
    pd.testing.assert_frame_equal(fast.pairs, slow.pairs)
    pd.testing.assert_series_equal(fast.weights, slow.weights)
    assert fast.pairs.shape[0] > 1_000


def test_unsorted_and_object_ids_give_the_same_result():
    # Ties follow the row order (as MatchIt); in the same row order, string and object ids
    # give the same result, and so does an unsorted frame put back in id order.
    data = registry(5_000, seed=4)
    base = esi.match(data, "treat", COVS, ratio=2)
    shuffled = data.sample(frac=1.0, random_state=1)  # unsorted string ids
    as_object = data.copy()
    as_object.index = pd.Index(data.index.to_numpy(dtype=object), dtype=object, name="patient_id")
    shuffled_object = as_object.sample(frac=1.0, random_state=2)
    for other in (shuffled.sort_index(), as_object, shuffled_object.sort_index()):
        res = esi.match(other, "treat", COVS, ratio=2)
        pd.testing.assert_frame_equal(res.pairs, base.pairs)
        pd.testing.assert_series_equal(res.weights.reindex(base.weights.index), base.weights,
                                       check_index_type=False)
    # unsorted ids (the model is fitted in id order): the same distances, bit for bit
    for other in (shuffled, shuffled_object):
        res = esi.match(other, "treat", COVS, ratio=2)
        pd.testing.assert_series_equal(res.distance.reindex(base.distance.index), base.distance,
                                       check_index_type=False)
    # the id columns have the dtype an object array of the ids gets (as before the fast path)
    expected = pd.Series(data.index.to_numpy()[:3]).dtype
    assert base.pairs["treated"].dtype == expected and base.pairs["control"].dtype == expected


def test_integer_ids_keep_their_dtype():
    data = registry(2_000, seed=5)
    data.index = pd.Index(np.arange(data.shape[0]) * 3 + 7, name="patient_id")
    res = esi.match(data, "treat", COVS)
    assert res.pairs["treated"].dtype == np.int64
    shuffled = esi.match(data.sample(frac=1.0, random_state=3).sort_index(), "treat", COVS)
    pd.testing.assert_frame_equal(res.pairs, shuffled.pairs)


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        (pd.Index(["P1", "P2", "P3"]), True),
        (pd.Index(["P1", "P3", "P2"]), False),
        (pd.Index(["P1", "P1", "P2"]), False),  # not strictly increasing: duplicates
        (pd.Index(["P1", None, "P2"]), False),
        (pd.Index(["a", "b"], dtype=object), True),
        (pd.Index([3, 5, 9]), True),
        (pd.Index([3, 3, 9]), False),
        (pd.Index([1.0, np.nan, 3.0]), False),
        (pd.Index(["x"]), True),
    ],
)
def test_strictly_increasing_ids(ids, expected):
    assert M._strictly_increasing(ids) is expected


def test_string_id_ranks_equal_python_order():
    # code-point order, also beyond ASCII (the string array sorts by UTF-8 bytes)
    rng = np.random.default_rng(9)
    alphabet = list("aZ09_é中😀ß ")
    ids = {"".join(rng.choice(alphabet, int(rng.integers(1, 6)))) for _ in range(3_000)}
    index = pd.Index(sorted(ids, key=lambda _: rng.random()))
    assert index.dtype == M._STR
    assert np.array_equal(M._id_argsort(index), np.argsort(index.to_numpy(), kind="stable"))


def test_duplicated_ids_still_named():
    data = registry(300, seed=6)
    data.index = pd.Index([*data.index[:-1], data.index[0]], name="patient_id")
    with pytest.raises(ValueError, match="P000000"):
        esi.match(data, "treat", COVS)


def test_exact_strata_equal_row_wise_join():
    rng = np.random.default_rng(12)
    n = 400
    data = pd.DataFrame({
        "s": rng.choice(["x", "y", "a\x1fb", "a", "b\x1fc", "c"], n),
        "i": rng.integers(0, 3, n),
        "f": rng.random(n).round(1),
        "b": rng.choice([True, False], n),
        "k": pd.Categorical(rng.choice(["p", "q"], n)),
    })
    for cols in (["s"], ["i"], ["s", "i"], ["f", "b", "k"], list(data.columns)):
        row_wise = data[cols].astype(str).agg("\x1f".join, axis=1).to_numpy()
        expected = pd.factorize(row_wise, sort=True)[0]
        assert np.array_equal(M._exact_strata(data, cols), expected), cols
