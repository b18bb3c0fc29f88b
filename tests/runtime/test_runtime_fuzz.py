"""Malformed traffic and load over loopback: the server answers every bad frame with a clear text error,
never crashes, and keeps serving good clients meanwhile."""

from __future__ import annotations

import threading
import time

import msgpack
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect

from vla.runtime.client import PolicyClient
from vla.runtime.protocol import packb
from vla.runtime.server import PolicyServer, ServeConfig

N_FRAMES = 10_000


def _arr(dtype: str, shape, data: bytes) -> dict:
    return {b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape}


def malformed_frames(rng: np.random.Generator, good: dict, n: int):
    """Yields (kind, frame) pairs: bytes frames or str (text) frames, none of them a valid request."""
    img = good["images/scene"]
    kinds = [
        "garbage",
        "truncated",
        "not_a_map",
        "text",
        "object_dtype",
        "void_dtype",
        "structured_dtype",
        "complex_dtype",
        "bad_dtype_string",
        "byte_count",
        "neg_shape",
        "huge_declared",
        "wrong_img_dtype",
        "wrong_img_shape",
        "wrong_state_dtype",
        "wrong_state_shape",
        "missing_state",
        "missing_prompt",
        "missing_image",
        "prompt_type",
        "ext_type",
        "deep",
        "bad_request_id",
        "int_keys",
        "state_str",
    ]
    packed_good = packb(good)
    for i in range(n):
        kind = kinds[i % len(kinds)]
        bad = dict(good)
        if kind == "garbage":
            yield kind, rng.bytes(int(rng.integers(1, 200)))
            continue
        if kind == "truncated":
            yield kind, packed_good[: int(rng.integers(1, len(packed_good) - 1))]
            continue
        if kind == "not_a_map":
            yield kind, msgpack.packb([1, 2, 3] if i % 2 else "hello")
            continue
        if kind == "text":
            yield kind, "{'state': [1, 2]}"
            continue
        if kind == "ext_type":
            yield kind, msgpack.packb({"state": msgpack.ExtType(42, b"\x80\x04pickle")})
            continue
        if kind == "deep":
            deep: dict = {"x": 1}
            for _ in range(20):
                deep = {"x": deep}
            yield kind, msgpack.packb(deep)
            continue
        if kind == "int_keys":
            yield kind, msgpack.packb({1: 2}, strict_types=False)
            continue
        if kind == "object_dtype":
            bad["state"] = _arr("|O", [22], b"\x00" * 176)
        elif kind == "void_dtype":
            bad["state"] = _arr("|V8", [22], b"\x00" * 176)
        elif kind == "structured_dtype":
            bad["state"] = _arr("[('a', '<f4')]", [22], b"\x00" * 88)
        elif kind == "complex_dtype":
            bad["state"] = _arr("<c8", [22], b"\x00" * 176)
        elif kind == "bad_dtype_string":
            bad["state"] = _arr("not-a-dtype", [22], b"\x00" * 88)
        elif kind == "byte_count":
            bad["state"] = _arr("<f4", [22], b"\x00" * int(rng.integers(0, 87)))
        elif kind == "neg_shape":
            bad["state"] = _arr("<f4", [-22], b"")
        elif kind == "huge_declared":
            bad["images/scene"] = _arr("|u1", [100_000, 100_000, 3], img.tobytes())
        elif kind == "wrong_img_dtype":
            bad["images/scene"] = img.astype(np.float32)
        elif kind == "wrong_img_shape":
            bad["images/scene"] = np.ascontiguousarray(img.transpose(2, 0, 1))
        elif kind == "wrong_state_dtype":
            bad["state"] = good["state"].astype(np.int32)
        elif kind == "wrong_state_shape":
            bad["state"] = np.zeros(int(rng.integers(0, 21)), np.float32)
        elif kind == "missing_state":
            del bad["state"]
        elif kind == "missing_prompt":
            del bad["prompt"]
        elif kind == "missing_image":
            del bad["images/wrist"]
        elif kind == "prompt_type":
            bad["prompt"] = 7
        elif kind == "bad_request_id":
            bad["request_id"] = [1, 2]
        elif kind == "state_str":
            bad["state"] = "0.1, 0.2"
        yield kind, msgpack.packb(bad, default=_np_default)


def _np_default(o):
    if isinstance(o, np.ndarray):
        return _arr(o.dtype.str, list(o.shape), o.tobytes())
    raise TypeError(type(o))


