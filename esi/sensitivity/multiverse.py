"""Multiverse (specification curve): every defensible analysis of the same registry.

Each *specification* is one combination of the analyst's choices: covariate set, distance
(propensity or logit; available beside them: Mahalanobis matching on the covariate set,
"mahalanobis", and Mahalanobis matching on the covariate set within the caliper on the logit
of the propensity score, "ps_caliper_mahalanobis"), matching method (nearest, optimal), ratio
(1, 2, 3), caliper (none, 0.1, 0.2, 0.5 SD of the distance), matching with or without
replacement, missing-data rule and test. For each, :func:`multiverse` reports the matched sample size, the largest absolute
standardised mean difference after matching, and the estimate, 1 - alpha confidence interval
and P-value of the primary outcome (leg-pain reduction) and of the composite positive
outcome. :func:`run_multiverse` writes the table as ``multiverse.csv`` (``esi multiverse``).

Choices that cannot be combined are left out of the grid, never silently changed:
``method="optimal"`` with ``replace=True`` (not defined); Mahalanobis matching with
``method="optimal"`` (esi's optimal matching is on the propensity score); "mahalanobis" with a
caliper (there is no propensity score to put it on, as in MatchIt) and
"ps_caliper_mahalanobis" without one (it is defined by its caliper). The binary test follows the
analysis design and is listed in every row: McNemar's exact test for a paired test of 1:1
pairs, Fisher's exact test otherwise (McNemar needs one control per case). ``missing="mice"``
is not in the default grid (it multiplies every analysis by the number of imputations); it
raises ``ValueError`` if requested.

Speed
-----
Matching is done once per matching specification (covariate set x distance x method x ratio
x caliper x replacement) and shared by the missing rules and tests; outcomes are derived once
per missing rule. The propensity model is fitted once per covariate set and scale, and each
matching runs :data:`esi.matching.METHODS` on arrays prepared once (the steps that
:func:`esi.matching.match` takes with a given distance, without rebuilding its tables each
time; a test checks equal pairs and weights); a matching that ``match`` would refuse is handed
to ``match`` itself, which reports why. The comparisons use the same observations and formulas as
:func:`esi.compare.compare_matched` (a test checks equality) but compute only the estimate,
interval and P-value with numpy/scipy, because the general-purpose ``esi.stats`` functions
(3-35 ms each with their effect sizes and intervals) would take minutes over thousands of
specifications. A pool of ``workers`` processes shares the matching specifications when the
grid is large enough to repay starting them; results do not depend on the number of workers.
"""

from __future__ import annotations

import itertools
import multiprocessing
import time
import traceback
from collections.abc import Mapping, Sequence
from multiprocessing import connection as mp_connection
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from esi import stats as st
from esi.balance import smd
from esi.io import atomic_write
from esi.matching import METHODS, _weights, match
from esi.outcomes import apply_missing_rule, derive_outcomes
from esi.params import DEFAULTS, MULTIVERSE_GRID, MULTIVERSE_PARAMS
from esi.propensity import design_matrix

__all__ = [
    "DEFAULT_COVARIATE_SETS",
    "DEFAULT_GRID",
    "DISTANCES",
    "MULTIVERSE_COLUMNS",
    "MULTIVERSE_PARAMS",
    "multiverse_from_params",
    "binary_test_for",
    "specification_grid",
    "multiverse",
    "run_multiverse",
]

#: The documented covariate sets of the multiverse (run parameter
#: ``multiverse_covariate_sets`` overrides them).
DEFAULT_COVARIATE_SETS: dict[str, list[str]] = {
    # the default analysis (params/default.yaml)
    "default": list(DEFAULTS["covariates"]),
    # who the patient is
    "demographic": ["age", "sex", "bmi"],
    # how bad the pain is and how long it has lasted
    "clinical": ["baseline_leg_pain", "baseline_back_pain", "baseline_odi",
                 "pain_duration_months", "opioid_use"],
    # the default plus social factors known to predict ESI outcomes
    "extended": [*DEFAULTS["covariates"], "smoking", "employment"],
}

#: The other dimensions of the default grid (run parameters ``multiverse_<name>``).
DEFAULT_GRID: dict[str, tuple] = MULTIVERSE_GRID

_MATCH_KEYS = ("covariate_set", "distance", "method", "ratio", "caliper", "replace")
#: Distances of the multiverse: the propensity score on either scale (the default grid), and
#: Mahalanobis matching on the covariate set (:func:`esi.matching.match` with
#: ``distance="mahalanobis"``) or on the covariate set within the caliper on the logit of the
#: propensity score (``distance="logit"`` with ``mahvars`` = the covariate set).
DISTANCES = ("propensity", "logit", "mahalanobis", "ps_caliper_mahalanobis")
_MAHALANOBIS = ("mahalanobis", "ps_caliper_mahalanobis")
_PAIRED = ("paired_t", "wilcoxon")
_MISSING_OK = ("complete_case", "locf", "bocf")

#: Columns of :func:`multiverse` / ``multiverse.csv``.
MULTIVERSE_COLUMNS = [
    "spec_id", "covariate_set", "distance", "method", "ratio", "caliper", "replace",
    "missing", "test", "binary_test", "timepoint_weeks", "n_cases_matched",
    "n_controls_matched", "n_matched", "max_abs_smd",
    "primary_outcome", "primary_n_cases", "primary_n_controls", "primary_estimate",
    "primary_ci_low", "primary_ci_high", "primary_p_value",
    "positive_outcome", "positive_n_cases", "positive_n_controls", "positive_events_cases",
    "positive_events_controls", "positive_estimate", "positive_ci_low", "positive_ci_high",
    "positive_p_value", "status",
]


