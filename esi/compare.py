"""Outcome comparisons: near-normal cases versus matched controls, the larger cohort and
historical controls.

Which observations enter a comparison
-------------------------------------
* **Cases** are the matched treated patients (``match.pairs["treated"]``, each once).
* **Unpaired tests** (``welch``, ``student``, ``mann_whitney``; ``fisher*``, ``chi2*``) use one
  control observation per row of ``match.pairs``: a control re-used by matching with
  replacement enters once per case it serves. With a fixed ratio k this equals the MatchIt
  weights in ``match.weights`` up to a constant; with a variable ratio (ratio k with a caliper)
  it gives cases with more controls more weight; use a paired test if that matters.
* **Paired tests** (``paired_t``, ``wilcoxon``) compare each case with the mean of its
  controls that have the outcome; a pair whose case, or all of whose controls, miss the visit is
  dropped. ``mcnemar`` needs exactly one control per case (1:1 matching) and raises ValueError
  otherwise: averaging binary outcomes of k controls gives no paired 2 x 2 table.
* ``n_cases`` / ``n_controls`` are the observations actually used (complete cases unless
  imputed); ``n_pairs`` the complete pairs for paired tests.

Estimates and effect sizes
--------------------------
Continuous outcomes: ``estimate`` = mean difference cases - controls with the t interval of the
matching test (Welch interval for ``welch`` and ``mann_whitney``, pooled for ``student``,
paired for ``paired_t`` and ``wilcoxon``); ``effect_size`` = Hedges' g (``welch``,
``student``), paired Hedges' g_z (``paired_t``) or rank-biserial r (``mann_whitney``,
``wilcoxon``). Binary outcomes: ``estimate`` = risk difference (Newcombe interval; paired
Newcombe for ``mcnemar``); ``effect_size`` = odds ratio (conditional MLE with exact two-sided
interval as R ``fisher.test``; b/c with exact interval for ``mcnemar``). Intervals are at
1 - ``alpha``; for the one-sided Fisher tests only the P-value is one-sided.

Multiple imputation (``missing="mice"``)
----------------------------------------
``n_imputations`` data sets from :func:`esi.outcomes.mice_imputations` (seeded with
``random_state``; ``mice_cycles`` = (burn-in, between) chained-equation cycles); each
analysed as above, then pooled. Continuous outcomes: mean difference
pooled by Rubin's rules (Barnard-Rubin df; complete-data df n1 + n2 - 2, or n - 1 paired) and
Hedges' g pooled by Rubin's rules with its large-sample variance. Binary outcomes: chi-square
statistics pooled by the D2 rule, risk difference by Rubin's rules with the Wald variance, and
the odds ratio as exp of the Rubin-pooled log odds ratio with 0.5 added to each cell. Only tests
that pool this way are allowed: ``test`` in welch / student / paired_t and ``binary_test`` in
chi2 / chi2_yates; any other combination raises ValueError (no silent switch).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from esi import paths
from esi import stats as st
from esi.outcomes import (
    OUTCOMES,
    _bool,
    _float,
    _indexed,
    apply_missing_rule,
    derive_outcomes,
    describe_missing_rule,
    mice_imputations,
)
from esi.params import CHOICES, MICE_BINARY_TESTS, MICE_TESTS
from esi.stats.pooling import d2_pool_chisq, rubin_pool

__all__ = [
    "CONTINUOUS_TESTS",
    "BINARY_TESTS",
    "PAIRED_TESTS",
    "OUTCOME_TABLE_COLUMNS",
    "HISTORICAL_MEASURES",
    "compare_matched",
    "compare_larger_cohort",
    "compare_historical",
    "read_reference_cohorts",
]

#: Tests for continuous outcomes (run parameter ``test``).
CONTINUOUS_TESTS = CHOICES["test"]
#: Tests for binary outcomes (run parameter ``binary_test``).
BINARY_TESTS = CHOICES["binary_test"]
#: Tests that need the matched pairs.
PAIRED_TESTS = ("paired_t", "wilcoxon", "mcnemar")
_MICE_CONTINUOUS = MICE_TESTS
_MICE_BINARY = MICE_BINARY_TESTS

#: Columns of the outcome table (outcomes.csv), in order.
OUTCOME_TABLE_COLUMNS = (
    "outcome", "label", "timepoint_weeks", "kind", "primary", "comparison", "test",
    "missing_rule", "n_cases", "n_controls", "n_pairs", "mean_cases", "sd_cases",
    "mean_controls", "sd_controls", "events_cases", "events_controls", "percent_cases",
    "percent_controls", "estimate", "estimate_name", "ci_low", "ci_high", "effect_size",
    "effect_size_name", "effect_ci_low", "effect_ci_high", "statistic", "statistic_name", "dof",
    "p_value", "alpha", "method", "n_imputations",
)

_NAN = float("nan")


def _check_choice(value, allowed, name):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _check_alpha(alpha):
    if not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")


def _pairs_of(match) -> pd.DataFrame:
    pairs = getattr(match, "pairs", None)
    if not isinstance(pairs, pd.DataFrame):
        raise ValueError("match must have a 'pairs' DataFrame (an esi.matching.MatchResult)")
    missing = [c for c in ("treated", "control") if c not in pairs.columns]
    if missing:
        raise ValueError(f"match.pairs lacks column(s): {', '.join(missing)}")
    out = pairs[["treated", "control"]].astype(str).reset_index(drop=True)
    if out.empty:
        raise ValueError("match.pairs is empty: no matched case to compare")
    return out


class _Groups:
    """Who is compared: case ids, control rows (with repeats) and the case -> controls map."""

    def __init__(self, cases, controls, pairs: pd.DataFrame | None):
        self.cases = list(cases)
        self.controls = list(controls)
        self.pairs = pairs

    @property
    def max_controls_per_case(self) -> int:
        if self.pairs is None:
            return 0
        return int(self.pairs.groupby("treated").size().max())


def _groups_matched(reg: pd.DataFrame, match) -> _Groups:
    pairs = _pairs_of(match)
    unknown = sorted(set(pairs["treated"]).union(pairs["control"]) - set(reg.index))
    if unknown:
        raise ValueError(f"match.pairs names patients absent from the registry: {unknown[:5]}")
    treat = pd.to_numeric(reg["near_normal"], errors="coerce")
    bad_t = [p for p in pairs["treated"].unique() if treat.get(p) != 1]
    bad_c = [p for p in pairs["control"].unique() if treat.get(p) != 0]
    if bad_t or bad_c:
        raise ValueError(
            "match.pairs disagrees with registry['near_normal']: "
            f"treated not 1: {bad_t[:5]}, controls not 0: {bad_c[:5]}"
        )
    cases = list(dict.fromkeys(pairs["treated"]))
    return _Groups(cases, list(pairs["control"]), pairs)


def _groups_cohort(reg: pd.DataFrame) -> _Groups:
    treat = pd.to_numeric(reg["near_normal"], errors="coerce")
    cases = list(reg.index[treat == 1])
    controls = list(reg.index[treat == 0])
    if not cases or not controls:
        raise ValueError("registry['near_normal'] must contain both 1 (cases) and 0 (controls)")
    return _Groups(cases, controls, None)


def _sd(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else _NAN


def _paired_values(outcomes: pd.DataFrame, groups: _Groups, col: str):
    vals = outcomes[col]
    if vals.dtype == "boolean":
        vals = vals.astype("Float64")
    vals = pd.Series(vals.to_numpy(float, na_value=np.nan), index=vals.index)
    pairs = groups.pairs.assign(case_value=lambda d: vals.reindex(d["treated"]).to_numpy(),
                                control_value=lambda d: vals.reindex(d["control"]).to_numpy())
    per_case = pairs.groupby("treated", sort=False).agg(
        case_value=("case_value", "first"),
        control_value=("control_value", "mean"),
        n_control_obs=("control_value", "count"),
    )
    complete = per_case.dropna(subset=["case_value", "control_value"])
    return complete


def _row_base(spec, comparison, test, missing, alpha):
    row = dict.fromkeys(OUTCOME_TABLE_COLUMNS, _NAN)
    row.update(outcome=spec.name, label=spec.label, timepoint_weeks=spec.timepoint_weeks,
               kind=spec.kind, primary=spec.primary, comparison=comparison, test=test,
               missing_rule=missing, alpha=alpha, n_imputations=0)
    return row


def _continuous(outcomes, groups, spec, test, alpha):
    conf = 1 - alpha
    col = spec.column
    out = {}
    if test in ("paired_t", "wilcoxon"):
        data = _paired_values(outcomes, groups, col)
        x = data["case_value"].to_numpy(float)
        y = data["control_value"].to_numpy(float)
        out.update(n_cases=len(x), n_controls=int(data["n_control_obs"].sum()), n_pairs=len(x))
        md = st.mean_difference(x, y, paired=True, confidence=conf)
        if test == "paired_t":
            res = st.paired_t(x, y, confidence=conf)
            eff = st.hedges_g(x, y, paired=True, confidence=conf)
        else:
            res = st.wilcoxon_signed_rank(x, y)
            eff = st.rank_biserial(x, y, paired=True, confidence=conf)
    else:
        x = _float(outcomes[col].reindex(groups.cases)).dropna().to_numpy()
        y = _float(outcomes[col].reindex(groups.controls)).dropna().to_numpy()
        out.update(n_cases=len(x), n_controls=len(y))
        md = st.mean_difference(x, y, equal_var=(test == "student"), confidence=conf)
        if test == "welch":
            res, eff = st.welch_t(x, y, confidence=conf), st.hedges_g(x, y, confidence=conf)
        elif test == "student":
            res, eff = st.student_t(x, y, confidence=conf), st.hedges_g(x, y, confidence=conf)
        else:
            res = st.mann_whitney(x, y)
            eff = st.rank_biserial(x, y, confidence=conf)
    out.update(
        mean_cases=float(np.mean(x)) if len(x) else _NAN, sd_cases=_sd(x),
        mean_controls=float(np.mean(y)) if len(y) else _NAN, sd_controls=_sd(y),
        estimate=md.estimate, estimate_name="mean_difference", ci_low=md.ci_low,
        ci_high=md.ci_high, effect_size=eff.estimate, effect_size_name=eff.name,
        effect_ci_low=eff.ci_low, effect_ci_high=eff.ci_high, statistic=res.statistic,
        statistic_name=res.statistic_name, dof=res.dof, p_value=res.p_value,
        method=f"{res.method}; estimate CI: {md.method}; effect CI: {eff.method}",
    )
    return out


def _binary_series(outcomes, ids, col) -> pd.Series:
    return _bool(outcomes[col]).reindex(ids).dropna()


def _binary(outcomes, groups, spec, test, alpha):
    conf = 1 - alpha
    col = spec.column
    if test == "mcnemar":
        data = _paired_values(outcomes, groups, col)
        a_case = data["case_value"].to_numpy() > 0.5
        a_ctrl = data["control_value"].to_numpy() > 0.5
        table = [[int(np.sum(a_case & a_ctrl)), int(np.sum(a_case & ~a_ctrl))],
                 [int(np.sum(~a_case & a_ctrl)), int(np.sum(~a_case & ~a_ctrl))]]
        n = len(data)
        ev1, ev2, n1, n2 = int(a_case.sum()), int(a_ctrl.sum()), n, n
        res = st.mcnemar_exact(table, confidence=conf)
        rd = st.paired_risk_difference(table, confidence=conf)
        eff = st.paired_odds_ratio(table, confidence=conf)
        extra = {"n_pairs": n}
    else:
        x = _binary_series(outcomes, groups.cases, col)
        y = _binary_series(outcomes, groups.controls, col)
        n1, n2 = len(x), len(y)
        ev1, ev2 = int(x.sum()), int(y.sum())
        table = [[ev1, n1 - ev1], [ev2, n2 - ev2]]
        if test.startswith("fisher"):
            alt = {"fisher": "two-sided", "fisher_less": "less",
                   "fisher_greater": "greater"}[test]
            res = st.fisher_exact(table, alternative=alt, confidence=conf)
        else:
            res = st.chi2_test(table, correct=(test == "chi2_yates"))
        rd = st.risk_difference(ev1, n1, ev2, n2, confidence=conf)
        if test == "fisher":  # the same conditional MLE and two-sided interval: reuse it
            eff = st.EffectSize("odds_ratio", res.estimate, res.ci_low, res.ci_high, conf,
                                "conditional MLE, exact interval")
        else:
            eff = st.odds_ratio(table, confidence=conf)
        extra = {}
    return dict(
        n_cases=n1, n_controls=n2, events_cases=ev1, events_controls=ev2,
        percent_cases=100 * ev1 / n1 if n1 else _NAN,
        percent_controls=100 * ev2 / n2 if n2 else _NAN,
        estimate=rd.estimate, estimate_name="risk_difference", ci_low=rd.ci_low,
        ci_high=rd.ci_high, effect_size=eff.estimate, effect_size_name=eff.name,
        effect_ci_low=eff.ci_low, effect_ci_high=eff.ci_high, statistic=res.statistic,
        statistic_name=res.statistic_name, dof=res.dof, p_value=res.p_value,
        method=f"{res.method}; estimate CI: {rd.method}; effect CI: {eff.method}", **extra,
    )


def _analyse(outcomes, groups, test, binary_test, missing, alpha, comparison):
    rows = []
    for spec in OUTCOMES:
        if spec.kind == "continuous":
            row = _row_base(spec, comparison, test, missing, alpha)
            row.update(_continuous(outcomes, groups, spec, test, alpha))
        else:
            row = _row_base(spec, comparison, binary_test, missing, alpha)
            row.update(_binary(outcomes, groups, spec, binary_test, alpha))
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- MICE pooling
def _mice_continuous(per_imp, groups, spec, test, alpha):
    ests, vars_, gs, gvars, means = [], [], [], [], []
    for outcomes in per_imp:
        if test == "paired_t":
            data = _paired_values(outcomes, groups, spec.column)
            x = data["case_value"].to_numpy(float)
            y = data["control_value"].to_numpy(float)
            d = x - y
            n = len(d)
            ests.append(d.mean())
            vars_.append(d.var(ddof=1) / n)
            df_com = n - 1
            g = st.hedges_g(x, y, paired=True).estimate
            gvars.append(1 / n + g**2 / (2 * n))
            n1 = n2 = n
        else:
            x = _float(outcomes[spec.column].reindex(groups.cases)).dropna().to_numpy()
            y = _float(outcomes[spec.column].reindex(groups.controls)).dropna().to_numpy()
            n1, n2 = len(x), len(y)
            ests.append(x.mean() - y.mean())
            if test == "welch":
                vars_.append(x.var(ddof=1) / n1 + y.var(ddof=1) / n2)
            else:
                sp2 = ((n1 - 1) * x.var(ddof=1) + (n2 - 1) * y.var(ddof=1)) / (n1 + n2 - 2)
                vars_.append(sp2 * (1 / n1 + 1 / n2))
            df_com = n1 + n2 - 2
            g = st.hedges_g(x, y).estimate
            gvars.append((n1 + n2) / (n1 * n2) + g**2 / (2 * (n1 + n2)))
        gs.append(g)
        means.append((x.mean(), _sd(x), y.mean(), _sd(y)))
    pooled = rubin_pool(ests, vars_, complete_df=df_com, confidence=1 - alpha)
    gpool = rubin_pool(gs, gvars, complete_df=df_com, confidence=1 - alpha)
    mc, sc, mk, sk = np.mean(np.asarray(means), axis=0)
    name = "hedges_g_z" if test == "paired_t" else "hedges_g"
    return dict(
        n_cases=n1, n_controls=n2, n_pairs=n1 if test == "paired_t" else _NAN,
        mean_cases=mc, sd_cases=sc, mean_controls=mk, sd_controls=sk,
        estimate=pooled.estimate, estimate_name="mean_difference", ci_low=pooled.ci_low,
        ci_high=pooled.ci_high, effect_size=gpool.estimate, effect_size_name=name,
        effect_ci_low=gpool.ci_low, effect_ci_high=gpool.ci_high, statistic=pooled.statistic,
        statistic_name="t", dof=pooled.dof, p_value=pooled.p_value,
        method=f"{test} per imputation, Rubin's rules (Barnard-Rubin df, fmi "
        f"{pooled.fmi:.2f}); Hedges' g pooled by Rubin's rules",
    )


def _mice_binary(per_imp, groups, spec, test, alpha):
    chis, rds, rdvars, lors, lorvars, counts = [], [], [], [], [], []
    for outcomes in per_imp:
        x = _binary_series(outcomes, groups.cases, spec.column)
        y = _binary_series(outcomes, groups.controls, spec.column)
        n1, n2 = len(x), len(y)
        e1, e2 = int(x.sum()), int(y.sum())
        chis.append(st.chi2_test([[e1, n1 - e1], [e2, n2 - e2]],
                                 correct=(test == "chi2_yates")).statistic)
        p1, p2 = e1 / n1, e2 / n2
        rds.append(p1 - p2)
        rdvars.append(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
        a, b, c, d = e1 + 0.5, n1 - e1 + 0.5, e2 + 0.5, n2 - e2 + 0.5
        lors.append(math.log(a * d / (b * c)))
        lorvars.append(1 / a + 1 / b + 1 / c + 1 / d)
        counts.append((e1, e2))
    d2 = d2_pool_chisq(chis)
    rd = rubin_pool(rds, rdvars, confidence=1 - alpha)
    lor = rubin_pool(lors, lorvars, confidence=1 - alpha)
    e1m, e2m = np.mean(np.asarray(counts, dtype=float), axis=0)
    return dict(
        n_cases=n1, n_controls=n2, events_cases=e1m, events_controls=e2m,
        percent_cases=100 * e1m / n1, percent_controls=100 * e2m / n2,
        estimate=rd.estimate, estimate_name="risk_difference", ci_low=rd.ci_low,
        ci_high=rd.ci_high, effect_size=math.exp(lor.estimate), effect_size_name="odds_ratio",
        effect_ci_low=math.exp(lor.ci_low) if not math.isnan(lor.ci_low) else _NAN,
        effect_ci_high=math.exp(lor.ci_high) if not math.isnan(lor.ci_high) else _NAN,
        statistic=d2.statistic, statistic_name="D2", dof=d2.df2, p_value=d2.p_value,
        method=f"{test} per imputation, D2 pooling (Li et al. 1991); risk difference (Wald) and "
        "log odds ratio (+0.5 per cell) pooled by Rubin's rules",
    )


def _analyse_mice(reg, groups, test, binary_test, alpha, comparison, success_threshold,
                  n_imputations, random_state, mice_cycles=(5, 2)):
    if test not in _MICE_CONTINUOUS:
        raise ValueError(
            f"test={test!r} cannot be pooled over imputations with Rubin's rules; with "
            f"missing='mice' use test in {_MICE_CONTINUOUS}"
        )
    if binary_test not in _MICE_BINARY:
        raise ValueError(
            f"binary_test={binary_test!r} cannot be pooled over imputations; with "
            f"missing='mice' use binary_test in {_MICE_BINARY} (D2 pooling)"
        )
    imputed = mice_imputations(reg, m=n_imputations, random_state=random_state,
                               burn_in=mice_cycles[0], between=mice_cycles[1])
    per_imp = [derive_outcomes(r, success_threshold=success_threshold) for r in imputed]
    rows = []
    for spec in OUTCOMES:
        kind_test = test if spec.kind == "continuous" else binary_test
        row = _row_base(spec, comparison, kind_test, "mice", alpha)
        if spec.kind == "continuous":
            row.update(_mice_continuous(per_imp, groups, spec, test, alpha))
        else:
            row.update(_mice_binary(per_imp, groups, spec, binary_test, alpha))
        row["n_imputations"] = n_imputations
        rows.append(row)
    return rows


def _prepare(registry, test, binary_test, missing, success_threshold, alpha):
    _check_choice(test, CONTINUOUS_TESTS, "test")
    _check_choice(binary_test, BINARY_TESTS, "binary_test")
    _check_choice(missing, ("complete_case", "locf", "bocf", "mice"), "missing")
    _check_alpha(alpha)
    if not isinstance(success_threshold, int | float) or not success_threshold > 0:
        raise ValueError(f"success_threshold must be a positive number, got {success_threshold!r}")
    reg = _indexed(registry)
    if "near_normal" not in reg.columns:
        raise ValueError("registry lacks the 'near_normal' column (1 = case, 0 = control)")
    return reg


def _finish(rows) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=list(OUTCOME_TABLE_COLUMNS))
    for c in ("n_cases", "n_controls", "n_imputations", "timepoint_weeks"):
        table[c] = table[c].astype(int)
    table["n_pairs"] = table["n_pairs"].astype("Int64")
    table["primary"] = table["primary"].astype(bool)
    table.attrs["missing_rule_text"] = describe_missing_rule(rows[0]["missing_rule"])
    return table


def compare_matched(
    registry: pd.DataFrame,
    match,
    *,
    test: str = "welch",
    binary_test: str = "fisher",
    missing: str = "complete_case",
    success_threshold: float = 2.0,
    alpha: float = 0.05,
    random_state: int | np.random.Generator | None = None,
    n_imputations: int = 20,
    mice_cycles: tuple[int, int] = (5, 2),
) -> pd.DataFrame:
    """Compare near-normal cases with their matched controls on every outcome and time point.

    Parameters
    ----------
    registry
        Registry (``patient_id`` index or column) with ``near_normal`` and the follow-up
        columns.
    match
        An :class:`esi.matching.MatchResult` (uses ``match.pairs``: columns ``treated``,
        ``control``, one row per matched control).
    test
        Continuous outcomes: ``"welch"`` (default), ``"student"``, ``"mann_whitney"``,
        ``"paired_t"``, ``"wilcoxon"``.
    binary_test
        Binary outcomes: ``"fisher"`` (default, two-sided), ``"fisher_less"``,
        ``"fisher_greater"`` (one-sided: odds of the event lower / higher in cases),
        ``"chi2"``, ``"chi2_yates"``, ``"mcnemar"`` (exact, 1:1 pairs only).
    missing
        ``"complete_case"`` (default), ``"locf"``, ``"bocf"`` or ``"mice"`` (see module notes).
    success_threshold
        Leg-pain decrease (points) for the composite positive outcome.
    alpha
        Intervals are at 1 - alpha.
    random_state
        Seed for ``missing="mice"`` (ignored otherwise).
    n_imputations
        Number of imputations for ``missing="mice"``.
    mice_cycles
        (burn-in, between): chained-equation cycles before the first imputed data set and
        between successive ones (``missing="mice"`` only). Each cycle takes about 0.7 s on a
        registry of a few hundred patients (statsmodels fits one formula model per variable).

    Returns
    -------
    pandas.DataFrame
        One row per outcome x time point (order of :data:`esi.outcomes.OUTCOMES`) with columns:

        - ``outcome``, ``label``, ``timepoint_weeks``, ``kind`` (continuous / binary),
          ``primary`` (bool), ``comparison`` (``"matched"``), ``test`` (the test used for
          that row), ``missing_rule``.
        - ``n_cases``, ``n_controls``: observations used; ``n_pairs``: complete pairs (paired
          tests; NA otherwise).
        - ``mean_cases``, ``sd_cases``, ``mean_controls``, ``sd_controls``: continuous rows
          (paired tests: controls = each case's control mean).
        - ``events_cases``, ``events_controls``, ``percent_cases``, ``percent_controls``: binary.
        - ``estimate`` (mean difference cases - controls, or risk difference as a proportion),
          ``estimate_name``, ``ci_low``, ``ci_high``.
        - ``effect_size``, ``effect_size_name`` (hedges_g, hedges_g_z, rank_biserial,
          odds_ratio), ``effect_ci_low``, ``effect_ci_high``.
        - ``statistic``, ``statistic_name``, ``dof``, ``p_value``, ``alpha``, ``method``
          (how P and the intervals were obtained), ``n_imputations`` (0 unless MICE).

        ``table.attrs["missing_rule_text"]`` holds the sentence describing the missing rule.
        This table is written as ``outcomes.csv``.

    Raises
    ------
    ValueError
        For an unknown test / rule (naming the argument), a McNemar test with more than one
        control per case, a MICE run with a test that cannot be pooled, or pairs that disagree
        with ``near_normal``.

    Notes
    -----
    Every test and effect size is checked against R (``t.test``, ``wilcox.test``,
    ``fisher.test``, ``chisq.test``, ``binom.test``, ``mcnemar.test``); see
    ``tests/reference/stats/make_reference.R``.
    """
    reg = _prepare(registry, test, binary_test, missing, success_threshold, alpha)
    groups = _groups_matched(reg, match)
    if binary_test == "mcnemar" and groups.max_controls_per_case > 1:
        raise ValueError(
            "binary_test='mcnemar' needs 1:1 matched pairs, but some cases have "
            f"{groups.max_controls_per_case} controls (ratio > 1); use 'fisher' or 'chi2'"
        )
    if missing == "mice":
        cohort = reg[pd.to_numeric(reg["near_normal"], errors="coerce").isin([0, 1])]
        rows = _analyse_mice(cohort, groups, test, binary_test, alpha, "matched",
                             success_threshold, n_imputations, random_state, mice_cycles)
    else:
        outcomes = derive_outcomes(apply_missing_rule(reg, missing),
                                   success_threshold=success_threshold)
        rows = _analyse(outcomes, groups, test, binary_test, missing, alpha, "matched")
    return _finish(rows)


def compare_larger_cohort(
    registry: pd.DataFrame,
    *,
    test: str = "welch",
    binary_test: str = "fisher",
    missing: str = "complete_case",
    success_threshold: float = 2.0,
    alpha: float = 0.05,
    random_state: int | np.random.Generator | None = None,
    n_imputations: int = 20,
    mice_cycles: tuple[int, int] = (5, 2),
) -> pd.DataFrame:
    """Compare all near-normal cases with every eligible control with concordant pathology.

    Parameters
    ----------
    registry
        The eligible cohort (rows with ``near_normal`` 1 or 0; other rows are ignored),
        e.g. the table produced by the cohort step.
    test, binary_test, missing, success_threshold, alpha, random_state, n_imputations, mice_cycles
        As :func:`compare_matched`, but paired tests (``paired_t``, ``wilcoxon``,
        ``mcnemar``) are not allowed: there are no pairs.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`compare_matched` with ``comparison = "larger_cohort"``, plus
        ``source`` (who the controls are, with their number) and ``measure`` (the outcome
        column compared).
    """
    for name, value in (("test", test), ("binary_test", binary_test)):
        if value in PAIRED_TESTS:
            raise ValueError(
                f"{name}={value!r} is a paired test; the larger-cohort comparison is unpaired"
            )
    reg = _prepare(registry, test, binary_test, missing, success_threshold, alpha)
    reg = reg[pd.to_numeric(reg["near_normal"], errors="coerce").isin([0, 1])]
    groups = _groups_cohort(reg)
    if missing == "mice":
        rows = _analyse_mice(reg, groups, test, binary_test, alpha, "larger_cohort",
                             success_threshold, n_imputations, random_state, mice_cycles)
    else:
        outcomes = derive_outcomes(apply_missing_rule(reg, missing),
                                   success_threshold=success_threshold)
        rows = _analyse(outcomes, groups, test, binary_test, missing, alpha, "larger_cohort")
    table = _finish(rows)
    table.insert(6, "source", f"all eligible patients with concordant pathology "
                              f"(n = {len(groups.controls)})")
    table.insert(7, "measure", [f"{o}_{t}w" for o, t in zip(table["outcome"],
                                                          table["timepoint_weeks"], strict=True)])
    return table


# ----------------------------------------------------------------------- historical controls
#: How each statistic of reference_cohorts.csv maps onto this study's measures:
#: statistic -> (measure, timepoint_weeks, kind, sign). ``sign = -1`` turns a published change
#: (follow-up - baseline) into a reduction. Statistics not listed are not compared:
#: ``age_mean`` (no SD published), ``eligibility`` (text) and ``pain_reduction_mean_sd``
#: (pooled ESI, sacroiliac and facet procedures, pain site and time point not stated).
HISTORICAL_MEASURES = {
    "leg_pain_change_1mo_mean_sd": ("leg_pain_reduction", 4, "continuous", -1),
    "leg_pain_reduction_1mo_mean_sd": ("leg_pain_reduction", 4, "continuous", 1),
    "leg_pain_1mo_mean_sd": ("leg_pain", 4, "continuous", 1),
    "percent_positive_outcome_3mo": ("positive_outcome", 12, "binary", 1),
    "percent_female": ("female", 0, "binary", 1),
    "percent_male": ("male", 0, "binary", 1),
    "percent_opioid_use": ("opioid_use", 0, "binary", 1),
}

_NUM = r"-?\d+(?:\.\d+)?"


def _arm_sizes(note: str, other_notes: Sequence[str], n_parts: int, total_n):
    """Arm labels and sizes for a multi-valued statistic, parsed from the notes."""
    segments = [s.strip() for s in str(note).split("/")]
    if len(segments) != n_parts:
        return [None] * n_parts, [_NAN] * n_parts
    labels, sizes = [], []
    for seg in segments:
        label_match = re.match(r"([A-Za-z][\w-]*)", seg.split(":")[-1].strip())
        label = label_match.group(1) if label_match else None
        size = re.search(r"\((\d+)\)", seg)
        n = float(size.group(1)) if size else _NAN
        if math.isnan(n) and label:
            for other in other_notes:
                found = re.search(re.escape(label) + r"\s*\(?(\d+)\)?", str(other))
                if found:
                    n = float(found.group(1))
                    break
        labels.append(label)
        sizes.append(n)
    return labels, sizes


def read_reference_cohorts(path: str | Path | None = None) -> pd.DataFrame:
    """Read the published historical cohorts into one tidy row per cohort x arm x statistic.

    Parameters
    ----------
    path
        CSV with columns cohort, source, n, statistic, value, note (default
        :data:`esi.paths.REFERENCE_COHORTS`).

    Returns
    -------
    pandas.DataFrame
        Columns ``cohort``, ``source``, ``arm`` (label or None for the whole cohort), ``n``
        (arm size; NaN if it cannot be read), ``statistic``, ``mean``, ``sd`` (for
        ``*_mean_sd`` values written ``mean (sd)``), ``percent`` (for ``percent_*``),
        ``value`` (the text as published), ``note``. Values with several arms
        (``a / b / c``) give one row per arm, the arm sizes read from the notes.
    """
    path = paths.REFERENCE_COHORTS if path is None else paths.resolve(path)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    need = {"cohort", "source", "n", "statistic", "value", "note"}
    if not need.issubset(raw.columns):
        raise ValueError(f"{path}: needs columns {sorted(need)}, has {list(raw.columns)}")
    rows = []
    for _, r in raw.iterrows():
        parts = [p.strip() for p in r["value"].split("/")] if r["value"].strip() else [""]
        others = raw.loc[raw["cohort"] == r["cohort"], "note"].tolist()
        if len(parts) > 1:
            labels, sizes = _arm_sizes(r["note"], others, len(parts), r["n"])
        else:
            labels, sizes = [None], [float(r["n"]) if r["n"].strip() else _NAN]
        for part, label, n in zip(parts, labels, sizes, strict=True):
            mean = sd = pct = _NAN
            ms = re.fullmatch(rf"({_NUM})\s*\(({_NUM})\)", part)
            if r["statistic"].endswith("_mean_sd") and ms:
                mean, sd = float(ms.group(1)), float(ms.group(2))
            elif re.fullmatch(_NUM, part):
                if r["statistic"].startswith("percent_"):
                    pct = float(part)
                else:
                    mean = float(part)
            rows.append(dict(cohort=r["cohort"], source=r["source"], arm=label, n=n,
                             statistic=r["statistic"], mean=mean, sd=sd, percent=pct,
                             value=r["value"], note=r["note"]))
    return pd.DataFrame(rows)


def _case_measures(data: pd.DataFrame, missing: str, success_threshold: float) -> pd.DataFrame:
    """Case-level measures for the historical comparison (outcomes plus baseline items)."""
    if "near_normal" in data.columns:
        reg = _indexed(data)
        reg = reg[pd.to_numeric(reg["near_normal"], errors="coerce") == 1]
        if reg.empty:
            raise ValueError("data: no patient with near_normal == 1")
        filled = apply_missing_rule(reg, missing)
        out = derive_outcomes(filled, success_threshold=success_threshold)
        if "leg_pain_4w" in filled.columns:
            leg = _float(filled["leg_pain_4w"])
            missed = _bool(filled["visit_missed_4w"]).fillna(False).astype(bool)
            out["leg_pain_4w"] = leg.where(~missed)
        if "sex" in filled.columns:
            sex = filled["sex"].astype("string")
            out["female_0w"] = pd.array(sex.eq("female"), dtype="boolean")
            out["male_0w"] = pd.array(sex.eq("male"), dtype="boolean")
            out.loc[sex.isna().to_numpy(), ["female_0w", "male_0w"]] = pd.NA
        if "opioid_use" in filled.columns:
            out["opioid_use_0w"] = _bool(filled["opioid_use"])
        return out
    return data.copy()


def compare_historical(
    data: pd.DataFrame,
    *,
    reference: pd.DataFrame | str | Path | None = None,
    equal_var: bool = False,
    rate_test: str = "binomial",
    missing: str = "complete_case",
    success_threshold: float = 2.0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Compare the near-normal cases with historical cohorts known from published summaries.

    Parameters
    ----------
    data
        Either a registry (has ``near_normal``: cases are the rows with 1, outcomes derived
        here, baseline items sex and opioid use also compared) or a case outcome table from
        :func:`esi.outcomes.derive_outcomes` holding only the cases.
    reference
        Output of :func:`read_reference_cohorts`, or a path to such a CSV; default the shipped
        ``esi/data/reference_cohorts.csv``.
    equal_var
        Means: ``False`` Welch (default), ``True`` Student t from summary statistics.
    rate_test
        Rates: ``"binomial"`` (default; exact binomial test of the cases' events against the
        published rate treated as known, R ``binom.test``) or ``"fisher"`` (Fisher's exact test
        on the published rate rebuilt into counts with the cohort's n, R ``fisher.test``).
    missing
        Single-imputation rule for the cases (``"complete_case"``, ``"locf"``, ``"bocf"``).
    success_threshold
        As :func:`esi.outcomes.derive_outcomes`.
    alpha
        Intervals at 1 - alpha.

    Returns
    -------
    pandas.DataFrame
        One row per comparable published figure (see :data:`HISTORICAL_MEASURES`), columns:
        ``source`` (citation and identifier), ``cohort``, ``arm``, ``measure`` (published
        statistic name), ``outcome`` (this study's column), ``timepoint_weeks``, ``kind``,
        ``n_cases``, ``mean_cases``, ``sd_cases``, ``events_cases``, ``percent_cases``,
        ``n_reference``, ``mean_reference``, ``sd_reference``, ``percent_reference``,
        ``test`` (``welch_summary``, ``student_summary``, ``binomial`` or ``fisher``),
        ``statistic``, ``dof``, ``estimate`` and ``estimate_name`` (``mean_difference`` cases -
        reference; ``risk_difference`` cases' proportion - reference rate for the binomial
        test; ``odds_ratio``, conditional MLE, for Fisher), ``ci_low``, ``ci_high`` (t interval
        of the mean difference; Clopper-Pearson interval of the cases' proportion minus the
        reference rate; exact odds-ratio interval for Fisher), ``p_value``, ``missing_rule``,
        ``note`` (why a row has no test, or the published note).
    """
    _check_choice(rate_test, ("binomial", "fisher"), "rate_test")
    _check_choice(missing, ("complete_case", "locf", "bocf"), "missing")
    _check_alpha(alpha)
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data must be a DataFrame, got {type(data).__name__}")
    if reference is None or isinstance(reference, str | Path):
        reference = read_reference_cohorts(reference)
    cases = _case_measures(data, missing, success_threshold)
    conf = 1 - alpha
    rows = []
    for _, ref in reference.iterrows():
        if ref["statistic"] not in HISTORICAL_MEASURES:
            continue
        measure, t, kind, sign = HISTORICAL_MEASURES[ref["statistic"]]
        col = f"{measure}_{t}w"
        row = dict(source=f"{ref['cohort']} [{ref['source']}]", cohort=ref["cohort"],
                   arm=ref["arm"], measure=ref["statistic"], outcome=col,
                   timepoint_weeks=t, kind=kind, n_reference=ref["n"], missing_rule=missing,
                   note=ref["note"])
        if col not in cases.columns:
            rows.append({**row, "note": f"cases lack {col}"})
            continue
        if kind == "continuous":
            x = _float(cases[col]).dropna().to_numpy()
            mean_ref = sign * ref["mean"]
            row.update(n_cases=len(x), mean_cases=float(np.mean(x)) if len(x) else _NAN,
                       sd_cases=_sd(x), mean_reference=mean_ref, sd_reference=ref["sd"])
            if len(x) < 2 or math.isnan(ref["n"]) or math.isnan(ref["sd"]):
                row["note"] = "too few cases or reference n / SD unknown"
            else:
                res = st.ttest_from_summary(np.mean(x), _sd(x), len(x), mean_ref, ref["sd"],
                                            int(ref["n"]), equal_var=equal_var, confidence=conf)
                row.update(test=res.test, statistic=res.statistic, dof=res.dof,
                           estimate=res.estimate, estimate_name="mean_difference", ci_low=res.ci_low, ci_high=res.ci_high,
                           p_value=res.p_value)
        else:
            x = _bool(cases[col]).dropna()
            n, ev = len(x), int(x.sum())
            pct_ref = ref["percent"]
            row.update(n_cases=n, events_cases=ev, percent_cases=100 * ev / n if n else _NAN,
                       percent_reference=pct_ref)
            if n == 0 or math.isnan(pct_ref):
                row["note"] = "no case data or reference rate unknown"
            elif rate_test == "binomial":
                res = st.binomial_test_rate(ev, n, pct_ref / 100, confidence=conf)
                row.update(test="binomial", statistic=res.statistic,
                           estimate=ev / n - pct_ref / 100, estimate_name="risk_difference", ci_low=res.ci_low - pct_ref / 100,
                           ci_high=res.ci_high - pct_ref / 100, p_value=res.p_value)
            elif math.isnan(ref["n"]):
                row["note"] = "reference n unknown: counts cannot be rebuilt"
            else:
                n_ref = int(ref["n"])
                k_ref = st.counts_from_percent(pct_ref, n_ref)
                res = st.fisher_exact([[ev, n - ev], [k_ref, n_ref - k_ref]], confidence=conf)
                row.update(test="fisher", estimate=res.estimate, estimate_name="odds_ratio",
                           ci_low=res.ci_low,
                           ci_high=res.ci_high, p_value=res.p_value,
                           note=f"reference events rebuilt: {k_ref}/{n_ref}")
        rows.append(row)
    columns = ["source", "cohort", "arm", "measure", "outcome", "timepoint_weeks", "kind",
               "n_cases", "mean_cases", "sd_cases", "events_cases", "percent_cases",
               "n_reference", "mean_reference", "sd_reference", "percent_reference", "test",
               "statistic", "dof", "estimate", "estimate_name", "ci_low", "ci_high", "p_value",
               "missing_rule",
               "note"]
    return pd.DataFrame(rows, columns=columns)


