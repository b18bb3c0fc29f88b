"""The server's `plan` message over the real websocket server, with the real (parser-only) planner."""

from __future__ import annotations

import threading
import time
import urllib.request

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from vla.envs.tabletop.skills import VOCABULARY
from vla.planning.offline import rules_planner
from vla.planning.plan import Plan, SceneDescription
from vla.runtime.client import PolicyClient, ServerError
from vla.runtime.protocol import packb, unpackb
from vla.runtime.server import PolicyServer, ServeConfig

SCENE = {
    "objects": ["red block", "blue ball", "green cylinder"],
    "containers": ["bowl", "plate"],
    "positions": {"red block": [0.5, 0.1], "blue ball": [0.4, -0.1], "green cylinder": [0.6, 0.0]},
}


class SlowPlanner:
    """The real parser planner, made to take `delay` seconds, as a language-model planner can."""

    def __init__(self, delay: float) -> None:
        self.inner = rules_planner(VOCABULARY)
        self.name, self.vocab, self.delay = "slow-rules", VOCABULARY, delay

    def plan(self, instruction: str, scene: SceneDescription, *, done: Plan = ()) -> Plan:
        time.sleep(self.delay)
        return self.inner.plan(instruction, scene, done=done)


@pytest.fixture
def plan_server(rt):
    policy = rt.ScriptedPolicy()
    server = PolicyServer(
        policy, rt.make_spec(policy), ServeConfig(port=0, token="s3cret"), planner=rules_planner(VOCABULARY)
    )
    port = server.start()
    try:
        yield port
    finally:
        server.stop()


def test_plan_message_returns_the_plan_and_needs_the_token(plan_server, rt):
    with pytest.raises(InvalidStatus) as e:
        connect(f"ws://127.0.0.1:{plan_server}", open_timeout=5)
    assert e.value.response.status_code == 401
    with PolicyClient("127.0.0.1", plan_server, token="s3cret") as client:
        assert client.metadata["planner"]["name"] == "rules"
        assert client.metadata["planner"]["skills"]["put_in"] == {"obj": "object", "container": "container"}
        reply = client.plan("put the red block in the bowl and then push the blue ball to the left", SCENE)
        assert reply["steps"] == ["put the red block in the bowl", "push the blue ball to the left"]
        assert reply["plan"][0] == {"skill": "put_in", "obj": "red block", "container": "bowl"}
        assert reply["server_timing"]["plan_ms"] >= 0
        done = client.plan(
            "put the red block in the bowl and then push the blue ball to the left",
            SCENE,
            done=reply["plan"][:1],
        )
        assert done["steps"] == ["push the blue ball to the left"]
        # The same connection still serves observations.
        assert client.infer(rt.make_obs())["actions"].shape == (4, 7)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("put the red block in the bowl", "'plan' must be a map"),
        ({"scene": SCENE}, "instruction must be a non-empty string"),
        ({"instruction": "x" * 1001, "scene": SCENE}, "at most 1000"),
        ({"instruction": "put the red block in the bowl"}, "plan.scene must be a map"),
        (
            {"instruction": "put the red block in the bowl", "scene": {"objects": "red block"}},
            "list of strings",
        ),
        ({"instruction": "put it", "scene": SCENE, "done": [{"obj": "red block"}]}, "string 'skill'"),
        ({"instruction": "put it", "scene": SCENE, "extra": 1}, "unknown keys"),
    ],
)
def test_malformed_plan_messages_get_a_text_error_and_the_connection_survives(plan_server, body, message):
    with connect(
        f"ws://127.0.0.1:{plan_server}", additional_headers={"Authorization": "Api-Key s3cret"}
    ) as ws:
        ws.recv(timeout=5)  # metadata
        ws.send(packb({"plan": body}))
        reply = ws.recv(timeout=5)
        assert isinstance(reply, str) and reply.startswith("bad request:") and message in reply
        ws.send(packb({"plan": {"instruction": "pick up the red block", "scene": SCENE}, "request_id": "a"}))
        ok = unpackb(ws.recv(timeout=5))
        assert ok["request_id"] == "a" and ok["steps"] == ["pick up the red block"]


def test_a_refused_request_is_an_answer_with_the_reason(plan_server):
    with PolicyClient("127.0.0.1", plan_server, token="s3cret") as client:
        with pytest.raises(
            ServerError, match=r"the planner refused: .*no skill of the policy matches 'throw"
        ):
            client.plan("throw the red block", SCENE)
        with pytest.raises(ServerError, match="no purple ball in the scene"):
            client.plan("put the purple ball in the bowl", SCENE)
        assert client.plan("touch the green cylinder", SCENE)["steps"] == ["touch the green cylinder"]


def test_a_server_without_planner_refuses_plan_messages(scripted_server):
    server, _ = scripted_server
    with PolicyClient("127.0.0.1", server.port) as client:
        assert client.metadata["planner"] is None
        with pytest.raises(ServerError, match="this server has no planner"):
            client.plan("pick up the red block", SCENE)


def test_slow_planning_does_not_block_other_clients(rt):
    policy = rt.ScriptedPolicy()
    server = PolicyServer(policy, rt.make_spec(policy), ServeConfig(port=0), planner=SlowPlanner(1.0))
    port = server.start()
    try:
        planning = PolicyClient("127.0.0.1", port)
        got: list[dict] = []
        t = threading.Thread(target=lambda: got.append(planning.plan("pick up the red block", SCENE)))
        t.start()
        time.sleep(0.1)  # the plan call is now running in the planning thread
        t0 = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            assert r.status == 200
        with PolicyClient("127.0.0.1", port) as other:
            assert other.infer(rt.make_obs())["actions"].shape == (4, 7)
        assert time.perf_counter() - t0 < 0.6  # well before the 1 s plan call ends
        t.join()
        planning.close()
        assert got[0]["steps"] == ["pick up the red block"]
    finally:
        server.stop()
