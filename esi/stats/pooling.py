"""Combining analyses of multiply imputed data sets.

* :func:`rubin_pool`: Rubin's rules for a scalar estimate and its variance, with the
  Barnard-Rubin (1999) small-sample degrees of freedom when the complete-data df is known
  (as R ``mice::pool``), otherwise Rubin's (1987) df.
* :func:`d2_pool_chisq`: the D2 statistic of Li, Meng, Raghunathan and Rubin (1991) for
  pooling chi-square statistics (van Buuren, *Flexible Imputation of Missing Data*, 2nd ed.,
  section 5.3.4), used for chi-square tests of binary outcomes after imputation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["RubinPooled", "rubin_pool", "D2Pooled", "d2_pool_chisq"]


@dataclass(frozen=True)
class RubinPooled:
    """A scalar estimate pooled over m imputations by Rubin's rules.

    Attributes
    ----------
    estimate : float
        Mean of the m estimates (Q-bar).
    within : float
        Mean of the m variances (U-bar).
    between : float
        Variance of the m estimates (B, denominator m - 1).
    total_variance : float
        T = U-bar + (1 + 1/m) B.
    se : float
        sqrt(T).
    dof : float
        Degrees of freedom of the t reference (inf when B = 0 and no complete-data df is given).
    statistic : float
        estimate / se.
    p_value : float
        Two-sided P-value from t(dof) (NaN when se is 0 or NaN).
    ci_low, ci_high : float
        Interval estimate +- t quantile x se.
    fmi : float
        lambda = (1 + 1/m) B / T, the proportion of variance due to missing data.
    m : int
        Number of imputations.
    """

    estimate: float
    within: float
    between: float
    total_variance: float
    se: float
    dof: float
    statistic: float
    p_value: float
    ci_low: float
    ci_high: float
    fmi: float
    m: int


def rubin_pool(estimates, variances, *, complete_df: float | None = None,
               confidence: float = 0.95) -> RubinPooled:
    """Pool m estimates and their squared standard errors by Rubin's rules.

    Parameters
    ----------
    estimates, variances
        Sequences of length m >= 2.
    complete_df
        Degrees of freedom of the complete-data analysis; if given, the Barnard-Rubin adjusted
        df is used (as R ``mice::pool``), else Rubin's large-sample df.
    confidence
        Level of the pooled interval.

    Returns
    -------
    RubinPooled
    """
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    if q.ndim != 1 or u.shape != q.shape:
        raise ValueError("estimates and variances must be 1-D sequences of equal length")
    m = len(q)
    if m < 2:
        raise ValueError(f"estimates: need at least 2 imputations, got {m}")
    nan = float("nan")
    qbar = float(q.mean())
    ubar = float(u.mean())
    b = float(q.var(ddof=1))
    t = ubar + (1 + 1 / m) * b
    se = math.sqrt(t) if t >= 0 else nan
    lam = (1 + 1 / m) * b / t if t > 0 else nan
    if b > 0 and ubar >= 0:
        df_old = (m - 1) / lam**2
    else:
        df_old = math.inf
    if complete_df is not None and math.isfinite(complete_df):
        lam_obs = 0.0 if math.isnan(lam) else lam
        df_obs = (complete_df + 1) / (complete_df + 3) * complete_df * (1 - lam_obs)
        dof = 1 / (1 / df_old + 1 / df_obs) if df_obs > 0 else df_old
    else:
        dof = df_old
    if se > 0:
        stat = qbar / se
        p = float(2 * stats.t.sf(abs(stat), dof))
        qt = stats.t.ppf(1 - (1 - confidence) / 2, dof)
        lo, hi = qbar - qt * se, qbar + qt * se
    else:
        stat, p, lo, hi = nan, nan, nan, nan
    return RubinPooled(qbar, ubar, b, t, se, float(dof), float(stat), p, float(lo), float(hi),
                       float(lam), m)


@dataclass(frozen=True)
class D2Pooled:
    """Chi-square statistics pooled with the D2 rule.

    Attributes
    ----------
    statistic : float
        D2, referred to F(df1, df2); clipped at 0.
    df1, df2 : float
        Degrees of freedom (df2 inf when the chi-square statistics do not vary).
    p_value : float
        Upper-tail P-value.
    m : int
        Number of imputations.
    """

    statistic: float
    df1: float
    df2: float
    p_value: float
    m: int


def d2_pool_chisq(chisq, *, df: int = 1) -> D2Pooled:
    """Pool m chi-square statistics with k = ``df`` degrees of freedom (Li et al. 1991, D2).

    D2 = (mean(d) / k - (m + 1)/(m - 1) r) / (1 + r), r = (1 + 1/m) var(sqrt(d)),
    df2 = k^(-3/m) (m - 1) (1 + 1/r)^2.

    Returns
    -------
    D2Pooled
        NaN statistic and P-value if any statistic is NaN.
    """
    d = np.asarray(chisq, dtype=float)
    m = len(d)
    if m < 2:
        raise ValueError(f"chisq: need at least 2 imputations, got {m}")
    if np.any(np.isnan(d)):
        return D2Pooled(float("nan"), float(df), float("nan"), float("nan"), m)
    r = (1 + 1 / m) * float(np.var(np.sqrt(d), ddof=1))
    d2 = (d.mean() / df - (m + 1) / (m - 1) * r) / (1 + r)
    d2 = max(float(d2), 0.0)
    df2 = math.inf if r == 0 else df ** (-3 / m) * (m - 1) * (1 + 1 / r) ** 2
    p = float(stats.chi2.sf(d2 * df, df)) if math.isinf(df2) else float(stats.f.sf(d2, df, df2))
    return D2Pooled(d2, float(df), float(df2), p, m)
