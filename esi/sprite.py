"""SPRITE: samples of n values on a scale with a given mean and SD.

SPRITE (Sample Parameter Reconstruction via Iterative TEchniques; Heathers, Anaya, van der Zee &
Brown 2018, *PeerJ Preprints* 6:e26968v1) searches for samples of ``n`` values on a granular,
bounded scale whose mean and SD round to reported figures. The set of samples it finds shows
which distributions a published summary allows.

This implementation:

* works in integer units of the scale's ``step`` (values ``k * step``), with bounds per value
  (``lower``/``upper`` may be arrays: e.g. a pain *reduction* lies in
  ``[baseline - 10, baseline]`` for each patient);
* accepts ``fixed`` values that count in the mean and SD but are not moved (values from another
  grid, e.g. an Oswestry score from a form with skipped sections);
* picks a sum consistent with the mean (GRIM on the free values), starts from random normal
  draws with the target mean and SD (rounded to the scale, clipped to the bounds, then nudged to
  that sum), then moves one unit up on one value and one unit down on another (the sum, so
  the mean, never changes) choosing at random among the moves that bring the sum of squares
  toward the SD's rounding interval without overshooting it when such a move exists;
* returns the sample once its mean and SD round to the targets, restarting from a new random
  sample when a search stalls.

"Round to the targets" is the audit's one rounding rule (:func:`esi.grim.rounding_interval`):
a true value rounds to a reported one when it lies in the closed interval of half a unit of
the last decimal around it, so a mean of 2.375 matches a reported 2.38 (half up) and 2.37
(half even) alike, as GRIM and GRIMMER accept it. The admissible sums (GRIM on the free
values) and, for each, the window of whole sums of squares (GRIMMER) are worked out once in
exact arithmetic (:func:`esi.grim.whole_sums_of_squares`); the search then moves whole numbers
only, so no floating-point edge decides whether a sample fits.

Every draw comes from a ``numpy.random.Generator`` built from the ``seed`` argument.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd

from esi.grim import (
    as_fraction,
    parity_fits,
    rounding_interval,
    rounds_to,
    whole_sums_of_squares,
)

__all__ = ["SpriteError", "sprite", "sprite_many", "rounds_to", "SpriteTarget"]


class SpriteError(ValueError):
    """No sample satisfies the target (or none was found within the iteration budget)."""


@dataclass(frozen=True)
class SpriteTarget:
    """A reported summary a SPRITE sample must reproduce.

    Attributes
    ----------
    n : int
        Sample size, including any fixed values.
    mean, sd : float
        Reported mean and sample SD (``ddof = 1``).
    mean_decimals, sd_decimals : int
        Decimal places they were reported to.
    """

    n: int
    mean: float
    sd: float
    mean_decimals: int = 2
    sd_decimals: int = 2

    def matches(self, values: np.ndarray) -> bool:
        """True when ``values`` has this size, and its mean and SD round to the targets under
        some rounding convention (:func:`esi.grim.rounds_to`, a half counting for both
        neighbours)."""
        v = np.asarray(values, dtype=float)
        return bool(v.size == self.n and rounds_to(float(v.mean()), self.mean,
                                                   self.mean_decimals)
                    and rounds_to(float(v.std(ddof=1)), self.sd, self.sd_decimals))


def _as_units(x, step: float, name: str, m: int) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(x, dtype=float), (m,)).astype(float)
    u = arr / step
    if not np.all(np.isfinite(u)) or np.any(np.abs(u - np.round(u)) > 1e-9):
        raise ValueError(f"{name} must be multiples of step={step} (got {x!r})")
    return np.round(u).astype(np.int64)


def sprite(n: int, mean: float, sd: float, *, lower, upper, step: float | Fraction = 1.0,
           mean_decimals: int = 2, sd_decimals: int = 2, fixed=(), seed=None,
           max_iter: int = 5_000, max_restarts: int = 100) -> np.ndarray:
    """Find one sample whose mean and SD round to ``mean`` and ``sd``.

    Parameters
    ----------
    n
        Sample size, including the ``fixed`` values.
    mean, sd
        Targets (sample SD, ``ddof = 1``).
    lower, upper
        Bounds of each free value: scalars, or arrays of length ``n - len(fixed)``; multiples
        of ``step``.
    step
        Granularity of the free values (0.5 for half-point pain scores, 2 for complete ODI
        forms, 1 for integers): a number, read exactly from its decimal text, or a
        :class:`~fractions.Fraction` for a step no decimal writes exactly (2/9).
    mean_decimals, sd_decimals
        Decimal places of the targets. A sample fits when its mean and SD round to them
        under some rounding convention (:func:`esi.grim.rounding_interval`: a mean of 2.375
        fits a reported 2.38 and a reported 2.37).
    fixed
        Values that belong to the sample but are not searched (any real numbers).
    seed
        Seed or ``numpy.random.Generator``; the same seed gives the same sample.
    max_iter, max_restarts
        Search budget: moves per start and number of random starts.

    Returns
    -------
    numpy.ndarray
        The ``n - len(fixed)`` free values (floats, in the order of ``lower``/``upper``); with
        the fixed values they have the target mean and SD to the given decimals.

    Raises
    ------
    SpriteError
        When no sum of free values is consistent with the mean within the bounds (GRIM) or
        no sum of squares with the SD (GRIMMER), or no sample was found within the budget.
    ValueError
        For malformed arguments (naming the argument).
    """
    search = _Search(n, mean, sd, lower, upper, step, mean_decimals, sd_decimals, fixed)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    search.check_sums()
    return search.run(rng, max_iter, max_restarts)


class _Search:
    """The set-up of one SPRITE target (argument checks, admissible sums), done once and run
    from as many random starts as wanted; :func:`sprite_many` reuses it for every sample."""

    def __init__(self, n, mean, sd, lower, upper, step, mean_decimals, sd_decimals, fixed):
        if isinstance(n, bool) or int(n) != n or n < 2:
            raise ValueError(f"n must be a whole number of at least 2, got {n!r}")
        if not step > 0:
            raise ValueError(f"step must be positive, got {step!r}")
        if sd < 0:
            raise ValueError(f"sd must be non-negative, got {sd!r}")
        fixed = np.asarray(fixed, dtype=float).ravel()
        m = int(n) - fixed.size
        if m < 1:
            raise ValueError(f"fixed holds {fixed.size} values, leaving none of n={n} to "
                             "search")
        step_f = float(step)
        lo = _as_units(lower, step_f, "lower", m)
        hi = _as_units(upper, step_f, "upper", m)
        if np.any(lo > hi):
            raise ValueError("lower must not exceed upper")
        self.n, self.m, self.mean, self.sd, self.step = int(n), m, mean, sd, step_f
        self.mean_decimals, self.sd_decimals = mean_decimals, sd_decimals
        self.fixed, self.lo, self.hi = fixed, lo, hi
        self.target = SpriteTarget(int(n), float(mean), float(sd), int(mean_decimals),
                                   int(sd_decimals))
        # Exact values for the admissible sums: the step and the fixed values read from their
        # decimal text (a Fraction step, e.g. 2/9, is used as given).
        self.g = as_fraction(step)
        self.f_sum = sum((as_fraction(f) for f in fixed.tolist()), Fraction(0))
        self.f_sq = sum((as_fraction(f) ** 2 for f in fixed.tolist()), Fraction(0))
        self.sums: list[int] | None = None

    def check_sums(self) -> None:
        """Sums of the free values (integer units) consistent with the mean (GRIM) and, for
        each, the whole sums of squares consistent with the SD (GRIMMER); raises
        :class:`SpriteError` when there is none."""
        if self.sums is not None:
            return
        n, m, mean, sd = self.n, self.m, self.mean, self.sd
        sums, windows = _admissible(n, mean, sd, int(self.mean_decimals), int(self.sd_decimals),
                                    self.g, self.f_sum, self.f_sq, int(self.lo.sum()),
                                    int(self.hi.sum()))
        if sums is None:
            raise SpriteError(f"no sum of {m} values in steps of {self.step} within the bounds "
                              f"gives mean {mean} (n={n}): GRIM-inconsistent")
        if not sums:
            raise SpriteError(f"no sum of squares of {m} values in steps of {self.step} gives "
                              f"SD {sd} with mean {mean} (n={n}): GRIMMER-inconsistent")
        self.sums = list(sums)
        self.windows = windows
        self.sums_arr = np.asarray(sums)

    def run(self, rng, max_iter: int, max_restarts: int) -> np.ndarray:
        """One sample from up to ``max_restarts`` random starts (:class:`SpriteError` if
        none)."""
        self.check_sums()
        step = self.step
        centre = (self.mean / step, self.sd / step)
        for _ in range(max_restarts):
            # sums[rng.integers(len(sums))] draws exactly as rng.choice(sums).
            k = int(self.sums_arr[rng.integers(len(self.sums_arr))])
            q_first, q_last = self.windows[k]
            u = _random_start(self.lo, self.hi, k, rng, centre)
            if u is None:
                continue
            found = _climb(u, self.lo, self.hi, q_first, q_last, rng, max_iter)
            if found is not None:
                values = found * step
                if self.target.matches(np.concatenate([values, self.fixed])):
                    return values.astype(float)
        raise SpriteError(f"no sample with mean {self.mean} and SD {self.sd} (n={self.n}, "
                          f"step {step}) found in {max_restarts} starts of {max_iter} moves")


@functools.lru_cache(maxsize=256)
def _admissible(n: int, mean, sd, mean_decimals: int, sd_decimals: int, g: Fraction,
                f_sum: Fraction, f_sq: Fraction, k_min: int, k_max: int
                ) -> tuple[tuple[int, ...] | None, dict[int, tuple[int, int]]]:
    """The sums k (units of g) of the free values consistent with the mean, and for each the
    window of whole sums of squares consistent with the SD (exact; memoised: a target is
    searched many times). ``None`` when no sum fits the mean (GRIM), an empty tuple when
    none of them has a sum of squares that fits the SD (GRIMMER)."""
    # GRIM on the free values: (k g + fixed sum) / n in the mean's rounding interval.
    lo, hi = rounding_interval(mean, mean_decimals)
    k_lo = max(k_min, math.ceil((lo * n - f_sum) / g))
    k_hi = min(k_max, math.floor((hi * n - f_sum) / g))
    if k_lo > k_hi:
        return None, {}
    # GRIMMER on the free values: their sum of squares (units) is a whole number in the
    # window of the SD's rounding interval, of the parity of their sum k.
    s_lo, s_hi = rounding_interval(sd, sd_decimals)
    s_lo = max(s_lo, Fraction(0))
    sums, windows = [], {}
    for k in range(k_lo, k_hi + 1):
        first, last = whole_sums_of_squares(k, n, g, s_lo, s_hi, f_sum, f_sq)
        if first <= last and parity_fits(k, first, last):
            sums.append(k)
            windows[k] = (first, last)
    return tuple(sums), windows


def _random_start(lo: np.ndarray, hi: np.ndarray, k: int, rng,
                  centre: tuple[float, float]) -> np.ndarray | None:
    # Start near the target: normal draws with the target mean and SD (in units), rounded and
    # clipped to the bounds, then nudged to the chosen sum. Short climbs, varied samples.
    m, s = centre
    u = np.clip(np.round(m + s * rng.standard_normal(lo.size)), lo, hi).astype(np.int64)
    diff = k - int(u.sum())
    while diff != 0:
        room = (hi - u) if diff > 0 else (u - lo)
        idx = np.flatnonzero(room > 0)
        if idx.size == 0:
            return None
        i = idx[rng.integers(idx.size)]  # draws exactly as rng.choice(idx)
        take = min(abs(diff), int(room[i]), int(rng.integers(1, abs(diff) + 1)))
        u[i] += take if diff > 0 else -take
        diff -= take if diff > 0 else -take
    return u


def _climb(u, lo, hi, q_first, q_last, rng, max_iter) -> np.ndarray | None:
    # Each move raises one value by a unit and lowers another (i != j), the pair (i, j) drawn
    # uniformly from the candidates listed in row-major order, until the sum of squares Q of
    # the values (units, a whole number kept exactly) lies in the window [q_first, q_last].
    #
    # Spreading (Q below the window): raise i, lower j, with u_i >= u_j, u_i < hi_i and
    # u_j > lo_j; Q changes by 2 d + 2, d = u_i - u_j. Contracting (Q above): lower i,
    # raise j, with d >= 2, u_i > lo_i and u_j < hi_j; Q changes by 2 - 2 d. The candidates
    # are the moves that do not overshoot the window (d <= d_max), or every allowed move when
    # none of them does. The number of values at a bound is tracked so the bound masks are
    # built only when some value is at one.
    u = u.copy()
    ul = u.tolist()  # the same values, for cheap scalar reads
    m = u.size
    col, row = u[:, None], u[None, :]  # views: they follow u
    not_diag = ~np.eye(m, dtype=bool)
    usq = int(np.dot(u, u))
    n_hi = int(np.count_nonzero(u >= hi))
    n_lo = int(np.count_nonzero(u <= lo))
    lo_l, hi_l = lo.tolist(), hi.tolist()
    for _ in range(max_iter):
        if q_first <= usq <= q_last:
            return u
        d = col - row  # d[i, j] = u_i - u_j
        spread = usq < q_first
        if spread:
            ok = d >= 0
            ok &= not_diag
            up, down = hi, lo
            d_max = (q_last - usq - 2) // 2  # usq + 2 d + 2 <= q_last
            d_min = 0
        else:
            ok = d >= 2
            up, down = lo, hi
            d_max = (usq + 2 - q_first) // 2  # usq + 2 - 2 d >= q_first
            d_min = 2
        # Rows move toward `up`, columns toward `down`: neither may be there already.
        if (n_hi if spread else n_lo):
            ok &= (u != up)[:, None]
        if (n_lo if spread else n_hi):
            ok &= (u != down)[None, :]
        if d_max < d_min:  # no move within the window
            cand = ok.ravel().nonzero()[0]
        elif d_max >= max(ul) - min(ul):  # every allowed move stays within it
            cand = ok.ravel().nonzero()[0]
        else:
            good = d <= d_max
            good &= ok
            cand = good.ravel().nonzero()[0]
            if cand.size == 0:
                cand = ok.ravel().nonzero()[0]
        if cand.size == 0:
            return None
        i, j = divmod(int(cand[rng.integers(cand.size)]), m)
        ui, uj = ul[i], ul[j]
        if spread:
            usq += 2 * (ui - uj) + 2
            n_hi += (ui + 1 == hi_l[i]) - (uj == hi_l[j])
            n_lo += (uj - 1 == lo_l[j]) - (ui == lo_l[i])
            ul[i] = u[i] = ui + 1
            ul[j] = u[j] = uj - 1
        else:
            usq += 2 - 2 * (ui - uj)
            n_lo += (ui - 1 == lo_l[i]) - (uj == lo_l[j])
            n_hi += (uj + 1 == hi_l[j]) - (ui == hi_l[i])
            ul[i] = u[i] = ui - 1
            ul[j] = u[j] = uj + 1
    return None


def sprite_many(n: int, mean: float, sd: float, k: int, *, lower, upper,
                step: float | Fraction = 1.0,
                mean_decimals: int = 2, sd_decimals: int = 2, seed=None,
                max_attempts: int | None = None) -> pd.DataFrame:
    """Up to ``k`` distinct SPRITE samples (as sorted multisets) with common bounds.

    Parameters
    ----------
    n, mean, sd, lower, upper, step, mean_decimals, sd_decimals
        As :func:`sprite` (``lower``/``upper`` scalars here: the values are exchangeable).
    k
        Number of distinct samples wanted.
    seed
        Seed of the whole search.
    max_attempts
        Searches tried in all (default ``20 * k``); fewer than ``k`` samples are returned when
        the summary allows fewer.

    Returns
    -------
    pandas.DataFrame
        One row per value: ``sample`` (0, 1, ...), ``position`` (0 ... n-1, ascending value),
        ``value``.
    """
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"k must be a positive whole number, got {k!r}")
    if np.ndim(lower) or np.ndim(upper):
        raise ValueError("lower and upper must be scalars in sprite_many (exchangeable values)")
    rng = np.random.default_rng(seed)
    seen: set[tuple[float, ...]] = set()
    found: list[tuple[float, ...]] = []
    attempts = max_attempts if max_attempts is not None else 20 * int(k)
    search = None
    for _ in range(attempts):
        if len(seen) >= k:
            break
        # sprite(..., seed=rng, max_restarts=20), with the set-up done once.
        if search is None:
            search = _Search(n, mean, sd, lower, upper, step, mean_decimals, sd_decimals, ())
        values = search.run(rng, max_iter=5_000, max_restarts=20)
        key = tuple(np.sort(values).tolist())
        if key in seen:
            continue
        seen.add(key)
        found.append(key)
    if not found:
        return pd.DataFrame([], columns=["sample", "position", "value"])
    m = len(found[0])
    return pd.DataFrame({"sample": np.repeat(np.arange(len(found)), m),
                         "position": np.tile(np.arange(m), len(found)),
                         "value": np.array(found, dtype=float).ravel()})
