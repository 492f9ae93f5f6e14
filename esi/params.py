"""Run parameters: one set of names shared by ``params/*.yaml``, every notebook's
``parameters`` cell, ``esi run`` and ``esi sweep``.

:data:`DEFAULTS` is the analysis that reproduces the paper; ``params/default.yaml`` states the
same values (a test keeps them equal). :func:`load_params` reads a YAML file, fills defaults and
checks every value, raising ``ValueError`` naming the file, the parameter and the rule.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DEFAULTS", "CHOICES", "MICE_TESTS", "MICE_BINARY_TESTS", "SENSITIVITY_DEFAULTS",
           "MULTIVERSE_GRID", "MULTIVERSE_PARAMS", "NOTEBOOK_EXTRA", "load_params",
           "check_params", "ParameterError"]

#: Default parameters (the paper's analysis as reconstructed; see README "Analytic choices").
DEFAULTS: dict[str, Any] = {
    "data_path": "data/synthetic/esi_registry_synthetic.csv",
    "mapping": None,
    "run_dir": "",
    "synthetic": None,
    "seed": 2025,
    "covariates": ["age", "sex", "bmi", "pain_duration_months", "baseline_leg_pain",
                   "baseline_back_pain", "baseline_odi", "opioid_use", "depression_anxiety"],
    "distance": "logit",
    "method": "nearest",
    "ratio": 1,
    "caliper": 0.2,
    "replace": False,
    "exact": [],
    "missing": "complete_case",
    "test": "mann_whitney",
    "binary_test": "fisher_less",
    "success_threshold": 2.0,
    "alpha": 0.05,
}

#: Allowed values of the categorical parameters.
CHOICES: dict[str, tuple[Any, ...]] = {
    "distance": ("logit", "propensity"),
    "method": ("nearest", "optimal"),
    "missing": ("complete_case", "locf", "bocf", "mice"),
    "test": ("welch", "student", "mann_whitney", "paired_t", "wilcoxon"),
    "binary_test": ("fisher", "fisher_less", "fisher_greater", "chi2", "chi2_yates",
                    "mcnemar"),
}


#: Tests whose results multiple imputation can pool (see :func:`esi.compare.compare_matched`).
MICE_TESTS = ("welch", "student", "paired_t")
MICE_BINARY_TESTS = ("chi2", "chi2_yates")

#: Notebook 04's own parameters and their defaults (:mod:`esi.sensitivity` reads them here):
#: the top and step of the Rosenbaum ``Gamma`` grid (1, 1.1, 1.2, ...), the simulated studies
#: per power estimate, and the equivalence margin in NRS points - 1.5 points, the minimal
#: important change in pain intensity of the consensus of Ostelo et al., Spine
#: 2008;33:90-94 (15 on a 0-100 scale) for low back pain.
SENSITIVITY_DEFAULTS: dict[str, Any] = {
    "gamma_max": 3.0,
    "gamma_step": 0.1,
    "power_n_sim": 2000,
    "tost_margin": 1.5,
}

#: The multiverse's default grid beside the covariate sets (run parameters
#: ``multiverse_<name>``; :data:`esi.sensitivity.DEFAULT_GRID`).
MULTIVERSE_GRID: dict[str, tuple] = {
    "distance": ("propensity", "logit"),
    "method": ("nearest", "optimal"),
    "ratio": (1, 2, 3),
    "caliper": (None, 0.1, 0.2, 0.5),
    "replace": (False, True),
    "missing": ("complete_case", "locf", "bocf"),
    "test": ("welch", "student", "mann_whitney", "paired_t", "wilcoxon"),
}

#: Names of the run parameters read by :func:`esi.sensitivity.run_multiverse` beyond the
#: common ones.
MULTIVERSE_PARAMS = ("multiverse_covariate_sets", "multiverse_timepoint", "multiverse_workers",
                     *(f"multiverse_{k}" for k in MULTIVERSE_GRID))

#: Parameter names a run may carry beyond :data:`DEFAULTS` (the notebooks' own). Defined
#: here, without importing the analysis modules, so that ``esi run`` checks its parameters
#: before anything heavy is imported.
NOTEBOOK_EXTRA: tuple[str, ...] = (*SENSITIVITY_DEFAULTS, *MULTIVERSE_PARAMS)


class ParameterError(ValueError):
    """A parameter value breaks its rule; the message names the source, parameter and rule."""


def check_params(params: dict[str, Any], source: str = "parameters",
                 extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Fill defaults and check every parameter.

    Parameters
    ----------
    params
        Parameter names and values (a subset of :data:`DEFAULTS`, plus ``extra`` names).
    source
        Where the values came from, for error messages (a file name).
    extra
        Further names accepted as they are (e.g. sensitivity-notebook parameters).

    Returns
    -------
    dict
        A new dict with every :data:`DEFAULTS` key.

    Raises
    ------
    ParameterError
        For an unknown name or a value outside its rule.
    """
    unknown = sorted(set(params) - set(DEFAULTS) - set(extra))
    if unknown:
        raise ParameterError(f"{source}: unknown parameter(s) {', '.join(unknown)}; known: "
                             f"{', '.join(DEFAULTS)}")
    out = {**DEFAULTS, **params}

    def bad(name: str, rule: str) -> ParameterError:
        return ParameterError(f"{source}: parameter {name!r} = {out[name]!r}: {rule}")

    for name, allowed in CHOICES.items():
        if out[name] not in allowed:
            raise bad(name, f"must be one of {', '.join(map(str, allowed))}")
    if not isinstance(out["ratio"], int) or isinstance(out["ratio"], bool) or out["ratio"] < 1:
        raise bad("ratio", "must be a whole number of 1 or more")
    if out["caliper"] is not None and (isinstance(out["caliper"], bool) or
                                       not isinstance(out["caliper"], int | float)
                                       or out["caliper"] <= 0):
        raise bad("caliper", "must be a positive number, or null for no caliper")
    if not isinstance(out["replace"], bool):
        raise bad("replace", "must be true or false")
    if out["synthetic"] is not None and not isinstance(out["synthetic"], bool):
        raise bad("synthetic", "must be true, false, or null (null: decided by the data, "
                               "synthetic only for a registry esi can prove it generated)")
    if not isinstance(out["seed"], int) or isinstance(out["seed"], bool) or out["seed"] < 0:
        raise bad("seed", "must be a non-negative whole number")
    for name in ("covariates", "exact"):
        if not isinstance(out[name], list) or not all(isinstance(c, str) for c in out[name]):
            raise bad(name, "must be a list of column names")
    if not out["covariates"]:
        raise bad("covariates", "must name at least one column")
    if not isinstance(out["success_threshold"], int | float) or out["success_threshold"] <= 0:
        raise bad("success_threshold", "must be a positive number of NRS points")
    if not isinstance(out["alpha"], float) or not 0 < out["alpha"] < 1:
        raise bad("alpha", "must be a number between 0 and 1")
    if out["missing"] == "mice":
        if out["test"] not in MICE_TESTS:
            raise bad("test", "multiple imputation (missing: mice) pools only "
                              f"{', '.join(MICE_TESTS)} (Rubin's rules)")
        if out["binary_test"] not in MICE_BINARY_TESTS:
            raise bad("binary_test", "multiple imputation (missing: mice) pools only "
                                     f"{', '.join(MICE_BINARY_TESTS)} (D2 rule)")
    if out["mapping"] is not None and (not isinstance(out["mapping"], str)
                                       or not out["mapping"]):
        raise bad("mapping", "must be the path of a YAML column mapping, or null")
    if not isinstance(out["data_path"], str) or not out["data_path"]:
        raise bad("data_path", "must be a file path")
    from esi.schema import SCHEMA

    for name in ("covariates", "exact"):
        for c in out[name]:
            if c not in SCHEMA or c == "patient_id":
                raise bad(name, f"{c!r} is not a registry column (see data/README.md)")
    return out


def load_params(path: str | os.PathLike[str] | None = None,
                overrides: dict[str, Any] | None = None,
                extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a YAML parameter file, apply ``overrides``, fill defaults and check.

    Parameters
    ----------
    path
        YAML file of ``name: value`` lines; ``None`` reads ``params/default.yaml``.
    overrides
        Values that win over the file (e.g. ``--data`` on the command line).
    extra
        Further accepted names (see :func:`check_params`).

    Returns
    -------
    dict
        The checked parameters.
    """
    from esi.paths import DEFAULT_PARAMS, resolve

    p = resolve(path) if path is not None else DEFAULT_PARAMS
    try:
        text = Path(p).read_text(encoding="utf-8")
    except OSError as exc:
        raise ParameterError(f"{p}: cannot read the parameter file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ParameterError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ParameterError(f"{p}: must hold 'name: value' lines, found a "
                             f"{type(data).__name__}")
    data.update(overrides or {})
    return check_params(data, source=str(p), extra=extra)
