"""The HTTP planners against a real local HTTP server (http.server in a thread) that speaks the OpenAI
chat-completions and the Anthropic Messages APIs: replies, timeouts, retries, refusals, bad replies."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from vla.envs.tabletop.skills import VOCABULARY
from vla.planning.plan import PlanError, SceneDescription, Step
from vla.planning.registry import build_planner
from vla.planning.remote import PlannerUnavailableError

SCENE = SceneDescription(
    objects=("red block", "blue ball"),
    containers=("bowl",),
    positions={"red block": (0.5, 0.1), "blue ball": (0.4, -0.1), "bowl": (0.5, 0.25)},
)
PLAN_JSON = json.dumps(
    {
        "plan": [
            {"skill": "put_in", "obj": "red block", "container": "bowl"},
            {"skill": "pick_up", "obj": "blue ball"},
        ]
    }
)
EXPECTED = (Step.of("put_in", obj="red block", container="bowl"), Step.of("pick_up", obj="blue ball"))


def openai_reply(content: str) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
    }


def anthropic_reply(text: str) -> dict[str, Any]:
    return {"id": "m1", "type": "message", "role": "assistant", "content": [{"type": "text", "text": text}]}


class LMServer:
    """A local HTTP server answering POSTs from a script of (status, body, delay_s); the last entry
    repeats. Records every request's path, headers (lower-cased names) and JSON body."""

    def __init__(self) -> None:
        self.script: list[tuple[int, Any, float]] = [(200, openai_reply(PLAN_JSON), 0.0)]
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                owner.requests.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                    }
                )
                status, reply, delay = owner.script[min(len(owner.requests), len(owner.script)) - 1]
                time.sleep(delay)
                data = reply.encode() if isinstance(reply, str) else json.dumps(reply).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def lm() -> Iterator[LMServer]:
    server = LMServer()
    try:
        yield server
    finally:
        server.close()


def openai(lm: LMServer, **opts: Any):
    return build_planner(
        "openai", VOCABULARY, url=lm.url + "/v1", model="local-model", backoff_s=0.01, **opts
    )


def anthropic(lm: LMServer, **opts: Any):
    return build_planner("anthropic", VOCABULARY, url=lm.url, backoff_s=0.01, **opts)


