"""The reproduction audit: published figures against the analysis, and their internal checks.

Everything here starts from a *published-results table* in the format of
``published_results.csv`` (columns ``id, outcome, timepoint_weeks, group, statistic, value,
decimals, note``), so the same code audits any study's summary table written that way.

How a published figure maps onto the run's result files (general rules, no per-id table)
---------------------------------------------------------------------------------------
``group`` names a study group or ``comparison``; :data:`GROUP_ROLES` says which group is the
treated (``cases``) and which the control (``controls``) side of the comparison.

* ``outcome = "cohort"``, ``statistic = "n"``: the number of distinct patients of that group in
  ``matched_pairs.csv`` (column ``treated`` or ``control``).
* ``outcome = "cohort"``, a statistic starting with ``n_pool``: the number of patients in the
  registry (``n_before`` of the first row of ``cohort_flow.csv``).
* any other outcome, a group with a role, ``statistic`` in ``n, mean, sd, percent, events``:
  ``outcomes.csv``, the row with that ``outcome`` and ``timepoint_weeks``, column
  ``{statistic}_{role}`` (e.g. ``mean_cases``).
* ``group = "comparison"``, ``statistic = "p"``: ``p_value`` of that ``outcomes.csv`` row.
* a statistic ending in ``_at_least`` / ``_at_most`` / ``_upper_bound`` is a bound, not a value:
  for ``p_at_least`` the reproduced value is the smallest P of the outcomes named (an outcome
  ``a_and_b_rest`` names ``a_rest`` and ``b_rest``), and the figure matches when it is at least
  the published bound; ``_upper_bound`` matches when the reproduced value does not exceed it.
* every other figure matches when the reproduced value rounds to the published value at the
  published ``decimals`` under some rounding convention: it lies in the closed interval of
  half a unit of the last decimal around it (:func:`esi.grim.rounds_to`, the audit's one
  rounding rule, also that of GRIM, GRIMMER, SPRITE and the P-value audit). A reproduced
  2.365 thus matches a published 2.37 (half up) and 2.36 (half to even) alike.

The n of a published mean, SD or percentage (for GRIM, GRIMMER, SPRITE and tests from summary
statistics) is the published ``n`` of the same outcome, time point and group when the table has
one, else the group's ``cohort`` n.

Outputs of :func:`run_audit` (one finding per row, each naming the published figure's ``id``):
``reproduction.csv`` (id, published, reproduced, decimals, match), ``reproduction_sources.csv``
(where each reproduced value was read), ``p_value_audit.csv`` (every test, from the data and
from the summary statistics, one- and two-sided), ``p_value_summary.csv`` (per published P:
which tests give it, or "none"), ``grim_audit.csv`` (every mean/SD/percentage on every candidate
scale), ``sprite_distribution.csv`` and ``sprite_p_narrowing.csv``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from esi.grim import (
    ODI_COMPLETE,
    consistent_n,
    grim,
    grim_percent,
    grimmer,
    rounds_to,
)
from esi.paths import PUBLISHED_RESULTS

__all__ = [
    "GROUP_ROLES",
    "Scale",
    "SCALES",
    "CANDIDATE_SCALES",
    "read_published",
    "round_half_up",
    "reproduced_figures",
    "reproduce",
    "outcome_data",
    "p_value_audit",
    "p_value_summary",
    "grim_audit",
    "sprite_audit",
    "run_audit",
]

#: Study group -> side of the comparison in outcomes.csv (``cases``/``controls``) and in
#: matched_pairs.csv (``treated``/``control``).
GROUP_ROLES: dict[str, tuple[str, str]] = {
    "near_normal": ("cases", "treated"),
    "abnormal": ("controls", "control"),
}

PUBLISHED_COLUMNS = ("id", "outcome", "timepoint_weeks", "group", "statistic", "value",
                     "decimals")


@dataclass(frozen=True)
class Scale:
    """The measurement scale of an outcome, for GRIM/GRIMMER/SPRITE.

    Attributes
    ----------
    name : str
        In words (e.g. ``"half-point NRS difference"``).
    granularity : fractions.Fraction
        Step of one patient's value.
    lower, upper : float
        Smallest and largest possible value of one patient.
    """

    name: str
    granularity: Fraction
    lower: float
    upper: float


#: The scale of each outcome of published_results.csv: a reduction is a baseline score minus
#: a follow-up score on the same scale, so it has the scale's step and twice its range.
SCALES: dict[str, Scale] = {
    "leg_pain_reduction": Scale("half-point NRS 0-10, difference", Fraction(1, 2), -10, 10),
    "back_pain_reduction": Scale("half-point NRS 0-10, difference", Fraction(1, 2), -10, 10),
    "odi_reduction": Scale("ODI complete forms (steps of 2), difference", ODI_COMPLETE,
                           -100, 100),
}

#: Scales every mean and SD is tried on (name, granularity): integer, half-point, ODI scoring
#: with complete forms, and ODI mixing complete forms with forms missing one section (steps of
#: 20/9, so sums in steps of 2/9) or two sections (steps of 2.5, so sums in steps of 0.5).
CANDIDATE_SCALES: tuple[tuple[str, Fraction], ...] = (
    ("integer", Fraction(1)),
    ("half-point", Fraction(1, 2)),
    ("ODI complete forms", ODI_COMPLETE),
    ("ODI complete + one-section-skipped forms", Fraction(2, 9)),
    ("ODI complete + two-sections-skipped forms", Fraction(1, 2)),
)


def read_published(path: str | Path | pd.DataFrame = PUBLISHED_RESULTS) -> pd.DataFrame:
    """Read a published-results table and check its columns.

    Returns
    -------
    pandas.DataFrame
        The table with ``timepoint_weeks`` and ``decimals`` as int, ``value`` as float.
    """
    tab = path.copy() if isinstance(path, pd.DataFrame) else pd.read_csv(path)
    missing = [c for c in PUBLISHED_COLUMNS if c not in tab.columns]
    if missing:
        raise ValueError(f"published table lacks column(s) {missing}; expected the format of "
                         "published_results.csv")
    if tab["id"].duplicated().any():
        raise ValueError(f"published table: duplicated id(s) "
                         f"{tab.loc[tab['id'].duplicated(), 'id'].tolist()}")
    tab["timepoint_weeks"] = tab["timepoint_weeks"].astype(int)
    tab["decimals"] = tab["decimals"].astype(int)
    tab["value"] = tab["value"].astype(float)
    return tab.reset_index(drop=True)


def round_half_up(x: float, decimals: int) -> float:
    """Round half away from zero at ``decimals`` places (as a person reports a number).

    Used to *show* a reproduced value; whether it matches a published one is decided by
    :func:`esi.grim.rounds_to` (either convention for a half)."""
    if x is None or not math.isfinite(float(x)):
        return float("nan")
    q = Decimal(1).scaleb(-int(decimals))
    return float(Decimal(repr(float(x))).quantize(q, rounding=ROUND_HALF_UP))


def _components(outcome: str) -> list[str]:
    # "leg_and_back_pain_reduction" -> ["leg_pain_reduction", "back_pain_reduction"]
    if "_and_" not in outcome:
        return [outcome]
    head, _, tail = outcome.partition("_and_")
    first_rest = tail.split("_", 1)
    rest = first_rest[1] if len(first_rest) > 1 else ""
    return [f"{head}_{rest}" if rest else head] + _components(tail)


def _bound_kind(statistic: str) -> str | None:
    if statistic.endswith("_at_least"):
        return "at_least"
    if statistic.endswith("_at_most") or statistic.endswith("_upper_bound"):
        return "at_most"
    return None


class _Lookup:
    """The figures of a published table by outcome, time point, group and statistic: the
    first row with them, as a boolean filter of the table then ``.iloc[0]`` gives it, read in
    one pass over the table."""

    def __init__(self, published: pd.DataFrame):
        self._rows: dict[tuple, tuple[float, int]] = {}
        self._cohort_n: dict[object, float] = {}
        for r in published.itertuples(index=False):
            key = (r.outcome, r.timepoint_weeks, r.group, r.statistic)
            if any(pd.isna(k) for k in key):  # a missing key equals nothing in a filter
                continue
            self._rows.setdefault(key, (r.value, r.decimals))
            if r.outcome == "cohort" and r.statistic == "n":
                self._cohort_n.setdefault(r.group, r.value)

    def get(self, outcome, t, group, statistic) -> tuple[float, int] | None:
        """(value, decimals) of the figure, or None."""
        return self._rows.get((outcome, t, group, statistic))

    def cohort_n(self, group) -> float | None:
        """The group's cohort n (outcome "cohort", statistic "n", any time point)."""
        return self._cohort_n.get(group)


