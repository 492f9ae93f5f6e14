"""Stage hand-over files: a stage's result written as data (Parquet and JSON), never as code.

The notebooks of one run hand their stages (registry, cohort, match, outcome comparisons) to
each other through folders in ``<run folder>/state/`` (:meth:`esi.pipeline.Analysis._stage`).
One hand-over is a folder ``<stage>-<key>/`` holding

``manifest.json``
    the format (:data:`FORMAT`), the key's parts (:func:`esi.pipeline.Analysis._stage`: the
    stage, the data's SHA-256, the parameters the stage depends on and the code version
    :func:`code_version`), the SHA-256 of every Parquet file, and the value as a JSON tree;
``t<N>.parquet``
    one file per table of the value (pandas frames, series and indexes), written by pyarrow.

The JSON tree holds numbers, text, ``true``/``false``/``null``, lists, and tagged objects:
tuples, dicts, numpy scalars, non-finite floats, tables (by file name, with their column
labels, dtypes, index and ``attrs``) and the frozen dataclasses of :data:`DATACLASSES`
(:class:`esi.cohort.Cohort`, :class:`esi.matching.MatchResult`,
:class:`esi.propensity.PropensityModel`), rebuilt field by field. Nothing in a hand-over is
ever executed: a file that does not parse, whose key or file hashes do not match, or whose
tree names anything else is refused (:class:`HandoverError`) and the stage is recomputed.

Values round-trip exactly: float64 columns are stored as IEEE doubles, every dtype is
restored as recorded, and :func:`save` reads each hand-over back and compares it with the
value (bit for bit, dtypes, index and ``attrs`` included) before publishing it.

Files are private (0600 in a 0700 folder) and a hand-over appears whole or not at all: it is
written into a temporary folder beside its final name, then renamed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import platform
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FORMAT", "DATACLASSES", "HandoverError", "code_version", "source_hash", "save", "load",
           "same_value", "private_folder"]

#: Version of the hand-over layout; part of every key.
FORMAT = "esi-handover/1"

MANIFEST = "manifest.json"

#: Largest manifest read (the tree is small: tables live in the Parquet files).
_MAX_MANIFEST_BYTES = 16 << 20

#: Packages whose versions are part of :func:`code_version` (they compute the stages).
_CODE_PACKAGES = ("numpy", "pandas", "scipy", "statsmodels", "pyarrow")


class HandoverError(ValueError):
    """A hand-over folder that cannot be trusted (missing, unparsable, or not the one asked
    for); the stage is recomputed."""


def _dataclasses() -> dict[str, type]:
    from esi.cohort import Cohort
    from esi.matching import MatchResult
    from esi.propensity import PropensityModel

    return {f"{c.__module__}.{c.__qualname__}": c for c in (Cohort, MatchResult,
                                                            PropensityModel)}


#: The classes a hand-over may rebuild (name -> class), loaded on first use.
DATACLASSES: dict[str, type] = {}


def _classes() -> dict[str, type]:
    if not DATACLASSES:
        DATACLASSES.update(_dataclasses())
    return DATACLASSES


@functools.cache
def code_version() -> str:
    """The version of the code that computes the stages (:func:`source_hash` of the installed
    ``esi`` package), computed once per process."""
    return source_hash(Path(__file__).resolve().parent)


def source_hash(package: str | os.PathLike[str]) -> str:
    """SHA-256 of every file of the package folder ``package`` by relative path and bytes
    (compiled ``__pycache__`` files excepted), with the Python version and the versions of
    :data:`_CODE_PACKAGES`. An edited function gives another hash, so a hand-over written by
    older code is never read."""
    root = Path(package)
    h = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                   and p.suffix not in (".pyc", ".pyo"))
    for p in files:
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    versions = [platform.python_version()]
    for name in _CODE_PACKAGES:
        try:
            versions.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name}=none")
    h.update("\0".join(versions).encode())
    return h.hexdigest()


def private_folder(path: Path) -> Path:
    """Create ``path`` (and its parents) and make it private to the user (0700).

    Raises
    ------
    HandoverError
        When ``path`` is a symbolic link or belongs to another user: hand-over files are
        then neither read nor written there.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.lstat()
    if os.path.islink(path) or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
        raise HandoverError(f"{path}: not a folder of this user; hand-over files are not used")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


# --- the JSON tree -------------------------------------------------------------------------

