"""Tests from published summary statistics (means, SDs, sizes, percentages).

Used for comparisons with historical cohorts known only from their papers and by the
reproduction audit. Checked against R in ``tests/test_stats_reference.py``: the t test from
summary statistics against R ``t.test`` applied to constructed samples that have exactly the
given means and SDs (and against the textbook formulas evaluated in R), the binomial test against
``binom.test``, Fisher and chi-square from rebuilt counts against ``fisher.test`` and
``chisq.test``.
"""

from __future__ import annotations

import math

from esi.stats._result import TestResult
from esi.stats.contingency import binomial_test, chi2_test, fisher_exact
from esi.stats.parametric import t_test_from_moments

__all__ = [
    "ttest_from_summary",
    "binomial_test_rate",
    "counts_from_percent",
    "fisher_from_percent",
    "chi2_from_percent",
]


def ttest_from_summary(
    mean1: float,
    sd1: float,
    n1: int,
    mean2: float,
    sd2: float,
    n2: int,
    *,
    equal_var: bool = False,
    alternative: str = "two-sided",
    confidence: float = 0.95,
) -> TestResult:
    """Two-sample t test from means, SDs and sizes.

    Parameters
    ----------
    mean1, sd1, n1
        First group (e.g. the near-normal cases).
    mean2, sd2, n2
        Second group (e.g. a published cohort).
    equal_var
        ``False`` (default): Welch; ``True``: Student with pooled variance.
    alternative, confidence
        As :func:`esi.stats.welch_t`.

    Returns
    -------
    TestResult
        test ``"welch_summary"`` or ``"student_summary"``; statistic t, dof, p_value,
        estimate = mean1 - mean2 with its interval, n1, n2.
    """
    for label, value in (("mean1", mean1), ("sd1", sd1), ("mean2", mean2), ("sd2", sd2)):
        if value is None or not math.isfinite(float(value)):
            raise ValueError(f"{label} must be a finite number, got {value!r}")
    name = "student_summary" if equal_var else "welch_summary"
    return t_test_from_moments(float(mean1), float(sd1), n1, float(mean2), float(sd2), n2,
                               equal_var=equal_var, alternative=alternative,
                               confidence=confidence, test=name)


def binomial_test_rate(
    successes: int,
    n: int,
    reference_rate: float,
    *,
    alternative: str = "two-sided",
    confidence: float = 0.95,
) -> TestResult:
    """Exact binomial test of an observed rate against a published reference rate.

    Parameters
    ----------
    successes, n
        Events and size of the observed group.
    reference_rate
        The published proportion, in [0, 1] (divide a percentage by 100 first).

    Returns
    -------
    TestResult
        As :func:`esi.stats.binomial_test` (R ``binom.test(successes, n, reference_rate)``).
        The reference rate is treated as known: its own sampling error is ignored, which makes
        the test anti-conservative when the reference cohort is small (use
        :func:`fisher_from_percent` to account for it).
    """
    if reference_rate is None or not 0 <= float(reference_rate) <= 1:
        raise ValueError(f"reference_rate must lie in [0, 1], got {reference_rate!r}")
    return binomial_test(successes, n, float(reference_rate), alternative=alternative,
                         confidence=confidence, test="binomial")


def counts_from_percent(percent: float, n: int) -> int:
    """Rebuild an event count from a published percentage and group size.

    Returns ``round(percent / 100 * n)`` (half rounded away from zero). Raises ValueError if
    the percentage is outside [0, 100], n is not a positive whole number, or the nearest whole
    count is more than 0.5 percentage points away from the percentage (so that no rounding of
    a published whole-number percentage could have produced it).
    """
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must lie in [0, 100], got {percent!r}")
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive whole number, got {n!r}")
    k = int(math.floor(percent / 100 * n + 0.5))
    if abs(100 * k / n - percent) > 0.5:
        raise ValueError(f"percent {percent} is inconsistent with any count out of n={n}")
    return k


def fisher_from_percent(
    percent1: float,
    n1: int,
    percent2: float,
    n2: int,
    *,
    alternative: str = "two-sided",
    confidence: float = 0.95,
) -> TestResult:
    """Fisher's exact test on counts rebuilt from two percentages and sizes.

    Returns
    -------
    TestResult
        As :func:`esi.stats.fisher_exact` on
        ``[[k1, n1 - k1], [k2, n2 - k2]]`` with k = :func:`counts_from_percent`.
    """
    k1, k2 = counts_from_percent(percent1, n1), counts_from_percent(percent2, n2)
    return fisher_exact([[k1, n1 - k1], [k2, n2 - k2]], alternative=alternative,
                        confidence=confidence)


def chi2_from_percent(
    percent1: float, n1: int, percent2: float, n2: int, *, correct: bool
) -> TestResult:
    """Chi-square test (with or without Yates) on counts rebuilt from percentages and sizes.

    Returns
    -------
    TestResult
        As :func:`esi.stats.chi2_test`.
    """
    k1, k2 = counts_from_percent(percent1, n1), counts_from_percent(percent2, n2)
    return chi2_test([[k1, n1 - k1], [k2, n2 - k2]], correct=correct)
