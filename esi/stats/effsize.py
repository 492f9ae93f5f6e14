"""Effect sizes with confidence intervals.

Conventions (cases = first sample / first table row, controls = second):

* ``mean_difference``: mean(cases) - mean(controls) with the t interval of the matching test
  (Welch, pooled or paired), as R ``t.test``'s conf.int.
* ``hedges_g``: Cohen's d with the pooled SD, times the exact small-sample factor
  J(df) = Gamma(df/2) / (sqrt(df/2) Gamma((df-1)/2)), df = n1 + n2 - 2. Interval: the
  noncentral-t interval for d (the noncentrality parameters whose noncentral t distribution puts
  the observed t at its 97.5th / 2.5th percentile), times J: the method of R ``effectsize``.
  ``hedges_g_z`` (paired): mean(diff) / SD(diff), df = n - 1, same construction.
* ``rank_biserial``: unpaired r = 2 W / (n1 n2) - 1 (W = Mann-Whitney statistic of the cases;
  r > 0: cases tend to be larger); paired (matched-pairs) r = (R+ - R-) / (R+ + R-) over the
  non-zero differences. Interval: Fisher z, SE = sqrt((n1 + n2 + 1) / (3 n1 n2)) unpaired and
  sqrt((2n^3 + 3n^2 + n) / 6) / (n(n + 1) / 2) paired (R ``effectsize::rank_biserial``).
* ``risk_difference``: p1 - p2 with Newcombe's hybrid-score interval (method 10, built from the
  two Wilson intervals of R ``prop.test(x, n, correct = FALSE)``); paired: Newcombe's method 10
  for paired data with the phi correction.
* ``odds_ratio``: ``kind="conditional"`` (default): conditional MLE with the exact interval, as
  R ``fisher.test``; ``kind="sample"``: ad / bc with Woolf's log interval (NaN with a zero
  cell). Paired: b / c with the exact interval from Clopper-Pearson on b / (b + c).

The R formulas are evaluated independently in ``tests/reference/stats/make_reference.R``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special, stats

from esi.stats._result import EffectSize, as_clean_array, check_confidence
from esi.stats.contingency import as_table, binomial_test, conditional_odds_ratio
from esi.stats.parametric import paired_differences, paired_t, student_t, welch_t

__all__ = [
    "mean_difference",
    "hedges_g",
    "hedges_correction",
    "rank_biserial",
    "risk_difference",
    "paired_risk_difference",
    "wilson_interval",
    "odds_ratio",
    "paired_odds_ratio",
]

_NAN = float("nan")


def mean_difference(
    x, y, *, paired: bool = False, equal_var: bool = False, confidence: float = 0.95
) -> EffectSize:
    """Mean difference x - y with the interval of the corresponding t test.

    Parameters
    ----------
    x, y
        Samples (paired: aligned pairs; pairs with a missing member are dropped).
    paired
        Use the paired t interval on the differences.
    equal_var
        Unpaired only: pooled (Student) instead of Welch interval.
    confidence
        Confidence level.

    Returns
    -------
    EffectSize
        name ``"mean_difference"``; checked against R ``t.test(...)$conf.int``.
    """
    check_confidence(confidence)
    if paired:
        res = paired_t(x, y, confidence=confidence)
        method = "paired t"
    elif equal_var:
        res = student_t(x, y, confidence=confidence)
        method = "Student t (pooled variance)"
    else:
        res = welch_t(x, y, confidence=confidence)
        method = "Welch t"
    return EffectSize("mean_difference", res.estimate, res.ci_low, res.ci_high, confidence, method)


def hedges_correction(dof: float) -> float:
    """Exact small-sample bias correction J(dof) of Hedges' g (NaN for dof < 1)."""
    if not dof >= 1:
        return _NAN
    return float(math.exp(special.gammaln(dof / 2) - special.gammaln((dof - 1) / 2))
                 / math.sqrt(dof / 2))


def _ncp_interval(t_obs: float, dof: float, confidence: float) -> tuple[float, float]:
    """Noncentrality parameters bracketing ``t_obs`` at the two tail probabilities."""
    alpha = 1 - confidence

    def solve(target: float) -> float:
        def f(ncp):
            p = stats.nct.cdf(t_obs, dof, ncp)
            if not np.isfinite(p):
                # scipy's nct.cdf returns NaN far in a tail (e.g. cdf(-2.16, 299, 8)); by
                # symmetry cdf(t; df, ncp) = sf(-t; df, -ncp), which stays finite there.
                p = stats.nct.sf(-t_obs, dof, -ncp)
            return p - target

        lo, hi = t_obs - 10.0, t_obs + 10.0
        for _ in range(60):
            if f(lo) > 0 > f(hi):
                break
            lo, hi = lo - 10.0, hi + 10.0
        else:  # pragma: no cover - only for absurd inputs
            return _NAN
        return float(optimize.brentq(f, lo, hi, xtol=1e-12, rtol=1e-12, maxiter=500))

    return solve(1 - alpha / 2), solve(alpha / 2)