def _group_n(lookup: _Lookup, outcome: str, t: int, group: str) -> int | None:
    own = lookup.get(outcome, t, group, "n")
    if own is not None:
        return int(own[0])
    coh = lookup.cohort_n(group)
    return int(coh) if coh is not None else None


# ------------------------------------------------------------------------------ reproduction
def reproduced_figures(published: pd.DataFrame, outcomes: pd.DataFrame,
                       pairs: pd.DataFrame | None = None,
                       flow: pd.DataFrame | None = None) -> pd.DataFrame:
    """Read the reproduced value of every published figure from the run's tables.

    Parameters
    ----------
    published
        Published-results table (:func:`read_published`).
    outcomes
        ``outcomes.csv`` (:func:`esi.compare.compare_matched`).
    pairs
        ``matched_pairs.csv`` (``MatchResult.pairs``), for cohort n.
    flow
        ``cohort_flow.csv`` (``Cohort.flow``), for the registry size.

    Returns
    -------
    pandas.DataFrame
        Columns ``id``, ``reproduced`` (float, NaN when the rules find nothing) and
        ``source`` (file, row and column read, or why nothing was found).
    """
    published = read_published(published)
    # Position of the first outcomes.csv row of each (outcome, time point), as a boolean filter
    # then .iloc[0] finds it.
    first: dict[tuple, int] = {}
    keys = zip(outcomes["outcome"], outcomes["timepoint_weeks"], strict=True)
    for pos, key in enumerate(keys):
        if not any(pd.isna(k) for k in key):  # a missing key equals nothing in a filter
            first.setdefault(key, pos)
    rows = []
    for r in published.itertuples():
        val, src = float("nan"), ""
        role = GROUP_ROLES.get(r.group)
        if r.outcome == "cohort":
            if r.statistic == "n" and role is not None and pairs is not None:
                val = float(pairs[role[1]].astype(str).nunique())
                src = f"matched_pairs.csv: distinct {role[1]}"
            elif r.statistic.startswith("n_pool") and flow is not None and len(flow):
                val = float(flow["n_before"].iloc[0])
                src = "cohort_flow.csv: n_before of the first step (registry size)"
            else:
                src = "no rule or file for this cohort figure"
        elif r.group == "comparison" and (r.statistic == "p" or r.statistic.startswith("p_")):
            ps, where = [], []
            for o in _components(r.outcome):
                hit = first.get((o, r.timepoint_weeks))
                if hit is not None:
                    ps.append(float(outcomes["p_value"].iloc[hit]))
                    where.append(o)
            if ps:
                kind = _bound_kind(r.statistic)
                val = min(ps) if kind == "at_least" else max(ps) if kind else ps[0]
                src = (f"outcomes.csv: p_value of {', '.join(where)} at "
                       f"{r.timepoint_weeks} weeks" + (" (smallest)" if kind == "at_least"
                                                       and len(ps) > 1 else ""))
            else:
                src = f"outcomes.csv has no row for {r.outcome} at {r.timepoint_weeks} weeks"
        elif role is not None:
            col = f"{r.statistic}_{role[0]}"
            hit = first.get((r.outcome, r.timepoint_weeks))
            if hit is not None and col in outcomes.columns:
                val = float(outcomes[col].iloc[hit])
                src = f"outcomes.csv: {col} of {r.outcome} at {r.timepoint_weeks} weeks"
            else:
                src = f"outcomes.csv has no {col} for {r.outcome} at {r.timepoint_weeks} weeks"
        else:
            src = f"no rule for group {r.group!r}"
        rows.append({"id": r.id, "reproduced": val, "source": src})
    return pd.DataFrame(rows, columns=["id", "reproduced", "source"])


