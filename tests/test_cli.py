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
