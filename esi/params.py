"""Run parameters: one set of names shared by ``params/*.yaml``, every notebook's
``parameters`` cell, ``esi run`` and ``esi sweep``.

:data:`DEFAULTS` is the analysis that reproduces the paper; ``params/default.yaml`` states the
same values (a test keeps them equal). :func:`load_params` reads a YAML file, fills defaults and
checks every value, raising ``ValueError`` naming the file, the parameter and the rule.

:func:`read_yaml` is the one reader of the project's YAML inputs (parameter, grid and mapping
files): UTF-8 only, and no anchor or alias (``&name`` / ``*name``) in parameter and grid files,
so that no file can expand into a huge value ("billion laughs"); a mistake is a
:class:`YamlFileError` naming the file, the line and the rule.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from esi.text import printable

__all__ = ["DEFAULTS", "CHOICES", "MICE_TESTS", "MICE_BINARY_TESTS", "SENSITIVITY_DEFAULTS",
           "MULTIVERSE_GRID", "MULTIVERSE_PARAMS", "NOTEBOOK_EXTRA", "load_params",
           "check_params", "ParameterError", "YamlFileError", "read_yaml", "NoAliasLoader",
           "FlatAliasLoader"]

#: Default parameters (the paper's analysis as reconstructed; see README "Analytic choices").
DEFAULTS: dict[str, Any] = {
    "data_path": "data/synthetic/esi_registry_synthetic.csv",
    "mapping": None,
    "sheet": None,
    "run_dir": "",
    "synthetic": None,
    "seed": 2025,
    "covariates": ["age", "sex", "bmi", "pain_duration_months", "baseline_leg_pain",
                   "baseline_back_pain", "baseline_odi", "opioid_use", "depression_anxiety"],
    "distance": "logit",
    "mahvars": [],
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
    "distance": ("logit", "propensity", "mahalanobis"),
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


class YamlFileError(ParameterError):
    """A YAML input cannot be read: ``"<file>: line L, column C: <rule>"``.

    Attributes
    ----------
    path : str
        The file.
    rule : str
        What is wrong, in words.
    line, column : int or None
        Where (1-based; ``None`` for a problem of the whole file).
    """

    def __init__(self, path: str | os.PathLike[str], rule: str, line: int | None = None,
                 column: int | None = None):
        self.path, self.rule, self.line, self.column = str(path), rule, line, column
        super().__init__(f"{printable(self.path)}: {self.where + ': ' if self.where else ''}"
                         f"{printable(rule)}")

    @property
    def where(self) -> str:
        """``"line L, column C"``, ``"line L"`` or ``""``."""
        if self.line is None:
            return ""
        return f"line {self.line}" + (f", column {self.column}" if self.column else "")


class _Refused(yaml.YAMLError):
    def __init__(self, mark: yaml.Mark, problem: str):
        super().__init__(problem)
        self.problem_mark, self.problem, self.context = mark, problem, None


class _AliasGuard:
    """Composer rule on anchors (``&name``) and aliases (``*name``) of a YAML loader.

    ``alias_budget = None`` refuses every anchor and alias. A number allows *flat* aliases
    only: an alias may not stand inside an anchored value (so aliases never nest, which is
    what makes "billion laughs" files expand exponentially, and no value refers to itself),
    and all aliases together may repeat at most ``alias_budget`` YAML nodes.
    """

    alias_budget: int | None = None

    def __init__(self, stream: str) -> None:
        super().__init__(stream)  # type: ignore[call-arg]
        self._open_anchors: list[str] = []
        self._anchor_sizes: dict[str, int] = {}
        self._repeated = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        event = self.peek_event()  # type: ignore[attr-defined]
        anchor = getattr(event, "anchor", None)
        if isinstance(event, yaml.AliasEvent):
            if self.alias_budget is None:
                raise _Refused(event.start_mark, f"the alias *{anchor} is refused: parameter "
                               "and grid files may not use YAML anchors and aliases (&name, "
                               "*name), which can expand into huge values; write the values "
                               "out")
            if self._open_anchors:
                raise _Refused(event.start_mark, f"the alias *{anchor} stands inside the "
                               f"anchored value &{self._open_anchors[-1]}; aliases may not "
                               "nest (nested aliases can expand into huge values)")
            self._repeated += self._anchor_sizes.get(anchor, 0)
            if self._repeated > self.alias_budget:
                raise _Refused(event.start_mark, f"the aliases repeat more than "
                               f"{self.alias_budget} values; write the values out")
            return super().compose_node(parent, index)  # type: ignore[misc]
        if anchor is None:
            return super().compose_node(parent, index)  # type: ignore[misc]
        if self.alias_budget is None:
            raise _Refused(event.start_mark, f"the anchor &{anchor} is refused: parameter and "
                           "grid files may not use YAML anchors and aliases (&name, *name), "
                           "which can expand into huge values; write the values out")
        self._open_anchors.append(anchor)
        try:
            node = super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._open_anchors.pop()
        self._anchor_sizes[anchor] = _node_count(node)
        return node


def _node_count(node: yaml.Node) -> int:
    if isinstance(node, yaml.SequenceNode):
        return 1 + sum(_node_count(n) for n in node.value)
    if isinstance(node, yaml.MappingNode):
        return 1 + sum(_node_count(k) + _node_count(v) for k, v in node.value)
    return 1


class NoAliasLoader(_AliasGuard, yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses every anchor and alias (parameter and grid files)."""


