"""Table 1 (baseline characteristics) and Table 2 (outcomes), tidy and as publication text.

P-value formatting (:func:`format_p`)
-------------------------------------
* P < 0.001 is written ``P < 0.001``;
* 0.001 <= P < 0.1: three decimals (``P = 0.047``), so values near the 0.05 threshold keep
  their third digit;
* P >= 0.1: two decimals (``P = 0.72``), and ``P > 0.99`` when two decimals would round to 1;
* a missing P-value (test undefined for the data) is written ``P = n/a``.

Continuous comparisons read ``2.36 (SD 2.55) vs. 2.61 (SD 2.15); P = 0.72`` (two decimals for
means and SDs, as the paper); binary ones ``4/14 (28.6%) vs. 7/14 (50.0%); P = 0.22``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from esi.outcomes import MISSING_RULES, _indexed, describe_missing_rule

__all__ = [
    "TABLE1_COVARIATES",
    "table1",
    "table2",
    "format_p",
    "format_comparison",
    "format_table1",
    "format_table2",
]

#: Baseline characteristics shown in Table 1 by default (those present in the data).
TABLE1_COVARIATES = (
    "age", "sex", "bmi", "pain_duration_months", "depression_anxiety", "smoking", "employment",
    "site", "esi_approach", "baseline_leg_pain", "baseline_back_pain", "baseline_odi",
    "opioid_use", "baseline_mme", "baseline_analgesic_use",
)


def format_p(p: float) -> str:
    """Format a P-value by the rules in the module docstring (e.g. ``"P = 0.72"``)."""
    if p is None or (isinstance(p, float) and math.isnan(p)) or p is pd.NA:
        return "P = n/a"
    p = float(p)
    if not 0 <= p <= 1:
        raise ValueError(f"p must lie in [0, 1], got {p!r}")
    if p < 0.001:
        return "P < 0.001"
    if p < 0.1:
        return f"P = {p:.3f}"
    if round(p, 2) >= 1:
        return "P > 0.99"
    return f"P = {p:.2f}"


def _fmt(x, decimals=2) -> str:
    return "n/a" if x is None or pd.isna(x) else f"{x:.{decimals}f}"


def format_comparison(row, decimals: int = 2) -> str:
    """Publication text for one row of an outcome table.

    Parameters
    ----------
    row
        A row (Series or mapping) of :func:`esi.compare.compare_matched` output.
    decimals
        Decimals of means and SDs.

    Returns
    -------
    str
        Continuous: ``"2.36 (SD 2.55) vs. 2.61 (SD 2.15); P = 0.72"``; binary:
        ``"4/14 (28.6%) vs. 7/14 (50.0%); P = 0.22"`` (events rounded to whole numbers only
        when they are whole, e.g. not after multiple imputation).
    """
    p = format_p(row["p_value"])
    if row["kind"] == "continuous":
        return (f"{_fmt(row['mean_cases'], decimals)} (SD {_fmt(row['sd_cases'], decimals)}) vs. "
                f"{_fmt(row['mean_controls'], decimals)} (SD {_fmt(row['sd_controls'], decimals)})"
                f"; {p}")

    def count(events, n, pct):
        ev = f"{int(events)}" if float(events) == int(events) else f"{events:.1f}"
        return f"{ev}/{int(n)} ({_fmt(pct, 1)}%)"

    if pd.isna(row["events_cases"]) or pd.isna(row["events_controls"]):
        return f"n/a; {p}"
    return (f"{count(row['events_cases'], row['n_cases'], row['percent_cases'])} vs. "
            f"{count(row['events_controls'], row['n_controls'], row['percent_controls'])}; {p}")


# ------------------------------------------------------------------------------------ Table 1
def _terms(data: pd.DataFrame, covariates: Sequence[str]):
    """Yield (variable, level, kind, values as float with NaN)."""
    for var in covariates:
        if var not in data.columns:
            raise ValueError(f"covariates: column {var!r} is not in the data")
        col = data[var]
        if pd.api.types.is_bool_dtype(col) or str(col.dtype) == "boolean":
            vals = col.astype("Float64").to_numpy(float, na_value=np.nan)
            yield var, "yes", "binary", vals
        elif pd.api.types.is_numeric_dtype(col):
            vals = pd.to_numeric(col).astype("Float64").to_numpy(float, na_value=np.nan)
            uniq = set(np.unique(vals[~np.isnan(vals)]).tolist())
            if uniq <= {0.0, 1.0} and len(uniq) > 0 and var != "age":
                yield var, "yes", "binary", vals
            else:
                yield var, "", "continuous", vals
        else:
            s = col.astype("string")
            for level in sorted(s.dropna().unique()):
                vals = np.where(s.isna(), np.nan, (s == level).astype(float))
                yield var, str(level), "categorical", vals.astype(float)


def _smd(x, t, w):
    from esi import balance

    keep = ~np.isnan(x)
    x, t, w = x[keep], t[keep], w[keep]
    if t.sum() == 0 or (~t).sum() == 0 or w[t].sum() == 0 or w[~t].sum() == 0:
        return float("nan")
    return float(balance.smd(x, t.astype(int), w, estimand="ATT", binary="raw"))


def _describe(x, w, kind) -> tuple[float, float, float, str]:
    """(value, spread, n, text): mean, SD, n, 'mean (SD)' or proportion, count, n, 'n (%)'."""
    keep = ~np.isnan(x) & (w > 0)
    x, w = x[keep], w[keep]
    n = float(w.sum())
    if n == 0:
        return float("nan"), float("nan"), 0.0, "n/a"
    mean = float(np.sum(w * x) / n)
    if kind == "continuous":
        if len(x) > 1:
            wn = w / w.sum()
            denom = 1 - np.sum(wn**2)
            sd = float(np.sqrt(np.sum(wn * (x - mean) ** 2) / denom)) if denom > 0 else np.nan
        else:
            sd = float("nan")
        return mean, sd, n, f"{mean:.1f} ({_fmt(sd, 1)})"
    count = float(np.sum(w * x))
    ctext = f"{count:.0f}" if abs(count - round(count)) < 1e-9 else f"{count:.1f}"
    return mean, count, n, f"{ctext} ({100 * mean:.1f}%)"


def table1(
    data: pd.DataFrame,
    treatment: str = "near_normal",
    covariates: Sequence[str] | None = None,
    match=None,
) -> pd.DataFrame:
    """Baseline characteristics by group, before and (with ``match``) after matching.

    Parameters
    ----------
    data
        Registry / cohort table (``patient_id`` index or column) with ``treatment`` (1 = case).
    treatment
        0/1 column; 1 = near-normal imaging case.
    covariates
        Columns to show (default: those of :data:`TABLE1_COVARIATES` present). Numeric columns
        are continuous (0/1 columns binary), booleans binary, text columns categorical with
        one row per level.
    match
        Optional :class:`esi.matching.MatchResult`; its ``weights`` (MatchIt matching weights,
        0 = unmatched) give the after-matching columns.

    Returns
    -------
    pandas.DataFrame
        One row per covariate (continuous, binary) or covariate level (categorical), columns:

        - ``variable``, ``level`` ("" for continuous, "yes" for binary), ``kind``.
        - For ``stage`` in (before, after): ``n_cases_{stage}``, ``n_controls_{stage}``
          (patients with a value; weighted after matching), ``value_cases_{stage}``,
          ``value_controls_{stage}`` (mean, or proportion), ``spread_cases_{stage}``,
          ``spread_controls_{stage}`` (SD, or event count), ``cases_{stage}``,
          ``controls_{stage}`` (text: ``mean (SD)`` or ``n (%)``), ``smd_{stage}``.
          The ``_after`` columns are present only when ``match`` is given.

    Notes
    -----
    SMDs use :func:`esi.balance.smd` with the balance table's convention: ATT, difference of
    (weighted) means divided by the SD of the treated group in the *unmatched* sample (so
    before and after share a denominator); binary variables and categorical levels as a raw
    difference in proportions. Patients with a missing value are left out of that row only.
    """
    reg = _indexed(data)
    if treatment not in reg.columns:
        raise ValueError(f"treatment column {treatment!r} is not in the data")
    t_raw = pd.to_numeric(reg[treatment], errors="coerce")
    reg = reg[t_raw.isin([0, 1])]
    t = (t_raw[reg.index] == 1).to_numpy()
    if covariates is None:
        covariates = [c for c in TABLE1_COVARIATES if c in reg.columns]
    stages = {"before": np.ones(len(reg))}
    if match is not None:
        weights = getattr(match, "weights", None)
        if not isinstance(weights, pd.Series):
            raise ValueError("match must have a 'weights' Series (an esi.matching.MatchResult)")
        w = weights.copy()
        w.index = w.index.astype(str)
        stages["after"] = w.reindex(reg.index).fillna(0.0).to_numpy(float)
    rows = []
    for var, level, kind, x in _terms(reg, covariates):
        row = {"variable": var, "level": level, "kind": kind}
        for stage, w in stages.items():
            vc, sc, nc, tc = _describe(x[t], w[t], kind)
            vk, sk, nk, tk = _describe(x[~t], w[~t], kind)
            if stage == "before":
                smd = _smd(x, t, w)
            else:
                # denominator from the unmatched sample: pass every unit, unmatched ones with 0
                smd = _smd(x, t, w)
            row.update({
                f"n_cases_{stage}": nc, f"n_controls_{stage}": nk,
                f"value_cases_{stage}": vc, f"value_controls_{stage}": vk,
                f"spread_cases_{stage}": sc, f"spread_controls_{stage}": sk,
                f"cases_{stage}": tc, f"controls_{stage}": tk, f"smd_{stage}": smd,
            })
        rows.append(row)
    return pd.DataFrame(rows)


def format_table1(table: pd.DataFrame, decimals: int = 2) -> str:
    """Plain-text Table 1 (variable, cases, controls and SMD before / after matching)."""
    cols = ["variable", "level", "cases_before", "controls_before", "smd_before"]
    if "smd_after" in table.columns:
        cols += ["cases_after", "controls_after", "smd_after"]
    shown = table[cols].copy()
    for c in ("smd_before", "smd_after"):
        if c in shown.columns:
            shown[c] = shown[c].map(lambda v: _fmt(v, decimals))
    header = ("Table 1. Baseline characteristics, mean (SD) or n (%); SMD = difference in means / "
              "SD of cases before matching (proportions: raw difference).")
    return header + "\n" + shown.to_string(index=False)


# ------------------------------------------------------------------------------------ Table 2
def table2(outcomes_table: pd.DataFrame) -> pd.DataFrame:
    """Table 2: every outcome comparison as publication text plus the numbers behind it.

    Parameters
    ----------
    outcomes_table
        Output of :func:`esi.compare.compare_matched` (or ``compare_larger_cohort``).

    Returns
    -------
    pandas.DataFrame
        One row per outcome x time point, columns ``outcome``, ``label``,
        ``timepoint_weeks``, ``primary``, ``kind``, ``test``, ``missing_rule``, ``n_cases``,
        ``n_controls``, ``cases`` (``"2.36 (SD 2.55)"`` or ``"4/14 (28.6%)"``), ``controls``,
        ``estimate`` (text: estimate and CI, risk differences in percentage points),
        ``effect_size`` (text with its name and CI), ``p`` (formatted P), ``text`` (the full
        :func:`format_comparison` sentence), ``p_value`` (number).
        ``attrs["missing_rule_text"]`` states the missing-data rule.
    """
    required = {"outcome", "kind", "p_value", "missing_rule", "estimate", "ci_low", "ci_high"}
    missing = required - set(outcomes_table.columns)
    if missing:
        raise ValueError(f"outcomes_table lacks column(s): {sorted(missing)}")
    rows = []
    for _, r in outcomes_table.iterrows():
        text = format_comparison(r)
        cases_text, controls_text = text.split("; ")[0].split(" vs. ") if " vs. " in text else (
            "n/a", "n/a")
        if r["kind"] == "continuous":
            est = f"{_fmt(r['estimate'])} ({_fmt(r['ci_low'])} to {_fmt(r['ci_high'])})"
        else:
            est = (f"{_fmt(100 * r['estimate'], 1)} ({_fmt(100 * r['ci_low'], 1)} to "
                   f"{_fmt(100 * r['ci_high'], 1)}) points")
        eff = (f"{r['effect_size_name']} {_fmt(r['effect_size'])} "
               f"({_fmt(r['effect_ci_low'])} to {_fmt(r['effect_ci_high'])})")
        rows.append({
            "outcome": r["outcome"], "label": r.get("label", r["outcome"]),
            "timepoint_weeks": r["timepoint_weeks"], "primary": r.get("primary", False),
            "kind": r["kind"], "test": r["test"], "missing_rule": r["missing_rule"],
            "n_cases": r["n_cases"], "n_controls": r["n_controls"], "cases": cases_text,
            "controls": controls_text, "estimate": est, "effect_size": eff,
            "p": format_p(r["p_value"]), "text": text, "p_value": r["p_value"],
        })
    table = pd.DataFrame(rows)
    rules = outcomes_table["missing_rule"].unique()
    if len(rules) != 1 or rules[0] not in MISSING_RULES:
        raise ValueError(f"outcomes_table: expected one known missing_rule, found {list(rules)}")
    table.attrs["missing_rule_text"] = describe_missing_rule(rules[0])
    return table


def format_table2(table: pd.DataFrame) -> str:
    """Plain-text Table 2 with the missing-data rule and the tests printed beneath it.

    Parameters
    ----------
    table
        Output of :func:`table2`.
    """
    shown = table[["label", "timepoint_weeks", "n_cases", "n_controls", "cases", "controls",
                   "estimate", "p"]].rename(columns={"timepoint_weeks": "weeks"})
    tests = ", ".join(f"{k}: {v}" for k, v in
                      table.groupby("kind", sort=False)["test"].first().items())
    footer = [table.attrs.get("missing_rule_text")
              or describe_missing_rule(table["missing_rule"].iloc[0]),
              f"Tests: {tests}. Estimates: cases - controls (mean difference, or risk "
              "difference in percentage points) with 95% CI; n = observations used."]
    return "Table 2. Outcomes\n" + shown.to_string(index=False) + "\n" + "\n".join(footer)
