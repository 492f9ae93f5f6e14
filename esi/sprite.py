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
* returns the sample once its mean and SD round to the targets with a margin of 1e-9 of the
  rounding interval (so no rounding convention decides it), restarting from a new random sample
  when a search stalls.

Every draw comes from a ``numpy.random.Generator`` built from the ``seed`` argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["SpriteError", "sprite", "sprite_many", "rounds_to", "SpriteTarget"]


class SpriteError(ValueError):
    """No sample satisfies the target (or none was found within the iteration budget)."""


def rounds_to(value: float, target: float, decimals: int, margin: float = 1e-9) -> bool:
    """True when ``value`` lies strictly inside the rounding interval of ``target``.

    The interval is ``target +/- 0.5 * 10**-decimals`` shrunk by ``margin`` times its width, so a
    value that passes rounds to ``target`` under any convention for halves.
    """
    h = 0.5 * 10.0 ** -decimals
    return abs(float(value) - float(target)) < h * (1 - margin)


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
        """True when ``values`` has this size, and mean and SD round to the targets."""
        v = np.asarray(values, dtype=float)
        return (v.size == self.n and rounds_to(v.mean(), self.mean, self.mean_decimals)
                and rounds_to(v.std(ddof=1), self.sd, self.sd_decimals))


def _as_units(x, step: float, name: str, m: int) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(x, dtype=float), (m,)).astype(float)
    u = arr / step
    if not np.all(np.isfinite(u)) or np.any(np.abs(u - np.round(u)) > 1e-9):
        raise ValueError(f"{name} must be multiples of step={step} (got {x!r})")
    return np.round(u).astype(np.int64)


def sprite(n: int, mean: float, sd: float, *, lower, upper, step: float = 1.0,
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
        forms, 1 for integers).
    mean_decimals, sd_decimals
        Decimal places of the targets.
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
        When no sum of free values is consistent with the mean within the bounds (GRIM), or no
        sample was found within the budget.
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
        lo = _as_units(lower, step, "lower", m)
        hi = _as_units(upper, step, "upper", m)
        if np.any(lo > hi):
            raise ValueError("lower must not exceed upper")
        self.n, self.m, self.mean, self.sd, self.step = n, m, mean, sd, step
        self.mean_decimals, self.sd_decimals = mean_decimals, sd_decimals
        self.fixed, self.lo, self.hi = fixed, lo, hi
        self.target = SpriteTarget(int(n), float(mean), float(sd), int(mean_decimals),
                                   int(sd_decimals))
        self.f_sum, self.f_sq = float(fixed.sum()), float((fixed ** 2).sum())
        self.sums: list[int] | None = None

    def q_window(self, k: int) -> tuple[float, float]:
        # Interval of the total sum of squares giving an SD inside the rounding interval.
        n, total = self.n, k * self.step + self.f_sum
        return ((n - 1) * self.s_lo ** 2 + total ** 2 / n,
                (n - 1) * self.s_hi ** 2 + total ** 2 / n)

    def check_sums(self) -> None:
        """Sums of the free values (integer units) consistent with the mean (GRIM) and the SD
        (GRIMMER); raises :class:`SpriteError` when there is none."""
        if self.sums is not None:
            return
        n, m, mean, sd, step = self.n, self.m, self.mean, self.sd, self.step
        f_sum, f_sq = self.f_sum, self.f_sq
        hm = 0.5 * 10.0 ** -self.mean_decimals
        k_lo = max(int(self.lo.sum()), math.ceil(((mean - hm) * n - f_sum) / step) - 1)
        k_hi = min(int(self.hi.sum()), math.floor(((mean + hm) * n - f_sum) / step) + 1)
        sums = [k for k in range(k_lo, k_hi + 1)
                if rounds_to((k * step + f_sum) / n, mean, self.mean_decimals)]
        if not sums:
            raise SpriteError(f"no sum of {m} values in steps of {step} within the bounds "
                              f"gives mean {mean} (n={n}): GRIM-inconsistent")
        hs = 0.5 * 10.0 ** -self.sd_decimals
        self.s_lo, self.s_hi = max(sd - hs * (1 - 1e-9), 0.0), sd + hs * (1 - 1e-9)
        s2 = step * step

        def grimmer_ok(k: int) -> bool:
            # GRIMMER on the free values: their sum of squares (units) is a whole number of
            # the parity of their sum k.
            q_lo, q_hi = self.q_window(k)
            first = math.ceil((q_lo - f_sq) / s2 - 1e-9)
            last = math.floor((q_hi - f_sq) / s2 + 1e-9)
            return any(q % 2 == k % 2 for q in range(first, min(last, first + 1) + 1))

        sums = [k for k in sums if grimmer_ok(k)]
        if not sums:
            raise SpriteError(f"no sum of squares of {m} values in steps of {step} gives SD "
                              f"{sd} with mean {mean} (n={n}): GRIMMER-inconsistent")
        self.sums = sums
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
            q_lo, q_hi = self.q_window(k)
            u = _random_start(self.lo, self.hi, k, rng, centre)
            if u is None:
                continue
            found = _climb(u, self.lo, self.hi, step, self.f_sq, q_lo, q_hi, rng, max_iter)
            if found is not None:
                values = found * step
                if self.target.matches(np.concatenate([values, self.fixed])):
                    return values.astype(float)
        raise SpriteError(f"no sample with mean {self.mean} and SD {self.sd} (n={self.n}, "
                          f"step {step}) found in {max_restarts} starts of {max_iter} moves")


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


