"""What the notebooks say: display settings, and the sentences that close each notebook.

Every sentence is built from computed results (no number is typed into prose by hand), so a
parameter change or another registry changes the text with the numbers.
"""

from __future__ import annotations

import pandas as pd

__all__ = [
    "setup_display",
    "registry_summary",
    "cohort_findings",
    "matching_findings",
    "fmt_p",
    "rounded",
]


def setup_display() -> None:
    """Pandas and matplotlib settings shared by the notebooks (stable, rounded text output)."""
    import matplotlib as mpl
    import seaborn as sns

    pd.set_option("display.precision", 3)
    pd.set_option("display.width", 120)
    pd.set_option("display.max_columns", 40)
    pd.set_option("display.max_colwidth", 80)
    sns.set_theme(style="whitegrid", context="notebook")
    mpl.rcParams["figure.dpi"] = 90
    mpl.rcParams["savefig.dpi"] = 90


def fmt_p(p: float) -> str:
    """A P value as the paper writes it: ``P < 0.001``, else 3 decimals below 0.1, 2 above."""
    if p != p:
        return "P not computed"
    if p < 0.001:
        return "P < 0.001"
    return f"P = {p:.3f}" if p < 0.1 else f"P = {p:.2f}"


def rounded(table: pd.DataFrame, decimals: int = 3) -> str:
    """A table as fixed text with floats rounded (what the nbval-checked cells print)."""
    return table.round(decimals).to_string()


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
    """The closing sentences of notebook 01."""
    flow = cohort.flow

    def n(x: int) -> str:
        return f"<{suppress_below}" if suppress_below and 0 < x < suppress_below else str(x)

    biggest = flow.loc[flow["n_excluded"].idxmax()]
    groups = cohort.group_counts().set_index("imaging_group")
    excl_near = int(groups.loc["near_normal", "excluded"])
    return (f"Of {n(int(flow['n_before'].iloc[0]))} registry patients, "
            f"{n(int(flow['n_after'].iloc[-1]))} are eligible: {n(cohort.n_near_normal)} with "
            f"near-normal imaging and {n(cohort.n_abnormal)} with concordant MRI pathology, the "
            f"pool from which the matched controls are drawn. {n(excl_near)} further patient(s) "
            f"with near-normal imaging failed another criterion. The step that excluded most "
            f"patients was '{biggest['criterion']}' ({n(int(biggest['n_excluded']))}).")


def matching_findings(match, threshold: float = 0.1) -> str:
    """The closing sentences of notebook 02: matched sizes and balance."""
    sizes = match.sample_sizes()
    bal = match.balance(include_distance=False)
    worst = bal["smd_after"].abs()
    before = bal["smd_before"].abs()
    n_t = int(sizes.loc["Matched", "treated"])
    n_c = int(sizes.loc["Matched", "control"])
    all_t = int(sizes.loc["All", "treated"])
    unmatched = all_t - n_t - int(sizes.loc["Discarded", "treated"])
    text = (f"{n_t} of {all_t} near-normal cases were matched to {n_c} controls with "
            f"concordant pathology ({match.params['method']} matching on the "
            f"{match.params['distance']} of the propensity score, ratio {match.params['ratio']}, "
            f"caliper {match.params['caliper']}). ")
    if unmatched:
        text += f"{unmatched} case(s) found no control inside the caliper. "
    text += (f"The largest absolute standardised mean difference fell from "
             f"{before.max():.3f} ({before.idxmax()}) before matching to {worst.max():.3f} "
             f"({worst.idxmax()}) after; {int((worst > threshold).sum())} of {len(worst)} "
             f"covariate terms remain above {threshold}.")
    return text