def hedges_g(x, y, *, paired: bool = False, confidence: float = 0.95) -> EffectSize:
    """Hedges' g (bias-corrected standardised mean difference) with a noncentral-t interval.

    Parameters
    ----------
    x, y
        Samples; for ``paired=True`` aligned pairs (incomplete pairs dropped).
    paired
        ``False``: g = J(n1 + n2 - 2) (mean(x) - mean(y)) / pooled SD (name ``"hedges_g"``).
        ``True``: g_z = J(n - 1) mean(d) / SD(d) on the differences (name ``"hedges_g_z"``).
    confidence
        Confidence level.

    Returns
    -------
    EffectSize
        NaN estimate and interval when the SD is zero or there are too few observations.
        Checked against the same construction evaluated in R with ``pt(q, df, ncp)`` and
        ``uniroot`` (R ``effectsize::hedges_g`` uses it too).
    """
    check_confidence(confidence)
    if paired:
        d = paired_differences(x, y)
        n = len(d)
        dof = n - 1.0
        sd = float(np.std(d, ddof=1)) if n > 1 else _NAN
        name = "hedges_g_z"
        if not sd > 0:
            return EffectSize(name, _NAN, _NAN, _NAN, confidence, "undefined: SD of differences 0")
        dz = float(np.mean(d)) / sd
        scale = 1 / math.sqrt(n)
    else:
        x = as_clean_array(x, "x")
        y = as_clean_array(y, "y")
        n1, n2 = len(x), len(y)
        dof = n1 + n2 - 2.0
        name = "hedges_g"
        if n1 < 1 or n2 < 1 or dof < 1:
            return EffectSize(name, _NAN, _NAN, _NAN, confidence, "undefined: too few observations")
        ss = (np.sum((x - x.mean()) ** 2) + np.sum((y - y.mean()) ** 2))
        sd = float(np.sqrt(ss / dof))
        if not sd > 0:
            return EffectSize(name, _NAN, _NAN, _NAN, confidence, "undefined: pooled SD 0")
        dz = float(x.mean() - y.mean()) / sd
        scale = math.sqrt(1 / n1 + 1 / n2)
    j = hedges_correction(dof)
    t_obs = dz / scale
    lo_ncp, hi_ncp = _ncp_interval(t_obs, dof, confidence)
    return EffectSize(name, j * dz, j * lo_ncp * scale, j * hi_ncp * scale, confidence,
                      "noncentral t inversion, exact J correction")


def rank_biserial(x, y, *, paired: bool = False, confidence: float = 0.95) -> EffectSize:
    """Rank-biserial correlation with a Fisher-z interval.

    Parameters
    ----------
    x, y
        Samples (paired: aligned pairs, incomplete pairs and zero differences dropped).
    paired
        Matched-pairs rank-biserial (from the signed ranks) instead of the two-sample one.
    confidence
        Confidence level.

    Returns
    -------
    EffectSize
        name ``"rank_biserial"``; r in [-1, 1], positive when cases tend to be larger. The
        interval collapses to the point at |r| = 1 (Fisher z is infinite there).
    """
    check_confidence(confidence)
    zq = stats.norm.ppf(1 - (1 - confidence) / 2)
    if paired:
        d = paired_differences(x, y)
        d = d[d != 0]
        n = len(d)
        if n == 0:
            return EffectSize("rank_biserial", _NAN, _NAN, _NAN, confidence, "undefined: no data")
        ranks = stats.rankdata(np.abs(d))
        r_plus, r_minus = ranks[d > 0].sum(), ranks[d < 0].sum()
        r = float((r_plus - r_minus) / (r_plus + r_minus))
        se = math.sqrt((2 * n**3 + 3 * n**2 + n) / 6) / (n * (n + 1) / 2)
        method = "matched-pairs rank-biserial, Fisher z interval"
    else:
        x = as_clean_array(x, "x")
        y = as_clean_array(y, "y")
        n1, n2 = len(x), len(y)
        if n1 == 0 or n2 == 0:
            return EffectSize("rank_biserial", _NAN, _NAN, _NAN, confidence, "undefined: no data")
        w = np.sum(x[:, None] > y[None, :]) + 0.5 * np.sum(x[:, None] == y[None, :])
        r = float(2 * w / (n1 * n2) - 1)
        se = math.sqrt((n1 + n2 + 1) / (3 * n1 * n2))
        method = "rank-biserial (2U/(n1 n2) - 1), Fisher z interval"
    with np.errstate(divide="ignore"):
        z = np.arctanh(np.clip(r, -1, 1))
    lo, hi = float(np.tanh(z - zq * se)), float(np.tanh(z + zq * se))
    return EffectSize("rank_biserial", r, lo, hi, confidence, method)


