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
* :func:`tost` - two one-sided tests of equivalence within a stated margin;

and for the binary positive outcome (cases and controls with a positive outcome):

* :func:`binary_power` - power of the test the analysis runs on it (``binary_test``: by
  default the one-sided Fisher test; or two-sided Fisher, chi-square with or without Yates)
  for given proportions, exactly (every outcome of the two binomial draws), by simulation, or
  by the normal approximation of R's ``power.prop.test``;
* :func:`binary_sample_size` - the n per group needed;
* :func:`published_binary_design` - the paper's 4-week proportions (4 and 7 of 14).

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
    "published_binary_design",
    "binary_power",
    "binary_sample_size",
    "BINARY_TESTS",
    "BINARY_METHODS",
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
#: Binary tests whose power :func:`binary_power` computes: the run parameter ``binary_test``
#: values of the unpaired tests (McNemar's needs the pairs' concordance, not modelled here).
BINARY_TESTS = ("fisher_less", "fisher_greater", "fisher", "chi2", "chi2_yates")
#: How :func:`binary_power` computes: every outcome (``"exact"``), simulated studies
#: (``"simulation"``), or the normal approximation of R's ``power.prop.test`` (``"normal"``).
BINARY_METHODS = ("exact", "simulation", "normal")
#: The exact method leaves out the counts in the outer tails of each group's binomial
#: distribution, of this probability on each side (they change the power by less than 4e-13).
_TAIL = 1e-13


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
                  seed: int = 2025, correlation: float = 0.0, binary_test: str | None = None,
                  proportions: Sequence[float] | None = None) -> pd.DataFrame:
    """The design's power and precision in one table (notebook 04).

    Parameters
    ----------
    differences, n_per_group, sd, power, test, alpha, n_sim, seed, correlation
        As :func:`power_by_simulation` (the primary outcome).
    binary_test
        When given (:data:`BINARY_TESTS`, the run parameter ``binary_test``), two rows for the
        binary positive outcome are added: its exact power (:func:`binary_power`) at
        ``proportions`` and the n per group needed (:func:`binary_sample_size`).
    proportions
        ``(p_cases, p_controls)`` for those rows; ``None``: the published 4-week proportions
        (:func:`published_binary_design`: 4 and 7 of 14).

    Returns
    -------
    pandas.DataFrame
        One row per quantity: ``quantity`` (``"power"`` at a difference,
        ``"minimum_detectable_difference"``, ``"n_per_group_needed"`` for a difference; with
        ``binary_test`` also ``"power_positive_outcome"`` and
        ``"n_per_group_needed_positive_outcome"``), ``difference`` (NRS points, or NaN for the
        minimum detectable difference; for the positive outcome the difference in proportions,
        cases minus controls), ``value``, ``mc_se`` (for powers; 0 for the exact binary
        power), ``n_per_group``, ``test`` (the binary test on the positive-outcome rows),
        ``target_power``.
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
    if binary_test is None:
        return out
    if proportions is None:
        design = published_binary_design()
        proportions = (design["p_cases"], design["p_controls"])
    if len(proportions) != 2:
        raise ValueError(f"proportions: (p_cases, p_controls), got {proportions!r}")
    p1, p2 = (float(v) for v in proportions)
    bp = binary_power(p1, p2, n_per_group=n_per_group, test=binary_test, alpha=alpha)
    n_needed = binary_sample_size(p1, p2, power=power, test=binary_test, alpha=alpha)
    binary = pd.DataFrame([
        {"quantity": "power_positive_outcome", "difference": p1 - p2,
         "value": bp["power"].item(), "mc_se": bp["mc_se"].item()},
        {"quantity": "n_per_group_needed_positive_outcome", "difference": p1 - p2,
         "value": float(n_needed), "mc_se": np.nan}])
    binary["n_per_group"] = n_per_group
    binary["test"] = binary_test
    binary["target_power"] = power
    return pd.concat([out, binary], ignore_index=True)


def published_binary_design(timepoint: int = 4) -> dict[str, float]:
    """The study's group size and proportions with a positive outcome, as published.

    Parameters
    ----------
    timepoint
        Weeks after the injection (4 or 12).

    Returns
    -------
    dict
        ``n_per_group`` (14), ``p_cases``, ``p_controls``: the published percentages read as
        counts of the 14 (:func:`esi.stats.counts_from_percent`; 4 and 7 of 14 at 4 weeks,
        i.e. 0.2857 and 0.5).
    """
    from esi.stats import counts_from_percent

    published = pd.read_csv(PUBLISHED_RESULTS).set_index("id")
    n = int(published.loc["n_cases", "value"])
    try:
        pc = float(published.loc[f"success_{timepoint}_cases_pct", "value"])
        pk = float(published.loc[f"success_{timepoint}_controls_pct", "value"])
    except KeyError as err:
        raise ValueError(f"timepoint: the paper reports no positive-outcome percentages at "
                         f"{timepoint} weeks") from err
    return {"n_per_group": n, "p_cases": counts_from_percent(pc, n) / n,
            "p_controls": counts_from_percent(pk, n) / n}


def _check_binary(p_cases, p_controls, test: str, alpha: float, method: str, n_sim: int,
                  power: float | None = None) -> tuple[np.ndarray, float]:
    pc = np.atleast_1d(np.asarray(p_cases, dtype=float))
    if pc.ndim != 1 or pc.size == 0 or not np.all((pc >= 0) & (pc <= 1)):
        raise ValueError(f"p_cases: must be proportions between 0 and 1, got {p_cases!r}")
    if np.ndim(p_controls) != 0 or not 0 <= float(p_controls) <= 1:
        raise ValueError(f"p_controls: must be a proportion between 0 and 1, got "
                         f"{p_controls!r}")
    if test not in BINARY_TESTS:
        raise ValueError(f"test: must be one of {', '.join(BINARY_TESTS)}, got {test!r}")
    if method not in BINARY_METHODS:
        raise ValueError(f"method: must be one of {', '.join(BINARY_METHODS)}, got {method!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: must be between 0 and 1, got {alpha!r}")
    if isinstance(n_sim, bool) or not isinstance(n_sim, int | np.integer) or n_sim < 10:
        raise ValueError(f"n_sim: must be a whole number >= 10, got {n_sim!r}")
    if power is not None and not 0 < power < 1:
        raise ValueError(f"power: must be between 0 and 1, got {power!r}")
    return pc, float(p_controls)


def _binary_p(x_cases: np.ndarray, x_controls: np.ndarray, n: int, test: str) -> np.ndarray:
    """P-values of ``test`` on the tables ``[[x_cases, n - x_cases], [x_controls, n -
    x_controls]]``: through the functions :func:`esi.stats.fisher_exact` and
    :func:`esi.stats.chi2_test` use (NaN, never significant, for chi-square on a zero
    margin)."""
    from esi.stats.contingency import chi2_values, fisher_p_values

    a, c = np.asarray(x_cases), np.asarray(x_controls)
    if test.startswith("fisher"):
        alt = {"fisher": "two-sided", "fisher_less": "less",
               "fisher_greater": "greater"}[test]
        return fisher_p_values(a, n - a, c, n - c, alt)
    return chi2_values(a, n - a, c, n - c, test == "chi2_yates")[1]


def _normal_binary_power(p1: float, p2: float, n: float, test: str, alpha: float) -> float:
    # R power.prop.test (strict = FALSE): two-sided for fisher, chi2, chi2_yates; one-sided
    # for fisher_less / fisher_greater, in their direction (R takes |p1 - p2|: the same
    # value when the proportions lie the way the test looks).
    one_sided = test in ("fisher_less", "fisher_greater")
    q = stats.norm.isf(alpha / (1 if one_sided else 2))
    diff = {"fisher_less": p2 - p1, "fisher_greater": p1 - p2}.get(test, abs(p1 - p2))
    spread = np.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    if spread == 0:
        return float(diff > 0)
    return float(stats.norm.cdf((np.sqrt(n) * diff
                                 - q * np.sqrt((p1 + p2) * (1 - (p1 + p2) / 2))) / spread))


def _exact_binary_power(p1: float, p2: float, n: int, test: str, alpha: float) -> float:
    """Sum of the probabilities of the outcomes (cases and controls with the event) whose
    test gives P < alpha, the outer binomial tails of each group (``_TAIL``) left out."""
    import math

    def support(p: float) -> np.ndarray:
        # counts below binom.ppf(_TAIL) have probability below _TAIL, and so do those above
        # binom.isf(_TAIL); one more on each side for safety
        if p in (0.0, 1.0):
            return np.array([round(p * n)])
        lo = max(int(stats.binom.ppf(_TAIL, n, p)) - 1, 0)
        hi = min(int(stats.binom.isf(_TAIL, n, p)) + 1, n)
        return np.arange(lo, hi + 1)

    x1, x2 = support(p1), support(p2)
    a, c = np.meshgrid(x1, x2, indexing="ij")
    p = _binary_p(a.ravel(), c.ravel(), n, test)
    w = np.outer(stats.binom.pmf(x1, n, p1), stats.binom.pmf(x2, n, p2)).ravel()
    return min(math.fsum(w[p < alpha]), 1.0)  # exactly rounded: the same on any CPU


class _BinaryDraws:
    """Simulated event counts of cases and controls for every n at once: patient j of a
    simulated study has the event when its standard-normal draw of ``_NestedDraws`` (the
    same nested common random numbers as the continuous simulation) is below the
    ``p``-quantile, so the counts for n are those of the first n patients."""

    def __init__(self, seed: int, n_sim: int, p1: float, p2: float) -> None:
        self._draws = _NestedDraws(seed, n_sim, 0.0)
        self._t = (stats.norm.ppf(p1), stats.norm.ppf(p2))

    def counts(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        z_case, z_control = self._draws.take(n)
        return ((z_case < self._t[0]).sum(axis=1), (z_control < self._t[1]).sum(axis=1))


def _simulated_binary_power(draws: _BinaryDraws, n: int, test: str, alpha: float) -> float:
    x1, x2 = draws.counts(n)
    key, inverse = np.unique(x1 * (n + 1) + x2, return_inverse=True)
    p = _binary_p(key // (n + 1), key % (n + 1), n, test)  # once per distinct table
    return float(np.count_nonzero(p[inverse.ravel()] < alpha) / x1.size)


def binary_power(p_cases: float | Sequence[float], p_controls: float, *,
                 n_per_group: int | None = None, test: str = "fisher_less",
                 alpha: float = 0.05, method: str = "exact", n_sim: int = DEFAULT_N_SIM,
                 seed: int = 2025) -> pd.DataFrame:
    """Power of the binary-outcome test to detect given proportions of events.

    Parameters
    ----------
    p_cases, p_controls
        True proportions with the event (e.g. a positive outcome) among cases (one or
        several) and controls.
    n_per_group
        Cases, and as many controls; ``None``: the study's 14.
    test
        The run parameter ``binary_test`` (:data:`BINARY_TESTS`): ``"fisher_less"`` (the
        default analysis: one-sided Fisher, cases less often), ``"fisher_greater"``,
        ``"fisher"`` (two-sided), ``"chi2"``, ``"chi2_yates"`` (two-sided, as
        :func:`esi.stats.chi2_test`). The P-values are those of :func:`esi.stats.fisher_exact`
        and :func:`esi.stats.chi2_test` (through the same functions).
    alpha
        Significance level (of the one- or two-sided test as named).
    method
        ``"exact"``: the probability, summed over every outcome (events among the cases and
        among the controls, independent binomials), that the test gives P < alpha (counts
        in the outer 1e-13 tails of a group are left out: the power is exact to 1e-12);
        ``"simulation"``: the share of ``n_sim`` simulated studies (seeded draws);
        ``"normal"``: the normal approximation of R ``power.prop.test`` (two-sided for
        ``fisher``, ``chi2`` and ``chi2_yates``, one-sided in the test's direction for
        ``fisher_less`` / ``fisher_greater``): the large-sample power of the uncorrected z
        test, not of the test named.
    n_sim, seed
        Simulated studies and the seed (``method="simulation"``; recorded, unused otherwise).

    Returns
    -------
    pandas.DataFrame
        One row per ``p_cases``: ``p_cases``, ``p_controls``, ``n_per_group``, ``test``,
        ``method``, ``power``, ``mc_se`` (Monte Carlo standard error; 0 for ``exact``, NaN
        for ``normal``), ``n_sim``, ``seed``.

    Notes
    -----
    Checked against R (tests/reference/sensitivity/binary_power_reference.R): the exact
    power against the same enumeration with ``fisher.test`` and ``chisq.test`` (to 1e-9),
    the simulated power against an R simulation with a fixed seed within Monte Carlo error,
    and the normal method against ``power.prop.test``. At the study's 14 per group and the
    published 4-week proportions (4 and 7 of 14) the one-sided Fisher test of the default
    analysis has power 0.17 (exact); 72 per group would give it 80%.
    """
    pc, pk = _check_binary(p_cases, p_controls, test, alpha, method, n_sim)
    n = _check_n(n_per_group)
    rows = []
    for p1 in pc:
        if method == "exact":
            power, se = _exact_binary_power(float(p1), pk, n, test, alpha), 0.0
        elif method == "normal":
            power, se = _normal_binary_power(float(p1), pk, n, test, alpha), float("nan")
        else:  # the same draws (seed) for every p_cases: common random numbers
            draws = _BinaryDraws(seed, n_sim, float(p1), pk)
            power = _simulated_binary_power(draws, n, test, alpha)
            se = float(np.sqrt(power * (1 - power) / n_sim))
        rows.append({"p_cases": float(p1), "p_controls": pk, "n_per_group": n, "test": test,
                     "method": method, "power": power, "mc_se": se, "n_sim": n_sim,
                     "seed": seed})
    return pd.DataFrame(rows)


def binary_sample_size(p_cases: float, p_controls: float, *, power: float = 0.8,
                       test: str = "fisher_less", alpha: float = 0.05, method: str = "exact",
                       n_sim: int = DEFAULT_N_SIM, seed: int = 2025, n_max: int = 2000) -> int:
    """Smallest n per group whose power (:func:`binary_power`) reaches ``power``.

    Parameters are as :func:`binary_power`; ``n_max`` is the largest n tried.

    The power of an exact test does not rise smoothly with n (it saw-tooths, as the
    attainable P-values jump), so n is not found by bisection: the search doubles n (4, 8,
    16, ..., at most ``n_max``) until the power reaches the target, then tries every n from
    3 up, so the answer is the smallest n that reaches it, even where a larger n falls below
    the target again. ``method="simulation"`` uses nested draws (the counts for n are those
    of the first n simulated patients of each study); ``method="normal"`` solves R's
    ``power.prop.test`` for n and rounds up.

    Returns
    -------
    int
        n per group (cases; as many controls).

    Raises
    ------
    ValueError
        If the proportions do not differ in the direction the test looks for, or ``n_max``
        per group do not reach ``power``.
    """
    pc, pk = _check_binary(p_cases, p_controls, test, alpha, method, n_sim, power)
    if pc.size != 1:
        raise ValueError(f"p_cases: one proportion, got {p_cases!r}")
    p1 = float(pc[0])
    n_max = _check_n(n_max, "n_max")
    wrong = {"fisher_less": p1 >= pk, "fisher_greater": p1 <= pk}.get(test, p1 == pk)
    if wrong:
        raise ValueError(f"p_cases: {p1} against p_controls {pk} is no difference that "
                         f"{test} looks for")
    if method == "normal":
        def f(n: float) -> float:
            return _normal_binary_power(p1, pk, n, test, alpha) - power

        if f(n_max) < 0:
            raise ValueError(f"n_max: {n_max} per group does not reach power {power}")
        if f(3) >= 0:
            return 3
        from scipy import optimize

        return int(np.ceil(optimize.brentq(f, 3, n_max, xtol=1e-10, rtol=1e-14)))
    draws = _BinaryDraws(seed, n_sim, p1, pk) if method == "simulation" else None
    known: dict[int, float] = {}

    def at(n: int) -> float:
        if n not in known:
            known[n] = (_exact_binary_power(p1, pk, n, test, alpha) if draws is None
                        else _simulated_binary_power(draws, n, test, alpha))
        return known[n]

    high = 4
    while at(min(high, n_max)) < power:
        if high >= n_max:
            raise ValueError(f"n_max: {n_max} per group does not reach power {power} for "
                             f"p_cases {p1} and p_controls {pk}")
        high *= 2
    for n in range(3, min(high, n_max) + 1):
        if at(n) >= power:
            return n
    raise AssertionError("unreachable: the power reaches the target at the top")


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
