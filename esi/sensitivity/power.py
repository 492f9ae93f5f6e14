"""Power and precision of a 14-pair design, by simulation; equivalence (TOST) of the primary
outcome.

With 14 cases and 14 controls a non-significant difference says little unless the design
could have detected a difference that matters. This module answers, for the primary outcome
(reduction in leg pain, 0-10 NRS):

* :func:`power_by_simulation` - power to detect given differences (e.g. 1 and 2 points) at
  the study's n and standard deviations;
* :func:`minimum_detectable_difference` - the smallest difference detected with 80% power;
* :func:`sample_size_per_group` - the n per group needed for a given difference;
* :func:`power_curve` - power against the difference for several n (for the figure);
* :func:`tost` - two one-sided tests of equivalence within a stated margin.

Simulation: outcomes are drawn as normal with the group standard deviations (cases
``sd[0]``, controls ``sd[1]``), the case mean shifted by the difference; paired tests draw
case and control of a pair with correlation ``correlation``. Every function uses common
random numbers from ``seed``: the same standard-normal draws are rescaled for every
difference, so curves are smooth, searches are deterministic and results repeat exactly for a
seed. :func:`sample_size_per_group` draws its own nested ones (the first n columns are the
same for every n, whatever the largest n searched). Each replicate is tested two-sided at
``alpha`` with the test the analysis runs (``test`` run parameter), *as the analysis runs
it*: the rank tests decide between the exact and the approximate P as
:func:`esi.stats.mann_whitney` and :func:`esi.stats.wilcoxon_signed_rank` do (exact below
50 per group without ties; simulated normal outcomes have none), through the same functions
of :mod:`esi.stats.nonparametric`; the vectorized statistics give the P-values of
:mod:`esi.stats` row by row (checked in the tests). At the study's 14 per group and SDs
2.55 / 2.15 the Mann-Whitney power at a 2-point difference is 0.554 with the exact test the
analysis uses (it was 0.532 when the simulation used the normal approximation instead;
n_sim 20,000, seed 2025).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from esi.params import SENSITIVITY_DEFAULTS
from esi.paths import PUBLISHED_RESULTS

__all__ = [
    "published_design",
    "power_by_simulation",
    "minimum_detectable_difference",
    "sample_size_per_group",
    "power_curve",
    "power_summary",
    "tost",
    "DEFAULT_N_SIM",
    "DEFAULT_TOST_MARGIN",
    "TESTS",
]

#: Default number of simulated studies per point (notebook parameter ``power_n_sim``).
DEFAULT_N_SIM = SENSITIVITY_DEFAULTS["power_n_sim"]
#: Default equivalence margin in NRS points (notebook parameter ``tost_margin``): 1.5 points,
#: the minimal important change in pain intensity of the consensus of Ostelo et al.,
#: Spine 2008;33:90-94 (15 on a 0-100 scale) for low back pain.
DEFAULT_TOST_MARGIN = SENSITIVITY_DEFAULTS["tost_margin"]
#: Tests that can be simulated: the run parameter ``test`` values.
TESTS = ("welch", "student", "mann_whitney", "paired_t", "wilcoxon")
_PAIRED = ("paired_t", "wilcoxon")


def published_design(timepoint: int = 4) -> dict[str, float]:
    """The study's group size and leg-pain-reduction SDs as published (Cohen et al. 2025).

    Parameters
    ----------
    timepoint
        Weeks after the injection; the paper reports the SDs at 4 weeks.

    Returns
    -------
    dict
        ``n_per_group`` (14), ``sd_cases``, ``sd_controls`` (2.55 and 2.15 NRS points at
        4 weeks), read from the package's copy of ``published_results.csv``.
    """
    published = pd.read_csv(PUBLISHED_RESULTS).set_index("id")
    try:
        return {
            "n_per_group": int(published.loc["n_cases", "value"]),
            "sd_cases": float(published.loc[f"leg_{timepoint}_cases_sd", "value"]),
            "sd_controls": float(published.loc[f"leg_{timepoint}_controls_sd", "value"]),
        }
    except KeyError as err:
        raise ValueError(f"timepoint: the paper reports no leg-pain SDs at {timepoint} weeks"
                         ) from err


def _check(test: str, alpha: float, n_sim: int, sd: Sequence[float] | None,
           correlation: float, power: float | None = None) -> tuple[float, float]:
    if sd is None:
        design = published_design()
        sd = (design["sd_cases"], design["sd_controls"])
    if test not in TESTS:
        raise ValueError(f"test: must be one of {', '.join(TESTS)}, got {test!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: must be between 0 and 1, got {alpha!r}")
    if isinstance(n_sim, bool) or not isinstance(n_sim, int | np.integer) or n_sim < 10:
        raise ValueError(f"n_sim: must be a whole number >= 10, got {n_sim!r}")
    if len(sd) != 2 or not all(np.isfinite(s) and s > 0 for s in sd):
        raise ValueError(f"sd: must be two positive numbers (cases, controls), got {sd!r}")
    if not -1 < correlation < 1:
        raise ValueError(f"correlation: must be between -1 and 1, got {correlation!r}")
    if power is not None and not 0 < power < 1:
        raise ValueError(f"power: must be between 0 and 1, got {power!r}")
    return float(sd[0]), float(sd[1])


def _check_n(n: int | None, name: str = "n_per_group") -> int:
    if n is None and name == "n_per_group":
        n = published_design()["n_per_group"]
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 3:
        raise ValueError(f"{name}: must be a whole number >= 3, got {n!r}")
    return int(n)


def _draws(seed: int, n_sim: int, n: int, correlation: float) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal draws for cases and controls (controls correlated within pairs)."""
    rng = np.random.default_rng(seed)
    z_case = rng.standard_normal((n_sim, n))
    z_other = rng.standard_normal((n_sim, n))
    z_control = correlation * z_case + np.sqrt(1 - correlation**2) * z_other
    return z_case, z_control


