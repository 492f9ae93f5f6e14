"""Tests on 2 x 2 tables: Fisher's exact, chi-square (with / without Yates), McNemar, binomial.

Table orientation used throughout::

                 event   no event
    cases          a        b
    controls       c        d

so an odds ratio above 1 means higher odds of the event among cases, and
``alternative="greater"`` tests that. For paired tables (McNemar) rows are the case's
outcome (event, no event) and columns the matched control's, so ``b`` = case event and
control no event, ``c`` = case no event and control event.

Checked against R ``fisher.test`` (p.value, the conditional maximum-likelihood estimate of the
odds ratio and its exact conf.int), ``chisq.test(correct = TRUE/FALSE)``, ``binom.test`` (exact
McNemar = binom.test(b, b + c)) and ``mcnemar.test`` in ``tests/test_stats_reference.py``.
The conditional odds ratio and its interval are compared with fisher.test's own code run with
a tight root-finding tolerance (``uniroot(tol = 1e-14)``) to 1e-9: see
:func:`conditional_odds_ratio` for why fisher.test's default output differs in the 4th digit.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import stats
from scipy.stats.contingency import odds_ratio as _scipy_odds_ratio

from esi.stats._result import TestResult, check_alternative, check_confidence

__all__ = [
    "as_table",
    "fisher_exact",
    "fisher_p_values",
    "chi2_test",
    "chi2_values",
    "mcnemar_exact",
    "mcnemar_chi2",
    "binomial_test",
    "conditional_odds_ratio",
]

_NAN = float("nan")


def as_table(table, name: str = "table") -> np.ndarray:
    """Validate a 2 x 2 table of non-negative integer counts and return it as an int array.

    Raises
    ------
    ValueError
        If the shape is not 2 x 2 or a count is negative or not a whole number.
    """
    arr = np.asarray(table, dtype=float)
    if arr.shape != (2, 2):
        raise ValueError(f"{name} must be a 2 x 2 table of counts, got shape {arr.shape}")
    if np.any(np.isnan(arr)) or np.any(arr < 0) or np.any(arr != np.round(arr)):
        raise ValueError(f"{name} must hold non-negative whole counts, got {arr.tolist()}")
    return arr.astype(np.int64)


def conditional_odds_ratio(table, *, alternative: str = "two-sided", confidence: float = 0.95):
    """Conditional maximum-likelihood odds ratio with its exact interval (R ``fisher.test``).

    Returns
    -------
    tuple of float
        (estimate, ci_low, ci_high). This is the MLE of the noncentral hypergeometric
        distribution, *not* the sample odds ratio ad/bc (they differ in small tables). The
        estimate is 0 or infinite, and a limit 0 or infinite, when the count sits at an end of
        its support, as in R.

    Notes
    -----
    *Zero margin.* When a row or a column of the table is empty (e.g. ``[[0, 0], [5, 7]]``)
    the table's conditional distribution has a single point, so the likelihood does not
    depend on the odds ratio: it is not estimable, and esi returns NaN for the estimate and
    both limits. R's ``fisher.test`` (4.2.2) does not fail there: it returns estimate 0 and
    interval ``[0, Inf]`` for every alternative. Its 0 is an artefact of the order of its
    checks (the count equals both ends of its support; ``x == lo``, giving 0, is tested before
    ``x == hi``, which would give Inf); its interval says "any odds ratio". The P-values
    agree (1). Both are checked in ``tests/test_stats_reference.py``.

    *Precision.* The estimate and limits are roots found by ``scipy.stats.contingency.
    odds_ratio`` (brentq, ``xtol = 1e-13``). R's ``fisher.test`` finds them with ``uniroot``
    at its default tolerance (``.Machine$double.eps^0.25``, about 1.2e-4 on the odds ratio or
    its inverse), so its values can differ from these in the 4th significant digit: for
    ``[[10, 6], [1, 0]]`` R gives the upper limit 71.421, esi 71.500, which is the exact root
    (``11 / (11 + 6 psi) = 0.025``) and what R's own code gives with ``tol = 1e-14``. The
    reference script (tests/reference/stats/make_reference.R) runs that code with the tight
    tolerance and the test compares to 1e-9.
    """
    t = as_table(table)
    check_alternative(alternative)
    check_confidence(confidence)
    if np.any(t.sum(axis=0) == 0) or np.any(t.sum(axis=1) == 0):
        return _NAN, _NAN, _NAN
    return _conditional_odds_ratio(*map(int, t.ravel()), alternative, float(confidence))


@functools.lru_cache(maxsize=4096)
def _conditional_odds_ratio(a: int, b: int, c: int, d: int, alternative: str,
                            confidence: float) -> tuple[float, float, float]:
    # Memoised: the same small tables recur (the test and the effect size of one comparison,
    # the outcomes of a sweep or multiverse), and each costs root-finding in scipy.
    res = _scipy_odds_ratio(np.array([[a, b], [c, d]]), kind="conditional")
    ci = res.confidence_interval(confidence_level=confidence, alternative=alternative)
    return float(res.statistic), float(ci.low), float(ci.high)


def _tables(a, b, c, d) -> tuple[np.ndarray, ...]:
    arrs = np.broadcast_arrays(*(np.asarray(v) for v in (a, b, c, d)))
    out = []
    for v in arrs:
        f = np.asarray(v, dtype=float)
        if np.any(np.isnan(f)) or np.any(f < 0) or np.any(f != np.round(f)):
            raise ValueError("table counts must be non-negative whole numbers")
        out.append(f.astype(np.int64))
    return tuple(out)


def _binary_search(f, d, lo, hi):
    # scipy.stats._stats_py._binary_search_for_binom_tst for arrays: the index i in [lo, hi]
    # with f(i) <= d < f(i + 1), by the same steps (f increasing; an exact hit returns it).
    lo, hi = lo.copy(), hi.copy()
    res = np.zeros_like(lo)
    done = np.zeros(lo.shape, dtype=bool)
    active = lo < hi
    while active.any():
        idx = np.flatnonzero(active)
        mid = lo[idx] + (hi[idx] - lo[idx]) // 2
        midval = f(mid, idx)
        below, above = midval < d[idx], midval > d[idx]
        hit = ~below & ~above
        lo[idx[below]] = mid[below] + 1
        hi[idx[above]] = mid[above] - 1
        res[idx[hit]], done[idx[hit]] = mid[hit], True
        active[idx] = ~hit & (lo[idx] < hi[idx])
    rest = np.flatnonzero(~done)
    if rest.size:
        last = f(lo[rest], rest) <= d[rest]
        res[rest] = np.where(last, lo[rest], lo[rest] - 1)
    return res


def fisher_p_values(a, b, c, d, alternative: str = "two-sided") -> np.ndarray:
    """P-values of Fisher's exact test for many 2 x 2 tables ``[[a, b], [c, d]]`` at once.

    Parameters
    ----------
    a, b, c, d
        Counts (arrays that broadcast), oriented as in the module docstring.
    alternative
        ``"two-sided"``, ``"less"`` or ``"greater"``.

    Returns
    -------
    numpy.ndarray
        The P-value of each table: the one-sided tails of the hypergeometric distribution
        and scipy's two-sided rule (tables no more probable than the observed, relative
        tolerance 1e-14), 1 when a margin is zero. This is the P of :func:`fisher_exact` (which
        calls it), computed with the very steps of ``scipy.stats.fisher_exact`` applied to
        arrays, so the values are bit for bit scipy's (checked on every table up to 25 per
        row in ``tests/test_stats.py``); the power of Fisher's test
        (:func:`esi.sensitivity.binary_power`) runs through it.
    """
    check_alternative(alternative)
    a, b, c, d = _tables(a, b, c, d)
    shape = a.shape
    a, b, c, d = (v.ravel() for v in (a, b, c, d))
    n1, n2, n = a + b, c + d, a + c
    big_n = n1 + n2
    p = np.ones(a.shape)
    ok = (n1 > 0) & (n2 > 0) & (n > 0) & (b + d > 0)
    if not ok.any():
        return p.reshape(shape)
    hg = stats.hypergeom
    if alternative == "less":
        p[ok] = hg.cdf(a[ok], big_n[ok], n1[ok], n[ok])
    elif alternative == "greater":
        p[ok] = hg.cdf(b[ok], big_n[ok], n1[ok], (b + d)[ok])
    else:
        i = np.flatnonzero(ok)
        a_, nn, r1, k = a[i], big_n[i], n1[i], n[i]
        mode = ((k + 1) * (r1 + 1) / (nn + 2)).astype(np.int64)
        pexact = hg.pmf(a_, nn, r1, k)
        pmode = hg.pmf(mode, nn, r1, k)
        gamma = 1 + 1e-14
        out = np.empty(i.size)
        with np.errstate(invalid="ignore", divide="ignore"):
            flat = np.abs(pexact - pmode) / np.maximum(pexact, pmode) <= 1e-14
        out[flat] = 1.0
        low = ~flat & (a_ < mode)
        high = ~flat & ~(a_ < mode)
        if low.any():
            j = np.flatnonzero(low)
            plower = hg.cdf(a_[j], nn[j], r1[j], k[j])
            tail = hg.pmf(k[j], nn[j], r1[j], k[j]) > pexact[j] * gamma
            out[j[tail]] = plower[tail]
            s = np.flatnonzero(~tail)
            if s.size:
                js = j[s]
                guess = _binary_search(
                    lambda x, w, js=js: -hg.pmf(x, nn[js][w], r1[js][w], k[js][w]),
                    -pexact[js] * gamma, mode[js], k[js])
                out[js] = plower[s] + hg.sf(guess, nn[js], r1[js], k[js])
        if high.any():
            j = np.flatnonzero(high)
            pupper = hg.sf(a_[j] - 1, nn[j], r1[j], k[j])
            tail = hg.pmf(0, nn[j], r1[j], k[j]) > pexact[j] * gamma
            out[j[tail]] = pupper[tail]
            s = np.flatnonzero(~tail)
            if s.size:
                js = j[s]
                guess = _binary_search(
                    lambda x, w, js=js: hg.pmf(x, nn[js][w], r1[js][w], k[js][w]),
                    pexact[js] * gamma, np.zeros_like(js), mode[js])
                out[js] = pupper[s] + hg.cdf(guess, nn[js], r1[js], k[js])
        p[i] = out
    return np.minimum(p, 1.0).reshape(shape)


def chi2_values(a, b, c, d, correct: bool) -> tuple[np.ndarray, np.ndarray]:
    """Pearson's chi-square statistic and P-value for many 2 x 2 tables at once.

    Parameters
    ----------
    a, b, c, d
        Counts (arrays that broadcast).
    correct
        Yates' continuity correction with scipy's and R's cap (the 0.5 is never larger than
        any ``|observed - expected|``).

    Returns
    -------
    tuple of numpy.ndarray
        ``(statistic, p_value)``, NaN where an expected count is zero (a margin is zero).
        The arithmetic of ``scipy.stats.chi2_contingency`` applied to arrays (bit for bit
        its values, checked in ``tests/test_stats.py``); :func:`chi2_test` and the power of
        the chi-square test (:func:`esi.sensitivity.binary_power`) run through it.
    """
    from scipy import special

    a, b, c, d = _tables(a, b, c, d)
    obs = np.stack([a, b, c, d], axis=-1).astype(float)
    r1, r2, c1, c2 = a + b, c + d, a + c, b + d
    total = (r1 + r2).astype(float)
    expected = np.stack([r1 * c1, r1 * c2, r2 * c1, r2 * c2], axis=-1) / total[..., None]
    if correct:
        diff = expected - obs
        obs = obs + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = (obs - expected) ** 2 / expected
    # numpy's sum of four contiguous values (scipy sums the flattened table): left to right
    stat = ((terms[..., 0] + terms[..., 1]) + terms[..., 2]) + terms[..., 3]
    zero = (r1 == 0) | (r2 == 0) | (c1 == 0) | (c2 == 0)
    stat = np.where(zero, np.nan, stat)
    return stat, np.where(zero, np.nan, special.chdtrc(1.0, stat))


def fisher_exact(table, *, alternative: str = "two-sided", confidence: float = 0.95) -> TestResult:
    """Fisher's exact test on a 2 x 2 table.

    Parameters
    ----------
    table
        ``[[a, b], [c, d]]`` as described in the module docstring.
    alternative
        ``"two-sided"`` (tables no more probable than the observed: scipy's relative
        tolerance 1e-14, where R's ``fisher.test`` uses 1e-7; the P-values differ only if two
        tables' probabilities are within 1e-7 but not 1e-14 of each other), ``"less"`` or
        ``"greater"`` (odds ratio < 1 / > 1).
    confidence
        Level of the odds-ratio interval.

    Returns
    -------
    TestResult
        statistic NaN (Fisher's test has none), p_value, estimate = conditional MLE odds ratio,
        ci_low / ci_high its exact interval (NaN for all three when a margin is zero, where R
        returns 0 and [0, Inf]; see :func:`conditional_odds_ratio`), n1 = a + b,
        n2 = c + d. ``test`` is ``"fisher"``, ``"fisher_less"`` or ``"fisher_greater"``.
    """
    t = as_table(table)
    check_alternative(alternative)
    name = {"two-sided": "fisher", "less": "fisher_less", "greater": "fisher_greater"}[alternative]
    p = float(fisher_p_values(*t.ravel(), alternative))
    est, lo, hi = conditional_odds_ratio(t, alternative=alternative, confidence=confidence)
    return TestResult(name, _NAN, "none", _NAN, min(p, 1.0), alternative, est, lo, hi,
                      confidence, int(t[0].sum()), int(t[1].sum()), "exact (hypergeometric)")


def chi2_test(table, *, correct: bool) -> TestResult:
    """Pearson's chi-square test of independence on a 2 x 2 table.

    Parameters
    ----------
    table
        ``[[a, b], [c, d]]``.
    correct
        ``True``: Yates' continuity correction, with R's and scipy's cap (the 0.5 is never larger
        than any |observed - expected|). Required: never guessed.

    Returns
    -------
    TestResult
        statistic = X-squared, dof = 1, p_value (NaN when an expected count is zero, i.e. a
        margin is zero, where R returns NaN too), n1, n2 = row totals. ``test`` is ``"chi2"``
        or ``"chi2_yates"``.
    """
    t = as_table(table)
    if not isinstance(correct, bool | np.bool_):
        raise ValueError(f"correct must be True or False, got {correct!r}")
    name = "chi2_yates" if correct else "chi2"
    method = "Pearson chi-square" + (" with Yates' continuity correction" if correct else "")
    n1, n2 = int(t[0].sum()), int(t[1].sum())
    if np.any(t.sum(axis=0) == 0) or np.any(t.sum(axis=1) == 0):
        return TestResult(name, _NAN, "X-squared", 1.0, _NAN, "two-sided", _NAN, _NAN, _NAN,
                          0.95, n1, n2, method + " (undefined: a margin is zero)")
    stat, p = chi2_values(*t.ravel(), bool(correct))
    return TestResult(name, float(stat), "X-squared", 1.0, float(p), "two-sided", _NAN, _NAN,
                      _NAN, 0.95, n1, n2, method)


def binomial_test(
    successes: int,
    n: int,
    p: float = 0.5,
    *,
    alternative: str = "two-sided",
    confidence: float = 0.95,
    test: str = "binomial",
) -> TestResult:
    """Exact binomial test of ``successes`` out of ``n`` against the probability ``p``.

    Returns
    -------
    TestResult
        statistic = successes, p_value (two-sided as R: outcomes no more probable than the
        observed, relative tolerance 1e-7), estimate = successes / n with the Clopper-Pearson
        interval, n1 = n, n2 = 0.

    Notes
    -----
    Checked against R ``binom.test(successes, n, p)``.
    """
    check_alternative(alternative)
    check_confidence(confidence)
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive whole number, got {n!r}")
    if int(successes) != successes or not 0 <= successes <= n:
        raise ValueError(f"successes must be a whole number between 0 and n={n}, got {successes!r}")
    if not 0 <= p <= 1:
        raise ValueError(f"p must lie in [0, 1], got {p!r}")
    res = stats.binomtest(int(successes), int(n), p, alternative=alternative)
    ci = res.proportion_ci(confidence_level=confidence, method="exact")
    return TestResult(test, float(successes), "successes", _NAN, float(min(res.pvalue, 1.0)),
                      alternative, float(successes / n), float(ci.low), float(ci.high),
                      confidence, int(n), 0, "exact binomial")


def mcnemar_exact(table, *, confidence: float = 0.95) -> TestResult:
    """Exact McNemar test on a paired 2 x 2 table (a binomial test of b out of b + c at 0.5).

    Parameters
    ----------
    table
        ``[[both events, case only], [control only, neither]]`` (see module docstring).

    Returns
    -------
    TestResult
        statistic = b (discordant pairs with the event in the case only), p_value (two-sided),
        estimate = b / (b + c) with its Clopper-Pearson interval, n1 = n2 = number of pairs.
        With no discordant pair (b + c = 0) the data carry no evidence either way: p_value = 1
        and the estimate NaN (R's ``binom.test(0, 0)`` stops with an error).

    Notes
    -----
    Checked against R ``binom.test(b, b + c)``.
    """
    t = as_table(table)
    b, c = int(t[0, 1]), int(t[1, 0])
    n = int(t.sum())
    if b + c == 0:
        return TestResult("mcnemar", 0.0, "successes", _NAN, 1.0, "two-sided", _NAN, _NAN, _NAN,
                          confidence, n, n, "exact binomial on discordant pairs (none)")
    res = binomial_test(b, b + c, 0.5, confidence=confidence, test="mcnemar")
    return TestResult("mcnemar", res.statistic, "successes", _NAN, res.p_value, "two-sided",
                      res.estimate, res.ci_low, res.ci_high, confidence, n, n,
                      "exact binomial on discordant pairs")


def mcnemar_chi2(table, *, correct: bool = True) -> TestResult:
    """Asymptotic McNemar chi-square test, as R ``mcnemar.test`` (correct = TRUE by default).

    Returns
    -------
    TestResult
        statistic = (|b - c| - 1)^2 / (b + c) (or without the 1 if ``correct=False``), dof 1,
        p_value (NaN when b + c = 0, as R).
    """
    t = as_table(table)
    b, c = int(t[0, 1]), int(t[1, 0])
    n = int(t.sum())
    if b + c == 0:
        return TestResult("mcnemar_chi2", _NAN, "X-squared", 1.0, _NAN, "two-sided", _NAN, _NAN,
                          _NAN, 0.95, n, n, "McNemar chi-square (undefined: no discordant pair)")
    stat = ((abs(b - c) - (1 if correct else 0)) ** 2) / (b + c)
    p = float(stats.chi2.sf(stat, 1))
    return TestResult("mcnemar_chi2", float(stat), "X-squared", 1.0, p, "two-sided", _NAN, _NAN,
                      _NAN, 0.95, n, n,
                      "McNemar chi-square" + (" with continuity correction" if correct else ""))
