"""Reading Ma's model file in each MATLAB format it comes in, down to plain arrays.

Both files hold one variable `model`, a 1×1 struct with `rf` (a cell of 3 `regRF_train` structs) and `linear`
(4×1 double). They differ in container only:

- MATLAB 5/7 (`save(..., '-v7')`, MATLAB's default, and what pyiqa's `NRQM_model.mat` is: scipy reads it):
  a 128-byte text header, then tagged elements, compressed in v7. Read with scipy.
- MATLAB 7.3 (`save(..., '-v7.3')`): an HDF5 file behind a 512-byte user block. The struct `model` is an HDF5
  group whose members are its fields; the cell `rf` is a dataset of object references into `#refs#`, each
  pointing at a group (one forest struct); every array is stored with its dimensions reversed (MATLAB is
  column-major), so a nodes×trees field reads as trees×nodes and is transposed back. Read with h5py, which
  sreval does not require: without it a v7.3 file is refused with a message saying how to read or convert it.

Whatever the container, the result is the same `RawModel`: per forest, each field as MATLAB shows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from sreval.errors import SrevalError

#: The randomForest fields the regression needs (split structure, split points, node predictions).
FOREST_FIELDS = ("lDau", "rDau", "mbest", "upper", "avnode")


@dataclass(frozen=True)
class RawModel:
    """The model file's content as MATLAB shows it: per forest, field name → array; linear weights; container."""

    forests: list[dict[str, np.ndarray]]
    linear: np.ndarray
    file_format: str


def _not_model(path: Path, why: str) -> SrevalError:
    return SrevalError(f"{path}: not an NRQM model file: {why}")


def mat_version(path: Path) -> int:
    """0 (v4), 1 (v5/v7) or 2 (v7.3, HDF5), from the file's header; an error names the file."""
    try:
        major, _ = scipy.io.matlab.matfile_version(str(path))
    except FileNotFoundError as e:
        raise SrevalError(f"NRQM model file not found: {path}") from e
    except Exception as e:  # scipy raises several types for non-.mat content
        raise SrevalError(f"{path}: cannot read as a MATLAB .mat file ({e})") from e
    return int(major)


def read_model_file(path: Path) -> RawModel:
    path = Path(path)
    return _read_hdf5(path) if mat_version(path) == 2 else _read_v5(path)


# --- MATLAB 5/7 ---------------------------------------------------------------------------------------------


def _field(path: Path, record: Any, name: str, where: str) -> Any:
    names = record.dtype.names or ()
    if name not in names:
        raise _not_model(path, f"{where} has no field '{name}' (fields: {', '.join(names)})")
    return record[name]


def _single(path: Path, value: Any, where: str) -> Any:
    if not isinstance(value, np.ndarray) or value.size != 1:
        raise _not_model(path, f"{where} should be a 1×1 struct")
    return value.reshape(-1)[0]


def _read_v5(path: Path) -> RawModel:
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as e:  # scipy raises several types for damaged content
        raise SrevalError(f"{path}: cannot read as a MATLAB .mat file ({e})") from e
    if "model" not in mat:
        found = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        raise _not_model(path, f"no variable 'model' (variables: {found})")
    model = _single(path, mat["model"], "variable 'model'")
    if not isinstance(model, np.void):
        raise _not_model(path, "variable 'model' is not a struct")
    rf = np.asarray(_field(path, model, "rf", "model"))
    linear = np.asarray(_field(path, model, "linear", "model"))
    if rf.dtype != object or rf.size != 3:
        raise SrevalError(f"{path}: model.rf should be a cell of 3 forests, got shape {rf.shape}")
    forests = []
    for i, cell in enumerate(rf.reshape(-1)):
        where = f"model.rf{{{i + 1}}}"
        record = _single(path, cell, where)
        forests.append({name: np.asarray(_field(path, record, name, where)) for name in FOREST_FIELDS})
    return RawModel(forests, linear, "MATLAB 5/7 .mat")


# --- MATLAB 7.3 (HDF5) ----------------------------------------------------------------------------------------


def _read_hdf5(path: Path) -> RawModel:
    try:
        import h5py
    except ImportError as e:
        raise SrevalError(
            f"{path} is a MATLAB 7.3 (HDF5) .mat file; reading it needs the h5py package (pip install h5py), "
            "or re-save it in MATLAB as version 7: load it, then save(FILE, 'model', '-v7')"
        ) from e
    try:
        with h5py.File(path, "r") as f:
            return _hdf5_model(path, f, h5py)
    except SrevalError:
        raise
    except Exception as e:  # h5py raises several types for damaged content
        raise SrevalError(f"{path}: cannot read as a MATLAB 7.3 .mat file ({e})") from e


def _hdf5_member(path: Path, group: Any, name: str, where: str) -> Any:
    if name not in group:
        fields = ", ".join(k for k in group if not k.startswith("#"))
        raise _not_model(path, f"{where} has no field '{name}' (fields: {fields})")
    return group[name]


def _hdf5_model(path: Path, f: Any, h5py: Any) -> RawModel:
    if "model" not in f:
        found = ", ".join(k for k in f if not k.startswith("#")) or "none"
        raise _not_model(path, f"no variable 'model' (variables: {found})")
    model = f["model"]
    if not isinstance(model, h5py.Group):
        raise _not_model(path, "variable 'model' is not a struct")
    rf = _hdf5_member(path, model, "rf", "model")
    linear = np.asarray(_hdf5_member(path, model, "linear", "model")).T
    refs = np.asarray(rf).reshape(-1)
    if refs.dtype != object or refs.size != 3:
        raise SrevalError(f"{path}: model.rf should be a cell of 3 forests, got shape {np.asarray(rf).T.shape}")
    forests = []
    for i, ref in enumerate(refs):
        where = f"model.rf{{{i + 1}}}"
        forest = f[ref]
        if not isinstance(forest, h5py.Group):
            raise _not_model(path, f"{where} should be a 1×1 struct")
        forests.append({name: np.asarray(_hdf5_member(path, forest, name, where)).T for name in FOREST_FIELDS})
    return RawModel(forests, linear, "MATLAB 7.3 .mat (HDF5)")
