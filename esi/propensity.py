"""Propensity model: design matrix and unpenalised logistic regression.

The model behind :func:`esi.match`. It is kept apart so that a reader can fit, inspect and
reuse the propensity score without matching, and so that the fit can be checked on its own
against R's ``glm(treat ~ ..., family = binomial)``.

The fit is a plain Newton-Raphson solve of the logistic likelihood on ``X'WX`` (the same
iteratively reweighted least squares that ``glm`` runs), on internally centred and scaled
columns, iterated to a relative deviance change below 1e-12. At a million rows it takes a
fraction of the time of a general GLM routine; its coefficients agree with ``glm`` and with
``statsmodels.Logit`` to about 1e-8 (see tests/test_matching_reference.py).

Every floating-point operation of the fit is done in an order fixed by this code, so the model
has the same bits on every CPU: no BLAS or LAPACK call (whose kernels, chosen by OpenBLAS for
the CPU, sum in different orders: SkylakeX, Haswell, the generic one), no numpy ``exp`` or
``log`` (AVX-512 builds of numpy use their own approximations). Sums are numpy's pairwise sums
of element-wise products, the logistic function is ``scipy.special.expit``/``log_expit``, and
the small p x p systems are solved by a Cholesky factorisation written out in Python. So the
matches, the synthetic registry built on them and every result file are byte-identical
whichever kernel a machine selects (tests/test_synthetic.py regenerates the registry under
every OpenBLAS core type the CPU can run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

__all__ = ["PropensityModel", "design_matrix", "fit_propensity", "DISTANCES"]

#: Scales of the distance: the fitted probability (MatchIt's default) or the linear predictor
#: (the logit of the propensity score, Austin's recommended scale for calipers).
DISTANCES = ("logit", "propensity")

_MAX_ITER = 50
_TOL = 1e-12


def _is_categorical(s: pd.Series) -> bool:
    return (
        isinstance(s.dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(s.dtype)
        or pd.api.types.is_string_dtype(s.dtype)
    )


def _levels(s: pd.Series) -> list:
    """Observed levels in R's order: the categories' order for a Categorical, else sorted."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        present = set(s.dropna().unique())
        return [c for c in s.cat.categories if c in present]
    return sorted(s.dropna().unique())


def design_matrix(
    data: pd.DataFrame, covariates: list[str] | tuple[str, ...], *, all_levels: bool = False
) -> pd.DataFrame:
    """Numeric design matrix of ``covariates``, dummy-coding categorical columns.

    Parameters
    ----------
    data : DataFrame
        One row per patient.
    covariates : list of str
        Column names. Numeric columns are used as they are, boolean columns as 0/1.
        Categorical columns (``object``, ``string`` or ``category`` dtype) get one 0/1 column per
        level except the reference level, which is the first level: the first category of a
        ``Categorical``, otherwise the first in sorted order - as R's ``model.matrix`` does.
    all_levels : bool, default False
        Keep a column for every level, reference included (as balance tables show them).

    Returns
    -------
    DataFrame
        Same index as ``data``; float columns named ``<covariate>`` for numeric and boolean
        covariates and ``<covariate>_<level>`` for levels of categorical ones (R would write
        ``<covariate><level>``). No intercept column.

    Raises
    ------
    ValueError
        If a covariate is not a column of ``data``, or is constant (a single observed value or
        level), naming it.
    """
    return pd.DataFrame(_design_columns(data, covariates, all_levels), index=data.index)


def _design_columns(data, covariates, all_levels: bool = False) -> dict[str, np.ndarray]:
    missing = [c for c in covariates if c not in data.columns]
    if missing:
        raise ValueError(f"covariates not found in data: {missing}")
    columns: dict[str, np.ndarray] = {}
    for name in covariates:
        s = data[name]
        if _is_categorical(s):
            levels = _levels(s)
            if len(levels) < 2:
                raise ValueError(
                    f"covariate {name!r} is constant (single level {levels!r}); drop it from "
                    "the covariates"
                )
            values = s.to_numpy()
            for level in levels if all_levels else levels[1:]:
                columns[f"{name}_{level}"] = (values == level).astype(float)
        else:
            x = s.to_numpy(dtype=float)
            finite = x[~np.isnan(x)]
            if finite.size and np.all(finite == finite[0]):
                raise ValueError(
                    f"covariate {name!r} is constant (every value is {finite[0]:g}); drop it "
                    "from the covariates"
                )
            columns[name] = x
    return columns