class _NestedDraws:
    """Standard-normal draws for ``n_sim`` simulated studies whose columns (patients) are
    drawn only when first asked for.

    Column-major, from two generators spawned from ``seed`` (cases, and the independent part
    of the controls): column j is the same whatever the number of columns drawn and whatever
    blocks they were drawn in, so the draws for n are the first n columns of the draws for
    any larger n (nested common random numbers) and never depend on the largest n searched.
    """

    def __init__(self, seed: int, n_sim: int, correlation: float) -> None:
        case_seq, other_seq = np.random.SeedSequence(seed).spawn(2)
        self._rngs = (np.random.default_rng(case_seq), np.random.default_rng(other_seq))
        self._n_sim = n_sim
        self._correlation = correlation
        # one row per column of the simulated studies (appending rows is cheap)
        self._case = np.empty((0, n_sim))
        self._other = np.empty((0, n_sim))

    def take(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Cases and controls, ``(n_sim, n)`` each: the first ``n`` columns."""
        extra = n - self._case.shape[0]
        if extra > 0:
            self._case = np.concatenate([self._case,
                                         self._rngs[0].standard_normal((extra, self._n_sim))])
            self._other = np.concatenate([self._other,
                                          self._rngs[1].standard_normal((extra, self._n_sim))])
        z_case = np.ascontiguousarray(self._case[:n].T)
        z_other = self._other[:n].T
        r = self._correlation
        z_control = np.ascontiguousarray(r * z_case + np.sqrt(1 - r**2) * z_other)
        return z_case, z_control


def _mann_whitney_p(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Two-sided Mann-Whitney P of each row, as the analysis computes it:
    :func:`esi.stats.mann_whitney` with its defaults (exact without ties when both groups are
    below 50, else the normal approximation with tie and continuity corrections; the decision
    :func:`esi.stats.nonparametric.mann_whitney_uses_exact`, the exact P from the null
    distribution of U worked out once for ``(n1, n2)``), for all rows at once.

    Simulated normal outcomes have no ties: the ranks are then the positions in one
    (unstable, fast) argsort and the tie sum is zero. Rows with a tie, if any, go through
    :func:`~esi.stats.nonparametric.mann_whitney_p_rows` with the same decision.
    """
    from esi.stats.nonparametric import mann_whitney_p_from_u, mann_whitney_p_rows

    n1, n2 = x.shape[1], y.shape[1]
    n = n1 + n2
    both = np.concatenate([x, y], axis=1)
    order = np.argsort(both, axis=1)
    tied = (np.diff(np.take_along_axis(both, order, axis=1), axis=1) == 0).any(axis=1)
    # ranks 1..n and no ties (equal values) give the same U as mann_whitney_p_rows
    u1 = np.where(order < n1, np.arange(1.0, n + 1), 0.0).sum(axis=1) - n1 * (n1 + 1) / 2
    p = mann_whitney_p_from_u(u1, 0.0, n1, n2, "two-sided", exact=None)
    if tied.any() or not np.isfinite(both).all():
        bad = tied | ~np.isfinite(both).all(axis=1)
        p[bad] = mann_whitney_p_rows(x[bad], y[bad], alternative="two-sided", exact=None)
    return p


def _p_values(x: np.ndarray, y: np.ndarray, test: str) -> np.ndarray:
    """Two-sided P-values of ``test`` for each row of ``x`` (cases) and ``y`` (controls), as
    the analysis's test (:mod:`esi.stats`, default options) gives them."""
    n1, n2 = x.shape[1], y.shape[1]
    if test in ("welch", "student"):
        m = x.mean(axis=1) - y.mean(axis=1)
        v1, v2 = x.var(axis=1, ddof=1), y.var(axis=1, ddof=1)
        if test == "welch":
            a, b = v1 / n1, v2 / n2
            se = np.sqrt(a + b)
            df = (a + b) ** 2 / (a**2 / (n1 - 1) + b**2 / (n2 - 1))
        else:
            df = n1 + n2 - 2
            pooled = ((n1 - 1) * v1 + (n2 - 1) * v2) / df
            se = np.sqrt(pooled * (1 / n1 + 1 / n2))
        return 2 * stats.t.sf(np.abs(m / se), df)
    if test == "paired_t":
        d = x - y
        t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / np.sqrt(n1))
        return 2 * stats.t.sf(np.abs(t), n1 - 1)
    if test == "mann_whitney":
        return _mann_whitney_p(x, y)
    from esi.stats.nonparametric import wilcoxon_p_rows

    return wilcoxon_p_rows(x - y, alternative="two-sided")


