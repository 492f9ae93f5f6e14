"""Reading and writing registry files.

:func:`read_registry` is the one way the analysis reads a registry: it validates the file
(:func:`esi.validate.validate_file`), refuses it with every problem listed when it is not
clean, and returns the typed table. :func:`write_registry` writes the canonical CSV form used
for the synthetic registry (byte-stable: fixed column order, ``true``/``false``, ISO dates,
shortest round-trip floats, ``\\n`` line ends). Files are written atomically.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from esi.schema import SCHEMA
from esi.validate import Problem, ValidationReport, validate_file

__all__ = ["RegistryError", "read_registry", "write_registry", "atomic_write", "sha256_of"]


class RegistryError(ValueError):
    """A registry file failed validation; ``problems`` lists every problem.

    The message names the file and every problem (file, line, patient, column, value, rule).
    """

    def __init__(self, report: ValidationReport):
        self.report = report
        self.problems: tuple[Problem, ...] = report.problems
        lines = [f"{report.file}: {len(report.problems)} problem(s); the registry was not read:"]
        lines += [f"  {p}" for p in report.problems[:50]]
        if len(report.problems) > 50:
            lines.append(f"  ... and {len(report.problems) - 50} more (run `esi validate`)")
        super().__init__("\n".join(lines))


def read_registry(path: str | os.PathLike[str],
                  mapping: str | os.PathLike[str] | None = None,
                  sheet: str | None = None) -> pd.DataFrame:
    """Read and validate a registry file (CSV, Parquet, Excel, or a REDCap export).

    Parameters
    ----------
    path
        The file; relative paths are resolved from the project root (:func:`esi.paths.resolve`).
    mapping
        A YAML mapping from the file's column names and codes to the schema's
        (``params/mapping.example.yaml``); it may name a REDCap data dictionary, and the file
        is then read as a REDCap records export.
    sheet
        The sheet of an Excel file (default: the mapping's ``sheet``, else the first).

    Returns
    -------
    pandas.DataFrame
        One row per patient, indexed by ``patient_id``, one column per schema column in
        data-dictionary order: ``Int64`` for integers, ``float64`` for numbers (``NaN`` when
        missing), nullable ``boolean`` for booleans, ``datetime64`` for dates, ``str`` for
        text and category codes. ``DataFrame.attrs`` holds ``source`` (the path) and ``sha256``.

    Raises
    ------
    RegistryError
        When the file has any problem; the message lists them all.
    """
    from esi.paths import resolve

    p = resolve(path)
    report = validate_file(p, mapping=resolve(mapping) if mapping is not None else None,
                           sheet=sheet)
    if not report.ok:
        raise RegistryError(report)
    registry = report.registry
    if registry is None:  # pragma: no cover - a clean report always carries the table
        raise RuntimeError(f"{report.file}: validated but no table was built")
    registry.attrs["source"] = str(p)
    registry.attrs["sha256"] = report.sha256
    return registry


def sha256_of(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, read in chunks without writing."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w") -> Iterator:
    """Open a temporary file beside ``path``; on success rename it over ``path``.

    An interrupted write leaves ``path`` untouched (the temporary file is removed).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8",
                                                           "newline": ""})) as fh:
            yield fh
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def partial_folder(target: str | os.PathLike[str]) -> Path:
    """Create the temporary build folder of ``target``: ``.<name>.partial-*`` beside it.

    The folder is private to the user (0700, as ``mkdtemp`` makes it) while it is built: it
    may hold the hand-over files of the analysis (``state/``, patient data). It records the
    process building it (:data:`esi.processes.OWNER_FILE`), so that a later run can remove
    it when that process was killed (:func:`remove_stale_partials`). :func:`seal_partial`
    gives it the usual permissions once it is complete; see :func:`publish_folder`.

    Raises :class:`esi.outputs.OutputRefused` when the folder cannot be created there.
    """
    from esi.outputs import OutputRefused
    from esi.processes import write_owner

    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    except OSError as exc:  # a read-only place, a file in the way: named, no traceback
        raise OutputRefused(target, f"cannot be written ({exc.strerror or exc})") from None
    try:
        write_owner(build)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return build


