"""Rank tests: Mann-Whitney U (Wilcoxon rank-sum) and the Wilcoxon signed-rank test.

The choice between the exact and the normal-approximation P-value follows R's
``wilcox.test`` defaults so that the two agree number for number:

* ``exact=None`` (default): exact when both samples (rank-sum) or the number of non-zero
  differences (signed-rank) are below 50 *and* there are no ties (and, signed-rank, no zero
  differences); otherwise the normal approximation with tie correction and, when
  ``correct=True`` (default, as R), a continuity correction of 0.5.
* ``exact=True`` with ties or zero differences raises ValueError (R would warn and quietly
  fall back to the approximation; we never switch method behind the caller's back).
* Zero paired differences are dropped before ranking (R's behaviour, scipy's
  ``zero_method="wilcox"``).

Checked against R ``wilcox.test(x, y)`` and ``wilcox.test(x, y, paired = TRUE)`` (statistic
W / V and p.value) in ``tests/test_stats_reference.py``.

The choice of method lives in :func:`mann_whitney_uses_exact` and
:func:`signed_rank_uses_exact`, and the exact Mann-Whitney P in :func:`mann_whitney_exact_p`
(the null distribution of U for ``(n1, n2)`` worked out once, in whole numbers, and looked up
for any number of statistics): the single tests here, the many-rows functions
(:func:`mann_whitney_p_rows`, :func:`wilcoxon_p_rows`) and so the power simulation
(:mod:`esi.sensitivity.power`) and the SPRITE P narrowing (:mod:`esi.audit`) all use them, so
a simulation runs the very test the analysis runs.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import stats

from esi.stats._result import TestResult, as_clean_array, check_alternative
from esi.stats.parametric import paired_differences

__all__ = [
    "EXACT_BELOW",
    "mann_whitney",
    "mann_whitney_exact_p",
    "mann_whitney_p_from_u",
    "mann_whitney_p_rows",
    "mann_whitney_uses_exact",
    "signed_rank_uses_exact",
    "wilcoxon_p_rows",
    "wilcoxon_signed_rank",
]

_NAN = float("nan")

#: R's ``wilcox.test`` default: the exact P when the sample sizes (rank sum: both groups;
#: signed rank: the non-zero differences) are below this and there are no ties (or zeros).
EXACT_BELOW = 50


def _normal_p(centred, sigma, alternative: str, correct: bool):
    """P of a rank statistic minus its null mean, by the normal approximation with R's
    continuity correction (``wilcox.test(correct = TRUE)``); NaN where ``sigma`` is 0.
    Scalars or arrays (element-wise, the same arithmetic)."""
    scalar = np.ndim(centred) == 0 and np.ndim(sigma) == 0
    if scalar and not sigma > 0:
        return _NAN
    corr = 0.0
    if correct:
        corr = {"two-sided": np.sign(centred) * 0.5, "greater": 0.5, "less": -0.5}[alternative]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (centred - corr) / sigma
    if alternative == "two-sided":
        p = 2 * np.minimum(stats.norm.cdf(z), stats.norm.sf(z))
    else:
        p = stats.norm.sf(z) if alternative == "greater" else stats.norm.cdf(z)
    if scalar:
        return p
    return np.where(np.asarray(sigma) > 0, p, _NAN)


def _check_exact(exact) -> None:
    if exact not in (None, True, False):
        raise ValueError(f"exact must be None, True or False, got {exact!r}")


def mann_whitney_uses_exact(n1: int, n2: int, ties: bool, exact: bool | None = None) -> bool:
    """Does the Mann-Whitney test use the exact null distribution? (R's ``wilcox.test``.)

    ``exact=None``: yes when both samples are smaller than :data:`EXACT_BELOW` and there are
    no ties; ``True``: yes (ValueError with ties); ``False``: no (normal approximation).
    """
    _check_exact(exact)
    if exact is None:
        return n1 < EXACT_BELOW and n2 < EXACT_BELOW and not ties
    if exact and ties:
        raise ValueError("exact=True is impossible with tied values; pass exact=None or False")
    return bool(exact)


def signed_rank_uses_exact(n: int, ties_or_zeros: bool, exact: bool | None = None) -> bool:
    """Does the signed-rank test use the exact null distribution? (R's ``wilcox.test``.)

    ``n`` counts the non-zero differences. ``exact=None``: yes when ``n`` is smaller than
    :data:`EXACT_BELOW` and there are no tied or zero differences; ``True``: yes (ValueError
    with ties or zeros); ``False``: no.
    """
    _check_exact(exact)
    if exact is None:
        return n < EXACT_BELOW and not ties_or_zeros
    if exact and ties_or_zeros:
        raise ValueError(
            "exact=True is impossible with tied or zero differences; pass exact=None or False"
        )
    return bool(exact)


@functools.lru_cache(maxsize=64)
def _u_null_cdf(n1: int, n2: int) -> np.ndarray:
    # P(U <= u), u = 0 .. n1 n2, for U of n1 against n2 untied values under the null: the
    # counts are the coefficients of the Gaussian binomial [n1 + n2 choose n1] in q, built as
    # prod_{i=1..n1} (1 - q^(n2 + i)) / (1 - q^i) in whole numbers (Python ints: exact at any
    # size), then each cumulative count divided by C(n1 + n2, n1) once (correctly rounded).
    n1, n2 = min(n1, n2), max(n1, n2)
    counts = [1]
    for i in range(1, n1 + 1):
        grown = counts + [0] * (n2 + i)
        for j in range(len(counts)):  # times (1 - q^(n2 + i))
            grown[j + n2 + i] -= counts[j]
        for j in range(i, len(grown)):  # divided by (1 - q^i)
            grown[j] += grown[j - i]
        counts = grown[: len(counts) + n2]
    total = sum(counts)
    cdf, running = np.empty(len(counts)), 0
    for u, c in enumerate(counts):
        running += c
        cdf[u] = running / total
    cdf.setflags(write=False)
    return cdf


def mann_whitney_exact_p(u1, n1: int, n2: int, alternative: str = "two-sided") -> np.ndarray:
    """Exact Mann-Whitney P-values of untied samples, for any number of statistics at once.

    Parameters
    ----------
    u1
        U of the cases (pairs with the case above the control): whole numbers, any shape.
    n1, n2
        Sample sizes (cases, controls).
    alternative
        ``"two-sided"``, ``"greater"`` (cases larger) or ``"less"``.

    Returns
    -------
    numpy.ndarray
        P-values, the shape of ``u1``: ``P(U >= u1)`` (greater), ``P(U <= u1)`` (less), or
        twice the smaller of the two, at most 1 (two-sided), as R's ``wilcox.test`` (exact)
        and ``scipy.stats.mannwhitneyu(method="exact")``. The null distribution of U for
        ``(n1, n2)`` is computed once in whole numbers and reused.
    """
    check_alternative(alternative)
    u = np.asarray(u1, dtype=float)
    if np.any(u != np.round(u)) or np.any(u < 0) or np.any(u > n1 * n2):
        raise ValueError(f"u1 must hold whole numbers from 0 to n1 * n2 = {n1 * n2}")
    cdf = _u_null_cdf(int(n1), int(n2))
    k = u.astype(np.int64)
    below = cdf[k]  # P(U <= u1)
    above = cdf[n1 * n2 - k]  # P(U >= u1), by symmetry
    if alternative == "less":
        return below
    if alternative == "greater":
        return above
    return np.minimum(2 * np.minimum(below, above), 1.0)


def mann_whitney(
    x, y, *, alternative: str = "two-sided", exact: bool | None = None, correct: bool = True
) -> TestResult:
    """Mann-Whitney U test (Wilcoxon rank-sum) of x versus y.

    Parameters
    ----------
    x, y
        The two samples (cases, controls); missing values are dropped.
    alternative
        ``"two-sided"``, ``"less"`` or ``"greater"`` (x tends to be smaller / larger than y).
    exact
        ``None``: R's rule (exact if both n < 50 and no ties). ``True``: exact, ValueError if
        there are ties. ``False``: normal approximation.
    correct
        Continuity correction in the normal approximation (R's ``correct``).

    Returns
    -------
    TestResult
        statistic = W (R's convention: number of (x, y) pairs with x > y plus half the ties,
        i.e. scipy's U of x), p_value, method, n1, n2. estimate and the interval are NaN
        (the Hodges-Lehmann shift is not computed).
    """
    check_alternative(alternative)
    _check_exact(exact)
    x = as_clean_array(x, "x")
    y = as_clean_array(y, "y")
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return TestResult("mann_whitney", _NAN, "W", _NAN, _NAN, alternative, _NAN, _NAN, _NAN,
                          0.95, n1, n2, "undefined: empty sample")
    ties = len(np.unique(np.concatenate([x, y]))) < n1 + n2
    use_exact = mann_whitney_uses_exact(n1, n2, ties, exact)
    w = float(np.sum(x[:, None] > y[None, :]) + 0.5 * np.sum(x[:, None] == y[None, :]))
    if use_exact:
        p = float(mann_whitney_exact_p(w, n1, n2, alternative))
        method = "exact"
    else:
        ranks = stats.rankdata(np.concatenate([x, y]))
        _, counts = np.unique(ranks, return_counts=True)
        n = n1 + n2
        sigma = np.sqrt(n1 * n2 / 12.0 * ((n + 1) - np.sum(counts**3 - counts) / (n * (n - 1))))
        p = _normal_p(w - n1 * n2 / 2.0, sigma, alternative, correct)
        method = "normal approximation, tie correction" + (
            ", continuity correction" if correct else ""
        )
    return TestResult("mann_whitney", w, "W", _NAN, float(min(p, 1.0)), alternative, _NAN,
                      _NAN, _NAN, 0.95, n1, n2, method)


def wilcoxon_signed_rank(
    x, y, *, alternative: str = "two-sided", exact: bool | None = None, correct: bool = True
) -> TestResult:
    """Wilcoxon signed-rank test on the paired differences x - y.

    Parameters
    ----------
    x, y
        Equal-length sequences aligned by pair. Pairs with a missing member are dropped, then
        zero differences are dropped (R's rule).
    alternative
        ``"two-sided"``, ``"less"`` or ``"greater"`` (differences tend to be negative / positive).
    exact
        ``None``: R's rule (exact if fewer than 50 non-zero differences, no ties, no zeros).
        ``True``: exact, ValueError with ties or zeros. ``False``: normal approximation.
    correct
        Continuity correction in the normal approximation.

    Returns
    -------
    TestResult
        statistic = V (sum of the ranks of the positive differences, R's convention), p_value,
        method, n1 = n2 = number of complete pairs (zero differences included in n but not in
        the ranks). estimate and interval are NaN.
    """
    check_alternative(alternative)
    _check_exact(exact)
    d_all = paired_differences(x, y)
    n_pairs = len(d_all)
    zeros = bool(np.any(d_all == 0))
    d = d_all[d_all != 0]
    n = len(d)
    if n == 0:
        return TestResult("wilcoxon", _NAN, "V", _NAN, _NAN, alternative, _NAN, _NAN, _NAN,
                          0.95, n_pairs, n_pairs, "undefined: no non-zero differences")
    ranks = stats.rankdata(np.abs(d))
    v = float(np.sum(ranks[d > 0]))
    ties = len(np.unique(np.abs(d))) < n
    use_exact = signed_rank_uses_exact(n, ties or zeros, exact)
    if use_exact:
        p = stats.wilcoxon(d, alternative=alternative, method="exact").pvalue
        method = "exact"
    else:
        _, counts = np.unique(ranks, return_counts=True)
        sigma = np.sqrt(n * (n + 1) * (2 * n + 1) / 24.0 - np.sum(counts**3 - counts) / 48.0)
        p = _normal_p(v - n * (n + 1) / 4.0, sigma, alternative, correct)
        method = "normal approximation, tie correction" + (
            ", continuity correction" if correct else ""
        ) + (", zero differences dropped" if zeros else "")
    return TestResult("wilcoxon", v, "V", _NAN, float(min(p, 1.0)), alternative, _NAN, _NAN,
                      _NAN, 0.95, n_pairs, n_pairs, method)


def mann_whitney_p_rows(x, y, alternative: str = "two-sided", continuity: bool = True,
                        exact: bool | None = False) -> np.ndarray:
    """Mann-Whitney P-values of many samples at once.

    Parameters
    ----------
    x, y
        Arrays of shape ``(..., n1)`` and ``(..., n2)`` whose leading axes broadcast; each
        position along them is one comparison of ``x[...]`` (cases) with ``y[...]``.
    alternative
        ``"two-sided"``, ``"greater"`` (cases larger) or ``"less"``.
    continuity
        Continuity correction of 0.5 (normal approximation).
    exact
        ``False`` (default): the normal approximation with tie correction for every row;
        ``None``: each row as :func:`mann_whitney` decides (exact when both samples are below
        :data:`EXACT_BELOW` and the row has no ties, :func:`mann_whitney_uses_exact`), so the
        values are those of ``mann_whitney(x[i], y[i])``; ``True``: exact (ValueError if a
        row has ties).

    Returns
    -------
    numpy.ndarray
        P-values with the broadcast leading shape.

    Notes
    -----
    With ``exact=False``, equal to ``scipy.stats.mannwhitneyu(x, y, axis=-1,
    method="asymptotic", use_continuity=continuity)`` (the large-sample form of R's
    ``wilcox.test(x, y, exact = FALSE, correct = continuity)``); checked against it in
    ``tests/test_stats.py``. Average ranks and the tie correction are computed for all rows
    together from one argsort, which is what makes simulation and SPRITE narrowing fast.
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less', got "
                         f"{alternative!r}")
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    lead = np.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    n1, n2 = x.shape[-1], y.shape[-1]
    if n1 < 1 or n2 < 1:
        raise ValueError("x and y need at least one value each along the last axis")
    x = np.broadcast_to(x, lead + (n1,)).reshape(-1, n1)
    y = np.broadcast_to(y, lead + (n2,)).reshape(-1, n2)
    n = n1 + n2
    both = np.concatenate([x, y], axis=1)
    order = np.argsort(both, axis=1, kind="stable")
    ordered = np.take_along_axis(both, order, axis=1)
    pos = np.broadcast_to(np.arange(n), ordered.shape)
    first = np.ones(ordered.shape, dtype=bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    last = np.ones(ordered.shape, dtype=bool)
    last[:, :-1] = first[:, 1:]
    start = np.maximum.accumulate(np.where(first, pos, 0), axis=1)
    end = np.minimum.accumulate(np.where(last, pos, n - 1)[:, ::-1], axis=1)[:, ::-1]
    rank = (start + end) / 2 + 1
    size = (end - start + 1).astype(float)
    ties = np.where(first, size**3 - size, 0.0).sum(axis=1)
    u1 = np.where(order < n1, rank, 0.0).sum(axis=1) - n1 * (n1 + 1) / 2
    return mann_whitney_p_from_u(u1, ties, n1, n2, alternative, continuity,
                                 exact=exact).reshape(lead)


def mann_whitney_p_from_u(u1, ties, n1: int, n2: int, alternative: str = "two-sided",
                          continuity: bool = True, exact: bool | None = False) -> np.ndarray:
    """Mann-Whitney P-values from U and the tie sum.

    Parameters
    ----------
    u1
        U of the cases: pairs with the case above the control, ties counting one half.
    ties
        Sum of ``t**3 - t`` over the groups of ``t`` tied values of both samples together
        (0 without ties).
    n1, n2
        Sample sizes (cases, controls).
    alternative, continuity
        As :func:`mann_whitney_p_rows`.
    exact
        ``False``: normal approximation everywhere; ``None``: exact where
        :func:`mann_whitney_uses_exact` says so (no ties, both samples below
        :data:`EXACT_BELOW`), as :func:`mann_whitney`; ``True``: exact (ValueError with ties).

    Returns
    -------
    numpy.ndarray
        P-values, the shape of ``u1`` and ``ties`` broadcast. The arithmetic of
        :func:`mann_whitney_p_rows` (which calls this), shared by the callers that get U and
        the tie sum faster their own way (the power simulation, the SPRITE P narrowing); the
        exact P from :func:`mann_whitney_exact_p`.
    """
    _check_exact(exact)
    n = n1 + n2
    u1, ties = np.broadcast_arrays(np.asarray(u1, dtype=float), np.asarray(ties, dtype=float))
    u = {"two-sided": np.maximum(u1, n1 * n2 - u1), "greater": u1,
         "less": n1 * n2 - u1}[alternative]
    sd = np.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))) if n > 1 else np.zeros(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (u - n1 * n2 / 2 - 0.5 * continuity) / sd
    p = np.clip(stats.norm.sf(z) * (2 if alternative == "two-sided" else 1), 0, 1)
    if exact is False:
        return p
    untied = ties == 0
    if exact is True:
        if not untied.all():
            raise ValueError("exact=True is impossible with tied values; pass exact=None or "
                             "False")
        use = untied
    else:
        use = untied & mann_whitney_uses_exact(n1, n2, False)
    if use.any():
        p = np.array(p, dtype=float)
        p[use] = mann_whitney_exact_p(u1[use], n1, n2, alternative)
    return p


def wilcoxon_p_rows(d, alternative: str = "two-sided", exact: bool | None = None,
                    correct: bool = True) -> np.ndarray:
    """Wilcoxon signed-rank P-values of many rows of paired differences at once.

    Parameters
    ----------
    d
        Array ``(..., n)`` of paired differences (cases minus controls), one test per row.
    alternative, exact, correct
        As :func:`wilcoxon_signed_rank`; ``exact=None`` decides row by row as it does
        (:func:`signed_rank_uses_exact`).

    Returns
    -------
    numpy.ndarray
        P-values, the leading shape of ``d``: those of ``wilcoxon_signed_rank(d[i], 0)``
        for every row. Rows without ties or zero differences are computed together (exact:
        ``scipy.stats.wilcoxon(method="exact")``, the call of the single test; approximation:
        the same arithmetic); the rare others row by row through
        :func:`wilcoxon_signed_rank`.
    """
    check_alternative(alternative)
    _check_exact(exact)
    d = np.asarray(d, dtype=float)
    lead, n = d.shape[:-1], d.shape[-1]
    rows = d.reshape(-1, n)
    out = np.empty(rows.shape[0])
    srt = np.sort(np.abs(rows), axis=1)
    plain = (srt[:, 0] > 0) & np.all(np.diff(srt, axis=1) > 0, axis=1)
    plain &= np.isfinite(rows).all(axis=1)
    if plain.any():
        r = rows[plain]
        if signed_rank_uses_exact(n, False, exact):
            out[plain] = stats.wilcoxon(r, alternative=alternative, method="exact",
                                        axis=1).pvalue
        else:
            ranks = stats.rankdata(np.abs(r), axis=1)
            v = np.where(r > 0, ranks, 0.0).sum(axis=1)
            sigma = np.sqrt(n * (n + 1) * (2 * n + 1) / 24.0 - 0.0 / 48.0)
            out[plain] = np.minimum(_normal_p(v - n * (n + 1) / 4.0, np.full(v.shape, sigma),
                                              alternative, correct), 1.0)
    for i in np.flatnonzero(~plain):
        out[i] = wilcoxon_signed_rank(rows[i], np.zeros(n), alternative=alternative,
                                      exact=exact, correct=correct).p_value
    return out.reshape(lead)