def _power(delta: float, z_case: np.ndarray, z_control: np.ndarray, sd: tuple[float, float],
           test: str, alpha: float) -> float:
    p = _p_values(delta + sd[0] * z_case, sd[1] * z_control, test)
    return float(np.mean(p < alpha))


def power_by_simulation(differences: Sequence[float] | float = (1.0, 2.0), *,
                        n_per_group: int | None = None, sd: Sequence[float] | None = None,
                        test: str = "welch", alpha: float = 0.05,
                        n_sim: int = DEFAULT_N_SIM, seed: int = 2025,
                        correlation: float = 0.0) -> pd.DataFrame:
    """Power to detect each difference in mean leg-pain reduction, by simulation.

    Parameters
    ----------
    differences
        True differences (case minus control), in NRS points.
    n_per_group
        Cases, and as many controls (pairs for a paired test); ``None``: the study's 14.
    sd
        Standard deviations of the outcome among cases and controls; ``None``: the paper's
        4-week values (2.55 and 2.15, see :func:`published_design`).
    test
        ``"welch"``, ``"student"``, ``"mann_whitney"``, ``"paired_t"`` or ``"wilcoxon"``.
    alpha
        Two-sided significance level.
    n_sim
        Simulated studies per difference.
    seed
        Seed of the ``numpy`` generator.
    correlation
        Within-pair correlation of case and control outcomes (paired tests only; 0 treats
        the pairs as unrelated).

    Returns
    -------
    pandas.DataFrame
        One row per difference: ``difference``, ``n_per_group``, ``test``, ``power`` (share
        of simulated studies with P < alpha), ``mc_se`` (its Monte Carlo standard error),
        ``n_sim``, ``seed``.

    Notes
    -----
    Checked against R ``power.t.test`` (Student) and the Welch noncentral-t approximation
    within Monte Carlo error (tests/reference/sensitivity/power_reference.R).
    """
    sds = _check(test, alpha, n_sim, sd, correlation)
    n = _check_n(n_per_group)
    z_case, z_control = _draws(seed, n_sim, n, correlation)
    rows = []
    for delta in np.atleast_1d(np.asarray(differences, dtype=float)):
        power = _power(delta, z_case, z_control, sds, test, alpha)
        rows.append({"difference": float(delta), "n_per_group": n, "test": test,
                     "power": power, "mc_se": float(np.sqrt(power * (1 - power) / n_sim)),
                     "n_sim": n_sim, "seed": seed})
    return pd.DataFrame(rows)