class _Writer:
    def __init__(self, folder: Path):
        self.folder = folder
        self.files: dict[str, str] = {}

    def table(self, flat: pd.DataFrame) -> str | None:
        if flat.shape[1] == 0:
            return None
        name = f"t{len(self.files)}.parquet"
        path = self.folder / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            flat.to_parquet(fh, engine="pyarrow", index=False)
        self.files[name] = _sha256(path)
        return name


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _encode(x: Any, w: _Writer) -> Any:
    if x is None or type(x) in (bool, int, str):
        return x
    if type(x) is float:
        return x if math.isfinite(x) else {"__t": "float", "v": repr(x)}
    if isinstance(x, np.generic) and x.dtype.kind in "biuf":
        return {"__t": "np", "dtype": x.dtype.str, "v": _encode(x.item(), w)}
    if type(x) is list:
        return [_encode(v, w) for v in x]
    if type(x) is tuple:
        return {"__t": "tuple", "v": [_encode(v, w) for v in x]}
    if type(x) is dict:
        return {"__t": "dict", "v": [[_encode(k, w), _encode(v, w)] for k, v in x.items()]}
    if type(x) is pd.DataFrame:
        return {"__t": "frame", **_encode_frame(x, w)}
    if type(x) is pd.Series:
        spec = _encode_frame(pd.DataFrame({0: x}), w)
        return {"__t": "series", "name": _encode(x.name, w), "attrs": _encode(x.attrs, w),
                **spec}
    if isinstance(x, pd.Index):
        return {"__t": "index", **_encode_frame(pd.DataFrame(index=x), w)}
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        name = f"{type(x).__module__}.{type(x).__qualname__}"
        if _classes().get(name) is not type(x):
            raise TypeError(f"cannot hand over a {name}")
        return {"__t": "dataclass", "class": name,
                "v": {f.name: _encode(getattr(x, f.name), w)
                      for f in dataclasses.fields(x) if f.init}}
    raise TypeError(f"cannot hand over a {type(x).__module__}.{type(x).__qualname__}")


def _encode_index_labels(idx: pd.Index, w: _Writer) -> dict[str, Any]:
    """An index small enough for the manifest (column labels)."""
    if type(idx) is pd.RangeIndex:
        return {"range": [idx.start, idx.stop, idx.step], "name": _encode(idx.name, w)}
    if isinstance(idx, pd.MultiIndex):
        raise TypeError("cannot hand over a table with several column levels")
    return {"values": [_encode(v.item() if isinstance(v, np.generic) else v, w)
                       for v in idx.tolist()],
            "dtype": str(idx.dtype), "name": _encode(idx.name, w)}


def _encode_frame(df: pd.DataFrame, w: _Writer) -> dict[str, Any]:
    idx = df.index
    data: dict[str, Any] = {}
    spec: dict[str, Any] = {"nrows": len(df)}
    if type(idx) is pd.RangeIndex:
        spec["index"] = {"range": [idx.start, idx.stop, idx.step], "name": _encode(idx.name, w)}
    else:
        levels = [idx.get_level_values(k) for k in range(idx.nlevels)]
        spec["index"] = {"levels": [{"name": _encode(lv.name, w), "dtype": str(lv.dtype)}
                                    for lv in levels],
                         "multi": isinstance(idx, pd.MultiIndex)}
        for k, lv in enumerate(levels):
            data[f"i{k}"] = lv.array
    spec["columns"] = _encode_index_labels(df.columns, w)
    spec["dtypes"] = [str(t) for t in df.dtypes]
    for j in range(df.shape[1]):
        data[f"c{j}"] = df.iloc[:, j].array
    spec["attrs"] = _encode(df.attrs, w)
    spec["file"] = w.table(pd.DataFrame(data))
    return spec


class _Reader:
    def __init__(self, folder: Path, files: dict[str, str]):
        self.folder = folder
        self.files = files

    def table(self, name: str | None, nrows: int) -> pd.DataFrame:
        if name is None:
            return pd.DataFrame(index=pd.RangeIndex(nrows))
        if name not in self.files:
            raise HandoverError(f"table {name!r} is not listed in the manifest")
        flat = pd.read_parquet(self.folder / name, engine="pyarrow")
        if len(flat) != nrows:
            raise HandoverError(f"{name}: {len(flat)} rows, the manifest says {nrows}")
        return flat


