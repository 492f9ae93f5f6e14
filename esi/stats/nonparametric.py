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
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from esi.stats._result import TestResult, as_clean_array, check_alternative
from esi.stats.parametric import paired_differences

__all__ = ["mann_whitney", "mann_whitney_p_rows", "wilcoxon_signed_rank"]

_NAN = float("nan")


def _normal_p(centred: float, sigma: float, alternative: str, correct: bool) -> float:
    """P of a rank statistic minus its null mean, by the normal approximation with R's
    continuity correction (``wilcox.test(correct = TRUE)``); NaN when ``sigma`` is 0."""
    if not sigma > 0:
        return _NAN
    corr = 0.0
    if correct:
        corr = {"two-sided": np.sign(centred) * 0.5, "greater": 0.5, "less": -0.5}[alternative]
    z = (centred - corr) / sigma
    return {
        "two-sided": 2 * min(stats.norm.cdf(z), stats.norm.sf(z)),
        "greater": stats.norm.sf(z),
        "less": stats.norm.cdf(z),
    }[alternative]

def _check_exact(exact) -> None:
    if exact not in (None, True, False):
        raise ValueError(f"exact must be None, True or False, got {exact!r}")


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
    if exact is None:
        use_exact = n1 < 50 and n2 < 50 and not ties
    elif exact and ties:
        raise ValueError("exact=True is impossible with tied values; pass exact=None or False")
    else:
        use_exact = bool(exact)
    w = float(np.sum(x[:, None] > y[None, :]) + 0.5 * np.sum(x[:, None] == y[None, :]))
    if use_exact:
        p = stats.mannwhitneyu(x, y, alternative=alternative, method="exact").pvalue
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
    if exact is None:
        use_exact = n < 50 and not ties and not zeros
    elif exact and (ties or zeros):
        raise ValueError(
            "exact=True is impossible with tied or zero differences; pass exact=None or False"
        )
    else:
        use_exact = bool(exact)
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


def mann_whitney_p_rows(x, y, alternative: str = "two-sided",
                        continuity: bool = True) -> np.ndarray:
    """Mann-Whitney P-values of many samples at once (normal approximation, tie-corrected).

    Parameters
    ----------
    x, y
        Arrays of shape ``(..., n1)`` and ``(..., n2)`` whose leading axes broadcast; each
        position along them is one comparison of ``x[...]`` (cases) with ``y[...]``.
    alternative
        ``"two-sided"``, ``"greater"`` (cases larger) or ``"less"``.
    continuity
        Continuity correction of 0.5.

    Returns
    -------
    numpy.ndarray
        P-values with the broadcast leading shape.

    Notes
    -----
    Equal to ``scipy.stats.mannwhitneyu(x, y, axis=-1, method="asymptotic",
    use_continuity=continuity)`` (the large-sample form of R's ``wilcox.test(x, y, exact =
    FALSE, correct = continuity)``); checked against it in ``tests/test_stats.py``. Average
    ranks and the tie correction are computed for all rows together from one argsort, which
    is what makes simulation and SPRITE narrowing fast.
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
    return mann_whitney_p_from_u(u1, ties, n1, n2, alternative, continuity).reshape(lead)


def mann_whitney_p_from_u(u1, ties, n1: int, n2: int, alternative: str = "two-sided",
                          continuity: bool = True) -> np.ndarray:
    """Mann-Whitney P-values (normal approximation) from U and the tie sum.

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

    Returns
    -------
    numpy.ndarray
        P-values, the shape of ``u1`` and ``ties`` broadcast. The arithmetic of
        :func:`mann_whitney_p_rows` (which calls this), shared by the callers that get U and
        the tie sum faster their own way (the power simulation, the SPRITE P narrowing).
    """
    n = n1 + n2
    u1 = np.asarray(u1, dtype=float)
    u = {"two-sided": np.maximum(u1, n1 * n2 - u1), "greater": u1,
         "less": n1 * n2 - u1}[alternative]
    sd = np.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))) if n > 1 else np.zeros(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (u - n1 * n2 / 2 - 0.5 * continuity) / sd
    p = stats.norm.sf(z) * (2 if alternative == "two-sided" else 1)
    return np.clip(p, 0, 1)
