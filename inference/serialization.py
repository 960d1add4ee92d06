"""Saving and loading probnn's files without pickle: nothing in a file is executed on load.

Why. ``torch.load`` without ``weights_only`` unpickles, and unpickling a crafted file runs any
code its author chose (a ``__reduce__`` naming ``os.system`` is enough). Checkpoints and the
report's cached results are files a user may receive from someone else, so every file probnn
reads is loaded with ``torch.load(weights_only=True)``, whose unpickler only rebuilds tensors
and plain containers and refuses every other global. The objects probnn saves (NumPy arrays,
DataFrames, result dataclasses, fitted Bayesian models, arviz's LOO results) are therefore
first :func:`encode`\\ d into such plain data and :func:`decode`\\ d back after loading.

Format. :func:`encode` maps an object to a tree of tensors, ``None``, ``bool``, ``int``,
``float``, ``str``, lists, tuples and dicts with ``str`` keys. Everything else
becomes a dict tagged with the reserved key ``"__probnn__"`` naming what it was, with its
parts beside the tag, e.g. ``{"__probnn__": "ndarray", "dtype": "<f8", "shape": (3,),
"data": <uint8 tensor of the raw bytes>}`` or ``{"__probnn__": "dataframe", "columns": ...,
"index": ..., "values": [...]}``. Tags: ``ndarray``, ``npscalar``, ``complex``, ``path``,
``dict`` (non-``str`` keys), ``bytes`` (a uint8 tensor: pickled ``bytes`` need
``_codecs.encode``, which torch 2.4's ``weights_only`` unpickler refuses; raw ``bytes`` that
older files hold are still read), ``odict`` (an ``OrderedDict``, e.g. a ``state_dict()`` with its
``_metadata``), ``index``, ``series``, ``dataframe``, ``elpd`` (arviz's ``ELPDData``),
``dataarray`` (xarray), ``dataclass``, ``namedtuple`` and ``object`` (a class with its own
``to_state``/``from_state``). A plain dict that holds the reserved key cannot be saved.
:func:`save` writes ``torch.save(encode(obj))`` atomically; :func:`load` is
``decode(torch.load(path, map_location="cpu", weights_only=True))``.

Classes. Dataclasses and NamedTuples are saved field by field and rebuilt by calling the class,
but only classes on the allow-list: a file names its classes by ``module.qualname`` and
:func:`decode` looks that name up in the allow-list dict, so a file can neither import a module
nor call anything that is not listed (an unknown name is a :class:`SerializationError`).
A class gets on the list with the :func:`serializable` decorator where it is defined::

    from probnn.inference.serialization import serializable

    @serializable
    @dataclass
    class Result:
        name: str
        table: pd.DataFrame

Its module must have been imported before a file holding it is decoded (the report imports a
job's task module, which imports every class its result holds). A class whose objects hold
``torch.nn.Module``\\ s (which are never saved: rebuilding one means running its class) gives
itself a state/rebuild protocol instead of fields: ``to_state(self)`` returning plain,
encodable data (settings and ``state_dict()``\\ s) and a classmethod ``from_state(cls, state)``
rebuilding the object the way it was first built (see
:class:`~probnn.inference.bayes_regression.BayesianRegressionFit`). An object of any other
type raises ``TypeError`` at save time, naming its type and where it sits in the structure, so
a new result type that cannot be saved fails in the tests rather than in a cache.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import shutil
import tempfile
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

TAG = "__probnn__"
"""The reserved key that marks an encoded object."""

_ALLOWED: dict[str, type] = {}
# Fixed-size dtypes whose raw bytes are the whole value: bool, ints, floats, complex, datetimes,
# timedeltas and fixed-width strings. Object and structured (void) dtypes are refused.
_ARRAY_KINDS = frozenset("biufcmMSU")


class SerializationError(ValueError):
    """Data that :func:`decode` cannot turn back into objects: an unknown tag or class, a
    malformed part, or a plain dict holding the reserved key at :func:`encode` time."""


class UnreadableFile(SerializationError):
    """:func:`load` could not read a file as probnn data: not a torch file, truncated, holding
    pickled objects (which are never unpickled), or malformed. ``path`` and ``reason`` say
    which file and why."""

    def __init__(self, path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path} is not a readable probnn file: {reason}")


def class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_namedtuple_class(cls: type) -> bool:
    return issubclass(cls, tuple) and hasattr(cls, "_fields")


def _has_protocol(cls: type) -> bool:
    return callable(getattr(cls, "to_state", None)) and callable(getattr(cls, "from_state", None))


def serializable(cls: type) -> type:
    """Class decorator: put ``cls`` (a dataclass, a NamedTuple, or a class with
    ``to_state``/``from_state``) on the allow-list of classes :func:`decode` may rebuild."""
    if not (dataclasses.is_dataclass(cls) or _is_namedtuple_class(cls) or _has_protocol(cls)):
        raise TypeError(f"{class_name(cls)} is neither a dataclass nor a NamedTuple and has no "
                        "to_state/from_state: it cannot be allow-listed")
    _ALLOWED[class_name(cls)] = cls  # a reloaded module replaces its old class
    return cls


def allowed_classes() -> dict[str, type]:
    """The allow-list: class name (``module.qualname``) -> class."""
    return dict(_ALLOWED)


# ----------------------------------------------------------------------------- encode
def encode(obj: Any, where: str | None = None) -> Any:
    """``obj`` as plain data that ``torch.load(weights_only=True)`` reads back (see the module
    docstring). ``where`` names ``obj`` in error messages (default: its type's name)."""
    return _encode(obj, type(obj).__name__ if where is None else where)


def _unsupported(obj, where: str, hint: str = "") -> TypeError:
    return TypeError(f"cannot save a {class_name(type(obj))} at {where}"
                     + (f": {hint}" if hint else ""))


def _encode(obj, where: str):
    t = type(obj)
    if obj is None or t in (bool, int, float, str):
        return obj
    if t is bytes:  # pickled bytes need _codecs.encode, which torch 2.4's weights_only refuses
        return {TAG: "bytes", "data": torch.from_numpy(np.frombuffer(obj, dtype=np.uint8).copy())}
    if t is torch.Tensor or t is torch.nn.Parameter:
        return obj
    if t is np.ndarray:
        return _encode_ndarray(obj, where)
    if isinstance(obj, np.generic):
        return {TAG: "npscalar", "array": _encode_ndarray(np.asarray(obj), where)}
    if t is complex:
        return {TAG: "complex", "real": obj.real, "imag": obj.imag}
    if isinstance(obj, Path):
        return {TAG: "path", "path": str(obj)}
    name = class_name(t)
    if _ALLOWED.get(name) is t:
        return _encode_allowed(obj, name, where)
    if dataclasses.is_dataclass(obj) or _is_namedtuple_class(t):
        raise _unsupported(obj, where, "a dataclass or NamedTuple that is not allow-listed "
                                       "(decorate its class with probnn.inference."
                                       "serialization.serializable)")
    if isinstance(obj, pd.Series) and t.__name__ == "ELPDData" and t.__module__.startswith("arviz"):
        return {TAG: "elpd", **_encode_series_parts(obj, where)}
    if t is pd.DataFrame:
        return _encode_frame(obj, where)
    if t is pd.Series:
        return {TAG: "series", **_encode_series_parts(obj, where)}
    if isinstance(obj, pd.Index):
        return _encode_index(obj, where)
    if t.__module__.split(".")[0] == "xarray" and t.__name__ == "DataArray":
        return _encode_dataarray(obj, where)
    if t is OrderedDict:
        return {TAG: "odict", "items": [[_encode(k, f"{where} key {k!r}"), _encode(v, f"{where}[{k!r}]")]
                                         for k, v in obj.items()],
                "metadata": _encode(getattr(obj, "_metadata", None), f"{where}._metadata")}
    if t is dict:
        if all(type(k) is str for k in obj):
            if TAG in obj:
                raise SerializationError(f"cannot save the dict at {where}: its key {TAG!r} is "
                                         "reserved for encoded objects")
            return {k: _encode(v, f"{where}[{k!r}]") for k, v in obj.items()}
        return {TAG: "dict", "items": [[_encode(k, f"{where} key {k!r}"), _encode(v, f"{where}[{k!r}]")]
                                        for k, v in obj.items()]}
    if t is list:
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if t is tuple:
        return tuple(_encode(v, f"{where}[{i}]") for i, v in enumerate(obj))
    if isinstance(obj, torch.nn.Module):
        raise _unsupported(obj, where, "modules are never saved; give the class holding it "
                                       "to_state/from_state (see probnn.inference.serialization)")
    raise _unsupported(obj, where)


def _encode_allowed(obj, name: str, where: str):
    cls = type(obj)
    if _has_protocol(cls):
        return {TAG: "object", "class": name, "state": _encode(obj.to_state(), f"{where}.to_state()")}
    if _is_namedtuple_class(cls):
        return {TAG: "namedtuple", "class": name,
                "fields": {f: _encode(getattr(obj, f), f"{where}.{f}") for f in cls._fields}}
    return {TAG: "dataclass", "class": name,
            "fields": {f.name: _encode(getattr(obj, f.name), f"{where}.{f.name}")
                       for f in dataclasses.fields(obj)}}


def _encode_ndarray(a: np.ndarray, where: str) -> dict:
    if a.dtype.kind not in _ARRAY_KINDS or a.dtype.fields is not None:
        raise TypeError(f"cannot save the array of dtype {a.dtype} at {where}: only arrays of "
                        "numbers, booleans, datetimes or fixed-width strings")
    raw = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    return {TAG: "ndarray", "dtype": a.dtype.str, "shape": tuple(int(n) for n in a.shape),
            "data": torch.from_numpy(raw.copy())}


def _encode_values(values, where: str) -> dict:
    """A column's or an index's values, keeping their dtype."""
    dtype = values.dtype
    if isinstance(dtype, pd.StringDtype):
        return {"kind": "string", "storage": dtype.storage,
                "na": "NA" if dtype.na_value is pd.NA else "nan",
                "items": [None if pd.isna(v) else str(v) for v in values]}
    if isinstance(values, pd.arrays.NumpyExtensionArray):
        values = values.to_numpy()
        dtype = values.dtype
    if isinstance(dtype, np.dtype):
        a = np.asarray(values)
        if dtype == object:
            return {"kind": "object", "items": [_encode(v, f"{where}[{i}]") for i, v in enumerate(a)]}
        return {"kind": "numpy", "array": _encode_ndarray(a, where)}
    raise TypeError(f"cannot save the pandas dtype {dtype} at {where}")


def _encode_index(idx: pd.Index, where: str) -> dict:
    name = _encode(idx.name, f"{where}.name")
    if type(idx) is pd.RangeIndex:
        return {TAG: "index", "kind": "range", "start": idx.start, "stop": idx.stop,
                "step": idx.step, "name": name}
    if isinstance(idx, pd.MultiIndex):
        return {TAG: "index", "kind": "multi", "names": [_encode(n, f"{where}.names") for n in idx.names],
                "levels": [_encode_values(idx.get_level_values(i), f"{where}.level{i}")
                           for i in range(idx.nlevels)]}
    return {TAG: "index", "kind": "values", "values": _encode_values(idx, where), "name": name}


def _encode_series_parts(s: pd.Series, where: str) -> dict:
    return {"values": _encode_values(s.array, where), "index": _encode_index(s.index, f"{where}.index"),
            "name": _encode(s.name, f"{where}.name"), "attrs": _encode(dict(s.attrs), f"{where}.attrs")}


def _encode_frame(df: pd.DataFrame, where: str) -> dict:
    return {TAG: "dataframe", "columns": _encode_index(df.columns, f"{where}.columns"),
            "index": _encode_index(df.index, f"{where}.index"),
            "values": [_encode_values(df.iloc[:, i].array, f"{where}[{c!r}]")
                       for i, c in enumerate(df.columns)],
            "attrs": _encode(dict(df.attrs), f"{where}.attrs")}


def _encode_dataarray(da, where: str) -> dict:
    return {TAG: "dataarray", "values": _encode_ndarray(np.asarray(da.values), where),
            "dims": tuple(str(d) for d in da.dims), "name": _encode(da.name, f"{where}.name"),
            "attrs": _encode(dict(da.attrs), f"{where}.attrs"),
            "coords": [[str(n), tuple(str(d) for d in c.dims),
                        _encode_ndarray(np.asarray(c.values), f"{where}.coords[{n!r}]")]
                       for n, c in da.coords.items()]}


# ----------------------------------------------------------------------------- decode
def decode(data: Any, where: str = "data") -> Any:
    """The objects :func:`encode` was given, from its output. Raises
    :class:`SerializationError` on anything :func:`encode` does not write."""
    return _decode(data, where)


def _bad(where: str, what: str) -> SerializationError:
    return SerializationError(f"{where}: {what}")


def _decode(d, where: str):
    t = type(d)
    if d is None or t in (bool, int, float, str, bytes):
        return d
    if t is torch.Tensor or t is torch.nn.Parameter:
        return d
    if t is list:
        return [_decode(v, f"{where}[{i}]") for i, v in enumerate(d)]
    if t is tuple:
        return tuple(_decode(v, f"{where}[{i}]") for i, v in enumerate(d))
    if t is dict:
        if TAG in d:
            tag = d[TAG]
            decoder = _DECODERS.get(tag) if type(tag) is str else None
            if decoder is None:
                raise _bad(where, f"unknown encoded type {tag!r}")
            return decoder(d, where)
        if not all(type(k) is str for k in d):
            raise _bad(where, "a plain dict with keys that are not strings")
        return {k: _decode(v, f"{where}[{k!r}]") for k, v in d.items()}
    raise _bad(where, f"unexpected {class_name(t)}")


def _part(d: dict, key: str, types: type | tuple, where: str):
    if key not in d:
        raise _bad(where, f"encoded {d.get(TAG)} lacks {key!r}")
    v = d[key]
    if not isinstance(v, types) or (isinstance(v, bool) and bool not in (
            types if isinstance(types, tuple) else (types,))):
        raise _bad(where, f"{key!r} of the encoded {d.get(TAG)} is a {type(v).__name__}")
    return v


def _decode_ndarray(d: dict, where: str) -> np.ndarray:
    if type(d) is not dict or d.get(TAG) != "ndarray":
        raise _bad(where, "expected an encoded array")
    try:
        dtype = np.dtype(_part(d, "dtype", str, where))
    except TypeError as e:
        raise _bad(where, f"bad dtype ({e})") from e
    if dtype.kind not in _ARRAY_KINDS or dtype.fields is not None:
        raise _bad(where, f"arrays of dtype {dtype} are never saved")
    shape = _part(d, "shape", (tuple, list), where)
    if not all(type(n) is int and n >= 0 for n in shape):
        raise _bad(where, f"bad shape {shape!r}")
    data = _part(d, "data", torch.Tensor, where)
    if data.dtype != torch.uint8 or data.dim() != 1 or data.numel() != dtype.itemsize * int(np.prod(shape)):
        raise _bad(where, f"{data.numel()} bytes do not hold an array {tuple(shape)} of {dtype}")
    return data.numpy().view(dtype).reshape(shape).copy()


def _decode_npscalar(d, where):
    a = _decode_ndarray(_part(d, "array", dict, where), where)
    if a.shape != ():
        raise _bad(where, "a NumPy scalar with a shape")
    return a[()]


def _decode_bytes(d, where):
    data = _part(d, "data", torch.Tensor, where)
    if data.dtype != torch.uint8 or data.dim() != 1:
        raise _bad(where, "the encoded bytes are not a 1-d uint8 tensor")
    return data.numpy().tobytes()


def _decode_complex(d, where):
    return complex(_part(d, "real", float, where), _part(d, "imag", float, where))


def _decode_path(d, where):
    return Path(_part(d, "path", str, where))


def _decode_items(d, where):
    items = _part(d, "items", list, where)
    if not all(type(kv) is list and len(kv) == 2 for kv in items):
        raise _bad(where, "items that are not [key, value] pairs")
    out = []
    for i, (k, v) in enumerate(items):
        key = _decode(k, f"{where} key {i}")
        try:
            hash(key)
        except TypeError as e:
            raise _bad(where, f"an unhashable key {key!r}") from e
        out.append((key, _decode(v, f"{where}[{key!r}]")))
    return out


def _decode_dict(d, where):
    return dict(_decode_items(d, where))


def _decode_odict(d, where):
    out = OrderedDict(_decode_items(d, where))
    metadata = _decode(d.get("metadata"), f"{where}._metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise _bad(where, "_metadata that is not a dict")
        out._metadata = metadata  # what load_state_dict reads the modules' versions from
    return out


def _decode_values(d, where):
    if type(d) is not dict:
        raise _bad(where, "expected encoded values")
    kind = d.get("kind")
    if kind == "numpy":
        return _decode_ndarray(_part(d, "array", dict, where), where)
    if kind == "object":
        items = _part(d, "items", list, where)
        out = np.empty(len(items), dtype=object)
        for i, v in enumerate(items):  # element by element: a list of arrays would stack
            out[i] = _decode(v, f"{where}[{i}]")
        return out
    if kind == "string":
        storage, na = _part(d, "storage", str, where), _part(d, "na", str, where)
        if storage not in ("python", "pyarrow") or na not in ("NA", "nan"):
            raise _bad(where, f"unknown string dtype ({storage}, {na})")
        items = _part(d, "items", list, where)
        if not all(v is None or type(v) is str for v in items):
            raise _bad(where, "string values that are not strings")
        return pd.array(items, dtype=pd.StringDtype(storage, na_value=pd.NA if na == "NA" else np.nan))
    raise _bad(where, f"unknown kind of values {kind!r}")


def _as_index(values, name):
    dtype = values.dtype
    return pd.Index(values, dtype=dtype, name=name, copy=False)


def _decode_index(d, where):
    if type(d) is not dict or d.get(TAG) != "index":
        raise _bad(where, "expected an encoded index")
    kind = d.get("kind")
    try:
        if kind == "range":
            return pd.RangeIndex(_part(d, "start", int, where), _part(d, "stop", int, where),
                                 _part(d, "step", int, where), name=_decode(d.get("name"), where))
        if kind == "multi":
            levels = [_decode_values(v, f"{where}.level{i}")
                      for i, v in enumerate(_part(d, "levels", list, where))]
            names = _decode(_part(d, "names", list, where), f"{where}.names")
            return pd.MultiIndex.from_arrays([_as_index(v, None) for v in levels], names=names)
        if kind == "values":
            return _as_index(_decode_values(_part(d, "values", dict, where), where),
                             _decode(d.get("name"), f"{where}.name"))
    except (TypeError, ValueError) as e:
        if isinstance(e, SerializationError):
            raise
        raise _bad(where, f"cannot rebuild the index ({e})") from e
    raise _bad(where, f"unknown kind of index {kind!r}")


def _attrs(d, where):
    attrs = _decode(d.get("attrs", {}), f"{where}.attrs")
    if type(attrs) is not dict:
        raise _bad(where, "attrs that are not a dict")
    return attrs


def _series_parts(d, where):
    values = _decode_values(_part(d, "values", dict, where), where)
    index = _decode_index(_part(d, "index", dict, where), f"{where}.index")
    if len(values) != len(index):
        raise _bad(where, f"{len(values)} values for an index of {len(index)}")
    return values, index, _decode(d.get("name"), f"{where}.name"), _attrs(d, where)


def _decode_series(d, where):
    values, index, name, attrs = _series_parts(d, where)
    s = pd.Series(values, index=index, name=name, dtype=values.dtype, copy=False)
    s.attrs.update(attrs)
    return s


def _decode_elpd(d, where):
    values, index, name, attrs = _series_parts(d, where)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # arviz's announcement of its refactor
        from arviz.stats.stats_utils import ELPDData
    s = ELPDData(values, index=index, name=name, dtype=values.dtype, copy=False)
    s.attrs.update(attrs)
    return s


def _decode_frame(d, where):
    columns = _decode_index(_part(d, "columns", dict, where), f"{where}.columns")
    index = _decode_index(_part(d, "index", dict, where), f"{where}.index")
    encoded = _part(d, "values", list, where)
    if len(encoded) != len(columns):
        raise _bad(where, f"{len(encoded)} columns of values for {len(columns)} column labels")
    values = [_decode_values(v, f"{where}[{c!r}]") for v, c in zip(encoded, columns)]
    if any(len(v) != len(index) for v in values):
        raise _bad(where, f"a column whose length is not the index's ({len(index)})")
    # positional keys, then the real labels: labels may repeat or be of any type
    df = pd.DataFrame({i: pd.Series(v, index=index, dtype=v.dtype, copy=False)
                       for i, v in enumerate(values)}, index=index)
    df.columns = columns
    df.attrs.update(_attrs(d, where))
    return df


def _decode_dataarray(d, where):
    import xarray as xr
    values = _decode_ndarray(_part(d, "values", dict, where), where)
    dims = _part(d, "dims", (tuple, list), where)
    coords = {}
    for i, c in enumerate(_part(d, "coords", list, where)):
        if not (type(c) is list and len(c) == 3 and type(c[0]) is str):
            raise _bad(where, f"coordinate {i} is malformed")
        coords[c[0]] = (tuple(c[1]), _decode_ndarray(c[2], f"{where}.coords[{c[0]!r}]"))
    if not all(type(n) is str for n in dims) or not all(
            all(type(n) is str for n in c[0]) for c in coords.values()):
        raise _bad(where, "dimension names that are not strings")
    try:
        return xr.DataArray(values, coords=coords, dims=tuple(dims),
                            name=_decode(d.get("name"), f"{where}.name"), attrs=_attrs(d, where))
    except (TypeError, ValueError) as e:
        raise _bad(where, f"cannot rebuild the DataArray ({e})") from e


def _allowed_class(d, where, kind: str) -> type:
    name = _part(d, "class", str, where)
    cls = _ALLOWED.get(name)
    if cls is None:
        raise _bad(where, f"class {name} is not on the allow-list of classes probnn rebuilds "
                          "(probnn.inference.serialization.serializable; its module must be "
                          "imported first)")
    if kind == "object" and not _has_protocol(cls) or kind != "object" and _has_protocol(cls):
        raise _bad(where, f"class {name} is not saved as {kind}")
    if kind == "namedtuple" and not _is_namedtuple_class(cls) or \
            kind == "dataclass" and not dataclasses.is_dataclass(cls):
        raise _bad(where, f"class {name} is not a {kind}")
    return cls


def _decode_fields(d, where, kind):
    cls = _allowed_class(d, where, kind)
    fields = _part(d, "fields", dict, where)
    known = (cls._fields if kind == "namedtuple" else [f.name for f in dataclasses.fields(cls)])
    unknown = [f for f in fields if f not in known]
    if unknown:
        raise _bad(where, f"{class_name(cls)} has no field(s) {', '.join(unknown)}")
    values = {k: _decode(v, f"{where}.{k}") for k, v in fields.items()}
    if kind == "dataclass":
        late = {f.name for f in dataclasses.fields(cls) if not f.init}
        args = {k: v for k, v in values.items() if k not in late}
    else:
        late, args = set(), values
    try:
        obj = cls(**args)
    except TypeError as e:
        raise _bad(where, f"cannot rebuild {class_name(cls)} ({e})") from e
    for k in late & set(values):
        object.__setattr__(obj, k, values[k])  # frozen dataclasses too
    return obj


def _decode_object(d, where):
    cls = _allowed_class(d, where, "object")
    state = _decode(d.get("state"), f"{where}.state")
    try:
        return cls.from_state(state)
    except SerializationError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, RuntimeError) as e:
        raise _bad(where, f"cannot rebuild {class_name(cls)} ({type(e).__name__}: {e})") from e


_DECODERS: dict[str, Callable[[dict, str], Any]] = {
    "ndarray": _decode_ndarray, "npscalar": _decode_npscalar, "complex": _decode_complex,
    "bytes": _decode_bytes,
    "path": _decode_path, "dict": _decode_dict, "odict": _decode_odict, "index": _decode_index,
    "series": _decode_series, "elpd": _decode_elpd, "dataframe": _decode_frame,
    "dataarray": _decode_dataarray,
    "dataclass": lambda d, where: _decode_fields(d, where, "dataclass"),
    "namedtuple": lambda d, where: _decode_fields(d, where, "namedtuple"),
    "object": _decode_object,
}


# ----------------------------------------------------------------------------- files
def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once: os.umask can only be read by setting it, which is not safe while threads run.
_UMASK = _current_umask()


def write_atomically(path: str | os.PathLike, write: Callable[[Any], None]) -> Path:
    """``write(f)`` into a uniquely named temporary file (binary) beside ``path``, flushed to
    disk, then renamed over ``path``: a reader sees the old file or the whole new one, and
    concurrent writers never share a temporary file. On any failure the temporary file goes."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; give it a normal file's mode
        os.replace(tmp, path)
    except RuntimeError as e:
        # torch's writer reports a full disk as "[enforce fail at inline_container.cc] ...
        # unexpected pos": say what the OS would
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        full = shutil.disk_usage(path.parent).free < 64 * 2**20
        raise OSError(errno.ENOSPC if full else errno.EIO,
                      "no space left on the device" if full else
                      f"could not write the file ({' '.join(str(e).split())[:120]})",
                      str(path)) from e
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def save(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``encode(obj)`` to ``path`` atomically (:func:`write_atomically`). Encoding errors
    (``TypeError`` for an unsupported type) are raised before anything is written."""
    data = encode(obj)
    return write_atomically(path, lambda f: torch.save(data, f))


def _reason(e: BaseException) -> str:
    """One line saying why torch could not load a file (its messages span lines and, for a
    pickle, advise loading it unsafely)."""
    text = str(e)
    if isinstance(e, EOFError) or not text.strip():
        return "the file is empty or cut short"
    if "Weights only load failed" in text:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "nsupported" in ln or "WeightsUnpickler" in ln), "")
        detail = detail.split("WeightsUnpickler error:")[-1].split(". Please use")[0].strip()
        return ("it holds pickled Python objects, which probnn never unpickles"
                + (f" ({detail[:200]})" if detail else ""))
    line = " ".join(text.split()).split(". ")[0]  # torch appends paragraphs of advice
    return line if len(line) <= 200 else line[:197] + "..."


def load(path: str | os.PathLike) -> Any:
    """The object :func:`save` wrote to ``path``, read with ``weights_only=True``.

    Raises :class:`UnreadableFile` when the file is not probnn data (a file that cannot be
    opened raises the usual ``OSError``)."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as e:  # truncated, foreign or pickled: torch raises many types
        raise UnreadableFile(path, _reason(e)) from e
    try:
        return decode(data, path.name)
    except SerializationError as e:
        raise UnreadableFile(path, str(e)) from e
