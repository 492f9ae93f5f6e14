from __future__ import annotations

import pytest
import yaml

from esi.params import (
    DEFAULTS,
    FlatAliasLoader,
    ParameterError,
    YamlFileError,
    check_params,
    load_params,
    read_yaml,
)
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


# --- reading YAML files ---------------------------------------------------------------------

def test_aliases_and_anchors_are_refused_with_their_line(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("seed: 1\ncovariates: &c [age, sex]\nexact: *c\n")
    with pytest.raises(YamlFileError) as err:
        load_params(p)
    assert str(err.value).startswith(f"{p}: line 2, column 13: the anchor &c is refused")
    assert (err.value.line, err.value.column) == (2, 13)
    p.write_text("seed: 1\nexact: *c\n")  # an alias without its anchor: still named
    with pytest.raises(YamlFileError, match=r"line 2, column 8: the alias \*c is refused"):
        load_params(p)


def test_merge_keys_are_aliases_too(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("base: &b {ratio: 2}\nrun:\n  <<: *b\n")
    with pytest.raises(YamlFileError, match="line 1, column 7: the anchor &b is refused"):
        read_yaml(p)


def test_bytes_that_are_not_utf8_are_named_by_line_and_column(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_bytes(b"seed: 1\nratio: \xff2\n")
    with pytest.raises(YamlFileError) as err:
        load_params(p)
    assert str(err.value) == (f"{p}: line 2, column 8: byte(s) ff are not UTF-8 text; save "
                              "the parameter file as UTF-8")


def test_invalid_yaml_is_one_line_with_its_place(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("seed: 1\nratio: [1, 2\n")
    with pytest.raises(YamlFileError) as err:
        load_params(p)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(f"{p}: line 3, column 1: not valid YAML: expected ',' "
                                     "or ']'")


def test_flat_aliases_are_allowed_in_the_flat_loader_within_a_budget(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("a: &x {k: v, l: w}\nb: *x\nc: *x\n")
    assert read_yaml(p, loader=FlatAliasLoader) == {"a": {"k": "v", "l": "w"},
                                                    "b": {"k": "v", "l": "w"},
                                                    "c": {"k": "v", "l": "w"}}
    big = ", ".join(f"k{i}: v" for i in range(2000))
    p.write_text(f"a: &x {{{big}}}\n" + "".join(f"b{i}: *x\n" for i in range(3)))
    with pytest.raises(YamlFileError, match="line 4, column 5: the aliases repeat more than "
                                            "10000 values"):
        read_yaml(p, loader=FlatAliasLoader)
    p.write_text("a: &x [1]\nb: &y [*x, *x]\n")
    with pytest.raises(YamlFileError, match=r"line 2, column 8: the alias \*x stands inside "
                                            "the anchored value &y"):
        read_yaml(p, loader=FlatAliasLoader)
    p.write_text("a: &x [*x]\n")  # a value that contains itself
    with pytest.raises(YamlFileError, match="aliases may not nest"):
        read_yaml(p, loader=FlatAliasLoader)


def test_sheet_parameter(tmp_path):
    assert load_params()["sheet"] is None
    with pytest.raises(ParameterError, match="parameter 'sheet' = 3: must be the name of a "
                                             "sheet"):
        check_params({"sheet": 3})
    assert check_params({"sheet": "Patients"})["sheet"] == "Patients"


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