def _as_dtype(s: pd.Series, dtype: str) -> pd.Series:
    if str(s.dtype) == dtype:
        return s
    out = s.astype(pd.api.types.pandas_dtype(dtype))
    if str(out.dtype) != dtype:
        raise HandoverError(f"column of dtype {out.dtype}, the manifest says {dtype}")
    return out


def _decode_index_labels(spec: dict[str, Any], r: _Reader) -> pd.Index:
    if "range" in spec:
        return pd.RangeIndex(*spec["range"], name=_decode(spec["name"], r))
    return pd.Index([_decode(v, r) for v in spec["values"]],
                    dtype=pd.api.types.pandas_dtype(spec["dtype"]),
                    name=_decode(spec["name"], r))


def _decode_frame(spec: dict[str, Any], r: _Reader) -> pd.DataFrame:
    nrows = int(spec["nrows"])
    flat = r.table(spec["file"], nrows)
    ix = spec["index"]
    if "range" in ix:
        index = pd.RangeIndex(*ix["range"], name=_decode(ix["name"], r))
    else:
        levels = [pd.Index(_as_dtype(flat[f"i{k}"], lv["dtype"])).rename(_decode(lv["name"], r))
                  for k, lv in enumerate(ix["levels"])]
        index = pd.MultiIndex.from_arrays(levels) if ix["multi"] else levels[0]
    if len(index) != nrows:
        raise HandoverError(f"index of {len(index)} rows, the manifest says {nrows}")
    columns = _decode_index_labels(spec["columns"], r)
    dtypes = spec["dtypes"]
    if len(dtypes) != len(columns):
        raise HandoverError("the manifest's column labels and dtypes differ in number")
    cols = [_as_dtype(flat[f"c{j}"], t).reset_index(drop=True) for j, t in enumerate(dtypes)]
    if cols:
        df = pd.concat(cols, axis=1, ignore_index=True)
    else:
        df = pd.DataFrame(index=pd.RangeIndex(nrows))
    df.columns = columns
    df.index = index
    df.attrs = _decode(spec["attrs"], r)
    return df


def _decode(x: Any, r: _Reader) -> Any:
    if x is None or type(x) in (bool, int, float, str):
        return x
    if type(x) is list:
        return [_decode(v, r) for v in x]
    if type(x) is not dict:
        raise HandoverError(f"unexpected {type(x).__name__} in the manifest")
    tag = x.get("__t")
    if tag == "float":
        if x["v"] not in ("nan", "inf", "-inf"):
            raise HandoverError(f"bad float {x['v']!r}")
        return float(x["v"])
    if tag == "np":
        dtype = np.dtype(x["dtype"])
        if dtype.kind not in "biuf":
            raise HandoverError(f"numpy scalar of dtype {dtype} refused")
        return dtype.type(_decode(x["v"], r))
    if tag == "tuple":
        return tuple(_decode(v, r) for v in x["v"])
    if tag == "dict":
        return {_decode(k, r): _decode(v, r) for k, v in x["v"]}
    if tag == "frame":
        return _decode_frame(x, r)
    if tag == "series":
        s = _decode_frame(x, r).iloc[:, 0].rename(_decode(x["name"], r))
        s.attrs = _decode(x["attrs"], r)
        return s
    if tag == "index":
        return _decode_frame(x, r).index
    if tag == "dataclass":
        cls = _classes().get(x["class"])
        if cls is None:
            raise HandoverError(f"class {x['class']!r} is not one a hand-over may hold")
        fields = {f.name for f in dataclasses.fields(cls) if f.init}
        values = x["v"]
        if set(values) != fields:
            raise HandoverError(f"{x['class']}: fields {sorted(values)}, expected "
                                f"{sorted(fields)}")
        return cls(**{k: _decode(v, r) for k, v in values.items()})
    raise HandoverError(f"unknown tag {tag!r} in the manifest")


# --- save, load, compare -------------------------------------------------------------------

