"""Sensitivity of the matched comparison to the analyst's choices, hidden bias and chance.

* :mod:`esi.sensitivity.multiverse` - every specification of the analysis (``multiverse.csv``).
* :mod:`esi.sensitivity.rosenbaum` - Rosenbaum bounds for the matched pairs (``rosenbaum.csv``).
* :mod:`esi.sensitivity.power` - power, detectable difference, n needed (primary outcome and
  the binary positive outcome); TOST equivalence.
* :mod:`esi.sensitivity.influence` - leave-one-pair-out influence on the primary estimate.

Notebook 04 parameters (with :mod:`esi.params` names): ``gamma_max`` (3.0), ``gamma_step``
(0.1), ``power_n_sim`` (2000), ``tost_margin`` (1.5 NRS points), and for the multiverse the
optional ``multiverse_*`` names of :func:`run_multiverse`.
"""

from esi.params import SENSITIVITY_DEFAULTS
from esi.sensitivity._pairs import pair_values
from esi.sensitivity.influence import leave_one_pair_out
from esi.sensitivity.multiverse import (
    DEFAULT_COVARIATE_SETS,
    DEFAULT_GRID,
    MULTIVERSE_COLUMNS,
    MULTIVERSE_PARAMS,
    multiverse,
    multiverse_from_params,
    run_multiverse,
    specification_grid,
)
from esi.sensitivity.power import (
    binary_power,
    binary_sample_size,
    minimum_detectable_difference,
    power_by_simulation,
    power_curve,
    power_summary,
    published_binary_design,
    published_design,
    sample_size_per_group,
    tost,
)
from esi.sensitivity.rosenbaum import (
    gamma_at_change,
    gamma_grid,
    mcnemar_sensitivity,
    rosenbaum_bounds,
    wilcoxon_sensitivity,
)

__all__ = [
    "DEFAULT_COVARIATE_SETS",
    "DEFAULT_GRID",
    "MULTIVERSE_COLUMNS",
    "MULTIVERSE_PARAMS",
    "SENSITIVITY_DEFAULTS",
    "binary_power",
    "binary_sample_size",
    "gamma_at_change",
    "multiverse_from_params",
    "gamma_grid",
    "leave_one_pair_out",
    "mcnemar_sensitivity",
    "minimum_detectable_difference",
    "multiverse",
    "pair_values",
    "power_by_simulation",
    "power_curve",
    "power_summary",
    "published_binary_design",
    "published_design",
    "rosenbaum_bounds",
    "run_multiverse",
    "sample_size_per_group",
    "specification_grid",
    "tost",
    "wilcoxon_sensitivity",
]
