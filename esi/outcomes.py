"""Derived outcomes of the study and the rules for missing follow-up.

Outcome definitions (for each follow-up visit t = 4 and 12 weeks)
-----------------------------------------------------------------
* ``leg_pain_reduction_{t}w``, ``back_pain_reduction_{t}w``: baseline minus follow-up average
  pain (0-10 NRS); positive = improvement.
* ``odi_reduction_{t}w``: baseline minus follow-up Oswestry Disability Index (percentage points).
* ``analgesic_reduction_{t}w``: True if the patient took opioids at baseline
  (``baseline_mme > 0``) and the daily MME fell by at least 20 %
  (``mme_{t}w <= 0.8 * baseline_mme``), **or** took a non-opioid analgesic at baseline
  (``baseline_analgesic_use``) and stopped it (``analgesic_use_{t}w`` False). A patient on
  neither at baseline cannot reduce and counts as False (not missing). ``analgesic_use`` is
  read as non-opioid analgesic use, opioids being measured by MME.
* ``satisfied_{t}w``: satisfaction 4 or 5 on the 5-point scale.
* ``positive_gpe_{t}w``: global perceived effect 1 or 2 (very much / much improved).
* ``positive_outcome_{t}w`` (composite): leg pain fell by at least ``success_threshold``
  points **and** positive GPE **and** no additional intervention before that visit.
  Components combine with three-valued logic: if one attended component is False the
  composite is False even when another is missing; otherwise a missing component makes it
  missing.
* A missed visit (``visit_missed_{t}w`` True) makes every outcome of that visit missing,
  never zero or False.

Binary outcomes are pandas nullable ``boolean`` columns (``pd.NA`` = missing); continuous
outcomes are float with NaN for missing.

Missing follow-up rules (:func:`apply_missing_rule`, run parameter ``missing``)
-----------------------------------------------------------------------------
``"complete_case"`` (default) leaves missing values missing; comparisons use the patients
(or pairs) with data and report the n used. ``"locf"`` fills a missing 12-week value from
the 4-week visit, and a value still missing (or a missing 4-week value) from baseline.
``"bocf"`` fills every missing follow-up value from baseline. "From baseline" means *no
change*: pain and ODI equal to baseline, GPE 4 (no change), satisfaction 3 (neutral, not
satisfied), MME and non-opioid analgesic use as at baseline, no additional intervention.
``"mice"`` (multiple imputation by chained equations) needs the analysis repeated per imputed
data set and is done by :mod:`esi.compare` with :func:`mice_imputations`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from esi.schema import ANALGESIC_REDUCTION_FRACTION, FOLLOW_UP_WEEKS

__all__ = [
    "TIMEPOINTS",
    "OutcomeSpec",
    "OUTCOMES",
    "MISSING_RULES",
    "FOLLOW_UP_FIELDS",
    "ANALGESIC_REDUCTION_FRACTION",
    "derive_outcomes",
    "apply_missing_rule",
    "describe_missing_rule",
    "mice_imputations",
    "outcome_spec",
]

#: Follow-up visits, in weeks after the injection (``esi.schema.FOLLOW_UP_WEEKS``).
TIMEPOINTS = tuple(FOLLOW_UP_WEEKS)
# ANALGESIC_REDUCTION_FRACTION (0.20) comes from esi.schema, shared with the data dictionary.
#: The accepted values of the ``missing`` run parameter.
MISSING_RULES = ("complete_case", "locf", "bocf", "mice")
#: Follow-up fields recorded at every visit (column ``{field}_{t}w``).
FOLLOW_UP_FIELDS = (
    "leg_pain",
    "back_pain",
    "odi",
    "gpe",
    "satisfaction",
    "analgesic_use",
    "mme",
    "additional_intervention",
)

_MISSING_TEXT = {
    "complete_case": "complete case (patients with the visit; n used shown per comparison)",
    "locf": "last observation carried forward (4-week value, else baseline = no change)",
    "bocf": "baseline observation carried forward (missed visit = no change)",
    "mice": "multiple imputation by chained equations (predictive mean matching), "
    "pooled with Rubin's rules",
}


@dataclass(frozen=True)
class OutcomeSpec:
    """One outcome at one time point.

    Attributes
    ----------
    name : str
        Outcome name without the time suffix, e.g. ``"leg_pain_reduction"``.
    label : str
        Human-readable label for tables and figures.
    kind : str
        ``"continuous"`` or ``"binary"``.
    timepoint_weeks : int
        4 or 12.
    primary : bool
        True for the primary outcome (leg pain reduction at 4 and 12 weeks).
    """

    name: str
    label: str
    kind: str
    timepoint_weeks: int
    primary: bool

    @property
    def column(self) -> str:
        """Column of :func:`derive_outcomes` holding this outcome, e.g. ``odi_reduction_12w``."""
        return f"{self.name}_{self.timepoint_weeks}w"


_BASE_SPECS = (
    ("leg_pain_reduction", "Reduction in average leg pain (0-10)", "continuous", True),
    ("back_pain_reduction", "Reduction in average back pain (0-10)", "continuous", False),
    ("odi_reduction", "Reduction in ODI (points)", "continuous", False),
    ("analgesic_reduction", "Analgesic reduction", "binary", False),
    ("satisfied", "Satisfied (4-5 of 5)", "binary", False),
    ("positive_gpe", "Positive global perceived effect", "binary", False),
    ("positive_outcome", "Positive outcome (composite)", "binary", False),
)

#: Every outcome x time point, in table order (time point within outcome).
OUTCOMES: tuple[OutcomeSpec, ...] = tuple(
    OutcomeSpec(name, label, kind, t, primary)
    for name, label, kind, primary in _BASE_SPECS
    for t in TIMEPOINTS
)


def outcome_spec(name: str, timepoint_weeks: int) -> OutcomeSpec:
    """Return the :data:`OUTCOMES` entry for ``name`` at ``timepoint_weeks`` (ValueError if none)."""
    for spec in OUTCOMES:
        if spec.name == name and spec.timepoint_weeks == timepoint_weeks:
            return spec
    raise ValueError(f"no outcome {name!r} at {timepoint_weeks} weeks")


def _indexed(registry: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(registry, pd.DataFrame):
        raise ValueError(f"registry must be a pandas DataFrame, got {type(registry).__name__}")
    if registry.index.name == "patient_id":
        out = registry.copy()
    elif "patient_id" in registry.columns:
        out = registry.set_index("patient_id")
    else:
        raise ValueError("registry needs a 'patient_id' index or column")
    out.index = out.index.astype(str)
    if out.index.has_duplicates:
        dup = out.index[out.index.duplicated()][0]
        raise ValueError(f"registry: patient_id {dup!r} appears more than once")
    return out


def _require(reg: pd.DataFrame, columns) -> None:
    missing = [c for c in columns if c not in reg.columns]
    if missing:
        raise ValueError(f"registry lacks required column(s): {', '.join(missing)}")


def _float(series: pd.Series) -> pd.Series:
    return pd.Series(
        pd.to_numeric(series, errors="coerce").astype("Float64").to_numpy(float, na_value=np.nan),
        index=series.index,
    )


def _bool(series: pd.Series) -> pd.Series:
    """Coerce 0/1, True/False, 'true'/'false', NaN to nullable boolean."""
    if series.dtype == "boolean":
        return series
    mapping = {True: True, False: False, "true": True, "false": False, "True": True,
               "False": False}

    def conv(v):
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
            return pd.NA
        if isinstance(v, np.bool_ | np.integer | np.floating):
            v = v.item()
        if v in mapping:
            return mapping[v]
        raise ValueError(f"cannot read {v!r} in column {series.name!r} as a boolean")

    return pd.Series([conv(v) for v in series], index=series.index, dtype="boolean",
                     name=series.name)


def derive_outcomes(registry: pd.DataFrame, *, success_threshold: float = 2.0) -> pd.DataFrame:
    """Derive every study outcome at 4 and 12 weeks.

    Parameters
    ----------
    registry
        One row per patient, ``patient_id`` as index or column, with the baseline and follow-up
        columns of the schema (``baseline_leg_pain``, ``leg_pain_4w``, ``gpe_12w``, ...).
    success_threshold
        Minimum decrease in average leg pain (points) for the composite positive outcome
        (default 2, the paper's pre-designated threshold). Must be > 0.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``patient_id`` (string), with for t in (4, 12):

        - ``leg_pain_reduction_{t}w`` (float): baseline_leg_pain - leg_pain_{t}w.
        - ``back_pain_reduction_{t}w`` (float): baseline_back_pain - back_pain_{t}w.
        - ``odi_reduction_{t}w`` (float): baseline_odi - odi_{t}w.
        - ``analgesic_reduction_{t}w`` (boolean): >= 20 % fall in daily MME from a positive
          baseline, or stopping a non-opioid analgesic taken at baseline.
        - ``satisfied_{t}w`` (boolean): satisfaction 4 or 5.
        - ``positive_gpe_{t}w`` (boolean): GPE 1 or 2.
        - ``positive_outcome_{t}w`` (boolean): leg pain reduction >= ``success_threshold``
          and positive GPE and no additional intervention before the visit.
        - ``visit_missed_{t}w`` (bool): the visit was missed; every outcome above is then
          missing (NaN / ``pd.NA``).

        Column order: the outcomes in :data:`OUTCOMES` order, then the two flags.

    Raises
    ------
    ValueError
        If a required column is absent or ``success_threshold`` is not a positive number.
    """
    if not isinstance(success_threshold, int | float) or not success_threshold > 0:
        raise ValueError(f"success_threshold must be a positive number, got {success_threshold!r}")
    reg = _indexed(registry)
    needed = ["baseline_leg_pain", "baseline_back_pain", "baseline_odi", "baseline_mme",
              "baseline_analgesic_use"]
    needed += [f"{f}_{t}w" for t in TIMEPOINTS for f in FOLLOW_UP_FIELDS]
    needed += [f"visit_missed_{t}w" for t in TIMEPOINTS]
    _require(reg, needed)
    out = {}
    base_mme = _float(reg["baseline_mme"])
    base_analgesic = _bool(reg["baseline_analgesic_use"])
    for t in TIMEPOINTS:
        missed = _bool(reg[f"visit_missed_{t}w"]).fillna(False).astype(bool)
        leg = _float(reg["baseline_leg_pain"]) - _float(reg[f"leg_pain_{t}w"])
        back = _float(reg["baseline_back_pain"]) - _float(reg[f"back_pain_{t}w"])
        odi = _float(reg["baseline_odi"]) - _float(reg[f"odi_{t}w"])
        mme = _float(reg[f"mme_{t}w"])
        on_opioid = base_mme > 0
        opioid_cut = pd.Series(pd.NA, index=reg.index, dtype="boolean")
        opioid_cut[on_opioid & mme.notna()] = (
            mme <= (1 - ANALGESIC_REDUCTION_FRACTION) * base_mme
        )[on_opioid & mme.notna()]
        opioid_cut[base_mme.notna() & ~on_opioid] = False
        stopped = base_analgesic & ~_bool(reg[f"analgesic_use_{t}w"])
        analgesic = opioid_cut | stopped
        sat = _float(reg[f"satisfaction_{t}w"])
        satisfied = _bool(pd.Series(np.where(sat.isna(), np.nan, sat >= 4), index=reg.index))
        gpe = _float(reg[f"gpe_{t}w"])
        positive_gpe = _bool(pd.Series(np.where(gpe.isna(), np.nan, gpe <= 2), index=reg.index))
        pain_ok = _bool(pd.Series(np.where(leg.isna(), np.nan, leg >= success_threshold),
                                  index=reg.index))
        no_extra = ~_bool(reg[f"additional_intervention_{t}w"])
        positive = pain_ok & positive_gpe & no_extra
        values = {
            "leg_pain_reduction": leg,
            "back_pain_reduction": back,
            "odi_reduction": odi,
            "analgesic_reduction": analgesic,
            "satisfied": satisfied,
            "positive_gpe": positive_gpe,
            "positive_outcome": positive,
        }
        for name, series in values.items():
            series = series.copy()
            if series.dtype == "boolean":
                series[missed] = pd.NA
            else:
                series[missed] = np.nan
            out[f"{name}_{t}w"] = series
        out[f"visit_missed_{t}w"] = missed
    columns = [s.column for s in OUTCOMES] + [f"visit_missed_{t}w" for t in TIMEPOINTS]
    frame = pd.DataFrame(out, index=reg.index)[columns]
    frame.index.name = "patient_id"
    return frame


def describe_missing_rule(missing: str) -> str:
    """One-line description of a missing-follow-up rule, printed under every outcome table."""
    _check_rule(missing)
    return f"Missing follow-up: {_MISSING_TEXT[missing]}."


def _check_rule(missing: str) -> None:
    if missing not in MISSING_RULES:
        raise ValueError(f"missing must be one of {MISSING_RULES}, got {missing!r}")


def _no_change_values(reg: pd.DataFrame) -> dict[str, pd.Series]:
    idx = reg.index
    return {
        "leg_pain": _float(reg["baseline_leg_pain"]),
        "back_pain": _float(reg["baseline_back_pain"]),
        "odi": _float(reg["baseline_odi"]),
        "gpe": pd.Series(4.0, index=idx),
        "satisfaction": pd.Series(3.0, index=idx),
        "analgesic_use": _bool(reg["baseline_analgesic_use"]),
        "mme": _float(reg["baseline_mme"]),
        "additional_intervention": pd.Series(False, index=idx, dtype="boolean"),
    }


def apply_missing_rule(registry: pd.DataFrame, missing: str = "complete_case") -> pd.DataFrame:
    """Fill missing follow-up values by a single-imputation rule.

    Parameters
    ----------
    registry
        Registry table (``patient_id`` index or column) with the follow-up columns.
    missing
        ``"complete_case"`` (returned unchanged, as a copy), ``"locf"`` or ``"bocf"`` (see the
        module docstring). ``"mice"`` is rejected here: multiple imputation yields several data
        sets and is run by :func:`esi.compare.compare_matched`.

    Returns
    -------
    pandas.DataFrame
        A copy indexed by ``patient_id`` with the same columns; for the filling rules the
        follow-up fields ``{field}_{t}w`` of :data:`FOLLOW_UP_FIELDS` are filled,
        ``visit_missed_{t}w`` is set False where a missed visit was filled, and a boolean column
        ``imputed_{t}w`` is added (True where any value of that visit was filled).

    Raises
    ------
    ValueError
        For an unknown rule (naming ``missing``) or for ``"mice"``.
    """
    _check_rule(missing)
    if missing == "mice":
        raise ValueError(
            "missing='mice' cannot be applied to a single table: it makes m imputed data sets; "
            "pass missing='mice' to esi.compare.compare_matched (or use mice_imputations)"
        )
    reg = _indexed(registry)
    if missing == "complete_case":
        return reg
    _require(reg, [f"{f}_{t}w" for t in TIMEPOINTS for f in FOLLOW_UP_FIELDS])
    baseline = _no_change_values(reg)
    previous: dict[str, pd.Series] = {}
    for t in TIMEPOINTS:
        imputed = pd.Series(False, index=reg.index)
        for field in FOLLOW_UP_FIELDS:
            col = f"{field}_{t}w"
            is_bool = field in ("analgesic_use", "additional_intervention")
            current = _bool(reg[col]) if is_bool else _float(reg[col])
            fill = baseline[field]
            if missing == "locf" and field in previous:
                fill = previous[field].where(previous[field].notna(), fill)
            gap = current.isna()
            imputed |= gap & fill.notna()
            filled = current.where(~gap, fill)
            reg[col] = filled.astype("boolean") if is_bool else filled.astype(float)
            previous[field] = reg[col]
        days = f"additional_intervention_days_{t}w"
        if missing == "locf" and days in reg.columns and t != TIMEPOINTS[0]:
            prev_days = f"additional_intervention_days_{TIMEPOINTS[0]}w"
            if prev_days in reg.columns:
                reg[days] = reg[days].where(reg[days].notna() | ~imputed, reg[prev_days])
        flag = f"visit_missed_{t}w"
        if flag in reg.columns:
            reg[flag] = _bool(reg[flag]).fillna(False).astype(bool) & ~imputed
        reg[f"imputed_{t}w"] = imputed.astype(bool)
    return reg


_MICE_PREDICTORS = (
    "near_normal",
    "age",
    "baseline_leg_pain",
    "baseline_back_pain",
    "baseline_odi",
    "baseline_mme",
)


def mice_imputations(
    registry: pd.DataFrame,
    *,
    m: int = 20,
    random_state: int | np.random.Generator | None = None,
    burn_in: int = 10,
    between: int = 5,
) -> list[pd.DataFrame]:
    """Multiply impute the missing follow-up values by chained equations.

    Uses statsmodels ``MICEData`` with predictive mean matching (so imputed values are observed
    values of the same variable: GPE stays on its 1-7 scale, pain on its 0.5 grid). The model
    includes every follow-up field at both visits (booleans as 0/1) and the predictors
    ``near_normal``, ``age``, baseline pain, ODI and MME (those present). After ``burn_in``
    cycles an imputed data set is taken every ``between`` cycles.

    Parameters
    ----------
    registry
        Registry table; rows with ``near_normal`` missing are ignored by the caller, not here.
    m
        Number of imputed data sets (>= 2).
    random_state
        Seed or numpy Generator; the same seed gives the same imputations.
    burn_in, between
        Chained-equation cycles before the first and between successive data sets.

    Returns
    -------
    list of pandas.DataFrame
        m copies of the registry (indexed by ``patient_id``) with follow-up fields filled,
        ``visit_missed_{t}w`` set False, and ``imputed_{t}w`` flags as in
        :func:`apply_missing_rule`.
    """
    from statsmodels.imputation.mice import MICEData

    if not isinstance(m, int | np.integer) or m < 2:
        raise ValueError(f"m must be an integer >= 2, got {m!r}")
    reg = _indexed(registry)
    rng = np.random.default_rng(random_state)
    follow = [f"{f}_{t}w" for t in TIMEPOINTS for f in FOLLOW_UP_FIELDS]
    _require(reg, follow)
    cols = [c for c in _MICE_PREDICTORS if c in reg.columns] + follow
    data = pd.DataFrame({c: _float(reg[c]) if reg[c].dtype != bool else reg[c].astype(float)
                         for c in cols})
    for c in cols:
        if data[c].dtype == object or str(data[c].dtype) == "boolean":
            data[c] = _bool(reg[c]).astype("Float64").to_numpy(float, na_value=np.nan)
    for flag in (f"visit_missed_{t}w" for t in TIMEPOINTS):
        if flag in reg.columns:  # a missed visit's stray values are not data
            t = flag.removeprefix("visit_missed_")
            missed = _bool(reg[flag]).fillna(False).astype(bool).to_numpy()
            for f in FOLLOW_UP_FIELDS:
                data.loc[missed, f"{f}_{t}"] = np.nan
    original_missing = data.isna()
    constant = [c for c in cols if data[c].nunique() == 1]
    for c in constant:  # no variation to model: a missing value takes the only value seen
        data[c] = data[c].fillna(data[c].dropna().iloc[0])
    data_constant = {c: float(data[c].iloc[0]) for c in constant}
    usable = [c for c in cols if data[c].nunique() > 1]
    data = data[usable]
    data.columns = [str(c) for c in data.columns]
    data.index = pd.RangeIndex(len(data))
    if data.isna().all(axis=1).any():
        raise ValueError("registry: a patient has no value in any imputation variable")
    to_impute = [c for c in follow if c in usable and data[c].isna().any()]
    missing_mask = data.isna()
    for c in constant:
        missing_mask[c] = original_missing[c].to_numpy()
    if not to_impute:
        datasets = [data.copy() for _ in range(m)]
    else:
        imp = MICEData(data, rng=rng)
        imp.update_all(burn_in)
        datasets = []
        for _ in range(m):
            imp.update_all(between)
            datasets.append(imp.data.copy())
    result = []
    for completed in datasets:
        out = reg.copy()
        for t in TIMEPOINTS:
            imputed = np.zeros(len(out), dtype=bool)
            for f in FOLLOW_UP_FIELDS:
                col = f"{f}_{t}w"
                if col in completed.columns:
                    values = completed[col].to_numpy(float)
                elif col in constant:
                    values = np.full(len(out), data_constant[col])
                else:
                    continue
                imputed |= missing_mask[col].to_numpy() & ~np.isnan(values)
                if f in ("analgesic_use", "additional_intervention"):
                    out[col] = pd.array(
                        [pd.NA if np.isnan(v) else bool(v > 0.5) for v in values],
                        dtype="boolean",
                    )
                else:
                    out[col] = values
            flag = f"visit_missed_{t}w"
            if flag in out.columns:
                out[flag] = _bool(out[flag]).fillna(False).astype(bool).to_numpy() & ~imputed
            out[f"imputed_{t}w"] = imputed
        result.append(out)
    return result