def binary_test_for(test: str, ratio: int) -> str:
    """The binary test paired with a continuous ``test``: McNemar for paired 1:1, else Fisher."""
    return "mcnemar" if test in _PAIRED and ratio == 1 else "fisher"


def specification_grid(covariate_sets: Mapping[str, Sequence[str]] | None = None,
                       **dimensions: Sequence[Any]) -> pd.DataFrame:
    """Every valid combination of the analytic choices.

    Parameters
    ----------
    covariate_sets
        Name -> covariate list; default :data:`DEFAULT_COVARIATE_SETS`.
    **dimensions
        Values for ``distance``, ``method``, ``ratio``, ``caliper``, ``replace``, ``missing``
        and ``test`` replacing those of :data:`DEFAULT_GRID`; ``distance`` from
        :data:`DISTANCES`.

    Returns
    -------
    pandas.DataFrame
        One row per specification: ``spec_id`` (0, 1, ...), ``covariate_set``, ``covariates``
        (``;``-joined), ``distance``, ``method``, ``ratio``, ``caliper`` (NaN = none),
        ``replace``, ``missing``, ``test``, ``binary_test``. Optimal matching with
        replacement or on a Mahalanobis distance, "mahalanobis" with a caliper and
        "ps_caliper_mahalanobis" without one are left out.

    Raises
    ------
    ValueError
        For an unknown dimension, an empty one, an unknown distance, or ``missing="mice"``.
    """
    sets = dict(DEFAULT_COVARIATE_SETS if covariate_sets is None else covariate_sets)
    if not sets or any(not list(v) for v in sets.values()):
        raise ValueError("covariate_sets: give at least one non-empty covariate set")
    unknown = sorted(set(dimensions) - set(DEFAULT_GRID))
    if unknown:
        raise ValueError(f"dimensions: unknown {', '.join(unknown)}; known: "
                         f"{', '.join(DEFAULT_GRID)}")
    grid = {**DEFAULT_GRID, **{k: tuple(v) for k, v in dimensions.items()}}
    for name, values in grid.items():
        if not values:
            raise ValueError(f"{name}: give at least one value")
    unknown = [d for d in grid["distance"] if d not in DISTANCES]
    if unknown:
        raise ValueError(f"distance: {unknown} unknown; choose from {', '.join(DISTANCES)}")
    bad = [m for m in grid["missing"] if m not in _MISSING_OK]
    if bad:
        raise ValueError(f"missing: {bad} not available in the multiverse (use one of "
                         f"{', '.join(_MISSING_OK)}; 'mice' would repeat every analysis per "
                         "imputation)")
    rows = []
    for name, dist, method, ratio, caliper, replace, missing, test in itertools.product(
            sets, grid["distance"], grid["method"], grid["ratio"], grid["caliper"],
            grid["replace"], grid["missing"], grid["test"]):
        if method == "optimal" and (replace or dist in _MAHALANOBIS):
            continue
        if (dist == "mahalanobis") != (caliper is None) and dist in _MAHALANOBIS:
            continue  # mahalanobis: no caliper; ps_caliper_mahalanobis: a caliper
        rows.append({"covariate_set": name, "covariates": ";".join(sets[name]),
                     "distance": dist, "method": method, "ratio": int(ratio),
                     "caliper": np.nan if caliper is None else float(caliper),
                     "replace": bool(replace), "missing": missing, "test": test,
                     "binary_test": binary_test_for(test, int(ratio))})
    out = pd.DataFrame(rows)
    out.insert(0, "spec_id", np.arange(len(out)))
    return out


# --------------------------------------------------------------------------- fast comparisons
def _t_ppf(q: float, df: float) -> float:
    """``scipy.stats.t.ppf(q, df)`` for 0 < q < 1 without its argument handling: the same
    ``scipy.special.stdtrit`` call that ``t.ppf`` makes (identical values, tested)."""
    return float(special.stdtrit(df, q))


def _t_sf(x: float, df: float) -> float:
    """``scipy.stats.t.sf(x, df)`` through the ``scipy.special.stdtr`` call it makes."""
    return float(special.stdtr(df, -x))


def _two_sample_se_df(x: np.ndarray, y: np.ndarray, test: str) -> tuple[float, float]:
    """Standard error and degrees of freedom of the mean difference: pooled variance
    (``"student"``) or Welch-Satterthwaite (``"welch"``; df NaN when both variances are 0)."""
    n1, n2 = x.size, y.size
    v1, v2 = x.var(ddof=1), y.var(ddof=1)
    if test == "student":
        df = n1 + n2 - 2
        return np.sqrt(((n1 - 1) * v1 + (n2 - 1) * v2) / df * (1 / n1 + 1 / n2)), df
    a, b = v1 / n1, v2 / n2
    se = np.sqrt(a + b)
    return se, (a + b) ** 2 / (a**2 / (n1 - 1) + b**2 / (n2 - 1)) if se > 0 else np.nan