def reproduce(published: pd.DataFrame, reproduced: Mapping[str, float] | pd.DataFrame
              ) -> pd.DataFrame:
    """Compare every published figure with its reproduced value.

    Parameters
    ----------
    published
        Published-results table (format of ``published_results.csv``).
    reproduced
        ``{id: value}`` or a DataFrame with columns ``id`` and ``reproduced``
        (:func:`reproduced_figures`).

    Returns
    -------
    pandas.DataFrame
        One row per published figure, columns ``id``, ``published``, ``reproduced`` (rounded
        to ``decimals``: the published value when the reproduced value rounds to it, else
        rounded half away from zero; bounds as computed), ``decimals``, ``match`` (bool: the
        reproduced value rounds to the published one under some convention, see the module
        notes; for bounds, the bound holds). This is ``reproduction.csv``.
    """
    published = read_published(published)
    if isinstance(reproduced, pd.DataFrame):
        if not {"id", "reproduced"}.issubset(reproduced.columns):
            raise ValueError("reproduced must have columns 'id' and 'reproduced'")
        values = dict(zip(reproduced["id"], reproduced["reproduced"], strict=True))
    elif isinstance(reproduced, Mapping):
        values = dict(reproduced)
    else:
        raise ValueError(f"reproduced must be a dict or DataFrame, got "
                         f"{type(reproduced).__name__}")
    rows = []
    for r in published.itertuples():
        v = values.get(r.id, float("nan"))
        v = float("nan") if v is None else float(v)
        kind = _bound_kind(r.statistic)
        if math.isnan(v):
            ok, shown = False, v
        elif kind == "at_least":
            ok, shown = v >= r.value, round_half_up(v, max(r.decimals, 3))
        elif kind == "at_most":
            ok, shown = v <= r.value, round_half_up(v, r.decimals)
        else:
            ok = rounds_to(v, r.value, r.decimals)
            shown = round_half_up(r.value if ok else v, r.decimals)
        rows.append({"id": r.id, "published": r.value, "reproduced": shown,
                     "decimals": int(r.decimals), "match": bool(ok)})
    return pd.DataFrame(rows, columns=["id", "published", "reproduced", "decimals", "match"])


# ------------------------------------------------------------------------------ P values
def outcome_data(registry: pd.DataFrame, pairs: pd.DataFrame, *, missing: str = "complete_case",
                 success_threshold: float = 2.0) -> dict[str, dict[str, object]]:
    """Per-patient outcomes of the matched sample, for tests on the reproduced data.

    Parameters
    ----------
    registry
        The (eligible) registry, index ``patient_id``.
    pairs
        ``matched_pairs.csv`` (columns ``treated``, ``control``).
    missing, success_threshold
        As :func:`esi.compare.compare_matched`.

    Returns
    -------
    dict
        ``outcome column (e.g. "leg_pain_reduction_4w") -> {"cases": array, "controls": array,
        "pairs": (case values, control values) of complete 1:1 pairs}``; binary outcomes as
        0/1 floats. Cases are the distinct treated ids; controls one value per pair row.
    """
    from esi.outcomes import apply_missing_rule, derive_outcomes

    out = derive_outcomes(apply_missing_rule(registry, missing),
                          success_threshold=success_threshold)
    treated = pairs["treated"].astype(str)
    control = pairs["control"].astype(str)
    cases = list(dict.fromkeys(treated))
    data: dict[str, dict[str, object]] = {}
    for col in out.columns:
        if col.startswith("visit_missed"):
            continue
        s = pd.to_numeric(out[col].astype("Float64"), errors="coerce").astype(float)
        x = s.reindex(cases).to_numpy()
        y = s.reindex(control).to_numpy()
        px, py = s.reindex(treated).to_numpy(), y
        ok = ~np.isnan(px) & ~np.isnan(py)
        data[col] = {"cases": x[~np.isnan(x)], "controls": y[~np.isnan(y)],
                     "pairs": (px[ok], py[ok])}
    return data


_ALTS = ("two-sided", "less", "greater")


