"""The analysis as a pipeline: stages shared by the notebooks, and ``esi run``.

Two halves:

* :class:`Analysis` is what a notebook holds. It takes the checked run parameters and gives the
  stages of the study - the registry, the cohort, the match, the outcome comparisons - each
  computed once per run folder and handed to the next notebook through Parquet and JSON files
  in ``<run folder>/state/`` (:mod:`esi.handover`; keyed by the data's SHA-256, the
  parameters the stage depends on and the version of the code), never through memory and
  never as pickles. A notebook run on its own (JupyterLab, the papermill CLI) computes
  whatever stage it does not find.
* :func:`run` executes the numbered notebooks with papermill into a temporary folder, renders
  each to HTML without code, writes ``index.html`` and ``provenance.json``, checks the tidy result
  files, and only then renames the folder into place. A failing or interrupted run leaves no
  folder that looks complete, and no process behind (:mod:`esi.processes`).

The run folder of a notebook is its ``run_dir`` parameter; when that is empty, the
``ESI_RUN_DIR`` environment variable (set by ``esi run`` and by the nbval replay), else one
folder per parameter set, ``reports/interactive/<key>/`` (:func:`interactive_folder`), whose
``params.json`` says which data and parameters made every file in it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from esi.io import (
    atomic_write,
    partial_folder,
    publish_folder,
    read_registry,
    remove_stale_partials,
    sha256_of,
)
from esi.outputs import OutputRefused, check_output_target, is_reports_index
from esi.pages import finish_report, notebook_heading, reports_index_page, run_index_page
from esi.params import (
    DEFAULTS,
    NOTEBOOK_EXTRA,
    SENSITIVITY_DEFAULTS,
    ParameterError,
    check_params,
    load_params,
)
from esi.paths import (
    DEFAULT_PARAMS,
    KERNEL_NAME,
    NOTEBOOKS_DIR,
    PROJECT_ROOT,
    REPORTS_DIR,
    resolve,
)

__all__ = [
    "NOTEBOOKS",
    "RESULT_FILES",
    "Analysis",
    "RunFailed",
    "run",
    "run_cli",
    "resolve_run_dir",
    "interactive_folder",
    "notebook_extra",
    "notebook_parameters",
    "is_synthetic",
    "write_reports_index",
]

#: The notebooks, in reading (and execution) order.
NOTEBOOKS: tuple[str, ...] = (
    "01_cohort_definition",
    "02_matching",
    "03_outcomes",
    "04_sensitivity",
    "05_reproduction_audit",
)

#: Notebooks that ``esi run`` starts before the others when it runs several at once: the
#: sensitivity notebook takes about twice as long as any other, so with two workers one runs
#: it (then 05) while the other runs 01-03 in reading order, each finding its predecessors'
#: hand-over files. A notebook that starts early computes the stages it needs itself.
START_FIRST: tuple[str, ...] = ("04_sensitivity",)

#: Tidy result files every complete run folder holds (the contract of DESIGN.md).
RESULT_FILES: tuple[str, ...] = (
    "matched_pairs.csv",
    "balance.csv",
    "outcomes.csv",
    "reproduction.csv",
    "provenance.json",
)

#: Packages whose versions are recorded in provenance.json.
PROVENANCE_PACKAGES = ("numpy", "pandas", "scipy", "statsmodels", "pingouin", "matplotlib",
                       "seaborn", "papermill", "nbconvert", "nbclient", "ipykernel", "pyyaml")

#: The last registry read by an in-memory Analysis (persist=False), keyed by path, SHA-256,
#: mapping, sheet and synthetic flag: the points of a sweep share one read per process.
_REGISTRIES: dict[tuple[Any, ...], pd.DataFrame] = {}

#: Unpaired counterpart of each paired test (comparisons without pairs).
UNPAIRED = {"paired_t": "welch", "wilcoxon": "mann_whitney", "mcnemar": "fisher"}

#: Real data: counts below this are suppressed in every table and figure (esi.disclosure).
SMALL_CELL_THRESHOLD = 5

_COHORT_KEYS = ("data_path", "mapping", "sheet")

_INTERACTIVE_NOTE = ("Every file in this folder was made by notebooks run interactively with "
                     "these parameters on the data file with this SHA-256 (esi.pipeline."
                     "interactive_folder); another parameter set gets another folder.")
_MATCH_KEYS = _COHORT_KEYS + ("covariates", "distance", "mahvars", "method", "ratio",
                              "caliper", "replace", "exact", "seed")


class RunFailed(RuntimeError):
    """A notebook of ``esi run`` raised; the message names the notebook and the error."""


def resolve_run_dir(run_dir: str | os.PathLike[str] | None,
                    params: dict[str, Any] | None = None) -> Path:
    """The run folder for a notebook's ``run_dir`` parameter (see the module docstring).

    Parameters
    ----------
    run_dir
        The parameter; used when not empty.
    params
        The checked run parameters: when neither ``run_dir`` nor ``ESI_RUN_DIR`` is set, the
        folder is :func:`interactive_folder` of them (without them, the folder holding the
        interactive folders, ``reports/interactive``).
    """
    if run_dir:
        return resolve(run_dir)
    env = os.environ.get("ESI_RUN_DIR")
    if env:
        return resolve(env)
    if params is None:
        return REPORTS_DIR / "interactive"
    return interactive_folder(params)[0]


#: Parameters that change how a result is computed, not what it is (left out of the
#: interactive folder's key).
_HOW_PARAMS = ("run_dir", "multiverse_workers")


def interactive_folder(params: dict[str, Any], data_sha256: str | None = None
                       ) -> tuple[Path, dict[str, Any]]:
    """The run folder of notebooks run interactively (no ``run_dir``, no ``ESI_RUN_DIR``).

    Each parameter set gets its own folder, ``reports/interactive/<key>/``, so that files made
    with different parameters never sit side by side: the key is a hash of the data file's
    SHA-256 and of every parameter that changes a result (the run parameters, with
    ``data_path`` and ``mapping`` resolved - shown relative to the project when inside it -,
    and notebook parameters such as ``power_n_sim``
    when they differ from their defaults).

    Returns
    -------
    tuple of (pathlib.Path, dict)
        The folder, and what its ``params.json`` records: ``data_sha256`` and
        ``parameters``.
    """
    from esi.paths import resolve as _resolve

    parts: dict[str, Any] = {}
    for k, v in params.items():
        if k in _HOW_PARAMS or (k not in DEFAULTS and SENSITIVITY_DEFAULTS.get(k, ...) == v):
            continue
        if k in ("data_path", "mapping") and v:
            v = _display_path(_resolve(v))  # relative to the project when inside it
        parts[k] = v
    sha = data_sha256 or sha256_of(resolve(params["data_path"]))
    record = {"data_sha256": sha, "parameters": parts}
    return REPORTS_DIR / "interactive" / _key(record), record


def is_synthetic(params: dict[str, Any]) -> bool:
    """Whether the data of a run are synthetic (row-level output allowed), decided by the data.

    Synthetic exactly when the registry is one esi can prove it generated
    (:func:`esi.synthetic.is_generated`: the header names a seed and the file's SHA-256 is that
    of what ``esi synth`` writes for it) and no mapping is applied. ``synthetic: false`` in the
    parameters treats even such a file as real; ``synthetic: true`` only asserts it: on any
    other file it is refused. No flag or path ever turns the protections off.

    Raises
    ------
    esi.params.ParameterError
        ``synthetic: true`` for a registry esi did not generate.
    """
    flag = params.get("synthetic")
    if flag is False:
        return False
    from esi.synthetic import is_generated

    path = resolve(params["data_path"])
    generated = params.get("mapping") is None and path.is_file() and is_generated(path)
    if flag is True and not generated:
        raise ParameterError(
            f"synthetic: true, but {path} is not a registry that esi generated (its first line "
            "must be the header `esi synth` writes, and its bytes what `esi synth --seed SEED` "
            "writes, read without a mapping); a real registry always gets the real-data "
            "protections: remove `synthetic` (or --synthetic)")
    return generated


#: Names IPython itself puts in a notebook's namespace (besides names starting with "_").
_IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython"})


def _plain_data(value: Any) -> bool:
    """Whether ``value`` is what a parameter can be: ``None``, a bool, number or string, or a
    list, tuple or string-keyed dict of such values."""
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple):
        return all(_plain_data(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_data(v) for k, v in value.items())
    return False


def notebook_parameters(notebook: str | os.PathLike[str]) -> tuple[str, ...]:
    """The names the ``parameters`` cell of ``notebook`` assigns, in order (what ``esi run``
    passes it; papermill warns about any other name)."""
    import ast

    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "parameters" in cell["metadata"].get("tags", []):
            tree = ast.parse("".join(cell["source"]))
            return tuple(t.id for node in tree.body if isinstance(node, ast.Assign)
                         for t in node.targets if isinstance(t, ast.Name))
    return ()


def _key(parts: dict[str, Any]) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Analysis:
    """The stages of one analysis, for one set of parameters and one run folder.

    Parameters
    ----------
    params
        Run parameters (checked with :func:`esi.params.check_params`; unknown names raise).
    extra
        Names of further notebook parameters allowed in ``params`` (e.g. sensitivity settings).
    persist
        Hand stages over through ``state/`` files of the run folder (notebooks); ``False``
        keeps them in memory only (sweep points).

    Notes
    -----
    Each stage is computed at most once per run folder: its result is written as
    ``state/<stage>-<key>/`` (:func:`esi.handover.save`: Parquet tables and a JSON manifest,
    private to the user) where the key hashes the data file's SHA-256, the parameters the stage
    depends on and the version of the esi code (:func:`esi.handover.code_version`). A
    hand-over that does not parse or whose key parts differ is recomputed, never trusted;
    nothing in it is executed. Hand-overs are internal to one run folder; they are not a
    result format (the tidy CSV files are).
    """

    def __init__(self, params: dict[str, Any], extra: tuple[str, ...] = (),
                 persist: bool = True):
        self.params = check_params(dict(params), source="notebook parameters", extra=extra)
        self._run_dir: Path | None = None
        self.data_path = resolve(self.params["data_path"])
        self.synthetic = is_synthetic(self.params)
        #: Counts below this are shown as "<N" for real data; None for synthetic data.
        self.suppress_below: int | None = None if self.synthetic else SMALL_CELL_THRESHOLD
        self.persist = persist
        self._memo: dict[str, Any] = {}

    @classmethod
    def from_notebook(cls, namespace: Mapping[str, Any]) -> Analysis:
        """The analysis of a notebook, from its namespace (``Analysis.from_notebook(globals())``
        in the cell after the ``parameters`` cell).

        Every plain-data name of the namespace is taken as a parameter: ``None``, bools,
        numbers, strings, and lists and dicts of them, not starting with ``_`` and not
        IPython's own (``In``, ``Out``, ``exit``, ``quit``, ``get_ipython``); modules,
        functions, classes and other objects are not. So whatever papermill injected
        (``papermill nb.ipynb out.ipynb -p calliper 0.05``) is checked with the parameters
        cell's names, and a misspelt name stops the notebook with the message of ``esi run``
        (:func:`esi.params.check_params`) instead of running the defaults. A notebook
        parameter beyond :data:`esi.params.DEFAULTS` (:data:`esi.params.NOTEBOOK_EXTRA`) whose
        value is ``None`` means its default and is left out.

        Raises
        ------
        esi.params.ParameterError
            An unknown name or a value outside its rule.
        """
        params = {k: v for k, v in namespace.items()
                  if not k.startswith("_") and k not in _IPYTHON_NAMES and _plain_data(v)
                  and not (k in NOTEBOOK_EXTRA and v is None)}
        return cls(params, extra=NOTEBOOK_EXTRA)

    @property
    def run_dir(self) -> Path:
        """The run folder (:func:`resolve_run_dir`). An interactive folder
        (:func:`interactive_folder`) is created with its ``params.json`` on first use."""
        if self._run_dir is None:
            if self.params.get("run_dir") or os.environ.get("ESI_RUN_DIR"):
                self._run_dir = resolve_run_dir(self.params.get("run_dir"))
            else:
                folder, record = interactive_folder(self.params, self.data_sha256)
                if not (folder / "params.json").exists():
                    with atomic_write(folder / "params.json") as fh:
                        json.dump({**record, "note": _INTERACTIVE_NOTE}, fh, indent=2,
                                  sort_keys=True, default=str)
                        fh.write("\n")
                self._run_dir = folder
        return self._run_dir

    # --- hand-over ---------------------------------------------------------------------
    def state_key(self, name: str, keys: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
        """The hand-over key of stage ``name`` and the parts it hashes: the stage, the data's
        SHA-256, the parameters ``keys``, whether the data are synthetic, the code version
        (:func:`esi.handover.code_version`) and the hand-over format."""
        from esi.handover import FORMAT, code_version

        parts = {"stage": name, "data": self.data_sha256,
                 **{k: self.params[k] for k in keys}, "synthetic": self.synthetic,
                 "code": code_version(), "format": FORMAT}
        return _key(parts), parts

    def _stage(self, name: str, keys: tuple[str, ...], compute: Callable[[], Any]) -> Any:
        if name in self._memo:
            return self._memo[name]
        if not self.persist:
            self._memo[name] = compute()
            return self._memo[name]
        from esi.handover import HandoverError, load, private_folder, save

        key, parts = self.state_key(name, keys)
        folder = self.run_dir / "state" / f"{name}-{key}"
        try:
            private_folder(folder.parent)
        except HandoverError as exc:
            warnings.warn(f"{exc}; the {name} stage is kept in memory", stacklevel=3)
            self._memo[name] = compute()
            return self._memo[name]
        try:
            value = load(folder, parts)
        except HandoverError:  # absent, unreadable or not this key: computed again
            value = compute()
            try:
                why = "" if save(folder, value, parts) else "it does not read back identically"
            except HandoverError as exc:
                why = str(exc)
            except (TypeError, ValueError, OSError) as exc:
                why = f"{type(exc).__name__}: {exc}"
            if why:
                warnings.warn(f"the {name} stage is not handed over ({why}); each notebook "
                              "computes it again", stacklevel=3)
        self._memo[name] = value
        return value

    @property
    def data_sha256(self) -> str:
        """SHA-256 of the registry file's bytes."""
        if "sha" not in self._memo:
            if not self.data_path.exists():
                raise FileNotFoundError(f"data_path: no such registry file: {self.data_path}")
            self._memo["sha"] = sha256_of(self.data_path)
        return self._memo["sha"]

    # --- stages --------------------------------------------------------------------------
    def registry(self) -> pd.DataFrame:
        """The validated registry (:func:`esi.io.read_registry`). For real data, exact dates
        are reduced and patient ids pseudonymised first (:mod:`esi.deid`)."""
        def compute() -> pd.DataFrame:
            key = (str(self.data_path), self.data_sha256, self.params["mapping"],
                   self.params["sheet"], self.synthetic)
            if key in _REGISTRIES:  # sweep points in one process read the file once
                return _REGISTRIES[key].copy()
            reg = read_registry(self.data_path, mapping=self.params["mapping"],
                                sheet=self.params["sheet"])
            if not self.synthetic:
                from esi.deid import protect_registry

                reg = protect_registry(reg)
            if not self.persist:
                _REGISTRIES.clear()
                _REGISTRIES[key] = reg
                return reg.copy()
            return reg

        return self._stage("registry", _COHORT_KEYS, compute)

    def cohort(self):
        """Eligibility and imaging groups (:func:`esi.cohort.define_cohort`)."""
        from esi.cohort import define_cohort

        return self._stage("cohort", _COHORT_KEYS, lambda: define_cohort(self.registry()))

    def match(self):
        """The propensity match of the eligible patients (:func:`esi.matching.match`)."""
        from esi.matching import match

        p = self.params

        def compute():
            # canonical order, by pseudonymous patient id: match() breaks ties by row (as
            # MatchIt), and the result must not depend on the export's row order
            return match(self.cohort().eligible.sort_index(kind="stable"), "near_normal",
                         p["covariates"], method=p["method"], distance=p["distance"],
                         mahvars=p["mahvars"] or None, ratio=p["ratio"],
                         caliper=p["caliper"], replace=p["replace"],
                         exact=p["exact"] or None, random_state=p["seed"])

        return self._stage("match", _MATCH_KEYS, compute)

    def outcomes(self) -> pd.DataFrame:
        """Near-normal cases versus matched controls, every outcome and visit
        (:func:`esi.compare.compare_matched`)."""
        from esi.compare import compare_matched

        p = self.params
        keys = _MATCH_KEYS + ("test", "binary_test", "missing", "success_threshold", "alpha")
        return self._stage("outcomes", keys, lambda: compare_matched(
            self.cohort().eligible, self.match(), test=p["test"],
            binary_test=p["binary_test"], missing=p["missing"],
            success_threshold=p["success_threshold"], alpha=p["alpha"],
            random_state=p["seed"]))

    def larger_cohort(self) -> pd.DataFrame:
        """Near-normal cases versus every eligible patient with concordant pathology
        (:func:`esi.compare.compare_larger_cohort`). There are no pairs here, so a paired
        ``test`` is replaced by its unpaired counterpart (``paired_t`` -> ``welch``,
        ``wilcoxon`` -> ``mann_whitney``, ``mcnemar`` -> ``fisher``); the ``test`` column of
        the table says which test ran."""
        from esi.compare import compare_larger_cohort

        p = self.params
        return compare_larger_cohort(
            self.cohort().eligible, test=UNPAIRED.get(p["test"], p["test"]),
            binary_test=UNPAIRED.get(p["binary_test"], p["binary_test"]),
            missing=p["missing"], success_threshold=p["success_threshold"], alpha=p["alpha"],
            random_state=p["seed"])

    def historical(self) -> pd.DataFrame:
        """Near-normal cases versus historical cohorts known from published summary
        statistics (:func:`esi.compare.compare_historical`). Summary statistics cannot be
        multiply imputed: under ``missing: mice`` the cases enter as complete cases and the
        ``missing_rule`` column says so."""
        from esi.compare import compare_historical

        p = self.params
        cases = self.cohort().eligible
        return compare_historical(
            cases[cases["near_normal"] == 1],
            missing="complete_case" if p["missing"] == "mice" else p["missing"],
            success_threshold=p["success_threshold"], alpha=p["alpha"])

    # --- sensitivity (notebook 04) ------------------------------------------------------
    def per_patient_outcomes(self) -> pd.DataFrame:
        """Derived outcomes of every eligible patient (:func:`esi.outcomes.derive_outcomes`)
        after the single-imputation rule in force (``mice`` -> complete case: bounds,
        influence and equivalence need one data set)."""
        from esi.outcomes import apply_missing_rule, derive_outcomes

        p = self.params
        rule = "complete_case" if p["missing"] == "mice" else p["missing"]
        return derive_outcomes(apply_missing_rule(self.cohort().eligible, rule),
                               success_threshold=p["success_threshold"])

    def _primary(self) -> pd.Series:
        o = self.outcomes().set_index(["outcome", "timepoint_weeks"])
        return o.loc[("leg_pain_reduction", 4)]

    def power(self, n_sim: int) -> pd.DataFrame:
        """Power and precision at this study's n and SDs of the 4-week leg-pain reduction
        (:func:`esi.sensitivity.power_summary`); paired tests are simulated as Welch."""
        from esi.sensitivity import power_summary

        r = self._primary()
        return power_summary(n_per_group=int(min(r["n_cases"], r["n_controls"])),
                             sd=(float(r["sd_cases"]), float(r["sd_controls"])),
                             test=self._unpaired_test(), alpha=self.params["alpha"],
                             n_sim=n_sim, seed=self.params["seed"])

    def power_curve(self, n_sim: int) -> pd.DataFrame:
        """Power over differences at this study's SDs (:func:`esi.sensitivity.power_curve`)."""
        from esi.sensitivity import power_curve

        r = self._primary()
        n = int(min(r["n_cases"], r["n_controls"]))
        return power_curve(n_per_group=(n, 2 * n, 4 * n),
                           sd=(float(r["sd_cases"]), float(r["sd_controls"])),
                           test=self._unpaired_test(), alpha=self.params["alpha"],
                           n_sim=n_sim, seed=self.params["seed"])

    def _unpaired_test(self) -> str:
        t = UNPAIRED.get(self.params["test"], self.params["test"])
        return t if t in ("welch", "student", "mann_whitney") else "welch"

    def one_to_one_pairs(self) -> pd.DataFrame:
        """The matched pairs of the pair-based sensitivity analyses (Rosenbaum bounds, the
        paired equivalence test).

        Returns
        -------
        pandas.DataFrame
            :attr:`MatchResult.pairs` itself when every case has one control; with several
            controls per case (``ratio`` > 1), each case with its closest control (smallest
            ``distance_gap``, the first matched on a tie), so the analyses that need pairs run
            on a 1:1 sub-match instead of failing.
        """
        pairs = self.match().pairs
        if not pairs["treated"].duplicated().any():
            return pairs
        if "distance_gap" in pairs.columns:
            keep = pairs.groupby("treated", sort=False)["distance_gap"].idxmin()
        else:
            keep = pairs.groupby("treated", sort=False).head(1).index
        return pairs.loc[sorted(keep)].reset_index(drop=True)

    def equivalence(self, margin: float) -> pd.DataFrame:
        """TOST of the 4-week leg-pain reduction between matched cases and controls
        (:func:`esi.sensitivity.tost`; paired when the run's test is paired)."""
        from esi.sensitivity import pair_values, tost

        p = self.params
        paired = p["test"] in ("paired_t", "wilcoxon")
        if paired:
            v = pair_values(self.one_to_one_pairs(), self.per_patient_outcomes(),
                            "leg_pain_reduction_4w", one_to_one=True)
            return tost(v["y_treated"], v["y_control"], margin, alpha=p["alpha"], paired=True)
        out = self.per_patient_outcomes()["leg_pain_reduction_4w"]
        pairs = self.match().pairs
        cases = out.reindex(pairs["treated"].unique()).dropna()
        controls = out.reindex(pairs["control"].unique()).dropna()
        return tost(cases.to_numpy(), controls.to_numpy(), margin, alpha=p["alpha"],
                    equal_var=p["test"] == "student")

    def multiverse(self) -> pd.DataFrame:
        """Every specification of the analysis on this cohort
        (:func:`esi.sensitivity.multiverse_from_params`)."""
        from esi.sensitivity import multiverse_from_params

        return multiverse_from_params(self.cohort().eligible, self.params)

    # --- outputs -------------------------------------------------------------------------
    def present(self, table: pd.DataFrame, name: str | None = None) -> pd.DataFrame:
        """A table as it may be shown or written.

        Synthetic data: the table itself. Real data: the disclosure control that the table's
        declaration ``name`` (:data:`esi.disclosure.DISCLOSURES`, e.g. ``"cohort_flow"`` or
        ``"table2.csv"``) asks for (:func:`esi.disclosure.disclose`): columns naming patients
        dropped, counts of 1-4 shown as ``"<5"``, the cells that would reveal them by
        subtraction and the statistics computed from them shown as ``"-"``.

        Raises
        ------
        ValueError
            Real data and no ``name``, or a name nobody declared.
        """
        if name is not None:
            from esi.disclosure import declaration

            decl = declaration(name)  # an undeclared table fails for synthetic data too
        if self.suppress_below is None:
            return table
        if name is None:
            raise ValueError("present: name the table (a key of esi.disclosure.DISCLOSURES) "
                             "so that its declared counts are protected")
        from esi.disclosure import disclose

        return disclose(table, decl, threshold=self.suppress_below)

    def write_csv(self, name: str, table: pd.DataFrame, index: bool = False) -> Path:
        """Write a tidy result file into the run folder, atomically (floats to 10 digits).

        The table goes through :meth:`present` under its file name, so every result file needs
        a declaration in :data:`esi.disclosure.DISCLOSURES` (``matched_pairs.csv``: keyed
        pseudonyms, no counts)."""
        table = self.present(table, name)
        if self.suppress_below is not None:
            table = table.apply(lambda s: s.map(_ten_digits) if s.dtype == object else s)
        path = self.run_dir / name
        with atomic_write(path) as fh:
            table.to_csv(fh, index=index, float_format="%.10g", lineterminator="\n")
        return path

    def write_result(self, name: str) -> Path:
        """Write one of the stage result files (:data:`STAGE_RESULTS`) into the run folder."""
        try:
            make, index = STAGE_RESULTS[name]
        except KeyError:
            raise ValueError(f"name must be one of {', '.join(STAGE_RESULTS)}, got {name!r}") from None
        return self.write_csv(name, make(self), index=index)

    def ensure_results(self) -> list[Path]:
        """Write the stage result files the run folder lacks (a notebook run on its own)."""
        return [self.write_result(n) for n in STAGE_RESULTS if not (self.run_dir / n).exists()]