def test_openai_chat_completions_plan(lm: LMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert openai(lm).plan("put the red block in the bowl, then lift the blue ball", SCENE) == EXPECTED
    (req,) = lm.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["authorization"] == "Bearer sk-test"
    assert req["body"]["model"] == "local-model" and req["body"]["temperature"] == 0
    system, user = req["body"]["messages"]
    assert "put_in: obj (object), container (container)" in system["content"]
    assert "Request: put the red block in the bowl, then lift the blue ball" in user["content"]


def test_openai_without_key_sends_no_authorization(lm: LMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    openai(lm).plan("put the red block in the bowl, then lift the blue ball", SCENE)
    assert "authorization" not in lm.requests[0]["headers"]


def test_anthropic_messages_plan_in_a_code_fence(lm: LMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "ak-test")
    lm.script = [(200, anthropic_reply(f"```json\n{PLAN_JSON}\n```"), 0.0)]
    done = EXPECTED[:1]
    scene = SceneDescription(SCENE.objects, SCENE.containers, SCENE.positions, {"bowl": ("red block",)})
    assert (
        anthropic(lm).plan("put the red block in the bowl, then lift the blue ball", scene, done=done)
        == EXPECTED[1:]
    )
    (req,) = lm.requests
    assert req["path"] == "/v1/messages"
    assert req["headers"]["x-api-key"] == "ak-test" and req["headers"]["anthropic-version"] == "2023-06-01"
    assert "skill" in req["body"]["system"] and req["body"]["max_tokens"] > 0
    assert "Already done" in req["body"]["messages"][0]["content"]


def test_anthropic_needs_a_key_and_sends_nothing_without(
    lm: LMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(PlanError, match="needs an API key in the environment variable ANTHROPIC_API_KEY"):
        anthropic(lm).plan("pick up the red block", SCENE)
    assert lm.requests == []


def test_5xx_and_429_are_retried(lm: LMServer) -> None:
    lm.script = [
        (503, {"error": "overloaded"}, 0.0),
        (429, {"error": "slow down"}, 0.0),
        (200, openai_reply(PLAN_JSON), 0.0),
    ]
    assert (
        openai(lm, retries=2).plan("put the red block in the bowl, then lift the blue ball", SCENE)
        == EXPECTED
    )
    assert len(lm.requests) == 3


def test_5xx_that_persists_makes_the_planner_unavailable(lm: LMServer) -> None:
    lm.script = [(500, {"error": "boom"}, 0.0)]
    with pytest.raises(PlannerUnavailableError, match="unavailable after 3 attempts: HTTP 500"):
        openai(lm, retries=2).plan("pick up the red block", SCENE)
    assert len(lm.requests) == 3


def test_4xx_is_not_retried(lm: LMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "wrong")
    lm.script = [(401, {"type": "error", "error": {"type": "authentication_error"}}, 0.0)]
    with pytest.raises(PlanError, match=r"answered HTTP 401.*authentication_error") as e:
        anthropic(lm, retries=3).plan("pick up the red block", SCENE)
    assert not isinstance(e.value, PlannerUnavailableError)
    assert len(lm.requests) == 1


def test_timeouts_are_retried_then_reported(lm: LMServer) -> None:
    lm.script = [(200, openai_reply(PLAN_JSON), 0.6)]
    t0 = time.perf_counter()
    with pytest.raises(PlannerUnavailableError, match=r"unavailable after 2 attempts: no reply within 0.2 s"):
        openai(lm, timeout_s=0.2, retries=1).plan("pick up the red block", SCENE)
    assert time.perf_counter() - t0 < 1.0
    assert len(lm.requests) == 2


def test_a_slow_first_reply_then_a_fast_one_succeeds(lm: LMServer) -> None:
    lm.script = [(200, openai_reply(PLAN_JSON), 0.6), (200, openai_reply(PLAN_JSON), 0.0)]
    assert (
        openai(lm, timeout_s=0.3, retries=1).plan(
            "put the red block in the bowl, then lift the blue ball", SCENE
        )
        == EXPECTED
    )


def test_no_server_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    planner = build_planner(
        "openai", VOCABULARY, url=f"http://127.0.0.1:{port}/v1", retries=1, backoff_s=0.01
    )
    with pytest.raises(PlannerUnavailableError, match=r"cannot connect.*offline\? use the offline planner"):
        planner.plan("pick up the red block", SCENE)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ("this is not json", "sent a reply that is not JSON"),
        ({"choices": []}, "malformed chat completion"),
        ({"choices": [{"message": {"content": None}}]}, "content is NoneType"),
        (openai_reply("Sure! First pick up the block."), "holds no JSON object"),
        (
            openai_reply('{"plan": [{"skill": "put_in", "obj": "red block"'),
            "holds no JSON object|not valid JSON",
        ),
        (openai_reply('{"plan": "put it in the bowl"}'), "no 'plan' list"),
        (openai_reply('{"plan": [{"skill": "juggle", "obj": "red block"}]}'), "unknown skill 'juggle'"),
        (
            openai_reply('{"plan": [{"skill": "pick_up", "obj": "purple ball"}]}'),
            "no purple ball in the scene",
        ),
        (openai_reply('{"plan": [{"skill": "pick_up", "obj": 3}]}'), "slot values must be strings"),
        (openai_reply('{"plan": []}'), "the plan is empty"),
        (openai_reply('{"error": "there is no drawer"}'), "the planner refused: there is no drawer"),
    ],
)
def test_malformed_or_invalid_replies_are_plan_errors(lm: LMServer, reply: Any, message: str) -> None:
    lm.script = [(200, reply, 0.0)]
    with pytest.raises(PlanError, match=message):
        openai(lm, retries=2).plan("pick up the red block", SCENE)
    assert len(lm.requests) == 1  # a bad reply is not retried


def test_anthropic_reply_without_text_block(lm: LMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "ak-test")
    lm.script = [(200, {"content": [{"type": "tool_use", "id": "t", "name": "x", "input": {}}]}, 0.0)]
    with pytest.raises(PlanError, match="has no text block"):
        anthropic(lm).plan("pick up the red block", SCENE)
