"""Propensity-score and Mahalanobis matching with R MatchIt 4.x semantics, fast on large
registries.

:func:`match` fits the propensity model (:mod:`esi.propensity`), discards units outside
common support if asked, and pairs treated with control units by greedy nearest-neighbour or
optimal matching on the propensity score, or by greedy nearest-neighbour matching on the
Mahalanobis distance (on the covariates, or on ``mahvars`` within a propensity-score
caliper). The result, :class:`MatchResult`, carries the pairs, MatchIt's weights, the balance
diagnostics (:mod:`esi.balance`) and the sample-size table.

The matched sets equal R's ``MatchIt::matchit(method = "nearest")`` on the same data frame,
ties broken by row position as MatchIt breaks them (checked on ``lalonde`` in two row orders,
propensity and Mahalanobis matching, tests/test_matching_reference.py). The greedy search
finds every treated unit's nearest control with numpy at the start of a round and walks
"next unused control" pointers only for the units whose first choice an earlier unit took;
it gives the same pairs as the plain one-unit-at-a-time loop, which is kept as
``_greedy_reference`` and compared with it in tests/test_matching_speed.py. A million-row
registry matches, model fit included, in about a second (benchmarks/matching.py).
Mahalanobis matching compares every treated unit with every control of its stratum (in
blocks): meant for study-sized cohorts (tens of thousands of units at most).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from esi.balance import balance_table
from esi.propensity import DISTANCES, PropensityModel, design_matrix, fit_propensity

__all__ = ["match", "MatchResult", "METHODS", "ORDERS", "DISCARDS", "MATCH_DISTANCES"]

ORDERS = ("largest", "smallest", "random", "data")
#: Distances of :func:`match`: the propensity score's logit or probability
#: (:data:`esi.propensity.DISTANCES`), or the Mahalanobis distance on the covariates.
MATCH_DISTANCES = (*DISTANCES, "mahalanobis")
DISCARDS = ("none", "treated", "control", "both")
_ESTIMANDS = ("ATT", "ATC")
_MISSING = ("error", "drop")
#: Largest cost matrix (rows x columns) that method="optimal" builds.
OPTIMAL_MAX_CELLS = 25_000_000
_STR = pd.api.types.pandas_dtype("str")  # the dtype pandas gives an array of Python strings


@dataclass(frozen=True)
class MatchResult:
    """The outcome of :func:`match`.

    Attributes
    ----------
    pairs : DataFrame
        One row per matched control (per matched treated unit for ``estimand="ATC"``), ordered
        by ``subclass`` then by match round. Columns: ``treated`` and ``control`` (patient
        ids), ``subclass`` (int, 1..number of matched focal units, numbered in row order, as
        MatchIt's ``subclass``), ``distance_gap`` (the distance matched on within the pair:
        the absolute difference of the two units' propensity distances, on the scale used;
        the Mahalanobis distance for Mahalanobis matching, as MatchIt's
        ``mahalanobis_dist()`` gives it).
    distance : Series
        The propensity distance of every unit (propensity or its logit; MatchIt's
        ``distance``), indexed by patient id; NaN for ``distance="mahalanobis"``, which has
        no propensity score.
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
        The fitted propensity model (None when the distance was supplied, and for
        ``distance="mahalanobis"``).
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
            Put the propensity distance first, as a row named ``distance`` (as MatchIt does;
            there is none with ``distance="mahalanobis"``).

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
        if include_distance and self.params["distance"] != "mahalanobis":
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


def _column_list(value, name):
    """None, a column name or a list of names, as a list (checked)."""
    if value is None:
        return []
    cols = [value] if isinstance(value, str) else value
    if not isinstance(cols, list | tuple) or not all(isinstance(c, str) for c in cols):
        raise ValueError(f"{name} must be a column name or a list of column names, got {value!r}")
    return list(cols)


def _check_args(method, distance, mahvars, ratio, caliper, std_caliper, replace, order, discard,
                estimand, missing, random_state):
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
    if not isinstance(distance, pd.Series) and distance not in MATCH_DISTANCES:
        raise ValueError(
            f"distance must be one of {MATCH_DISTANCES} or a Series of distances, got "
            f"{distance!r}"
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
    if order is not None and order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS} or None, got {order!r}")
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
    full = isinstance(distance, str) and distance == "mahalanobis"
    if full or mahvars:
        what = "distance='mahalanobis'" if full else "mahvars"
        if method != "nearest":
            raise ValueError(f"{what} is available with method='nearest' only, got "
                             f"method={method!r}")
    if full:
        if mahvars:
            raise ValueError("distance='mahalanobis' matches on the covariates; mahvars is for "
                             "Mahalanobis matching within a propensity-score caliper (give "
                             "distance='logit' or 'propensity' with it)")
        if caliper is not None:
            raise ValueError(
                "caliper is a width on the propensity score, and distance='mahalanobis' has "
                "none (as in MatchIt): pass caliper=None, or match on mahvars with "
                "distance='logit' or 'propensity' for Mahalanobis matching within a "
                "propensity-score caliper"
            )
        if discard != "none":
            raise ValueError("discard needs a propensity score; with distance='mahalanobis' "
                             "use discard='none'")
        if order in ("largest", "smallest"):
            raise ValueError(f"order={order!r} orders by the propensity score, which "
                             "distance='mahalanobis' does not have; use 'data' or 'random'")


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


