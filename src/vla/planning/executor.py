"""Runs a plan with the low-level policy: step by step, judging each step, retrying and re-planning.

For each step the executor tells the env the step's instruction (`env.begin_step(text)`), lets the
actor (a policy controller or a scripted expert, `vla.rollout.Actor`) act until the step monitor
judges the step from the observations (never the simulator's success flag), and then:

* success: the next step;
* failure: "rephrase and retry" -- the same step with a paraphrased instruction (`rephrase`), up to
  `retries` times; then re-plan from the scene as it is now, with the steps done so far
  (`Planner.plan(..., done=...)`), up to `replans` times per request;
* when no re-plan is left, or the planner finds no plan, or the env's time runs out: stop. The executor
  sends no further actions (a robot loop then holds its pose) and says why in `stopped`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from vla.planning.base import Planner
from vla.planning.plan import Plan, PlanError, SceneDescription, Step


class SkillEnv(Protocol):
    """An env that runs one skill at a time (e.g. `vla.envs.tabletop.long_env.LongHorizonEnv`)."""

    def begin_step(self, instruction: str) -> dict[str, Any]: ...

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]: ...

    def describe_scene(self) -> SceneDescription: ...


class StepMonitor(Protocol):
    """Judges a step from observations: "running", "success" or "failure" (why: `reason`)."""

    reason: str

    def budget(self, step: Step) -> int: ...

    def start(self, step: Step, obs: dict[str, Any], scene: SceneDescription | None = None) -> None: ...

    def update(self, obs: dict[str, Any]) -> str: ...


class StepActor(Protocol):
    def reset(self) -> None: ...

    def act(self, obs: dict[str, Any]) -> np.ndarray: ...


@dataclass(frozen=True)
class ExecutorConfig:
    """How hard the executor tries.

    Attributes:
        retries: rephrased retries of a failed step before re-planning.
        replans: re-plans per request.
        seed: seed of the paraphrase draws.
    """

    retries: int = 1
    replans: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.replans < 0:
            raise ValueError(f"retries and replans must be >= 0, got {self.retries}, {self.replans}")


@dataclass
class StepRecord:
    """One attempt at one step.

    Attributes:
        step: the step, as {"skill": ..., slot: value}.
        text: the instruction the policy was given.
        attempt: 0 for the first try, 1.. for retries.
        success: the monitor's verdict.
        reason: the monitor's reason.
        control_steps: actions the attempt took.
        info: the env's info of the attempt's last step (evaluation reads its simulator flags).
    """

    step: dict[str, str]
    text: str
    attempt: int
    success: bool
    reason: str
    control_steps: int
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExecutionResult:
    """What happened to one request.

    Attributes:
        instruction: the request.
        plan: the first plan (empty if the planner refused).
        attempts: every step attempt in order.
        replans: re-plans made.
        plan_latency_s: wall time of every planner call.
        finished: the executor believes every step succeeded.
        stopped: why it stopped early ("" when finished).
    """

    instruction: str
    plan: Plan = ()
    attempts: list[StepRecord] = field(default_factory=list)
    replans: int = 0
    plan_latency_s: list[float] = field(default_factory=list)
    finished: bool = False
    stopped: str = ""

    @property
    def steps_done(self) -> int:
        return sum(a.success for a in self.attempts)

    @property
    def failures(self) -> int:
        return sum(not a.success for a in self.attempts)

    def to_json(self) -> dict[str, Any]:
        return {
            "instruction": self.instruction,
            "plan": [s.to_json() for s in self.plan],
            "attempts": [
                {k: v for k, v in a.__dict__.items() if k != "info"}
                | {"sim_step_success": a.info.get("step_success")}
                for a in self.attempts
            ],
            "replans": self.replans,
            "plan_latency_s": self.plan_latency_s,
            "finished": self.finished,
            "stopped": self.stopped,
        }


class Executor:
    """Plans a request, then runs it step by step (see module doc).

    Args:
        planner: any `Planner`.
        actor: the low-level skill executor (reset before every step attempt).
        monitor: judges each step from observations.
        config: retries and re-plans.
        rephrase: (instruction, rng) -> another instruction with the same meaning (None: retry verbatim).
    """

    def __init__(
        self,
        planner: Planner,
        actor: StepActor,
        monitor: StepMonitor,
        config: ExecutorConfig | None = None,
        *,
        rephrase: Callable[[str, np.random.Generator], str] | None = None,
    ) -> None:
        self.planner = planner
        self.actor = actor
        self.monitor = monitor
        self.config = config or ExecutorConfig()
        self.rephrase = rephrase

    def _plan(self, result: ExecutionResult, instruction: str, scene: SceneDescription, done: Plan) -> Plan:
        t0 = time.perf_counter()
        try:
            return self.planner.plan(instruction, scene, done=done)
        finally:
            result.plan_latency_s.append(time.perf_counter() - t0)

    def run(self, env: SkillEnv, instruction: str) -> ExecutionResult:
        """Executes `instruction` in `env` (already reset); never raises on a refusal or failure."""
        result = ExecutionResult(instruction)
        rng = np.random.default_rng(self.config.seed)
        try:
            queue = list(self._plan(result, instruction, env.describe_scene(), ()))
        except PlanError as e:
            result.stopped = f"refused: {e}"
            return result
        result.plan = tuple(queue)
        done: list[Step] = []
        while queue:
            step = queue.pop(0)
            text = self.planner.vocab.text(step)
            for attempt in range(self.config.retries + 1):
                record = self._attempt(env, step, text, attempt)
                result.attempts.append(record)
                if record.success or record.info.get("truncated"):
                    break
                if self.rephrase is not None and attempt < self.config.retries:
                    text = self.rephrase(self.planner.vocab.text(step), rng)
            if record.info.get("truncated"):
                result.stopped = "the episode's time ran out"
                return result
            if record.success:
                done.append(step)
                continue
            if result.replans >= self.config.replans:
                result.stopped = f"step '{text}' failed ({record.reason}) and no re-plan is left"
                return result
            result.replans += 1
            try:
                queue = list(self._plan(result, instruction, env.describe_scene(), tuple(done)))
            except PlanError as e:
                result.stopped = f"re-planning failed: {e}"
                return result
        result.finished = True
        return result

    def _attempt(self, env: SkillEnv, step: Step, text: str, attempt: int) -> StepRecord:
        obs = env.begin_step(text)
        self.actor.reset()
        # The scene as the planner sees it at the step's start (where the container or base is).
        self.monitor.start(step, obs, scene=env.describe_scene())
        status, n = "running", 0
        info: dict[str, Any] = {}
        while status == "running":
            obs, _, _, truncated, info = env.step(np.asarray(self.actor.act(obs), dtype=np.float32))
            n += 1
            status = self.monitor.update(obs)
            if truncated and status == "running":
                info = {**info, "truncated": True}
                self.monitor.reason = "failed: the episode's time ran out"
                break
        return StepRecord(
            step.to_json(), text, attempt, status == "success", self.monitor.reason, n, dict(info)
        )