@dataclass(frozen=True)
class PropensityModel:
    """A fitted propensity model (unpenalised logistic regression of treatment on covariates).

    Attributes
    ----------
    treatment : str
        Name of the treatment column (1 = treated).
    covariates : tuple of str
        The covariates as given.
    terms : tuple of str
        Design columns: ``"intercept"`` then the columns of :func:`design_matrix`.
    coefficients : Series
        Log-odds coefficients by term (R: ``coef(glm(..., family = binomial))``).
    standard_errors : Series
        Model-based standard errors by term (R: ``sqrt(diag(vcov(glm)))``).
    linear_predictor : Series
        ``X @ coefficients`` for every unit (the logit of the propensity score).
    propensity : Series
        Fitted probability of treatment for every unit.
    distance : Series
        The matching distance: ``propensity`` or ``linear_predictor``, by ``distance_scale``.
    distance_scale : str
        ``"propensity"`` or ``"logit"``.
    deviance : float
        Residual deviance, ``-2 * log-likelihood``.
    n_iter : int
        Newton iterations run.
    converged : bool
        Always True for a returned model (non-convergence raises).
    """

    treatment: str
    covariates: tuple[str, ...]
    terms: tuple[str, ...]
    coefficients: pd.Series
    standard_errors: pd.Series
    linear_predictor: pd.Series
    propensity: pd.Series
    distance: pd.Series
    distance_scale: str
    deviance: float
    n_iter: int
    converged: bool

    def summary(self) -> pd.DataFrame:
        """Coefficient table.

        Returns
        -------
        DataFrame
            Indexed by ``term``; columns ``estimate``, ``std_error``, ``z``, ``p_value``
            (two-sided Wald test), as R's ``summary(glm)`` reports them.
        """
        z = self.coefficients / self.standard_errors
        out = pd.DataFrame(
            {
                "estimate": self.coefficients,
                "std_error": self.standard_errors,
                "z": z,
                "p_value": 2 * special.ndtr(-np.abs(z)),  # = stats.norm.sf(|z|), as scipy has it
            }
        )
        out.index.name = "term"
        return out


def _cholesky(a: np.ndarray) -> tuple[list[list[float]], list[float]]:
    """Lower Cholesky factor of the symmetric p x p matrix ``a``, in a fixed order of Python
    float operations (the same bits on every CPU).

    Returns the factor (rows as lists) and the pivots: ``pivot[j]`` is ``a[j, j]`` less the
    part explained by the earlier columns (the squared diagonal of the factor, in exact
    arithmetic the residual variance of column ``j`` regressed on the earlier ones). A pivot
    that is not positive leaves that column of the factor at zero; the caller decides.
    """
    rows = np.asarray(a, dtype=float).tolist()
    p = len(rows)
    low = [[0.0] * p for _ in range(p)]
    pivots = [0.0] * p
    for j in range(p):
        lj = low[j]
        piv = rows[j][j]
        for k in range(j):
            piv -= lj[k] * lj[k]
        pivots[j] = piv
        if not piv > 0:
            continue
        d = math.sqrt(piv)
        lj[j] = d
        for i in range(j + 1, p):
            li = low[i]
            v = rows[i][j]
            for k in range(j):
                v -= li[k] * lj[k]
            li[j] = v / d
    return low, pivots


def _cholesky_solve(low: list[list[float]], b) -> np.ndarray:
    """Solve ``(L L') x = b`` by forward and back substitution (fixed order; see
    :func:`_cholesky`)."""
    p = len(low)
    z = [float(v) for v in b]
    for i in range(p):
        v = z[i]
        for k in range(i):
            v -= low[i][k] * z[k]
        z[i] = v / low[i][i]
    for i in range(p - 1, -1, -1):
        v = z[i]
        for k in range(i + 1, p):
            v -= low[k][i] * z[k]
        z[i] = v / low[i][i]
    return np.array(z)


