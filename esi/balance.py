"""Covariate balance diagnostics with the MatchIt / cobalt conventions.

Small primitives (:func:`smd`, :func:`variance_ratio`, :func:`ecdf_stats`, :func:`ks`) and the
table that uses them (:func:`balance_table`). They work on any 0/1 treatment vector with
optional weights, so Table 1 and the matched-sample diagnostics share one convention.

The convention (MatchIt ``summary.matchit()`` and cobalt ``bal.tab()``)
-----------------------------------------------------------------------
- **Means** are weighted means within each group (weights = matching weights; none before
  matching).
- **Standardised mean difference** ``(mean_treated - mean_control) / s``. The denominator ``s``
  is fixed in the *unmatched, unweighted* sample, so matching cannot improve balance by
  inflating it: for ``estimand="ATT"`` the standard deviation of the treated group, for
  ``"ATC"`` that of the controls, for ``"ATE"`` the pooled ``sqrt((s1^2 + s0^2) / 2)``.
  Standard deviations use the ``n - 1`` denominator; for a binary variable (every value 0 or
  1) the variance is ``p (1 - p)``. If ``s`` is numerically zero, the pooled standard
  deviation over both groups is used, as MatchIt does.
- **Binary covariates** (dummy levels, booleans) are reported by default as the raw
  difference in proportions (cobalt's default, ``binary="raw"``); ``binary="std"``
  standardises them like continuous ones, which is what ``summary.matchit()`` prints.
- **Variance ratio** treated / control of weighted variances (reliability weights, as
  ``cov.wt``); undefined (NaN) for binary covariates.
- **eCDF statistics**: the mean and the maximum, over the distinct observed values, of the
  absolute difference between the weighted empirical CDFs of the two groups (MatchIt's
  ``eCDF Mean`` and ``eCDF Max``). The maximum is the Kolmogorov-Smirnov statistic
  (:func:`ks`). For a binary covariate both equal the absolute difference in proportions.
- With fewer than two units of positive weight in *both* groups the SMD, variance ratio and
  eCDF statistics are NaN (MatchIt's ``too.small`` rule).

Checked against MatchIt 4.7.2 ``summary(m, un = TRUE)`` on ``lalonde`` for 16 matching
specifications (tests/test_balance_reference.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from esi.propensity import _is_categorical, _levels

__all__ = ["smd", "variance_ratio", "ecdf_stats", "ks", "balance_table", "is_binary"]

_SQRT_EPS = np.sqrt(np.finfo(float).eps)
_ESTIMANDS = ("ATT", "ATC", "ATE")


def _arrays(x, treatment, weights):
    x = np.asarray(x, dtype=float)
    t = np.asarray(treatment)
    if t.dtype == bool:
        t = t.astype(int)
    t = t.astype(float)
    if x.shape != t.shape:
        raise ValueError(f"x and treatment differ in length ({x.shape[0]} vs {t.shape[0]})")
    if np.isnan(x).any():
        raise ValueError(f"x has {int(np.isnan(x).sum())} missing values")
    bad = ~np.isin(t, (0.0, 1.0))
    if bad.any():
        raise ValueError(f"treatment must be 0/1, found {sorted(set(t[bad].tolist()))}")
    if weights is None:
        w = np.ones_like(x)
    else:
        w = np.asarray(weights, dtype=float)
        if w.shape != x.shape:
            raise ValueError("weights and x differ in length")
        if np.isnan(w).any() or (w < 0).any():
            raise ValueError("weights must be non-negative and not missing")
    return x, t == 1, w


def is_binary(x) -> bool:
    """True when every value of ``x`` is 0 or 1 (MatchIt's rule for a binary variable)."""
    x = np.asarray(x, dtype=float)
    return bool(np.all((x == 0) | (x == 1)))


def _wmean(x, w):
    return float(np.sum(x * w) / np.sum(w))


def _wvar(x, w, binary):
    """Weighted variance as MatchIt's ``wvar``: p(1-p) for binary, else reliability weights."""
    w = w / np.sum(w)
    mx = np.sum(w * x)
    if binary:
        return float(mx * (1 - mx))
    denom = 1 - np.sum(w**2)
    return float(np.sum(w * (x - mx) ** 2) / denom) if denom > 0 else np.nan


def _pooled_sd_proportional(x, t, binary):
    # MatchIt's pooled_sd(contribution = "proportional") without weights (fallback only)
    n = x.size
    if binary:
        v = 0.0
        for g in (t, ~t):
            sx, ng = x[g].sum(), g.sum()
            v += sx * (1 - sx / ng) / n
        return float(np.sqrt(v))
    v = 0.0
    for g in (t, ~t):
        v += np.sum((x[g] - x[g].mean()) ** 2)
    return float(np.sqrt(v / (n - 2)))


def _too_small(t, w):
    return np.count_nonzero(w[t]) < 2 and np.count_nonzero(w[~t]) < 2


def smd(
    x,
    treatment,
    weights=None,
    *,
    estimand: str = "ATT",
    binary: str = "raw",
    denominator: str | float | None = None,
) -> float:
    """Standardised mean difference, treated minus control.

    Parameters
    ----------
    x : array-like of float
        The covariate (no missing values).
    treatment : array-like of 0/1 or bool
        1 = treated.
    weights : array-like, optional
        Non-negative unit weights (e.g. matching weights) for the group means. The
        denominator never uses them.
    estimand : {"ATT", "ATC", "ATE"}, default "ATT"
        Chooses the denominator when ``denominator`` is None: treated SD, control SD or the
        pooled ``sqrt((s1^2 + s0^2) / 2)``, all in the unweighted sample.
    binary : {"raw", "std"}, default "raw"
        For a binary ``x`` (all values 0/1): "raw" returns the difference in proportions
        (cobalt's default), "std" divides it by ``sqrt(p (1 - p))`` of the denominator group
        (MatchIt's ``summary()``).
    denominator : {"treated", "control", "pooled"} or float, optional
        Override the denominator: a group, or a number (e.g. a pre-matching SD).

    Returns
    -------
    float
        The SMD (or raw difference for binary ``x`` with ``binary="raw"``); NaN if both groups
        have fewer than two units with positive weight. A difference below ``sqrt(eps)`` is
        returned unstandardised (as MatchIt does).

    Notes
    -----
    Checked against MatchIt 4.7.2 ``summary.matchit()`` (``Std. Mean Diff.``) on ``lalonde``.
    """
    if estimand not in _ESTIMANDS:
        raise ValueError(f"estimand must be one of {_ESTIMANDS}, got {estimand!r}")
    if binary not in ("raw", "std"):
        raise ValueError(f"binary must be 'raw' or 'std', got {binary!r}")
    x, t, w = _arrays(x, treatment, weights)
    if not t.any() or t.all():
        raise ValueError("treatment needs both treated (1) and control (0) units")
    bin_var = is_binary(x)
    diff = _wmean(x[t], w[t]) - _wmean(x[~t], w[~t])
    if bin_var and binary == "raw":
        return float(diff)
    if abs(diff) <= _SQRT_EPS:
        return float(diff)
    if _too_small(t, w):
        return np.nan
    if isinstance(denominator, int | float) and not isinstance(denominator, bool):
        return float(diff / denominator)
    group = denominator or {"ATT": "treated", "ATC": "control", "ATE": "pooled"}[estimand]
    ones = np.ones_like(x)
    if group == "treated":
        s = np.sqrt(_wvar(x[t], ones[t], bin_var))
    elif group == "control":
        s = np.sqrt(_wvar(x[~t], ones[~t], bin_var))
    elif group == "pooled":
        s = np.sqrt((_wvar(x[t], ones[t], bin_var) + _wvar(x[~t], ones[~t], bin_var)) / 2)
    else:
        raise ValueError(f"denominator must be 'treated', 'control', 'pooled' or a number, got {group!r}")
    if not np.isfinite(s) or s < _SQRT_EPS:
        s = _pooled_sd_proportional(x, t, bin_var)
    return float(diff / s)


def variance_ratio(x, treatment, weights=None) -> float:
    """Ratio of weighted variances, treated / control.

    Returns
    -------
    float
        NaN for a binary ``x`` or when both groups have fewer than two units with positive
        weight. Variances use reliability weights (R's ``cov.wt``), ``n - 1`` when unweighted.

    Notes
    -----
    Checked against MatchIt 4.7.2 ``summary.matchit()`` (``Var. Ratio``).
    """
    x, t, w = _arrays(x, treatment, weights)
    if is_binary(x) or _too_small(t, w):
        return np.nan
    return _wvar(x[t], w[t], False) / _wvar(x[~t], w[~t], False)


def ecdf_stats(x, treatment, weights=None) -> tuple[float, float]:
    """Mean and maximum absolute difference between the groups' weighted empirical CDFs.

    Returns
    -------
    (float, float)
        ``(ecdf_mean, ecdf_max)`` over the distinct values of ``x``; for a binary ``x`` both are
        the absolute difference in proportions. NaN when both groups have fewer than two units
        with positive weight (continuous ``x``).

    Notes
    -----
    Checked against MatchIt 4.7.2 ``summary.matchit()`` (``eCDF Mean``, ``eCDF Max``).
    """
    x, t, w = _arrays(x, treatment, weights)
    if is_binary(x):
        d = abs(_wmean(x[t], w[t]) - _wmean(x[~t], w[~t]))
        return float(d), float(d)
    if _too_small(t, w):
        return np.nan, np.nan
    w = w.copy()
    w[t] = w[t] / w[t].sum()
    w[~t] = -w[~t] / w[~t].sum()
    order = np.argsort(x, kind="stable")
    xs = x[order]
    cum = np.abs(np.cumsum(w[order]))
    last_of_run = np.append(np.diff(xs) != 0, True)
    diffs = cum[last_of_run]
    return float(diffs.mean()), float(diffs.max())


def ks(x, treatment, weights=None) -> float:
    """Kolmogorov-Smirnov statistic: the maximum absolute eCDF difference (see ecdf_stats)."""
    return ecdf_stats(x, treatment, weights)[1]


def _terms(data: pd.DataFrame, covariates: Sequence[str]) -> list[tuple[str, str, np.ndarray]]:
    """(variable, level, values) for each covariate, every level of a categorical one."""
    out = []
    for name in covariates:
        s = data[name]
        if _is_categorical(s):
            values = s.to_numpy()
            for level in _levels(s):
                out.append((name, str(level), (values == level).astype(float)))
        else:
            out.append((name, "", s.to_numpy(dtype=float)))
    return out


def balance_table(
    data: pd.DataFrame,
    treatment: str,
    covariates: Sequence[str],
    weights=None,
    estimand: str = "ATT",
    *,
    binary: str = "raw",
) -> pd.DataFrame:
    """Balance of ``covariates`` between treated and control units, one row per term.

    Parameters
    ----------
    data : DataFrame
        One row per patient.
    treatment : str
        0/1 or boolean treatment column (1 = treated).
    covariates : list of str
        Numeric, boolean or categorical columns; a categorical one gets a row per level
        (every level, the reference included, as cobalt and MatchIt show them).
    weights : array-like or Series, optional
        Unit weights (matching weights; units with weight 0 drop out). A Series is aligned on
        the index of ``data``. None = the unadjusted sample.
    estimand : {"ATT", "ATC", "ATE"}, default "ATT"
        Chooses the SMD denominator, taken in the unweighted sample (see module docstring).
    binary : {"raw", "std"}, default "raw"
        Binary terms as a raw difference in proportions, or standardised like MatchIt's
        ``summary()``.

    Returns
    -------
    DataFrame
        Indexed by ``term`` (``<covariate>`` or ``<covariate>_<level>``), columns:

        - ``variable``: the covariate; ``level``: the level for categorical ones, else "".
        - ``type``: "binary" (values all 0/1) or "continuous".
        - ``mean_treated``, ``mean_control``: weighted group means (proportions if binary).
        - ``smd``: standardised mean difference (raw difference for binary terms when
          ``binary="raw"``).
        - ``variance_ratio``: treated / control weighted variance (NaN for binary).
        - ``ecdf_mean``, ``ecdf_max``: mean and max absolute eCDF difference.
        - ``ks``: Kolmogorov-Smirnov statistic (equals ``ecdf_max``).

    Raises
    ------
    ValueError
        Unknown column, missing values (naming the rows), a non-binary treatment, or a group
        with no units.

    Notes
    -----
    Values were checked against MatchIt 4.7.2 ``summary(matchit(...), un = TRUE)`` on
    ``lalonde`` (with ``binary="std"``, as MatchIt standardises binary covariates).
    """
    missing_cols = [c for c in [treatment, *covariates] if c not in data.columns]
    if missing_cols:
        raise ValueError(f"columns not found in data: {missing_cols}")
    na = data[[treatment, *covariates]].isna()
    if na.to_numpy().any():
        rows = data.index[na.any(axis=1)]
        cols = list(na.columns[na.any(axis=0)])
        raise ValueError(
            f"missing values in {cols} for {len(rows)} rows: {list(rows[:10])}"
            + (" ..." if len(rows) > 10 else "")
        )
    t = data[treatment].to_numpy()
    if weights is not None and isinstance(weights, pd.Series):
        weights = weights.reindex(data.index).to_numpy(dtype=float)
    rows = []
    for variable, level, x in _terms(data, covariates):
        ecdf_mean, ecdf_max = ecdf_stats(x, t, weights)
        x_bin = is_binary(x)
        rows.append(
            {
                "term": f"{variable}_{level}" if level else variable,
                "variable": variable,
                "level": level,
                "type": "binary" if x_bin else "continuous",
                "mean_treated": _wmean(x[t == 1], _w(weights, t == 1)),
                "mean_control": _wmean(x[t == 0], _w(weights, t == 0)),
                "smd": smd(x, t, weights, estimand=estimand, binary=binary),
                "variance_ratio": variance_ratio(x, t, weights),
                "ecdf_mean": ecdf_mean,
                "ecdf_max": ecdf_max,
                "ks": ecdf_max,
            }
        )
    return pd.DataFrame(rows).set_index("term")


def _w(weights, mask):
    if weights is None:
        return np.ones(int(mask.sum()))
    return np.asarray(weights, dtype=float)[mask]