class FlatAliasLoader(_AliasGuard, yaml.BaseLoader):
    """``yaml.BaseLoader`` (every scalar a string) that allows flat aliases only, repeating
    at most 10,000 YAML nodes in all (mapping files, whose code lists may be shared)."""

    alias_budget = 10_000


def read_yaml(path: str | os.PathLike[str], what: str = "parameter file",
              loader: type = NoAliasLoader) -> Any:
    """Read one YAML file: UTF-8 text, parsed with ``loader`` (default: no anchors/aliases).

    Parameters
    ----------
    path
        The file.
    what
        What the file is, for messages ("parameter file", "grid file", "mapping file").
    loader
        A PyYAML loader class; :class:`NoAliasLoader` or :class:`FlatAliasLoader` (or a
        subclass of either).

    Returns
    -------
    object
        The document (``None`` for an empty file).

    Raises
    ------
    YamlFileError
        The file cannot be read, is not UTF-8 (the line of the first bad byte), is not valid
        YAML, or holds a refused anchor or alias (line and column of the mark).
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise YamlFileError(p, f"cannot read the {what} ({exc.strerror})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = data[exc.start: exc.end].hex(" ")
        raise YamlFileError(p, f"byte(s) {bad} are not UTF-8 text; save the {what} as UTF-8",
                            line, column) from None
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader/BaseLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        rule = problem if isinstance(exc, _Refused) else \
            f"not valid YAML: {problem}" + (f" ({context})" if context else "")
        raise YamlFileError(p, rule, None if mark is None else mark.line + 1,
                            None if mark is None else mark.column + 1) from None


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
        import difflib

        known = [*DEFAULTS, *extra]
        named = []
        for name in unknown:
            close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.75)
            named.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ParameterError(f"{source}: unknown parameter{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(named)}; known: {', '.join(known)}")
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
    for name in ("covariates", "exact", "mahvars"):
        if not isinstance(out[name], list) or not all(isinstance(c, str) for c in out[name]):
            raise bad(name, "must be a list of column names")
    if not out["covariates"]:
        raise bad("covariates", "must name at least one column")
    # Mahalanobis matching (esi.match): on the covariates (distance: mahalanobis, no propensity
    # score, so no caliper) or on mahvars within the caliper on the propensity score
    if out["distance"] == "mahalanobis":
        if out["caliper"] is not None:
            raise bad("caliper", "the caliper is a width on the propensity score, which "
                                 "distance: mahalanobis does not have; set caliper: null, or "
                                 "keep a propensity distance and give mahvars for Mahalanobis "
                                 "matching within the caliper")
        if out["mahvars"]:
            raise bad("mahvars", "distance: mahalanobis matches on the covariates; mahvars "
                                 "is for Mahalanobis matching within a propensity-score caliper "
                                 "(distance: logit or propensity)")
    if (out["distance"] == "mahalanobis" or out["mahvars"]) and out["method"] != "nearest":
        raise bad("method", "Mahalanobis matching (distance: mahalanobis, or mahvars) is "
                            "greedy nearest-neighbour matching: use method: nearest")
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
    if out["sheet"] is not None and (not isinstance(out["sheet"], str) or not out["sheet"]):
        raise bad("sheet", "must be the name of a sheet of the Excel registry, or null for "
                           "the first sheet")
    if not isinstance(out["data_path"], str) or not out["data_path"]:
        raise bad("data_path", "must be a file path")
    from esi.schema import SCHEMA

    for name in ("covariates", "exact", "mahvars"):
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
    data = read_yaml(p, "parameter file") or {}
    if not isinstance(data, dict):
        raise ParameterError(f"{p}: must hold 'name: value' lines, found a "
                             f"{type(data).__name__}")
    data.update(overrides or {})
    return check_params(data, source=str(p), extra=extra)
