"""A small, dependency-free (NumPy only) safetensors writer and reader.

File layout (https://github.com/huggingface/safetensors, "Format"):

    8 bytes      little-endian u64 N: the length of the JSON header
    N bytes      UTF-8 JSON object:
                   {"__metadata__": {str: str, ...},            (optional)
                    "<tensor>": {"dtype": "F32",
                                 "shape": [d0, d1, ...],
                                 "data_offsets": [begin, end]}, ...}
                 padded with spaces so that N is a multiple of 8
    rest         the tensors' raw little-endian bytes, C order; offsets are
                 relative to the start of this region, which they cover
                 exactly, without holes or overlaps

The writer lays tensors out sorted by name and emits a deterministic header,
so the same tensors always produce the same bytes. The reader trusts nothing:
every length, offset, dtype and shape is checked against the buffer, and
errors (ValueError) name the source, the tensor, what was found and what was
expected.

NumPy has no bfloat16 type: BF16 tensors are written from float arrays by
rounding to nearest even (``dtypes={"w": "BF16"}``) and are read back widened
to float32. ``SafetensorsContent.dtypes`` keeps the on-disk dtype names.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import tempfile
from typing import Mapping

import numpy as np

# safetensors dtype name -> NumPy little-endian dtype used on disk.
_NUMPY_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # Raw bit patterns; see bf16_bits_to_float32.
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}

# NumPy dtype kind+itemsize -> safetensors dtype name (for arrays written
# without an explicit dtype).
_NATURAL_NAMES = {
    ("f", 8): "F64",
    ("f", 4): "F32",
    ("f", 2): "F16",
    ("i", 8): "I64",
    ("i", 4): "I32",
    ("i", 2): "I16",
    ("i", 1): "I8",
    ("u", 8): "U64",
    ("u", 4): "U32",
    ("u", 2): "U16",
    ("u", 1): "U8",
    ("b", 1): "BOOL",
}

# Refuse headers larger than this (the reference implementation's limit).
MAX_HEADER_BYTES = 100_000_000

SUPPORTED_DTYPES = tuple(_NUMPY_DTYPES)


def float32_to_bf16_bits(values: np.ndarray) -> np.ndarray:
    """Rounds float values to bfloat16 (nearest even); returns uint16 bits.

    NaN stays NaN (quiet), infinities stay infinite, and values too large for
    bfloat16 round to infinity, as IEEE rounding requires.
    """
    f32 = np.ascontiguousarray(values, dtype=np.float32)
    bits = f32.view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    nan_bits = (bits >> 16) | 0x40
    out = np.where(np.isnan(f32), nan_bits, rounded)
    return out.astype(np.uint16)


def bf16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """Widens bfloat16 bit patterns (uint16) to float32 exactly."""
    wide = np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16
    return wide.view(np.float32)


def natural_dtype_name(array: np.ndarray) -> str:
    """The safetensors dtype an array is stored as when none is requested."""
    key = (array.dtype.kind, array.dtype.itemsize)
    if key not in _NATURAL_NAMES:
        raise ValueError(
            f"NumPy dtype {array.dtype} has no safetensors equivalent; "
            f"expected one of float16/32/64, (u)int8..64 or bool")
    return _NATURAL_NAMES[key]


def _encode(name: str, array: np.ndarray, dtype_name: str) -> bytes:
    if dtype_name not in _NUMPY_DTYPES:
        raise ValueError(f"tensor '{name}': unknown safetensors dtype "
                         f"'{dtype_name}'; expected one of "
                         f"{', '.join(SUPPORTED_DTYPES)}")
    if dtype_name == "BF16":
        if array.dtype.kind not in "fiub":
            raise ValueError(f"tensor '{name}': cannot store {array.dtype} "
                             f"as BF16; expected a numeric array")
        return float32_to_bf16_bits(array).astype("<u2").tobytes(order="C")
    target = _NUMPY_DTYPES[dtype_name]
    if array.dtype.kind == "f" and target.kind != "f":
        raise ValueError(f"tensor '{name}': refusing to store float data "
                         f"({array.dtype}) as {dtype_name}; expected a float "
                         f"dtype (F16, BF16, F32, F64)")
    return np.ascontiguousarray(array).astype(target).tobytes(order="C")


def serialize(tensors: Mapping[str, np.ndarray],
              metadata: Mapping[str, str] | None = None,
              dtypes: Mapping[str, str] | None = None) -> bytes:
    """Returns the safetensors bytes for `tensors` (name -> array).

    `dtypes` optionally maps tensor names to the safetensors dtype to store
    (e.g. "F16", "BF16"); other tensors keep their NumPy dtype. `metadata`
    values must be strings, as the format requires.
    """
    dtypes = dict(dtypes or {})
    unknown = sorted(set(dtypes) - set(tensors))
    if unknown:
        raise ValueError(f"dtypes names tensors that are not being written: "
                         f"{unknown}")
    header: dict[str, object] = {}
    if metadata:
        for key, value in metadata.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError(f"metadata entry {key!r}: {value!r} must map "
                                 f"str to str")
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"invalid tensor name {name!r}: expected a "
                             f"non-empty string other than '__metadata__'")
        array = np.asarray(tensors[name])
        dtype_name = dtypes.get(name) or natural_dtype_name(array)
        data = _encode(name, array, dtype_name)
        header[name] = {
            "dtype": dtype_name,
            "shape": [int(d) for d in array.shape],
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False)
    encoded = text.encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    return struct.pack("<Q", len(encoded)) + encoded + b"".join(chunks)


def save_file(path: str | os.PathLike,
              tensors: Mapping[str, np.ndarray],
              metadata: Mapping[str, str] | None = None,
              dtypes: Mapping[str, str] | None = None) -> None:
    """Writes serialize(...) to `path` atomically (temp file + rename)."""
    data = serialize(tensors, metadata, dtypes)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".st")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; weights are not secret.
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@dataclasses.dataclass
class SafetensorsContent:
    """What a safetensors file holds.

    tensors:  name -> array (BF16 widened to float32, others as stored).
    dtypes:   name -> the safetensors dtype name found on disk.
    metadata: the "__metadata__" object, or {} when absent.
    """
    tensors: dict[str, np.ndarray]
    dtypes: dict[str, str]
    metadata: dict[str, str]


def _check_int_list(value, what: str, length: int | None = None) -> list[int]:
    if (not isinstance(value, list) or
            any(type(v) is not int or v < 0 for v in value) or
            (length is not None and len(value) != length)):
        count = f"{length} " if length is not None else ""
        raise ValueError(f"{what} is {json.dumps(value)}; expected a list of "
                         f"{count}non-negative integers")
    return value


def deserialize(data: bytes, source: str = "<bytes>") -> SafetensorsContent:
    """Parses safetensors bytes; `source` names the file in errors."""
    if len(data) < 8:
        raise ValueError(f"{source}: file is {len(data)} bytes; expected at "
                         f"least 8 (the header length)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > MAX_HEADER_BYTES or 8 + header_len > len(data):
        raise ValueError(f"{source}: header length is {header_len} bytes; "
                         f"expected at most {min(MAX_HEADER_BYTES, len(data) - 8)}"
                         f" (file is {len(data)} bytes)")
    try:
        header = json.loads(data[8:8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{source}: header is not valid UTF-8 JSON: {e}")
    if not isinstance(header, dict):
        raise ValueError(f"{source}: header is a JSON {type(header).__name__};"
                         f" expected a JSON object")
    body = memoryview(data)[8 + header_len:]
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str)
            for k, v in metadata.items()):
        raise ValueError(f"{source}: __metadata__ is {json.dumps(metadata)}; "
                         f"expected an object of string values")
    tensors: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    spans = []
    for name, entry in header.items():
        where = f"{source}: tensor '{name}'"
        if not isinstance(entry, dict) or set(entry) != {
                "dtype", "shape", "data_offsets"}:
            raise ValueError(f"{where}: entry is {json.dumps(entry)}; expected "
                             f"an object with exactly dtype, shape and "
                             f"data_offsets")
        dtype_name = entry["dtype"]
        if dtype_name not in _NUMPY_DTYPES:
            raise ValueError(f"{where}: dtype {json.dumps(dtype_name)}; "
                             f"expected one of {', '.join(SUPPORTED_DTYPES)}")
        shape = _check_int_list(entry["shape"], f"{where}: shape")
        begin, end = _check_int_list(entry["data_offsets"],
                                     f"{where}: data_offsets", 2)
        if not begin <= end <= len(body):
            raise ValueError(f"{where}: data_offsets [{begin}, {end}] lie "
                             f"outside the {len(body)}-byte data region")
        disk = _NUMPY_DTYPES[dtype_name]
        expected = int(np.prod(shape, dtype=np.int64)) * disk.itemsize
        if end - begin != expected:
            raise ValueError(f"{where}: data_offsets span {end - begin} bytes;"
                             f" expected {expected} for {dtype_name} shape "
                             f"{shape}")
        array = np.frombuffer(body[begin:end], dtype=disk).reshape(shape)
        if dtype_name == "BF16":
            array = bf16_bits_to_float32(array)
        tensors[name] = array.copy()
        dtypes[name] = dtype_name
        spans.append((begin, end, name))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            problem = "overlaps the previous tensor" if begin < position \
                else f"leaves a hole of {begin - position} bytes"
            raise ValueError(f"{source}: tensor '{name}' starts at byte "
                             f"{begin} and {problem}; expected it to start at "
                             f"{position}")
        position = end
    if position != len(body):
        raise ValueError(f"{source}: tensors cover {position} bytes of the "
                         f"{len(body)}-byte data region; expected all of it")
    return SafetensorsContent(tensors=tensors, dtypes=dtypes,
                              metadata=dict(metadata))


def load_file(path: str | os.PathLike) -> SafetensorsContent:
    """Reads and parses a safetensors file."""
    with open(path, "rb") as f:
        return deserialize(f.read(), str(path))