def _climb(u, lo, hi, step, f_sq, q_lo, q_hi, rng, max_iter) -> np.ndarray | None:
    # Each move raises one value by a unit and lowers another (i != j), the pair (i, j) drawn
    # uniformly from the candidates listed in row-major order.
    #
    # Spreading (Q below the window): raise i, lower j, with u_i >= u_j, u_i < hi_i and
    # u_j > lo_j; Q changes by s2 * (2 d + 2), d = u_i - u_j. Contracting (Q above): lower i,
    # raise j, with d >= 2, u_i > lo_i and u_j < hi_j; Q changes by s2 * (2 - 2 d). The
    # candidates are the moves that do not overshoot the window, or every allowed move when
    # none of them does.
    #
    # The overshoot test, q + s2 * (2 d + 2) <= q_hi (resp. q + s2 * (2 - 2 d) >= q_lo), is
    # monotone in the whole number d, so it reads d <= d_max with d_max found by evaluating
    # that floating-point expression itself. Q is kept as an exact whole number (units
    # squared), and the number of values at a bound is tracked so the bound masks are built
    # only when some value is at one.
    u = u.copy()
    ul = u.tolist()  # the same values, for cheap scalar reads
    m = u.size
    col, row = u[:, None], u[None, :]  # views: they follow u
    s2 = step * step
    not_diag = ~np.eye(m, dtype=bool)
    usq = int(np.dot(u, u))
    n_hi = int(np.count_nonzero(u >= hi))
    n_lo = int(np.count_nonzero(u <= lo))
    lo_l, hi_l = lo.tolist(), hi.tolist()
    for _ in range(max_iter):
        q = float(usq) * s2 + f_sq
        if q_lo <= q <= q_hi:
            return u
        d = col - row  # d[i, j] = u_i - u_j
        spread = q < q_lo
        if spread:
            ok = d >= 0
            ok &= not_diag
            up, down = hi, lo
            d_max = _spread_d_max(q, s2, q_hi)
            d_min = 0
        else:
            ok = d >= 2
            up, down = lo, hi
            d_max = _contract_d_max(q, s2, q_lo)
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


def _spread_d_max(q: float, s2: float, q_hi: float) -> int:
    # The largest whole d with q + s2 * (2 d + 2) <= q_hi (true for all smaller d).
    d = math.floor((q_hi - q) / s2 / 2 - 1)
    if q + s2 * (2 * d + 2) <= q_hi:
        while q + s2 * (2 * (d + 1) + 2) <= q_hi:
            d += 1
        return d
    d -= 1
    while not q + s2 * (2 * d + 2) <= q_hi:
        d -= 1
    return d


def _contract_d_max(q: float, s2: float, q_lo: float) -> int:
    # The largest whole d with q + s2 * (2 - 2 d) >= q_lo (true for all smaller d).
    d = math.floor((q - q_lo) / s2 / 2 + 1)
    if q + s2 * (2 - 2 * d) >= q_lo:
        while q + s2 * (2 - 2 * (d + 1)) >= q_lo:
            d += 1
        return d
    d -= 1
    while not q + s2 * (2 - 2 * d) >= q_lo:
        d -= 1
    return d


def sprite_many(n: int, mean: float, sd: float, k: int, *, lower, upper, step: float = 1.0,
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
