"""Propensity-score matching with R MatchIt 4.x semantics, fast on large registries.

:func:`match` fits the propensity model (:mod:`esi.propensity`), discards units outside
common support if asked, and pairs treated with control units by greedy nearest-neighbour or
optimal matching. The result, :class:`MatchResult`, carries the pairs, MatchIt's weights,
the balance diagnostics (:mod:`esi.balance`) and the sample-size table.

The matched sets equal R's ``MatchIt::matchit(method = "nearest")`` (checked on ``lalonde``
for 16 specifications, tests/test_matching_reference.py); the greedy search walks the sorted
distance with "next unused control" pointers, O(n log n), so a million-row registry matches in
about a second (benchmarks/matching.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from esi.balance import balance_table
from esi.propensity import DISTANCES, PropensityModel, fit_propensity

__all__ = ["match", "MatchResult", "METHODS", "ORDERS", "DISCARDS"]

ORDERS = ("largest", "smallest", "random", "data")
DISCARDS = ("none", "treated", "control", "both")
_ESTIMANDS = ("ATT", "ATC")
_MISSING = ("error", "drop")
#: Largest cost matrix (rows x columns) that method="optimal" builds.
OPTIMAL_MAX_CELLS = 25_000_000


@dataclass(frozen=True)
class MatchResult:
    """The outcome of :func:`match`.

    Attributes
    ----------
    pairs : DataFrame
        One row per matched control (per matched treated unit for ``estimand="ATC"``), ordered
        by ``subclass`` then by match round. Columns: ``treated`` and ``control`` (patient
        ids), ``subclass`` (int, 1..number of matched focal units, numbered in patient-id
        order), ``distance_gap`` (absolute difference of the two units' distances, on the
        distance scale used).
    distance : Series
        The matching distance of every unit (propensity or its logit), indexed by patient id.
    weights : Series
        MatchIt's matching weights for every unit (0 = not in the matched sample). ATT: treated
        units 1; a control matched in a subclass with ``k`` controls gets ``1/k``, summed over
        the treated units it serves when matching with replacement; control weights are then
        scaled to sum to the number of matched controls (MatchIt's ``normalize = TRUE``).
    unmatched : Index
        Ids of units neither matched nor discarded.
    discarded : Index
        Ids of units dropped by ``discard`` before matching.
    dropped : Index
        Ids dropped for missing values (``missing="drop"``); empty otherwise.
    params : dict
        The arguments of :func:`match`, plus ``caliper_width`` (the caliper in distance units,
        or None) and ``n_dropped``.
    model : PropensityModel or None
        The fitted propensity model (None when the distance was supplied).
    treatment : Series
        The 0/1 treatment of every matched-on unit (after dropping missing values).
    covariate_data : DataFrame
        The covariates (and exact-matching columns) used, for :meth:`balance`.
    """

    pairs: pd.DataFrame
    distance: pd.Series
    weights: pd.Series
    unmatched: pd.Index
    discarded: pd.Index
    dropped: pd.Index
    params: dict[str, Any]
    model: PropensityModel | None
    treatment: pd.Series = field(repr=False)
    covariate_data: pd.DataFrame = field(repr=False)

    def balance(self, *, binary: str = "raw", include_distance: bool = True) -> pd.DataFrame:
        """Balance before and after matching, one row per covariate term.

        Parameters
        ----------
        binary : {"raw", "std"}, default "raw"
            Binary terms (dummy levels, 0/1 columns) as a raw difference in proportions
            (cobalt's default) or standardised by ``sqrt(p (1 - p))`` (MatchIt's
            ``summary()``).
        include_distance : bool, default True
            Put the matching distance first, as a row named ``distance`` (as MatchIt does).

        Returns
        -------
        DataFrame
            Indexed by ``term``; columns ``variable``, ``level``, ``type``, then for each of
            ``before`` (all units, unweighted) and ``after`` (matched sample, matching
            weights): ``mean_treated_<s>``, ``mean_control_<s>``, ``smd_<s>``,
            ``variance_ratio_<s>``, ``ecdf_mean_<s>``, ``ecdf_max_<s>``, ``ks_<s>``.

        Notes
        -----
        The SMD denominator comes from the unmatched sample: the treated SD for ATT, the
        control SD for ATC (see :mod:`esi.balance` for the whole convention). Checked against
        MatchIt 4.7.2 ``summary(m, un = TRUE)`` with ``binary="std"``.
        """
        data = self.covariate_data.copy()
        covariates = list(data.columns)
        if include_distance:
            data.insert(0, "distance", self.distance)
            covariates.insert(0, "distance")
        tname = "__treatment__"
        data[tname] = self.treatment.to_numpy()
        estimand = self.params["estimand"]
        before = balance_table(data, tname, covariates, None, estimand, binary=binary)
        after = balance_table(data, tname, covariates, self.weights, estimand, binary=binary)
        stats = [c for c in before.columns if c not in ("variable", "level", "type")]
        out = before[["variable", "level", "type"]].copy()
        for s, tab in (("before", before), ("after", after)):
            for c in stats:
                out[f"{c}_{s}"] = tab[c]
        return out

    def sample_sizes(self) -> pd.DataFrame:
        """Sample sizes by group, as MatchIt's ``summary(m)$nn``.

        Returns
        -------
        DataFrame
            Index ``sample`` with rows ``All``, ``Matched (ESS)`` (effective sample size
            ``sum(w)^2 / sum(w^2)`` of the matching weights), ``Matched`` (weight > 0),
            ``Unmatched`` (weight 0, not discarded), ``Discarded``; columns ``control`` and
            ``treated``. Units dropped for missing values are not counted (see ``dropped``).
        """
        t = self.treatment.to_numpy() == 1
        w = self.weights.to_numpy()
        disc = self.distance.index.isin(self.discarded)
        rows = {}
        for name, g in (("control", ~t), ("treated", t)):
            wg = w[g]
            ess = wg.sum() ** 2 / (wg**2).sum() if (wg > 0).any() else 0.0
            rows[name] = [
                int(g.sum()),
                float(ess),
                int((wg > 0).sum()),
                int(((wg == 0) & ~disc[g]).sum()),
                int(disc[g].sum()),
            ]
        out = pd.DataFrame(
            rows, index=pd.Index(["All", "Matched (ESS)", "Matched", "Unmatched", "Discarded"], name="sample")
        )
        return out


# --------------------------------------------------------------------------------------------
# Input checks


def _check_args(method, distance, ratio, caliper, std_caliper, replace, order, discard,
                estimand, missing, random_state):
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
    if not isinstance(distance, pd.Series) and distance not in DISTANCES:
        raise ValueError(
            f"distance must be one of {DISTANCES} or a Series of distances, got {distance!r}"
        )
    if isinstance(ratio, bool) or not isinstance(ratio, int | np.integer) or ratio < 1:
        raise ValueError(f"ratio must be a positive integer, got {ratio!r}")
    if caliper is not None:
        if isinstance(caliper, bool) or not isinstance(caliper, int | float | np.number):
            raise ValueError(f"caliper must be a positive number or None, got {caliper!r}")
        if not np.isfinite(caliper) or caliper <= 0:
            raise ValueError(f"caliper must be a positive finite number or None, got {caliper!r}")
    if not isinstance(std_caliper, bool | np.bool_):
        raise ValueError(f"std_caliper must be True or False, got {std_caliper!r}")
    if not isinstance(replace, bool | np.bool_):
        raise ValueError(f"replace must be True or False, got {replace!r}")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if order == "random" and random_state is None:
        raise ValueError(
            "order='random' needs random_state (an int seed or a numpy Generator) so that the "
            "matched set can be reproduced"
        )
    if discard not in DISCARDS:
        raise ValueError(f"discard must be one of {DISCARDS}, got {discard!r}")
    if estimand not in _ESTIMANDS:
        raise ValueError(
            f"estimand must be one of {_ESTIMANDS} for matching, got {estimand!r} "
            "(nearest-neighbour and pair matching do not target the ATE)"
        )
    if missing not in _MISSING:
        raise ValueError(f"missing must be one of {_MISSING}, got {missing!r}")
    if method == "optimal" and replace:
        raise ValueError("replace=True is not available with method='optimal' (use 'nearest')")


def _treatment_vector(data: pd.DataFrame, treatment: str) -> np.ndarray:
    s = data[treatment]
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy(dtype=np.int8)
    try:
        values = pd.to_numeric(s, errors="raise")
    except (TypeError, ValueError):
        raise ValueError(
            f"treatment column {treatment!r} must be 0/1 or boolean, found values "
            f"{sorted(map(str, s.unique()))[:10]}"
        ) from None
    v = values.to_numpy(dtype=float)
    bad = ~np.isin(v, (0.0, 1.0))
    if bad.any():
        found = sorted(set(v[bad].tolist()))[:10]
        raise ValueError(
            f"treatment column {treatment!r} must be binary (0/1 or boolean), found other "
            f"values {found} in {int(bad.sum())} rows, e.g. {list(data.index[bad][:5])}"
        )
    return v.astype(np.int8)


# --------------------------------------------------------------------------------------------
# Greedy nearest-neighbour matching


def _match_nearest(d, focal, eligible, strata, id_rank, ratio, replace, caliper, order, rng):
    """Return a list of (focal unit, control unit, round) in the order matches were made.

    Every index is a row position. ``focal`` marks the units that receive matches (treated
    for ATT). See :func:`match` for the rules; this follows MatchIt's ``nn_matchC_vec``.
    """
    n = d.size
    # Global sorted position: distance ascending, ties by patient id (MatchIt: by row).
    sorted_units = np.lexsort((id_rank, d))
    pos = np.empty(n, dtype=np.int64)
    pos[sorted_units] = np.arange(n)
    stratum = np.zeros(n, dtype=np.int64) if strata is None else strata.astype(np.int64)

    # Controls eligible for matching, sorted by (stratum, position): one contiguous block each.
    ctrl = np.flatnonzero(~focal & eligible)
    ckey = stratum[ctrl] * (n + 1) + pos[ctrl]
    corder = np.argsort(ckey, kind="stable")
    ctrl = ctrl[corder]
    ckey = ckey[corder]
    m = ctrl.size

    # Focal units to process, in matching order.
    foc = np.flatnonzero(focal & eligible)
    if order == "largest":
        foc = foc[np.lexsort((id_rank[foc], -d[foc]))]
    elif order == "smallest":
        foc = foc[np.lexsort((id_rank[foc], d[foc]))]
    elif order == "random":
        foc = foc[np.argsort(id_rank[foc], kind="stable")]
        foc = foc[rng.permutation(foc.size)]
    # "data": row order as given

    fkey = stratum[foc] * (n + 1) + pos[foc]
    ins = np.searchsorted(ckey, fkey)  # first control at or after the focal unit's position
    lo = np.searchsorted(ckey, stratum[foc] * (n + 1))  # stratum block start
    hi = np.searchsorted(ckey, (stratum[foc] + 1) * (n + 1))  # stratum block end
    cal = np.inf if caliper is None else float(caliper)

    if replace:
        return _nearest_with_replacement(d, pos, ctrl, foc, ins, lo, hi, ratio, cal)
    if m == 0 or foc.size == 0:
        return []

    # Greedy rounds (MatchIt without replacement): every focal unit gets its r-th control
    # before any gets its (r+1)-th; a unit with no control in the caliper drops out.
    d_l = d.tolist()
    pos_l = pos.tolist()
    cpos = pos[ctrl].tolist()
    cd = d[ctrl].tolist()
    cid = ctrl.tolist()
    # "next unused" pointers with path compression: nxt[j] -> smallest unused >= j (m = none);
    # prv[j + 1] -> largest unused <= j, shifted by one (0 = none). A control's own slot is
    # checked first: most lookups end there.
    nxt = list(range(m + 1))
    prv = list(range(m + 1))
    foc_l = foc.tolist()
    ins_l, lo_l, hi_l = ins.tolist(), lo.tolist(), hi.tolist()
    active = [True] * foc.size
    left_edge = [pos_l[u] for u in foc_l]  # search starts (MatchIt's iil / iir)
    right_edge = list(left_edge)
    inf = float("inf")
    matches = []
    append = matches.append
    used = 0
    for r in range(1, ratio + 1):
        for k in range(len(foc_l)):
            if used == m:
                break
            if not active[k]:
                continue
            dt = d_l[foc_l[k]]
            # nearest unused control on the right
            j = ins_l[k]
            root = nxt[j]
            if root != j:
                while nxt[root] != root:
                    root = nxt[root]
                while nxt[j] != root:
                    nxt[j], j = root, nxt[j]
            if root < hi_l[k]:
                jr = root
                gr = cd[jr] - dt
                if gr > cal:
                    jr, gr = -1, inf
            else:
                jr, gr = -1, inf
            # nearest unused control on the left
            j = ins_l[k]
            root = prv[j]
            if root != j:
                while prv[root] != root:
                    root = prv[root]
                while prv[j] != root:
                    prv[j], j = root, prv[j]
            if root > lo_l[k]:
                jl = root - 1
                gl = dt - cd[jl]
                if gl > cal:
                    jl, gl = -1, inf
            else:
                jl, gl = -1, inf
            if jl < 0 and jr < 0:
                active[k] = False
                continue
            if jr < 0 or (jl >= 0 and (gl < gr or (gl == gr and left_edge[k] - cpos[jl] <= cpos[jr] - right_edge[k]))):
                j = jl
                if cpos[j] < left_edge[k]:
                    left_edge[k] = cpos[j]
            else:
                j = jr
                if cpos[j] > right_edge[k]:
                    right_edge[k] = cpos[j]
            nxt[j] = j + 1  # control j is used
            prv[j + 1] = j
            used += 1
            append((foc_l[k], cid[j], r))
        if used == m:
            break
    return matches


def _nearest_with_replacement(d, pos, ctrl, foc, ins, lo, hi, ratio, cal):
    """k nearest controls of every focal unit, controls reusable (vectorised)."""
    if ctrl.size == 0 or foc.size == 0:
        return []
    offsets = np.arange(1, ratio + 1)
    left = ins[:, None] - offsets[None, :]  # k nearest on the left
    right = ins[:, None] + offsets[None, :] - 1  # k nearest on the right
    cand = np.concatenate([left, right], axis=1)
    valid = np.concatenate([left >= lo[:, None], right < hi[:, None]], axis=1)
    safe = np.where(valid, cand, 0)
    cunit = ctrl[safe]
    gap = np.abs(d[foc][:, None] - d[cunit])
    valid &= gap <= cal
    gap = np.where(valid, gap, np.inf)
    # MatchIt's search alternates left and right one position at a time: a tie in distance
    # goes to the candidate it reaches first.
    fpos = pos[foc][:, None]
    reach = np.where(
        np.arange(2 * ratio)[None, :] < ratio, 2 * (fpos - pos[cunit]) - 1, 2 * (pos[cunit] - fpos)
    )
    best = np.lexsort((reach, gap), axis=1)[:, :ratio]
    rows = np.arange(foc.size)[:, None]
    chosen = cunit[rows, best]
    ok = valid[rows, best]
    fi, ri = np.nonzero(ok)
    return list(zip(foc[fi].tolist(), chosen[fi, ri].tolist(), (ri + 1).tolist(), strict=True))


# --------------------------------------------------------------------------------------------
# Optimal matching


def _match_optimal(d, focal, eligible, strata, id_rank, ratio, replace, caliper, order, rng):
    """Least total |distance gap|, each focal unit getting ``ratio`` controls (scipy's LSAP).

    With a caliper, pairs outside it are forbidden and a focal slot may stay empty: the
    solution first maximises the number of matched slots, then minimises the total gap.
    """
    stratum = np.zeros(d.size, dtype=np.int64) if strata is None else strata.astype(np.int64)
    matches = []
    for s in np.unique(stratum[eligible]):
        foc = np.flatnonzero(focal & eligible & (stratum == s))
        ctl = np.flatnonzero(~focal & eligible & (stratum == s))
        if foc.size == 0 or ctl.size == 0:
            continue
        foc = foc[np.argsort(id_rank[foc], kind="stable")]
        ctl = ctl[np.argsort(id_rank[ctl], kind="stable")]
        rows = np.repeat(foc, ratio)
        gap = np.abs(d[rows][:, None] - d[ctl][None, :])
        n_rows = rows.size
        if caliper is None and ctl.size >= n_rows:
            cost = gap
        else:
            cells = n_rows * (ctl.size + n_rows)
            if cells > OPTIMAL_MAX_CELLS:
                raise ValueError(
                    f"method='optimal' would build a {n_rows} x {ctl.size + n_rows} cost matrix "
                    f"(limit {OPTIMAL_MAX_CELLS:,} cells); use method='nearest' for data this size"
                )
            big = (np.nanmax(gap) + 1.0) * (n_rows + 1)
            inside = gap <= (np.inf if caliper is None else caliper)
            cost = np.full((n_rows, ctl.size + n_rows), np.inf)
            cost[:, : ctl.size] = np.where(inside, gap, np.inf)
            cost[np.arange(n_rows), ctl.size + np.arange(n_rows)] = big  # leave the slot empty
        if cost.size > OPTIMAL_MAX_CELLS:
            raise ValueError(
                f"method='optimal' would build a {cost.shape[0]} x {cost.shape[1]} cost matrix "
                f"(limit {OPTIMAL_MAX_CELLS:,} cells); use method='nearest' for data this size"
            )
        ri, ci = linear_sum_assignment(cost)
        keep = ci < ctl.size
        ri, ci = ri[keep], ci[keep]
        got = pd.DataFrame({"t": rows[ri], "c": ctl[ci], "g": gap[ri, ci], "p": id_rank[ctl[ci]]})
        got = got.sort_values(["t", "g", "p"], kind="stable")
        got["r"] = got.groupby("t").cumcount() + 1
        matches.extend(zip(got["t"].tolist(), got["c"].tolist(), got["r"].tolist(), strict=True))
    return matches


#: Matching methods by name; each takes the same arguments and returns (focal, control, round).
METHODS: dict[str, Callable[..., list[tuple[int, int, int]]]] = {
    "nearest": _match_nearest,
    "optimal": _match_optimal,
}


# --------------------------------------------------------------------------------------------
# Discarding, weights


def _discard(d: np.ndarray, treated: np.ndarray, option: str) -> np.ndarray:
    """MatchIt's ``discard()``: drop units outside the other group's distance range."""
    if option == "none":
        return np.zeros(d.size, dtype=bool)
    lo1, hi1 = d[treated].min(), d[treated].max()
    lo0, hi0 = d[~treated].min(), d[~treated].max()
    if option == "both":
        return (d < max(lo0, lo1)) | (d > min(hi0, hi1))
    if option == "control":
        return ~treated & ((d < lo1) | (d > hi1))
    return treated & ((d < lo0) | (d > hi0))


def _weights(n, focal, pairs_f, pairs_c, treated):
    """MatchIt's weights: focal 1; other group 1/k per focal unit served; then normalised."""
    w = np.zeros(n)
    if pairs_f.size == 0:
        return w
    uf, inv, k = np.unique(pairs_f, return_inverse=True, return_counts=True)
    w[uf] = 1.0
    np.add.at(w, pairs_c, 1.0 / k[inv])
    for g in (treated, ~treated):  # .make_sum_to_n by treatment group over w > 0
        pos = g & (w > 0)
        if pos.any():
            w[pos] = pos.sum() * w[pos] / w[pos].sum()
    return w


# --------------------------------------------------------------------------------------------
# Public entry point


def match(
    data: pd.DataFrame,
    treatment: str,
    covariates: Sequence[str],
    *,
    method: str = "nearest",
    distance: str | pd.Series = "logit",
    ratio: int = 1,
    caliper: float | None = 0.2,
    std_caliper: bool = True,
    replace: bool = False,
    order: str = "largest",
    exact: str | Sequence[str] | None = None,
    discard: str = "none",
    estimand: str = "ATT",
    missing: str = "error",
    random_state: int | np.random.Generator | None = None,
) -> MatchResult:
    """Propensity-score matching of treated (1) to control (0) units, as R's MatchIt does it.

    Parameters
    ----------
    data : DataFrame
        One row per patient, indexed by (unique) patient id.
    treatment : str
        0/1 or boolean column; 1 = treated (near-normal imaging case).
    covariates : list of str
        Propensity-model covariates. Categorical columns are dummy-coded with the first level
        (sorted, or the first category) as reference, as R's ``model.matrix`` does.
    method : {"nearest", "optimal"}, default "nearest"
        "nearest": greedy nearest neighbour (MatchIt ``method = "nearest"``). "optimal": the
        least total distance gap, each treated unit getting ``ratio`` controls, solved by
        ``scipy.optimize.linear_sum_assignment``; it honours ``caliper`` and ``exact`` (pairs
        outside are forbidden; the solution matches as many slots as possible, then minimises
        the total gap). MatchIt's optimal (optmatch) ignores calipers. ``order`` does not apply.
    distance : {"logit", "propensity"} or Series, default "logit"
        Scale of the distance: the linear predictor of the logistic model (MatchIt
        ``link = "linear.logit"``, Austin's recommendation) or the fitted probability
        (MatchIt's default). The model is an unpenalised logistic regression
        (:func:`esi.propensity.fit_propensity`). A Series (indexed by patient id) is used as
        the distance as it is, with no model (MatchIt: a numeric ``distance`` vector).
    ratio : int, default 1
        Controls per treated unit (1:k).
    caliper : float or None, default 0.2
        Largest allowed distance gap within a pair (``|gap| <= width``); None for no caliper.
    std_caliper : bool, default True
        True: ``caliper`` is in standard deviations of the distance, the SD (n - 1) taken over
        all non-discarded units of both groups (MatchIt: ``sd(distance[!discarded])``).
        False: in distance units.
    replace : bool, default False
        Let a control serve several treated units.
    order : {"largest", "smallest", "random", "data"}, default "largest"
        Order in which treated units pick their controls (greedy matching without
        replacement): by decreasing or increasing distance (ties by patient id), in a random
        order drawn from ``random_state``, or in row order. Irrelevant with replacement.
    exact : str or list of str, optional
        Columns whose values must agree within a pair. Units whose combination has no unit of
        the other group stay unmatched (not discarded), as in MatchIt.
    discard : {"none", "treated", "control", "both"}, default "none"
        Before matching, drop treated units ("treated"), control units ("control") or both
        whose distance lies outside the range of the other group's distances (MatchIt's
        common-support rule; "both" uses the overlap of the two ranges).
    estimand : {"ATT", "ATC"}, default "ATT"
        ATT: controls are matched to treated units. ATC: treated units are matched to
        controls (the roles swap; ``pairs`` then has one row per matched treated unit).
    missing : {"error", "drop"}, default "error"
        Missing values in the treatment, covariates or exact columns: raise, naming the rows
        and columns, or drop those rows and report their ids in ``MatchResult.dropped``.
    random_state : int or numpy.random.Generator, optional
        Seed for ``order="random"`` (required there, unused otherwise).

    Returns
    -------
    MatchResult
        Pairs, distance, weights, unmatched/discarded/dropped ids, parameters and the model.

    Raises
    ------
    ValueError
        Unknown argument values; a missing or non-binary treatment column; no treated or no
        control units; covariates or exact columns not in ``data``; duplicated patient ids;
        missing values (with ``missing="error"``); a constant, collinear or perfectly
        separating covariate (named); fewer eligible controls than ``ratio`` x treated units
        without replacement.

    Notes
    -----
    Rules, each as in MatchIt 4.7.2 ``matchit2nearest()`` / ``nn_matchC_vec()``:

    - **Greedy rounds.** Without replacement, treated units are visited in ``order``; each
      takes the nearest unused control (in the same ``exact`` stratum) whose gap is within
      the caliper. With ``ratio = k`` this repeats in ``k`` rounds, so every treated unit gets
      its first control before any gets a second. A treated unit with no control inside the
      caliper in a round gets no further controls (in round 1: stays unmatched).
    - **With replacement** each treated unit takes its ``k`` nearest controls within the
      caliper, independently of the others.
    - **Ties.** The search walks the units sorted by distance; units with equal distance are
      sorted by patient id (MatchIt sorts them by row position; the two agree on data sorted
      by id, which is how the reference tests compare them). From the treated unit's place the
      search looks alternately one step left (smaller distance) and one step right; of two
      candidates at the same gap (compared in floating point, as MatchIt does: a unit midway
      between two candidates in exact arithmetic is a tie that rounding may break) the one
      reached first wins, the left one if equally far. For
      ``order`` "largest"/"smallest", treated units of equal distance are visited in id order.
      Hence the result does not depend on row order, except with ``order="data"``.
      With replacement and ``ratio > 1`` the ``k`` controls of a unit are listed by gap, ties
      in the order reached; MatchIt's unstable ``std::partial_sort`` may list exactly tied
      controls in another order (same matched set on ``lalonde``).
    - **Subclasses** number the matched treated units 1, 2, ... in patient-id order (MatchIt
      numbers them in row order and has none with replacement).
    - **Weights**: see :class:`MatchResult`.
    - **Caliper width** is ``caliper * sd(distance over non-discarded units)`` when
      ``std_caliper``; computed after ``discard``.

    Checked against R MatchIt 4.7.2 on ``lalonde`` (16 specifications: default, logit with
    caliper, ratio 2 with caliper, replacement, "smallest", "data", exact, raw caliper,
    discard, ATC): identical pairs and weights, distances within 1e-6.
    """
    _check_args(method, distance, ratio, caliper, std_caliper, replace, order, discard,
                estimand, missing, random_state)
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    if not covariates:
        raise ValueError("covariates must name at least one column")
    exact_cols = [] if exact is None else ([exact] if isinstance(exact, str) else list(exact))
    if treatment not in data.columns:
        raise ValueError(f"treatment column {treatment!r} not found in data")
    absent = [c for c in covariates + exact_cols if c not in data.columns]
    if absent:
        raise ValueError(f"columns not found in data: {absent}")
    if treatment in covariates:
        raise ValueError(f"treatment column {treatment!r} is also listed as a covariate")
    if data.index.has_duplicates:
        dup = data.index[data.index.duplicated()].unique()
        raise ValueError(f"patient ids (the index) must be unique; duplicated: {list(dup[:10])}")

    used_cols = list(dict.fromkeys([treatment, *covariates, *exact_cols]))
    na = data[used_cols].isna()
    na_rows = na.any(axis=1).to_numpy()
    dropped = data.index[:0]
    if na_rows.any():
        cols = list(na.columns[na.any(axis=0)])
        ids = data.index[na_rows]
        if missing == "error":
            raise ValueError(
                f"missing values in {cols} for {ids.size} rows (patient ids "
                f"{list(ids[:10])}{' ...' if ids.size > 10 else ''}); impute them first or "
                "pass missing='drop' to match on complete cases"
            )
        dropped = ids
        data = data.loc[~na_rows]

    t = _treatment_vector(data, treatment)
    n1 = int(t.sum())
    if n1 == 0:
        raise ValueError(f"no treated units (treatment column {treatment!r} has no 1)")
    if n1 == t.size:
        raise ValueError(f"no control units (treatment column {treatment!r} has no 0)")
    treated = t == 1

    if isinstance(distance, pd.Series):
        user = distance.reindex(data.index)
        if user.isna().any():
            raise ValueError(
                f"distance Series has no finite value for {int(user.isna().sum())} units, e.g. "
                f"{list(data.index[user.isna().to_numpy()][:5])}"
            )
        model = None
        dist_series = user.astype(float).rename("distance")
    else:
        # Fit on the rows sorted by patient id: floating-point sums then do not depend on the
        # row order, so neither do the distances (nor, through them, the matches).
        fit_data = data[[treatment, *covariates]]
        if not fit_data.index.is_monotonic_increasing:
            fit_data = fit_data.sort_index(kind="stable")
        model = fit_propensity(fit_data, treatment, covariates, distance=distance)
        dist_series = model.distance.reindex(data.index)
    d = dist_series.to_numpy(dtype=float)
    n = d.size

    discarded = _discard(d, treated, discard)
    width = None
    if caliper is not None:
        width = float(caliper) * (float(np.std(d[~discarded], ddof=1)) if std_caliper else 1.0)

    focal = treated if estimand == "ATT" else ~treated
    n_focal = int((focal & ~discarded).sum())
    n_other = int((~focal & ~discarded).sum())
    if n_focal == 0:
        raise ValueError("every focal unit was discarded; no unit is left to match")
    if not replace and n_other < ratio * n_focal:
        groups = ("control", "treated") if estimand == "ATT" else ("treated", "control")
        raise ValueError(
            f"fewer {groups[0]} units ({n_other}) than ratio x {groups[1]} units "
            f"({ratio} x {n_focal} = {ratio * n_focal}) for matching without replacement; "
            "lower ratio, or set replace=True"
        )

    strata = None
    if exact_cols:
        strata = data[exact_cols].astype(str).agg("\x1f".join, axis=1).to_numpy()
        strata = pd.factorize(strata, sort=True)[0]
    id_rank = np.empty(n, dtype=np.int64)
    id_rank[np.argsort(data.index.to_numpy(), kind="stable")] = np.arange(n)
    rng = (random_state if isinstance(random_state, np.random.Generator)
           else np.random.default_rng(random_state))

    found = METHODS[method](d, focal, ~discarded, strata, id_rank, ratio, replace, width, order,
                            rng)
    f_idx = np.array([m[0] for m in found], dtype=np.int64)
    c_idx = np.array([m[1] for m in found], dtype=np.int64)
    rnd = np.array([m[2] for m in found], dtype=np.int64)

    weights = _weights(n, focal, f_idx, c_idx, treated)
    # subclass: matched focal units numbered in patient-id order
    matched_focal = np.unique(f_idx)
    matched_focal = matched_focal[np.argsort(id_rank[matched_focal], kind="stable")]
    sub_of = np.zeros(n, dtype=np.int64)
    sub_of[matched_focal] = np.arange(1, matched_focal.size + 1)
    ids = data.index
    t_idx, k_idx = (f_idx, c_idx) if estimand == "ATT" else (c_idx, f_idx)
    pairs = pd.DataFrame(
        {
            "treated": ids.to_numpy()[t_idx],
            "control": ids.to_numpy()[k_idx],
            "subclass": sub_of[f_idx],
            "distance_gap": np.abs(d[f_idx] - d[c_idx]),
            "_round": rnd,
        }
    )
    pairs = pairs.sort_values(["subclass", "_round"], kind="stable").drop(columns="_round")
    pairs = pairs.reset_index(drop=True)

    params = {
        "treatment": treatment,
        "covariates": list(covariates),
        "method": method,
        "distance": distance if isinstance(distance, str) else "user",
        "ratio": int(ratio),
        "caliper": caliper,
        "std_caliper": bool(std_caliper),
        "replace": bool(replace),
        "order": order,
        "exact": exact_cols,
        "discard": discard,
        "estimand": estimand,
        "missing": missing,
        "random_state": random_state if not isinstance(random_state, np.random.Generator) else "Generator",
        "caliper_width": width,
        "n_dropped": int(dropped.size),
    }
    weight_s = pd.Series(weights, index=ids, name="weights")
    bal_cols = list(dict.fromkeys([*covariates, *exact_cols]))
    return MatchResult(
        pairs=pairs,
        distance=dist_series,
        weights=weight_s,
        unmatched=ids[(weights == 0) & ~discarded],
        discarded=ids[discarded],
        dropped=dropped,
        params=params,
        model=model,
        treatment=pd.Series(t.astype(int), index=ids, name=treatment),
        covariate_data=data[bal_cols],
    )