def _sort_by_distance_then_rank(d, rank):
    """Row positions sorted by distance, equal distances by ``rank`` (in :func:`match`: the
    row position, as R's stable ``order()``).

    The same permutation as ``np.lexsort((rank, d))``: an unstable sort of the distances
    (several times faster than a stable or lexicographic one), after which only the runs of
    equal distances, if any, are put in rank order.
    """
    order = np.argsort(d)
    sd = d[order]
    tied = sd[1:] == sd[:-1]
    if tied.any():
        in_run = np.zeros(d.size, dtype=bool)
        in_run[1:] |= tied
        in_run[:-1] |= tied
        slots = np.flatnonzero(in_run)  # whole runs of equal distance, in increasing distance
        units = order[slots]
        order[slots] = units[np.lexsort((rank[units], d[units]))]
    return order


def _focal_order(d, foc, rank, order, rng):
    """The focal units ``foc`` (ascending row positions) in matching order.

    "largest"/"smallest": by decreasing/increasing distance, ties by ``rank`` (MatchIt:
    R's stable ``order(distance, decreasing = ...)``); "random": a permutation drawn from
    ``rng``; "data": as given (MatchIt's ``which(!discarded[treat == focal])``).
    """
    if order == "largest":
        return foc[np.lexsort((rank[foc], -d[foc]))]
    if order == "smallest":
        return foc[np.lexsort((rank[foc], d[foc]))]
    if order == "random":
        foc = foc[np.argsort(rank[foc], kind="stable")]
        return foc[rng.permutation(foc.size)]
    return foc


def _nearest_setup(d, focal, eligible, strata, rank, order, rng, plain=False):
    """Sorted positions, the eligible controls and focal units, and each focal unit's search range.

    Returns ``pos`` (every unit's place in the distance order), ``ctrl`` (eligible controls
    sorted by stratum then position), ``foc`` (eligible focal units in matching order), and
    for each focal unit ``ins`` (first control at or after it), ``lo``/``hi`` (its stratum's
    block of ``ctrl``). ``rank`` breaks ties in the distance (:func:`match` passes the row
    position: MatchIt's stable ``order()``). ``plain=True`` sorts by the straightforward
    (slower) lexicographic sorts, for the reference search.
    """
    n = d.size
    # Global sorted position: distance ascending, ties by rank (the row position in match()).
    if plain:
        sorted_units = np.lexsort((rank, d))
    else:
        sorted_units = _sort_by_distance_then_rank(d, rank)
    pos = np.empty(n, dtype=np.int64)
    pos[sorted_units] = np.arange(n)
    stratum = np.zeros(n, dtype=np.int64) if strata is None else strata.astype(np.int64)

    # Controls eligible for matching, sorted by (stratum, position): one contiguous block each.
    if plain:
        ctrl = np.flatnonzero(~focal & eligible)
        ctrl = ctrl[np.argsort(stratum[ctrl] * (n + 1) + pos[ctrl], kind="stable")]
    else:
        ctrl = sorted_units[(~focal & eligible)[sorted_units]]  # by position
        if strata is not None:
            ctrl = ctrl[np.argsort(stratum[ctrl], kind="stable")]
    ckey = stratum[ctrl] * (n + 1) + pos[ctrl]

    # Focal units to process, in matching order.
    foc = _focal_order(d, np.flatnonzero(focal & eligible), rank, order, rng)

    fkey = stratum[foc] * (n + 1) + pos[foc]
    ins = np.searchsorted(ckey, fkey)  # first control at or after the focal unit's position
    lo = np.searchsorted(ckey, stratum[foc] * (n + 1))  # stratum block start
    hi = np.searchsorted(ckey, (stratum[foc] + 1) * (n + 1))  # stratum block end
    return pos, ctrl, foc, ins, lo, hi


def _match_nearest_arrays(d, focal, eligible, strata, rank, ratio, replace, caliper, order,
                          rng, reference=False):
    """Greedy nearest-neighbour matching; arrays of focal unit, control unit and round.

    Every index is a row position. ``focal`` marks the units that receive matches (treated
    for ATT). See :func:`match` for the rules; this follows MatchIt's ``nn_matchC_vec``.
    ``reference=True``: the straightforward sorts and loop (:func:`_greedy_reference`).
    """
    pos, ctrl, foc, ins, lo, hi = _nearest_setup(d, focal, eligible, strata, rank, order, rng,
                                                 plain=reference)
    cal = np.inf if caliper is None else float(caliper)
    if replace:
        return _nearest_with_replacement(d, pos, ctrl, foc, ins, lo, hi, ratio, cal)
    if ctrl.size == 0 or foc.size == 0:
        return _as_arrays([])
    greedy = _greedy_reference if reference else _greedy_fast
    return greedy(d, pos, ctrl, foc, ins, lo, hi, ratio, cal)


def _as_arrays(found):
    """(focal, control, round) tuples as three int64 arrays."""
    if not found:
        return tuple(np.empty(0, dtype=np.int64) for _ in range(3))
    f, c, r = (np.array(col, dtype=np.int64) for col in zip(*found, strict=True))
    return f, c, r


def _match_nearest(d, focal, eligible, strata, rank, ratio, replace, caliper, order, rng):
    """Return a list of (focal unit, control unit, round), by round then matching order.

    Every index is a row position. ``focal`` marks the units that receive matches (treated
    for ATT). See :func:`match` for the rules; this follows MatchIt's ``nn_matchC_vec``.
    """
    f, c, r = _match_nearest_arrays(d, focal, eligible, strata, rank, ratio, replace,
                                    caliper, order, rng)
    return list(zip(f.tolist(), c.tolist(), r.tolist(), strict=True))


