"""The wire format of the policy server: msgpack frames with numpy arrays, as openpi speaks it.

An array travels as `{b"__ndarray__": True, b"data": raw bytes, b"dtype": dtype.str, b"shape": shape}`
and a numpy scalar as `{b"__npgeneric__": True, b"data": value, b"dtype": dtype.str}`, exactly like
`openpi_client.msgpack_numpy`, so an unchanged `openpi-client` can talk to our server.

Decoding differs from openpi's on purpose: every field of an array record is checked (dtype kind, byte
count, shape) before any numpy object is built, object/void/structured dtypes are refused, and arrays are
copied out of the frame so callers get ordinary writable arrays. Nothing here can execute code from the
network (no pickle anywhere; LeRobot CVE-2026-25874 was a pickle on the wire).

This module imports numpy and msgpack only (it backs the torch-free client).
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

PROTOCOL_VERSION = 1

# Only plain booleans, integers and floats cross the wire; complex, object, void (raw bytes, structured)
# and string dtypes are refused: they are either code-execution risks or never needed by a policy.
_ALLOWED_KINDS = frozenset("biuf")
_MAX_NDIM = 8
_MAX_DEPTH = 8


class ProtocolError(ValueError):
    """A frame that does not follow the wire format; the message says what was expected."""


def _pack_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray | np.generic):
        if obj.dtype.kind not in _ALLOWED_KINDS or obj.dtype.names is not None:
            raise ProtocolError(f"cannot send numpy dtype {obj.dtype} (only bool/int/uint/float)")
        if isinstance(obj, np.ndarray):
            arr = np.ascontiguousarray(obj).reshape(obj.shape)  # ascontiguousarray makes 0-d arrays 1-d
            return {
                b"__ndarray__": True,
                b"data": arr.tobytes(),
                b"dtype": arr.dtype.str,
                b"shape": arr.shape,
            }
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot serialize object of type {type(obj).__name__}")


def packb(obj: Any) -> bytes:
    """Serializes `obj` (dicts, lists, str, numbers, numpy arrays and scalars) to one msgpack frame."""
    out = msgpack.packb(obj, default=_pack_default, use_bin_type=True)
    assert isinstance(out, bytes)
    return out


def _parse_dtype(raw: Any) -> np.dtype:
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", errors="replace")
    if not isinstance(raw, str) or len(raw) > 16:
        raise ProtocolError(f"array dtype must be a short numpy dtype string like '<f4', got {raw!r:.40}")
    try:
        dtype = np.dtype(raw)
    except (TypeError, ValueError) as e:
        raise ProtocolError(f"unknown array dtype {raw!r}") from e
    if dtype.kind not in _ALLOWED_KINDS or dtype.names is not None or dtype.shape != ():
        raise ProtocolError(f"refused array dtype {raw!r} ({dtype}); only bool/int/uint/float are accepted")
    return dtype


def _decode_ndarray(obj: dict) -> np.ndarray:
    dtype = _parse_dtype(obj.get(b"dtype"))
    data = obj.get(b"data")
    shape = obj.get(b"shape")
    if not isinstance(data, bytes):
        raise ProtocolError(f"array data must be bytes, got {type(data).__name__}")
    if not isinstance(shape, list | tuple) or len(shape) > _MAX_NDIM:
        raise ProtocolError(f"array shape must be a list of at most {_MAX_NDIM} ints, got {shape!r:.60}")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise ProtocolError(f"array shape must hold non-negative ints, got {shape!r:.60}")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != len(data):
        raise ProtocolError(
            f"array of shape {list(shape)} and dtype {dtype.str} needs {count * dtype.itemsize} bytes, "
            f"got {len(data)}"
        )
    # Copy: the frame's bytes are read-only, and callers should own their arrays.
    return np.frombuffer(data, dtype=dtype).reshape(tuple(shape)).copy()


def _decode_generic(obj: dict) -> np.generic:
    dtype = _parse_dtype(obj.get(b"dtype"))
    value = obj.get(b"data")
    if not isinstance(value, bool | int | float):
        raise ProtocolError(f"numpy scalar data must be a number, got {type(value).__name__}")
    try:
        return dtype.type(value)
    except (OverflowError, ValueError) as e:
        raise ProtocolError(f"numpy scalar {value!r} does not fit dtype {dtype}") from e


def _object_hook(obj: dict) -> Any:
    if b"__ndarray__" in obj:
        return _decode_ndarray(obj)
    if b"__npgeneric__" in obj:
        return _decode_generic(obj)
    return obj


def _ext_hook(code: int, data: bytes) -> Any:
    raise ProtocolError(f"msgpack extension types are not accepted (got ext type {code})")


def _check_plain(obj: Any, depth: int = 0) -> None:
    """Refuses anything but dicts/lists of str, bytes, numbers, None and numpy arrays."""
    if depth > _MAX_DEPTH:
        raise ProtocolError(f"message nests deeper than {_MAX_DEPTH} levels")
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str | bytes):
                raise ProtocolError(f"map keys must be strings, got {type(k).__name__}")
            _check_plain(v, depth + 1)
    elif isinstance(obj, list):
        for v in obj:
            _check_plain(v, depth + 1)
    elif not isinstance(obj, str | bytes | int | float | bool | np.ndarray | np.generic) and obj is not None:
        raise ProtocolError(f"unsupported value of type {type(obj).__name__} in message")


def unpackb(frame: bytes) -> Any:
    """Decodes one msgpack frame, rebuilding numpy arrays safely.

    Raises:
        ProtocolError: the frame is not valid msgpack, or holds a refused or inconsistent array.
    """
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise ProtocolError(f"expected a binary frame, got {type(frame).__name__}")
    try:
        obj = msgpack.unpackb(
            frame, object_hook=_object_hook, ext_hook=_ext_hook, raw=False, strict_map_key=False
        )
    except ProtocolError:
        raise
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        raise ProtocolError(f"frame is not valid msgpack: {type(e).__name__}: {e}") from e
    except Exception as e:  # msgpack raises a few undocumented types on garbage (e.g. OutOfData)
        raise ProtocolError(f"frame is not valid msgpack: {type(e).__name__}: {e}") from e
    _check_plain(obj)
    return obj