def _data_tests(values: dict[str, object], binary: bool) -> list[tuple[str, str, float]]:
    from esi import stats as st

    x, y = values["cases"], values["controls"]
    px, py = values["pairs"]
    res: list[tuple[str, str, float]] = []

    def add(name, alt, fn):
        try:
            p = fn().p_value
        except ValueError:
            p = float("nan")
        res.append((name, alt, float(p)))

    if binary:
        a, b = int(np.sum(x)), len(x) - int(np.sum(x))
        c, d = int(np.sum(y)), len(y) - int(np.sum(y))
        table = [[a, b], [c, d]]
        for alt in _ALTS:
            add("fisher", alt, lambda alt=alt: st.fisher_exact(table, alternative=alt))
        add("chi2", "two-sided", lambda: st.chi2_test(table, correct=False))
        add("chi2_yates", "two-sided", lambda: st.chi2_test(table, correct=True))
        if len(px) == len(x) == len(y):
            both = int(np.sum((px == 1) & (py == 1)))
            only_case = int(np.sum((px == 1) & (py == 0)))
            only_ctrl = int(np.sum((px == 0) & (py == 1)))
            neither = int(np.sum((px == 0) & (py == 0)))
            ptab = [[both, only_case], [only_ctrl, neither]]
            add("mcnemar_exact", "two-sided", lambda: st.mcnemar_exact(ptab))
            add("mcnemar_chi2", "two-sided", lambda: st.mcnemar_chi2(ptab))
        return res
    for alt in _ALTS:
        add("welch", alt, lambda alt=alt: st.welch_t(x, y, alternative=alt))
        add("student", alt, lambda alt=alt: st.student_t(x, y, alternative=alt))
        add("mann_whitney", alt, lambda alt=alt: st.mann_whitney(x, y, alternative=alt))
        if len(px) >= 2:
            add("paired_t", alt, lambda alt=alt: st.paired_t(px, py, alternative=alt))
            add("wilcoxon", alt, lambda alt=alt: st.wilcoxon_signed_rank(px, py,
                                                                         alternative=alt))
    return res


def _summary_tests(lookup: _Lookup, outcome: str, t: int) -> list[tuple[str, str, float]]:
    from esi import stats as st

    def fig(group, stat):
        hit = lookup.get(outcome, t, group, stat)
        return float(hit[0]) if hit is not None else None

    g1, g0 = (g for g in GROUP_ROLES)
    n1, n0 = _group_n(lookup, outcome, t, g1), _group_n(lookup, outcome, t, g0)
    res: list[tuple[str, str, float]] = []
    m1, s1, m0, s0 = fig(g1, "mean"), fig(g1, "sd"), fig(g0, "mean"), fig(g0, "sd")
    if None not in (m1, s1, m0, s0, n1, n0):
        for alt in _ALTS:
            for eq, name in ((False, "welch_summary"), (True, "student_summary")):
                p = st.ttest_from_summary(m1, s1, n1, m0, s0, n0, equal_var=eq,
                                          alternative=alt).p_value
                res.append((name, alt, float(p)))
    p1, p0 = fig(g1, "percent"), fig(g0, "percent")
    if None not in (p1, p0, n1, n0):
        k1, k0 = st.counts_from_percent(p1, n1), st.counts_from_percent(p0, n0)
        table = [[k1, n1 - k1], [k0, n0 - k0]]
        for alt in _ALTS:
            res.append(("fisher_summary", alt,
                        float(st.fisher_exact(table, alternative=alt).p_value)))
        for corr, name in ((False, "chi2_summary"), (True, "chi2_yates_summary")):
            chi = st.chi2_test(table, correct=corr)
            res.append((name, "two-sided", float(chi.p_value)))
            # One-sided z test of two proportions: half the chi-square P in the observed
            # direction (cases below controls: "less").
            lower = k1 / n1 < k0 / n0
            half = chi.p_value / 2
            res.append((name, "less", float(half if lower else 1 - half)))
            res.append((name, "greater", float(1 - half if lower else half)))
    return res


def p_value_audit(published: pd.DataFrame, data: dict[str, dict[str, object]] | None = None
                  ) -> pd.DataFrame:
    """Which standard tests give each published P, from the data and from the summary.

    Parameters
    ----------
    published
        Published-results table.
    data
        :func:`outcome_data` of the reproduced matched sample, or ``None`` to test the
        published summary statistics only.

    Returns
    -------
    pandas.DataFrame
        One row per published P x outcome x source x test x alternative: ``id``, ``outcome``
        (the outcome column tested), ``source`` (``data`` or ``summary``: means and SDs for t
        tests, counts rebuilt from percentages and n for Fisher and chi-square), ``test``,
        ``alternative``, ``p_value``, ``published``, ``decimals``, ``criterion`` (``"equals
        after rounding"``: the P rounds to the published value under some rounding
        convention, :func:`esi.grim.rounds_to`; or ``">= bound"`` / ``"<= bound"``),
        ``gives_published`` (bool).

    Notes
    -----
    The tests are those of :mod:`esi.stats` (each checked against R: ``t.test``,
    ``wilcox.test``, ``fisher.test``, ``chisq.test``, ``mcnemar.test``). The one-sided chi-square
    rows are the z test of two proportions (half the two-sided P in the observed direction).
    """
    published = read_published(published)
    lookup = _Lookup(published)
    rows = []
    for r in published.itertuples():
        if r.group != "comparison" or not (r.statistic == "p" or r.statistic.startswith("p_")):
            continue
        kind = _bound_kind(r.statistic)
        crit = ">= bound" if kind == "at_least" else "<= bound" if kind else \
            "equals after rounding"

        def gives(p, r=r, kind=kind):
            if not math.isfinite(p):
                return False
            if kind == "at_least":
                return p >= r.value
            if kind == "at_most":
                return p <= r.value
            return rounds_to(p, r.value, r.decimals)

        for o in _components(r.outcome):
            col = f"{o}_{r.timepoint_weeks}w"
            found = []
            if data is not None and col in data:
                binary = set(np.unique(data[col]["cases"])) <= {0.0, 1.0} and \
                    set(np.unique(data[col]["controls"])) <= {0.0, 1.0}
                found += [("data",) + x for x in _data_tests(data[col], binary)]
            found += [("summary",) + x for x in _summary_tests(lookup, o, r.timepoint_weeks)]
            for source, test, alt, p in found:
                rows.append({"id": r.id, "outcome": col, "source": source, "test": test,
                             "alternative": alt, "p_value": p, "published": r.value,
                             "decimals": int(r.decimals), "criterion": crit,
                             "gives_published": bool(gives(p))})
    cols = ["id", "outcome", "source", "test", "alternative", "p_value", "published",
            "decimals", "criterion", "gives_published"]
    return pd.DataFrame(rows, columns=cols)


