"""The synthetic registry: a stand-in for the unpublished per-patient data of the paper.

:func:`generate_registry` builds a registry of :data:`N_PATIENTS` (slightly under 500) ESI
patients treated 2009-2024 at two sites, from the source studies of the paper
(``../shared/paper/README.md``), in the schema of :mod:`esi.schema`. It is **synthetic**: no
row describes a real patient. ``esi synth`` writes it to ``data/synthetic/`` with
:func:`write_synthetic_registry`; the default seed regenerates the committed file byte for byte.

How it is built (matching never looks at outcomes, so nothing is circular)
--------------------------------------------------------------------------
1. **Baseline, MRI, eligibility** for every patient from a seeded ``numpy`` Generator:
   19 near-normal-imaging patients (14 eligible: 7 from the MRI-blinded arm of the 2012 MRI
   trial, 7 referrals; 5 who fail one eligibility step), and patients with concordant pathology,
   discordant pathology, degeneration without concordant pathology or no MRI, some with prior
   surgery, treated outside the study window, under 18 or never followed up. Covariates come from
   a Gaussian copula (correlations in :data:`CALIBRATION`), with mild shifts for the
   near-normal patients; which visits a patient attends is drawn here too because the cohort
   step needs it. For each eligible near-normal case, :data:`_N_TWINS` eligible patients with
   concordant pathology are drawn as its *near twins* (:func:`_twin`: the same sex,
   depression/anxiety and opioid use, age within 3 years, similar BMI, pain duration, pain
   and ODI): the registry pools studies with similar eligibility, and a propensity-matched
   14 + 14 cohort, as the paper reports, needs such controls.
2. **The default analysis up to matching**: :func:`esi.cohort.define_cohort` and
   :func:`esi.matching.match` with :data:`esi.params.DEFAULTS` tell which 14 controls are matched
   to the 14 cases. Nearest-neighbour matching on the propensity picks the control closest in
   propensity, not in covariates: with 14 cases and about 320 controls an unrelated control
   is nearly always closer than a twin, and balance fails. So one twin per case is moved a
   little (age, BMI, pain duration; leg or back pain by half a point or ODI by 2 if that
   costs less) until its fitted propensity equals its case's (:func:`_tune_twins`), choosing
   the twins so that every continuous covariate's |SMD| after matching is at most 0.8 times
   its |SMD| before and at most 0.05 (binary covariates agree within a case's twins); the
   model is refitted and the step repeated until the match pairs every case with its chosen
   twin (usually three or four fits, at most :data:`_TWIN_ROUNDS`). No outcome is involved. The 28 matched patients attend both
   visits (a missed visit of one of them is turned into an attended one; eligibility needs
   one visit, so the cohort and the match do not change).
3. **Outcomes of the 28 matched patients** by a seeded SPRITE search (:func:`esi.sprite.sprite`)
   over each patient's allowed values (a pain reduction in half points within
   ``[max(baseline - 10, -3), baseline]``; an ODI reduction on the complete-form grid of 2
   points, except two cases whose 12-week forms had two sections skipped, scored
   ``total / 40 x 100`` in steps of 2.5) so that the analysis gives the published n, means and
   SDs to the published decimals. The targets are read from the published-results table
   (:data:`esi.paths.PUBLISHED_RESULTS`) and only steer the search: every number the analysis
   reports is computed from the patient values. Positive outcomes (4/14 vs 7/14 at 4 weeks,
   4/14 vs 4/14 at 12 weeks) are produced by assigning the global perceived effect and the
   additional interventions consistently with each patient's leg-pain decrease. The paper does
   not name its tests; t tests from its means and SDs cannot give its P values, the
   Mann-Whitney test can: among the SPRITE candidates, the pair of samples whose Mann-Whitney
   P (R ``wilcox.test``) rounds to the published P is kept. Swapping values between patients
   (within their bounds) then gives a plausible correlation with baseline without changing
   any of these statistics. 12-week pain and 4-week ODI are drawn until neither Welch's nor
   the Mann-Whitney test finds a significant difference, as the paper reports.
4. **Everyone else** gets trajectories calibrated on ``reference_cohorts.csv`` (1-month leg
   pain reduction about 2.2, SD 2.4, in ESI cohorts; 35-41 % positive outcomes at 3 months),
   with missed visits and additional interventions.

Every assumption without a published source is a row of :data:`CALIBRATION` (quantity, value,
source or "assumption", reason), rendered into ``data/README.md`` by
:func:`calibration_markdown`.

The same bytes on every machine
-------------------------------
Every decision of the generator is taken on numbers that have the same bits on any CPU: no
BLAS or LAPACK call (OpenBLAS picks a kernel per CPU - SkylakeX on AVX-512, Haswell, a generic
one - and their sums differ in the last bits), no numpy ``exp``/``log`` (AVX-512 builds use
their own approximations): sums of products are added left to right (:func:`_dot`), the
copula's Cholesky factor is written out (:func:`_cholesky`), scalars use :mod:`math`, and the
propensity model is fitted in a fixed order (:mod:`esi.propensity`). A swap kept because a
correlation "does not get worse" compares numbers that are often equal in exact arithmetic, so
this matters: with BLAS's ``@`` the SkylakeX kernel wrote other follow-up values.
``tests/test_synthetic.py`` regenerates the registry under every OpenBLAS core type the CPU can
run and with numpy's SIMD dispatch off, and moves the fitted model by a relative 1e-9 without
changing a byte.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from esi.paths import PUBLISHED_RESULTS, SYNTHETIC_REGISTRY
from esi.schema import SCHEMA

__all__ = [
    "DEFAULT_SEED",
    "N_PATIENTS",
    "CalibrationItem",
    "CALIBRATION",
    "calibration_table",
    "calibration_markdown",
    "generate_registry",
    "write_synthetic_registry",
    "published_targets",
    "SyntheticError",
    "header_seed",
    "is_generated",
]

#: Seed of the committed registry (the paper's article number, 100574).
DEFAULT_SEED = 100574
#: Patients in the registry ("a database of slightly under 500 patients").
N_PATIENTS = 487
#: Near twins per eligible near-normal case in the concordant-pathology pool.
_N_TWINS = 3


class SyntheticError(RuntimeError):
    """The generator could not build a registry that reproduces the published figures."""


@dataclass(frozen=True)
class CalibrationItem:
    """One calibrated quantity of the synthetic registry.

    Attributes
    ----------
    quantity : str
        What is set (e.g. ``"percent female, MRI trial"``).
    value : str
        The value used, as text.
    source : str
        Citation of the published figure, or ``"assumption"``.
    reason : str
        Why this value.
    """

    quantity: str
    value: str
    source: str
    reason: str


_A = "assumption"
_MRI_RCT = "Cohen 2012 Arch Intern Med 172:134 (PMID 22157067)"
_GABA = "Cohen 2015 BMJ 350:h1748 (NCT01495923)"
_HYPER = "Cohen 2019 Reg Anesth Pain Med 44:586"
_PRED = "Cohen 2022 Reg Anesth Pain Med (PMC10327328)"
_PAPER = "Cohen 2025 Interv Pain Med 4:100574 (published_results.csv)"

#: The calibration table: every distribution and rate of the generator, with its source.
CALIBRATION: tuple[CalibrationItem, ...] = (
    CalibrationItem("patients in the registry", str(N_PATIENTS), _PAPER,
                    "'a database of slightly under 500 patients'"),
    CalibrationItem("treatment dates", "5 Jan 2009 - 1 Nov 2024 (a few outside, excluded)",
                    _PAPER, "study period; some MRI-trial patients were treated in late 2008 "
                    "and some prospective patients after the window, so the window step "
                    "excludes someone"),
    CalibrationItem("near-normal imaging cases eligible", "14 (7 MRI trial blinded arm, 7 "
                    "referrals)", _PAPER, "7 of the 14 came from the MRI trial's arm whose "
                    "physician did not see the MRI; 7 were referred"),
    CalibrationItem("near-normal imaging patients failing eligibility", "5 (window, age, 2 "
                    "prior surgery, no follow-up)", _A,
                    "so that the cohort flow excludes near-normal patients too"),
    CalibrationItem("source studies (other patients)", "MRI trial 118, gabapentin trial 62, "
                    "hypersensitivity 96, predictors 88, other prospective 79, referral 25",
                    _A, "the trial sizes (132, 145 over 8 sites, 137, 346 pooled) bound what "
                    "two institutions could contribute"),
    CalibrationItem("site A share", "0.6", _A, "two institutions, one larger"),
    CalibrationItem("imaging groups among the others", "concordant pathology 0.79, "
                    "discordant 0.08, degeneration only 0.06, no MRI on file 0.07", _A,
                    "most ESI candidates with radicular pain have a concordant lesion"),
    CalibrationItem("prior lumbar surgery", "0.06 (none in the MRI trial)", _MRI_RCT,
                    "the MRI trial excluded prior surgery; rate elsewhere assumed"),
    CalibrationItem("no follow-up visit at all", "0.03", _A, "loss to follow-up in "
                    "prospective ESI studies"),
    CalibrationItem("missed 4-week visit / 12-week visit", "0.07 / 0.12", _A,
                    "loss to follow-up grows with time"),
    CalibrationItem("percent female", "MRI trial 57; gabapentin trial 26; others 50; "
                    "near-normal +12 points", f"{_MRI_RCT}; {_GABA}",
                    "published percentages (the gabapentin trial: 74 % male); the near-normal "
                    "shift is an assumption"),
    CalibrationItem("age (years)", "mean 52 (MRI trial), 42 (gabapentin trial, military), 53 "
                    "others; SD 13; near-normal -4", _MRI_RCT,
                    "published mean 52; SD and the other means assumed; the gabapentin "
                    "trial's military population is younger"),
    CalibrationItem("opioid use at baseline", "0.34", _MRI_RCT, "published 34 %"),
    CalibrationItem("daily MME among opioid users", "log-normal, median 30, sdlog 0.6", _A,
                    "typical chronic low-dose opioid therapy"),
    CalibrationItem("baseline leg pain (NRS)", "normal mean 6.3 SD 1.6, half points, 2-10; "
                    "MRI trial > 4 and above back pain", f"{_GABA}; {_MRI_RCT}",
                    "the 2015 trial's ESI arm started at about 5.5 with mean reduction 2.2 "
                    "to 3.3; MRI trial eligibility"),
    CalibrationItem("baseline back pain (NRS)", "normal mean 4.8 SD 2.0", _A,
                    "radicular pain cohorts have leg pain above back pain"),
    CalibrationItem("baseline ODI", "normal mean 40 SD 14, complete forms (even scores)", _A,
                    "moderate-severe disability typical of ESI trials; baseline forms filled "
                    "with a coordinator, so no section is skipped"),
    CalibrationItem("BMI", "normal mean 29 SD 5", _A, "US adults with back pain"),
    CalibrationItem("pain duration (months)", "log-normal median 9, sdlog 0.9 (MRI trial at "
                    "most 48); near-normal x1.4", _MRI_RCT,
                    "MRI trial eligibility pain <= 4 years; the rest assumed"),
    CalibrationItem("depression or anxiety", "0.25; near-normal 0.38", _PRED,
                    "depression predicts poorer ESI outcome; prevalences assumed"),
    CalibrationItem("copula correlations", "leg-back 0.35, leg-ODI 0.45, back-ODI 0.35, "
                    "depression-ODI 0.25, opioid-ODI 0.25, depression-opioid 0.2, age-BMI 0.1, "
                    "age-duration 0.15, duration-opioid 0.15, BMI-ODI 0.15, depression-leg 0.1",
                    _A, "plausible signs and sizes; none is published for these cohorts"),
    CalibrationItem("smoking never / former / current", "0.50 / 0.25 / 0.25 (current +0.1 "
                    "with depression)", _A, "US adults with chronic pain"),
    CalibrationItem("transforaminal approach", "0.75", _A, "the group's usual approach"),
    CalibrationItem("near twins of the near-normal cases", f"{_N_TWINS} per eligible case "
                    "among eligible patients with concordant pathology (MRI trial for its "
                    "cases; hypersensitivity, predictors, other prospective or referral for "
                    "referred cases): same sex, depression/anxiety and opioid use; age within "
                    "3 years, BMI +- 1 (SD), pain duration x exp(+-0.2), leg and back pain "
                    "+- 0.5 and ODI +- 2 each with probability 1/2", _A,
                    "the registry pools studies with similar eligibility, so patients "
                    "resembling each case exist; the paper reports a propensity-matched "
                    "14 + 14 cohort, which needs close controls (matching 14 cases on the "
                    "propensity alone left |SMD| up to 0.63)"),
    CalibrationItem("propensity of one twin per case", "equal to its case's under the "
                    "default model (age, BMI, pain duration moved by the least amount, leg or "
                    "back pain by 0.5 or ODI by 2 if cheaper); twins chosen so that each "
                    "continuous covariate's |SMD| after matching is <= 0.8 x before and <= "
                    "0.05", _A, "nearest-neighbour matching picks the control closest in "
                    "propensity, which among ~320 controls is rarely a twin unless its "
                    "propensity is the case's; the default match then balances the groups as "
                    "a published propensity match would (max |SMD| about 0.05)"),
    CalibrationItem("1-month leg pain reduction, concordant pathology", "normal mean 2.4, SD "
                    "2.4 before the predictors below and the scale bounds (about 2.1 after)",
                    f"{_GABA}; {_HYPER}",
                    "ESI cohorts: 2.2 (2.4) in the 2015 trial, 1.8 (2.1) in the 2019 cohort"),
    CalibrationItem("predictors of the reduction", "+0.35 per baseline point above 6.3, "
                    "-0.5 depression, -0.4 BMI > 30", _PRED,
                    "depression, obesity and lower baseline pain predict smaller reductions"),
    CalibrationItem("near-normal imaging patients outside the match", "mean reduction 1.0 "
                    "point lower", _PAPER, "near-normal cases fared worse than the larger "
                    "cohort"),
    CalibrationItem("12-week leg pain reduction", "0.65 x 4-week + normal(0.9, 1.7); matched "
                    "cases normal(0.35, 1.7); redrawn until Welch and Mann-Whitney P >= 0.05 vs controls and the cases' mean is at "
                    "least 0.25 below the controls' and at most 1.8 (the larger cohort's is "
                    "about 2.1)",
                    _PAPER, "no difference in pain at 12 weeks; near-normal cases fade"),
    CalibrationItem("back pain reduction", "0.5 x leg reduction + normal(0.2, 1.6)", _A,
                    "back pain responds less than leg pain to ESI"),
    CalibrationItem("ODI reduction", "2.5 x leg reduction + normal(1, 8), even scores", _A,
                    "function follows leg pain"),
    CalibrationItem("ODI forms with skipped sections", "4 % of follow-up forms with one "
                    "section skipped (total/45 x 100); two 12-week forms of matched cases with "
                    "two sections skipped (total/40 x 100)", _PAPER,
                    "the published 12-week ODI reduction of the cases, 8.64 with n = 14, is "
                    "impossible with complete forms only (GRIM: 120.96 is not an even sum); "
                    "one skipped section (steps of 20/9) cannot give it either, two skipped "
                    "sections (steps of 2.5) can, and two such forms are needed for SD 11.36 "
                    "(GRIMMER parity)"),
    CalibrationItem("global perceived effect", "latent = leg reduction + normal(0, 1.2); cut "
                    "at 4.5, 2.2, 0.8, -0.8, -2, -3.5 for 1-7", _A,
                    "GPE follows the pain change; about 80 % of 2-point responders report "
                    "much improvement"),
    CalibrationItem("satisfaction", "GPE 1 -> 5/4, 2 -> 4/5, 3 -> 3/4, 4 -> 3/2, 5-7 -> 2/1", _A,
                    "satisfaction follows the global effect"),
    CalibrationItem("additional intervention", "by 4 weeks 0.06 (+0.06 if reduction < 1); "
                    "by 12 weeks +0.08 (+0.10 if reduction < 1)", _A,
                    "poor responders get repeat injections or other procedures"),
    CalibrationItem("positive outcome at 3 months, other patients", "about 40 %", _MRI_RCT,
                    "35.4 % / 40.7 % in the MRI trial's arms"),
    CalibrationItem("matched cases and controls", "n, means, SDs, percentages as published",
                    _PAPER, "constructed by SPRITE over each patient's allowed values "
                    "(esi.sprite); never copied into an output"),
    CalibrationItem("test behind the published P values", "Mann-Whitney (R wilcox.test) for "
                    "the continuous outcomes", _A, "the paper does not name its tests; Welch or "
                    "Student t tests from the published means and SDs give 0.78, 0.65 and 0.027 "
                    "instead of 0.72, 0.57 and 0.047, whereas some SPRITE samples give the "
                    "published P with the Mann-Whitney test; the matched samples are chosen "
                    "among SPRITE candidates so that it does (Fisher's one-sided test gives the "
                    "published 0.22 for the positive outcome from the counts alone)"),
    CalibrationItem("correlations of the matched patients' constructed outcomes", "about 0.3 "
                    "with baseline; about 0.2 between a case and its matched control (by "
                    "swapping values within their bounds)", _A,
                    "higher baseline pain leaves more room to improve; matched pairs share "
                    "baseline characteristics, so their outcomes correlate weakly"),
)


def calibration_table() -> pd.DataFrame:
    """The calibration table as a DataFrame (columns quantity, value, source, reason)."""
    return pd.DataFrame([asdict(c) for c in CALIBRATION],
                        columns=["quantity", "value", "source", "reason"])


def calibration_markdown() -> str:
    """The calibration table as a markdown section (appended to ``data/README.md``)."""
    lines = [
        "## Synthetic registry: calibration",
        "",
        f"`data/synthetic/esi_registry_synthetic.csv` is **synthetic** (generated by `esi synth`, "
        f"seed {DEFAULT_SEED}; no row is a real patient). Its {N_PATIENTS} patients are drawn "
        "from the distributions below; the 28 matched patients' outcomes are constructed by a "
        "SPRITE search so that the default analysis reproduces every published count, mean, "
        "SD and percentage. Rows whose source is `assumption` have no published figure.",
        "",
        "| quantity | value | source | reason |",
        "| --- | --- | --- | --- |",
    ]
    for c in CALIBRATION:
        cells = [c.quantity, c.value, c.source, c.reason]
        lines.append("| " + " | ".join(x.replace("|", "/") for x in cells) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ targets
def published_targets(path: str | Path = PUBLISHED_RESULTS) -> dict[tuple[str, int, str, str],
                                                                   tuple[float, int]]:
    """Published figures keyed by (outcome, timepoint_weeks, group, statistic).

    Returns
    -------
    dict
        ``(outcome, timepoint_weeks, group, statistic) -> (value, decimals)``, read from a
        table in the format of ``published_results.csv``.
    """
    tab = pd.read_csv(path)
    need = {"outcome", "timepoint_weeks", "group", "statistic", "value", "decimals"}
    if not need.issubset(tab.columns):
        raise ValueError(f"{path}: needs columns {sorted(need)}")
    return {(r.outcome, int(r.timepoint_weeks), r.group, r.statistic):
            (float(r.value), int(r.decimals)) for r in tab.itertuples()}


# ------------------------------------------------------------------------------ helpers
_STUDIES = ("mri_rct", "gabapentin_rct", "hypersensitivity", "predictors",
            "other_prospective", "referral")
_STUDY_N = {"mri_rct": 118, "gabapentin_rct": 62, "hypersensitivity": 96, "predictors": 88,
            "other_prospective": 79, "referral": 25}
_STUDY_DATES = {
    "mri_rct": ("2009-01-05", "2011-06-30"),
    "gabapentin_rct": ("2012-01-15", "2014-09-30"),
    "hypersensitivity": ("2015-03-01", "2018-06-30"),
    "predictors": ("2018-07-01", "2021-12-31"),
    "other_prospective": ("2009-02-01", "2024-10-15"),
    "referral": ("2010-01-01", "2024-10-15"),
}
_FEMALE = {"mri_rct": 0.57, "gabapentin_rct": 0.26}
_AGE_MEAN = {"mri_rct": 52.0, "gabapentin_rct": 42.0}
_LEVELS = ("L3-L4", "L4-L5", "L5-S1")
#: Rounds of fitting the propensity model and tuning the near twins' covariates.
_TWIN_ROUNDS = 8


def _half(x):
    return np.round(np.asarray(x, dtype=float) * 2) / 2


def _even(x):
    return np.round(np.asarray(x, dtype=float) / 2) * 2


def _date(rng, lo: str, hi: str) -> _dt.date:
    a, b = _dt.date.fromisoformat(lo), _dt.date.fromisoformat(hi)
    return a + _dt.timedelta(days=int(rng.integers(0, (b - a).days + 1)))


def _dot(a, b) -> float:
    """Sum of ``a[i] * b[i]`` added left to right in Python floats.

    The generator takes decisions on such sums (a swap kept when a correlation does not get
    worse, a covariate change that closes a gap), so they must have the same bits on every
    machine. ``a @ b`` calls the BLAS kernel that OpenBLAS picks for the CPU, whose summation
    order (and so the last bits) differs between kernels (SkylakeX, Haswell, the generic one):
    that alone made ``esi synth`` write other follow-up values on AVX-512 CPUs. Below 16
    values, the Haswell kernel the committed registry was made with adds left to right
    without fused multiply-adds, as this does, so the results are those bits.
    """
    total = 0.0
    for x, y in zip(np.asarray(a, dtype=float).tolist(), np.asarray(b, dtype=float).tolist(),
                    strict=True):
        total += x * y
    return total


def _cholesky(a: np.ndarray) -> list[list[float]]:
    """Lower Cholesky factor of the small matrix ``a`` in a fixed order of Python float
    operations (LAPACK's routine calls CPU-specific BLAS kernels; see :func:`_dot`)."""
    n = len(a)
    rows = np.asarray(a, dtype=float).tolist()
    low = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            s = rows[i][j]
            for k in range(j):
                s -= low[i][k] * low[j][k]
            low[i][j] = math.sqrt(s) if i == j else s / low[j][j]
    return low


def _copula(rng, n: int) -> np.ndarray:
    names = ["age", "bmi", "dur", "dep", "leg", "back", "odi", "opioid"]
    r = np.eye(len(names))
    pairs = {("leg", "back"): 0.35, ("leg", "odi"): 0.45, ("back", "odi"): 0.35,
             ("dep", "odi"): 0.25, ("opioid", "odi"): 0.25, ("dep", "opioid"): 0.2,
             ("age", "bmi"): 0.1, ("age", "dur"): 0.15, ("dur", "opioid"): 0.15,
             ("bmi", "odi"): 0.15, ("dep", "leg"): 0.1}
    for (a, b), v in pairs.items():
        i, j = names.index(a), names.index(b)
        r[i, j] = r[j, i] = v
    e = rng.standard_normal((n, len(names)))
    # z = e @ L.T, column by column in a fixed order (no BLAS call; see _dot).
    low = _cholesky(r)
    z = np.zeros_like(e)
    for j in range(len(names)):
        for k in range(j + 1):
            z[:, j] += e[:, k] * low[j][k]
    return z


def _norm_ppf(p):
    from scipy.stats import norm

    return norm.ppf(p)


# ------------------------------------------------------------------------------ step 1
def _plan(rng) -> pd.DataFrame:
    """Who is who: imaging group, source study, exclusion reason (before covariates)."""
    rows = []
    for i in range(14):
        rows.append(dict(imaging="near_normal", study="mri_rct" if i < 7 else "referral",
                         exclusion=""))
    for study, why in (("mri_rct", "window"), ("referral", "surgery"),
                       ("other_prospective", "surgery"), ("referral", "no_follow_up"),
                       ("other_prospective", "minor")):
        rows.append(dict(imaging="near_normal", study=study, exclusion=why))
    groups = np.array(["abnormal", "discordant", "degenerative", "no_mri"])
    for study, k in _STUDY_N.items():
        img = rng.choice(groups, size=k, p=[0.79, 0.08, 0.06, 0.07])
        for g in img:
            exclusion = ""
            u = rng.random()
            if study != "mri_rct" and u < 0.06:
                exclusion = "surgery"
            elif u < 0.09:
                exclusion = "no_follow_up"
            rows.append(dict(imaging=str(g), study=study, exclusion=exclusion))
    plan = pd.DataFrame(rows)
    # Treated outside the study window: some MRI-trial patients in late 2008 and some
    # prospective patients after 1 November 2024; two minors referred by a surgeon.
    others = plan.index[(plan["imaging"] != "near_normal") & (plan["exclusion"] == "")]
    mri = [i for i in others if plan.at[i, "study"] == "mri_rct"]
    late = [i for i in others if plan.at[i, "study"] == "other_prospective"]
    refs = [i for i in others if plan.at[i, "study"] == "referral"]
    for i in rng.choice(mri, 7, replace=False):
        plan.at[i, "exclusion"] = "window"
    for i in rng.choice(late, 4, replace=False):
        plan.at[i, "exclusion"] = "window"
    for i in rng.choice(refs, 2, replace=False):
        plan.at[i, "exclusion"] = "minor"
    # Near twins: for each eligible near-normal case, a few eligible patients with concordant
    # pathology whose baseline resembles the case's (the source studies had similar
    # eligibility), from the MRI trial for its cases and from the studies with open
    # eligibility (not the younger, mostly male military gabapentin trial) for referrals.
    plan["twin_of"] = -1
    pool = plan.index[(plan["imaging"] == "abnormal") & (plan["exclusion"] == "")]
    for i in range(14):
        same = plan.at[i, "study"] == "mri_rct"
        cand = [j for j in pool if plan.at[j, "twin_of"] < 0
                and ((plan.at[j, "study"] == "mri_rct") == same)
                and plan.at[j, "study"] != "gabapentin_rct"]
        for j in rng.choice(cand, _N_TWINS, replace=False):
            plan.at[j, "twin_of"] = i
    if len(plan) != N_PATIENTS:  # pragma: no cover - fixed by the counts above
        raise SyntheticError(f"plan has {len(plan)} patients, expected {N_PATIENTS}")
    return plan


def _baseline(rng, plan: pd.DataFrame) -> dict[str, list]:
    n = len(plan)
    z = _copula(rng, n)
    near = (plan["imaging"] == "near_normal").to_numpy()
    study = plan["study"].to_numpy()
    exclusion = plan["exclusion"].to_numpy()
    imaging = plan["imaging"].to_numpy()
    dep_cut = {True: float(_norm_ppf(1 - 0.38)), False: float(_norm_ppf(1 - 0.25))}
    opioid_cut = float(_norm_ppf(1 - 0.34))
    cols: dict[str, list] = {c: [None] * n for c in SCHEMA if c != "patient_id"}
    u = rng.random((n, 12))
    twin_of = plan["twin_of"].to_numpy()
    if (twin_of >= np.arange(n)).any():  # pragma: no cover - cases come first in the plan
        raise SyntheticError("a near twin precedes its case in the plan")
    covs: list[dict] = [{}] * n
    for i in range(n):
        s, ex = study[i], exclusion[i]
        # dates
        if ex == "window":
            date = (_date(rng, "2008-09-01", "2009-01-04") if s == "mri_rct"
                    else _date(rng, "2024-11-05", "2025-06-30"))
        else:
            date = _date(rng, *_STUDY_DATES[s])
        cols["procedure_date"][i] = date
        cols["site"][i] = "A" if u[i, 0] < 0.6 else "B"
        cols["source_study"][i] = s
        cols["mri_blinded_arm"][i] = (bool(near[i] or u[i, 1] < 0.5) if s == "mri_rct"
                                      else None)
        # demographics, baseline pain and function
        age = _AGE_MEAN.get(s, 53.0) - 4.0 * near[i] + 13.0 * z[i, 0]
        lo_age, hi_age = (18, 75) if s == "mri_rct" else (19, 88)
        p_f = _FEMALE.get(s, 0.50) + 0.12 * near[i]
        dur = math.exp(math.log(9.0) + math.log(1.4) * near[i] + 0.9 * z[i, 2])
        x = {"age": age, "sex": "female" if u[i, 2] < p_f else "male",
             "bmi": 29.0 + 5.0 * z[i, 1], "dur": dur,
             "dep": bool(z[i, 3] > dep_cut[bool(near[i])]),
             "leg": 6.3 - 0.3 * near[i] + 1.6 * z[i, 4],
             "back": 4.8 + 0.3 * near[i] + 2.0 * z[i, 5],
             "odi": 40.0 - 3.0 * near[i] + 14.0 * z[i, 6],
             "opioid": bool(z[i, 7] > opioid_cut)}
        if twin_of[i] >= 0:
            x = _twin(rng, covs[twin_of[i]])
        age = int(np.clip(round(x["age"]), lo_age, hi_age))
        if ex == "minor":
            age = int(rng.integers(16, 18))
        cols["age"][i] = age
        cols["sex"][i] = x["sex"]
        cols["bmi"][i] = float(np.clip(round(x["bmi"], 1), 17.0, 52.0))
        cols["pain_duration_months"][i] = float(np.clip(round(x["dur"], 1), 0.5,
                                                        48.0 if s == "mri_rct" else 240.0))
        dep = x["dep"]
        cols["depression_anxiety"][i] = dep
        leg = float(np.clip(_half(x["leg"]), 2.0, 10.0))
        back = float(np.clip(_half(x["back"]), 0.0, 10.0))
        if s == "mri_rct":  # trial eligibility: pain > 4, leg pain above back pain
            leg = max(leg, 4.5)
            back = min(back, leg - 0.5)
        cols["baseline_leg_pain"][i] = leg
        cols["baseline_back_pain"][i] = back
        cols["baseline_odi"][i] = float(np.clip(_even(x["odi"]), 4.0, 90.0))
        opioid = x["opioid"]
        cols["opioid_use"][i] = opioid
        cols["baseline_mme"][i] = (float(np.clip(round(math.exp(math.log(30.0) + 0.6 *
                                                                rng.standard_normal()), 1),
                                                 2.5, 300.0)) if opioid else 0.0)
        covs[i] = {"age": cols["age"][i], "sex": x["sex"], "bmi": cols["bmi"][i],
                   "dur": cols["pain_duration_months"][i], "dep": dep, "leg": leg,
                   "back": back, "odi": cols["baseline_odi"][i], "opioid": opioid}
        p_cur = 0.25 + 0.10 * dep
        cols["smoking"][i] = ("current" if u[i, 3] < p_cur else
                              "former" if u[i, 3] < p_cur + 0.25 else "never")
        if age >= 66 and u[i, 4] < 0.6:
            emp = "retired"
        elif u[i, 5] < 0.10 + 0.08 * dep:
            emp = "disabled"
        elif u[i, 5] < 0.30 + 0.08 * dep:
            emp = "not_working"
        else:
            emp = "working"
        cols["employment"][i] = emp
        cols["prior_spine_surgery"][i] = ex == "surgery"
        cols["baseline_analgesic_use"][i] = bool(u[i, 6] < 0.75)
        _mri(rng, cols, i, imaging[i])
        cols["esi_approach"][i] = "transforaminal" if u[i, 7] < 0.75 else "interlaminar"
        # visits attended (needed by the cohort step)
        if ex == "no_follow_up":
            m4, m12 = True, True
        else:
            m4 = bool(u[i, 8] < 0.07)
            m12 = bool(u[i, 9] < (0.35 if m4 else 0.11))
            if m4 and m12:
                m12 = False
        cols["visit_missed_4w"][i] = m4
        cols["visit_missed_12w"][i] = m12
    return cols


def _twin(rng, case: dict) -> dict:
    """Baseline covariates of a near twin of ``case``: the same sex, depression and opioid
    status, age within 3 years, BMI +- 1 (SD), pain duration x exp(+-0.2) (SD), leg pain,
    back pain (half a point) and ODI (2 points) one step up or down with probability 1/4
    each."""
    step = rng.choice([-1.0, 0.0, 0.0, 1.0], size=3)
    return {"age": case["age"] + int(rng.integers(-3, 4)), "sex": case["sex"],
            "bmi": case["bmi"] + 1.0 * rng.standard_normal(),
            "dur": case["dur"] * math.exp(0.2 * rng.standard_normal()),
            "dep": case["dep"], "leg": case["leg"] + 0.5 * step[0],
            "back": case["back"] + 0.5 * step[1], "odi": case["odi"] + 2.0 * step[2],
            "opioid": case["opioid"]}


#: Scale of the changes :func:`_tune_twins` makes to a near twin (cost units).
_TWIN_TOLERANCE = {"age": 2.0, "bmi": 1.0, "pain_duration_months": 0.15,
                   "baseline_leg_pain": 0.5, "baseline_back_pain": 0.5, "baseline_odi": 2.0}
#: Largest cost (sum of squared changes in :data:`_TWIN_TOLERANCE` units) of a tuned twin.
_TWIN_MAX_COST = 4.0
#: Balance sought after matching, for each continuous covariate: |SMD| at most this share of
#: its |SMD| before matching, and at most the cap.
_TWIN_BALANCE_SHARE = 0.8
_TWIN_BALANCE_CAP = 0.05
#: Shifts of a twin's leg pain, back pain and ODI tried by :func:`_tune_candidate`.
_TWIN_SHIFTS = np.array([(x, y, z) for x in (-0.5, 0.0, 0.5) for y in (-0.5, 0.0, 0.5)
                         for z in (-2.0, 0.0, 2.0)])


def _tune_candidate(b: np.ndarray, bd: np.ndarray, gap: float, x: np.ndarray, d: np.ndarray,
                    mri: bool, eps: float):
    """Changes of one twin that move its linear predictor by ``gap`` (to within ``eps``).

    ``x`` is (age, BMI, pain duration) with coefficients ``b``, ``d`` is (leg pain, back
    pain, ODI) with coefficients ``bd``. For each shift of ``d`` in :data:`_TWIN_SHIFTS`, the
    smallest change of ``x`` that does the rest. Returns a list of ``(cost, new x, new d)``,
    cheapest first (empty if none closes the gap).
    """
    tol = np.array([_TWIN_TOLERANCE["age"], _TWIN_TOLERANCE["bmi"],
                    _TWIN_TOLERANCE["pain_duration_months"] * x[2]])
    tol_d = np.array([_TWIN_TOLERANCE[c] for c in
                      ("baseline_leg_pain", "baseline_back_pain", "baseline_odi")])
    lo = np.array([18.0 if mri else 19.0, 17.0, 0.5])
    hi = np.array([75.0 if mri else 88.0, 52.0, 48.0 if mri else 240.0])
    grid = np.arange(-20, 21) / 10.0
    found = []
    for sh in _TWIN_SHIFTS:
        dn = d + sh
        if (dn[0] < 2.0 or dn[0] > 10.0 or dn[1] < 0.0 or dn[1] > 10.0 or dn[2] < 4.0
                or dn[2] > 90.0 or (mri and (dn[0] < 4.5 or dn[1] > dn[0] - 0.5))):
            continue
        rest = gap - _dot(bd, sh)
        # Smallest change in tolerance units; a covariate at its bound is left out.
        free = b != 0
        xn = x.copy()
        for _ in range(3):
            w = np.where(free, b * tol**2, 0.0)
            den = _dot(b, w)
            if den <= 0:
                break
            xn = x + rest * w / den
            out = free & ((xn < lo) | (xn > hi))
            if not out.any():
                break
            free &= ~out
        xn = np.clip(xn, lo, hi)
        # Round (whole years, 0.1 kg/m2, 0.1 month); among BMI and duration within 2 units
        # of the result, the one closest to the drawn values that leaves a gap below eps.
        age = float(round(xn[0]))
        bmi = np.clip(np.round(xn[1] + grid[:, None], 1), 17.0, 52.0)
        dur = np.clip(np.round(xn[2] + grid[None, :], 1), lo[2], hi[2])
        miss = np.abs(rest - b[0] * (age - x[0]) - b[1] * (bmi - x[1]) - b[2] * (dur - x[2]))
        change = ((bmi - x[1]) / tol[1]) ** 2 + ((dur - x[2]) / tol[2]) ** 2
        score = np.where(miss <= eps, change, 1e6 + miss)
        k, m = np.unravel_index(np.argmin(score), score.shape)
        if miss[k, m] > eps:
            continue
        xr = np.array([age, bmi[k, 0], dur[0, m]])
        found.append((float((((xr - x) / tol) ** 2).sum() + ((sh / tol_d) ** 2).sum()), xr,
                      dn))
    return sorted(found, key=lambda f: f[0])


def _tune_twins(cols, ids: list[str], twins: dict[int, list[int]], model,
                study: np.ndarray, chosen: dict[int, int]) -> None:
    """Give one near twin of each case the case's propensity (linear predictor of ``model``),
    so that nearest-neighbour matching on the propensity finds it.

    For every twin, the least change that closes the gap to its case's linear predictor is
    found by :func:`_tune_candidate`: a shift of leg and back pain (-0.5, 0, +0.5) and ODI
    (-2, 0, +2) and the smallest change of age, BMI and pain duration in
    :data:`_TWIN_TOLERANCE` units that does the rest, rounded. The cost of a change is the sum
    of its squares in those units, measured from the twin's drawn values (not toward the case:
    a twin stays as different from its case as it was drawn). Among the options (twin and
    shift) whose cost is at most :data:`_TWIN_MAX_COST` (or the cheapest), one per case is
    chosen: first the cheapest, then, case by case until nothing improves, the one that
    lowers the largest excess of a continuous covariate's |SMD| between the cases and the
    chosen twins over its limit (:data:`_TWIN_BALANCE_SHARE` times its |SMD| before matching,
    at most :data:`_TWIN_BALANCE_CAP`), or at equal excess the total cost. Binary covariates
    need nothing: a case's twins share its values. The other twins keep their drawn values. The choice is recorded in ``chosen`` (case -> twin position); in
    later rounds (a model refitted after the change) only the chosen twin is tuned again, from
    its current values. No random draw.
    """
    coef = model.coefficients
    eta = model.linear_predictor
    cont = ["age", "bmi", "pain_duration_months"]
    disc = ["baseline_leg_pain", "baseline_back_pain", "baseline_odi"]
    b = np.array([float(coef.get(c, 0.0)) for c in cont])
    bd = np.array([float(coef.get(c, 0.0)) for c in disc])
    case_ids = {ids[c] for c in twins}
    ctrl = ~eta.index.isin(list(case_ids))
    options: dict[int, list[tuple[float, int, np.ndarray, np.ndarray]]] = {}
    for c, tw in twins.items():
        if ids[c] not in eta.index:
            continue
        opts = []
        for j in ([chosen[c]] if c in chosen else tw):
            if ids[j] not in eta.index:
                continue
            x = np.array([cols[v][j] for v in cont], dtype=float)
            d = np.array([cols[v][j] for v in disc], dtype=float)
            # Close enough that no other control is nearer (half the nearest other gap).
            others = np.abs(eta.to_numpy()[ctrl & (eta.index != ids[j])] - eta[ids[c]])
            eps = max(0.5 * float(others.min()), 1e-6)
            got = _tune_candidate(b, bd, float(eta[ids[c]] - eta[ids[j]]), x, d,
                                  study[j] == "mri_rct", eps)
            opts += [(g[0], j, g[1], g[2]) for g in got]
        if opts:
            opts.sort(key=lambda o: o[0])
            options[c] = [o for o in opts if o[0] <= _TWIN_MAX_COST] or opts[:1]
    if not options:
        return
    # Balance of the six continuous covariates (SMD with the cases' SD, as esi.balance does
    # for ATT): before matching (all eligible controls) and after (the chosen twins).
    cases = sorted(options)
    names = cont + disc
    xcase = np.array([[cols[v][c] for v in names] for c in cases], dtype=float)
    pos = {p: k for k, p in enumerate(ids)}
    ctrl_pos = [pos[p] for p in eta.index[ctrl]]
    xctrl = np.array([[cols[v][k] for v in names] for k in ctrl_pos], dtype=float)
    sd = xcase.std(axis=0, ddof=1)
    sd[sd == 0] = 1.0
    before = np.abs((xcase.mean(axis=0) - xctrl.mean(axis=0)) / sd)
    limit = np.minimum(_TWIN_BALANCE_SHARE * before, _TWIN_BALANCE_CAP)

    def score(pick: list[int]) -> tuple[float, float]:
        xt = np.array([np.concatenate([options[c][k][2], options[c][k][3]])
                       for c, k in zip(cases, pick, strict=True)])
        after = np.abs((xcase - xt).mean(axis=0) / sd)
        cost = sum(options[c][k][0] for c, k in zip(cases, pick, strict=True))
        return float(np.maximum(after - limit, 0.0).max()), cost

    # Coordinate descent from the cheapest options: least excess over the limits, then least
    # total change.
    pick = [0] * len(cases)
    cur = score(pick)
    improved = True
    while improved:
        improved = False
        for i, c in enumerate(cases):
            for k in range(len(options[c])):
                trial = pick[:i] + [k] + pick[i + 1:]
                val = score(trial)
                if val < cur and (val[0] < cur[0] - 1e-12 or val[1] < cur[1] - 1e-12):
                    pick, cur, improved = trial, val, True
    for c, k in zip(cases, pick, strict=True):
        _, j, xr, dn = options[c][k]
        chosen[c] = j
        cols["age"][j] = int(xr[0])
        cols["bmi"][j] = float(xr[1])
        cols["pain_duration_months"][j] = float(xr[2])
        for v, val in zip(disc, dn, strict=True):
            cols[v][j] = float(val)


def _mri(rng, cols, i, imaging) -> None:
    def pick(values, p):
        return int(rng.choice(values, p=p))

    if imaging == "no_mri":
        cols["mri_available"][i] = False
        for c in ("nerve_root_compression", "disc_herniation_grade", "canal_stenosis_grade",
                  "foraminal_stenosis_grade", "degenerative_grade", "mri_levels",
                  "pathology_concordant"):
            cols[c][i] = None
        cols["esi_level"][i] = str(rng.choice(["L4-L5", "L5-S1", "S1"], p=[0.4, 0.45, 0.15]))
        return
    cols["mri_available"][i] = True
    if imaging == "near_normal":
        comp = False
        hern, canal = pick([0, 1], [0.5, 0.5]), pick([0, 1], [0.85, 0.15])
        foram, degen = pick([0, 1], [0.7, 0.3]), pick([0, 1], [0.35, 0.65])
        conc = False
    elif imaging == "degenerative":
        comp = False
        hern, canal = pick([0, 1], [0.4, 0.6]), pick([0, 1], [0.6, 0.4])
        foram, degen = pick([0, 1], [0.5, 0.5]), pick([2, 3], [0.7, 0.3])
        conc = False
    else:  # abnormal (concordant) or discordant pathology
        comp = bool(rng.random() < 0.7)
        hern = pick([0, 1, 2, 3], [0.1, 0.15, 0.45, 0.3])
        canal = pick([0, 1, 2, 3], [0.5, 0.25, 0.17, 0.08])
        foram = pick([0, 1, 2, 3], [0.35, 0.25, 0.28, 0.12])
        degen = pick([0, 1, 2, 3], [0.15, 0.45, 0.3, 0.1])
        if not comp and max(hern, canal, foram) < 2:
            hern = 2
        conc = imaging == "abnormal"
    cols["nerve_root_compression"][i] = comp
    cols["disc_herniation_grade"][i] = hern
    cols["canal_stenosis_grade"][i] = canal
    cols["foraminal_stenosis_grade"][i] = foram
    cols["degenerative_grade"][i] = degen
    cols["pathology_concordant"][i] = conc
    anything = comp or hern or canal or foram or degen
    if anything:
        k = 1 if rng.random() < 0.7 else 2
        lv = sorted(rng.choice(_LEVELS, size=k, replace=False, p=[0.1, 0.45, 0.45]).tolist())
        cols["mri_levels"][i] = ";".join(lv)
        low = lv[-1]
        if low == "L5-S1" and rng.random() < 0.25:
            cols["esi_level"][i] = "S1"
        else:
            cols["esi_level"][i] = low
    else:
        cols["mri_levels"][i] = None
        cols["esi_level"][i] = str(rng.choice(["L4-L5", "L5-S1", "S1"], p=[0.4, 0.45, 0.15]))


def _typed(cols: dict[str, list], ids: list[str]) -> pd.DataFrame:
    """A DataFrame typed as :func:`esi.io.read_registry` returns it."""
    from esi.validate import typed_registry

    clean = {}
    for name, vals in cols.items():
        dtype = SCHEMA[name].dtype
        if dtype == "integer":
            clean[name] = [None if v is None else int(v) for v in vals]
        elif dtype == "number":
            clean[name] = [None if v is None else float(round(v, 10)) for v in vals]
        elif dtype == "boolean":
            clean[name] = [None if v is None else bool(v) for v in vals]
        else:
            clean[name] = list(vals)
    frame = typed_registry(clean, list(ids))
    return frame[[c for c in SCHEMA if c != "patient_id"]]


# ------------------------------------------------------------------------------ step 3/4
def _gpe_from_latent(x: np.ndarray) -> np.ndarray:
    cuts = np.array([4.5, 2.2, 0.8, -0.8, -2.0, -3.5])
    return 1 + (x[:, None] < cuts[None, :]).sum(axis=1)


def _satisfaction(rng, gpe: np.ndarray) -> np.ndarray:
    first = {1: 5, 2: 4, 3: 3, 4: 3, 5: 2, 6: 2, 7: 1}
    second = {1: 4, 2: 5, 3: 4, 4: 2, 5: 1, 6: 1, 7: 2}
    u = rng.random(len(gpe))
    return np.array([first[g] if ui < 0.7 else second[g] for g, ui in zip(gpe, u,
                                                                          strict=True)])


def _bounded_reduction(base: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Half-point reduction with the follow-up score kept in [0, 10] and worsening <= 3."""
    lo = np.maximum(base - 10.0, -3.0)
    return np.clip(_half(raw), lo, base)


def _odi_follow_up(rng, base: np.ndarray, reduction_raw: np.ndarray,
                   skipped_share: float) -> np.ndarray:
    fu = np.clip(base - reduction_raw, 0.0, 100.0)
    one_skipped = rng.random(len(base)) < skipped_share
    step = np.where(one_skipped, 100.0 / 45.0, 2.0)
    return np.round(np.round(fu / step) * step, 10)


def _fill_visit(cols, i, t, *, leg, back, odi, gpe, sat, analgesic, mme, days) -> None:
    cols[f"leg_pain_{t}w"][i] = float(leg)
    cols[f"back_pain_{t}w"][i] = float(back)
    cols[f"odi_{t}w"][i] = float(odi)
    cols[f"gpe_{t}w"][i] = int(gpe)
    cols[f"satisfaction_{t}w"][i] = int(sat)
    cols[f"analgesic_use_{t}w"][i] = bool(analgesic)
    cols[f"mme_{t}w"][i] = float(mme)
    cols[f"additional_intervention_{t}w"][i] = days is not None
    cols[f"additional_intervention_days_{t}w"][i] = None if days is None else int(days)


def _interventions(rng, r4: np.ndarray, r12: np.ndarray) -> tuple[list, list]:
    """Days of the first additional intervention as seen at 4 and 12 weeks (None = none)."""
    d4, d12 = [], []
    for a, b in zip(r4, r12, strict=True):
        if rng.random() < 0.06 + 0.06 * (a < 1):
            day = int(rng.integers(10, 28))
            d4.append(day)
            d12.append(day)
        elif rng.random() < 0.08 + 0.10 * (b < 1):
            d4.append(None)
            d12.append(int(rng.integers(30, 84)))
        else:
            d4.append(None)
            d12.append(None)
    return d4, d12


def _other_follow_up(rng, cols, idx: np.ndarray, near: np.ndarray) -> None:
    """Realistic trajectories for patients outside the matched sample."""
    if idx.size == 0:
        return
    leg0 = np.array([cols["baseline_leg_pain"][i] for i in idx])
    back0 = np.array([cols["baseline_back_pain"][i] for i in idx])
    odi0 = np.array([cols["baseline_odi"][i] for i in idx])
    dep = np.array([cols["depression_anxiety"][i] for i in idx], dtype=float)
    obese = np.array([cols["bmi"][i] > 30 for i in idx], dtype=float)
    mu = 2.4 + 0.35 * (leg0 - 6.3) - 0.5 * dep - 0.4 * obese - 1.0 * near
    r4 = _bounded_reduction(leg0, mu + 2.4 * rng.standard_normal(idx.size))
    r12 = _bounded_reduction(leg0, 0.65 * r4 + 0.9 - 0.5 * near
                             + 1.7 * rng.standard_normal(idx.size))
    d4, d12 = _interventions(rng, r4, r12)
    for t, r, days in ((4, r4, d4), (12, r12, d12)):
        rb = _bounded_reduction(back0, 0.5 * r + 0.2 + 1.6 * rng.standard_normal(idx.size))
        odi = _odi_follow_up(rng, odi0, 2.5 * r + 1.0 + 8.0 * rng.standard_normal(idx.size),
                             0.04)
        gpe = _gpe_from_latent(r + 1.2 * rng.standard_normal(idx.size))
        sat = _satisfaction(rng, gpe)
        for k, i in enumerate(idx):
            if cols[f"visit_missed_{t}w"][i]:
                continue
            base_an = cols["baseline_analgesic_use"][i]
            stop = rng.random() < (0.1 + 0.25 * (r[k] >= 2))
            analgesic = (base_an and not stop) or (not base_an and rng.random() < 0.05)
            mme0 = cols["baseline_mme"][i]
            mme = round(mme0 * (1 - 0.4 * rng.random() * (r[k] >= 2)), 1) if mme0 > 0 else 0.0
            _fill_visit(cols, i, t, leg=leg0[k] - r[k], back=back0[k] - rb[k], odi=odi[k],
                        gpe=gpe[k], sat=sat[k], analgesic=analgesic, mme=mme, days=days[k])


def _composite(rng, r: np.ndarray, days: list, k: int) -> np.ndarray | None:
    """GPE values giving exactly ``k`` positive outcomes, consistent with the pain decreases.

    A positive outcome needs a decrease >= 2, GPE 1-2 and no intervention; ``k`` of the
    patients who could be positive are chosen (weighted by their decrease) and given GPE 1 or
    2; the others who could be get GPE 3 (slightly improved); the rest draw from the latent
    model, capped so that nobody else turns positive by accident.
    """
    could = np.flatnonzero((r >= 2) & np.array([d is None for d in days]))
    if len(could) < k:
        return None
    w = r[could] - 1.0
    chosen = rng.choice(could, size=k, replace=False, p=w / w.sum()) if k else np.array([],
                                                                                         int)
    gpe = _gpe_from_latent(r + 1.2 * rng.standard_normal(len(r)))
    for i in could:
        gpe[i] = 3 if i not in chosen else (1 if r[i] >= 4 and rng.random() < 0.6 else 2)
    return gpe


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    den = math.sqrt(_dot(xc, xc) * _dot(yc, yc))
    return _dot(xc, yc) / den if den > 0 else 0.0


def _swap_towards(rng, values: np.ndarray, base: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                  target: float, movable: np.ndarray, rounds: int = 600,
                  partner: np.ndarray | None = None, partner_target: float = 0.0
                  ) -> np.ndarray:
    """Swap values between patients (within their bounds) toward a correlation with baseline
    and, if ``partner`` is given, toward a correlation with the matched partners' values.

    A swap keeps the sample (so its mean, SD and any rank test) and is kept when it does not
    move the correlations away from their targets.
    """
    v = values.copy()
    idx = np.flatnonzero(movable)
    if idx.size < 3 or np.std(base[idx]) == 0:
        return v

    def loss(x):
        out = abs(_pearson(x[idx], base[idx]) - target)
        if partner is not None:
            out += abs(_pearson(x, partner) - partner_target)
        return out

    cur = loss(v)
    for _ in range(rounds):
        i, j = rng.choice(idx, 2, replace=False)
        if not (lo[i] <= v[j] <= hi[i] and lo[j] <= v[i] <= hi[j]):
            continue
        v[i], v[j] = v[j], v[i]
        new = loss(v)
        if new <= cur:
            cur = new
        else:
            v[i], v[j] = v[j], v[i]
    return v


#: Largest mean 12-week leg-pain reduction of the matched cases: below the larger cohort's
#: (about 2.1 from the model of :func:`_other_follow_up`), as near-normal cases fade.
_CASES_LEG12_MAX = 1.8

#: SPRITE candidates per group among which the matched samples are chosen: 4-week pain (where
#: few pairs give the published P) and 12-week ODI.
_N_CANDIDATES = {"leg": 80, "back": 80, "odi12": 40}


def _choose_by_p(cases: list, controls: list, published_p: tuple[float, int] | None
                 ) -> tuple:
    """The first pair of candidates whose Mann-Whitney P rounds to the published P.

    The paper does not say which test gave its P values; Welch and Student t tests from the
    published means and SDs cannot give them (see the audit), while the Mann-Whitney test (R
    ``wilcox.test``: normal approximation with continuity correction when there are ties) can.
    The pair is taken in a fixed order, so the choice is seeded by the candidates. Without a
    published P, or when no pair gives it, the first candidates are used.
    """
    from scipy import stats

    if published_p is None:
        return cases[0], controls[0]
    value, dec = published_p
    x = np.array([np.sort(c[0]) for c in cases])[:, None, :]
    y = np.array([np.sort(c[0]) for c in controls])[None, :, :]
    xb, yb = np.broadcast_arrays(x, y[..., :1])[0], np.broadcast_arrays(y, x[..., :1])[0]
    p = stats.mannwhitneyu(xb, yb, axis=-1, method="asymptotic", use_continuity=True).pvalue
    ok = np.floor(p * 10.0 ** dec + 0.5 + 1e-9) == round(value * 10.0 ** dec)
    hits = np.argwhere(ok)
    if hits.size == 0:
        return cases[0], controls[0]
    i, j = hits[0]
    return cases[i], controls[j]


def _matched_follow_up(rng, cols, pos: dict[str, int], cases: list[str],
                       controls: list[str], targets) -> None:
    """Construct the 28 matched patients' outcomes (SPRITE per group; see module notes)."""
    from esi.sprite import SpriteError, sprite
    from esi.stats import mann_whitney, welch_t

    groups = {"near_normal": [pos[p] for p in cases], "abnormal": [pos[p] for p in controls]}

    def tgt(outcome, t, group, stat):
        value, dec = targets[(outcome, t, group, stat)]
        return value, dec

    def arr(name, ii):
        return np.array([cols[name][i] for i in ii], dtype=float)

    for i in groups["near_normal"] + groups["abnormal"]:
        cols["visit_missed_4w"][i] = False
        cols["visit_missed_12w"][i] = False

    # Candidate samples per group and outcome (SPRITE within each patient's bounds); one
    # candidate per group is then chosen so that the published P (test not reported) is what
    # R's wilcox.test gives: see _choose_by_p.
    cands: dict[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]] = {}
    bounds: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    built: dict[str, dict[str, np.ndarray]] = {}
    for group, ii in groups.items():
        n = len(ii)
        leg0, back0, odi0 = (arr("baseline_leg_pain", ii), arr("baseline_back_pain", ii),
                             arr("baseline_odi", ii))
        k4 = round(tgt("positive_outcome", 4, group, "percent")[0] * n / 100)
        k12 = round(tgt("positive_outcome", 12, group, "percent")[0] * n / 100)
        cands[group] = {}
        for name, base in (("leg", leg0), ("back", back0)):
            m, dm = tgt(f"{name}_pain_reduction", 4, group, "mean")
            s, ds = tgt(f"{name}_pain_reduction", 4, group, "sd")
            lo, hi = np.maximum(base - 10.0, -3.0), base.copy()
            found = []
            for _ in range(20 * _N_CANDIDATES[name]):
                v = sprite(n, m, s, lower=lo, upper=hi, step=0.5, mean_decimals=dm,
                           sd_decimals=ds, seed=rng)
                if name != "leg" or (v >= 2).sum() >= k4 + 1:
                    found.append((v, np.ones(n, bool)))
                if len(found) == _N_CANDIDATES[name]:
                    break
            if not found:  # pragma: no cover - depends on the targets
                raise SyntheticError(f"{group}: too few 4-week leg-pain responders for {k4}")
            cands[group][name] = found
            bounds[(group, name)] = (base, lo, hi)
        # 12-week ODI: complete forms (steps of 2) plus, where the published mean needs it,
        # forms with two sections skipped (steps of 2.5) for some patients.
        m, dm = tgt("odi_reduction", 12, group, "mean")
        s, ds = tgt("odi_reduction", 12, group, "sd")
        lo_o, hi_o = np.maximum(odi0 - 100.0, -24.0), odi0.copy()
        found = []
        for n_skip in (0, 2):
            for _ in range(20 * _N_CANDIDATES["odi12"]):
                special = (rng.choice(n, n_skip, replace=False) if n_skip
                           else np.array([], int))
                fu_s = []
                for j in special:
                    raw = odi0[j] - (m + s * rng.standard_normal())
                    fu = np.clip(2.5 * (2 * np.round((raw / 2.5 - 1) / 2) + 1), 2.5, 97.5)
                    fu_s.append(float(fu))
                fixed = odi0[special] - np.array(fu_s) if n_skip else np.array([])
                free = np.setdiff1d(np.arange(n), special)
                try:
                    v = sprite(n, m, s, lower=lo_o[free], upper=hi_o[free], step=2.0,
                               mean_decimals=dm, sd_decimals=ds, fixed=fixed, seed=rng,
                               max_restarts=5)
                except SpriteError:
                    continue
                odi12 = np.empty(n)
                odi12[free] = v
                odi12[special] = fixed
                movable = np.ones(n, bool)
                movable[special] = False
                found.append((odi12, movable))
                if len(found) == _N_CANDIDATES["odi12"]:
                    break
            if found:
                break
        if not found:  # pragma: no cover - depends on the targets
            raise SyntheticError(f"{group}: no 12-week ODI sample with mean {m} and SD {s}")
        cands[group]["odi12"] = found
        bounds[(group, "odi12")] = (odi0, lo_o, hi_o)
        built[group] = {"k4": np.array(k4), "k12": np.array(k12), "leg0": leg0,
                        "back0": back0, "odi0": odi0}
    for name, (outcome, t) in (("leg", ("leg_pain_reduction", 4)),
                               ("back", ("back_pain_reduction", 4)),
                               ("odi12", ("odi_reduction", 12))):
        key = (outcome, t, "comparison", "p")
        a, b = _choose_by_p(cands["near_normal"][name], cands["abnormal"][name],
                            targets.get(key))
        # Swapping values between patients (within their bounds) keeps each sample, so its
        # mean, SD and rank-test P: controls toward a correlation of 0.3 with baseline, then
        # cases toward 0.3 with baseline and 0.2 with their matched control (pair i is
        # cases[i], controls[i]: 1:1 matching).
        base, lo, hi = bounds[("abnormal", name)]
        built["abnormal"][name] = _swap_towards(rng, b[0], base, lo, hi, 0.3, b[1])
        base, lo, hi = bounds[("near_normal", name)]
        built["near_normal"][name] = _swap_towards(rng, a[0], base, lo, hi, 0.3, a[1],
                                                   partner=built["abnormal"][name],
                                                   partner_target=0.2)

    # 12-week pain and 4-week ODI (free; no significant difference between the groups, as the
    # paper reports no other difference).
    shift = {"near_normal": 0.35, "abnormal": 0.9}
    for _ in range(500):
        for group, out in built.items():
            n = len(out["leg0"])
            out["leg12"] = _bounded_reduction(out["leg0"], 0.65 * out["leg"] + shift[group]
                                              + 1.7 * rng.standard_normal(n))
            out["back12"] = _bounded_reduction(out["back0"], 0.5 * out["leg12"] + 0.2
                                               + 1.6 * rng.standard_normal(n))
            odi4_raw = 2.5 * out["leg"] + 1.0 + 8.0 * rng.standard_normal(n)
            out["odi4"] = out["odi0"] - np.clip(_even(out["odi0"] - odi4_raw), 0.0, 100.0)
        a, b = built["near_normal"], built["abnormal"]
        if (all(test(a[c], b[c]).p_value >= 0.05 for c in ("leg12", "back12", "odi4")
                for test in (welch_t, mann_whitney))
                and a["leg12"].mean() <= min(b["leg12"].mean() - 0.25, _CASES_LEG12_MAX)
                and all((o["leg12"] >= 2).sum() >= int(o["k12"]) + 1 for o in built.values())):
            break
    else:  # pragma: no cover
        raise SyntheticError("no 12-week pain draw without a significant difference")

    for group, ii in groups.items():
        out = built[group]
        n = len(ii)
        for _ in range(500):
            d4, d12 = _interventions(rng, out["leg"], out["leg12"])
            g4 = _composite(rng, out["leg"], d4, int(out["k4"]))
            g12 = _composite(rng, out["leg12"], d12, int(out["k12"]))
            if g4 is not None and g12 is not None:
                break
        else:  # pragma: no cover
            raise SyntheticError(f"{group}: cannot place the positive outcomes")
        for t, r, rb, odi, gpe, days in (
                (4, out["leg"], out["back"], out["odi0"] - out["odi4"], g4, d4),
                (12, out["leg12"], out["back12"], out["odi0"] - out["odi12"], g12, d12)):
            sat = _satisfaction(rng, gpe)
            for k, i in enumerate(ii):
                base_an = cols["baseline_analgesic_use"][i]
                stop = rng.random() < (0.1 + 0.25 * (r[k] >= 2))
                analgesic = (base_an and not stop) or (not base_an and rng.random() < 0.05)
                mme0 = cols["baseline_mme"][i]
                mme = (round(mme0 * (1 - 0.4 * rng.random() * (r[k] >= 2)), 1)
                       if mme0 > 0 else 0.0)
                _fill_visit(cols, i, t, leg=out["leg0"][k] - r[k],
                            back=out["back0"][k] - rb[k], odi=odi[k], gpe=gpe[k],
                            sat=sat[k], analgesic=analgesic, mme=mme, days=days[k])


# ------------------------------------------------------------------------------ public API
def generate_registry(seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """Generate the synthetic registry.

    Parameters
    ----------
    seed
        Seed of the ``numpy`` Generator; :data:`DEFAULT_SEED` gives the committed file.

    Returns
    -------
    pandas.DataFrame
        One row per patient, indexed by ``patient_id`` (``ESI0001`` ..., in order of
        injection date), every schema column, typed as :func:`esi.io.read_registry` returns
        it. The default analysis (:data:`esi.params.DEFAULTS`) of this table reproduces every
        figure of ``published_results.csv`` (``tests/test_synthetic.py``).

    Raises
    ------
    ValueError
        If ``seed`` is not a non-negative whole number.
    SyntheticError
        If the construction fails for this seed (not the case for the default seed).
    """
    from esi.cohort import define_cohort
    from esi.matching import match
    from esi.params import DEFAULTS

    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative whole number, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    targets = published_targets()
    plan = _plan(rng)
    cols = _baseline(rng, plan)
    # Identifiers in order of injection date (ties by plan order).
    order = sorted(range(len(plan)), key=lambda i: (cols["procedure_date"][i], i))
    cols = {c: [v[i] for i in order] for c, v in cols.items()}
    plan = plan.iloc[order].reset_index(drop=True)
    ids = [f"ESI{k + 1:04d}" for k in range(len(plan))]
    pos = {p: k for k, p in enumerate(ids)}

    # Near twins by case (positions after the reordering).
    new_pos = {orig: k for k, orig in enumerate(order)}
    twins: dict[int, list[int]] = {}
    for k, orig in enumerate(plan["twin_of"].to_numpy()):
        if orig >= 0:
            twins.setdefault(new_pos[int(orig)], []).append(k)
    chosen: dict[int, int] = {}

    for _ in range(_TWIN_ROUNDS):
        base = _typed(cols, ids)
        cohort = define_cohort(base)
        m = match(cohort.eligible, "near_normal", DEFAULTS["covariates"],
                  method=DEFAULTS["method"], distance=DEFAULTS["distance"],
                  ratio=DEFAULTS["ratio"], caliper=DEFAULTS["caliper"],
                  replace=DEFAULTS["replace"], random_state=DEFAULTS["seed"])
        pairs = dict(zip(m.pairs["treated"].astype(str), m.pairs["control"].astype(str),
                         strict=True))
        if chosen and all(pairs.get(ids[c]) == ids[j] for c, j in chosen.items()):
            break
        _tune_twins(cols, ids, twins, m.model, plan["study"].to_numpy(), chosen)
    else:  # pragma: no cover - depends on the seed
        raise SyntheticError(f"seed {seed}: the match does not pair every case with a near "
                             f"twin after {_TWIN_ROUNDS} rounds")
    cases = list(dict.fromkeys(m.pairs["treated"].astype(str)))
    controls = list(m.pairs["control"].astype(str))
    n_cases = int(targets[("cohort", 0, "near_normal", "n")][0])
    if len(cases) != n_cases or cohort.n_near_normal != n_cases:
        raise SyntheticError(f"seed {seed}: {len(cases)} of {cohort.n_near_normal} eligible "
                             f"near-normal cases matched; expected {n_cases}")
    _matched_follow_up(rng, cols, pos, cases, controls, targets)
    matched = set(cases) | set(controls)
    others = np.array([pos[p] for p in ids if p not in matched], dtype=int)
    near = (plan["imaging"].to_numpy()[others] == "near_normal").astype(float)
    _other_follow_up(rng, cols, others, near)
    return _typed(cols, ids)


def write_synthetic_registry(path: str | Path = SYNTHETIC_REGISTRY,
                             seed: int = DEFAULT_SEED) -> Path:
    """Generate the registry and write it in the canonical CSV form.

    Parameters
    ----------
    path
        Destination (default ``data/synthetic/esi_registry_synthetic.csv``).
    seed
        Generator seed.

    Returns
    -------
    pathlib.Path
        The file written; its leading comment says the data are synthetic, the seed and the
        command that regenerates it.
    """
    from esi.io import write_registry

    registry = generate_registry(seed)
    seed_arg = "" if seed == DEFAULT_SEED else f" --seed {seed}"
    comment = (
        f"{_HEADER_START}{seed}).\n"
        f"Regenerate with: esi synth{seed_arg}\n"
        "Built so that the default analysis reproduces the published figures of Cohen et al., "
        "Interv Pain Med 2025;4:100574.\n"
        "See data/README.md (calibration table) for every assumption."
    )
    return write_registry(registry, path, comment=comment)


# ------------------------------------------------------------------------------ provenance
#: How the first line of a registry written by :func:`write_synthetic_registry` starts; the
#: seed and ``").`` follow.
_HEADER_START = "SYNTHETIC DATA - not patients. Generated by esi.synthetic.generate_registry (seed "
_HEADER_LINE = re.compile(r"^# " + re.escape(_HEADER_START) + r"(\d{1,12})\)\.\r?$")

#: Verdicts of this process: SHA-256 of a file -> whether esi generated it.
_VERDICTS: dict[str, bool] = {}


def header_seed(path: str | os.PathLike[str]) -> int | None:
    """The seed recorded in the first line of a registry file written by ``esi synth``, or
    ``None`` when the file does not start with that line (or cannot be read)."""
    try:
        with open(path, "rb") as fh:
            first = fh.readline(512)
    except OSError:
        return None
    m = _HEADER_LINE.match(first.decode("utf-8", "replace").rstrip("\n"))
    return int(m[1]) if m else None


def _cache_file() -> Path:
    base = os.environ.get("ESI_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "esi")
    return Path(base) / "generated-registries.json"


def _cached(sha: str) -> bool:
    try:
        known = json.loads(_cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(known, dict) and sha in known


def _remember(sha: str, seed: int) -> None:
    """Add a verified file to the per-user cache (private, written atomically); a cache that
    cannot be written only costs the next process a regeneration."""
    path = _cache_file()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            known = json.loads(path.read_text(encoding="utf-8"))
            known = known if isinstance(known, dict) else {}
        except (OSError, ValueError):
            known = {}
        known[sha] = {"seed": seed}
        fd, tmp = tempfile.mkstemp(prefix=".generated-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(known, fh, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError:
        pass


def is_generated(path: str | os.PathLike[str]) -> bool:
    """Whether esi can prove that it generated the registry file at ``path``.

    True exactly when the file starts with the header line that :func:`write_synthetic_registry`
    writes, naming a seed, and its SHA-256 equals that of the file ``esi synth --seed SEED``
    writes now. Anything else - a real export, an edited or truncated synthetic file, a real
    export copied over ``data/synthetic/esi_registry_synthetic.csv``, a header added by hand -
    is not. This is what decides whether a run's data are synthetic (row-level output
    allowed); no flag or path does.

    Notes
    -----
    The proof regenerates the registry (about 2.5 s). A verified SHA-256 is remembered for the
    process and in a private per-user cache (``$ESI_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/esi`` or ``~/.cache/esi``, file ``generated-registries.json``), so the
    notebooks of a run and later runs do not regenerate it again; a file that fails the proof
    costs nothing more than a read when it has no header.
    """
    p = Path(path)
    seed = header_seed(p)
    if seed is None:
        return False
    digest = hashlib.sha256(p.read_bytes()).hexdigest()
    if digest in _VERDICTS:
        return _VERDICTS[digest]
    if _cached(digest):
        _VERDICTS[digest] = True
        return True
    with tempfile.TemporaryDirectory(prefix="esi-synth-check-") as tmp:
        try:
            regenerated = write_synthetic_registry(Path(tmp) / "registry.csv", seed=seed)
        except (SyntheticError, ValueError):
            _VERDICTS[digest] = False
            return False
        verdict = hashlib.sha256(regenerated.read_bytes()).hexdigest() == digest
    _VERDICTS[digest] = verdict
    if verdict:
        _remember(digest, seed)
    return verdict