def seal_partial(build: str | os.PathLike[str]) -> Path:
    """Make a complete build folder of :func:`partial_folder` ready to publish: remove its
    owner record and give it the usual folder permissions (not ``mkdtemp``'s 0700)."""
    from esi.processes import OWNER_FILE

    build = Path(build)
    (build / OWNER_FILE).unlink(missing_ok=True)
    os.chmod(build, 0o777 & ~_umask())
    return build


#: Names :func:`partial_folder` gives (``tempfile.mkdtemp`` adds 8 letters, digits or ``_``).
_PARTIAL_NAME = re.compile(r"^\..+\.partial-[A-Za-z0-9_]+$")


def remove_stale_partials(parent: str | os.PathLike[str]) -> list[Path]:
    """Remove the partial folders in ``parent`` that a killed run or sweep left behind.

    Only folders that esi made are touched: named ``.<name>.partial-*``, a real folder of this
    user, holding an owner record (:func:`esi.processes.owner_is_gone`) that names a process
    of this host that no longer runs. A folder still being built, one of another host or one
    without the record is left alone.

    Returns
    -------
    list of pathlib.Path
        The folders removed.
    """
    from esi.processes import is_own_folder, owner_is_gone

    parent = Path(parent)
    removed: list[Path] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if _PARTIAL_NAME.match(entry.name) and is_own_folder(entry) and owner_is_gone(entry):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def publish_folder(build: str | os.PathLike[str], target: str | os.PathLike[str],
                   kind: str) -> Path:
    """Mark the finished ``build`` folder as an esi output of ``kind`` and rename it to
    ``target``, replacing an older ``target`` only when esi made it.

    ``build`` is sealed first (:func:`seal_partial`: owner record removed, usual permissions),
    then the marker (:func:`esi.outputs.write_marker`) is written last into it. An existing
    ``target`` is replaced only when it is empty or a complete earlier esi output of the same
    kind holding only the files its marker lists (:func:`esi.outputs.check_replaceable`);
    anything else raises :class:`esi.outputs.OutputRefused` and ``target`` is left as it was.
    The old folder is first moved aside (one rename), so ``target`` is never half old, half
    new; it is deleted afterwards.
    """
    from esi.outputs import check_replaceable, write_marker

    build, target = Path(build), Path(target)
    check_replaceable(target, kind)
    seal_partial(build)
    write_marker(build, kind)
    if target.exists() or target.is_symlink():
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, trash / target.name)
        os.replace(build, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(build, target)
    return target


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _cell(v: object, dtype: str) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
        return ""
    if dtype == "boolean":
        return "true" if bool(v) else "false"
    if dtype == "date":
        return pd.Timestamp(v).date().isoformat()
    if dtype == "integer":
        return str(int(v))
    if dtype == "number":
        x = float(v)
        return str(int(x)) if x.is_integer() else repr(round(x, 10))
    return str(v)


def write_registry(registry: pd.DataFrame, path: str | os.PathLike[str],
                   comment: str | None = None) -> Path:
    """Write a registry in the canonical CSV form, atomically.

    Parameters
    ----------
    registry
        Indexed by ``patient_id`` with every schema column.
    path
        Destination file.
    comment
        Text written as leading ``# ...`` lines (e.g. that the data are synthetic); the
        reader skips them.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    missing = [c for c in SCHEMA if c != "patient_id" and c not in registry.columns]
    if missing:
        raise ValueError(f"registry lacks schema column(s): {', '.join(missing)}")
    out_lines = []
    if comment:
        out_lines += [f"# {line}".rstrip() for line in comment.splitlines()]
    out_lines.append(",".join(SCHEMA))
    cols = [c for c in SCHEMA if c != "patient_id"]
    for pid, row in zip(registry.index, registry[cols].itertuples(index=False, name=None),
                        strict=True):
        cells = [str(pid)] + [_cell(v, SCHEMA[c].dtype) for c, v in zip(cols, row, strict=True)]
        out_lines.append(",".join(_quote(c) for c in cells))
    with atomic_write(path) as fh:
        fh.write("\n".join(out_lines) + "\n")
    return Path(path)


def _quote(s: str) -> str:
    if any(ch in s for ch in ',"\n\r'):
        return '"' + s.replace('"', '""') + '"'
    return s
