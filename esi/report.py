"""What the notebooks say: display settings, and the sentences that close each notebook.

Every sentence is built from computed results (no number is typed into prose by hand), so a
parameter change or another registry changes the text with the numbers.
"""

from __future__ import annotations

import pandas as pd

from esi.tables import format_p

__all__ = [
    "setup_display",
    "registry_summary",
    "cohort_findings",
    "matching_findings",
    "outcome_findings",
    "multiverse_summary",
    "sensitivity_findings",
    "audit_findings",
    "rounded",
    "described",
    "pairs_note",
]


def _num(v: object, fmt: str = ".2f") -> str:
    """A number formatted, or a hidden cell (``"<5"``, ``"-"``) as it is."""
    if isinstance(v, str):
        return v
    return format(float(v), fmt)  # type: ignore[arg-type]


def _hidden(v: object) -> bool:
    from esi.disclosure import is_hidden

    return is_hidden(v)


def _disclosed(table: pd.DataFrame, name: str, suppress_below: int | None) -> pd.DataFrame:
    if suppress_below is None:
        return table
    from esi.disclosure import disclose

    return disclose(table, name, threshold=suppress_below)


def setup_display() -> None:
    """Pandas and matplotlib settings shared by the notebooks (stable, rounded text output)."""
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    pd.set_option("display.precision", 3)
    pd.set_option("display.width", 120)
    pd.set_option("display.max_columns", 40)
    pd.set_option("display.max_colwidth", 80)
    # seaborn's "whitegrid" theme as matplotlib ships it: the look without importing seaborn
    # (and scipy.stats with it) in every kernel.
    plt.style.use("seaborn-v0_8-whitegrid")
    mpl.rcParams["figure.dpi"] = 90
    mpl.rcParams["savefig.dpi"] = 90
    # In a kernel: inline PNGs of the figures as they are. Every esi figure is laid out to fit
    # its canvas (esi.plots.laid_out), so the inline default bbox_inches="tight" would only
    # cost a second drawing of each figure.
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with the notebook stack
        return
    if get_ipython() is not None and "inline" in mpl.get_backend():
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png", bbox_inches=None)


def rounded(table: pd.DataFrame, decimals: int = 3) -> str:
    """A table as fixed text with floats rounded (what the nbval-checked cells print)."""
    return table.round(decimals).to_string()


def described(table: pd.DataFrame, decimals: int = 3, suppress_below: int | None = None
              ) -> str:
    """``table.describe()`` as fixed text; for real data (``suppress_below``) a ``count`` of
    1 .. suppress_below - 1 is shown as ``"<5"`` with the other rows hidden."""
    d = table.describe().round(decimals)
    if suppress_below is None:
        return d.to_string()
    from esi.disclosure import HIDDEN, shown_count

    d = d.astype(object)
    for c in d.columns:
        n = d.loc["count", c]
        d.loc["count", c] = shown_count(n, suppress_below)
        if 0 < float(n) < suppress_below:
            d.loc[d.index != "count", c] = HIDDEN
    return d.to_string()


def registry_summary(registry: pd.DataFrame) -> str:
    """One sentence on the registry: size, years, sites, source studies."""
    if "procedure_date" in registry.columns:
        years = pd.to_datetime(registry["procedure_date"]).dt.year
    else:  # real data: dates reduced to the year (esi.deid.reduce_dates)
        years = registry["procedure_year"]
    sources = registry["source_study"].value_counts()
    return (f"The registry holds {len(registry)} patients treated from {years.min()} to "
            f"{years.max()} at {registry['site'].nunique()} site(s), from "
            f"{len(sources)} source studies or pathways (largest: {sources.index[0]}, "
            f"{sources.iloc[0]} patients).")


