"""Stage hand-over without pickles: Parquet and JSON, keyed by data, parameters and code
version, private, never trusted when it does not parse or match (esi.handover)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
from pathlib import Path

import pandas as pd
import pytest

import esi.handover as handover
import esi.pipeline as pipeline
from esi.params import DEFAULTS, SENSITIVITY_DEFAULTS

STAGES = ("registry", "cohort", "match", "outcomes")


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _analysis(run_dir: Path, **params) -> pipeline.Analysis:
    return pipeline.Analysis(dict(DEFAULTS, run_dir=str(run_dir), **params))


@pytest.fixture(scope="module")
def fresh():
    """Every stage computed in memory (no hand-over)."""
    a = pipeline.Analysis(dict(DEFAULTS), persist=False)
    return {name: getattr(a, name)() for name in STAGES}


def test_stages_are_handed_over_as_private_parquet_and_json(tmp_path, fresh, monkeypatch):
    run = tmp_path / "run"
    first = _analysis(run)
    for name in STAGES:
        getattr(first, name)()
    state = run / "state"
    assert _mode(state) == 0o700
    folders = sorted(state.iterdir())
    assert sorted(f.name.rsplit("-", 1)[0] for f in folders) == sorted(STAGES)
    for folder in folders:
        assert _mode(folder) == 0o700
        files = list(folder.iterdir())
        assert {f.suffix for f in files} == {".json", ".parquet"}
        assert all(_mode(f) == 0o600 for f in files)
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob(".tmp-*"))

    # A later notebook reads every stage (nothing is computed again) and gets the very
    # values: same dtypes, index, attrs, floats bit for bit.
    import esi.cohort
    import esi.compare
    import esi.matching

    def computed(*args, **kwargs):
        raise AssertionError("a stage was computed instead of read")

    for module, name in ((pipeline, "read_registry"), (esi.cohort, "define_cohort"),
                         (esi.matching, "match"), (esi.compare, "compare_matched")):
        monkeypatch.setattr(module, name, computed)
    second = _analysis(run)
    for name in STAGES:
        assert handover.same_value(getattr(second, name)(), fresh[name]), name


@pytest.mark.parametrize("params", [
    {"ratio": 2, "replace": True},
    {"method": "optimal"},
    {"missing": "locf", "test": "paired_t", "binary_test": "mcnemar"},
    {"synthetic": False, "caliper": None, "distance": "propensity", "exact": ["sex"]},
])
def test_other_choices_round_trip_exactly(tmp_path, params):
    a = pipeline.Analysis(dict(DEFAULTS, **params), persist=False)
    for i, name in enumerate(STAGES):
        value = getattr(a, name)()
        meta = {"stage": name, "i": i}
        assert handover.save(tmp_path / "state" / name, value, meta)
        assert handover.same_value(handover.load(tmp_path / "state" / name, meta), value)


def test_same_value_tells_the_last_bit():
    a = pd.DataFrame({"x": [0.1, 0.2]})
    b = a.copy()
    b.loc[1, "x"] = 0.2 + 2.8e-17  # the next double after 0.2
    assert b.loc[1, "x"] != 0.2
    assert handover.same_value(a, a.copy()) and not handover.same_value(a, b)
    c = a.copy()
    c.attrs["source"] = "elsewhere"
    assert not handover.same_value(a, c)
    assert not handover.same_value(a, a.astype("float32"))


class _Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_pickle_is_never_executed_nor_any_pickle_read(tmp_path, fresh, monkeypatch):
    run = tmp_path / "run"
    a = _analysis(run)
    marker = tmp_path / "payload-ran"
    state = run / "state"
    state.mkdir(parents=True)
    # Where the old code looked (key computable from public values), and beside every
    # stage's new name.
    old_key = pipeline._key({"data": a.data_sha256, "data_path": a.params["data_path"],
                             "mapping": a.params["mapping"], "synthetic": a.synthetic})
    planted = [state / f"registry-{old_key}.pkl"]
    for name, keys in (("registry", pipeline._COHORT_KEYS), ("cohort", pipeline._COHORT_KEYS),
                       ("match", pipeline._MATCH_KEYS)):
        key = a.state_key(name, keys)[0]
        planted.append(state / f"{name}-{key}.pkl")
    for p in planted:
        p.write_bytes(pickle.dumps(_Payload(marker)))

    def no_pickle(*args, **kwargs):
        raise AssertionError("a pickle was read")

    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pd, "read_pickle", no_pickle)
    for name in STAGES:
        assert handover.same_value(getattr(a, name)(), fresh[name])
    assert handover.same_value(_analysis(run).match(), fresh["match"])  # read back, too
    assert not marker.exists()


def _tamper_parquet(folder: Path) -> None:
    (folder / "t0.parquet").write_bytes(b"PAR1 not a table")


def _tamper_key(folder: Path) -> None:
    m = json.loads((folder / "manifest.json").read_text())
    m["meta"]["caliper"] = 0.1  # a hand-over of other parameters under this name
    (folder / "manifest.json").write_text(json.dumps(m))


def _tamper_class(folder: Path) -> None:
    m = json.loads((folder / "manifest.json").read_text())
    m["value"] = {"__t": "dataclass", "class": "os.system", "v": {"command": "true"}}
    (folder / "manifest.json").write_text(json.dumps(m))


def _tamper_json(folder: Path) -> None:
    (folder / "manifest.json").write_text('{"format": "esi-handover/1", "meta": ')


@pytest.mark.parametrize("tamper", [_tamper_parquet, _tamper_key, _tamper_class,
                                    _tamper_json])
def test_a_handover_that_does_not_parse_or_match_is_recomputed(tmp_path, fresh, tamper):
    run = tmp_path / "run"
    a = _analysis(run)
    a.match()
    key, parts = a.state_key("match", pipeline._MATCH_KEYS)
    folder = run / "state" / f"match-{key}"
    assert handover.same_value(handover.load(folder, parts), fresh["match"])
    tamper(folder)
    with pytest.raises(handover.HandoverError):
        handover.load(folder, parts)
    calls = []

    def compute():
        calls.append(1)
        return fresh["match"]

    b = _analysis(run)
    with pytest.warns(UserWarning, match="the match stage is not handed over"):
        value = b._stage("match", pipeline._MATCH_KEYS, compute)
    assert calls == [1] and value is fresh["match"]  # computed, the bad folder not trusted


def test_the_code_version_is_part_of_the_key(tmp_path, fresh, monkeypatch):
    package = Path(handover.__file__).parent
    copy = tmp_path / "esi"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert handover.source_hash(copy) == handover.source_hash(package) == handover.code_version()
    source = copy / "compare.py"
    source.write_text(source.read_text().replace("def ", "def  ", 1))  # one space added
    assert handover.source_hash(copy) != handover.source_hash(package)

    run = tmp_path / "run"
    a = _analysis(run)
    a.match()
    key, parts = a.state_key("match", pipeline._MATCH_KEYS)
    assert parts["code"] == handover.code_version()
    monkeypatch.setattr(handover, "code_version", lambda: "edited")
    b = _analysis(run)
    key2, parts2 = b.state_key("match", pipeline._MATCH_KEYS)
    assert key2 != key and parts2["code"] == "edited"
    calls = []

    def compute():
        calls.append(1)
        return fresh["match"]

    b._stage("match", pipeline._MATCH_KEYS, compute)
    assert calls == [1]  # the older code's hand-over is not served


def test_only_known_objects_are_handed_over(tmp_path):
    with pytest.raises(TypeError, match="cannot hand over"):
        handover.save(tmp_path / "state" / "x", {"f": open}, {"stage": "x"})
    assert not list((tmp_path / "state").iterdir())  # nothing half-written left


def test_interactive_runs_keep_one_parameter_set_per_folder(tmp_path, monkeypatch):
    from esi.io import sha256_of

    monkeypatch.delenv("ESI_RUN_DIR", raising=False)
    monkeypatch.setattr(pipeline, "REPORTS_DIR", tmp_path / "reports")
    root = tmp_path / "reports" / "interactive"

    summaries = pipeline.Analysis(dict(DEFAULTS), persist=False)  # a sweep point
    summaries.match()
    assert not (tmp_path / "reports").exists()  # writes nothing anywhere

    a = pipeline.Analysis(dict(DEFAULTS))
    assert a.run_dir.parent == root
    record = json.loads((a.run_dir / "params.json").read_text())
    assert record["data_sha256"] == sha256_of(a.data_path)
    assert record["parameters"]["caliper"] == 0.2
    assert record["parameters"]["data_path"] == "data/synthetic/esi_registry_synthetic.csv"
    absolute = dict(DEFAULTS, data_path=str(a.data_path))  # the same file, named otherwise
    assert pipeline.Analysis(absolute).run_dir == a.run_dir
    assert "run_dir" not in record["parameters"] and "Every file" in record["note"]
    a.write_csv("balance.csv", a.match().balance())
    assert (a.run_dir / "balance.csv").exists()

    assert pipeline.Analysis(dict(DEFAULTS, caliper=0.1)).run_dir != a.run_dir
    extra = pipeline.notebook_extra()
    # notebook 04 with its default settings shares the folder of 01-03; settings that change
    # a result get their own, settings that do not (multiverse_workers) do not
    nb04 = dict(DEFAULTS, **SENSITIVITY_DEFAULTS, multiverse_workers=1)
    assert pipeline.Analysis(nb04, extra=extra).run_dir == a.run_dir
    assert pipeline.Analysis(dict(nb04, multiverse_workers=2), extra=extra).run_dir == a.run_dir
    other = pipeline.Analysis(dict(nb04, power_n_sim=500), extra=extra).run_dir
    assert other != a.run_dir
    assert json.loads((other / "params.json").read_text())["parameters"]["power_n_sim"] == 500
    assert len(list(root.iterdir())) == 3

    given = pipeline.Analysis(dict(DEFAULTS, run_dir=str(tmp_path / "mine")))
    assert given.run_dir == tmp_path / "mine" and not (given.run_dir / "params.json").exists()