def _solve_spd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a^-1 b`` for a symmetric positive definite ``a`` (vector or p x m matrix ``b``).

    Raises
    ------
    numpy.linalg.LinAlgError
        If ``a`` is not positive definite in floating point.
    """
    low, pivots = _cholesky(a)
    if not all(v > 0 for v in pivots):
        raise np.linalg.LinAlgError("matrix is not positive definite")
    if b.ndim == 1:
        return _cholesky_solve(low, b)
    return np.column_stack([_cholesky_solve(low, b[:, m]) for m in range(b.shape[1])])


def _check_collinear(gram: np.ndarray, names: list[str]) -> None:
    """Raise if a design column is a linear combination of earlier ones (R would give NA).

    The test is the Cholesky pivot of each column: its residual sum of squares after the
    earlier columns, compared with its own sum of squares.
    """
    _, pivots = _cholesky(gram)
    for j in range(gram.shape[0]):
        if not pivots[j] > 1e-9 * max(gram[j, j], 1e-300):
            raise ValueError(
                f"covariate column {names[j]!r} is collinear with "
                f"{names[:j] or 'the intercept'}: the propensity model is not "
                "identifiable; drop one of them"
            )


def _check_separation(columns: dict[str, np.ndarray], treated: np.ndarray) -> None:
    """Raise if one design column alone (quasi-)separates treated from controls."""
    for name, x in columns.items():
        xt, xc = x[treated], x[~treated]
        if xt.max() <= xc.min() or xc.max() <= xt.min():
            raise ValueError(
                f"covariate column {name!r} perfectly separates treated from control units "
                f"(treated range [{xt.min():g}, {xt.max():g}], control range "
                f"[{xc.min():g}, {xc.max():g}]): the logistic model has no finite estimate; "
                "drop or coarsen it"
            )


_CHUNK = 32_768


def _cross(xt: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """``X'WX`` (``X'X`` without ``w``) of the design rows ``xt`` (p x n), in a fixed order:
    per block of :data:`_CHUNK` units, numpy's pairwise sum of each element-wise product; the
    blocks added in turn (no BLAS call, so the same bits on every CPU)."""
    p, n = xt.shape
    out = np.zeros((p, p))
    for start in range(0, n, _CHUNK):
        block = xt[:, start : start + _CHUNK]
        wblock = block if w is None else block * w[start : start + _CHUNK]
        if n <= _CHUNK:  # one call for small data; the upper triangle has the same bits
            out += (wblock[:, None, :] * block[None, :, :]).sum(axis=2)
            continue
        for j in range(p):
            out[j, j:] += (wblock[j] * block[j:]).sum(axis=1)
    return np.triu(out) + np.triu(out, 1).T


def _linear(beta: np.ndarray, xt: np.ndarray) -> np.ndarray:
    """``beta @ xt`` accumulated row by row (fixed order, no BLAS call)."""
    eta = beta[0] * xt[0]
    for j in range(1, len(beta)):
        eta += beta[j] * xt[j]
    return eta


def _dot_left(a: list[float], b: list[float]) -> float:
    """``a[0] * b[0] + a[1] * b[1] + ...`` added left to right (what :func:`_linear` does for
    one unit), in Python floats."""
    total = a[0] * b[0]
    for x, y in zip(a[1:], b[1:], strict=True):
        total += x * y
    return total


def _deviance(y: np.ndarray, eta: np.ndarray) -> float:
    """``-2 * log-likelihood``: ``-2 * sum(log expit(eta))`` over y = 1, ``log expit(-eta)``
    over y = 0 (``scipy.special.log_expit``: stable, and not CPU-dispatched)."""
    return -2.0 * float(np.sum(special.log_expit(np.where(y == 1, eta, -eta))))


def _state(xt: np.ndarray, y: np.ndarray, beta: np.ndarray):
    """Deviance, gradient and X'WX at beta; xt holds the design columns as rows (p x n)."""
    eta = _linear(beta, xt)
    prob = special.expit(eta)
    w = prob * special.expit(-eta)
    resid = y - prob
    grad = np.array([float(np.sum(row * resid)) for row in xt])
    return _deviance(y, eta), grad, _cross(xt, w), eta