def _match_nearest_reference(d, focal, eligible, strata, rank, ratio, replace, caliper,
                             order, rng):
    """As :func:`_match_nearest`, by plain sorts and the one-unit-at-a-time loop (for tests)."""
    f, c, r = _match_nearest_arrays(d, focal, eligible, strata, rank, ratio, replace,
                                    caliper, order, rng, reference=True)
    return list(zip(f.tolist(), c.tolist(), r.tolist(), strict=True))


def _greedy_reference(d, pos, ctrl, foc, ins, lo, hi, ratio, cal):
    """MatchIt's greedy rounds, one focal unit at a time: the straightforward reference.

    Returns (focal, control, round) arrays in the order the matches are made.
    """
    m = ctrl.size
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
    return _as_arrays(matches)




def _greedy_fast(d, pos, ctrl, foc, ins, lo, hi, ratio, cal):
    """MatchIt's greedy rounds, with the same result as :func:`_greedy_reference`, faster.

    At the start of a round every focal unit still in play gets a *proposal*: the control it
    would take if it came first, found for all units at once with numpy (nearest unused
    control on each side, the caliper, the left/right tie rule). Taking away other controls
    never changes a unit's choice while its proposal is still unused: the proposal stays the
    nearest on its side, and the nearest on the other side can only move further away (an
    equal or larger gap, reached later). So, walking the units in matching order, a unit
    whose proposal is still unused takes it (one dict look-up); only a unit whose proposal an
    earlier unit took in this round runs the reference search (about one unit in eight on a
    dense registry). A unit without a proposal has no control within the caliper and drops
    out, as it would when its turn came. Returns (focal, control, round) arrays, by round
    then matching order.
    """
    m = ctrl.size
    cpos = pos[ctrl]
    cd = d[ctrl]
    cd_at, cpos_at = cd.item, cpos.item
    dfoc = d[foc]
    # "Next unused" pointers with path compression, as in _greedy_reference, holding only the
    # used slots: nxt[j] (j used) leads towards the smallest unused slot > j (m: none), prv[j + 1]
    # towards the largest unused slot < j, shifted by one (0: none).
    nxt: dict[int, int] = {}
    prv: dict[int, int] = {}
    unused = np.ones(m, dtype=bool)
    left_edge = pos[foc]  # search starts (MatchIt's iil / iir)
    right_edge = left_edge.copy()
    act = np.arange(foc.size)  # units still in play, in matching order
    inf = float("inf")
    out_f, out_c, out_r = [], [], []
    for r in range(1, ratio + 1):
        free = np.flatnonzero(unused)
        if act.size == 0 or free.size == 0:
            break
        # Proposals: nearest unused control on the right (jr) and on the left (jl).
        i = np.searchsorted(free, ins[act])
        free_ext = np.append(free, m)
        jr = free_ext[i]
        jl = np.where(i > 0, free_ext[i - 1], -1)
        dt = dfoc[act]
        jr_c, jl_c = np.minimum(jr, m - 1), np.maximum(jl, 0)
        ok_r = jr < hi[act]
        gr = np.where(ok_r, cd[jr_c] - dt, inf)
        ok_r &= ~(gr > cal)
        gr[~ok_r] = inf
        ok_l = jl >= lo[act]
        gl = np.where(ok_l, dt - cd[jl_c], inf)
        ok_l &= ~(gl > cal)
        gl[~ok_l] = inf
        reach_l = left_edge[act] - cpos[jl_c]
        reach_r = cpos[jr_c] - right_edge[act]
        take_l = ok_l & (~ok_r | (gl < gr) | ((gl == gr) & (reach_l <= reach_r)))
        prop = np.where(take_l, jl, np.where(ok_r, jr, -1))
        act = act[prop >= 0]  # no control within the caliper: out from now on
        prop = prop[prop >= 0]

        chosen = prop.tolist()
        dt_l, ins_l = dfoc[act].tolist(), ins[act].tolist()
        lo_l, hi_l = lo[act].tolist(), hi[act].tolist()
        le_l, re_l = left_edge[act].tolist(), right_edge[act].tolist()
        for idx, j in enumerate(chosen):
            if j not in nxt:  # proposal still unused: it is the unit's choice
                nxt[j] = j + 1
                prv[j + 1] = j
                continue
            # The reference search (see _greedy_reference), for this unit only.
            dt_k = dt_l[idx]
            j = ins_l[idx]
            root = j
            while root in nxt:
                root = nxt[root]
            while j != root:
                nxt[j], j = root, nxt[j]
            if root < hi_l[idx]:
                jr_k = root
                gr_k = cd_at(jr_k) - dt_k
                if gr_k > cal:
                    jr_k, gr_k = -1, inf
            else:
                jr_k, gr_k = -1, inf
            j = ins_l[idx]
            root = j
            while root in prv:
                root = prv[root]
            while j != root:
                prv[j], j = root, prv[j]
            if root > lo_l[idx]:
                jl_k = root - 1
                gl_k = dt_k - cd_at(jl_k)
                if gl_k > cal:
                    jl_k, gl_k = -1, inf
            else:
                jl_k, gl_k = -1, inf
            if jl_k < 0 and jr_k < 0:
                chosen[idx] = -1
                continue
            if jr_k < 0 or (jl_k >= 0 and (gl_k < gr_k or (
                    gl_k == gr_k and le_l[idx] - cpos_at(jl_k) <= cpos_at(jr_k) - re_l[idx]))):
                j = jl_k
            else:
                j = jr_k
            nxt[j] = j + 1
            prv[j + 1] = j
            chosen[idx] = j

        got = np.array(chosen, dtype=np.int64)
        act = act[got >= 0]  # a unit left without a control gets no further ones
        got = got[got >= 0]
        unused[got] = False
        cp = cpos[got]
        left_edge[act] = np.minimum(left_edge[act], cp)
        right_edge[act] = np.maximum(right_edge[act], cp)
        out_f.append(foc[act])
        out_c.append(ctrl[got])
        out_r.append(np.full(act.size, r, dtype=np.int64))
    if not out_f:
        return _as_arrays([])
    return np.concatenate(out_f), np.concatenate(out_c), np.concatenate(out_r)


