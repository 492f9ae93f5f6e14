"""Result holders shared by the test and effect-size functions of :mod:`esi.stats`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

__all__ = ["TestResult", "EffectSize", "as_clean_array", "to_float_array", "ALTERNATIVES"]

#: The accepted values of every ``alternative`` argument (scipy's spelling; R's
#: ``"two.sided"`` is ``"two-sided"`` here).
ALTERNATIVES = ("two-sided", "less", "greater")


@dataclass(frozen=True)
class TestResult:
    """One hypothesis test, the Python twin of an R ``htest`` object.

    Attributes
    ----------
    test : str
        Name of the test as used by the run parameter (``"welch"``, ``"fisher"``, ...).
    statistic : float
        Test statistic (R's ``$statistic``): t, W (Mann-Whitney, R's convention: rank sum of the
        first sample minus n1(n1+1)/2), V (signed-rank: sum of positive ranks), X-squared, or
        the number of successes for exact binomial / McNemar tests. NaN when undefined.
    statistic_name : str
        ``"t"``, ``"W"``, ``"V"``, ``"X-squared"``, ``"successes"`` or ``"none"`` (Fisher).
    dof : float
        Degrees of freedom (R's ``$parameter``), NaN when the test has none.
    p_value : float
        P-value of the test; NaN when the test is undefined for the data (e.g. fewer than two
        observations in a group, zero variance in both groups, an empty margin for chi-square).
    alternative : str
        ``"two-sided"``, ``"less"`` or ``"greater"``: the direction refers to the first sample
        (cases) minus the second (controls), or to odds of the event in the first row.
    estimate : float
        R's ``$estimate`` where it has one: the mean difference for t tests (mean of the paired
        differences for the paired t), the conditional maximum-likelihood odds ratio for Fisher,
        the observed proportion for binomial tests, the discordant proportion b/(b+c) for the
        exact McNemar test; NaN otherwise.
    ci_low, ci_high : float
        R's ``$conf.int`` for ``estimate`` at ``confidence``; NaN where R gives none.
    confidence : float
        Confidence level of the interval.
    n1, n2 : int
        Observations used in each sample (for paired tests both are the number of complete pairs;
        for tables the row totals).
    method : str
        How the P-value was obtained, e.g. ``"exact"``, ``"normal approximation, continuity
        correction, tie correction"``.
    """

    test: str
    statistic: float
    statistic_name: str
    dof: float
    p_value: float
    alternative: str
    estimate: float
    ci_low: float
    ci_high: float
    confidence: float
    n1: int
    n2: int
    method: str

    def to_frame(self) -> pd.DataFrame:
        """Return the result as a one-row DataFrame with the attribute names as columns."""
        return pd.DataFrame([asdict(self)])


@dataclass(frozen=True)
class EffectSize:
    """An effect size with its confidence interval.

    Attributes
    ----------
    name : str
        ``"mean_difference"``, ``"hedges_g"``, ``"hedges_g_z"`` (paired), ``"rank_biserial"``,
        ``"risk_difference"``, ``"odds_ratio"``.
    estimate : float
        The point estimate (cases minus controls, or cases versus controls for ratios).
    ci_low, ci_high : float
        Confidence limits at ``confidence``; NaN when undefined.
    confidence : float
        Confidence level.
    method : str
        How the interval was computed (e.g. ``"noncentral t inversion"``, ``"Newcombe hybrid
        score (Wilson)"``).
    """

    name: str
    estimate: float
    ci_low: float
    ci_high: float
    confidence: float
    method: str

    def to_frame(self) -> pd.DataFrame:
        """Return the effect size as a one-row DataFrame with the attribute names as columns."""
        return pd.DataFrame([asdict(self)])


def to_float_array(values, name: str) -> np.ndarray:
    """Convert a 1-D sequence (list, array, Series incl. nullable dtypes) to floats, NA -> NaN.

    Raises
    ------
    ValueError
        If ``values`` is not one-dimensional or not numeric (the message names ``name``).
    """
    if np.ndim(values) != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {np.shape(values)}")
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    if series.dtype == object:
        series = series.map(lambda v: np.nan if v is None or v is pd.NA else v)
    try:
        return pd.to_numeric(series).astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numeric: {err}") from err


def as_clean_array(values, name: str) -> np.ndarray:
    """Like :func:`to_float_array` but with missing values dropped."""
    arr = to_float_array(values, name)
    return arr[~np.isnan(arr)]


def check_alternative(alternative: str) -> str:
    """Return ``alternative`` if valid, else raise ValueError naming the argument."""
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    return alternative


def check_confidence(confidence: float) -> float:
    """Return ``confidence`` if strictly between 0 and 1, else raise ValueError."""
    if not (isinstance(confidence, int | float) and 0 < confidence < 1) or math.isnan(confidence):
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    return float(confidence)