def save(folder: Path, value: Any, meta: dict[str, Any]) -> bool:
    """Write ``value`` as the hand-over ``folder`` (which must not exist), atomically.

    The value is written into a private temporary folder beside ``folder``, read back and
    compared with ``value`` (:func:`same_value`); only an exact copy is renamed to
    ``folder``. Another process that published the same hand-over first wins (its copy is
    identical).

    Returns
    -------
    bool
        True when ``folder`` now holds the hand-over; False when the value cannot be handed
        over exactly (it is then kept in memory only).

    Raises
    ------
    TypeError
        When ``value`` holds an object the format does not know.
    HandoverError
        When ``folder`` exists and is not a valid hand-over of ``meta`` (it is left as it is).
    """
    parent = private_folder(folder.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=parent))
    try:
        w = _Writer(tmp)
        tree = _encode(value, w)
        meta_json = json.loads(json.dumps(meta, sort_keys=True, default=str))
        manifest = {"format": FORMAT, "meta": meta_json, "files": w.files, "value": tree}
        fd = os.open(tmp / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, sort_keys=True, allow_nan=False)
        if not same_value(load(tmp, meta), value):
            return False
        try:
            os.rename(tmp, folder)
        except OSError:  # published meanwhile by another notebook of the run?
            load(folder, meta)  # raises HandoverError when what is there is not this one
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load(folder: Path, meta: dict[str, Any]) -> Any:
    """Read the hand-over ``folder`` written by :func:`save` with the same ``meta``.

    Raises
    ------
    HandoverError
        When the folder is missing or unreadable, its manifest does not parse, its format or
        key parts differ from ``meta``, a table's bytes differ from the hash recorded, or the
        tree holds anything :func:`save` does not write.
    """
    try:
        with open(folder / MANIFEST, "rb") as fh:
            raw = fh.read(_MAX_MANIFEST_BYTES + 1)
        if len(raw) > _MAX_MANIFEST_BYTES:
            raise HandoverError("manifest too large")
        manifest = json.loads(raw.decode("utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise HandoverError(f"not a {FORMAT} hand-over")
        expected = json.loads(json.dumps(meta, sort_keys=True, default=str))
        if manifest.get("meta") != expected:
            raise HandoverError("its key parts differ from the ones asked for")
        files = manifest.get("files")
        if not isinstance(files, dict):
            raise HandoverError("no file list")
        for name, digest in files.items():
            if "/" in name or "\\" in name or name.startswith("."):
                raise HandoverError(f"file name {name!r} refused")
            if _sha256(folder / name) != digest:
                raise HandoverError(f"{name}: bytes differ from the manifest's hash")
        return _decode(manifest["value"], _Reader(folder, files))
    except HandoverError:
        raise
    except Exception as exc:  # any parse error: the hand-over is not trusted
        raise HandoverError(f"{folder.name}: {type(exc).__name__}: {exc}") from None


def same_value(a: Any, b: Any) -> bool:
    """Whether two hand-over values are identical: same types, dtypes, index, labels,
    ``attrs`` and values (floats bit for bit; NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, pd.DataFrame):
        try:
            pd.testing.assert_frame_equal(a, b, check_exact=True, check_index_type=True,
                                          check_column_type=True, check_flags=True)
        except AssertionError:
            return False
        return same_value(a.attrs, b.attrs) and all(
            _same_bits(a.iloc[:, j], b.iloc[:, j]) for j in range(a.shape[1]))
    if isinstance(a, pd.Series):
        try:
            pd.testing.assert_series_equal(a, b, check_exact=True, check_index_type=True)
        except AssertionError:
            return False
        return same_value(a.attrs, b.attrs) and _same_bits(a, b)
    if isinstance(a, pd.Index):
        try:
            pd.testing.assert_index_equal(a, b, exact=True, check_exact=True)
        except AssertionError:
            return False
        return True
    if dataclasses.is_dataclass(a):
        return all(same_value(getattr(a, f.name), getattr(b, f.name))
                   for f in dataclasses.fields(a))
    if isinstance(a, dict):
        return (list(a) == list(b)
                and all(same_value(a[k], b[k]) for k in a))
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float | np.floating):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a)
                                                     == math.copysign(1, b))
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and a == b
    return a == b


def _same_bits(a: pd.Series, b: pd.Series) -> bool:
    """Float columns: the same bits (0.0 and -0.0 differ; any NaN equals any NaN)."""
    if a.dtype.kind != "f" or not isinstance(a.dtype, np.dtype):
        return True
    x, y = a.to_numpy(), b.to_numpy()
    nan = np.isnan(x)
    bits = f"i{x.dtype.itemsize}"
    return bool(np.array_equal(nan, np.isnan(y))
                and np.array_equal(x[~nan].view(bits), y[~nan].view(bits)))
