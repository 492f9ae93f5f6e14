from __future__ import annotations

import pytest
import yaml

from esi.params import DEFAULTS, ParameterError, check_params, load_params
from esi.paths import DEFAULT_PARAMS


def test_default_yaml_states_the_defaults():
    assert yaml.safe_load(DEFAULT_PARAMS.read_text()) == DEFAULTS
    assert load_params() == DEFAULTS


@pytest.mark.parametrize(("name", "value", "message"), [
    ("distance", "euclid", "must be one of logit, propensity, mahalanobis"),
    ("mahvars", "age", "must be a list of column names"),
    ("mahvars", ["age", "shoe_size"], "'shoe_size' is not a registry column (see data/README.md)"),
    ("ratio", 0, "must be a whole number of 1 or more"),
    ("caliper", -0.1, "must be a positive number, or null for no caliper"),
    ("replace", "yes", "must be true or false"),
    ("covariates", ["age", "shoe_size"], "'shoe_size' is not a registry column (see data/README.md)"),
    ("missing", "drop", "must be one of complete_case, locf, bocf, mice"),
    ("test", "ttest", "must be one of welch, student, mann_whitney, paired_t, wilcoxon"),
    ("alpha", 1.5, "must be a number between 0 and 1"),
])
def test_bad_values_name_the_parameter(name, value, message):
    with pytest.raises(ParameterError) as err:
        check_params({name: value}, source="grid.yaml")
    assert str(err.value) == f"grid.yaml: parameter {name!r} = {value!r}: {message}"


def test_unknown_parameter_and_bad_file(tmp_path):
    with pytest.raises(ParameterError, match="unknown parameter"):
        check_params({"calliper": 0.2})
    p = tmp_path / "p.yaml"
    p.write_text("- just\n- a list\n")
    with pytest.raises(ParameterError, match="must hold 'name: value' lines"):
        load_params(p)
    with pytest.raises(ParameterError, match="cannot read the parameter file"):
        load_params(tmp_path / "missing.yaml")


def test_caliper_null_means_none(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("caliper: null\nratio: 2\n")
    params = load_params(p)
    assert params["caliper"] is None and params["ratio"] == 2


@pytest.mark.parametrize(("values", "name", "rule"), [
    ({"distance": "mahalanobis"}, "caliper", "distance: mahalanobis does not have"),
    ({"distance": "mahalanobis", "caliper": None, "mahvars": ["age"]}, "mahvars",
     "matches on the covariates"),
    ({"distance": "mahalanobis", "caliper": None, "method": "optimal"}, "method",
     "use method: nearest"),
    ({"mahvars": ["age", "bmi"], "method": "optimal"}, "method", "use method: nearest"),
])
def test_mahalanobis_combinations_name_the_parameter(values, name, rule):
    with pytest.raises(ParameterError, match=rule) as err:
        check_params(values, source="grid.yaml")
    assert str(err.value).startswith(f"grid.yaml: parameter {name!r} = ")


def test_mahalanobis_choices_accepted():
    full = check_params({"distance": "mahalanobis", "caliper": None})
    assert full["distance"] == "mahalanobis" and full["mahvars"] == []
    within = check_params({"mahvars": ["age", "bmi"], "caliper": 0.1})
    assert within["mahvars"] == ["age", "bmi"] and within["distance"] == "logit"
