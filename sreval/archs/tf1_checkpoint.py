"""Reader for TensorFlow 1 "V1" checkpoints (one file written by `tf.train.Saver` with the old format), without
TensorFlow.

The official EnhanceNet weights are such a file. Depending on TensorFlow (≈ 500 MB, no wheels for current
Pythons in its TF1 form) only to read 3.4 MB of floats is not worth it, and the format is small:

* The file is a LevelDB-style sorted table: data blocks of prefix-compressed key/value entries, an index block
  pointing at them, and a 48-byte footer (two block handles, padding, magic number). TensorFlow writes V1
  checkpoints uncompressed; every block is followed by a 5-byte trailer (compression type, CRC32C).
* The entry with the empty key holds a `SavedTensorSlices` protobuf whose `meta` lists every tensor (name,
  shape, dtype, saved slices). Every other entry holds one `SavedTensorSlices.data`: a `SavedSlice` with the
  tensor name, the slice it covers and a `TensorProto` with the values.

Only the protobuf fields needed for that are decoded, by a minimal wire-format parser. The structure is
cross-checked instead of trusting it: every tensor listed in the meta must be covered exactly by its slices, and
every value count must match its shape, so a damaged or foreign file gives an error, not wrong weights. Block
CRCs are not verified (sreval pins the checkpoint's SHA-256 instead).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sreval.errors import SrevalError

_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_BLOCK_TRAILER_SIZE = 5
_NO_COMPRESSION = 0

# TensorFlow DataType enum values → numpy dtype, and the TensorProto field holding the values of each type.
_DTYPES: dict[int, np.dtype[np.generic]] = {
    1: np.dtype("<f4"),  # DT_FLOAT
    2: np.dtype("<f8"),  # DT_DOUBLE
    3: np.dtype("<i4"),  # DT_INT32
    9: np.dtype("<i8"),  # DT_INT64
}
_VALUE_FIELD = {1: 5, 2: 6, 3: 7, 9: 10}  # float_val, double_val, int_val, int64_val
_TENSOR_CONTENT_FIELD = 4


class CheckpointError(SrevalError):
    """The file is not a readable TensorFlow 1 checkpoint, or its content is inconsistent."""


# --- protobuf wire format -------------------------------------------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CheckpointError("varint longer than 64 bits")


def _fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) in file order; varints as int, everything else as raw bytes."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire} (field {number})")
        if pos > len(buf):
            raise CheckpointError(f"truncated protobuf field {number}")
        out.append((number, wire, value))
    return out


def _bytes_fields(buf: bytes, number: int) -> list[bytes]:
    return [v for n, w, v in _fields(buf) if n == number and w == 2 and isinstance(v, bytes)]


def _int_field(buf: bytes, number: int, default: int = 0) -> int:
    values = [v for n, w, v in _fields(buf) if n == number and w == 0 and isinstance(v, int)]
    return values[-1] if values else default


def _shape(shape_proto: bytes) -> tuple[int, ...]:
    """TensorShapeProto: repeated Dim dim = 2 { int64 size = 1 }."""
    return tuple(_int_field(dim, 1) for dim in _bytes_fields(shape_proto, 2))


def _slice(slice_proto: bytes, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """TensorSliceProto: repeated Extent extent = 1 { int64 start = 1; int64 length = 2 }; an extent without a
    length (or missing extents) means the whole dimension."""
    extents = _bytes_fields(slice_proto, 1)
    if extents and len(extents) != len(shape):
        raise CheckpointError(f"slice has {len(extents)} extents for a tensor of rank {len(shape)}")
    out = []
    for dim, size in enumerate(shape):
        if not extents:
            out.append(slice(0, size))
            continue
        fields = {n: v for n, w, v in _fields(extents[dim]) if w == 0 and isinstance(v, int)}
        start = fields.get(1, 0)
        stop = start + fields[2] if 2 in fields else size
        if not 0 <= start < stop <= size and size:
            raise CheckpointError(f"slice [{start}:{stop}] is outside dimension {dim} of size {size}")
        out.append(slice(start, stop))
    return tuple(out)


def _values(tensor_proto: bytes, dtype_code: int, count: int) -> np.ndarray:
    """Values of a TensorProto, either from `tensor_content` (raw little-endian bytes) or the typed repeated
    field (packed or not)."""
    dtype = _DTYPES[dtype_code]
    content = b"".join(_bytes_fields(tensor_proto, _TENSOR_CONTENT_FIELD))
    if content:
        values = np.frombuffer(content, dtype=dtype)
    else:
        number = _VALUE_FIELD[dtype_code]
        chunks: list[np.ndarray] = []
        for n, wire, v in _fields(tensor_proto):
            if n != number:
                continue
            if wire == 2 and isinstance(v, bytes) and dtype.kind == "f":  # packed floats / doubles
                chunks.append(np.frombuffer(v, dtype=dtype))
            elif wire == 2 and isinstance(v, bytes):  # packed varints
                ints, pos = [], 0
                while pos < len(v):
                    x, pos = _varint(v, pos)
                    ints.append(x - (1 << 64) if x >= 1 << 63 else x)
                chunks.append(np.array(ints, dtype=dtype))
            elif isinstance(v, bytes):  # one unpacked fixed-width value
                chunks.append(np.frombuffer(v, dtype=dtype))
            else:  # one unpacked varint
                chunks.append(np.array([v - (1 << 64) if v >= 1 << 63 else v], dtype=dtype))
        values = np.concatenate(chunks) if chunks else np.zeros(0, dtype=dtype)
    if values.size != count:
        raise CheckpointError(f"slice holds {values.size} values, expected {count}")
    return values


# --- sorted table ---------------------------------------------------------------------------------------------


def _block(data: bytes, offset: int, size: int) -> bytes:
    end = offset + size
    if end + _BLOCK_TRAILER_SIZE > len(data):
        raise CheckpointError(f"block at {offset} (+{size} bytes) runs past the end of the file")
    if data[end] != _NO_COMPRESSION:
        raise CheckpointError(f"block at {offset} is compressed (type {data[end]}); only uncompressed is supported")
    return data[offset:end]


def _entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """Key/value pairs of one block (keys are prefix-compressed against the previous key)."""
    if len(block) < 4:
        raise CheckpointError("block too short")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise CheckpointError("block restart array is larger than the block")
    out: list[tuple[bytes, bytes]] = []
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + value_len > limit:
            raise CheckpointError("corrupt block entry")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        out.append((key, block[pos : pos + value_len]))
        pos += value_len
    return out


def _handle(buf: bytes, pos: int = 0) -> tuple[int, int, int]:
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return offset, size, pos


def _table(data: bytes) -> list[tuple[bytes, bytes]]:
    if len(data) < _FOOTER_SIZE:
        raise CheckpointError("file is shorter than a table footer")
    footer = data[-_FOOTER_SIZE:]
    if struct.unpack("<Q", footer[-8:])[0] != _MAGIC:
        raise CheckpointError("no table magic number at the end: not a TensorFlow 1 (V1) checkpoint")
    _, _, pos = _handle(footer)  # metaindex block: unused by checkpoints
    index_offset, index_size, _ = _handle(footer, pos)
    out: list[tuple[bytes, bytes]] = []
    for _, handle in _entries(_block(data, index_offset, index_size)):
        offset, size, _ = _handle(handle)
        out.extend(_entries(_block(data, offset, size)))
    return out


# --- checkpoint -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TensorMeta:
    shape: tuple[int, ...]
    dtype_code: int


def read_tf1_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """Every variable of a TF1 V1 checkpoint as a numpy array (TensorFlow's layout, e.g. HWIO conv kernels)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    try:
        return _read(data)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def _read(data: bytes) -> dict[str, np.ndarray]:
    entries = _table(data)
    if not entries or entries[0][0] != b"":
        raise CheckpointError("no metadata entry (empty key) first: not a TensorFlow 1 (V1) checkpoint")
    metas: dict[str, _TensorMeta] = {}
    for meta_proto in _bytes_fields(entries[0][1], 1):  # SavedTensorSlices.meta
        for tensor in _bytes_fields(meta_proto, 1):  # SavedTensorSliceMeta.tensor
            name = b"".join(_bytes_fields(tensor, 1)).decode()
            dtype_code = _int_field(tensor, 3)
            if dtype_code not in _DTYPES:
                raise CheckpointError(f"tensor {name!r} has unsupported TensorFlow dtype {dtype_code}")
            metas[name] = _TensorMeta(_shape(b"".join(_bytes_fields(tensor, 2))), dtype_code)
    if not metas:
        raise CheckpointError("the metadata lists no tensors")
    arrays = {name: np.zeros(m.shape, dtype=_DTYPES[m.dtype_code]) for name, m in metas.items()}
    covered = {name: np.zeros(m.shape, dtype=bool) for name, m in metas.items()}
    for _, value in entries[1:]:
        for saved in _bytes_fields(value, 2):  # SavedTensorSlices.data
            name = b"".join(_bytes_fields(saved, 1)).decode()
            if name not in metas:
                raise CheckpointError(f"data for {name!r}, which the metadata does not list")
            meta = metas[name]
            region = _slice(b"".join(_bytes_fields(saved, 2)), meta.shape)
            count = int(np.prod([s.stop - s.start for s in region]))
            values = _values(b"".join(_bytes_fields(saved, 3)), meta.dtype_code, count)
            if covered[name][region].any():
                raise CheckpointError(f"tensor {name!r} has overlapping slices")
            arrays[name][region] = values.reshape([s.stop - s.start for s in region])
            covered[name][region] = True
    incomplete = [name for name, mask in covered.items() if not mask.all()]
    if incomplete:
        raise CheckpointError(f"no data for (parts of) {', '.join(sorted(incomplete))}")
    return arrays
