"""Rosenbaum bounds: how large a hidden bias would change the matched-pair conclusions.

Rosenbaum's model (Observational Studies, 2nd ed., 2002, ch. 4): within a matched pair two
patients who look alike on the measured covariates may still differ in their odds of being a
near-normal-imaging case by at most a factor ``Gamma`` because of an unmeasured covariate.
For each ``Gamma`` the one-sided P-value of a randomization test is then no longer a number
but an interval; this module computes its upper bound ``p_upper`` (the hidden bias working
against the finding) and lower bound ``p_lower`` (working for it).

* :func:`wilcoxon_sensitivity` - Wilcoxon's signed-rank statistic on the pair differences
  (R: ``rbounds::psens``; ``DOS2::senWilcox``; exact: ``DOS2::senWilcoxExact``).
* :func:`mcnemar_sensitivity` - McNemar's statistic on the discordant pairs of a binary
  outcome: the tail ``P(B >= D)`` of Rosenbaum (2002, section 4.3.2). R's
  ``rbounds::binarysens`` computes ``P(B > D)`` instead (see the function's notes).
* :func:`rosenbaum_bounds` - both, for the primary (continuous) and the positive (binary)
  outcome of a match, as one tidy table (``rosenbaum.csv``).
* :func:`gamma_at_change` - the ``Gamma`` at which each conclusion would change.

Under ``Gamma`` the sign of each informative pair is an independent Bernoulli draw with
probability at most ``Gamma / (1 + Gamma)`` (upper bound) and at least ``1 / (1 + Gamma)``
(lower bound) of favouring the case (Rosenbaum 2002, §4.3.3). The statistic's null
distribution under those extreme sign probabilities gives the bounds: by a normal
approximation (mean ``p * sum(r)``, variance ``p (1 - p) * sum(r**2)``, average ranks for
ties, as ``rbounds::psens``), or exactly, by convolving the two-point distributions of the
signed ranks (ranks doubled to whole numbers so that average ranks of ties stay exact;
Pagano & Tritchler 1983, as ``DOS2::senWilcoxExact`` does without ties).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

from esi.params import SENSITIVITY_DEFAULTS
from esi.sensitivity._pairs import pair_values

__all__ = [
    "gamma_grid",
    "wilcoxon_sensitivity",
    "mcnemar_sensitivity",
    "rosenbaum_bounds",
    "gamma_at_change",
    "DEFAULT_GAMMA_MAX",
    "DEFAULT_GAMMA_STEP",
]

#: Default top of the ``Gamma`` grid (notebook parameter ``gamma_max``).
DEFAULT_GAMMA_MAX = SENSITIVITY_DEFAULTS["gamma_max"]
#: Default step of the ``Gamma`` grid (notebook parameter ``gamma_step``): 1, 1.1, 1.2, ...
DEFAULT_GAMMA_STEP = SENSITIVITY_DEFAULTS["gamma_step"]
#: Largest ``Gamma`` searched by :func:`gamma_at_change` before reporting infinity.
GAMMA_SEARCH_LIMIT = 1000.0
#: Exact distributions are convolved up to this many (doubled) rank units.
_EXACT_MAX_UNITS = 2_000_000

_METHODS = ("normal", "exact")
_ZERO_METHODS = ("wilcox", "pratt")
_ALTERNATIVES = ("greater", "less")


def gamma_grid(gamma_max: float = DEFAULT_GAMMA_MAX,
               gamma_step: float = DEFAULT_GAMMA_STEP) -> np.ndarray:
    """The grid 1, 1 + step, ..., up to ``gamma_max`` (inclusive, rounded to 10 decimals).

    Raises
    ------
    ValueError
        If ``gamma_max < 1`` or ``gamma_step <= 0``.
    """
    if not np.isfinite(gamma_max) or gamma_max < 1:
        raise ValueError(f"gamma_max: must be a number >= 1, got {gamma_max!r}")
    if not np.isfinite(gamma_step) or gamma_step <= 0:
        raise ValueError(f"gamma_step: must be a positive number, got {gamma_step!r}")
    n = int(np.floor((gamma_max - 1) / gamma_step + 1e-9)) + 1
    return np.round(1 + gamma_step * np.arange(n), 10)


def _check_gammas(gammas: Sequence[float] | np.ndarray | float) -> np.ndarray:
    g = np.atleast_1d(np.asarray(gammas, dtype=float))
    if g.size == 0 or not np.all(np.isfinite(g)) or np.any(g < 1):
        raise ValueError(f"gammas: every Gamma must be a finite number >= 1, got {gammas!r}")
    return g


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: must be one of {', '.join(allowed)}, got {value!r}")


def _signed_ranks(differences: np.ndarray, zero_method: str) -> tuple[np.ndarray, float]:
    """Ranks of the informative (non-zero) pairs and the signed-rank statistic.

    ``"wilcox"`` drops zero differences before ranking (``rbounds::psens``); ``"pratt"`` ranks
    all ``|d|`` and gives zero differences rank 0 (``DOS2::senWilcox``, Rosenbaum 2002).
    """
    d = differences
    if zero_method == "wilcox":
        d = d[d != 0]
        ranks = stats.rankdata(np.abs(d))
    else:
        ranks = stats.rankdata(np.abs(d))
        keep = d != 0
        ranks, d = ranks[keep], d[keep]
    return ranks, float(ranks[d > 0].sum())


def _signed_rank_tail(ranks: np.ndarray, statistic: float, method: str
                      ) -> Callable[[float], float]:
    """``p -> P(sum r_i B_i >= statistic)`` with ``B_i ~ Bernoulli(p)`` independent."""
    if ranks.size == 0:
        return lambda p: 1.0
    if method == "normal":
        s1, s2 = float(ranks.sum()), float((ranks**2).sum())

        def tail(p: float) -> float:
            return float(stats.norm.sf((statistic - p * s1) / np.sqrt(p * (1 - p) * s2)))

        return tail
    units = np.rint(2 * ranks).astype(np.int64)  # average ranks are multiples of 1/2
    if units.sum() > _EXACT_MAX_UNITS:
        raise ValueError(f"method: 'exact' is limited to about {int(np.sqrt(_EXACT_MAX_UNITS))} "
                         "pairs; use method='normal'")
    threshold = int(round(2 * statistic))
    total = int(units.sum())

    def tail(p: float) -> float:
        dist = np.zeros(total + 1)
        dist[0] = 1.0
        top = 0
        for k in units:
            shifted = dist[: top + 1] * p
            dist[: top + 1] *= 1 - p
            dist[k: k + top + 1] += shifted
            top += k
        return float(min(1.0, dist[threshold:].sum()))

    return tail


def _bounds_frame(tail: Callable[[float], float], gammas: np.ndarray) -> pd.DataFrame:
    p_plus = gammas / (1 + gammas)
    p_minus = 1 / (1 + gammas)
    return pd.DataFrame({
        "gamma": gammas,
        "p_upper": [tail(p) for p in p_plus],
        "p_lower": [tail(p) for p in p_minus],
    })


def wilcoxon_sensitivity(differences: Sequence[float] | np.ndarray,
                         gammas: Sequence[float] | np.ndarray | float = (1.0,), *,
                         method: str = "normal", zero_method: str = "wilcox",
                         alternative: str = "greater") -> pd.DataFrame:
    """Bounds on the one-sided P-value of Wilcoxon's signed-rank test under hidden bias.

    Parameters
    ----------
    differences
        Case-minus-control differences of the matched pairs (no missing values).
    gammas
        Values of ``Gamma >= 1``.
    method
        ``"normal"``: large-sample normal approximation with average ranks for ties, no
        continuity correction (``rbounds::psens``); ``"exact"``: the exact distribution under
        the extreme sign probabilities, ties included (for small numbers of pairs).
    zero_method
        ``"wilcox"``: zero differences are dropped before ranking (``rbounds::psens``);
        ``"pratt"``: they are ranked with the others and contribute rank 0
        (``DOS2::senWilcox``, Rosenbaum 2002 Table 4.3).
    alternative
        ``"greater"``: cases have larger outcomes than controls; ``"less"``: smaller (the
        differences are negated).

    Returns
    -------
    pandas.DataFrame
        One row per ``Gamma``: ``gamma``, ``p_upper`` (upper bound of the one-sided P),
        ``p_lower`` (lower bound), ``statistic`` (sum of the ranks of the pairs whose
        difference favours ``alternative``), ``n_pairs``, ``n_informative`` (non-zero
        differences), ``method``, ``zero_method``, ``alternative``. At ``Gamma = 1`` both
        bounds equal the usual one-sided signed-rank P-value.

    Raises
    ------
    ValueError
        For a missing or infinite difference, fewer than one pair, or an unknown option.

    Notes
    -----
    Checked against ``rbounds::psens`` (normal, ``"wilcox"``) and ``DOS2::senWilcox``
    (normal, ``"pratt"``) on the lead-exposure pairs of Rosenbaum (2002, §4.3.3), whose
    Table 4.3 the latter reproduces; the exact method against ``wilcox.test(exact=TRUE)`` at
    ``Gamma = 1`` and an R convolution at ``Gamma > 1`` (tests/reference/sensitivity/).
    """
    _check_choice("method", method, _METHODS)
    _check_choice("zero_method", zero_method, _ZERO_METHODS)
    _check_choice("alternative", alternative, _ALTERNATIVES)
    g = _check_gammas(gammas)
    d = np.asarray(differences, dtype=float).ravel()
    if d.size < 1:
        raise ValueError("differences: at least one matched pair is needed")
    if not np.all(np.isfinite(d)):
        raise ValueError("differences: missing or infinite values; drop incomplete pairs first")
    if alternative == "less":
        d = -d
    ranks, statistic = _signed_ranks(d, zero_method)
    out = _bounds_frame(_signed_rank_tail(ranks, statistic, method), g)
    out["statistic"] = statistic
    out["n_pairs"] = d.size
    out["n_informative"] = ranks.size
    out["method"] = method
    out["zero_method"] = zero_method
    out["alternative"] = alternative
    return out


def _binomial_tail(n_for: int, n_against: int) -> Callable[[float], float]:
    n = n_for + n_against
    if n == 0:
        return lambda p: 1.0
    return lambda p: float(stats.binom.sf(n_for - 1, n, p))


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not float(value).is_integer() or value < 0:
        raise ValueError(f"{name}: must be a whole number >= 0, got {value!r}")
    return int(value)


def mcnemar_sensitivity(n_case_only: int, n_control_only: int,
                        gammas: Sequence[float] | np.ndarray | float = (1.0,), *,
                        alternative: str = "greater") -> pd.DataFrame:
    """Bounds on the one-sided exact P-value of McNemar's test under hidden bias.

    Parameters
    ----------
    n_case_only
        Discordant pairs in which only the case had the event (e.g. a positive outcome).
    n_control_only
        Discordant pairs in which only the control had it.
    gammas
        Values of ``Gamma >= 1``.
    alternative
        ``"greater"``: the event is more frequent among cases; ``"less"``: among controls.

    Returns
    -------
    pandas.DataFrame
        One row per ``Gamma``: ``gamma``, ``p_upper``, ``p_lower`` (``P(B >= t)`` for
        ``B ~ Binomial(n_discordant, Gamma / (1 + Gamma))`` and ``1 / (1 + Gamma)``),
        ``statistic`` (``t``: discordant pairs favouring ``alternative``), ``n_pairs`` and
        ``n_informative`` (both the number of discordant pairs), ``method`` (``"exact"``),
        ``zero_method`` (empty), ``alternative``. At ``Gamma = 1`` both bounds are the exact
        one-sided McNemar P-value, ``binom.test(t, n_discordant, alternative = "greater")``.

    Notes
    -----
    The tail includes the observed count, ``P(B >= t)``, as a P-value does and as Rosenbaum
    (2002, section 4.3.2) computes it: on Hammond's smoking and lung-cancer pairs (110 vs 12
    discordant) it gives his upper bounds, about 0.02 at ``Gamma = 5`` and 0.10 at 6.

    R's ``rbounds::binarysens(x, y)`` (rbounds 2.2) is *not* this tail: it takes
    ``D = max(x, y)`` and returns ``1 - pbinom(D, n, p)`` = ``P(B > D)``, the tail without the
    observed count, rounded to 5 decimals. So esi's bound equals binarysens' plus
    ``dbinom(D, n, p)`` (equivalently, binarysens' expression evaluated at ``D - 1``) when
    ``t = D``. On the default run's positive outcome (5 vs 2 discordant) at ``Gamma = 1``
    binarysens gives 0.0625 = P(B >= 6) and esi 0.2266 = ``binom.test(5, 7, alternative =
    "greater")``; on Hammond's pairs at ``Gamma = 6``, 0.0564 against esi's (and Rosenbaum's)
    0.0969. Both relations are checked on binarysens' real output in
    ``tests/test_rosenbaum.py`` (tests/reference/sensitivity/rosenbaum_reference.R).
    """
    _check_choice("alternative", alternative, _ALTERNATIVES)
    g = _check_gammas(gammas)
    a = _check_count("n_case_only", n_case_only)
    b = _check_count("n_control_only", n_control_only)
    n_for, n_against = (a, b) if alternative == "greater" else (b, a)
    out = _bounds_frame(_binomial_tail(n_for, n_against), g)
    out["statistic"] = float(n_for)
    out["n_pairs"] = a + b
    out["n_informative"] = a + b
    out["method"] = "exact"
    out["zero_method"] = ""
    out["alternative"] = alternative
    return out


def _direction(estimate: float, alternative: str) -> str:
    if alternative != "observed":
        _check_choice("alternative", alternative, (*_ALTERNATIVES, "observed"))
        return alternative
    return "less" if estimate < 0 else "greater"


def _tests_for_match(pairs: pd.DataFrame, outcomes: pd.DataFrame, primary: str | None,
                     binary: str | None, *, method: str, zero_method: str, alternative: str
                     ) -> list[dict]:
    """Per outcome: the tail function, its statistic and the descriptive columns."""
    if primary is None and binary is None:
        raise ValueError("primary, binary: name at least one outcome column")
    _check_choice("method", method, _METHODS)
    _check_choice("zero_method", zero_method, _ZERO_METHODS)
    found = []
    if primary is not None:
        table = pair_values(pairs, outcomes, primary, one_to_one=True)
        d = (table["y_treated"] - table["y_control"]).to_numpy()
        if d.size == 0:
            raise ValueError(f"primary: no matched pair has {primary!r} for both members")
        direction = _direction(float(np.mean(d)), alternative)
        ranks, statistic = _signed_ranks(-d if direction == "less" else d, zero_method)
        found.append({"outcome": primary, "test": "wilcoxon_signed_rank", "method": method,
                      "alternative": direction, "statistic": statistic,
                      "n_pairs": table.attrs["n_pairs"], "n_complete": len(table),
                      "n_informative": ranks.size,
                      "tail": _signed_rank_tail(ranks, statistic, method)})
    if binary is not None:
        table = pair_values(pairs, outcomes, binary, one_to_one=True)
        yt, yc = table["y_treated"].to_numpy(), table["y_control"].to_numpy()
        if not np.all(np.isin(yt, (0, 1))) or not np.all(np.isin(yc, (0, 1))):
            raise ValueError(f"binary: {binary!r} must be 0/1 (or boolean)")
        case_only = int(np.sum((yt == 1) & (yc == 0)))
        control_only = int(np.sum((yt == 0) & (yc == 1)))
        direction = _direction(case_only - control_only, alternative)
        n_for, n_against = ((case_only, control_only) if direction == "greater"
                            else (control_only, case_only))
        found.append({"outcome": binary, "test": "mcnemar", "method": "exact",
                      "alternative": direction, "statistic": float(n_for),
                      "n_pairs": table.attrs["n_pairs"], "n_complete": len(table),
                      "n_informative": n_for + n_against,
                      "tail": _binomial_tail(n_for, n_against)})
    return found


def rosenbaum_bounds(pairs: pd.DataFrame, outcomes: pd.DataFrame, *,
                     primary: str | None = "leg_pain_reduction_4w",
                     binary: str | None = "positive_outcome_4w",
                     gammas: Sequence[float] | np.ndarray | None = None,
                     gamma_max: float = DEFAULT_GAMMA_MAX,
                     gamma_step: float = DEFAULT_GAMMA_STEP,
                     method: str = "normal", zero_method: str = "wilcox",
                     alternative: str = "observed") -> pd.DataFrame:
    """Rosenbaum bounds for a 1:1 match: signed-rank test on ``primary``, McNemar on ``binary``.

    Parameters
    ----------
    pairs
        ``MatchResult.pairs`` of a 1:1 match (columns ``treated``, ``control``, ``subclass``).
    outcomes
        Per-patient outcomes indexed by ``patient_id`` (``esi.outcomes.derive_outcomes``
        after the missing-data rule). Pairs with a missing outcome are left out.
    primary, binary
        The continuous and the 0/1 outcome column (``None`` skips one).
    gammas
        ``Gamma`` values; by default :func:`gamma_grid` ``(gamma_max, gamma_step)``.
    gamma_max, gamma_step
        The default grid (notebook parameters of the same names).
    method, zero_method
        For the signed-rank test, see :func:`wilcoxon_sensitivity`. McNemar's bounds are
        always exact binomial tails ``P(B >= t)`` (:func:`mcnemar_sensitivity`; not
        ``rbounds::binarysens``' ``P(B > t)``).
    alternative
        ``"greater"``, ``"less"`` (cases better / worse than controls), or ``"observed"``:
        the direction of the observed difference for each outcome (as ``rbounds::psens``
        does with a ``Match`` object). The direction used is in the ``alternative`` column.

    Returns
    -------
    pandas.DataFrame
        One row per outcome and ``Gamma``: ``outcome``, ``test`` (``"wilcoxon_signed_rank"``
        or ``"mcnemar"``), ``gamma``, ``p_upper``, ``p_lower``, ``method``, ``alternative``,
        ``statistic``, ``n_pairs`` (matched pairs), ``n_complete`` (pairs with both outcomes
        known), ``n_informative`` (non-zero differences / discordant pairs). Written as
        ``rosenbaum.csv`` in the run folder.

    Raises
    ------
    ValueError
        For a match with several controls per case, unknown columns or options.
    """
    g = (gamma_grid(gamma_max, gamma_step) if gammas is None else _check_gammas(gammas))
    frames = []
    for spec in _tests_for_match(pairs, outcomes, primary, binary, method=method,
                                 zero_method=zero_method, alternative=alternative):
        frame = _bounds_frame(spec["tail"], g)
        for key in ("outcome", "test", "method", "alternative", "statistic", "n_pairs",
                    "n_complete", "n_informative"):
            frame[key] = spec[key]
        frames.append(frame)
    columns = ["outcome", "test", "gamma", "p_upper", "p_lower", "method", "alternative",
               "statistic", "n_pairs", "n_complete", "n_informative"]
    return pd.concat(frames, ignore_index=True)[columns]


def _solve_gamma(f: Callable[[float], float], alpha: float) -> float:
    """Smallest Gamma in [1, limit] with f(Gamma) = alpha (f monotone); inf if none."""
    if (f(GAMMA_SEARCH_LIMIT) - alpha) * (f(1.0) - alpha) > 0:
        return float("inf")
    return float(optimize.brentq(lambda g: f(g) - alpha, 1.0, GAMMA_SEARCH_LIMIT,
                                 xtol=1e-6, rtol=1e-10))


def gamma_at_change(pairs: pd.DataFrame, outcomes: pd.DataFrame, *,
                    primary: str | None = "leg_pain_reduction_4w",
                    binary: str | None = "positive_outcome_4w", alpha: float = 0.05,
                    method: str = "normal", zero_method: str = "wilcox",
                    alternative: str = "observed") -> pd.DataFrame:
    """The hidden bias ``Gamma`` at which each one-sided conclusion at level ``alpha`` changes.

    If the one-sided P-value at ``Gamma = 1`` is below ``alpha`` (a significant difference),
    the conclusion changes where the *upper* bound reaches ``alpha``: a bias that large could
    explain the difference away. Otherwise it changes where the *lower* bound falls to
    ``alpha``: a bias that large, acting in the other direction, could have hidden a real
    difference of the observed sign. Solved by root finding on the continuous bound
    (``scipy.optimize.brentq``, Gamma to 1e-6), not read off a grid.

    Parameters
    ----------
    pairs, outcomes, primary, binary, method, zero_method, alternative
        As :func:`rosenbaum_bounds`.
    alpha
        One-sided significance level (the run parameter ``alpha``).

    Returns
    -------
    pandas.DataFrame
        One row per outcome: ``outcome``, ``test``, ``alternative``, ``p_value`` (one-sided,
        ``Gamma = 1``), ``significant`` (``p_value < alpha``), ``bound`` (``"p_upper"`` or
        ``"p_lower"``: the bound that decides), ``gamma_at_change`` (``inf`` if no
        ``Gamma <= 1000`` changes it, e.g. when no pair is informative), ``alpha``.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: must be between 0 and 1, got {alpha!r}")
    rows = []
    for spec in _tests_for_match(pairs, outcomes, primary, binary, method=method,
                                 zero_method=zero_method, alternative=alternative):
        tail = spec["tail"]
        p1 = tail(0.5)
        significant = p1 < alpha
        if significant:
            bound, f = "p_upper", (lambda g, t=tail: t(g / (1 + g)))
        else:
            bound, f = "p_lower", (lambda g, t=tail: t(1 / (1 + g)))
        rows.append({"outcome": spec["outcome"], "test": spec["test"],
                     "alternative": spec["alternative"], "p_value": p1,
                     "significant": bool(significant), "bound": bound,
                     "gamma_at_change": _solve_gamma(f, alpha), "alpha": alpha})
    return pd.DataFrame(rows)