def cohort_findings(cohort, suppress_below: int | None = None) -> str:
    """The closing sentences of notebook 01 (for real data, ``suppress_below``: every count as
    the disclosed flow and group tables show it, :mod:`esi.disclosure`)."""
    raw = cohort.flow
    flow = _disclosed(raw, "cohort_flow", suppress_below)
    groups = _disclosed(cohort.group_counts(), "group_counts",
                        suppress_below).set_index("imaging_group")
    biggest = int(raw["n_excluded"].idxmax())

    def n(x: object) -> str:
        from esi.disclosure import shown_count

        return shown_count(x, None)

    def group(name: str, column: str) -> str:
        return n(groups.loc[name, column]) if name in groups.index else "0"

    return (f"Of {n(flow['n_before'].iloc[0])} registry patients, "
            f"{n(flow['n_after'].iloc[-1])} are eligible: {group('near_normal', 'eligible')} with "
            f"near-normal imaging and {group('abnormal', 'eligible')} with concordant MRI "
            f"pathology, the pool from which the matched controls are drawn. "
            f"{group('near_normal', 'excluded')} further patient(s) "
            f"with near-normal imaging failed another criterion. The step that excluded most "
            f"patients was '{flow.loc[biggest, 'criterion']}' "
            f"({n(flow.loc[biggest, 'n_excluded'])}).")


def matching_findings(match, threshold: float = 0.1, suppress_below: int | None = None
                      ) -> str:
    """The closing sentences of notebook 02: matched sizes (as the disclosed sample-size table
    shows them for real data) and balance."""
    from esi.disclosure import shown_count

    sizes = _disclosed(match.sample_sizes(), "sample_sizes", suppress_below)
    bal = match.balance(include_distance=False)
    worst = bal["smd_after"].abs()
    before = bal["smd_before"].abs()
    n_t = shown_count(sizes.loc["Matched", "treated"], None)
    n_c = shown_count(sizes.loc["Matched", "control"], None)
    all_t = shown_count(sizes.loc["All", "treated"], None)
    unmatched = sizes.loc["Unmatched", "treated"]
    p = match.params
    if p["distance"] == "mahalanobis":
        on = "the Mahalanobis distance of the covariates"
    elif p.get("mahvars"):
        on = (f"the Mahalanobis distance of {', '.join(p['mahvars'])} within the caliper on "
              f"the {p['distance']} of the propensity score")
    else:
        on = f"the {p['distance']} of the propensity score"
    text = (f"{n_t} of {all_t} near-normal cases were matched to {n_c} controls with "
            f"concordant pathology ({p['method']} matching on {on}, ratio {p['ratio']}, "
            f"caliper {p['caliper']}). ")
    if isinstance(unmatched, str) or unmatched:
        text += f"{shown_count(unmatched, None)} case(s) found no control inside the caliper. "
    text += (f"The largest absolute standardised mean difference fell from "
             f"{before.max():.3f} ({before.idxmax()}) before matching to {worst.max():.3f} "
             f"({worst.idxmax()}) after; {int((worst > threshold).sum())} of {len(worst)} "
             f"covariate terms remain above {threshold}.")
    return text


def pairs_note(match, pairs: pd.DataFrame, suppress_below: int | None = None) -> str:
    """One sentence on the pairs of notebook 04's pair-based analyses
    (:meth:`esi.pipeline.Analysis.one_to_one_pairs`); counts of 1-4 shown as ``"<5"`` for real
    data (``suppress_below``)."""
    from esi.disclosure import shown_count

    def n(x: int) -> str:
        return shown_count(x, suppress_below)

    n_cases = match.pairs["treated"].nunique()
    n_controls = match.pairs["control"].nunique()
    if len(pairs) == len(match.pairs):
        return (f"{n(len(pairs))} matched pairs (one control per case; {n(n_controls)} distinct "
                f"controls) enter the pair-based analyses.")
    return (f"{n(n_cases)} cases were matched to {n(n_controls)} controls (up to "
            f"{match.params['ratio']} per case); the pair-based analyses (Rosenbaum bounds, "
            f"a paired equivalence test) use each case with its closest control: "
            f"{n(len(pairs))} pairs. Leave-one-pair-out and the multiverse use every control.")