def minimum_detectable_difference(*, n_per_group: int | None = None, sd: Sequence[float] | None = None,
                                  power: float = 0.8, test: str = "welch",
                                  alpha: float = 0.05, n_sim: int = DEFAULT_N_SIM,
                                  seed: int = 2025, correlation: float = 0.0,
                                  tolerance: float = 0.005) -> float:
    """Smallest true difference detected with the given power, by simulation and bisection.

    Parameters are as :func:`power_by_simulation`; ``tolerance`` is the bisection precision
    in NRS points. The same simulated noise is used for every candidate difference, so the
    simulated power rises with the difference and the search is deterministic.

    Returns
    -------
    float
        The minimum detectable difference in NRS points (``inf`` if even 20 SDs do not reach
        ``power``).
    """
    sds = _check(test, alpha, n_sim, sd, correlation, power)
    n = _check_n(n_per_group)
    z_case, z_control = _draws(seed, n_sim, n, correlation)
    low, high = 0.0, 20 * max(sds)
    if _power(high, z_case, z_control, sds, test, alpha) < power:
        return float("inf")
    while high - low > tolerance:
        mid = (low + high) / 2
        if _power(mid, z_case, z_control, sds, test, alpha) >= power:
            high = mid
        else:
            low = mid
    return float(high)


def sample_size_per_group(difference: float, *, sd: Sequence[float] | None = None,
                          power: float = 0.8, test: str = "welch", alpha: float = 0.05,
                          n_sim: int = DEFAULT_N_SIM, seed: int = 2025,
                          correlation: float = 0.0, n_max: int = 2000) -> int:
    """Smallest n per group whose simulated power reaches ``power`` for ``difference``.

    Parameters are as :func:`power_by_simulation`; ``n_max`` is the largest n tried.

    The draws for n are the first n columns of nested common random numbers, drawn only as
    far as the search goes (see ``_NestedDraws``: they do not depend on ``n_max``). The
    search doubles n (4, 8, 16, ..., at most ``n_max``) until the simulated power reaches
    ``power``, then bisects inside that bracket. It returns an n whose power reaches the
    target while n - 1 does not (the n where the simulated power crosses it; power rises
    with n up to Monte Carlo noise). The bracket and the bisection points are those of the
    uncapped doubling, a point above ``n_max`` counting as reached (``n_max`` is); so the
    result does not depend on ``n_max`` unless the power at some bisection point above
    ``n_max`` is below the target although it is reached at ``n_max`` (noise).

    Returns
    -------
    int
        n per group (cases; as many controls), at most ``n_max``.

    Raises
    ------
    ValueError
        If ``difference <= 0`` or ``n_max`` per group do not reach ``power``.
    """
    sds = _check(test, alpha, n_sim, sd, correlation, power)
    n_max = _check_n(n_max, "n_max")
    if not np.isfinite(difference) or difference <= 0:
        raise ValueError(f"difference: must be a positive number of points, got {difference!r}")
    draws = _NestedDraws(seed, n_sim, correlation)
    known: dict[int, bool] = {}

    def reaches(n: int) -> bool:
        n = min(n, n_max)  # n_max reached when a point above it is asked for (see above)
        if n not in known:
            z_case, z_control = draws.take(n)
            known[n] = _power(difference, z_case, z_control, sds, test, alpha) >= power
        return known[n]

    low, high = 2, 4  # low is below any usable n (at least 3)
    while not reaches(high):
        if high >= n_max:
            raise ValueError(f"n_max: {n_max} per group does not reach power {power} for a "
                             f"difference of {difference}")
        low, high = high, 2 * high
    while high - low > 1:  # reaches(high) holds, reaches(low) does not
        mid = (low + high) // 2
        if reaches(mid):
            high = mid
        else:
            low = mid
    return int(high)