def _mean_difference(x: np.ndarray, y: np.ndarray, test: str, alpha: float
                     ) -> tuple[float, float, float]:
    """Mean difference and its t interval, as esi.stats.mean_difference for ``test``."""
    if test in _PAIRED:
        d = x - y
        n = d.size
        if n < 2:
            return float(d.mean()) if n else np.nan, np.nan, np.nan
        se, df, est = d.std(ddof=1) / np.sqrt(n), n - 1, d.mean()
    else:
        if x.size < 2 or y.size < 2:
            return np.nan, np.nan, np.nan
        est = x.mean() - y.mean()
        se, df = _two_sample_se_df(x, y, test)
    if not se > 0:
        return float(est), np.nan, np.nan
    q = _t_ppf(1 - alpha / 2, df) * se
    return float(est), float(est - q), float(est + q)


def _continuous_p(x: np.ndarray, y: np.ndarray, test: str, mean_ci) -> float:
    """Two-sided P-value with R's conventions (as esi.stats)."""
    est, lo, hi = mean_ci
    if test in ("welch", "student", "paired_t"):
        if not np.isfinite(lo):
            return np.nan
        # the t statistic from the interval: est / se, df implied by the interval's quantile
        if test == "paired_t":
            d = x - y
            t, df = d.mean() / (d.std(ddof=1) / np.sqrt(d.size)), d.size - 1
        else:
            se, df = _two_sample_se_df(x, y, test)
            t = est / se
        return float(2 * _t_sf(abs(t), df))
    if test == "mann_whitney":
        if x.size == 0 or y.size == 0:
            return np.nan
        ties = np.unique(np.r_[x, y]).size < x.size + y.size
        exact = x.size < 50 and y.size < 50 and not ties
        return float(stats.mannwhitneyu(x, y, alternative="two-sided", use_continuity=True,
                                        method="exact" if exact else "asymptotic").pvalue)
    d = x - y
    zeros = bool(np.any(d == 0))
    d = d[d != 0]
    n = d.size
    if n == 0:
        return np.nan
    ties = np.unique(np.abs(d)).size < n
    if n < 50 and not ties and not zeros:
        return float(stats.wilcoxon(d, alternative="two-sided", method="exact").pvalue)
    ranks = stats.rankdata(np.abs(d))
    v = ranks[d > 0].sum()
    _, counts = np.unique(ranks, return_counts=True)
    z = v - n * (n + 1) / 4.0
    sigma = np.sqrt(n * (n + 1) * (2 * n + 1) / 24.0 - np.sum(counts**3 - counts) / 48.0)
    if not sigma > 0:
        return np.nan
    z = (z - np.sign(z) * 0.5) / sigma
    return float(min(1.0, 2 * min(stats.norm.cdf(z), stats.norm.sf(z))))


def _binary(case_events: np.ndarray, control_events: np.ndarray, test: str, alpha: float,
            paired: np.ndarray | None) -> tuple[float, float, float, float]:
    """Risk difference (Newcombe interval) and P-value, as esi.compare for ``test``."""
    conf = 1 - alpha
    if test == "mcnemar":
        a_case, a_ctrl = paired[:, 0] > 0.5, paired[:, 1] > 0.5
        table = [[int(np.sum(a_case & a_ctrl)), int(np.sum(a_case & ~a_ctrl))],
                 [int(np.sum(~a_case & a_ctrl)), int(np.sum(~a_case & ~a_ctrl))]]
        rd = st.paired_risk_difference(table, confidence=conf)
        b, c = table[0][1], table[1][0]
        p = float(stats.binomtest(b, b + c).pvalue) if b + c > 0 else 1.0
        return rd.estimate, rd.ci_low, rd.ci_high, p
    n1, n2 = case_events.size, control_events.size
    ev1, ev2 = int(case_events.sum()), int(control_events.sum())
    if n1 == 0 or n2 == 0:
        return np.nan, np.nan, np.nan, np.nan
    rd = st.risk_difference(ev1, n1, ev2, n2, confidence=conf)
    table = np.array([[ev1, n1 - ev1], [ev2, n2 - ev2]])
    p = float(stats.fisher_exact(table).pvalue)
    return rd.estimate, rd.ci_low, rd.ci_high, min(p, 1.0)


# --------------------------------------------------------------------------- worker
_SHARED: dict[str, Any] = {}
# Results memoised on their exact inputs (per process, emptied by _init_worker): many
# specifications share a matched set or the same counts, and a memoised result is the very
# value the computation returns, so the table does not depend on what was computed before.
_MEMO: dict[tuple, Any] = {}


def _init_worker(shared: dict[str, Any]) -> None:
    _SHARED.clear()
    _SHARED.update(shared)
    _MEMO.clear()


def _max_abs_smd(covariate_set: str, weights: np.ndarray, t: np.ndarray, x: np.ndarray
                 ) -> float:
    """Largest absolute SMD over the design columns ``x`` of ``covariate_set`` (its complete
    cases, rows as ``weights`` and ``t``)."""
    key = ("smd", covariate_set, weights.size, weights.tobytes(), t.tobytes())
    if key in _MEMO:
        return _MEMO[key]
    values = [abs(smd(x[:, j], t, weights)) for j in range(x.shape[1])]
    found = float(np.nanmax(values)) if values else np.nan
    _MEMO[key] = found
    return found


