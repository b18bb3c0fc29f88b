"""The policy server against real clients on 127.0.0.1: openpi-client, our PolicyClient, raw websockets."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from openpi_client import msgpack_numpy
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from vla.runtime.client import PolicyClient, ServerError
from vla.runtime.recovery import RecoveryConfig
from vla.runtime.server import PolicyServer, ServeConfig

# openpi-client 0.1.2 connects without a context manager, which websockets 17 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")


def test_openpi_client_gets_actions_and_metadata(scripted_server, rt):
    server, _ = scripted_server
    client = WebsocketClientPolicy("127.0.0.1", server.port)
    meta = client.get_server_metadata()
    assert meta == server.metadata()  # the metadata frame round-trips through openpi's decoder
    assert meta["action_shape"] == [4, 7]
    assert meta["observation_schema"]["images/scene"] == {"shape": [24, 32, 3], "dtype": "uint8"}
    assert meta["observation_schema"]["prompt"]["dtype"] == "str"
    assert len(meta["stats_sha256"]) == 64
    # openpi-style keys: observation/image is the first camera, observation/wrist_image the wrist camera.
    obs = rt.make_obs()
    openpi_obs = {
        "observation/image": obs["images/scene"],
        "observation/wrist_image": obs["images/wrist"],
        "observation/state": obs["state"].astype(np.float64),
        "prompt": "open the drawer",
    }
    reply = client.infer(openpi_obs)
    actions = reply["actions"]
    assert actions.shape == (4, 7)
    assert actions.dtype == np.float32
    assert np.all(np.isfinite(actions))
    assert {"infer_ms", "total_ms", "prev_total_ms"} <= reply["server_timing"].keys()
    assert reply["safety"]["enabled"] is True
    # The scripted chunk ramps by 0.001 per step; the filter leaves such small deltas alone.
    np.testing.assert_allclose(np.diff(actions[:, 0]), 0.001, atol=1e-6)
    client._ws.close()


def test_openpi_client_sees_text_error_and_connection_survives(scripted_server, rt):
    server, _ = scripted_server
    client = WebsocketClientPolicy("127.0.0.1", server.port)
    bad = rt.make_obs()
    bad["state"] = bad["state"][:5]
    with pytest.raises(RuntimeError, match=r"'state' must have shape \[22\], got \[5\]"):
        client.infer(bad)
    assert client.infer(rt.make_obs())["actions"].shape == (4, 7)
    client._ws.close()


def test_policy_client_request_ids_reset_and_estop(scripted_server, rt):
    server, policy = scripted_server
    with PolicyClient("127.0.0.1", server.port) as client:
        assert client.metadata["control_hz"] == 10.0
        obs = rt.make_obs()
        reply = client.infer({**obs, "request_id": "ignored-client-sets-its-own"})
        assert reply["request_id"] == 1  # PolicyClient numbers requests itself
        client.reset()
        client.estop()
        held = client.infer(obs)
        np.testing.assert_array_equal(held["actions"][:, :6], 0.0)  # zero deltas while e-stopped
        assert held["safety"]["interventions"] == ["estop"]
        with pytest.raises(ServerError, match="no release token"):
            client.release_estop(None)  # this server has no token: the stop stays latched
        assert client.infer(obs)["safety"]["interventions"] == ["estop"]
        with pytest.raises(ServerError, match="missing key 'prompt'"):
            client.infer({k: v for k, v in obs.items() if k != "prompt"})
    assert policy.calls == 3


def test_nested_and_alias_keys(scripted_server, rt):
    server, _ = scripted_server
    obs = rt.make_obs()
    nested = {
        "images": {"scene": obs["images/scene"], "wrist": obs["images/wrist"]},
        "observation": {"state": obs["state"]},
        "instruction": "x",
    }
    with PolicyClient("127.0.0.1", server.port) as client:
        assert client.infer(nested)["actions"].shape == (4, 7)
        plain = {
            "scene": obs["images/scene"],
            "wrist": obs["images/wrist"],
            "state": obs["state"],
            "task": "y",
        }
        assert client.infer(plain)["actions"].shape == (4, 7)


def test_healthz_and_token(rt):
    policy = rt.ScriptedPolicy()
    server = PolicyServer(policy, rt.make_spec(policy), ServeConfig(port=0, token="s3cret"))
    port = server.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            assert r.status == 200
        with pytest.raises(InvalidStatus) as e:
            connect(f"ws://127.0.0.1:{port}", open_timeout=5)
        assert e.value.response.status_code == 401
        with pytest.raises(InvalidStatus):
            connect(
                f"ws://127.0.0.1:{port}",
                additional_headers={"Authorization": "Api-Key wrong"},
                open_timeout=5,
            )
        client = WebsocketClientPolicy("127.0.0.1", port, api_key="s3cret")
        assert client.infer(rt.make_obs())["actions"].shape == (4, 7)
        client._ws.close()
    finally:
        server.stop()


def test_inference_does_not_block_event_loop(rt):
    """A slow model call on one connection must not stall health checks or the metadata of others."""
    policy = rt.ScriptedPolicy(delay=1.0)
    server = PolicyServer(policy, rt.make_spec(policy), ServeConfig(port=0))
    port = server.start()
    try:
        slow = PolicyClient("127.0.0.1", port)
        t = threading.Thread(target=slow.infer, args=(rt.make_obs(),))
        t.start()
        time.sleep(0.1)  # the slow call is now running in the worker thread
        t0 = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            assert r.status == 200
        with PolicyClient("127.0.0.1", port) as other:
            assert other.metadata["action_shape"] == [4, 7]
        assert time.perf_counter() - t0 < 0.6  # well before the 1 s model call ends
        t.join()
        slow.close()
        assert policy.max_concurrent == 1
    finally:
        server.stop()


def test_history_is_per_connection_and_reset(rt):
    policy = rt.ScriptedPolicy(obs_horizon=2)
    server = PolicyServer(policy, rt.make_spec(policy), ServeConfig(port=0))
    port = server.start()
    try:
        with PolicyClient("127.0.0.1", port) as client:
            o1, o2 = rt.make_obs(np.random.default_rng(1)), rt.make_obs(np.random.default_rng(2))
            client.infer(o1)
            client.infer(o2)
            client.reset()
            client.infer(o2)
        first, second, after_reset = policy.seen
        assert first.state.shape == (1, 2, 22)
        np.testing.assert_array_equal(first.images["scene"][0, 0], first.images["scene"][0, 1])  # padded
        np.testing.assert_array_equal(second.images["scene"][0, 0], o1["images/scene"])
        np.testing.assert_array_equal(second.images["scene"][0, 1], o2["images/scene"])
        np.testing.assert_array_equal(after_reset.images["scene"][0, 0], o2["images/scene"])
    finally:
        server.stop()


def test_port_in_use_is_reported(scripted_server, rt):
    server, policy = scripted_server
    other = PolicyServer(policy, rt.make_spec(policy), ServeConfig(port=server.port))
    with pytest.raises(RuntimeError, match="failed to start"):
        other.start()


def test_openpi_msgpack_roundtrip_of_reply(scripted_server, rt):
    server, _ = scripted_server
    with connect(f"ws://127.0.0.1:{server.port}", compression=None) as ws:
        msgpack_numpy.unpackb(ws.recv())
        ws.send(msgpack_numpy.packb({**rt.make_obs(), "request_id": 42}))
        reply = msgpack_numpy.unpackb(ws.recv())
        assert reply["request_id"] == 42
        assert reply["actions"].shape == (4, 7)
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/nothing", timeout=5)


def test_concurrent_requests_are_batched_and_split_per_client(rt):
    policy = rt.ScriptedPolicy(delay=0.6)
    server = PolicyServer(policy, rt.make_spec(policy), ServeConfig(port=0, max_batch=8))
    port = server.start()
    replies: dict[int, dict] = {}
    try:
        clients = [PolicyClient("127.0.0.1", port) for _ in range(6)]

        def ask(i: int) -> None:
            obs = rt.make_obs()
            obs["state"] = obs["state"].copy()
            obs["state"][7] = float(i)  # tag
            replies[i] = clients[i].infer(obs)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
        threads[0].start()
        time.sleep(0.15)  # the first call is running; the other five queue up behind it
        for t in threads[1:]:
            t.start()
        for t in threads:
            t.join()
        for c in clients:
            c.close()
    finally:
        server.stop()
    assert policy.calls == 2  # one lone call, then one batch of five
    assert replies[0]["server_timing"]["batch_size"] == 1
    assert {replies[i]["server_timing"]["batch_size"] for i in range(1, 6)} == {5}
    for i, r in replies.items():
        first = r["actions"][0, 0] - 0.001 - 0.0001 * (1 if i == 0 else 2)
        assert first == pytest.approx(0.001 * i, abs=1e-6)  # each client got its own row back


def test_prev_action_rate_limits_across_chunks(scripted_server, rt):
    server, _ = scripted_server
    with PolicyClient("127.0.0.1", server.port) as client:
        obs = rt.make_obs()
        prev = np.array([-0.05, -0.05, -0.05, 0, 0, 0, 0], np.float32)
        reply = client.infer({**obs, "prev_action": prev})
        # The chunk starts at +0.0011: a change of 0.0511 from -0.05 exceeds 0.5 x range (0.05).
        assert "velocity" in reply["safety"]["interventions"]
        np.testing.assert_allclose(reply["actions"][0, :3], 0.0, atol=1e-6)
        with pytest.raises(ServerError, match="'prev_action' must be finite"):
            client.infer({**obs, "prev_action": np.full(7, np.nan, np.float32)})


@pytest.mark.parametrize(("mode", "calls", "exhausted"), [("nan_first", 2, False), ("nan", 2, True)])
def test_server_replans_nan_chunks_then_holds(rt, mode, calls, exhausted):
    policy = rt.ScriptedPolicy(mode=mode)
    server = PolicyServer(
        policy, rt.make_spec(policy), ServeConfig(port=0, recovery=RecoveryConfig(max_retries=1))
    )
    port = server.start()
    try:
        with PolicyClient("127.0.0.1", port) as client:
            reply = client.infer(rt.make_obs())
    finally:
        server.stop()
    assert policy.calls == calls and reply["safety"]["retries"] == 1
    assert reply["safety"]["recovery_exhausted"] is exhausted
    assert np.all(np.isfinite(reply["actions"]))
    if exhausted:
        np.testing.assert_array_equal(reply["actions"][:, :6], 0.0)  # hold: no motion
        assert reply["safety"]["interventions"] == ["non_finite_action"]
    else:
        assert np.all(reply["actions"][:, 0] > 0)


def test_a_refused_prompt_is_held_without_a_model_call_and_others_are_served(rt):
    from vla.models.instruction_check import InstructionCheck

    check = InstructionCheck.fit(["open the drawer", "close the drawer", "open the door", "press the button"])
    policy = rt.ScriptedPolicy()
    server = PolicyServer(policy, rt.make_spec(policy), ServeConfig(port=0), instruction_check=check)
    server.start()
    try:
        refused, served = (WebsocketClientPolicy("127.0.0.1", server.port) for _ in range(2))
        reply = refused.infer({**rt.make_obs(), "prompt": "xqv blorp zut"})
        assert policy.calls == 0
        assert reply["safety"]["interventions"] == ["ungroundable_instruction"]
        assert "not language" in reply["safety"]["held"]
        assert reply["actions"].shape == (4, 7) and np.all(np.isfinite(reply["actions"]))
        ok = served.infer(rt.make_obs())  # "open the drawer": acted on, by the other client
        assert policy.calls == 1 and "held" not in ok["safety"]
        np.testing.assert_allclose(np.diff(ok["actions"][:, 0]), 0.001, atol=1e-6)
        refused._ws.close()
        served._ws.close()
    finally:
        server.stop()


def test_the_presence_verdict_is_each_clients_own_and_judged_on_its_first_frame(rt):
    """One client's scene refusal never touches another's replies; a reset judges the scene again."""
    from vla.envs.tabletop import objects as obj
    from vla.envs.tabletop.presence_views import GROUPS
    from vla.models.presence import PresenceCheck, PresenceSpec, presence_scores

    hi, wi = rt.make_obs()["images/scene"].shape[:2]
    spec = PresenceSpec(
        GROUPS, {obj.describe(c, s): (c, s) for c, s in obj.ALL_PAIRS}, "scene", (hi, wi), ("colour",)
    )
    net = spec.net()
    bright, dark = np.full((hi, wi, 3), 230, np.uint8), np.zeros((hi, wi, 3), np.uint8)
    a, b = (presence_scores(net, spec, im[None])[0] for im in (bright, dark))
    j = int(np.argmax(np.abs(a - b)))
    seen, unseen = (bright, dark) if a[j] > b[j] else (dark, bright)
    check = PresenceCheck(net, spec, float((a[j] + b[j]) / 2))  # `seen` shows the object, `unseen` not
    prompt = f"touch the {list(spec.objects)[j]}"
    policy = rt.ScriptedPolicy()
    server = PolicyServer(policy, rt.make_spec(policy), ServeConfig(port=0), instruction_check=check)
    server.start()
    try:
        refused, served = (WebsocketClientPolicy("127.0.0.1", server.port) for _ in range(2))
        reply = refused.infer({**rt.make_obs(), "images/scene": unseen, "prompt": prompt})
        assert reply["safety"]["interventions"] == ["ungroundable_instruction"] and policy.calls == 0
        assert "does not show" in reply["safety"]["held"]
        ok = served.infer({**rt.make_obs(), "images/scene": seen, "prompt": prompt})
        assert policy.calls == 1 and "held" not in ok["safety"]
        # The object leaves the view mid-task (in the hand): the first frame's verdict stands.
        ok = served.infer({**rt.make_obs(), "images/scene": unseen, "prompt": prompt})
        assert policy.calls == 2 and "held" not in ok["safety"]
        again = refused.infer({**rt.make_obs(), "images/scene": seen, "prompt": prompt})
        assert "held" in again["safety"] and policy.calls == 2  # still this client's first verdict
        # A new episode (openpi's client.reset() is local only; the reset rides on the request).
        fresh = refused.infer({**rt.make_obs(), "images/scene": seen, "prompt": prompt, "reset": True})
        assert "held" not in fresh["safety"] and policy.calls == 3
        refused._ws.close()
        served._ws.close()
    finally:
        server.stop()
