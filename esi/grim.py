"""GRIM and GRIMMER: can a reported mean (and SD) come from n values on a given scale?

GRIM (Brown & Heathers 2017, *Soc Psychol Personal Sci* 8:363, doi:10.1177/1948550616673876):
values that are multiples of a granularity ``g`` (1 for integer scores, 0.5 for half-point
pain scores, 2 for a complete Oswestry form) have a sum that is a multiple of ``g``; a mean
reported to ``d`` decimals from ``n`` values is *consistent* only if some multiple ``k g`` of
``g`` gives ``k g / n`` inside the mean's rounding interval ``[m - 0.5 10^-d, m + 0.5 10^-d]``.

GRIMMER (Anaya 2016, *PeerJ Preprints* 4:e2400v1; the analytic form of Allard 2018 as in the R
package scrutiny and rsprite2): for each GRIM-consistent sum ``S`` (in units of ``g``), the sum
of squares ``Q`` of the integers ``x / g`` is an integer with ``Q = (n - 1) s^2 + S^2 / n``;
the SD's rounding interval bounds ``Q``, and ``Q`` has the parity of ``S`` (``x^2`` and ``x``
are both even or both odd). A reported SD is consistent only if an integer ``Q`` of the right
parity falls in the interval. Both tests give necessary conditions: "consistent" means "not
ruled out", never "proven possible" (SPRITE, :mod:`esi.sprite`, can exhibit a sample).

Rounding: one rule for the whole audit
-------------------------------------
A reported figure ``v`` at ``d`` decimals stands for every true value that rounds to it under
*some* convention an author may have used: half up, half down, half to even (R's and numpy's
``round``), half away from zero. Together these are exactly the closed interval
``[v - 0.5 10^-d, v + 0.5 10^-d]`` (:func:`rounding_interval`): 2.375 is reported as 2.38
(half up) or 2.37 (half even), so both 2.37 and 2.38 admit it (R scrutiny's
``rounding = "up_or_down"``). :func:`rounds_to` applies that interval to computed values.
GRIM, GRIMMER (here), SPRITE (:mod:`esi.sprite`: the admissible sums and sums of squares, and
the check of every sample) and the audit's matching of reproduced to reported figures and of
P-values (:mod:`esi.audit`) all use these two functions and nothing else. All arithmetic on
reported figures is exact (:class:`fractions.Fraction`), so no floating-point edge decides a
verdict.

Checked against an exhaustive enumeration of every sample of small size in
``tests/test_grim.py`` and against the published examples cited there; and against
rsprite2 0.2.1's ``GRIM_test`` and ``GRIMMER_test`` (identical verdicts on 4,816 means and
16,932 mean/SD pairs that include every rounding half of small samples) and an enumeration in
R (tests/reference/audit/rounding_reference.R, tests/test_rounding_reference.py).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import numpy as np

__all__ = [
    "GrimResult",
    "GrimmerResult",
    "grim",
    "grim_percent",
    "grimmer",
    "consistent_sums",
    "consistent_n",
    "as_fraction",
    "rounding_interval",
    "rounds_to",
    "sum_of_squares_range",
    "whole_sums_of_squares",
    "parity_fits",
    "FLOAT_SLACK",
    "ODI_COMPLETE",
    "ODI_ONE_SKIPPED",
    "ODI_TWO_SKIPPED",
]

#: Granularity of an Oswestry Disability Index with all 10 sections answered: 100 / (5 x 10).
ODI_COMPLETE = Fraction(2)
#: ODI with one section skipped: total / (5 x 9) x 100, steps of 100/45 = 20/9.
ODI_ONE_SKIPPED = Fraction(20, 9)
#: ODI with two sections skipped: total / (5 x 8) x 100, steps of 2.5.
ODI_TWO_SKIPPED = Fraction(5, 2)


def as_fraction(x: float | int | str | Fraction | Decimal) -> Fraction:
    """Exact fraction of a reported number, read from its decimal text (``0.1`` is 1/10)."""
    if isinstance(x, Fraction):
        return x
    if isinstance(x, bool):
        raise ValueError(f"expected a number, got the boolean {x!r}")
    if isinstance(x, int | np.integer):
        return Fraction(int(x))
    if isinstance(x, float | np.floating):
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"expected a finite number, got {x!r}")
        return Fraction(Decimal(repr(x)))
    return Fraction(Decimal(str(x)))


def rounding_interval(value: float | str | Fraction, decimals: int) -> tuple[Fraction, Fraction]:
    """The closed interval of true values that round to ``value`` at ``decimals`` places.

    Both ends are included: a true value exactly half-way between two reported values rounds
    to either of them depending on the convention (half up, half down, half to even, half away
    from zero), so it is admitted by both. The interval is the union over those conventions,
    and every value inside it rounds to ``value`` under at least one of them.

    Parameters
    ----------
    value
        The reported value (read exactly from its decimal text, see :func:`as_fraction`).
    decimals
        Decimal places it was reported to.

    Returns
    -------
    tuple of fractions.Fraction
        ``(value - 0.5 * 10**-decimals, value + 0.5 * 10**-decimals)``. The lower end is
        clipped at 0 only by the callers that need it (SDs).
    """
    if int(decimals) != decimals or decimals < 0:
        raise ValueError(f"decimals must be a non-negative whole number, got {decimals!r}")
    if isinstance(value, bool):  # (True == 1 for the memo below)
        raise ValueError(f"expected a number, got the boolean {value!r}")
    try:
        return _rounding_interval(value, int(decimals))
    except TypeError:  # an unhashable number type
        return _rounding_interval.__wrapped__(value, int(decimals))


@functools.lru_cache(maxsize=4096)
def _rounding_interval(value, decimals: int) -> tuple[Fraction, Fraction]:
    # Memoised: SPRITE and the audit ask for the same few reported figures again and again.
    v = as_fraction(value)
    h = Fraction(1, 2 * 10 ** decimals)
    return v - h, v + h


#: Slack given to values computed in floating point by :func:`rounds_to`, as a share of the
#: half-width of the rounding interval (1e-9 of 0.005 at two decimals). It absorbs the
#: representation error of a computed mean, SD or P that is truly on an end of the interval
#: (2.375 computed as 2.3749999999999996); it is far smaller than the distance from the
#: interval of any mean or sum of squares of fewer than a billion values on a grid.
FLOAT_SLACK = 1e-9


def rounds_to(value, target, decimals: int):
    """Does ``value`` round to the reported ``target`` at ``decimals`` places?

    True when ``value`` lies in :func:`rounding_interval` ``(target, decimals)``: it rounds to
    ``target`` under some rounding convention (a half counts for both neighbours).

    Parameters
    ----------
    value
        The true value: an exact number (int, :class:`~fractions.Fraction`,
        :class:`~decimal.Decimal`, decimal text), compared exactly; or a value computed in
        floating point (float, numpy array of floats), compared with the interval widened by
        :data:`FLOAT_SLACK` of its half-width on each side.
    target
        The reported value (read exactly from its decimal text).
    decimals
        Decimal places of ``target``.

    Returns
    -------
    bool or numpy.ndarray of bool
        Element-wise for arrays; NaN never rounds to anything.
    """
    if isinstance(value, float | np.floating | np.ndarray):
        if isinstance(target, bool):  # (True == 1 for the memo)
            raise ValueError(f"expected a number, got the boolean {target!r}")
        lo_f, hi_f = _float_interval(target, int(decimals))
        v = np.asarray(value, dtype=float)
        out = (v >= lo_f) & (v <= hi_f)
        return bool(out) if out.ndim == 0 else out
    lo, hi = rounding_interval(target, decimals)
    return bool(lo <= as_fraction(value) <= hi)


@functools.lru_cache(maxsize=4096)
def _float_interval(target, decimals: int) -> tuple[float, float]:
    # rounding_interval widened by FLOAT_SLACK of its half-width, as floats (memoised).
    lo, hi = rounding_interval(target, decimals)
    slack = (hi - lo) / 2 * Fraction(FLOAT_SLACK)
    return float(lo - slack), float(hi + slack)


def sum_of_squares_range(total: Fraction, n: int, sd_lo: Fraction, sd_hi: Fraction
                         ) -> tuple[Fraction, Fraction]:
    """The closed interval of the sum of squares of ``n`` values with sum ``total`` whose
    sample SD (``ddof = 1``) lies in ``[sd_lo, sd_hi]``: ``(n - 1) s^2 + total^2 / n``.

    The identity behind GRIMMER (here) and SPRITE's target window (:mod:`esi.sprite`), in exact
    arithmetic.
    """
    t2 = Fraction(total) ** 2 / n
    return (n - 1) * Fraction(sd_lo) ** 2 + t2, (n - 1) * Fraction(sd_hi) ** 2 + t2


def whole_sums_of_squares(k: int, n: int, g: Fraction, sd_lo: Fraction, sd_hi: Fraction,
                          fixed_sum: Fraction = Fraction(0), fixed_sq: Fraction = Fraction(0)
                          ) -> tuple[int, int]:
    """The whole numbers ``Q`` that can be the sum of squares of the free values, in units.

    ``n`` values of which some are free multiples ``x g`` of the step ``g`` (summing to
    ``k g``) and the others fixed (sum ``fixed_sum``, sum of squares ``fixed_sq``): the sample
    SD lies in ``[sd_lo, sd_hi]`` exactly when the free values' ``Q = sum x^2`` lies in
    ``[first, last]`` (empty when ``first > last``). ``Q`` must also have the parity of ``k``
    (``x^2`` and ``x`` are both even or both odd): :func:`parity_fits`.
    """
    lo, hi = sum_of_squares_range(k * g + fixed_sum, n, sd_lo, sd_hi)
    g2 = g * g
    return math.ceil((lo - fixed_sq) / g2), math.floor((hi - fixed_sq) / g2)


def parity_fits(k: int, first: int, last: int) -> bool:
    """True when a whole number of the parity of ``k`` lies in ``[first, last]``."""
    return any(q % 2 == k % 2 for q in range(first, min(last, first + 1) + 1))


def _check_n(n: int) -> int:
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a positive whole number, got {n!r}")
    return int(n)


def _check_g(granularity) -> Fraction:
    g = as_fraction(granularity)
    if g <= 0:
        raise ValueError(f"granularity must be positive, got {granularity!r}")
    return g


@dataclass(frozen=True)
class GrimResult:
    """The GRIM verdict on one mean.

    Attributes
    ----------
    consistent : bool
        True when some sum of ``n`` values on the scale gives the reported mean.
    mean, n, decimals, granularity : as given (granularity as a float)
    sums : tuple of float
        The consistent sums (on the value scale), empty when inconsistent.
    nearest_below, nearest_above : float
        The closest means ``k g / n`` just below and above the reported mean (for reporting
        what an honest value would have been); equal to the consistent mean when there is one.
    """

    consistent: bool
    mean: float
    n: int
    decimals: int
    granularity: float
    sums: tuple[float, ...]
    nearest_below: float
    nearest_above: float


def consistent_sums(mean, n: int, decimals: int, granularity=1) -> list[Fraction]:
    """The sums ``k g`` (exact fractions) whose mean over ``n`` rounds to ``mean``.

    Parameters
    ----------
    mean
        Reported mean (float, text or Fraction; read from its decimal text).
    n
        Number of values.
    decimals
        Decimal places the mean was reported to.
    granularity
        Step of the values (1 integer, 0.5 half points, 2 ODI complete forms; ``items`` summed
        scores of ``m`` items averaged: ``1/m``).
    """
    n = _check_n(n)
    g = _check_g(granularity)
    lo, hi = rounding_interval(mean, decimals)
    k_lo = math.ceil(lo * n / g)
    k_hi = math.floor(hi * n / g)
    return [k * g for k in range(k_lo, k_hi + 1)]


def grim(mean, n: int, decimals: int, granularity=1) -> GrimResult:
    """GRIM test of a mean reported to ``decimals`` places from ``n`` values on a scale.

    Returns
    -------
    GrimResult
        See its attributes. Example (Brown & Heathers 2017): a mean of 5.19 from 28 integer
        responses is inconsistent (145/28 = 5.18, 146/28 = 5.21).
    """
    n = _check_n(n)
    g = _check_g(granularity)
    sums = consistent_sums(mean, n, decimals, g)
    m = as_fraction(mean)
    k_below = math.floor(m * n / g)
    k_above = math.ceil(m * n / g)
    return GrimResult(
        consistent=bool(sums), mean=float(m), n=n, decimals=int(decimals),
        granularity=float(g), sums=tuple(float(s) for s in sums),
        nearest_below=float(k_below * g / n), nearest_above=float(k_above * g / n),
    )


def grim_percent(percent, n: int, decimals: int) -> GrimResult:
    """GRIM for a percentage of ``n`` patients: is ``100 k / n`` equal to it after rounding?

    The "values" are 0/100 per patient, so the granularity is 100.
    """
    return grim(percent, n, decimals, granularity=100)


@dataclass(frozen=True)
class GrimmerResult:
    """The GRIMMER verdict on one mean and SD.

    Attributes
    ----------
    consistent : bool
        True when GRIM passes and some admissible sum of squares gives the SD.
    grim_consistent : bool
        The GRIM verdict on the mean alone.
    reason : str
        ``"consistent"``, ``"GRIM inconsistent"``, ``"no whole sum of squares"`` (Allard test 1/2),
        ``"parity"`` (Allard test 3: only sums of squares of the wrong parity fit), or
        ``"SD too large for the bounds"`` when ``lower``/``upper`` were given.
    mean, sd, n, granularity : as given
    """

    consistent: bool
    grim_consistent: bool
    reason: str
    mean: float
    sd: float
    n: int
    granularity: float


def _max_var(n: int, mean: Fraction, lower: Fraction, upper: Fraction) -> Fraction:
    # The largest sample variance of n values in [lower, upper] with a given mean puts them at
    # the bounds (exact).
    p = (mean - lower) / (upper - lower)
    return max((upper - lower) ** 2 * p * (1 - p) * n / (n - 1), Fraction(0))


def grimmer(mean, sd, n: int, mean_decimals: int, sd_decimals: int | None = None,
            granularity=1, lower=None, upper=None) -> GrimmerResult:
    """GRIMMER test of a mean and sample SD (``ddof = 1``) from ``n`` values on a scale.

    Parameters
    ----------
    mean, sd
        Reported mean and standard deviation.
    n
        Number of values (at least 2).
    mean_decimals, sd_decimals
        Decimal places of each (``sd_decimals`` defaults to ``mean_decimals``).
    granularity
        Step of the values (see :func:`consistent_sums`).
    lower, upper
        Optional bounds of the scale; when both are given an SD above the largest possible for
        the mean (all values at the bounds) is inconsistent.

    Returns
    -------
    GrimmerResult
        Examples (rsprite2 / scrutiny): mean 5.21, SD 1.60, n 28 is consistent; mean 3.44,
        SD 2.47, n 18 is not (the only admissible sum of squares, 317, is odd while the sum,
        62, is even).
    """
    n = _check_n(n)
    if n < 2:
        raise ValueError(f"n must be at least 2 for an SD, got {n!r}")
    g = _check_g(granularity)
    sd_decimals = mean_decimals if sd_decimals is None else sd_decimals
    sums = consistent_sums(mean, n, mean_decimals, g)
    s_lo, s_hi = rounding_interval(sd, sd_decimals)
    s_lo = max(s_lo, Fraction(0))
    base = dict(mean=float(as_fraction(mean)), sd=float(as_fraction(sd)), n=n,
                granularity=float(g))
    if not sums:
        return GrimmerResult(False, False, "GRIM inconsistent", **base)
    if lower is not None and upper is not None:
        lo_b, hi_b = as_fraction(lower), as_fraction(upper)
        if hi_b <= lo_b:
            raise ValueError(f"upper ({upper!r}) must exceed lower ({lower!r})")
        if all(_max_var(n, s / n, lo_b, hi_b) < s_lo ** 2 for s in sums):
            return GrimmerResult(False, True, "SD too large for the bounds", **base)
    # sums are k g for the whole numbers k from sums[0] / g to sums[-1] / g.
    ok, any_integer = _sd_fits(int(sums[0] / g), int(sums[-1] / g), n, g, s_lo, s_hi)
    if ok:
        return GrimmerResult(True, True, "consistent", **base)
    return GrimmerResult(False, True, "parity" if any_integer else "no whole sum of squares",
                         **base)


def _sd_fits(k_lo: int, k_hi: int, n: int, g: Fraction, s_lo: Fraction,
             s_hi: Fraction) -> tuple[bool, bool]:
    # GRIMMER for the sums k g, k_lo <= k <= k_hi, of n values on steps of g, and an SD in
    # [s_lo, s_hi]: the sum of squares Q (units of g^2) is a whole number in
    # whole_sums_of_squares, of the parity of k. Returns (some k has such a Q, some k has a
    # whole Q at all).
    any_integer = False
    for k in range(k_lo, k_hi + 1):
        first, last = whole_sums_of_squares(k, n, g, s_lo, s_hi)
        if first > last:
            continue
        any_integer = True
        if parity_fits(k, first, last):
            return True, True
    return False, any_integer


def consistent_n(mean, decimals: int, granularity=1, n_values=range(1, 101),
                 sd=None, sd_decimals: int | None = None) -> list[int]:
    """The sample sizes among ``n_values`` for which the mean (and SD if given) pass.

    Used by the audit to say what would make an inconsistent figure consistent.
    """
    # The same verdicts as consistent_sums / grimmer for each n, with the rounding intervals
    # worked out once (on the first n, which checks the arguments as those functions do).
    out = []
    fixed = None
    for n in n_values:
        if sd is None:
            n = _check_n(n)
            if fixed is None:
                fixed = (_check_g(granularity),) + rounding_interval(mean, decimals)
            g, lo, hi = fixed
            ok = math.ceil(lo * n / g) <= math.floor(hi * n / g)
        elif not n >= 2:
            ok = False
        elif fixed is None:
            ok = grimmer(mean, sd, n, decimals, sd_decimals, granularity).consistent
            s_lo, s_hi = rounding_interval(sd, decimals if sd_decimals is None else sd_decimals)
            fixed = (_check_g(granularity),) + rounding_interval(mean, decimals) + (
                max(s_lo, Fraction(0)), s_hi)
        else:
            n = _check_n(n)
            g, lo, hi, s_lo, s_hi = fixed
            k_lo, k_hi = math.ceil(lo * n / g), math.floor(hi * n / g)
            ok = k_lo <= k_hi and _sd_fits(k_lo, k_hi, n, g, s_lo, s_hi)[0]
        if ok:
            out.append(int(n))
    return out