def outcome_findings(outcomes: pd.DataFrame, larger: pd.DataFrame, historical: pd.DataFrame,
                     alpha: float = 0.05, suppress_below: int | None = None) -> str:
    """The closing sentences of notebook 03, built from the three comparison tables.

    Parameters
    ----------
    outcomes
        :func:`esi.compare.compare_matched` (cases versus matched controls).
    larger
        :func:`esi.compare.compare_larger_cohort` (cases versus every eligible control).
    historical
        :func:`esi.compare.compare_historical` (cases versus published cohorts).
    alpha
        Significance level the sentences use.
    suppress_below
        Real data: the tables as disclosed (:mod:`esi.disclosure`); a comparison whose counts
        are hidden is named without its figures.
    """
    outcomes = _disclosed(outcomes, "outcomes", suppress_below)
    larger = _disclosed(larger, "larger_cohort", suppress_below)
    historical = _disclosed(historical, "historical", suppress_below)

    def cont(r: pd.Series) -> str:
        return (f"{_num(r['mean_cases'])} (SD {_num(r['sd_cases'])}) vs. "
                f"{_num(r['mean_controls'])} (SD {_num(r['sd_controls'])}); {_p(r['p_value'])}")

    def rate(r: pd.Series) -> str:
        if _hidden(r["percent_cases"]) or _hidden(r["percent_controls"]):
            return f"not shown (counts below {suppress_below})"
        return (f"{_num(r['percent_cases'])}% vs. {_num(r['percent_controls'])}%; "
                f"{_p(r['p_value'])}")

    o = outcomes.set_index(["outcome", "timepoint_weeks"])
    out = [f"Missing follow-up: {outcomes['missing_rule'].iloc[0]}; tests: "
           f"{', '.join(sorted(outcomes['test'].unique()))}."]
    for t in (4, 12):
        r = o.loc[("leg_pain_reduction", t)]
        verdict = ("is not shown (counts below 5)" if _hidden(r["p_value"]) else
                   "differed" if r["p_value"] < alpha else "did not differ significantly")
        out.append(f"At {t} weeks the leg-pain reduction {verdict} between near-normal cases "
                   f"(n = {_count(r['n_cases'])}) and matched controls (n = "
                   f"{_count(r['n_controls'])}): {cont(r)}.")
    for t in (4, 12):
        r = o.loc[("back_pain_reduction", t)]
        out.append(f"Back-pain reduction at {t} weeks: {cont(r)}.")
    r = o.loc[("odi_reduction", 12)]
    if _hidden(r["mean_cases"]) or _hidden(r["mean_controls"]):
        out.append(f"The ODI reduction at 12 weeks: {cont(r)}.")
    else:
        fav = "near-normal cases" if r["mean_cases"] > r["mean_controls"] else "matched controls"
        out.append(f"The ODI reduction at 12 weeks favoured {fav}: {cont(r)}.")
    for t in (4, 12):
        r = o.loc[("positive_outcome", t)]
        out.append(f"Positive outcome at {t} weeks: {rate(r)}.")
    lc = larger.set_index(["outcome", "timepoint_weeks"])
    pool = [v for v in lc["n_controls"] if not _hidden(v)]
    n_pool = _count(max(pool)) if pool else lc["n_controls"].iloc[0]
    worse, better, hidden = [], [], []
    for (name, t), r in lc.iterrows():
        a, b = ((r["mean_cases"], r["mean_controls"]) if r["kind"] == "continuous"
                else (r["percent_cases"], r["percent_controls"]))
        if _hidden(a) or _hidden(b):
            hidden.append(f"{name} at {t} weeks")
            continue
        figs = cont(r) if r["kind"] == "continuous" else rate(r)
        (worse if (a < b) == _higher_is_better(name) else better).append(
            (f"{name} at {t} weeks ({figs})", r["p_value"]))
    out.append(f"Against the larger cohort (all {n_pool} eligible patients with concordant "
               f"pathology), the near-normal cases fared worse on {len(worse)} of "
               f"{len(worse) + len(better)} measures: " + "; ".join(w for w, _ in worse) + ".")
    out.append(f"{sum(not _hidden(p) and p < alpha for _, p in worse)} of these differences "
               f"reach P < {alpha}.")
    if hidden:
        out.append("Not shown (counts below 5): " + "; ".join(hidden) + ".")
    for _, r in historical.iterrows():
        if r["timepoint_weeks"] == 0 or (not _hidden(r["p_value"]) and pd.isna(r["p_value"])):
            continue
        if r["kind"] == "continuous":
            ours, theirs = r["mean_cases"], r["mean_reference"]
            figs = f"{_num(ours)} vs. {_num(theirs)}"
        else:
            ours, theirs = r["percent_cases"], r["percent_reference"]
            figs = f"{_num(ours)}% vs. {_num(theirs)}%"
        arm = f" {r['arm']}" if isinstance(r["arm"], str) and r["arm"] else ""
        if _hidden(ours):
            out.append(f"{r['outcome']} ({r['timepoint_weeks']} weeks) of the cases against "
                       f"{r['cohort']}{arm}: not shown (counts below 5).")
            continue
        side = "above" if ours > theirs else "below"
        side += " (better)" if (ours > theirs) == _higher_is_better(r["outcome"]) else " (worse)"
        out.append(f"{r['outcome']} ({r['timepoint_weeks']} weeks) of the cases was {side} "
                   f"{r['cohort']}{arm}: {figs}; {_p(r['p_value'])}.")
    return "\n".join(out)


