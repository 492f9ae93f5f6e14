"""t tests on raw samples: Welch, Student (pooled variance) and paired.

Every function returns a :class:`~esi.stats.TestResult` whose fields mirror R's ``t.test``
output (statistic, parameter, p.value, conf.int, estimate). The values are checked against
R 4.x ``t.test`` in ``tests/test_stats_reference.py`` (reference script
``tests/reference/stats/make_reference.R``).

Undefined cases (fewer than two observations in a group, or zero variance where the standard
error is zero) return NaN for the statistic, P-value and interval instead of raising; R stops
with "not enough observations" or "data are essentially constant" there. The mean difference
is still returned.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from esi.stats._result import (
    TestResult,
    as_clean_array,
    check_alternative,
    check_confidence,
    to_float_array,
)

__all__ = ["welch_t", "student_t", "paired_t", "paired_differences", "t_test_from_moments"]


def t_test_from_moments(
    mean1: float,
    sd1: float,
    n1: int,
    mean2: float,
    sd2: float,
    n2: int,
    *,
    equal_var: bool,
    alternative: str = "two-sided",
    confidence: float = 0.95,
    test: str | None = None,
) -> TestResult:
    """Two-sample t test from means, SDs and sizes (the core of :func:`welch_t`/:func:`student_t`).

    Parameters
    ----------
    mean1, sd1, n1, mean2, sd2, n2
        Mean, sample standard deviation (denominator n - 1) and size of each sample.
    equal_var
        ``True``: Student's t with pooled variance, df = n1 + n2 - 2 (R ``var.equal = TRUE``).
        ``False``: Welch's t with Satterthwaite df (R's default). Required: never guessed.
    alternative
        ``"two-sided"``, ``"less"`` (mean1 < mean2) or ``"greater"``.
    confidence
        Level of the interval for mean1 - mean2.
    test
        Name stored in the result (default ``"student"``/``"welch"``).

    Returns
    -------
    TestResult
        statistic = t, dof, p_value, estimate = mean1 - mean2 with its interval (one-sided
        alternatives give a one-sided interval with an infinite limit, as R does).
    """
    check_alternative(alternative)
    check_confidence(confidence)
    if not isinstance(equal_var, bool | np.bool_):
        raise ValueError(f"equal_var must be True or False, got {equal_var!r}")
    for label, n in (("n1", n1), ("n2", n2)):
        if n < 0 or int(n) != n:
            raise ValueError(f"{label} must be a non-negative integer, got {n!r}")
    for label, sd in (("sd1", sd1), ("sd2", sd2)):
        if sd < 0:
            raise ValueError(f"{label} must be >= 0, got {sd!r}")
    name = test or ("student" if equal_var else "welch")
    diff = float(mean1 - mean2)
    nan = float("nan")
    if equal_var:
        dof = n1 + n2 - 2.0
        if n1 < 1 or n2 < 1 or dof < 1:
            se = nan
        else:
            pooled = ((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / dof
            se = float(np.sqrt(pooled * (1.0 / n1 + 1.0 / n2)))
        method = "Student t, pooled variance"
    else:
        if n1 < 2 or n2 < 2:
            se, dof = nan, nan
        else:
            v1, v2 = sd1**2 / n1, sd2**2 / n2
            se = float(np.sqrt(v1 + v2))
            denom = v1**2 / (n1 - 1) + v2**2 / (n2 - 1)
            dof = float((v1 + v2) ** 2 / denom) if denom > 0 else nan
        method = "Welch t, Satterthwaite df"
    if not (se > 0) or np.isnan(dof):
        return TestResult(name, nan, "t", float(dof), nan, alternative, diff, nan, nan,
                          confidence, int(n1), int(n2), method + " (undefined: zero or missing SE)")
    t = diff / se
    if alternative == "two-sided":
        p = 2.0 * stats.t.sf(abs(t), dof)
        q = stats.t.ppf(1 - (1 - confidence) / 2, dof)
        lo, hi = diff - q * se, diff + q * se
    elif alternative == "less":
        p = stats.t.cdf(t, dof)
        lo, hi = -np.inf, diff + stats.t.ppf(confidence, dof) * se
    else:
        p = stats.t.sf(t, dof)
        lo, hi = diff - stats.t.ppf(confidence, dof) * se, np.inf
    return TestResult(name, float(t), "t", float(dof), float(min(p, 1.0)), alternative, diff,
                      float(lo), float(hi), confidence, int(n1), int(n2), method)


def _two_sample(x, y, equal_var: bool, alternative: str, confidence: float) -> TestResult:
    x = as_clean_array(x, "x")
    y = as_clean_array(y, "y")
    sd1 = float(np.std(x, ddof=1)) if len(x) > 1 else float("nan")
    sd2 = float(np.std(y, ddof=1)) if len(y) > 1 else float("nan")
    m1 = float(np.mean(x)) if len(x) else float("nan")
    m2 = float(np.mean(y)) if len(y) else float("nan")
    if np.isnan(sd1) or np.isnan(sd2):
        if equal_var and len(x) + len(y) > 2 and len(x) and len(y):
            # Student's t needs only the pooled variance: a lone observation has no spread.
            sd1 = 0.0 if np.isnan(sd1) else sd1
            sd2 = 0.0 if np.isnan(sd2) else sd2
        else:
            nan = float("nan")
            name = "student" if equal_var else "welch"
            return TestResult(name, nan, "t", nan, nan, alternative, m1 - m2, nan, nan,
                              confidence, len(x), len(y), "undefined: fewer than 2 observations")
    return t_test_from_moments(m1, sd1, len(x), m2, sd2, len(y), equal_var=equal_var,
                               alternative=alternative, confidence=confidence)


def welch_t(x, y, *, alternative: str = "two-sided", confidence: float = 0.95) -> TestResult:
    """Welch's unequal-variance two-sample t test of mean(x) - mean(y).

    Parameters
    ----------
    x, y
        The two samples (cases, controls); NaN / NA values are dropped.
    alternative
        ``"two-sided"``, ``"less"`` or ``"greater"`` (mean of x relative to y).
    confidence
        Level of the interval for the mean difference.

    Returns
    -------
    TestResult
        statistic t, dof (Satterthwaite), p_value, estimate = mean(x) - mean(y), ci_low,
        ci_high, n1, n2.

    Notes
    -----
    Checked against R ``t.test(x, y)`` (statistic, parameter, p.value, conf.int).
    """
    check_alternative(alternative)
    check_confidence(confidence)
    return _two_sample(x, y, False, alternative, confidence)


def student_t(x, y, *, alternative: str = "two-sided", confidence: float = 0.95) -> TestResult:
    """Student's pooled-variance two-sample t test of mean(x) - mean(y).

    Parameters and returned fields as :func:`welch_t`; dof = n1 + n2 - 2.

    Notes
    -----
    Checked against R ``t.test(x, y, var.equal = TRUE)``.
    """
    check_alternative(alternative)
    check_confidence(confidence)
    return _two_sample(x, y, True, alternative, confidence)


def paired_t(x, y, *, alternative: str = "two-sided", confidence: float = 0.95) -> TestResult:
    """Paired t test of the mean of x - y.

    Parameters
    ----------
    x, y
        Equal-length sequences aligned by pair (cases, and each case's control or the mean of its
        controls). Pairs with a missing member are dropped.
    alternative, confidence
        As in :func:`welch_t`.

    Returns
    -------
    TestResult
        statistic t, dof = n - 1, p_value, estimate = mean of the differences with its interval,
        n1 = n2 = number of complete pairs.

    Notes
    -----
    Checked against R ``t.test(x, y, paired = TRUE)``.
    """
    check_alternative(alternative)
    check_confidence(confidence)
    d = paired_differences(x, y)
    n = len(d)
    nan = float("nan")
    if n < 2:
        mean = float(d.mean()) if n else nan
        return TestResult("paired_t", nan, "t", nan, nan, alternative, mean, nan, nan,
                          confidence, n, n, "undefined: fewer than 2 complete pairs")
    sd = float(np.std(d, ddof=1))
    res = _one_sample(d, sd, alternative, confidence)
    return res


def _one_sample(d: np.ndarray, sd: float, alternative: str, confidence: float) -> TestResult:
    n = len(d)
    mean = float(np.mean(d))
    se = sd / np.sqrt(n)
    dof = n - 1.0
    nan = float("nan")
    if not se > 0:
        return TestResult("paired_t", nan, "t", dof, nan, alternative, mean, nan, nan,
                          confidence, n, n, "undefined: differences have zero variance")
    t = mean / se
    if alternative == "two-sided":
        p = 2 * stats.t.sf(abs(t), dof)
        q = stats.t.ppf(1 - (1 - confidence) / 2, dof)
        lo, hi = mean - q * se, mean + q * se
    elif alternative == "less":
        p = stats.t.cdf(t, dof)
        lo, hi = -np.inf, mean + stats.t.ppf(confidence, dof) * se
    else:
        p = stats.t.sf(t, dof)
        lo, hi = mean - stats.t.ppf(confidence, dof) * se, np.inf
    return TestResult("paired_t", float(t), "t", dof, float(min(p, 1.0)), alternative, mean,
                      float(lo), float(hi), confidence, n, n, "paired t")


def paired_differences(x, y) -> np.ndarray:
    """Return x - y for the pairs where both members are present.

    Raises
    ------
    ValueError
        If x and y differ in length (the message names both lengths).
    """
    if np.ndim(x) != 1 or np.ndim(y) != 1:
        raise ValueError("x and y must be one-dimensional for a paired test")
    if len(x) != len(y):
        raise ValueError(f"paired test needs x and y of equal length, got {len(x)} and {len(y)}")
    xa = to_float_array(x, "x")
    ya = to_float_array(y, "y")
    keep = ~(np.isnan(xa) | np.isnan(ya))
    return xa[keep] - ya[keep]