def wilson_interval(events: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion (R ``prop.test(x, n, correct = FALSE)$conf.int``)."""
    if n <= 0:
        return _NAN, _NAN
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    p = events / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _check_counts(events, n, label):
    if int(n) != n or n < 0 or int(events) != events or not 0 <= events <= n:
        raise ValueError(f"{label}: need whole counts with 0 <= events <= n, got {events}/{n}")


def risk_difference(
    events1: int, n1: int, events2: int, n2: int, *, confidence: float = 0.95
) -> EffectSize:
    """Risk difference p1 - p2 with Newcombe's hybrid-score interval (method 10).

    Returns
    -------
    EffectSize
        name ``"risk_difference"``; NaN when a group is empty. Checked against the Newcombe
        formula evaluated in R from ``prop.test(x, n, correct = FALSE)$conf.int``.
    """
    check_confidence(confidence)
    _check_counts(events1, n1, "group 1")
    _check_counts(events2, n2, "group 2")
    if n1 == 0 or n2 == 0:
        return EffectSize("risk_difference", _NAN, _NAN, _NAN, confidence, "undefined: empty group")
    p1, p2 = events1 / n1, events2 / n2
    l1, u1 = wilson_interval(events1, n1, confidence)
    l2, u2 = wilson_interval(events2, n2, confidence)
    delta = p1 - p2
    lo = delta - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = delta + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return EffectSize("risk_difference", delta, lo, hi, confidence, "Newcombe hybrid score (Wilson)")


def paired_risk_difference(table, *, confidence: float = 0.95) -> EffectSize:
    """Paired risk difference (b - c) / n with Newcombe's paired interval (method 10, phi-corrected).

    Parameters
    ----------
    table
        ``[[a, b], [c, d]]``: a = both events, b = case only, c = control only, d = neither.

    Returns
    -------
    EffectSize
        name ``"risk_difference"``. phi = (ad - bc) / sqrt of the product of the margins, taken
        as 0 when a margin is zero (Newcombe 1998).
    """
    check_confidence(confidence)
    t = as_table(table).astype(float)
    a, b, c, d = t.ravel()
    n = a + b + c + d
    if n == 0:
        return EffectSize("risk_difference", _NAN, _NAN, _NAN, confidence, "undefined: no pairs")
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, confidence)
    l2, u2 = wilson_interval(a + c, n, confidence)
    denom = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(denom) if denom > 0 else 0.0
    delta = p1 - p2
    lo = delta - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    hi = delta + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return EffectSize("risk_difference", float(delta), float(lo), float(hi), confidence,
                      "Newcombe paired hybrid score (method 10)")


def odds_ratio(table, *, kind: str = "conditional", confidence: float = 0.95) -> EffectSize:
    """Odds ratio of the event, cases (row 1) versus controls (row 2).

    Parameters
    ----------
    table
        ``[[a, b], [c, d]]``.
    kind
        ``"conditional"``: conditional MLE and exact interval (R ``fisher.test``);
        ``"sample"``: ad / bc with Woolf's interval exp(log OR +- z sqrt(1/a + 1/b + 1/c + 1/d)),
        NaN when a cell is zero (no continuity correction is added).
    confidence
        Confidence level.

    Returns
    -------
    EffectSize
        name ``"odds_ratio"``.
    """
    check_confidence(confidence)
    t = as_table(table)
    if kind == "conditional":
        est, lo, hi = conditional_odds_ratio(t, confidence=confidence)
        return EffectSize("odds_ratio", est, lo, hi, confidence, "conditional MLE, exact interval")
    if kind == "sample":
        if np.any(t == 0):
            return EffectSize("odds_ratio", _NAN, _NAN, _NAN, confidence, "sample OR: zero cell")
        a, b, c, d = t.astype(float).ravel()
        est = a * d / (b * c)
        se = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
        z = stats.norm.ppf(1 - (1 - confidence) / 2)
        return EffectSize("odds_ratio", est, est * math.exp(-z * se), est * math.exp(z * se),
                          confidence, "sample odds ratio, Woolf interval")
    raise ValueError(f"kind must be 'conditional' or 'sample', got {kind!r}")


def paired_odds_ratio(table, *, confidence: float = 0.95) -> EffectSize:
    """Conditional odds ratio of matched pairs, b / c, with an exact interval.

    The interval transforms the Clopper-Pearson interval (lo, hi) of b / (b + c) into
    lo / (1 - lo), hi / (1 - hi) (R: ``binom.test(b, b + c)$conf.int``). NaN when b + c = 0.

    Returns
    -------
    EffectSize
        name ``"odds_ratio"``.
    """
    check_confidence(confidence)
    t = as_table(table)
    b, c = int(t[0, 1]), int(t[1, 0])
    if b + c == 0:
        return EffectSize("odds_ratio", _NAN, _NAN, _NAN, confidence, "undefined: no discordant pair")
    res = binomial_test(b, b + c, 0.5, confidence=confidence)

    def odds(p):
        return math.inf if p >= 1 else p / (1 - p)

    est = math.inf if c == 0 else b / c
    return EffectSize("odds_ratio", est, odds(res.ci_low), odds(res.ci_high), confidence,
                      "paired b/c, exact (Clopper-Pearson) interval")