def _nearest_with_replacement(d, pos, ctrl, foc, ins, lo, hi, ratio, cal):
    """k nearest controls of every focal unit, controls reusable (vectorised); as arrays."""
    if ctrl.size == 0 or foc.size == 0:
        return _as_arrays([])
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
    return foc[fi], chosen[fi, ri], (ri + 1).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Mahalanobis distance matching (MatchIt's distance = "mahalanobis" and mahvars)

#: MatchIt 4.7.2 ``transform_covariates()``: the pooled covariance is inverted with ``solve``
#: when its determinant exceeds this, else by its generalised inverse.
_MAH_DET_MIN = 1e-8
#: MatchIt's ``generalized_inverse(sigma, tol = 1e-8)``: singular values at or below this
#: fraction of the largest are dropped.
_MAH_GINV_TOL = 1e-8
#: Cells of the (focal x control) block of squared distances computed at once.
_MAH_BLOCK_CELLS = 2**21


def _jacobi_eigen(a: list[list[float]]) -> tuple[list[float], list[list[float]]]:
    """Eigenvalues and eigenvectors of a small symmetric matrix by cyclic Jacobi rotations.

    Plain Python floats: the same bits on every CPU (a LAPACK call takes the kernels that
    OpenBLAS picks for the processor, and matching decisions compare the distances built on
    this). Returns ``(values, vectors)`` with eigenvector ``k`` in ``vectors[i][k]``.
    """
    n = len(a)
    a = [list(map(float, row)) for row in a]
    v = [[1.0 if i == j else 0.0 for j in range(n)] for i in range(n)]
    for _ in range(100):
        off = sum(a[i][j] * a[i][j] for i in range(n) for j in range(i + 1, n))
        scale = sum(a[i][i] * a[i][i] for i in range(n))
        if off == 0.0 or off <= 1e-36 * scale:
            break
        for p in range(n - 1):
            for q in range(p + 1, n):
                apq = a[p][q]
                if apq == 0.0:
                    continue
                theta = (a[q][q] - a[p][p]) / (2.0 * apq)
                if abs(theta) > 1e150:
                    t = 0.5 / theta
                else:
                    t = (1.0 if theta >= 0 else -1.0) / (abs(theta) + math.sqrt(theta * theta + 1.0))
                c = 1.0 / math.sqrt(t * t + 1.0)
                s = t * c
                for k in range(n):  # columns p and q
                    akp, akq = a[k][p], a[k][q]
                    a[k][p], a[k][q] = c * akp - s * akq, s * akp + c * akq
                for k in range(n):  # rows p and q
                    apk, aqk = a[p][k], a[q][k]
                    a[p][k], a[q][k] = c * apk - s * aqk, s * apk + c * aqk
                for k in range(n):
                    vkp, vkq = v[k][p], v[k][q]
                    v[k][p], v[k][q] = c * vkp - s * vkq, s * vkp + c * vkq
    return [a[i][i] for i in range(n)], v


def _mahalanobis_space(x: np.ndarray, treated: np.ndarray, use: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates whose Euclidean distance is MatchIt's Mahalanobis distance, and its search key.

    Parameters
    ----------
    x : ndarray, n x p
        The Mahalanobis variables' design columns (every level of a categorical variable).
    treated : ndarray of bool
        Treatment of every unit.
    use : ndarray of bool
        Units not discarded: the covariance is taken over them.

    Returns
    -------
    z : ndarray, n x r
        Coordinates: ``|z_i - z_j|`` is the Mahalanobis distance of units i and j.
    key : ndarray
        The first column of MatchIt's own coordinates (``mahalanobize()``'s pivoted Cholesky
        factor), by which MatchIt orders its search: among controls at exactly the same
        distance (identical covariates) it keeps the one its search reaches last.

    Notes
    -----
    As MatchIt 4.7.2 ``transform_covariates(method = "mahalanobis")``: every column is
    centred and scaled by its mean and SD over all units (R's ``scale()``); the covariance
    is the pooled within-group covariance of the retained units (``pooled_cov()``: deviations
    from the group means, divided by ``n - 2``), inverted by ``solve`` when its determinant
    exceeds 1e-8, else by the generalised inverse (singular values above 1e-8 times the
    largest kept), as when all levels of a categorical variable enter (their dummies sum to
    one). The small matrices are handled in plain Python floats and the coordinates by
    element-wise numpy operations, so the same data give the same bits on every CPU.
    """
    n, p = x.shape
    xs = np.empty((n, p))
    for j in range(p):
        col = x[:, j] - x[:, j].mean()
        xs[:, j] = col / math.sqrt(float(np.sum(col * col)) / max(1, n - 1))
    groups = [g for g in (treated & use, ~treated & use) if g.any()]
    dev = np.empty((int(use.sum()), p))
    for j in range(p):
        dev[:, j] = np.concatenate([xs[g, j] - xs[g, j].mean() for g in groups])
    denom = dev.shape[0] - len(groups)
    if denom < 1:
        raise ValueError("Mahalanobis matching needs at least three retained units")
    cov = [[float(np.sum(dev[:, j] * dev[:, k])) / denom for k in range(p)] for j in range(p)]
    values, vectors = _jacobi_eigen(cov)
    det = math.prod(values)
    largest = max(abs(v) for v in values)
    if det > _MAH_DET_MIN and min(values) > 0:
        keep = list(range(p))
    else:
        keep = [i for i in range(p) if abs(values[i]) > _MAH_GINV_TOL * largest]
    if not keep or any(values[i] <= 0 for i in keep):
        raise ValueError("the Mahalanobis variables' covariance is not positive semi-definite")
    inv = [[sum(vectors[j][i] * vectors[k][i] / values[i] for i in keep) for k in range(p)]
           for j in range(p)]
    z = np.zeros((n, len(keep)))
    for col, i in enumerate(keep):
        root = math.sqrt(values[i])
        for j in range(p):
            z[:, col] += xs[:, j] * (vectors[j][i] / root)
    diag = [inv[j][j] for j in range(p)]
    first = diag.index(max(diag))  # LAPACK dpstrf's first pivot: the largest diagonal
    key = np.zeros(n)
    for j in range(p):
        key += xs[:, j] * (inv[first][j] / math.sqrt(inv[first][first]))
    return z, key


def _squared_distances(zf: np.ndarray, zc: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances, rows ``zf`` by rows ``zc``, summed coordinate by
    coordinate (element-wise, as MatchIt's ``euc_dist_sq``; no BLAS)."""
    out = (zf[:, 0, None] - zc[None, :, 0]) ** 2
    for i in range(1, zf.shape[1]):
        out += (zf[:, i, None] - zc[None, :, i]) ** 2
    return out


def _match_mahalanobis(z, key, d, focal, eligible, strata, rank, ratio, replace, caliper, order,
                       rng):
    """Greedy nearest-neighbour matching on the Mahalanobis distance, MatchIt's
    ``nn_matchC_mahcovs()``; (focal, control, round) arrays of row positions.

    ``z``/``key`` from :func:`_mahalanobis_space`; ``d`` the propensity distance that orders
    the focal units ("largest"/"smallest") and carries the ``caliper`` (None for full
    Mahalanobis matching, which has neither). Each focal unit takes the control (in its
    ``exact`` stratum, within the caliper) at the least Mahalanobis distance. MatchIt
    searches outwards from the focal unit through all units sorted by ``key`` (ties by row:
    ``rank``), alternately one step left and one step right, and of controls at exactly the
    same distance keeps the one reached last: the farthest in that order, the right one at
    equal steps. Without replacement in ``ratio`` greedy rounds (as the propensity search);
    with replacement the ``ratio`` nearest in that order.
    """
    n = z.shape[0]
    stratum = np.zeros(n, dtype=np.int64) if strata is None else strata.astype(np.int64)
    by_key = np.lexsort((rank, key, stratum))  # MatchIt sorts each exact stratum apart
    pos = np.empty(n, dtype=np.int64)
    pos[by_key] = np.arange(n)
    foc_all = _focal_order(d if d is not None else key, np.flatnonzero(focal & eligible), rank,
                           order, rng)
    cal = np.inf if caliper is None else float(caliper)
    out_f, out_c, out_r = [], [], []
    for s in np.unique(stratum[foc_all]) if foc_all.size else []:
        foc = foc_all[stratum[foc_all] == s]
        ctl = np.flatnonzero(~focal & eligible & (stratum == s))
        if ctl.size == 0:
            continue
        zc, pc = z[ctl], pos[ctl]
        dc = None if d is None else d[ctl]
        block = max(1, _MAH_BLOCK_CELLS // ctl.size)

        def distances(units, usable=None, zc=zc, pc=pc, dc=dc):
            """Squared distances of ``units`` to the stratum's controls (inf: not a
            candidate) and each control's place in the search order (larger: reached later)."""
            dist = _squared_distances(z[units], zc)
            if usable is not None:
                dist[:, ~usable] = np.inf
            if dc is not None and caliper is not None:
                dist[np.abs(d[units][:, None] - dc[None, :]) > cal] = np.inf
            pf = pos[units][:, None]
            reached = np.where(pc[None, :] < pf, 2 * (pf - pc[None, :]) - 1,
                               2 * (pc[None, :] - pf))
            return dist, reached

        if replace:
            for start in range(0, foc.size, block):
                units = foc[start:start + block]
                dist, reached = distances(units)
                best = np.lexsort((-reached, dist), axis=1)[:, :ratio]
                rows = np.arange(units.size)[:, None]
                ok = np.isfinite(dist[rows, best])
                fi, ri = np.nonzero(ok)
                out_f.append(units[fi])
                out_c.append(ctl[best[fi, ri]])
                out_r.append(ri + 1)
            continue

        unused = np.ones(ctl.size, dtype=bool)
        active = foc
        for r in range(1, ratio + 1):
            if active.size == 0 or not unused.any():
                break
            # Proposals: each unit's choice if it came first in this round. Taking other
            # controls away cannot change it (a strict order: distance, then search order),
            # so a unit whose proposal is still unused takes it; only a unit whose proposal
            # an earlier unit took searches again.
            prop = np.empty(active.size, dtype=np.int64)
            for start in range(0, active.size, block):
                dist, reached = distances(active[start:start + block], unused)
                prop[start:start + block] = _best_candidate(dist, reached)
            got = np.full(active.size, -1, dtype=np.int64)
            for i, j in enumerate(prop.tolist()):
                if j < 0:
                    continue
                if not unused[j]:
                    if not unused.any():
                        break
                    dist, reached = distances(active[i:i + 1], unused)
                    j = int(_best_candidate(dist, reached)[0])
                    if j < 0:
                        continue
                unused[j] = False
                got[i] = j
            active = active[got >= 0]  # a unit without a control gets no further ones
            got = got[got >= 0]
            out_f.append(active)
            out_c.append(ctl[got])
            out_r.append(np.full(active.size, r, dtype=np.int64))
    if not out_f:
        return _as_arrays([])
    return (np.concatenate(out_f).astype(np.int64), np.concatenate(out_c).astype(np.int64),
            np.concatenate(out_r).astype(np.int64))


def _squared_pair_distances(z: np.ndarray, f_idx: np.ndarray, c_idx: np.ndarray) -> np.ndarray:
    """Squared distance of each pair, summed as :func:`_squared_distances` sums it."""
    if f_idx.size == 0:
        return np.empty(0)
    out = (z[f_idx, 0] - z[c_idx, 0]) ** 2
    for i in range(1, z.shape[1]):
        out += (z[f_idx, i] - z[c_idx, i]) ** 2
    return out


def _best_candidate(dist: np.ndarray, reached: np.ndarray) -> np.ndarray:
    """Column of each row's least distance, of equal ones the one reached last; -1: none."""
    least = dist.min(axis=1)
    score = np.where(dist == least[:, None], reached, -1)
    return np.where(np.isfinite(least), score.argmax(axis=1), -1)


# --------------------------------------------------------------------------------------------
# Optimal matching


def _match_optimal(d, focal, eligible, strata, rank, ratio, replace, caliper, order, rng):
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
        foc = foc[np.argsort(rank[foc], kind="stable")]
        ctl = ctl[np.argsort(rank[ctl], kind="stable")]
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
        from scipy.optimize import linear_sum_assignment  # only here: 0.3 s to import

        ri, ci = linear_sum_assignment(cost)
        keep = ci < ctl.size
        ri, ci = ri[keep], ci[keep]
        got = pd.DataFrame({"t": rows[ri], "c": ctl[ci], "g": gap[ri, ci], "p": rank[ctl[ci]]})
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
    k = np.bincount(pairs_f, minlength=n)  # matches per focal unit
    w[k > 0] = 1.0
    np.add.at(w, pairs_c, 1.0 / k[pairs_f])
    for g in (treated, ~treated):  # .make_sum_to_n by treatment group over w > 0
        pos = g & (w > 0)
        if pos.any():
            w[pos] = pos.sum() * w[pos] / w[pos].sum()
    return w


def _exact_strata(data: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Stratum code of every row: its ``columns`` values as text, joined by "\x1f", factorised.

    Built column by column (a row-wise ``agg`` takes tens of seconds on 200,000 rows).
    """
    parts = data[columns].astype(str)
    key = parts.iloc[:, 0].to_numpy(dtype=object)
    for j in range(1, len(columns)):
        key = key + "\x1f" + parts.iloc[:, j].to_numpy(dtype=object)
    return pd.factorize(key, sort=True)[0]


def _strictly_increasing(ids: pd.Index) -> bool:
    """Whether the patient ids are unique and in increasing order (cheap for string ids)."""
    if isinstance(ids, pd.MultiIndex) or ids.dtype == object:
        return bool(ids.is_monotonic_increasing and ids.is_unique)
    if ids.size < 2:
        return True
    if ids.hasnans:
        return False
    values = ids.array
    try:
        return bool(np.all(np.asarray(values[1:] > values[:-1], dtype=bool)))
    except (TypeError, ValueError):
        return False


def _id_argsort(ids: pd.Index) -> np.ndarray:
    """Positions that sort the (unique) patient ids."""
    if ids.dtype == _STR and not ids.hasnans:
        return ids.argsort()  # the string array's own sort: same order, several times faster
    return np.argsort(ids.to_numpy(), kind="stable")


def _take_ids(ids: pd.Index, rows: np.ndarray):
    """The ids at ``rows`` as a column of the dtype that an object array of them would get."""
    if ids.dtype == _STR:
        return ids.array.take(rows)
    return ids.to_numpy()[rows]


# --------------------------------------------------------------------------------------------
# Public entry point


def match(
    data: pd.DataFrame,
    treatment: str,
    covariates: Sequence[str],
    *,
    method: str = "nearest",
    distance: str | pd.Series = "logit",
    mahvars: str | Sequence[str] | None = None,
    ratio: int = 1,
    caliper: float | None = 0.2,
    std_caliper: bool = True,
    replace: bool = False,
    order: str | None = None,
    exact: str | Sequence[str] | None = None,
    discard: str = "none",
    estimand: str = "ATT",
    missing: str = "error",
    random_state: int | np.random.Generator | None = None,
) -> MatchResult:
    """Propensity-score or Mahalanobis matching of treated (1) to control (0) units, as R's
    MatchIt does it.

    Parameters
    ----------
    data : DataFrame
        One row per patient, indexed by (unique) patient id. The row order breaks ties, as in
        MatchIt (see Notes): put the rows in a canonical order first if the result must not
        depend on how the data were exported (the pipeline sorts them by patient id).
    treatment : str
        0/1 or boolean column; 1 = treated (near-normal imaging case).
    covariates : list of str
        Propensity-model covariates (with ``distance="mahalanobis"``: the Mahalanobis
        variables). Categorical columns are dummy-coded with the first level (sorted, or the
        first category) as reference, as R's ``model.matrix`` does.
    method : {"nearest", "optimal"}, default "nearest"
        "nearest": greedy nearest neighbour (MatchIt ``method = "nearest"``). "optimal": the
        least total distance gap, each treated unit getting ``ratio`` controls, solved by
        ``scipy.optimize.linear_sum_assignment``; it honours ``caliper`` and ``exact`` (pairs
        outside are forbidden; the solution matches as many slots as possible, then minimises
        the total gap). MatchIt's optimal (optmatch) ignores calipers. ``order`` does not apply;
        Mahalanobis matching is not available with it.
    distance : {"logit", "propensity", "mahalanobis"} or Series, default "logit"
        "logit"/"propensity": the scale of the propensity score, the linear predictor of the
        logistic model (MatchIt ``link = "linear.logit"``, Austin's recommendation) or the
        fitted probability (MatchIt's default). The model is an unpenalised logistic
        regression (:func:`esi.propensity.fit_propensity`). A Series (indexed by patient id)
        is used as the distance as it is, with no model (MatchIt: a numeric ``distance``
        vector). "mahalanobis": no propensity score; units are matched on the Mahalanobis
        distance of ``covariates`` (MatchIt ``distance = "mahalanobis"``; see Notes); then
        ``caliper`` must be None, ``discard`` "none" and ``order`` "data" or "random".
    mahvars : str or list of str, optional
        Mahalanobis matching within a propensity-score caliper (MatchIt ``mahvars``): the
        propensity score (``distance``, fitted on ``covariates``) orders the treated units and
        carries the caliper; each treated unit takes the control nearest on the Mahalanobis
        distance of these columns among those inside the caliper.
    ratio : int, default 1
        Controls per treated unit (1:k).
    caliper : float or None, default 0.2
        Largest allowed propensity-distance gap within a pair (``|gap| <= width``); None for
        no caliper.
    std_caliper : bool, default True
        True: ``caliper`` is in standard deviations of the distance, the SD (n - 1) taken over
        all non-discarded units of both groups (MatchIt: ``sd(distance[!discarded])``).
        False: in distance units.
    replace : bool, default False
        Let a control serve several treated units.
    order : {"largest", "smallest", "random", "data"}, optional
        Order in which treated units pick their controls (greedy matching without
        replacement): by decreasing or increasing propensity distance (ties by row), in a
        random order drawn from ``random_state``, or in row order. Irrelevant with
        replacement. Default as MatchIt's ``m.order``: "largest" ("smallest" for
        ``estimand="ATC"``), "data" for ``distance="mahalanobis"``.
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
        Missing values in the treatment, covariates, mahvars or exact columns: raise, naming
        the rows and columns, or drop those rows and report their ids in
        ``MatchResult.dropped``.
    random_state : int or numpy.random.Generator, optional
        Seed for ``order="random"`` (required there, unused otherwise).

    Returns
    -------
    MatchResult
        Pairs, distance, weights, unmatched/discarded/dropped ids, parameters and the model.

    Raises
    ------
    ValueError
        Unknown argument values or combinations MatchIt refuses (see ``distance``); a missing
        or non-binary treatment column; no treated or no control units; covariates, mahvars or
        exact columns not in ``data``; duplicated patient ids; missing values (with
        ``missing="error"``); a constant, collinear or perfectly separating covariate
        (named); fewer eligible controls than ``ratio`` x treated units without replacement.

    Notes
    -----
    Rules, each as in MatchIt 4.7.2 ``matchit2nearest()`` / ``nn_matchC_vec()`` /
    ``nn_matchC_mahcovs()``:

    - **Greedy rounds.** Without replacement, treated units are visited in ``order``; each
      takes the nearest unused control (in the same ``exact`` stratum) whose gap is within
      the caliper. With ``ratio = k`` this repeats in ``k`` rounds, so every treated unit gets
      its first control before any gets a second. A treated unit with no control inside the
      caliper in a round gets no further controls (in round 1: stays unmatched).
    - **With replacement** each treated unit takes its ``k`` nearest controls within the
      caliper, independently of the others.
    - **Ties, by row position.** The search walks the units sorted by distance; units with
      equal distance are in row order (R's stable ``order()``). From the treated unit's place
      the search looks alternately one step left (smaller distance) and one step right; of
      two candidates at the same gap (compared in floating point, as MatchIt does: a unit
      midway between two candidates in exact arithmetic is a tie that rounding may break)
      the one reached first wins, the left one if equally far. For ``order``
      "largest"/"smallest", treated units of equal distance are visited in row order. So
      on the same data frame esi and MatchIt give the same pairs in any row order, and a
      reordered data frame may give other (equally near) controls where distances tie.
      With replacement and ``ratio > 1`` the ``k`` controls of a unit are listed by gap, ties
      in the order reached; MatchIt's unstable ``std::partial_sort`` may list exactly tied
      controls in another order (same matched set on ``lalonde``).
    - **Mahalanobis distance** (``distance="mahalanobis"`` on ``covariates``, or
      ``mahvars``): every level of a categorical variable enters as a 0/1 column; columns are
      standardised over all units; the covariance is the pooled within-group covariance of the
      non-discarded units, inverted, or (determinant at most 1e-8, e.g. all levels of a
      categorical variable) replaced by its generalised inverse (:func:`_mahalanobis_space`).
      MatchIt searches from the treated unit outwards through the units sorted by the first of
      its transformed coordinates and, of controls at exactly the same distance (identical
      covariates), keeps the one reached last; esi gives the same choice. A single
      Mahalanobis column is matched as a propensity distance would be (as MatchIt does).
    - **Subclasses** number the matched treated units 1, 2, ... in row order (as MatchIt,
      which has none with replacement).
    - **Weights**: see :class:`MatchResult`.
    - **Caliper width** is ``caliper * sd(distance over non-discarded units)`` when
      ``std_caliper``; computed after ``discard``.

    Checked against R MatchIt 4.7.2 on ``lalonde`` in its own row order and sorted by id
    (tests/test_matching_reference.py: propensity matching with and without caliper, ratio 2,
    replacement, every ``order``, exact, discard, ATC; Mahalanobis matching 1:1, 1:2, with
    replacement, and within a propensity caliper with and without a categorical variable in
    ``mahvars``): identical pairs and weights, distances within 1e-6.
    """
    mahvars = _column_list(mahvars, "mahvars")
    _check_args(method, distance, mahvars, ratio, caliper, std_caliper, replace, order, discard,
                estimand, missing, random_state)
    full_mahalanobis = isinstance(distance, str) and distance == "mahalanobis"
    if order is None:
        order = "data" if full_mahalanobis else ("smallest" if estimand == "ATC" else "largest")
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    if not covariates:
        raise ValueError("covariates must name at least one column")
    exact_cols = _column_list(exact, "exact")
    if treatment not in data.columns:
        raise ValueError(f"treatment column {treatment!r} not found in data")
    absent = [c for c in dict.fromkeys(covariates + mahvars + exact_cols)
              if c not in data.columns]
    if absent:
        raise ValueError(f"columns not found in data: {absent}")
    if treatment in covariates + mahvars:
        raise ValueError(f"treatment column {treatment!r} is also listed as a covariate")
    ids_sorted = _strictly_increasing(data.index)  # then also unique
    if not ids_sorted and data.index.has_duplicates:
        dup = data.index[data.index.duplicated()].unique()
        raise ValueError(f"patient ids (the index) must be unique; duplicated: {list(dup[:10])}")

    used_cols = list(dict.fromkeys([treatment, *covariates, *mahvars, *exact_cols]))
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
    n = t.size

    model = None
    if full_mahalanobis:
        dist_series = pd.Series(np.full(n, np.nan), index=data.index, name="distance")
    elif isinstance(distance, pd.Series):
        user = distance.reindex(data.index)
        if user.isna().any():
            raise ValueError(
                f"distance Series has no finite value for {int(user.isna().sum())} units, e.g. "
                f"{list(data.index[user.isna().to_numpy()][:5])}"
            )
        dist_series = user.astype(float).rename("distance")
    else:
        # Fit on the rows sorted by patient id: floating-point sums then do not depend on the
        # row order, so neither do the distances.
        fit_data = data[[treatment, *covariates]]
        if ids_sorted:
            model = fit_propensity(fit_data, treatment, covariates, distance=distance)
            dist_series = model.distance.copy(deep=False)
        else:
            by_id = _id_argsort(data.index)
            model = fit_propensity(fit_data.iloc[by_id], treatment, covariates,
                                   distance=distance)
            values = np.empty(n)
            values[by_id] = model.distance.to_numpy()
            dist_series = pd.Series(values, index=data.index, name="distance")
    d = dist_series.to_numpy(dtype=float)

    discarded = np.zeros(n, dtype=bool) if full_mahalanobis else _discard(d, treated, discard)
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
        strata = _exact_strata(data, exact_cols)
    rank = np.arange(n, dtype=np.int64)  # ties by row position, as MatchIt
    rng = (random_state if isinstance(random_state, np.random.Generator)
           else np.random.default_rng(random_state))

    mah_cols = covariates if full_mahalanobis else mahvars
    z = None
    if mah_cols:
        x = design_matrix(data, mah_cols, all_levels=True).to_numpy(dtype=float)
        z, key = _mahalanobis_space(x, treated, ~discarded)
        if full_mahalanobis and x.shape[1] == 1:
            # one variable: MatchIt matches on its transformed value as on a distance
            d, z = key, None
    if z is not None:
        f_idx, c_idx, rnd = _match_mahalanobis(
            z, key, None if full_mahalanobis else d, focal, ~discarded, strata, rank, ratio,
            replace, width, order, rng)
        gap = np.sqrt(_squared_pair_distances(z, f_idx, c_idx))
    else:
        args = (d, focal, ~discarded, strata, rank, ratio, replace, width, order, rng)
        if method == "nearest":
            f_idx, c_idx, rnd = _match_nearest_arrays(*args)
        else:
            f_idx, c_idx, rnd = _as_arrays(METHODS[method](*args))
        gap = np.abs(d[f_idx] - d[c_idx])

    weights = _weights(n, focal, f_idx, c_idx, treated)
    # subclass: matched focal units numbered in row order (MatchIt's mm2subclass)
    matched_focal = np.flatnonzero(np.bincount(f_idx, minlength=n))
    sub_of = np.zeros(n, dtype=np.int64)
    sub_of[matched_focal] = np.arange(1, matched_focal.size + 1)
    ids = data.index
    # rows by subclass, then round
    row_order = np.lexsort((rnd, sub_of[f_idx]))
    f_idx, c_idx, gap = f_idx[row_order], c_idx[row_order], gap[row_order]
    t_idx, k_idx = (f_idx, c_idx) if estimand == "ATT" else (c_idx, f_idx)
    pairs = pd.DataFrame(
        {
            "treated": _take_ids(ids, t_idx),
            "control": _take_ids(ids, k_idx),
            "subclass": sub_of[f_idx],
            "distance_gap": gap,
        }
    )

    params = {
        "treatment": treatment,
        "covariates": list(covariates),
        "method": method,
        "distance": distance if isinstance(distance, str) else "user",
        "mahvars": list(mahvars),
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
    bal_cols = list(dict.fromkeys([*covariates, *mahvars, *exact_cols]))
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
