"""Wire format: byte-compatible with openpi's msgpack_numpy, and strict where openpi's decoder is lax."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from openpi_client import msgpack_numpy

from vla.runtime.protocol import ProtocolError, packb, unpackb
from vla.runtime.schema import ObservationSchema

DTYPES = st.sampled_from([np.uint8, np.int32, np.int64, np.float16, np.float32, np.float64, np.bool_])


@settings(max_examples=60, deadline=None)
@given(data=st.data(), dtype=DTYPES)
def test_arrays_roundtrip_both_ways_with_openpi(data, dtype):
    arr = data.draw(arrays(dtype, array_shapes(min_dims=0, max_dims=4, max_side=5)))
    msg = {"a": arr, "n": np.float32(1.5), "s": "text", "l": [1, 2.0]}
    ours = unpackb(msgpack_numpy.packb(msg))  # openpi encodes, we decode
    theirs = msgpack_numpy.unpackb(packb(msg))  # we encode, openpi decodes
    for got in (ours, theirs):
        np.testing.assert_array_equal(got["a"], arr)
        assert got["a"].dtype == arr.dtype and got["a"].shape == arr.shape
        assert got["n"] == np.float32(1.5) and got["s"] == "text"
    assert ours["a"].flags.writeable  # copied out of the frame


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            {b"__ndarray__": True, b"data": b"\0" * 8, b"dtype": "|O", b"shape": [1]},
            "refused array dtype '|O'",
        ),
        ({b"__ndarray__": True, b"data": b"\0" * 8, b"dtype": "|V8", b"shape": [1]}, "refused array dtype"),
        ({b"__ndarray__": True, b"data": b"\0" * 8, b"dtype": "<f4", b"shape": [3]}, "needs 12 bytes, got 8"),
        ({b"__ndarray__": True, b"data": b"", b"dtype": "<f4", b"shape": [-1]}, "non-negative ints"),
        ({b"__npgeneric__": True, b"data": "x", b"dtype": "<f4"}, "must be a number"),
    ],
)
def test_bad_arrays_are_refused(record, message):
    import msgpack

    with pytest.raises(ProtocolError, match=message.replace("[", r"\[").replace("|", r"\|")):
        unpackb(msgpack.packb({"x": record}))
    with pytest.raises(ProtocolError, match="cannot send numpy dtype object"):
        packb({"x": np.array([None], dtype=object)})


def test_schema_aliases_and_errors():
    schema = ObservationSchema(cameras=("scene", "wrist"), image_size=(4, 6), state_dim=3, action_dim=2)
    img = np.zeros((4, 6, 3), np.uint8)
    req = schema.parse(
        {
            "observation/image": img,
            "observation/wrist_image": img,
            "observation.state": [0.0, 1.0, 2.0],
            "task": b"go",
        }
    )
    assert req.observation is not None and req.observation.instruction == "go"
    assert req.observation.state.dtype == np.float32
    assert schema.parse({"reset": True}).observation is None
    with pytest.raises(ProtocolError, match=r"missing key 'images/wrist'"):
        schema.parse({"scene": img, "state": np.zeros(3), "prompt": "x"})
    with pytest.raises(ProtocolError, match=r"'prev_action' must have shape \[2\]"):
        schema.parse(
            {"scene": img, "wrist": img, "state": np.zeros(3), "prompt": "x", "prev_action": np.zeros(3)}
        )
    with pytest.raises(ProtocolError, match="at most 1000 accepted"):
        schema.parse({"scene": img, "wrist": img, "state": np.zeros(3), "prompt": "x" * 1001})
    assert schema.to_metadata()["prompt"] == {"shape": [], "dtype": "str"}


def test_client_imports_without_torch():
    code = "import sys, vla.runtime, vla.runtime.client; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