def p_value_summary(audit: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """One row per published P: the tests that give it, from the data and from the summary.

    Returns
    -------
    pandas.DataFrame
        ``id``, ``published``, ``from_data`` and ``from_summary`` (``"test (alternative)"``
        joined by ``"; "``, or ``"none"``; ``"not tested"`` when no test could be run),
        ``verdict`` (a sentence).
    """
    published = read_published(published)
    rows = []
    for r in published.itertuples():
        if r.group != "comparison" or not (r.statistic == "p" or r.statistic.startswith("p_")):
            continue
        sub = audit[audit["id"] == r.id]
        out = {"id": r.id, "published": r.value}
        for source in ("data", "summary"):
            s = sub[sub["source"] == source]
            if s.empty:
                out[f"from_{source}"] = "not tested"
                continue
            multi = s["outcome"].nunique() > 1
            if multi:  # a joint statement: a test counts when it holds for every outcome
                ok = s.groupby(["test", "alternative"])["gives_published"].all()
                names = [f"{t} ({a})" for (t, a), v in ok.items() if v]
            else:
                names = [f"{t} ({a})" for t, a, v in zip(s["test"], s["alternative"],
                                                        s["gives_published"], strict=True) if v]
            out[f"from_{source}"] = "; ".join(names) if names else "none"
        if out["from_data"] == "none" and out["from_summary"] in ("none", "not tested"):
            verdict = "no standard test gives the published P"
        elif out["from_data"] not in ("none", "not tested"):
            verdict = "reproduced from the data by: " + out["from_data"]
        else:
            verdict = "given only by tests on the summary statistics: " + out["from_summary"]
        out["verdict"] = verdict
        rows.append(out)
    return pd.DataFrame(rows, columns=["id", "published", "from_data", "from_summary",
                                       "verdict"])


# ------------------------------------------------------------------------------ GRIM
def grim_audit(published: pd.DataFrame, scales: Mapping[str, Scale] | None = None,
               candidates=CANDIDATE_SCALES, max_n_search: int = 40) -> pd.DataFrame:
    """GRIM (means, percentages) and GRIMMER (SDs) of every published figure.

    Parameters
    ----------
    published
        Published-results table.
    scales
        Outcome -> :class:`Scale` (default :data:`SCALES`); the figure's own scale.
    candidates
        (name, granularity) scales every mean and SD is also tried on.
    max_n_search
        Smaller sample sizes tried when a figure is inconsistent (down to n - max_n_search).

    Returns
    -------
    pandas.DataFrame
        One row per figure x scale: ``id``, ``check`` (GRIM, GRIMMER, GRIM-percent), ``n``,
        ``scale``, ``granularity``, ``own_scale`` (bool: the outcome's measurement scale),
        ``consistent`` (bool), ``reason``, ``nearest_consistent`` (closest means k g / n
        below/above), ``largest_consistent_n`` (largest n' < n at which the figure is
        consistent on this scale, if any), ``finer_consistent_scales`` (candidate scales
        with a smaller step on which it is consistent), ``remedy`` (a sentence).
    """
    published = read_published(published)
    lookup = _Lookup(published)
    scales = SCALES if scales is None else scales
    rows = []
    for r in published.itertuples():
        if r.outcome == "cohort" or r.statistic not in ("mean", "sd", "percent"):
            continue
        n = _group_n(lookup, r.outcome, r.timepoint_weeks, r.group)
        if n is None:
            continue
        if r.statistic == "percent":
            res = grim_percent(r.value, n, r.decimals)
            ns = [k for k in range(max(1, n - max_n_search), n)
                  if grim_percent(r.value, k, r.decimals).consistent]
            rows.append(dict(id=r.id, check="GRIM-percent", n=n, scale="count of n patients",
                             granularity=100.0, own_scale=True, consistent=res.consistent,
                             reason="consistent" if res.consistent else "no count k with 100k/n",
                             nearest_consistent=f"{res.nearest_below:.4f} / "
                                                f"{res.nearest_above:.4f}",
                             largest_consistent_n=max(ns) if ns else None,
                             finer_consistent_scales="",
                             remedy="" if res.consistent else
                             (f"consistent with n = {max(ns)} instead of {n} (missing data)"
                              if ns else "no smaller n helps")))
            continue
        own = scales.get(r.outcome)
        # The figure's own scale first (own_scale True), then every candidate scale.
        tried = ([(own.name, own.granularity, True)] if own is not None else []) + [
            (nm, g, False) for nm, g in candidates]
        # An SD's mean: (value, decimals) of the same outcome, time point and group.
        mean_row = (lookup.get(r.outcome, r.timepoint_weeks, r.group, "mean")
                    if r.statistic == "sd" else None)
        for name, g, is_own in tried:
            if r.statistic == "mean":
                res = grim(r.value, n, r.decimals, g)
                ok, reason = res.consistent, "consistent" if res.consistent else \
                    "no sum of n values on this scale gives the mean"
                near = f"{res.nearest_below:.4f} / {res.nearest_above:.4f}"
                ns = consistent_n(r.value, r.decimals, g, range(max(1, n - max_n_search), n))
                finer = [nm for nm, gg in candidates if gg < g and
                         grim(r.value, n, r.decimals, gg).consistent]
                not_finer = [nm for nm, gg in candidates if gg < g and nm not in finer]
                check = "GRIM"
            else:
                if mean_row is None:
                    continue
                res = grimmer(mean_row[0], r.value, n, int(mean_row[1]), r.decimals, g)
                ok, reason = res.consistent, res.reason
                near = ""
                ns = consistent_n(mean_row[0], int(mean_row[1]), g,
                                  range(max(2, n - max_n_search), n), sd=r.value,
                                  sd_decimals=r.decimals)
                finer = [nm for nm, gg in candidates if gg < g and
                         grimmer(mean_row[0], r.value, n, int(mean_row[1]), r.decimals,
                                 gg).consistent]
                not_finer = [nm for nm, gg in candidates if gg < g and nm not in finer]
                check = "GRIMMER"
            if ok:
                remedy = ""
            else:
                parts = []
                if ns:
                    parts.append(f"n = {max(ns)} instead of {n} (missing data)")
                if finer:
                    parts.append("a finer scale: " + ", ".join(finer)
                                 + (f" (but not {', '.join(not_finer)})" if not_finer else ""))
                remedy = "consistent with " + " or ".join(parts) if parts else \
                    "no smaller n nor finer candidate scale helps"
            rows.append(dict(id=r.id, check=check, n=n, scale=name, granularity=float(g),
                             own_scale=bool(is_own), consistent=bool(ok), reason=reason,
                             nearest_consistent=near,
                             largest_consistent_n=max(ns) if ns else None,
                             finer_consistent_scales="; ".join(finer), remedy=remedy))
    cols = ["id", "check", "n", "scale", "granularity", "own_scale", "consistent", "reason",
            "nearest_consistent", "largest_consistent_n", "finer_consistent_scales", "remedy"]
    out = pd.DataFrame(rows, columns=cols)
    out["largest_consistent_n"] = out["largest_consistent_n"].astype("Int64")
    return out


# ------------------------------------------------------------------------------ SPRITE
def _vector_p(test: str, alt: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """P-values of ``test`` for every pair of rows (a[i], b[j]); a: (k1, n1), b: (k2, n2)."""
    from scipy import stats

    x = a[:, None, :]
    y = b[None, :, :]
    if test in ("welch", "student"):
        return stats.ttest_ind(x, y, axis=-1, equal_var=test == "student",
                               alternative=alt).pvalue
    if test == "mann_whitney":
        # As esi.stats.mann_whitney (R wilcox.test): with ties (almost every pair of SPRITE
        # samples) the normal approximation with continuity correction, without ties and
        # below 50 per group the exact P.
        from esi.stats.nonparametric import mann_whitney_p_rows

        return mann_whitney_p_rows(x, y, alternative=alt, continuity=True, exact=None)
    raise ValueError(f"test {test!r} is not available for SPRITE narrowing")


def _t_row_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Mean and variance (ddof 1) of each row with the operations of scipy.stats.ttest_ind.
    n = np.asarray(x.shape[-1], dtype=float)
    mean = np.mean(x, axis=-1)
    var = np.mean((x - np.mean(x, axis=-1, keepdims=True)) ** 2, axis=-1)
    var *= n / (n - 1)
    return mean, var


def _t_p_pairs(equal_var: bool, a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    # _vector_p("student" / "welch", alt, a, b) for every alternative, bit for bit: the P of a
    # pair depends only on the two rows' means and variances, so it is computed once per
    # distinct (mean, variance) of each side, with scipy's arithmetic (scipy.stats.ttest_ind:
    # _unequal_var_ttest_denom / _equal_var_ttest_denom, then Student t via special.stdtr).
    from scipy import special

    n1, n2 = a.shape[-1], b.shape[-1]
    sa, inv_a = np.unique(np.stack(_t_row_stats(a), axis=1), axis=0, return_inverse=True)
    sb, inv_b = np.unique(np.stack(_t_row_stats(b), axis=1), axis=0, return_inverse=True)
    m1, v1 = sa[:, 0][:, None], sa[:, 1][:, None]
    m2, v2 = sb[:, 0][None, :], sb[:, 1][None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        if equal_var:
            v1 = np.where(np.asarray(n1 == 1), 0., v1)
            v2 = np.where(np.asarray(n2 == 1), 0., v2)
            df = n1 + n2 - 2.0
            svar = ((n1 - 1) * v1 + (n2 - 1) * v2) / df
            denom = np.sqrt(svar * (1.0 / n1 + 1.0 / n2))
            df = np.asarray(df, dtype=denom.dtype)
        else:
            vn1 = v1 / n1
            vn2 = v2 / n2
            df = (vn1 + vn2) ** 2 / (vn1 ** 2 / (n1 - 1) + vn2 ** 2 / (n2 - 1))
            df = np.where(np.isnan(df), 1., df)
            denom = np.sqrt(vn1 + vn2)
        t = np.divide(m1 - m2, denom)
    df = np.broadcast_to(df, t.shape)
    grid = {"less": special.stdtr(df, t), "greater": special.stdtr(df, -t),
            "two-sided": 2 * special.stdtr(df, -np.abs(t))}
    ia, ib = inv_a.ravel()[:, None], inv_b.ravel()[None, :]
    return {alt: g[ia, ib] for alt, g in grid.items()}


def _mann_whitney_p_pairs(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    # _vector_p("mann_whitney", alt, a, b) for every alternative, bit for bit. The P of a pair
    # depends on it only through U (cases above controls, ties counting a half) and the tie
    # sum (t^3 - t over the groups of t tied values), which mann_whitney_p_rows gets exactly
    # (sums of half and whole numbers). Here they come exactly, for all pairs at once, from
    # each row's count of every distinct value instead of ranking every pair; the P is then
    # the arithmetic of esi.stats.nonparametric.mann_whitney_p_rows (normal approximation,
    # continuity correction; the exact P for a pair without ties, as the analysis' test),
    # checked bit for bit in tests/test_audit.py.
    from esi.stats.nonparametric import mann_whitney_p_from_u

    n1, n2 = a.shape[-1], b.shape[-1]
    vals = np.unique(np.concatenate([a.ravel(), b.ravel()]))
    nv = vals.size

    def counts(x: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(vals, x) + nv * np.arange(len(x))[:, None]
        return np.bincount(pos.ravel(), minlength=len(x) * nv).reshape(len(x), nv)

    # Whole-number matrix products (exact, and no BLAS threads for these small sizes):
    # 2 U = sum over values of case count x (2 x controls below + controls equal), and the
    # tie sum of (c + d)^3 - (c + d) over values, c and d the case and control counts.
    ca, cb = counts(a), counts(b)
    below = np.cumsum(cb, axis=1) - cb
    u1 = (ca @ (2 * below + cb).T) / 2
    ties = ((ca ** 3).sum(axis=1)[:, None] + (cb ** 3).sum(axis=1)[None, :]
            + 3 * (np.concatenate([ca ** 2, ca], axis=1)
                   @ np.concatenate([cb, cb ** 2], axis=1).T) - (n1 + n2)).astype(float)
    return {alt: mann_whitney_p_from_u(u1, ties, n1, n2, alt, exact=None) for alt in _ALTS}


def _narrowing_p(test: str, a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """``{alternative: _vector_p(test, alternative, a, b)}`` (identical values) without
    testing every pair of rows: t tests once per distinct (mean, variance) of a row,
    Mann-Whitney from every row's count of each value."""
    if test in ("welch", "student"):
        return _t_p_pairs(test == "student", a, b)
    if test == "mann_whitney":
        return _mann_whitney_p_pairs(a, b)
    raise ValueError(f"test {test!r} is not available for SPRITE narrowing")


def sprite_audit(published: pd.DataFrame, k: int = 200, seed: int = 0,
                 scales: Mapping[str, Scale] | None = None,
                 tests=("welch", "student", "mann_whitney")) -> dict[str, pd.DataFrame]:
    """SPRITE samples for every published mean/SD and how far the published P narrow them.

    For each outcome, time point and group with a published n, mean and SD, up to ``k``
    distinct samples on the outcome's scale (:data:`SCALES`; when the mean is GRIM-inconsistent
    there, on the coarsest finer candidate scale that is consistent, named in ``scale``).
    For each published P of that outcome, every pair (case sample, control sample) is tested
    with ``tests``, two- and one-sided, and the pairs giving the published P counted (a P
    gives it when it rounds to it under some rounding convention, :func:`esi.grim.rounds_to`).

    Returns
    -------
    dict of pandas.DataFrame
        ``"samples"``: ``id`` (the mean's id), ``scale``, ``sample``, ``position``, ``value``;
        ``"distribution"``: ``id``, ``value``, ``share`` (of all sampled values),
        ``share_given_p`` (among samples in at least one pair that gives the published P with
        some test; NaN when no P applies);
        ``"narrowing"``: ``id`` (the P's id), ``test``, ``alternative``, ``n_pairs``,
        ``n_giving_p``, ``share_giving_p``, ``cases_samples_kept``, ``controls_samples_kept``.
    """
    from esi.sprite import SpriteError, sprite_many

    published = read_published(published)
    lookup = _Lookup(published)
    scales = SCALES if scales is None else scales
    samples: dict[tuple[str, int, str], tuple[str, np.ndarray]] = {}
    rows_s = []
    rng = np.random.default_rng(seed)
    for r in published.itertuples():
        if r.statistic != "mean" or r.outcome not in scales:
            continue
        sd = lookup.get(r.outcome, r.timepoint_weeks, r.group, "sd")
        n = _group_n(lookup, r.outcome, r.timepoint_weeks, r.group)
        if sd is None or n is None:
            continue
        sd_value, sd_decimals = float(sd[0]), int(sd[1])
        sc = scales[r.outcome]
        options = [(sc.name, sc.granularity)] + sorted(
            [(nm, g) for nm, g in CANDIDATE_SCALES if g < sc.granularity],
            key=lambda t: -t[1])
        for name, g in options:
            if not grimmer(r.value, sd_value, n, r.decimals, sd_decimals, g).consistent:
                continue
            lo = math.ceil(Fraction(sc.lower) / g) * g
            hi = math.floor(Fraction(sc.upper) / g) * g
            try:
                df = sprite_many(n, r.value, sd_value, k, lower=float(lo),
                                 upper=float(hi), step=g, mean_decimals=r.decimals,
                                 sd_decimals=sd_decimals,
                                 seed=int(rng.integers(2**31)))
            except SpriteError:
                continue
            arr = df.pivot(index="sample", columns="position", values="value").to_numpy()
            samples[(r.outcome, r.timepoint_weeks, r.group)] = (r.id, arr)
            df.insert(0, "scale", name)
            df.insert(0, "id", r.id)
            rows_s.append(df)
            break
    samples_df = (pd.concat(rows_s, ignore_index=True) if rows_s else
                  pd.DataFrame(columns=["id", "scale", "sample", "position", "value"]))
    g1, g0 = (g for g in GROUP_ROLES)
    rows_n = []
    kept: dict[str, set[int]] = {}
    for r in published.itertuples():
        if r.group != "comparison" or r.statistic != "p":
            continue
        a = samples.get((r.outcome, r.timepoint_weeks, g1))
        b = samples.get((r.outcome, r.timepoint_weeks, g0))
        if a is None or b is None:
            continue
        any_ok = np.zeros((len(a[1]), len(b[1])), bool)
        for test in tests:
            ps = _narrowing_p(test, a[1], b[1])
            for alt in _ALTS:
                p = ps[alt]
                ok = rounds_to(p, r.value, r.decimals)
                any_ok |= ok
                rows_n.append(dict(id=r.id, test=test, alternative=alt, n_pairs=int(ok.size),
                                   n_giving_p=int(ok.sum()),
                                   share_giving_p=float(ok.mean()),
                                   cases_samples_kept=int(ok.any(axis=1).sum()),
                                   controls_samples_kept=int(ok.any(axis=0).sum())))
        kept[a[0]] = set(np.flatnonzero(any_ok.any(axis=1)).tolist())
        kept[b[0]] = set(np.flatnonzero(any_ok.any(axis=0)).tolist())
    rows_d = []
    for fid, sub in samples_df.groupby("id", sort=False):
        allv = sub["value"].value_counts(normalize=True)
        if fid in kept:
            sel = sub[sub["sample"].isin(kept[fid])]["value"]
            given = sel.value_counts(normalize=True) if len(sel) else pd.Series(dtype=float)
        else:
            given = None
        for v in sorted(allv.index):
            rows_d.append(dict(id=fid, value=float(v), share=float(allv[v]),
                               share_given_p=(float(given.get(v, 0.0)) if given is not None
                                              else float("nan"))))
    return {
        "samples": samples_df,
        "distribution": pd.DataFrame(rows_d, columns=["id", "value", "share", "share_given_p"]),
        "narrowing": pd.DataFrame(rows_n, columns=["id", "test", "alternative", "n_pairs",
                                                   "n_giving_p", "share_giving_p",
                                                   "cases_samples_kept",
                                                   "controls_samples_kept"]),
    }


# ------------------------------------------------------------------------------ run folder
def run_audit(run_dir: str | Path, published_path: str | Path | pd.DataFrame = PUBLISHED_RESULTS,
              registry: pd.DataFrame | str | Path | None = None, *,
              missing: str = "complete_case", success_threshold: float = 2.0,
              sprite_samples: int = 200, seed: int = 0,
              present: Callable[[pd.DataFrame, str], pd.DataFrame] | None = None
              ) -> dict[str, pd.DataFrame]:
    """Audit a run folder against a published-results table and write the audit CSVs there.

    Parameters
    ----------
    run_dir
        Folder holding ``outcomes.csv``, ``matched_pairs.csv`` and ``cohort_flow.csv`` (the
        last two optional: cohort figures are then not reproduced).
    published_path
        Published-results table (path or DataFrame) in the format of
        ``published_results.csv``.
    registry
        The registry the run analysed (DataFrame or path; the eligible cohort or the whole
        registry). Needed for the P-value tests on the reproduced data; ``None`` tests the
        summary statistics only.
    missing, success_threshold
        As the run (for the tests on the data).
    sprite_samples, seed
        SPRITE samples per published mean/SD and the seed of the search.
    present
        ``present(table, name)`` applied to each table before it is written (real data:
        :meth:`esi.pipeline.Analysis.present`, the disclosure control); ``None`` writes them
        as computed.

    Returns
    -------
    dict of pandas.DataFrame
        ``reproduction``, ``reproduction_sources``, ``p_value_audit``, ``p_value_summary``,
        ``grim_audit``, ``sprite_distribution``, ``sprite_p_narrowing`` (each also written as
        ``<name>.csv`` in ``run_dir``) and ``sprite_samples`` (not written).
    """
    from esi.io import atomic_write, read_registry

    run_dir = Path(run_dir)
    published = read_published(published_path)
    if not (run_dir / "outcomes.csv").exists():
        raise ValueError(f"run_dir {run_dir} has no outcomes.csv")
    # Real-data result files show hidden cells as "<5" and "-" (esi.disclosure): read as
    # missing, so a hidden figure is not reproduced rather than guessed.
    hidden = ["<5", "-"]
    outcomes = pd.read_csv(run_dir / "outcomes.csv", na_values=hidden)
    pairs = (pd.read_csv(run_dir / "matched_pairs.csv", dtype={"treated": str, "control": str})
             if (run_dir / "matched_pairs.csv").exists() else None)
    flow = (pd.read_csv(run_dir / "cohort_flow.csv", na_values=hidden)
            if (run_dir / "cohort_flow.csv").exists() else None)
    sources = reproduced_figures(published, outcomes, pairs, flow)
    tables = {"reproduction": reproduce(published, sources), "reproduction_sources": sources}
    data = None
    if registry is not None and pairs is not None:
        reg = registry if isinstance(registry, pd.DataFrame) else read_registry(registry)
        data = outcome_data(reg, pairs, missing=missing, success_threshold=success_threshold)
    pa = p_value_audit(published, data)
    tables["p_value_audit"] = pa
    tables["p_value_summary"] = p_value_summary(pa, published)
    tables["grim_audit"] = grim_audit(published)
    sp = sprite_audit(published, k=sprite_samples, seed=seed)
    tables["sprite_distribution"] = sp["distribution"]
    tables["sprite_p_narrowing"] = sp["narrowing"]
    for name, tab in tables.items():
        shown = tab if present is None else present(tab, name)
        with atomic_write(run_dir / f"{name}.csv") as fh:
            shown.to_csv(fh, index=False, lineterminator="\n")
    tables["sprite_samples"] = sp["samples"]
    return tables