def test_fuzz_10k_malformed_frames_while_good_client_is_served(rt):
    policy = rt.ScriptedPolicy()
    server = PolicyServer(policy, rt.make_spec(policy), ServeConfig(port=0, token="tok"))
    port = server.start()
    good = rt.make_obs()
    good_replies: list[int] = []
    stop = threading.Event()

    def good_client() -> None:
        with PolicyClient("127.0.0.1", port, token="tok", timeout=10) as c:
            while not stop.is_set() and len(good_replies) < 5000:
                assert c.infer(good)["actions"].shape == (4, 7)
                good_replies.append(1)
                time.sleep(0.002)

    t = threading.Thread(target=good_client)
    t.start()
    rng = np.random.default_rng(0)
    errors: dict[str, int] = {}
    t0 = time.perf_counter()
    try:
        ws = connect(
            f"ws://127.0.0.1:{port}", additional_headers={"Authorization": "Api-Key tok"}, max_size=None
        )
        with ws:
            ws.recv(timeout=10)  # metadata
            for kind, frame in malformed_frames(rng, good, N_FRAMES):
                ws.send(frame)
                reply = ws.recv(timeout=10)
                assert isinstance(reply, str), f"{kind}: expected a text error, got a binary reply"
                assert reply.startswith("bad request: ") and len(reply) > 20, (kind, reply)
                errors[kind] = errors.get(kind, 0) + 1
            # Oversized (> max_request_bytes): a text error, and the connection stays usable.
            ws.send(b"\x00" * (server.max_request_bytes + 1))
            assert "exceeds max_request_bytes" in ws.recv(timeout=10)
            ws.send(packb(good))
            assert isinstance(ws.recv(timeout=10), bytes)
        # Far over the limit: websockets closes that connection (1009) without reading it all.
        with connect(f"ws://127.0.0.1:{port}", additional_headers={"Authorization": "Api-Key tok"}) as ws2:
            ws2.recv(timeout=10)
            ws2.send(b"\x00" * (2 * server.max_request_bytes + 10))
            with pytest.raises(ConnectionClosedError) as closed:
                ws2.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        # Connections without the right token are refused before the upgrade.
        for i in range(50):
            headers = None if i % 2 else {"Authorization": f"Api-Key wrong{i}"}
            with pytest.raises(InvalidStatus) as e:
                connect(f"ws://127.0.0.1:{port}", additional_headers=headers, open_timeout=5)
            assert e.value.response.status_code == 401
    finally:
        stop.set()
        t.join(timeout=30)
        server.stop()
    elapsed = time.perf_counter() - t0
    assert sum(errors.values()) == N_FRAMES and len(errors) == 25
    assert len(good_replies) > 20, "the good client was starved while the fuzzer ran"
    assert server.stats["errors"] >= N_FRAMES + 1
    print(f"\nfuzz: {N_FRAMES} bad frames in {elapsed:.1f} s; good client got {len(good_replies)} replies")


def test_refusal_messages_name_the_problem(scripted_server, rt):
    server, _ = scripted_server
    good = rt.make_obs()
    cases = {
        "object_dtype": ("refused array dtype '|O'", {**good, "state": _arr("|O", [22], b"\x00" * 176)}),
        "img": (
            "image 'scene' must have dtype uint8",
            {**good, "images/scene": good["images/scene"].astype(np.float32)},
        ),
        "shape": ("needs 88 bytes, got 4", {**good, "state": _arr("<f4", [22], b"\x00" * 4)}),
    }
    with connect(f"ws://127.0.0.1:{server.port}") as ws:
        ws.recv()
        for expected, msg in cases.values():
            ws.send(msgpack.packb(msg, default=_np_default))
            assert expected in ws.recv(timeout=10)


def test_load_16_concurrent_clients(rt):
    """16 clients in parallel for ~2 s: every request answered with its own id; throughput and p99."""
    policy = rt.ScriptedPolicy(delay=0.001)
    server = PolicyServer(policy, rt.make_spec(policy), ServeConfig(port=0))
    port = server.start()
    latencies: list[float] = []
    lock = threading.Lock()
    failures: list[str] = []
    deadline = time.perf_counter() + 2.0

    def worker(i: int) -> None:
        try:
            with PolicyClient("127.0.0.1", port, timeout=30) as c:
                obs = rt.make_obs(np.random.default_rng(i))
                for _ in range(500):
                    if time.perf_counter() > deadline:
                        break
                    t = time.perf_counter()
                    reply = c.infer(obs)
                    dt = time.perf_counter() - t
                    assert reply["actions"].shape == (4, 7)
                    with lock:
                        latencies.append(dt)
        except Exception as e:
            failures.append(repr(e))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    wall = time.perf_counter() - t0
    server.stop()
    assert not failures, failures[:3]
    lat = np.asarray(latencies) * 1e3
    assert len(lat) >= 16 * 5
    assert policy.max_concurrent == 1
    print(
        f"\nload: 16 clients, {len(lat)} requests in {wall:.2f} s = {len(lat) / wall:.0f} req/s; "
        f"latency median {np.median(lat):.1f} ms, p99 {np.percentile(lat, 99):.1f} ms"
    )
