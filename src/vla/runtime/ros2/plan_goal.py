"""Long-horizon goals on the ROS 2 node (the ExecutePlan action): plan a request, run it with the policy.

A goal is planned and executed by `vla.planning.executor.Executor`, the one `vla run` uses, in a
worker thread of its own (`PlanRun`), so the node's loop keeps serving other goals, cancels, the
e-stop and the status while a language model plans. The executor sees the ROS graph as its env:

    describe_scene()  the goal's scene, replaced by each newer one on the node's `scene` topic
    begin_step(text)  the step's instruction becomes the observation's (what the policy is told)
    step(action)      hands the command to the node's loop, which publishes it, then waits for the next
                      observation the loop assembles from the robot's topics

Every step is judged by the suite's step monitor from the robot's state only: never a simulator's flag,
never `task_success`. Feedback goes out when the planner plans or re-plans and when a step starts or
ends. Stops (cancel, preemption, e-stop, the step budget, shutdown) take effect between two actions:
the next `step` sends nothing and ends the executor's run, so the robot holds where it is. Only the
node's loop touches the transport; the worker posts commands, feedback and its end to an outbox.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla.planning.base import Planner
from vla.planning.executor import ExecutionResult, Executor, ExecutorConfig, StepMonitor
from vla.planning.plan import Plan, PlanError, SceneDescription, Step
from vla.planning.service import parse_plan_request
from vla.runtime.protocol import ProtocolError
from vla.runtime.ros2.transport import STATUS_ABORTED, STATUS_SUCCEEDED
from vla.types import Observation

logger = logging.getLogger(__name__)

JOIN_S = 5.0


@dataclass(frozen=True)
class PlanRoute:
    """What a node needs to serve ExecutePlan goals.

    Attributes:
        planner: a `Planner` over the policy's skills (`vla.planning.registry.build_planner`).
        monitor: makes a fresh step monitor for each goal (a suite's `step_monitor`).
        executor: rephrased retries and re-plans per goal.
        rephrase: (instruction, rng) -> the same step in other words, for retries (a suite's
            `paraphrase`); None retries verbatim.
        planner_lock: serializes planner calls (a model and its caches are not re-entrant), also
            across a preempted goal still re-planning and the goal that preempted it.
    """

    planner: Planner
    monitor: Callable[[], StepMonitor]
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    rephrase: Callable[[str, np.random.Generator], str] | None = None
    planner_lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    @classmethod
    def for_suite(cls, suite: Any, planner: Planner, executor: ExecutorConfig | None = None) -> PlanRoute:
        """The route of a suite that declares `step_monitor` (and optionally `paraphrase`).

        Raises:
            ValueError: the suite has no step monitor to judge steps with.
        """
        monitor = getattr(suite, "step_monitor", None)
        if not callable(monitor):
            raise ValueError(
                f"suite {type(suite).__name__} declares no step_monitor(); ExecutePlan judges every step "
                "with one (see vla.planning.run.LongHorizonSuite)"
            )
        return cls(planner, monitor, executor or ExecutorConfig(), getattr(suite, "paraphrase", None))


def parse_scene(text: str) -> SceneDescription:
    """A scene description from its JSON text (the goal's `scene`, the `scene` topic).

    Raises:
        PlanError: not JSON, or not a scene map {objects, containers?, positions?, contents?}.
    """
    try:
        body = json.loads(text)
    except json.JSONDecodeError as e:
        raise PlanError(f'the scene is not JSON ({e}); expected {{"objects": [...], ...}}') from e
    try:
        return parse_plan_request({"instruction": "scene", "scene": body}).scene
    except ProtocolError as e:
        raise PlanError(str(e)) from e


class _StoppedError(Exception):
    """The goal was stopped between two actions (the reason is on the run)."""


class PlanRun:
    """One ExecutePlan goal: the worker that plans and executes it, and the executor's env.

    The node calls `start`, `offer` (each new observation), `update_scene`, `stop`, `take` (the
    outbox), `hold_feedback` and `outcome`; the worker calls the env methods through the executor.

    Args:
        route: the planner, step monitor and retry settings.
        goal_id: the goal's id.
        instruction: the request.
        scene: the goal's scene JSON ("": `fallback_scene`).
        fallback_scene: the newest scene of the node's scene topic, or None.
        budget: commands the goal may send.
        grace_s: after the budget's last command, how long to wait for the observation that judges it
            (a robot may stop publishing when its episode's time is up).
        controller: the node's controller (reset before every step attempt, acts on observations).
        controller_lock: held around every use of the controller (the node's loop uses it too).
        wake: wakes the node's loop after posting to the outbox.
        started_ns: when the goal was accepted (transport clock).
    """

    def __init__(
        self,
        route: PlanRoute,
        *,
        goal_id: bytes,
        instruction: str,
        scene: str,
        fallback_scene: SceneDescription | None,
        budget: int,
        grace_s: float,
        controller: Any,
        controller_lock: threading.Lock,
        wake: Callable[[], None],
        started_ns: int,
    ) -> None:
        self.route = route
        self.goal_id = goal_id
        self.instruction = instruction
        self.budget = budget
        self.grace_s = grace_s
        self.started_ns = started_ns
        self.commands = 0  # published by the node's loop (it counts them)
        self._controller = controller
        self._lock = controller_lock
        self._wake = wake
        self._cond = threading.Condition()
        self._outbox: deque[tuple[str, Any]] = deque()
        self._obs: tuple[Observation, int] | None = None  # newest observation not taken yet, its stamp
        self._last: tuple[Observation, int] | None = None
        self._sent = 0
        self.stop_reason = ""
        self.stop_status = STATUS_ABORTED
        self._thread = threading.Thread(target=self._work, name="vla-plan-goal", daemon=True)
        # What the feedback and the result report (written by the worker).
        self.first_plan: Plan = ()
        self.text = ""
        self.index = 0  # 1-based plan step running; 0 while planning
        self.plan_steps = 0
        self.attempt = 0
        self.done = 0
        self.replans = 0
        self._hold = ""
        self.refusal = ""
        self._scene: SceneDescription | None = None
        try:
            parse_plan_request({"instruction": instruction, "scene": {"objects": []}})  # its length
            if scene.strip():
                self._scene = parse_scene(scene)
            elif fallback_scene is not None:
                self._scene = fallback_scene
            else:
                raise PlanError("the goal has no scene and none arrived on the node's scene topic")
        except (PlanError, ProtocolError) as e:
            self.refusal = str(e)

    # ---- the node's side --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def offer(self, obs: Observation, stamp_ns: int) -> None:
        """The newest observation from the robot (replaces one the worker has not taken yet)."""
        with self._cond:
            self._obs = (obs, stamp_ns)
            self._cond.notify_all()

    def update_scene(self, scene: SceneDescription) -> None:
        with self._cond:
            self._scene = scene

    def stop(self, reason: str, status: int) -> None:
        """Ends the goal between two actions: no command is posted after this returns."""
        with self._cond:
            if not self.stop_reason:
                self.stop_reason, self.stop_status = reason, status
            self._cond.notify_all()
        if not self._thread.is_alive() and self._thread.ident is None:
            self._post("done", None)  # never started (e.g. an e-stop was latched): nothing runs

    def join(self, timeout_s: float = JOIN_S) -> None:
        if self._thread.ident is not None:
            self._thread.join(timeout_s)

    def take(self) -> list[tuple[str, Any]]:
        """What the worker posted: ("command", (action, stamp)), ("feedback", fields), ("done", result)."""
        out = []
        while self._outbox:
            out.append(self._outbox.popleft())
        return out

    def hold_feedback(self, state: str) -> dict[str, Any] | None:
        """Feedback for a hold of the node's loop, once per change of what it holds for (else None)."""
        if state == self._hold:
            return None
        self._hold = state
        return {**self._feedback("hold", state), "commands": self.commands}

    def outcome(self, result: ExecutionResult | None) -> tuple[int, dict[str, Any]]:
        """The goal's terminal status and result fields (without `steps` and `duration_s`)."""
        vocab = self.route.planner.vocab
        finished = result is not None and result.finished and not self.stop_reason
        if finished:
            reason = "succeeded"
        elif self.stop_reason:
            reason = self.stop_reason
        elif self.refusal:
            reason = f"refused: {self.refusal}"
        else:
            reason = result.stopped if result is not None else "ended without a result"
        status = STATUS_SUCCEEDED if finished else (self.stop_status if self.stop_reason else STATUS_ABORTED)
        return status, {
            "success": finished,
            "reason": reason,
            "plan": [vocab.text(s) for s in self.first_plan],
            "plan_json": json.dumps([s.to_json() for s in self.first_plan]),
            "steps_completed": self.done,
            "replans": self.replans,
        }

    # ---- the worker -------------------------------------------------------------------------------
    def _post(self, kind: str, value: Any) -> None:
        self._outbox.append((kind, value))
        self._wake()

    def _feedback(self, status: str, detail: str = "") -> dict[str, Any]:
        return {
            "step": self.index,
            "plan_steps": self.plan_steps,
            "skill": self.text,
            "attempt": self.attempt,
            "status": status,
            "detail": detail,
            "replans": self.replans,
        }

    def _report(self, status: str, detail: str = "") -> None:
        self._hold = ""
        self._post("feedback", self._feedback(status, detail))

    def _work(self) -> None:
        result: ExecutionResult | None = None
        try:
            if self.refusal:
                self._report("failed", f"refused: {self.refusal}")
            else:
                r = self.route
                executor = Executor(
                    _ReportingPlanner(self), _Actor(self), _ReportingMonitor(self, r.monitor()), r.executor,
                    rephrase=r.rephrase,
                )  # fmt: skip
                result = executor.run(self, self.instruction)
        except _StoppedError:
            pass
        except Exception as e:  # a planner backend or monitor error ends the goal, never the node
            logger.exception("ExecutePlan goal '%s' failed", self.instruction)
            with self._cond:
                self.stop_reason = self.stop_reason or f"error: {type(e).__name__}: {e}"
        self._post("done", result)

    def _check(self) -> None:
        if self.stop_reason:
            raise _StoppedError

    # ---- the executor's env (worker thread) -------------------------------------------------------
    def describe_scene(self) -> SceneDescription:
        with self._cond:
            assert self._scene is not None  # a goal without a scene is refused before it runs
            return self._scene

    def begin_step(self, instruction: str) -> dict[str, Any]:
        """The newest observation (waiting for the first one), now carrying the step's instruction."""
        self.text = instruction
        with self._cond:
            self._cond.wait_for(lambda: self._obs is not None or self._last is not None or self.stop_reason)
            self._check()
            if self._obs is not None:
                self._last, self._obs = self._obs, None
            assert self._last is not None
            return self._as_env(self._last[0])

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Posts one command, then waits for the observation after it."""
        with self._cond:
            self._check()
            if self._sent >= self.budget:
                self.stop_reason, self.stop_status = "max_steps", STATUS_ABORTED
                raise _StoppedError
            assert self._last is not None
            self._obs = None  # the next observation must come after this command
            self._sent += 1
            self._post("command", (np.asarray(action, np.float32), self._last[1]))
            timeout = self.grace_s if self._sent >= self.budget else None
            arrived = self._cond.wait_for(lambda: self._obs is not None or self.stop_reason, timeout)
            self._check()
            if not arrived:
                self.stop_reason, self.stop_status = "max_steps", STATUS_ABORTED
                raise _StoppedError
            self._last, self._obs = self._obs, None
            assert self._last is not None
            return self._as_env(self._last[0]), 0.0, False, False, {}

    def _as_env(self, obs: Observation) -> dict[str, Any]:
        return {"images": obs.images, "state": obs.state, "instruction": self.text}


class _ReportingPlanner:
    """The route's planner, serialized, stopping when the goal is, reporting every (re-)plan."""

    def __init__(self, run: PlanRun) -> None:
        self.run = run
        self.planner = run.route.planner
        self.vocab = self.planner.vocab
        self.name = getattr(self.planner, "name", type(self.planner).__name__)

    def plan(self, instruction: str, scene: SceneDescription, *, done: Plan = ()) -> Plan:
        run = self.run
        first = not run.first_plan
        if not first:
            run.replans += 1
        run.index, run.attempt, run.text = 0, 0, ""
        run._report("planning" if first else "replanning", "" if first else f"{len(done)} steps done")
        with run.route.planner_lock:
            run._check()
            t0 = time.perf_counter()
            try:
                plan = self.planner.plan(instruction, scene, done=done)
            except PlanError as e:
                run._report("failed", f"{'refused' if first else 're-planning failed'}: {e}")
                raise
        if first:
            run.first_plan = plan
        run.plan_steps = len(done) + len(plan)
        texts = "; ".join(self.vocab.text(s) for s in plan)
        run._report("planned", f"{len(plan)} steps in {time.perf_counter() - t0:.2f} s: {texts}")
        return plan


class _ReportingMonitor:
    """The suite's step monitor, reporting each step's start and verdict."""

    def __init__(self, run: PlanRun, monitor: StepMonitor) -> None:
        self.run = run
        self.monitor = monitor
        self._last: tuple[Step, bool] | None = None  # the last step started, and whether it failed

    @property
    def reason(self) -> str:
        return self.monitor.reason

    @reason.setter
    def reason(self, value: str) -> None:
        self.monitor.reason = value

    def budget(self, step: Step) -> int:
        return self.monitor.budget(step)

    def start(self, step: Step, obs: dict[str, Any], scene: SceneDescription | None = None) -> None:
        run = self.run
        retry = self._last is not None and self._last[0] == step and self._last[1] and run.index > 0
        run.attempt = run.attempt + 1 if retry else 0
        run.index = run.done + 1
        self._last = (step, False)
        self.monitor.start(step, obs, scene=scene)
        run._report("running")

    def update(self, obs: dict[str, Any]) -> str:
        verdict = self.monitor.update(obs)
        if verdict != "running":
            run = self.run
            if verdict == "success":
                run.done += 1
            elif self._last is not None:
                self._last = (self._last[0], True)
            run._report("succeeded" if verdict == "success" else "failed", self.monitor.reason)
        return verdict


class _Actor:
    """The node's controller as the executor's actor (never used once the goal is stopping)."""

    def __init__(self, run: PlanRun) -> None:
        self.run = run

    def reset(self) -> None:
        with self.run._lock:
            self.run._check()
            self.run._controller.reset()

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        with self.run._lock:
            self.run._check()
            return np.asarray(self.run._controller.act(obs), dtype=np.float32)
