"""Two robots on one server: per-connection safety state, e-stop release with a token (logged), and
the safety limits announced in the metadata frame."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from openpi_client.websocket_client_policy import WebsocketClientPolicy

from vla.runtime.client import PolicyClient, ServerError
from vla.runtime.recovery import RecoveryConfig
from vla.runtime.safety import SafetyConfig
from vla.runtime.server import PolicyServer, ServeConfig
from vla.types import ActionChunk, Observation

pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")


class TaggedPolicy:
    """Small finite chunks, except NaN for batch rows whose state[7] (joint_vel[0]) is 1: the "bad robot"."""

    def __init__(self, embodiment, config) -> None:
        self.embodiment = embodiment
        self.config = config
        self.calls = 0

    def predict(self, obs: Observation) -> ActionChunk:
        self.calls += 1
        b = obs.state.shape[0]
        actions = np.full((b, 4, 7), 0.001, np.float32)
        actions[obs.state[:, -1, 7] == 1.0] = np.nan
        return ActionChunk(actions=actions, confidence=np.full(b, 0.9, np.float32))


def _server(rt, **config) -> tuple[PolicyServer, int]:
    base = rt.ScriptedPolicy()
    policy = TaggedPolicy(base.embodiment, base.config)
    server = PolicyServer(policy, rt.make_spec(base), ServeConfig(port=0, **config))
    return server, server.start()


def _bad(rt) -> dict:
    obs = rt.make_obs()
    obs["state"] = obs["state"].copy()
    obs["state"][7] = 1.0
    return obs


def test_one_clients_estop_does_not_reach_another(rt):
    server, port = _server(rt)
    try:
        with PolicyClient("127.0.0.1", port) as a, PolicyClient("127.0.0.1", port) as b:
            obs = rt.make_obs()
            a.estop(reason="door opened", operator="alice")
            assert a.infer(obs)["safety"]["interventions"] == ["estop"]
            rb = b.infer(obs)
            assert rb["safety"]["estop"] is False and rb["safety"]["interventions"] == []
            np.testing.assert_allclose(rb["actions"][:, :6], 0.001, atol=1e-7)
            a.reset()  # a reset keeps A's latched stop
            assert a.infer(obs)["safety"]["interventions"] == ["estop"]
            sa, sb = server.sessions[1], server.sessions[2]
            assert sa.safety is not sb.safety and sa.history is not sb.history
            assert sa.safety.estopped and not sb.safety.estopped
            assert b.infer(obs)["safety"]["interventions"] == []
            assert sb.safety.stats["estop"] == 0
    finally:
        server.stop()


def test_rate_limit_trips_on_one_connection_only(rt):
    server, port = _server(rt)
    try:
        with PolicyClient("127.0.0.1", port) as a, PolicyClient("127.0.0.1", port) as b:
            obs = rt.make_obs()
            prev = np.array([-0.05, -0.05, -0.05, 0, 0, 0, 0], np.float32)
            assert "velocity" in a.infer({**obs, "prev_action": prev})["safety"]["interventions"]
            assert b.infer(obs)["safety"]["interventions"] == []
            assert server.sessions[1].safety.stats["velocity"] > 0
            assert server.sessions[2].safety.stats["velocity"] == 0
    finally:
        server.stop()


def test_a_failing_robot_latches_only_its_own_stop(rt):
    """Recovery exhausted with latch_estop on robot A (its frames give NaN) leaves robot B running."""
    server, port = _server(rt, recovery=RecoveryConfig(max_retries=1, latch_estop=True))
    try:
        with PolicyClient("127.0.0.1", port) as a, PolicyClient("127.0.0.1", port) as b:
            ra = a.infer(_bad(rt))
            assert ra["safety"]["recovery_exhausted"] is True and ra["safety"]["estop"] is True
            assert a.infer(rt.make_obs())["safety"]["interventions"] == ["estop"]  # latched for A
            rb = b.infer(rt.make_obs())
            assert rb["safety"]["estop"] is False and rb["safety"]["interventions"] == []
    finally:
        server.stop()


def test_release_needs_the_token_and_is_logged(rt, caplog):
    server, port = _server(rt, token="api-key", estop_token="op-secret")
    caplog.set_level(logging.WARNING)
    try:
        with PolicyClient("127.0.0.1", port, token="api-key") as a:
            obs = rt.make_obs()
            a.estop(reason="person in the cell", operator="alice")
            for token in (None, "api-key", "wrong"):  # the API key is not the release token here
                with pytest.raises(ServerError, match="e-stop release refused"):
                    a.release_estop(token, operator="mallory")
            assert a.infer(obs)["safety"]["interventions"] == ["estop"]
            a.release_estop("op-secret", reason="cell cleared", operator="bob")
            reply = a.infer(obs)
            assert reply["safety"]["estop"] is False and reply["safety"]["interventions"] == []
    finally:
        server.stop()
    events = [(e["event"], e["operator"], e["reason"]) for e in server.estop_log]
    assert events == [
        ("latch", "alice", "person in the cell"),
        ("release_refused", "mallory", ""),
        ("release_refused", "mallory", ""),
        ("release_refused", "mallory", ""),
        ("release", "bob", "cell cleared"),
    ]
    assert all(e["connection"] == 1 and e["peer"].startswith("127.0.0.1:") for e in server.estop_log)
    assert all(e["time"].endswith("Z") for e in server.estop_log)
    released = [r.getMessage() for r in caplog.records if "e-stop released" in r.getMessage()]
    assert len(released) == 1
    assert "operator 'bob'" in released[0] and "cell cleared" in released[0]
    assert "person in the cell" in released[0]  # what the stop was for


def test_api_token_releases_when_no_separate_estop_token(rt):
    server, port = _server(rt, token="api-key")
    try:
        with PolicyClient("127.0.0.1", port, token="api-key") as a:
            a.estop()
            a.release_estop("api-key", reason="checked")
            assert a.infer(rt.make_obs())["safety"]["estop"] is False
    finally:
        server.stop()


def test_metadata_announces_the_limits_in_force(rt):
    server, port = _server(rt, safety=SafetyConfig(min_confidence=0.3, workspace_margin=0.01))
    emb = rt.make_test_embodiment()
    try:
        client = WebsocketClientPolicy("127.0.0.1", port)  # openpi's decoder reads it unchanged
        meta = client.get_server_metadata()
        client._ws.close()
    finally:
        server.stop()
    assert meta == server.metadata()
    lim = meta["safety_limits"]
    assert lim["action_space"] == "ee_delta" and lim["control_hz"] == 10.0
    assert lim["min_confidence"] == 0.3 and lim["max_delta_change"] == 0.5
    groups = {g["name"]: g for g in lim["groups"]}
    assert list(groups) == ["arm_pos", "arm_rot", "gripper"]
    assert groups["arm_pos"]["low"] == pytest.approx([-0.05] * 3)
    assert groups["arm_pos"]["max_step"] == pytest.approx([0.05] * 3)  # 0.5 x the 0.1 m range
    assert groups["arm_rot"]["high"] == pytest.approx([0.25] * 3)
    assert groups["gripper"]["max_step"] == [None]  # grippers are not rate-limited by default
    assert groups["arm_pos"]["hold"] == "zero"
    ws = lim["workspace"]
    assert ws["group"] == "arm_pos" and ws["margin"] == 0.01
    assert ws["low"] == pytest.approx(np.asarray(emb.workspace_low) + 0.01)
    assert ws["high"] == pytest.approx(np.asarray(emb.workspace_high) - 0.01)
    assert meta["estop"] == {"scope": "connection", "release": "not over the wire"}


def test_unsafe_server_announces_no_limits_and_refuses_an_estop(rt):
    policy = rt.ScriptedPolicy()
    server = PolicyServer(policy, rt.make_spec(policy), ServeConfig(port=0, unsafe_no_filter=True))
    assert server.metadata()["safety_filter"] is False
    assert server.metadata()["safety_limits"] is None
    server.start()
    try:
        with (
            PolicyClient("127.0.0.1", server.port) as client,
            pytest.raises(ServerError, match="cannot e-stop: stop the robot on its side"),
        ):
            client.estop()
    finally:
        server.stop()


def test_batching_keeps_each_connections_held_scene(rt):
    from vla.runtime.batching import stack

    def one(scene: list[float] | None) -> Observation:
        o = rt.make_obs()
        return Observation(
            {c: o[f"images/{c}"][None, None] for c in ("scene", "wrist")},
            o["state"][None, None],
            ["go"],
            features={} if scene is None else {"scene": np.asarray([scene], np.float32)},
        )

    both = stack([one([0.1] * 8), one([0.2] * 8)])
    assert both.features["scene"].shape == (2, 8)
    np.testing.assert_allclose(both.features["scene"][:, 0], [0.1, 0.2])
    assert stack([one(None), one(None)]).features == {}
    with pytest.raises(ValueError, match="carry different features"):
        stack([one([0.1] * 8), one(None)])
