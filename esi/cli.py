"""The ``esi`` command: run the analysis, sweep parameters, validate and generate registries.

Every subcommand has ``--help`` with its options and an example. Exit codes: 0 success,
1 a run failed (a notebook raised, a sweep point failed), 2 bad input (invalid registry,
parameter or option), 3 the feature is not available in this installation.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence

from esi.processes import MAX_DEFAULT_WORKERS

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_UNAVAILABLE = 0, 1, 2, 3

#: The --workers default of esi run and esi sweep, in words (esi.processes.default_workers).
_WORKERS_DEFAULT = f"the usable CPUs, at most {MAX_DEFAULT_WORKERS}"


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def _require(module: str, feature: str) -> bool:
    """True when ``module`` exists; else say which feature is missing."""
    if importlib.util.find_spec(module) is None:
        print(f"esi: {feature} is not available yet in this installation ({module} is "
              "missing).", file=sys.stderr)
        return False
    return True


def _cmd_validate(args: argparse.Namespace) -> int:
    from esi.text import printable
    from esi.validate import validate_file

    kwargs = {}
    if args.mapping is not None:
        kwargs["mapping"] = args.mapping
    if args.redcap_dictionary is not None:
        kwargs["redcap_dictionary"] = args.redcap_dictionary
    try:
        report = validate_file(args.file, sheet=args.sheet, **kwargs)
    except ValueError as exc:  # a bad mapping file
        print(printable(f"esi validate: {exc}"), file=sys.stderr)
        return EXIT_BAD_INPUT
    for p in report.problems:
        print(p)
    if report.sheet_note:
        print(report.sheet_note, file=sys.stderr)
    name = printable(args.file)
    if report.problems:
        n_priv = sum(p.privacy for p in report.problems)
        rows = f" in {report.n_rows} row(s)" if report.n_rows else "; no row was read"
        print(f"{name}: {len(report.problems)} problem(s){rows}"
              + (f", {n_priv} of them privacy problem(s)" if n_priv else ""), file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{name}: valid ({report.n_rows} patients, sha256 {report.sha256[:12]}...)")
    return EXIT_OK


def _cmd_schema(args: argparse.Namespace) -> int:
    from esi.paths import DATA_DICTIONARY
    from esi.schema import render_data_dictionary

    text = render_data_dictionary()
    if args.write:
        from esi.io import atomic_write
        from esi.outputs import OutputRefused, check_output_target

        try:
            target = check_output_target(DATA_DICTIONARY, "schema")
            with atomic_write(target) as fh:
                fh.write(text)
        except OutputRefused as exc:
            print(f"esi schema: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except OSError as exc:
            print(f"esi schema: {DATA_DICTIONARY}: cannot be written ({exc.strerror or exc})",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"wrote {DATA_DICTIONARY}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _cmd_synth(args: argparse.Namespace) -> int:
    if not _require("esi.synthetic", "`esi synth` (the synthetic registry, issue #5)"):
        return EXIT_UNAVAILABLE
    from esi.outputs import OutputRefused, check_output_target
    from esi.paths import SYNTHETIC_REGISTRY
    from esi.synthetic import DEFAULT_SEED, write_synthetic_registry

    seed = DEFAULT_SEED if args.seed is None else args.seed
    try:  # a new file, or one esi synth wrote; never a folder or another file
        out = check_output_target(args.out if args.out else SYNTHETIC_REGISTRY, "synth")
        path = write_synthetic_registry(out, seed=seed)
    except OutputRefused as exc:
        print(f"esi synth: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # e.g. the folder became read-only meanwhile
        print(f"esi synth: {args.out or SYNTHETIC_REGISTRY}: cannot be written "
              f"({exc.strerror or exc})", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"wrote {path} (synthetic registry, seed {seed})")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    if not _require("esi.pipeline", "`esi run` (the notebook pipeline, issue #6)"):
        return EXIT_UNAVAILABLE
    from esi.pipeline import run_cli

    return run_cli(params=args.params, data=args.data, out=args.out,
                   synthetic=args.synthetic, timeout=args.timeout, mapping=args.mapping,
                   workers=args.workers, sheet=args.sheet)


def _cmd_sweep(args: argparse.Namespace) -> int:
    if not _require("esi.sweep", "`esi sweep` (parameter sweeps, issue #6)"):
        return EXIT_UNAVAILABLE
    from esi.sweep import sweep_cli

    return sweep_cli(grid=args.grid, workers=args.workers, scheduler=args.scheduler,
                     out=args.out, params=args.params, reports=args.reports,
                     timeout=args.timeout)


def _cmd_multiverse(args: argparse.Namespace) -> int:
    if not _require("esi.sensitivity", "`esi multiverse` (sensitivity analyses, issue #7)"):
        return EXIT_UNAVAILABLE
    from esi.io import RegistryError
    from esi.outputs import OutputRefused, check_output_target
    from esi.params import ParameterError, load_params
    from esi.paths import DEFAULT_PARAMS, REPORTS_DIR, resolve
    from esi.pipeline import notebook_extra
    from esi.sensitivity import run_multiverse
    from esi.text import printable
    from esi.validate import check_run_registry

    try:
        params = load_params(args.params, extra=notebook_extra())
    except ParameterError as exc:
        print(printable(f"esi multiverse: {exc}"), file=sys.stderr)
        return EXIT_BAD_INPUT
    out = args.out if args.out else REPORTS_DIR / "multiverse"
    data_path = resolve(params["data_path"])
    mapping_path = resolve(params["mapping"]) if params["mapping"] else None
    inputs = [resolve(args.params) if args.params else DEFAULT_PARAMS]
    try:  # before any work: the output may not replace anything esi did not make
        check_output_target(out, "multiverse", inputs=[*inputs, data_path, mapping_path])
    except OutputRefused as exc:
        print(printable(f"esi multiverse: {exc}"), file=sys.stderr)
        return EXIT_BAD_INPUT
    if check_run_registry(data_path, mapping_path, params["sheet"],
                          prog="esi multiverse") != EXIT_OK:
        return EXIT_BAD_INPUT
    try:
        path = run_multiverse(params, out, inputs=inputs)
    except (OutputRefused, RegistryError, FileNotFoundError, ParameterError) as exc:
        # also: no such data_path; synthetic: true for a registry esi did not generate
        print(printable(f"esi multiverse: {exc}"), file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"wrote {path}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``esi`` command (all subcommands)."""
    parser = argparse.ArgumentParser(
        prog="esi", formatter_class=_Formatter,
        description="Reproducible analysis of Cohen et al. 2025, lumbar epidural steroid "
                    "injections in patients with near-normal imaging (propensity-matched).",
        epilog="examples:\n  esi run\n  esi validate data/raw/my_registry.csv\n"
               "  esi sweep params/sweep_example.yaml --workers 2\n\n"
               "exit codes: 0 ok, 1 run failed, 2 bad input, 3 feature not available")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, help_: str, desc: str, example: str,
            func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=desc, formatter_class=_Formatter,
                           epilog=f"example:\n  {example}")
        p.set_defaults(func=func)
        return p

    p = add("run", "run every notebook into a rendered report folder",
            "Execute the numbered notebooks with papermill using one parameter set, render "
            "each to HTML without code, and write index.html, matched_pairs.csv, balance.csv, "
            "outcomes.csv, reproduction.csv and provenance.json into the output folder. The "
            "folder is built under a temporary name and renamed only when every notebook "
            "succeeded.",
            "esi run --params params/default.yaml --out reports/default", _cmd_run)
    p.add_argument("--params", metavar="FILE", default=None,
                   help="YAML parameter file (default: params/default.yaml)")
    p.add_argument("--data", metavar="FILE", default=None,
                   help="registry file (CSV, Parquet, Excel); overrides data_path")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="output folder (default: reports/<name of the params file>); a new "
                        "or empty folder, or an earlier esi run folder (see README)")
    p.add_argument("--mapping", metavar="FILE", default=None,
                   help="YAML mapping from your column names and codes to the schema's "
                        "(see params/mapping.example.yaml)")
    p.add_argument("--sheet", metavar="NAME", default=None,
                   help="sheet of an Excel registry (default: the mapping's sheet:, else the "
                        "first); overrides the parameter sheet")
    p.add_argument("--synthetic", action="store_true",
                   help="assert that the registry is one `esi synth` wrote (refused with exit 2 "
                        "otherwise); whether data are synthetic is decided by the data alone: "
                        "the header seed and the file's SHA-256")
    p.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                   help="give up on a notebook after this long (default 600)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="notebooks executed at once, each in its own kernel (default: "
                        f"{_WORKERS_DEFAULT}, as esi sweep); the results do not depend on it")

    p = add("sweep", "run the analysis over a grid of parameters, in parallel",
            "One run per grid point (the Cartesian product of the grid's lists, or an explicit "
            "list of parameter sets), each in its own process, gathered into DIR/sweep.csv "
            "with a specification-curve figure and an index.html. With --reports every point "
            "also runs all the notebooks (as `esi run`) into DIR/points/NN/, linked from its "
            "row. A failing point is reported in its row; the folder is renamed into place "
            "only at the end.",
            "esi sweep params/sweep_example.yaml --workers 2 --out reports/sweep", _cmd_sweep)
    p.add_argument("grid", metavar="GRID.yaml", help="grid file")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help=f"points run at once, each in its own process (default: "
                        f"{_WORKERS_DEFAULT}, as esi run); the results do not depend on it")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="Dask distributed scheduler address, e.g. tcp://127.0.0.1:8786")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="output folder (default: reports/sweep-<grid name>)")
    p.add_argument("--params", metavar="FILE", default=None,
                   help="base parameters the grid varies (default: params/default.yaml)")
    p.add_argument("--reports", action="store_true",
                   help="also render every point's notebooks into DIR/points/NN/ "
                        "(a papermill parameter sweep; the notebooks' own parameters, e.g. "
                        "power_n_sim, may then be varied too)")
    p.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                   help="with --reports: give up on a notebook after this long (default 600)")

    p = add("validate", "check a registry file against the data dictionary",
            "Print every problem of a registry file (CSV, Parquet or Excel), one per line, "
            "naming the line, patient, column, value and rule. Exit 0 when clean, 2 when not. "
            "The file is opened read-only.",
            "esi validate data/raw/registry.xlsx --mapping params/mapping.example.yaml",
            _cmd_validate)
    p.add_argument("file", help="registry file, or a REDCap records export with "
                                "--redcap-dictionary")
    p.add_argument("--mapping", metavar="FILE", default=None,
                   help="YAML mapping from your column names and codes to the schema's")
    p.add_argument("--redcap-dictionary", metavar="FILE", default=None,
                   help="REDCap data dictionary CSV (FILE is then the records export)")
    p.add_argument("--sheet", metavar="NAME", default=None,
                   help="sheet of an Excel file (default: the mapping's sheet:, else the "
                        "first; a workbook of several sheets says which was read)")

    p = add("synth", "generate the synthetic registry",
            "Generate the synthetic ESI registry (slightly under 500 patients) whose default "
            "analysis reproduces the published figures. With the default seed the result is "
            "byte-identical to data/synthetic/esi_registry_synthetic.csv.",
            "esi synth --seed 2025 --out /tmp/registry.csv", _cmd_synth)
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the "
                                                          "shipped registry's)")
    p.add_argument("--out", metavar="FILE", default=None,
                   help="output CSV (default: data/synthetic/esi_registry_synthetic.csv); a "
                        "new file or one esi synth wrote, never another file")

    p = add("multiverse", "run every specification of the analysis (specification curve)",
            "Run the multiverse of analytic choices (covariate set, distance, method, ratio, "
            "caliper, replacement, missing-data rule, test) in one process and write "
            "multiverse.csv.",
            "esi multiverse --out reports/multiverse", _cmd_multiverse)
    p.add_argument("--params", metavar="FILE", default=None,
                   help="base parameters (default: params/default.yaml)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="output folder (default: reports/multiverse)")

    p = add("schema", "print or write the data dictionary",
            "Render the data dictionary from esi/schema.py; --write updates data/README.md.",
            "esi schema --write", _cmd_schema)
    p.add_argument("--write", action="store_true", help="write data/README.md")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``esi`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Paths on the command line mean the current folder (paths inside parameter files are
    # taken from the project root, esi.paths.resolve): make them absolute here, once.
    for name in ("params", "grid"):
        if getattr(args, name, None):
            setattr(args, name, os.path.abspath(os.path.expanduser(getattr(args, name))))
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("esi: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