# --- esi run -----------------------------------------------------------------------------

def _kernel_name() -> str:
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    return KERNEL_NAME if KERNEL_NAME in specs else "python3"


_KERNEL_FIX = ("reinstall it from the project folder with `make setup`, or `.venv/bin/python -m "
               "ipykernel install --sys-prefix --name esi --display-name \"Python (esi)\"`")


def _kernel_spec(name: str) -> Any:
    """The kernel spec of ``name``, or the exception saying why it cannot be read."""
    from jupyter_client.kernelspec import KernelSpecManager

    try:
        return KernelSpecManager().get_kernel_spec(name)
    except Exception as exc:  # noqa: BLE001 - a missing or unreadable kernel.json
        return exc


def kernel_problem(name: str) -> str | None:
    """Why the Jupyter kernel ``name`` cannot start (its spec is missing or unreadable, or
    its program does not exist or cannot be run), with what to do; ``None`` when its spec
    looks sound. A kernel that starts and dies is caught when a notebook starts it
    (:class:`KernelFailed`)."""
    spec = _kernel_spec(name)
    if isinstance(spec, Exception):
        return (f"the Jupyter kernel {name!r} cannot be used ({type(spec).__name__}); "
                f"{_KERNEL_FIX}")
    program = spec.argv[0] if spec.argv else ""
    if not (shutil.which(program) if program else None):
        return (f"the Jupyter kernel {name!r} ({os.path.join(spec.resource_dir, 'kernel.json')})"
                f" is broken: its program {program or '(none)'!r} does not exist or cannot be "
                f"run; {_KERNEL_FIX}")
    return None