def _p(p: object) -> str:
    return f"P = {p}" if isinstance(p, str) else format_p(p)  # type: ignore[arg-type]


def _count(n: object) -> str:
    from esi.disclosure import shown_count

    return shown_count(n, None)


def _higher_is_better(outcome: str) -> bool:
    """True for reductions, positive outcomes and satisfaction; False for pain/ODI levels."""
    name = outcome.rsplit("_", 1)[0] if outcome[-1] == "w" else outcome
    return name not in ("leg_pain", "back_pain", "odi")


def multiverse_summary(multiverse: pd.DataFrame, alpha: float = 0.05) -> str:
    """How the primary and positive-outcome conclusions move across the multiverse."""
    ok = multiverse[multiverse["status"] == "ok"]
    lines = [f"{len(ok)} of {len(multiverse)} specifications ran "
             f"({len(multiverse) - len(ok)} could not be matched or tested)."]
    for prefix, name in (("primary", "leg-pain reduction"), ("positive", "positive outcome")):
        est = ok[f"{prefix}_estimate"].dropna()
        p = ok[f"{prefix}_p_value"].dropna()
        if est.empty:
            continue
        lines.append(
            f"{name.capitalize()} (cases - controls): median {est.median():.2f}, range "
            f"{est.min():.2f} to {est.max():.2f}; {int((est < 0).sum())} of {len(est)} "
            f"estimates below 0; P < {alpha} in {int((p < alpha).sum())} of {len(p)}.")
    return "\n".join(lines)