def _newton(xt: np.ndarray, y: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Newton-Raphson with step halving (as glm.fit) from ``beta``. Returns beta, X'WX, iters."""
    dev, grad, hess, _ = _state(xt, y, beta)
    for it in range(1, _MAX_ITER + 1):
        try:
            step = _solve_spd(hess, grad)
        except np.linalg.LinAlgError:
            break  # X'WX singular: fitted probabilities of 0 or 1 (separation)
        new = _state(xt, y, beta + step)
        halvings = 0
        while not np.isfinite(new[0]) or new[0] > dev + 1e-10 * abs(dev):
            halvings += 1
            if halvings > 30:
                break
            step /= 2
            new = _state(xt, y, beta + step)
        converged = abs(new[0] - dev) / (abs(new[0]) + 0.1) < _TOL
        beta = beta + step
        dev, grad, hess, _ = new
        if converged:
            return beta, hess, it
    raise ValueError(
        f"the propensity model did not converge (Newton-Raphson, at most {_MAX_ITER} "
        "iterations; X'WX became singular or the deviance kept changing): "
        "a combination of covariates (quasi-)separates treated from controls"
    )


def fit_propensity(
    data: pd.DataFrame,
    treatment: str,
    covariates: list[str] | tuple[str, ...],
    *,
    distance: str = "logit",
) -> PropensityModel:
    """Fit the propensity model ``P(treatment = 1 | covariates)`` by logistic regression.

    Parameters
    ----------
    data : DataFrame
        One row per patient, indexed by patient id, without missing values in ``treatment``
        or ``covariates`` (:func:`esi.match` handles missing values before calling this).
    treatment : str
        Column holding 0/1 (or boolean) treatment; 1 = treated (near-normal imaging).
    covariates : list of str
        Model covariates; categorical columns are dummy-coded (see :func:`design_matrix`).
    distance : {"logit", "propensity"}, default "logit"
        Which scale :attr:`PropensityModel.distance` holds.

    Returns
    -------
    PropensityModel
        Frozen dataclass with coefficients, standard errors, fitted values and the distance.

    Raises
    ------
    ValueError
        If ``distance`` is not a known scale, a covariate is constant, collinear with others
        or perfectly separates the groups (naming it), or the Newton solve does not converge.

    Notes
    -----
    Coefficients and standard errors were checked against R's
    ``glm(treat ~ age + educ + race + married + nodegree + re74 + re75, family = binomial)``
    on MatchIt's ``lalonde`` data (tests/reference/matchit/glm_coefficients.csv).
    The linear predictor is accumulated column by column, so units with identical covariates
    get bit-identical distances (ties are then real ties, broken as :func:`esi.match` says).
    """
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    covariates = tuple(covariates)
    columns = _design_columns(data, covariates)
    names = list(columns)
    y = pd.to_numeric(data[treatment]).to_numpy(dtype=float)
    _check_separation(columns, y == 1)

    # Design columns as rows, centred and scaled (intercept first): p x n, C-contiguous.
    n, p = y.size, len(names) + 1
    xt = np.empty((p, n))
    xt[0] = 1.0
    center, scale = np.empty(p - 1), np.empty(p - 1)
    for j, name in enumerate(names):
        x = columns[name]
        center[j] = x.mean()
        np.subtract(x, center[j], out=xt[j + 1])
        scale[j] = math.sqrt(float(np.sum(xt[j + 1] * xt[j + 1])) / n)
        xt[j + 1] /= scale[j]
    _check_collinear(_cross(xt[1:]), names)

    ybar = float(y.mean())
    beta0 = np.zeros(p)
    beta0[0] = math.log(ybar / (1 - ybar))
    if n > 200_000:
        # Start from the fit on every k-th row (deterministic): the full-data Newton solve then
        # needs two or three iterations instead of six. The optimum is the same.
        k = n // 50_000
        sub_y = y[::k]
        if 0 < sub_y.sum() < sub_y.size:
            try:
                beta0 = _newton(np.ascontiguousarray(xt[:, ::k]), sub_y, beta0)[0]
            except (ValueError, np.linalg.LinAlgError):
                pass  # subsample separated: start from the intercept-only model instead
    beta_s, hess, n_iter = _newton(xt, y, beta0)
    del xt
    # Back-transform to the original scale: b_j = bs_j / s_j, b_0 = bs_0 - sum(bs_j * c_j / s_j)
    # (beta = T bs, cov = T H^-1 T'), in a fixed order like the fit.
    transform = np.zeros((p, p))
    transform[0, 0] = 1.0
    transform[0, 1:] = -center / scale
    transform[1:, 1:] = np.diag(1.0 / scale)
    t_rows = transform.tolist()
    beta = np.array([_dot_left(t, beta_s.tolist()) for t in t_rows])
    tinv = _solve_spd(hess, transform.T).T.tolist()  # rows of (H^-1 T')'
    cov = np.array([[_dot_left(t, c) for c in tinv] for t in t_rows])

    eta = np.full(n, beta[0])
    for j, name in enumerate(names):
        eta += beta[j + 1] * columns[name]
    prob = special.expit(eta)
    eps = 10 * np.finfo(float).eps
    if np.all(prob[y == 1] > 1 - eps) and np.all(prob[y == 0] < eps):
        raise ValueError(
            "a combination of covariates perfectly separates treated from control units: "
            "the logistic model has no finite estimate"
        )
    terms = ("intercept", *names)
    index = data.index
    lin = pd.Series(eta, index=index, name="linear_predictor")
    ps = pd.Series(prob, index=index, name="propensity")
    dist = (lin if distance == "logit" else ps).rename("distance")
    return PropensityModel(
        treatment=treatment,
        covariates=covariates,
        terms=terms,
        coefficients=pd.Series(beta, index=list(terms), name="estimate"),
        standard_errors=pd.Series(np.sqrt(np.diag(cov)), index=list(terms), name="std_error"),
        linear_predictor=lin,
        propensity=ps,
        distance=dist,
        distance_scale=distance,
        deviance=_deviance(y, eta),
        n_iter=n_iter,
        converged=True,
    )