def power_curve(differences: Sequence[float] | None = None,
                n_per_group: Sequence[int] = (14, 28, 56), *,
                sd: Sequence[float] | None = None, test: str = "welch",
                alpha: float = 0.05, n_sim: int = DEFAULT_N_SIM, seed: int = 2025,
                correlation: float = 0.0) -> pd.DataFrame:
    """Simulated power over a grid of differences for several group sizes (for the figure).

    Parameters
    ----------
    differences
        Default ``0, 0.25, ..., 4`` NRS points.
    n_per_group
        Group sizes, one curve each (the study's 14 first).
    sd, test, alpha, n_sim, seed, correlation
        As :func:`power_by_simulation`.

    Returns
    -------
    pandas.DataFrame
        Columns as :func:`power_by_simulation`, one row per n and difference.
    """
    grid = np.arange(0, 4.001, 0.25) if differences is None else differences
    return pd.concat([power_by_simulation(grid, n_per_group=n, sd=sd, test=test, alpha=alpha,
                                          n_sim=n_sim, seed=seed, correlation=correlation)
                      for n in n_per_group], ignore_index=True)


def power_summary(*, differences: Sequence[float] = (1.0, 2.0), n_per_group: int | None = None,
                  sd: Sequence[float] | None = None, power: float = 0.8,
                  test: str = "welch", alpha: float = 0.05, n_sim: int = DEFAULT_N_SIM,
                  seed: int = 2025, correlation: float = 0.0) -> pd.DataFrame:
    """The design's power and precision in one table (notebook 04).

    Returns
    -------
    pandas.DataFrame
        One row per quantity: ``quantity`` (``"power"`` at a difference,
        ``"minimum_detectable_difference"``, ``"n_per_group_needed"`` for a difference),
        ``difference`` (NRS points, or NaN for the minimum detectable difference), ``value``,
        ``mc_se`` (for powers), ``n_per_group``, ``test``, ``target_power``.
    """
    n_per_group = _check_n(n_per_group)
    common = {"sd": sd, "test": test, "alpha": alpha, "n_sim": n_sim, "seed": seed,
              "correlation": correlation}
    rows = []
    for _, row in power_by_simulation(differences, n_per_group=n_per_group, **common).iterrows():
        rows.append({"quantity": "power", "difference": row["difference"],
                     "value": row["power"], "mc_se": row["mc_se"]})
    rows.append({"quantity": "minimum_detectable_difference", "difference": np.nan,
                 "value": minimum_detectable_difference(n_per_group=n_per_group, power=power,
                                                        **common), "mc_se": np.nan})
    for delta in differences:
        rows.append({"quantity": "n_per_group_needed", "difference": float(delta),
                     "value": float(sample_size_per_group(delta, power=power, **common)),
                     "mc_se": np.nan})
    out = pd.DataFrame(rows)
    out["n_per_group"] = n_per_group
    out["test"] = test
    out["target_power"] = power
    return out


