"""Statistics for the outcome comparisons: one module per family of tests, as pingouin.

* :mod:`esi.stats.parametric`: Welch, Student and paired t tests.
* :mod:`esi.stats.nonparametric`: Mann-Whitney U and Wilcoxon signed-rank.
* :mod:`esi.stats.contingency`: Fisher, chi-square, McNemar, exact binomial.
* :mod:`esi.stats.effsize`: mean difference, Hedges' g, rank-biserial r, risk difference,
  odds ratio, each with a confidence interval.
* :mod:`esi.stats.summary`: tests from published summary statistics.
* :mod:`esi.stats.pooling`: Rubin's rules for multiply imputed estimates.

Every test returns a frozen :class:`TestResult` (the fields of an R ``htest``) and every effect
size an :class:`EffectSize`. All numbers are checked against R (see
``tests/reference/stats/make_reference.R``).
"""

from esi.stats._result import ALTERNATIVES, EffectSize, TestResult
from esi.stats.contingency import (
    binomial_test,
    chi2_test,
    conditional_odds_ratio,
    fisher_exact,
    mcnemar_chi2,
    mcnemar_exact,
)
from esi.stats.effsize import (
    hedges_g,
    mean_difference,
    odds_ratio,
    paired_odds_ratio,
    paired_risk_difference,
    rank_biserial,
    risk_difference,
    wilson_interval,
)
from esi.stats.nonparametric import mann_whitney, wilcoxon_signed_rank
from esi.stats.parametric import paired_t, student_t, welch_t
from esi.stats.pooling import RubinPooled, rubin_pool
from esi.stats.summary import (
    binomial_test_rate,
    chi2_from_percent,
    counts_from_percent,
    fisher_from_percent,
    ttest_from_summary,
)

__all__ = [
    "ALTERNATIVES",
    "EffectSize",
    "RubinPooled",
    "TestResult",
    "binomial_test",
    "binomial_test_rate",
    "chi2_from_percent",
    "chi2_test",
    "conditional_odds_ratio",
    "counts_from_percent",
    "fisher_exact",
    "fisher_from_percent",
    "hedges_g",
    "mann_whitney",
    "mcnemar_chi2",
    "mcnemar_exact",
    "mean_difference",
    "odds_ratio",
    "paired_odds_ratio",
    "paired_risk_difference",
    "paired_t",
    "rank_biserial",
    "risk_difference",
    "rubin_pool",
    "student_t",
    "ttest_from_summary",
    "welch_t",
    "wilcoxon_signed_rank",
    "wilson_interval",
]
