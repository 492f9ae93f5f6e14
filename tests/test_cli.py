from __future__ import annotations

import pytest

from esi.cli import build_parser, main

SUBCOMMANDS = ["run", "sweep", "validate", "synth", "multiverse", "schema"]


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help_with_an_example(name, capsys):
    with pytest.raises(SystemExit) as ex:
        main([name, "--help"])
    assert ex.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: esi {name}" in out
    assert "example:" in out and f"esi {name}" in out.split("example:")[1]


def test_parser_lists_all_subcommands():
    text = build_parser().format_help()
    for name in SUBCOMMANDS:
        assert name in text


def test_bad_option_exits_2(capsys):
    with pytest.raises(SystemExit) as ex:
        main(["run", "--no-such-option"])
    assert ex.value.code == 2


def test_esi_synth_command_regenerates_the_committed_registry(tmp_path, capsys):
    from esi.paths import SYNTHETIC_REGISTRY

    out = tmp_path / "registry.csv"
    assert main(["synth", "--out", str(out)]) == 0
    assert out.read_bytes() == SYNTHETIC_REGISTRY.read_bytes()
    assert "synthetic registry, seed" in capsys.readouterr().out


def test_esi_schema_prints_the_dictionary(capsys):
    from esi.paths import DATA_DICTIONARY

    assert main(["schema"]) == 0
    assert capsys.readouterr().out == DATA_DICTIONARY.read_text(encoding="utf-8")


def test_esi_validate_with_a_mapping_reads_a_redcap_export(capsys):
    from esi.paths import PARAMS_DIR, PROJECT_ROOT

    records = PROJECT_ROOT / "tests" / "data" / "redcap" / "esi_records.csv"
    assert main(["validate", str(records), "--mapping",
                 str(PARAMS_DIR / "mapping.example.yaml")]) == 0
    assert "valid (6 patients" in capsys.readouterr().out
    # without the mapping the user's own column names are not the schema's
    assert main(["validate", str(records)]) == 2
    assert "[missing-column]" in capsys.readouterr().out


def test_run_and_sweep_share_one_workers_default(monkeypatch, capsys):
    import esi.pipeline
    import esi.sweep
    from esi import processes

    helps = {}
    for name in ("run", "sweep"):
        with pytest.raises(SystemExit):
            main([name, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        helps[name] = text.split("--workers N")[-1].split("(default: ")[1].split(",")[0]
    assert helps["run"] == helps["sweep"] == "the usable CPUs"
    monkeypatch.setattr(processes.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
    assert processes.default_workers() == processes.MAX_DEFAULT_WORKERS == 2
    monkeypatch.setattr(processes.os, "sched_getaffinity", lambda pid: {0})
    assert processes.default_workers() == 1
    # both commands take their default from this one function
    import inspect

    for module in (esi.pipeline, esi.sweep):
        assert "default_workers()" in inspect.getsource(module)
        assert "cpu_count" not in inspect.getsource(module)