def sensitivity_findings(change: pd.DataFrame, power: pd.DataFrame,
                         equivalence: pd.DataFrame, influence: pd.DataFrame,
                         multiverse: pd.DataFrame, alpha: float = 0.05,
                         suppress_below: int | None = None) -> str:
    """The closing sentences of notebook 04 (real data, ``suppress_below``: the tables as
    disclosed, :mod:`esi.disclosure`, and the number of influential pairs by its rule)."""
    from esi.disclosure import shown_count

    power = _disclosed(power, "power", suppress_below)
    equivalence = _disclosed(equivalence, "equivalence", suppress_below)
    influence = _disclosed(influence, "influence", suppress_below)
    out = []
    for _, r in change.iterrows():
        g = r["gamma_at_change"]
        verdict = ("significant" if r["significant"] else "not significant")
        out.append(f"{r['outcome']} ({r['test']}): one-sided {format_p(r['p_value'])}, "
                   f"{verdict} at alpha = {alpha}; the conclusion changes at Gamma = "
                   f"{g:.2f}." if g == g and g != float("inf") else
                   f"{r['outcome']} ({r['test']}): one-sided {format_p(r['p_value'])}, "
                   f"{verdict}; no Gamma up to 1000 changes it.")
    pw = power.set_index("quantity")
    powers = power[power["quantity"] == "power"]
    mdd = pw.loc["minimum_detectable_difference", "value"]
    out.append("Power of this design: " + ", ".join(
        f"{_num(r['value'])} for a {r['difference']:g}-point difference"
        for _, r in powers.iterrows())
        + f"; the minimum detectable difference at 80% power is {_num(mdd)} points.")
    e = equivalence.iloc[0]
    if _hidden(e["p_value"]):
        out.append(f"Equivalence within +/-{e['margin']:g} points: not shown (counts below "
                   f"{suppress_below}).")
    else:
        out.append(f"Equivalence within +/-{e['margin']:g} points "
                   f"{'is' if e['equivalent'] else 'is not'} shown (TOST "
                   f"{format_p(e['p_value'])}; {100 - 200 * alpha:.0f}% CI {e['ci_low']:.2f} "
                   f"to {e['ci_high']:.2f}).")
    flips = shown_count(int(influence["changes_conclusion"].fillna(False).astype(bool).sum()),
                        suppress_below)
    est = pd.to_numeric(influence["estimate"], errors="coerce").dropna()
    if est.empty:
        out.append(f"Leaving out one matched pair at a time: not shown (counts below "
                   f"{suppress_below}).")
    else:
        out.append(f"Leaving out one matched pair at a time, the estimate ranges from "
                   f"{est.min():.2f} to {est.max():.2f}; {flips} pair(s) change the "
                   f"conclusion.")
    out.append(multiverse_summary(multiverse, alpha))
    return "\n".join(out)


def audit_findings(audit: dict[str, pd.DataFrame], suppress_below: int | None = None) -> str:
    """The closing sentences of notebook 05, from :func:`esi.audit.run_audit`'s tables (real
    data, ``suppress_below``: as disclosed, :mod:`esi.disclosure`)."""
    audit = {**audit, **{k: _disclosed(audit[k], k, suppress_below)
                         for k in ("reproduction", "p_value_summary")}}
    rep = audit["reproduction"]
    p_ids = set(audit["p_value_summary"]["id"])
    figures = rep[~rep["id"].isin(p_ids)]
    ok = figures[figures["match"].astype(bool)]
    out = [f"{len(ok)} of {len(figures)} published counts, means, SDs and percentages are "
           f"reproduced to the published decimals"
           + ("." if len(ok) == len(figures) else
              f"; not reproduced: {', '.join(figures.loc[~figures['match'].astype(bool), 'id'])}.")]
    pv = rep[rep["id"].isin(p_ids)]
    out.append(f"{int(pv['match'].astype(bool).sum())} of {len(pv)} published P values (or "
               "bounds) are reproduced by the run's tests.")
    for _, r in audit["p_value_summary"].iterrows():
        out.append(f"{r['id']} (published {r['published']:g}): from the data "
                   f"{r['from_data']}; from the published summaries {r['from_summary']}.")
    grim = audit["grim_audit"]
    bad = grim[grim["own_scale"].astype(bool) & ~grim["consistent"].astype(bool)]
    if bad.empty:
        out.append("Every published mean and SD is consistent (GRIM/GRIMMER) with complete data "
                   "on its own scale.")
    else:
        out.append("Inconsistent with complete data on their own scale: " + "; ".join(
            f"{r['id']} ({r['check']}, {r['scale']}): {r['remedy']}"
            for _, r in bad.iterrows()) + ".")
    return "\n".join(out)