def tost(cases: Sequence[float], controls: Sequence[float], margin: float = DEFAULT_TOST_MARGIN,
         *, alpha: float = 0.05, paired: bool = False, equal_var: bool = False) -> pd.DataFrame:
    """Two one-sided t-tests (TOST) of equivalence: is ``|mean difference| < margin``?

    Parameters
    ----------
    cases, controls
        Outcomes (e.g. leg-pain reduction) of cases and controls; for ``paired=True`` in pair
        order and of equal length. Missing values are not allowed (apply the missing-data
        rule, or drop incomplete pairs, first).
    margin
        Equivalence margin ``> 0`` in outcome units; the hypotheses are
        ``H0: diff <= -margin or diff >= margin`` against ``H1: -margin < diff < margin``.
    alpha
        Level of each one-sided test; equivalence is declared when both reject, i.e. when
        the ``1 - 2 alpha`` confidence interval lies inside ``(-margin, margin)``.
    paired
        Paired t-tests on the pair differences instead of two-sample tests.
    equal_var
        Student (pooled) instead of Welch two-sample tests.

    Returns
    -------
    pandas.DataFrame
        One row: ``estimate`` (mean case minus control), ``ci_low``, ``ci_high`` (the
        ``1 - 2 alpha`` interval), ``margin``, ``df``, ``t_lower``, ``p_lower`` (test of
        ``diff > -margin``), ``t_upper``, ``p_upper`` (test of ``diff < margin``),
        ``p_value`` (the larger: the TOST P-value), ``equivalent`` (``p_value < alpha``),
        ``test`` (``"welch"``, ``"student"`` or ``"paired_t"``), ``n_cases``, ``n_controls``.

    Notes
    -----
    Checked against R ``t.test(x, y, mu = -margin, alternative = "greater")`` and
    ``t.test(x, y, mu = margin, alternative = "less")`` (tests/reference/sensitivity/).
    """
    x = np.asarray(cases, dtype=float).ravel()
    y = np.asarray(controls, dtype=float).ravel()
    if not np.isfinite(margin) or margin <= 0:
        raise ValueError(f"margin: must be a positive number, got {margin!r}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha: must be between 0 and 0.5, got {alpha!r}")
    for name, v in (("cases", x), ("controls", y)):
        if v.size < 2 or not np.all(np.isfinite(v)):
            raise ValueError(f"{name}: need at least 2 values and no missing ones")
    if paired:
        if x.size != y.size:
            raise ValueError("controls: paired=True needs as many controls as cases")
        d = x - y
        estimate, se, df, test = d.mean(), d.std(ddof=1) / np.sqrt(d.size), d.size - 1, "paired_t"
    else:
        n1, n2 = x.size, y.size
        v1, v2 = x.var(ddof=1), y.var(ddof=1)
        estimate = x.mean() - y.mean()
        if equal_var:
            df = n1 + n2 - 2
            se = np.sqrt(((n1 - 1) * v1 + (n2 - 1) * v2) / df * (1 / n1 + 1 / n2))
            test = "student"
        else:
            a, b = v1 / n1, v2 / n2
            se = np.sqrt(a + b)
            df = (a + b) ** 2 / (a**2 / (n1 - 1) + b**2 / (n2 - 1))
            test = "welch"
    t_lower = (estimate + margin) / se
    t_upper = (estimate - margin) / se
    p_lower = float(stats.t.sf(t_lower, df))
    p_upper = float(stats.t.cdf(t_upper, df))
    half = stats.t.ppf(1 - alpha, df) * se
    p_value = max(p_lower, p_upper)
    return pd.DataFrame([{
        "estimate": float(estimate), "ci_low": float(estimate - half),
        "ci_high": float(estimate + half), "margin": float(margin), "df": float(df),
        "t_lower": float(t_lower), "p_lower": p_lower, "t_upper": float(t_upper),
        "p_upper": p_upper, "p_value": p_value, "equivalent": bool(p_value < alpha),
        "test": test, "n_cases": int(x.size), "n_controls": int(y.size),
    }])