def _prepared(name: str, scale: str) -> dict[str, Any] | None:
    """Arrays of one covariate set and distance scale for :func:`_fast_match` (built once per
    process), or None when the propensity fit failed (``match`` then fits and reports)."""
    key = ("prepared", name, scale)
    if key in _MEMO:
        return _MEMO[key]
    fitted = _SHARED["distances"].get((name, scale))
    prep = None
    if fitted is not None and _SHARED["by_rank"] is not None:
        # the distance is indexed by the complete-case patients (their id ranks) in registry
        # order: the rows match() keeps with missing="drop", in its order
        codes = fitted.index.to_numpy(np.int64)
        d = fitted.to_numpy(dtype=float)
        t = _SHARED["treated"][(name, scale)].to_numpy()
        id_rank = np.empty(codes.size, dtype=np.int64)
        id_rank[np.argsort(codes, kind="stable")] = np.arange(codes.size)
        design = _SHARED["designs"][name]
        prep = {"d": d, "t": t, "treated": t == 1, "id_rank": id_rank,
                "positions": _SHARED["by_rank"][codes],
                "sd": float(np.std(d, ddof=1)),
                "x": design.reindex(fitted.index).to_numpy(float)}
    _MEMO[key] = prep
    return prep


def _fast_match(key: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                    np.ndarray] | None:
    """The matching of ``match(data, treatment, covariates, distance=<fitted Series>, ...,
    missing="drop")`` from prepared arrays: the same steps on the same values (complete
    cases, caliper width ``caliper * sd(distance)``, :data:`esi.matching.METHODS` with order
    "largest", MatchIt's weights, pairs by subclass then round).

    Returns the registry positions of the pairs' cases and controls, the weights, the
    treatment (0/1) and the design rows of the complete cases; None when ``match`` has to do
    it (no fitted distance, an argument it refuses, too few controls): it then raises the
    error the table reports.
    """
    if key["distance"] in _MAHALANOBIS:
        return None  # Mahalanobis matching: through match() itself
    prep = _prepared(key["covariate_set"], key["distance"])
    method, ratio, replace = key["method"], key["ratio"], key["replace"]
    caliper = None if pd.isna(key["caliper"]) else key["caliper"]
    if (prep is None or method not in METHODS or (method == "optimal" and replace)
            or isinstance(ratio, bool) or not isinstance(ratio, int | np.integer) or ratio < 1
            or not isinstance(replace, bool | np.bool_)
            or (caliper is not None and (isinstance(caliper, bool)
                                         or not isinstance(caliper, int | float | np.number)
                                         or not np.isfinite(caliper) or caliper <= 0))):
        return None
    d, treated, id_rank = prep["d"], prep["treated"], prep["id_rank"]
    n = d.size
    if not replace and int((~treated).sum()) < ratio * int(treated.sum()):
        return None
    width = None if caliper is None else float(caliper) * prep["sd"]
    # id_rank: the row positions of match() (the registry is in id order), its tie rank
    found = METHODS[method](d, treated, np.ones(n, dtype=bool), None, id_rank, int(ratio),
                            bool(replace), width, "largest", None)
    if found:
        f_idx, c_idx, rnd = (np.array(col, dtype=np.int64) for col in zip(*found, strict=True))
    else:
        f_idx = c_idx = rnd = np.empty(0, dtype=np.int64)
    weights = _weights(n, treated, f_idx, c_idx, treated)
    # pairs as match() lists them: by subclass (matched cases in id order), then round
    matched = np.flatnonzero(np.bincount(f_idx, minlength=n))
    matched = matched[np.argsort(id_rank[matched], kind="stable")]
    sub_of = np.zeros(n, dtype=np.int64)
    sub_of[matched] = np.arange(1, matched.size + 1)
    row_order = np.lexsort((rnd, sub_of[f_idx]))
    positions = prep["positions"]
    return (positions[f_idx[row_order]], positions[c_idx[row_order]], weights, prep["t"],
            prep["x"])


def _continuous(x: np.ndarray, y: np.ndarray, test: str, alpha: float
                ) -> tuple[float, float, float, float]:
    """Estimate, interval and P-value of a continuous outcome, memoised on the exact values."""
    key = ("continuous", test, alpha, x.tobytes(), y.tobytes())
    found = _MEMO.get(key)
    if found is None:
        mean_ci = _mean_difference(x, y, test, alpha)
        found = _MEMO[key] = (*mean_ci, _continuous_p(x, y, test, mean_ci))
    return found


def _binary_memo(x: np.ndarray, y: np.ndarray, test: str, alpha: float, paired: bool
                 ) -> tuple[float, float, float, float]:
    """:func:`_binary` memoised on what it depends on: the counts (Fisher) or the 2 x 2
    table of pairs (McNemar)."""
    if test == "mcnemar":
        a_case, a_ctrl = x > 0.5, y > 0.5
        counts = (int(np.sum(a_case & a_ctrl)), int(np.sum(a_case & ~a_ctrl)),
                  int(np.sum(~a_case & a_ctrl)), int(np.sum(~a_case & ~a_ctrl)))
    else:
        counts = (int(x.sum()), x.size, int(y.sum()), y.size)
    key = ("binary", test, alpha, counts)
    found = _MEMO.get(key)
    if found is None:
        found = _MEMO[key] = _binary(x, y, test, alpha, np.c_[x, y] if paired else None)
    return found


