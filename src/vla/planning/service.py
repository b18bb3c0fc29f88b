"""The `plan` message of the policy server: a request's validation, and the reply.

A client sends one msgpack map on its (authenticated) websocket connection:

    {"plan": {"instruction": "put every block in the bowl",
              "scene": {"objects": [...], "containers": [...], "positions": {...}, "contents": {...}},
              "done": [{"skill": "put_in", "obj": "red block", "container": "bowl"}]},   # optional
     "request_id": 7}                                                                        # optional

and gets one map back: `{"plan": [{"skill": ..., slot: value}, ...], "steps": [instruction text, ...],
"planner": name, "server_timing": {"plan_ms": ...}}`, or, when the planner finds no valid plan,
`{"plan": None, "error": "why", "planner": name, ...}` (a refusal is an answer, not an action). A
malformed message is a `PlanRequestError` (a `ProtocolError`), which the server sends as its usual
text frame. Nothing here knows websockets; the server (`vla.runtime.server`) routes the message to a
`PlanService`, which plans in its own worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vla.planning.plan import Plan, PlanError, SceneDescription, Step
from vla.runtime.protocol import ProtocolError

MAX_INSTRUCTION_CHARS = 1000
MAX_SCENE_ITEMS = 64


class PlanRequestError(ProtocolError):
    """A `plan` message that is not well-formed (the text says what was expected)."""


@dataclass(frozen=True)
class PlanRequest:
    """A validated `plan` message.

    Attributes:
        instruction: the request, 1 to MAX_INSTRUCTION_CHARS characters.
        scene: the scene as the client's perception describes it.
        done: steps already done (the server plans the rest).
    """

    instruction: str
    scene: SceneDescription
    done: Plan = ()


def _names(value: Any, what: str) -> None:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise PlanRequestError(f"plan.scene.{what} must be a list of strings, got {type(value).__name__}")
    if len(value) > MAX_SCENE_ITEMS:
        raise PlanRequestError(f"plan.scene.{what} has {len(value)} entries; at most {MAX_SCENE_ITEMS}")


def parse_plan_request(body: Any) -> PlanRequest:
    """Validates the value of a message's "plan" key.

    Raises:
        PlanRequestError: naming the first problem and what was expected.
    """
    if not isinstance(body, Mapping):
        raise PlanRequestError(
            f"'plan' must be a map {{instruction, scene, done?}}, got {type(body).__name__}"
        )
    unknown = set(body) - {"instruction", "scene", "done"}
    if unknown:
        raise PlanRequestError(
            f"unknown keys in 'plan': {sorted(map(str, unknown))}; keys: instruction, scene, done"
        )
    instruction = body.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise PlanRequestError("plan.instruction must be a non-empty string")
    if len(instruction) > MAX_INSTRUCTION_CHARS:
        raise PlanRequestError(
            f"plan.instruction has {len(instruction)} characters; at most {MAX_INSTRUCTION_CHARS}"
        )
    scene = body.get("scene")
    if not isinstance(scene, Mapping) or "objects" not in scene:
        raise PlanRequestError("plan.scene must be a map with at least 'objects' (a list of object names)")
    _names(scene["objects"], "objects")
    _names(scene.get("containers", []), "containers")
    done = body.get("done", [])
    if not isinstance(done, list | tuple):
        raise PlanRequestError(f"plan.done must be a list of steps, got {type(done).__name__}")
    try:
        description = SceneDescription.from_json(scene)
        steps = tuple(Step.from_json(s) for s in done)
    except PlanError as e:
        raise PlanRequestError(str(e)) from e
    return PlanRequest(instruction.strip(), description, steps)


def answer_plan(planner: Any, request: PlanRequest) -> dict[str, Any]:
    """Plans `request` with `planner`: the reply map (a refusal is `{"plan": None, "error": ...}`)."""
    t0 = time.perf_counter()
    name = getattr(planner, "name", type(planner).__name__)
    try:
        plan = planner.plan(request.instruction, request.scene, done=request.done)
    except PlanError as e:
        return {"plan": None, "error": str(e), "planner": name, "server_timing": _ms(t0)}
    return {
        "plan": [s.to_json() for s in plan],
        "steps": [planner.vocab.text(s) for s in plan],
        "planner": name,
        "server_timing": _ms(t0),
    }


def _ms(t0: float) -> dict[str, float]:
    return {"plan_ms": (time.perf_counter() - t0) * 1e3}


def planner_metadata(planner: Any) -> dict[str, Any]:
    """What the server's metadata frame says about its planner: name, skills and their slots."""
    vocab = planner.vocab
    return {
        "name": getattr(planner, "name", type(planner).__name__),
        "skills": {s.name: dict(s.slots) for s in vocab.skills},
        "directions": list(vocab.directions),
        "max_steps": vocab.max_steps,
    }


class PlanService:
    """Answers a server's `plan` messages with one planner.

    Planning runs in its own worker thread (a language-model call can take a second): the event loop
    keeps serving other clients, and the policy's model calls (the server's batcher thread) are not
    queued behind it. Calls are serialized: a planner's model and caches are not re-entrant.
    """

    def __init__(self, planner: Any) -> None:
        self.planner = planner
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="vla-plan")

    def metadata(self) -> dict[str, Any]:
        return planner_metadata(self.planner)

    async def answer(self, msg: Mapping[str, Any]) -> dict[str, Any]:
        """The reply to one decoded message {"plan": {...}, "request_id"?}.

        Raises:
            PlanRequestError: the message is malformed.
        """
        rid = msg.get("request_id")
        if rid is not None and (
            isinstance(rid, bool) or not isinstance(rid, str | int) or len(str(rid)) > 256
        ):
            raise PlanRequestError("request_id must be a string (at most 256 chars) or an integer")
        extra = set(msg) - {"plan", "request_id"}
        if extra:
            raise PlanRequestError(
                f"a plan message takes only 'plan' and 'request_id', got also {sorted(extra)}"
            )
        request = parse_plan_request(msg["plan"])
        loop = asyncio.get_running_loop()
        reply = await loop.run_in_executor(self._pool, answer_plan, self.planner, request)
        return reply if rid is None else {**reply, "request_id": rid}

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