class KernelFailed(RunFailed):
    """The Jupyter kernel of ``esi run`` did not start (exit code 2: a broken installation,
    not a failed analysis)."""


def _git_commit() -> dict[str, Any]:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": "unknown", "dirty": None}
    if head.returncode != 0:
        return {"commit": "unknown", "dirty": None}
    return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PROVENANCE_PACKAGES + ("esi",):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _render_html(notebook: Path, target: Path) -> None:
    """Render an executed notebook to HTML without code, titled by its first heading, with a
    table of contents and links to the run index and the previous/next report
    (:func:`esi.pages.finish_report`)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb)

    def neighbour(i: int) -> tuple[str, str] | None:
        if not 0 <= i < len(NOTEBOOKS):
            return None
        name = NOTEBOOKS[i]
        heading = notebook_heading(NOTEBOOKS_DIR / f"{name}.ipynb") or name.replace("_", " ")
        return f"{name}.html", heading

    here = NOTEBOOKS.index(target.stem) if target.stem in NOTEBOOKS else None
    page = finish_report(
        body, notebook_heading(nb) or notebook.stem.replace("_", " "),
        previous=None if here is None else neighbour(here - 1),
        following=None if here is None else neighbour(here + 1))
    with atomic_write(target) as fh:
        fh.write(page)


def _ipc_kernel_manager() -> type:
    """A kernel manager that talks to its kernel over IPC sockets in a private temporary
    folder: no TCP ports to race for when several runs start kernels at once (papermill issue
    511), no unencrypted-TCP warning.

    The folder (``esi-kernel-*`` in the temporary folder, 0700) also holds the connection
    file, and records the process that owns it (:func:`esi.processes.write_owner`); it is
    removed when the kernel is shut down, by :func:`esi.processes.kill_kernels` otherwise, or
    by a later run when its owner was killed (:func:`esi.processes.remove_stale_kernel_folders`).
    The kernel gets a SIGKILL when the process that started it dies
    (:func:`esi.processes.kernel_preexec`)."""
    import functools

    from jupyter_client.manager import AsyncKernelManager

    from esi.processes import (
        KERNEL_FOLDER_PREFIX,
        kernel_preexec,
        register_kernel,
        unregister_kernel,
        write_owner,
    )

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(transport="ipc", **kwargs)
            self._esi_folder = tempfile.mkdtemp(prefix=KERNEL_FOLDER_PREFIX)
            write_owner(self._esi_folder)
            self.ip = os.path.join(self._esi_folder, "kernel")
            self.connection_file = os.path.join(self._esi_folder, "connection.json")

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            kw["preexec_fn"] = functools.partial(kernel_preexec, os.getpid())
            await super()._async_launch_kernel(kernel_cmd, **kw)
            process = getattr(self.provisioner, "process", None)
            if process is not None:
                register_kernel(process, self._esi_folder)

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            if not restart:
                process = getattr(self.provisioner, "process", None)
                unregister_kernel(getattr(process, "pid", None), self._esi_folder)

        async def _async_interrupt_kernel(self) -> None:
            # jupyter_client sends SIGINT before every shutdown request; an idle kernel then
            # logs "ERROR | KeyboardInterrupt caught in kernel" on our stderr. The shutdown
            # request travels on the control channel, which a busy kernel also serves, and
            # a kernel that does not stop is still terminated, then killed.
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

    return IPCKernelManager


def _execute(src: Path, dst: Path, parameters: dict[str, Any], kernel: str,
             timeout: float) -> None:
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from esi.processes import kill_kernels

    try:
        pm.execute_notebook(str(src), str(dst), parameters=parameters, kernel_name=kernel,
                            progress_bar=False, cwd=str(NOTEBOOKS_DIR),
                            execution_timeout=timeout, log_output=False,
                            stdout_file=None, stderr_file=None,
                            kernel_manager_class=_ipc_kernel_manager())
    except PapermillExecutionError as exc:
        raise RunFailed(f"{src.name}: cell {exc.exec_count} raised {exc.ename}: "
                        f"{exc.evalue}") from None
    except (RuntimeError, OSError) as exc:
        spec = _kernel_spec(kernel)
        program = None if isinstance(spec, Exception) or not spec.argv else spec.argv[0]
        if isinstance(exc, RuntimeError) and "died before replying to kernel_info" in str(exc) \
                or isinstance(exc, OSError) and exc.filename is not None \
                and exc.filename == program:
            where = "" if isinstance(spec, Exception) else \
                f" ({os.path.join(spec.resource_dir, 'kernel.json')})"
            raise KernelFailed(f"the Jupyter kernel {kernel!r}{where} did not start for "
                               f"{src.name} ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0]}); {_KERNEL_FIX}") from None
        raise
    finally:
        kill_kernels()  # a kernel that was not shut down (an interruption, a crash)


def _run_one(name: str, src: Path, dst: Path, html_path: Path, parameters: dict[str, Any],
             kernel: str, timeout: float) -> tuple[str, float]:
    t = time.perf_counter()
    # each notebook gets the run parameters its parameters cell declares: every one was
    # checked before anything ran (run_cli, load_params), and papermill warns of no other
    declared = notebook_parameters(src)
    _execute(src, dst, {k: v for k, v in parameters.items() if k in declared}, kernel, timeout)
    _render_html(dst, html_path)
    return name, round(time.perf_counter() - t, 2)


def _run_notebooks(jobs: list[tuple[str, Path, Path, Path]], parameters: dict[str, Any],
                   kernel: str, timeout: float, workers: int | None,
                   log: Callable[[str], None]) -> dict[str, float]:
    """Execute and render the notebooks; return seconds per notebook (reading order)."""
    from esi.processes import default_workers

    workers = workers or default_workers()
    if workers < 1:
        raise ValueError(f"workers must be 1 or more, got {workers}")
    timings: dict[str, float] = {}
    if workers == 1:
        for name, src, dst, html_path in jobs:
            log(f"running {name} ...")
            timings[name] = _run_one(name, src, dst, html_path, parameters, kernel, timeout)[1]
        return timings
    import multiprocessing as mp
    from concurrent.futures import FIRST_EXCEPTION, wait

    # Workers are forked after papermill and nbconvert are imported here, so they start
    # without importing them again; no kernel or ZeroMQ socket exists yet to be inherited.
    import nbconvert  # noqa: F401
    import papermill  # noqa: F401

    from esi.processes import pool_worker_init

    method = "fork" if sys.platform.startswith("linux") else "spawn"
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(method),
                               initializer=pool_worker_init, initargs=(os.getpid(),))
    try:
        submitted = {}
        for name, src, dst, html_path in sorted(jobs, key=lambda j: j[0] not in START_FIRST):
            log(f"running {name} ...")
            submitted[name] = pool.submit(_run_one, name, src, dst, html_path, parameters,
                                          kernel, timeout)
        futures = [submitted[name] for name, *_ in jobs]  # reading order again
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for fut in futures:  # the first failure in reading order is the one reported
            if fut in done and fut.exception() is not None:
                raise fut.exception()
        for fut in futures:
            name, seconds = fut.result()
            timings[name] = seconds
    except BaseException:
        stop_pool(pool)  # a notebook still running elsewhere is stopped, not awaited
        raise
    pool.shutdown(wait=True)
    return {name: timings[name] for name, *_ in jobs}


def stop_pool(pool: Any, grace: float = 10.0) -> None:
    """Stop a local process pool or a Dask executor without awaiting its work (a failed or
    interrupted run or sweep).

    What has not started is cancelled. Local workers still running get a SIGTERM, on which
    they kill their Jupyter kernels and exit (:func:`esi.processes.pool_worker_init`); a
    worker that has not ended ``grace`` seconds later is killed. When this returns, every
    local worker has ended, so nothing writes into the run's folder any more. Dask's executor
    cancels its running futures itself.
    """
    from multiprocessing.connection import wait as wait_ended

    procs = list((getattr(pool, "_processes", None) or {}).values())
    if isinstance(pool, ProcessPoolExecutor):
        pool.shutdown(wait=False, cancel_futures=True)
    else:
        pool.shutdown(wait=False)
    for proc in procs:
        proc.terminate()
    # A worker has ended when its sentinel is ready; is_alive() is no test here, as the
    # pool's own thread may reap the worker first (then is_alive() may still say True).
    for proc in procs:
        try:
            sentinel = proc.sentinel
        except ValueError:  # closed: the process has been joined and released
            continue
        if not wait_ended([sentinel], grace):
            proc.kill()
            wait_ended([sentinel], grace)


def run(params: dict[str, Any], out: Path, *, timeout: float = 600.0,
        params_source: str = "parameters", log: Callable[[str], None] = print,
        workers: int | None = None) -> Path:
    """Execute every notebook with ``params`` and build the run folder ``out``.

    Parameters
    ----------
    params
        Checked run parameters (:func:`esi.params.load_params`).
    out
        The run folder to create (relative: from the current working folder). It is built as
        ``.<name>.partial-*`` beside it and renamed into place only when every notebook
        succeeded and every result file exists; an older esi run folder of the same name is
        replaced then. Any other existing file or folder, the project's source folders and
        the folders holding the registry or mapping are refused before anything runs
        (:func:`esi.outputs.check_output_target`).
    timeout
        Seconds a notebook cell may run before the run fails.
    params_source
        Where the parameters came from, recorded in provenance.json.
    log
        Receives one line per step.
    workers
        Notebooks executed at once, each in its own process and kernel (default:
        :func:`esi.processes.default_workers`, 2, or 1 on a single core). They start in reading order; a notebook that starts before the one
        whose hand-over file it would read computes that stage itself (the result is the
        same: every stage is deterministic).

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    RunFailed
        A notebook raised or a result file is missing; the partial folder is removed.
    esi.outputs.OutputRefused
        ``out`` may not be written (see :mod:`esi.outputs`); nothing was run or changed.
    KeyboardInterrupt
        Interrupted (:class:`esi.processes.Interrupted` for a signal): the notebooks still
        running are stopped, their kernels killed, the partial folder removed.

    Notes
    -----
    The partial folder is private (0700) until it is complete. Partial folders beside ``out``
    that a killed run left behind (:func:`esi.io.remove_stale_partials`) and kernel folders
    of killed runs are removed first.
    """
    from esi.processes import deferred_signals, remove_stale_kernel_folders

    synthetic = is_synthetic(params)  # before anything runs: refuses a false synthetic claim
    data_path = resolve(params["data_path"])
    mapping = resolve(params["mapping"]) if params.get("mapping") else None
    out = check_output_target(out, "run", inputs=(data_path, mapping))
    for stale in remove_stale_partials(out.parent):
        log(f"removed {stale.name}, left by a run that was killed")
    remove_stale_kernel_folders()
    build = partial_folder(out)
    started = _dt.datetime.now(_dt.UTC)
    t0 = time.perf_counter()
    sha_before = sha256_of(data_path) if data_path.exists() else None
    kernel = _kernel_name()
    nb_params = {k: v for k, v in params.items() if k != "run_dir"}
    old_env = {k: os.environ.get(k) for k in ("ESI_RUN_DIR", "MPLCONFIGDIR")}
    os.environ["ESI_RUN_DIR"] = str(build)
    if not os.environ.get("MPLCONFIGDIR"):
        os.environ["MPLCONFIGDIR"] = str(Path(tempfile.gettempdir()) / "esi-mplconfig")
    try:
        jobs = [(name, NOTEBOOKS_DIR / f"{name}.ipynb", build / f"{name}.ipynb",
                 build / f"{name}.html") for name in NOTEBOOKS]
        timings = _run_notebooks(jobs, nb_params, kernel, timeout, workers, log)
        sha_after = sha256_of(data_path) if data_path.exists() else None
        if sha_after != sha_before:
            raise RunFailed(f"{data_path} changed during the run (sha256 {sha_before} -> "
                            f"{sha_after}); results discarded")
        provenance = {
            "parameters": params,
            "parameters_source": params_source,
            "synthetic": synthetic,
            "data": {"path": _display_path(data_path), "sha256_before": sha_before,
                     "sha256_after": sha_after},
            "git": _git_commit(),
            "versions": _versions(),
            "kernel": kernel,
            "notebooks": list(NOTEBOOKS),
            "notebook_seconds": timings,
            "started": started.isoformat(timespec="seconds"),
            "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "wall_seconds": round(time.perf_counter() - t0, 2),
        }
        with atomic_write(build / "provenance.json") as fh:
            json.dump(provenance, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
        missing = [f for f in RESULT_FILES if not (build / f).exists()]
        if missing:
            raise RunFailed(f"the notebooks did not write {', '.join(missing)}")
        shutil.rmtree(build / "state", ignore_errors=True)
        _write_index(build, params, provenance)
        with deferred_signals():  # published whole, or not at all
            publish_folder(build, out, "run")
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    finally:
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if out.parent.resolve() == REPORTS_DIR.resolve():
        write_reports_index()
    return out


def _display_path(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(p)


def _write_index(folder: Path, params: dict[str, Any], provenance: dict[str, Any]) -> None:
    page = run_index_page(folder, params, provenance, NOTEBOOKS)
    with atomic_write(folder / "index.html") as fh:
        fh.write(page)


def write_reports_index(reports: Path = REPORTS_DIR) -> Path:
    """Write ``reports/index.html``: a link to every complete run folder under ``reports``."""
    runs = sorted(p.parent.name for p in reports.glob("*/index.html")
                  if not p.parent.name.startswith("."))
    page = reports_index_page(runs)
    target = reports / "index.html"
    if target.exists() and not is_reports_index(target):
        raise OutputRefused(target, "is a file esi did not write; esi lists the runs in "
                                    "reports/index.html and never replaces another file")
    with atomic_write(target) as fh:
        fh.write(page)
    return target


def run_cli(params: str | None, data: str | None, out: str | None, synthetic: bool,
            timeout: float, mapping: str | None = None, workers: int | None = None,
            sheet: str | None = None) -> int:
    """``esi run``: load parameters, run, print where the reports are; return the exit code."""
    from esi.io import RegistryError
    from esi.text import printable
    from esi.validate import check_run_registry

    if workers is not None and workers < 1:
        print(f"esi run: --workers must be 1 or more, got {workers}", file=sys.stderr)
        return 2
    overrides: dict[str, Any] = {}
    if data is not None:
        overrides["data_path"] = str(Path(data).resolve())
    if synthetic:  # a claim, checked against the data (is_synthetic); never a switch
        overrides["synthetic"] = True
    if mapping is not None:
        overrides["mapping"] = str(Path(mapping).resolve())
    if sheet is not None:
        overrides["sheet"] = sheet
    try:
        p = load_params(params, overrides=overrides, extra=notebook_extra())
    except ParameterError as exc:
        print(printable(f"esi run: {exc}"), file=sys.stderr)
        return 2
    data_path = resolve(p["data_path"])
    mapping_path = resolve(p["mapping"]) if p["mapping"] else None
    name = Path(params).stem if params else "default"
    try:  # before any work: the output may not replace anything esi did not make
        target = check_output_target(
            out if out else REPORTS_DIR / name, "run",
            inputs=(resolve(params) if params else DEFAULT_PARAMS, data_path, mapping_path))
    except OutputRefused as exc:
        print(printable(f"esi run: {exc}"), file=sys.stderr)
        return 2
    if check_run_registry(data_path, mapping_path, p["sheet"]):
        return 2
    try:
        is_synthetic(p)  # a synthetic claim about a registry esi did not generate is refused
    except ParameterError as exc:
        print(printable(f"esi run: {exc}"), file=sys.stderr)
        return 2
    broken = kernel_problem(_kernel_name())
    if broken:
        print(f"esi run: {broken}; nothing was run", file=sys.stderr)
        return 2
    from esi.processes import exit_code, interruptible

    try:
        with interruptible() as guard:
            folder = run(p, target, timeout=timeout, params_source=str(params or "default"),
                         log=lambda m: print(m, file=sys.stderr), workers=workers)
    except KernelFailed as exc:
        print(f"esi run: {exc}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        print(f"esi run: FAILED: {exc}", file=sys.stderr)
        return 1
    except (RegistryError, OutputRefused) as exc:
        print(f"esi run: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # SIGINT, SIGTERM, SIGHUP (esi.processes.Interrupted)
        print(f"esi run: {_interrupted(exc)}; the notebooks were stopped and the partial "
              "folder removed, nothing was written", file=sys.stderr)
        return exit_code(exc)
    print(f"reports written to {folder}/index.html")
    if guard.received is not None:  # arrived while the folder was being published
        from esi.processes import Interrupted

        late = Interrupted(guard.received)
        print(f"esi run: {late} after the reports were complete", file=sys.stderr)
        return exit_code(late)
    return 0


def _interrupted(exc: BaseException) -> str:
    text = str(exc)
    return text if text.startswith("interrupted") else "interrupted"


def notebook_extra() -> tuple[str, ...]:
    """Parameter names beyond :data:`esi.params.DEFAULTS` that a run may carry: the
    sensitivity notebook's settings and the multiverse's grid (:data:`esi.params.NOTEBOOK_EXTRA`)."""
    return NOTEBOOK_EXTRA


#: Result files of the stages: name -> (how to make the table, write the index). Written by
#: notebooks 01-03, and by 05 when run on its own; each goes through Analysis.present.
STAGE_RESULTS: dict[str, tuple[Callable[[Analysis], pd.DataFrame], bool]] = {
    "cohort_flow.csv": (lambda a: a.cohort().flow, False),
    "matched_pairs.csv": (lambda a: a.match().pairs, False),
    "balance.csv": (lambda a: a.match().balance(), True),
    "outcomes.csv": (lambda a: a.outcomes(), False),
}


def _ten_digits(v: Any) -> Any:
    """A float of an object column (one with hidden cells) as the float columns write it."""
    if isinstance(v, float) and not isinstance(v, bool):
        return v if v != v else format(v, ".10g")
    return v