def _outcome_arrays(cases: tuple[np.ndarray, np.ndarray], pos_c: np.ndarray,
                    values: np.ndarray, paired: bool) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Case and control values of one outcome in a matched sample; positions index the
    registry, ``cases`` is ``np.unique(pos_t, return_inverse=True)`` of the cases' positions.
    Paired: each case against the mean of its matched controls."""
    uniq, codes = cases
    case_pos = uniq  # each case once (order does not matter to the statistics)
    if paired:
        ctrl = values[pos_c]
        known = np.isfinite(ctrl)
        n_ctrl = np.bincount(codes, weights=known, minlength=uniq.size)
        sums = np.bincount(codes, weights=np.where(known, ctrl, 0.0), minlength=uniq.size)
        with np.errstate(invalid="ignore", divide="ignore"):
            ctrl_mean = sums / n_ctrl
        case = values[case_pos]
        keep = np.isfinite(case) & (n_ctrl > 0)
        return case[keep], ctrl_mean[keep], int(keep.sum()), int(n_ctrl[keep].sum())
    x, y = values[case_pos], values[pos_c]
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    return x, y, x.size, y.size


def _analyse(pos_t: np.ndarray, pos_c: np.ndarray, spec: dict, alpha: float,
             arrays: dict[tuple, tuple]) -> dict[str, Any]:
    """Primary and positive outcome of one specification; positions index the registry.

    ``arrays`` caches :func:`_outcome_arrays` and the positive outcome's columns (which
    depend on the missing rule and the binary test only) for the specifications of one
    matched sample.
    """
    rule, test, binary_test = spec["missing"], spec["test"], spec["binary_test"]
    if "cases" not in arrays:
        arrays["cases"] = np.unique(pos_t, return_inverse=True)
    out: dict[str, Any] = {}
    for prefix in ("primary", "positive"):
        okey = ("columns", rule, binary_test)
        if prefix == "positive" and okey in arrays:
            out.update(arrays[okey])
            continue
        column = _SHARED[prefix]
        paired = test in _PAIRED if prefix == "primary" else binary_test == "mcnemar"
        akey = (rule, column, paired)
        if akey not in arrays:
            arrays[akey] = _outcome_arrays(arrays["cases"], pos_c,
                                           _SHARED["outcomes"][rule][column], paired)
        x, y, n_cases, n_controls = arrays[akey]
        if prefix == "primary":
            found = _continuous(x, y, test, alpha)
        else:
            found = _binary_memo(x, y, binary_test, alpha, paired)
        columns = {f"{prefix}_outcome": column, f"{prefix}_n_cases": n_cases,
                   f"{prefix}_n_controls": n_controls, f"{prefix}_estimate": found[0],
                   f"{prefix}_ci_low": found[1], f"{prefix}_ci_high": found[2],
                   f"{prefix}_p_value": found[3]}
        if prefix == "positive":  # the event counts: the disclosure control needs them
            columns[f"{prefix}_events_cases"] = int(round(float(np.sum(x))))
            columns[f"{prefix}_events_controls"] = int(round(float(np.sum(y))))
            arrays[okey] = columns
        out.update(columns)
    return out


def _run_group(task: tuple[dict, list[dict]]) -> list[dict]:
    key, specs = task
    name = key["covariate_set"]
    base = {"n_cases_matched": 0, "n_controls_matched": 0, "n_matched": 0,
            "max_abs_smd": np.nan}
    try:
        found = _fast_match(key)
        if found is None:
            found = _slow_match(key)
    except ValueError as err:
        return [{**spec, **base, "status": f"matching failed: {err}"} for spec in specs]
    pos_t, pos_c, weights, t, x = found
    n_cases, n_controls = np.unique(pos_t).size, np.unique(pos_c).size
    base = {"n_cases_matched": n_cases, "n_controls_matched": n_controls,
            "n_matched": n_cases + n_controls,
            "max_abs_smd": _max_abs_smd(name, weights, t, x) if n_cases else np.nan}
    rows = []
    arrays: dict[tuple, tuple] = {}
    for spec in specs:
        if n_cases == 0:
            rows.append({**spec, **base, "status": "no case matched"})
            continue
        try:
            found = _analyse(pos_t, pos_c, spec, _SHARED["alpha"], arrays)
            rows.append({**spec, **base, **found, "status": "ok"})
        except ValueError as err:
            rows.append({**spec, **base, "status": f"analysis failed: {err}"})
    return rows


def _slow_match(key: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                    np.ndarray]:
    """:func:`_fast_match`'s result through :func:`esi.matching.match` itself (which raises
    ``ValueError`` for a matching it refuses)."""
    name = key["covariate_set"]
    data = _SHARED["frames"][name]
    covariates = _SHARED["covariate_sets"][name]
    caliper = None if pd.isna(key["caliper"]) else float(key["caliper"])
    # The propensity model depends only on the covariate set and the scale: fitted once in
    # multiverse() and passed as the distance (match() takes the caliper's SD from it
    # exactly as from its own fit). None: that fit failed; match() then fits and reports.
    # "ps_caliper_mahalanobis": Mahalanobis matching on the covariates within the caliper on
    # the logit of the propensity score (fitted in multiverse() as for "logit").
    mahvars = covariates if key["distance"] == "ps_caliper_mahalanobis" else None
    distance = _SHARED["distances"].get((name, key["distance"]))
    if distance is None:
        distance = "logit" if mahvars else key["distance"]
    result = match(data, _SHARED["treatment"], covariates, method=key["method"],
                   distance=distance, mahvars=mahvars, ratio=int(key["ratio"]),
                   caliper=caliper, replace=bool(key["replace"]), missing="drop")
    # the pairs name patients by id rank (see multiverse()); positions index the registry
    pairs, by_rank = result.pairs, _SHARED["by_rank"]
    pos_t = by_rank[pairs["treated"].to_numpy(np.int64)]
    pos_c = by_rank[pairs["control"].to_numpy(np.int64)]
    index = result.treatment.index
    x = _SHARED["designs"][name].reindex(index).to_numpy(float)
    return (pos_t, pos_c, result.weights.reindex(index).to_numpy(float),
            result.treatment.to_numpy(), x)


# --------------------------------------------------------------------------- driver
def _claim(state, back: bool) -> int | None:
    """Take the next chunk from the front (this process) or the back (a worker)."""
    with state.get_lock():
        lo, hi = state[0], state[1]
        if lo > hi:
            return None
        if back:
            state[1] = hi - 1
            return hi
        state[0] = lo + 1
        return lo


def _worker(shared: dict[str, Any], chunks: list, state, conn) -> None:
    """A spawned worker of :func:`_run_shared`: run chunks from the back, send the rows."""
    try:
        _init_worker(shared)
        done = {}
        while (i := _claim(state, back=True)) is not None:
            done[i] = [_run_group(task) for task in chunks[i]]
        conn.send(("ok", done))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


#: Seconds that a spawned worker needs before it takes work (importing numpy, pandas, scipy
#: and esi on a busy machine): :func:`_run_shared` starts workers only when this process
#: has more work left than that.
WORKER_START_SECONDS = 2.0


def _run_shared(tasks: list, shared: dict[str, Any], workers: int) -> list[list[dict]]:
    """Run ``tasks`` in this process and up to ``workers - 1`` spawned ones, in order of
    ``tasks``.

    This process takes chunks of tasks from the front, the workers from the back, until they
    meet; this process needs no start-up while a spawned worker needs a second or two to
    import. So the workers are started only once this process, timing its own chunks,
    expects to need more than :data:`WORKER_START_SECONDS` for the rest (a small grid is
    done before a worker could help, and starting one would only slow this process down).
    Workers that have taken nothing when the chunks run out are stopped. Who runs a task
    does not change its rows.
    """
    size = max(1, min(4, len(tasks) // (8 * workers)))
    chunks = [tasks[i:i + size] for i in range(0, len(tasks), size)]
    context = multiprocessing.get_context("spawn")
    state = context.Array("q", [0, len(chunks) - 1])
    procs, conns = [], []

    def start_workers() -> None:
        for _ in range(workers - 1):
            receive, send = context.Pipe(duplex=False)
            proc = context.Process(target=_worker, args=(shared, chunks, state, send),
                                   daemon=True)
            proc.start()
            send.close()
            procs.append(proc)
            conns.append(receive)

    try:
        done: dict[int, list[list[dict]]] = {}
        begun = time.perf_counter()
        while (i := _claim(state, back=False)) is not None:
            done[i] = [_run_group(task) for task in chunks[i]]
            if not procs:
                with state.get_lock():
                    left = state[1] - state[0] + 1
                per_chunk = (time.perf_counter() - begun) / len(done)
                if left > 0 and per_chunk * left > WORKER_START_SECONDS:
                    start_workers()
        waiting = list(conns)
        while len(done) < len(chunks):
            if not waiting:
                raise RuntimeError("multiverse: a worker stopped without returning its rows")
            for conn in mp_connection.wait(waiting):
                waiting.remove(conn)
                try:
                    status, found = conn.recv()
                except EOFError:
                    raise RuntimeError("multiverse: a worker stopped without returning its "
                                       "rows") from None
                if status != "ok":
                    raise RuntimeError(f"multiverse: a worker failed:\n{found}")
                done.update(found)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()  # took nothing (still starting) or no longer needed
            proc.join()
        for conn in conns:
            conn.close()
    return [rows for i in range(len(chunks)) for rows in done[i]]


def _fitted_distance(data: pd.DataFrame, treatment: str, covariates: list[str], scale: Any
                     ) -> tuple[pd.Series, pd.Series] | None:
    """The distance that :func:`esi.matching.match` fits for ``covariates`` on ``scale``
    (``MatchResult.distance``: every complete-case patient) and its 0/1 treatment
    (``MatchResult.treatment``, the same patients), or None when it cannot be fitted (each
    matching then fits it itself and reports why it failed)."""
    try:
        # with replacement and no caliper: the cheapest matching, nothing can fail but the fit
        result = match(data, treatment, covariates, method="nearest", distance=scale, ratio=1,
                       caliper=None, replace=True, missing="drop")
    except (ValueError, TypeError):
        return None
    return result.distance, result.treatment


def multiverse(registry: pd.DataFrame, specs: pd.DataFrame | None = None, *,
               covariate_sets: Mapping[str, Sequence[str]] | None = None,
               treatment: str = "near_normal", timepoint: int = 4,
               success_threshold: float = 2.0, alpha: float = 0.05, workers: int = 1
               ) -> pd.DataFrame:
    """Run every specification on one registry.

    Parameters
    ----------
    registry
        The eligible cohort, one row per patient indexed by ``patient_id``, with the
        treatment column (``Cohort.eligible`` of :func:`esi.cohort.define_cohort`), the
        covariates and the follow-up columns.
    specs
        From :func:`specification_grid` (default: the whole default grid, over
        ``covariate_sets``).
    covariate_sets
        Name -> covariate list for the names in ``specs["covariate_set"]``; default
        :data:`DEFAULT_COVARIATE_SETS`.
    treatment
        0/1 treatment column (1 = near-normal imaging case).
    timepoint
        Follow-up week of the two outcomes (4 or 12): ``leg_pain_reduction_{t}w`` and
        ``positive_outcome_{t}w``.
    success_threshold
        Leg-pain decrease for the positive outcome (run parameter).
    alpha
        Intervals are at 1 - alpha.
    workers
        Processes working on it at most, this one included (1 = this process alone; 2 = this
        one and one spawned worker, started only if the grid leaves more than
        :data:`WORKER_START_SECONDS` of work after the first chunks). The result does not
        depend on it.

    Returns
    -------
    pandas.DataFrame
        One row per specification, sorted by ``spec_id``, columns
        :data:`MULTIVERSE_COLUMNS`: the choices; ``timepoint_weeks``; ``n_cases_matched``,
        ``n_controls_matched`` (distinct patients), ``n_matched`` (their sum);
        ``max_abs_smd`` (largest absolute SMD after matching over the covariate terms, every
        level of a categorical one, binary terms as differences in proportions, the
        denominator from the unmatched sample: :func:`esi.balance.smd`); for the primary
        (``leg_pain_reduction``) and the positive outcome: the column name, the cases and
        controls used (for the positive outcome also ``positive_events_cases`` and
        ``positive_events_controls``, how many of them had it), ``estimate`` (mean difference / risk difference, cases minus
        controls), ``ci_low``, ``ci_high`` and the two-sided ``p_value``; ``status`` (``"ok"``
        or why a specification has no result, e.g. matching failed). ``attrs`` holds
        ``seconds`` and ``workers``.

    Notes
    -----
    Each row equals :func:`esi.compare.compare_matched` with the same match, test,
    ``binary_test`` and missing rule (tests/test_sensitivity_multiverse.py); the comparisons
    are checked against R there. Matching is deterministic (greedy order "largest").
    """
    start = time.perf_counter()
    sets = dict(DEFAULT_COVARIATE_SETS if covariate_sets is None else covariate_sets)
    specs = specification_grid(sets) if specs is None else specs
    missing_sets = sorted(set(specs["covariate_set"]) - set(sets))
    if missing_sets:
        raise ValueError(f"covariate_sets: no covariates given for {', '.join(missing_sets)}")
    if timepoint not in (4, 12):
        raise ValueError(f"timepoint: must be 4 or 12 (weeks), got {timepoint!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: must be between 0 and 1, got {alpha!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: must be a whole number >= 1, got {workers!r}")
    bad = sorted(set(specs["missing"]) - set(_MISSING_OK))
    if bad:
        raise ValueError(f"specs: missing rule(s) {bad} not available in the multiverse")
    if treatment not in registry.columns:
        raise ValueError(f"treatment: {treatment!r} is not a column of registry")
    registry = registry.copy()
    registry.index = registry.index.astype(str)
    # the canonical order, by patient id: match() breaks ties by row (as MatchIt), and the
    # table must not depend on the export's row order
    registry = registry.sort_index(kind="stable")
    used_sets = {name: list(sets[name]) for name in pd.unique(specs["covariate_set"])}
    designs = {}
    for name, covariates in used_sets.items():
        absent = [c for c in covariates if c not in registry.columns]
        if absent:
            raise ValueError(f"covariate_sets: {name!r} names columns not in registry: {absent}")
        complete = registry[covariates].dropna()
        designs[name] = design_matrix(complete, covariates, all_levels=True)
    primary, positive = f"leg_pain_reduction_{timepoint}w", f"positive_outcome_{timepoint}w"
    outcomes = {}
    for rule in pd.unique(specs["missing"]):
        derived = derive_outcomes(apply_missing_rule(registry, rule),
                                  success_threshold=success_threshold)
        derived.index = derived.index.astype(str)
        derived = derived.reindex(registry.index)
        outcomes[rule] = {primary: derived[primary].to_numpy(float, na_value=np.nan),
                          positive: derived[positive].astype("Float64").to_numpy(
                              float, na_value=np.nan)}
    # match() reads only the treatment and the covariates: give it just those columns. It
    # breaks ties by row, here patient-id order (the registry was sorted above), and reports
    # ids in the pairs; the ids are replaced by their ranks in that order (same rows, same
    # pairs, cheaper indexing), and the pairs' ranks are turned into registry positions by
    # ``by_rank``.
    frames = {name: registry[list(dict.fromkeys([treatment, *covariates]))]
              for name, covariates in used_sets.items()}
    distances, treated = {}, {}
    for name, scale in dict.fromkeys(zip(specs["covariate_set"], specs["distance"],
                                         strict=True)):
        if scale == "mahalanobis":  # no propensity score
            distances[(name, scale)], treated[(name, scale)] = None, None
            continue
        fit_scale = "logit" if scale == "ps_caliper_mahalanobis" else scale
        fitted = _fitted_distance(frames[name], treatment, used_sets[name], fit_scale)
        distances[(name, scale)], treated[(name, scale)] = fitted or (None, None)
    by_rank = None
    if registry.index.is_unique:  # else every matching fails, as match() reports
        by_rank = np.argsort(registry.index.to_numpy(), kind="stable")
        rank = np.empty(by_rank.size, dtype=np.int64)
        rank[by_rank] = np.arange(by_rank.size)
        ranks = pd.Index(rank, name=registry.index.name)

        def coded(obj):
            return obj.set_axis(ranks[registry.index.get_indexer(obj.index)])

        frames = {name: coded(frame) for name, frame in frames.items()}
        designs = {name: coded(design) for name, design in designs.items()}
        distances = {key: None if dist is None else coded(dist)
                     for key, dist in distances.items()}
    shared = {"frames": frames, "covariate_sets": used_sets, "designs": designs,
              "distances": distances, "treated": treated, "outcomes": outcomes,
              "treatment": treatment,
              "alpha": alpha, "primary": primary, "positive": positive, "by_rank": by_rank}
    records = specs.drop(columns=["covariates"], errors="ignore").to_dict("records")
    groups: dict[tuple, list[dict]] = {}
    for rec in records:
        key = tuple("none" if k == "caliper" and pd.isna(rec[k]) else rec[k]
                    for k in _MATCH_KEYS)
        groups.setdefault(key, []).append(rec)
    tasks = [({k: group[0][k] for k in _MATCH_KEYS}, group) for group in groups.values()]
    _init_worker(shared)
    try:
        if workers == 1:
            results = [_run_group(task) for task in tasks]
        else:
            results = _run_shared(tasks, shared, workers)
    finally:
        _init_worker({})  # keep neither the data nor the memo
    table = pd.DataFrame([row for rows in results for row in rows])
    table["timepoint_weeks"] = timepoint
    for column in MULTIVERSE_COLUMNS:
        if column not in table.columns:
            table[column] = np.nan
    table = table[MULTIVERSE_COLUMNS].sort_values("spec_id").reset_index(drop=True)
    table.attrs["seconds"] = time.perf_counter() - start
    table.attrs["workers"] = workers
    return table




def multiverse_from_params(eligible: pd.DataFrame, params: Mapping[str, Any]) -> pd.DataFrame:
    """Run the multiverse that the run parameters describe (see :func:`run_multiverse` for
    the ``multiverse_*`` names) on an eligible cohort (:attr:`esi.cohort.Cohort.eligible`)."""
    # a multiverse_* name that is absent or None (a notebook's parameters cell) means its default
    merged = {**DEFAULTS, **{k: v for k, v in params.items()
                             if not (k.startswith("multiverse_") and v is None)}}
    sets = merged.get("multiverse_covariate_sets") or DEFAULT_COVARIATE_SETS
    dims = {k: merged[f"multiverse_{k}"] for k in DEFAULT_GRID if f"multiverse_{k}" in merged}
    specs = specification_grid(sets, **dims)
    return multiverse(eligible, specs, covariate_sets=sets,
                      timepoint=int(merged.get("multiverse_timepoint", 4)),
                      success_threshold=float(merged["success_threshold"]),
                      alpha=float(merged["alpha"]),
                      workers=int(merged.get("multiverse_workers", 2)))


def run_multiverse(params: Mapping[str, Any], out_dir: str | Path,
                   inputs: Sequence[str | Path | None] = ()) -> Path:
    """Read the registry named by ``params``, run the multiverse, write ``multiverse.csv``.

    Parameters
    ----------
    params
        Run parameters (``data_path``, ``success_threshold``, ``alpha``; the grid from the
        optional ``multiverse_covariate_sets`` (name -> list), ``multiverse_distance``,
        ``multiverse_method``, ``multiverse_ratio``, ``multiverse_caliper``,
        ``multiverse_replace``, ``multiverse_missing``, ``multiverse_test`` (lists),
        ``multiverse_timepoint`` (4) and ``multiverse_workers`` (2)).
    out_dir
        The output folder (relative: from the current working folder). It is built under a
        temporary name beside it, marked as an esi multiverse output and renamed into place;
        it may replace only an earlier ``esi multiverse`` folder (:mod:`esi.outputs`).
    inputs
        Further files the caller read (e.g. the parameter file): the output may not be one of
        them or hold one. The registry and mapping of ``params`` are always inputs.

    Returns
    -------
    pathlib.Path
        The path of ``multiverse.csv``; for a real registry under the disclosure control of
        :meth:`esi.pipeline.Analysis.present` (declaration ``multiverse``).

    Raises
    ------
    esi.outputs.OutputRefused
        ``out_dir`` may not be written; checked before the registry is read.
    """
    import shutil

    from esi.io import partial_folder, publish_folder
    from esi.outputs import check_output_target
    from esi.paths import resolve
    from esi.pipeline import Analysis, notebook_extra

    merged = {**DEFAULTS, **params}
    out = check_output_target(out_dir, "multiverse", inputs=[
        *inputs, resolve(merged["data_path"]),
        resolve(merged["mapping"]) if merged.get("mapping") else None])
    # Through Analysis, so that a real registry is protected (dates reduced, ids
    # pseudonymised) exactly as in the notebooks.
    analysis = Analysis(merged, extra=notebook_extra(), persist=False)
    table = multiverse_from_params(analysis.cohort().eligible, merged)
    # real data: matched counts of 1-4 as "<5" and their statistics hidden (esi.disclosure)
    table = analysis.present(table, "multiverse")
    build = partial_folder(out)
    try:
        with atomic_write(build / "multiverse.csv") as fh:
            table.to_csv(fh, index=False, lineterminator="\n")
        publish_folder(build, out, "multiverse")
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return out / "multiverse.csv"
