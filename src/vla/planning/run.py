"""One request, end to end: pick a scene that has what it names, build the skill actor, plan, execute.

What `vla run "instruction"` does, and what the long-horizon evaluation shares with it: the actor that
executes each plan step (a policy checkpoint through the deployed control stack, or the suite's
scripted expert when there is no trained model), optionally with injected faults. Everything reads
the suite's long-horizon declaration (`LongHorizonSuite`); no suite is named here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from vla.planning.executor import ExecutionResult, Executor, ExecutorConfig
from vla.planning.parse import RequestParser
from vla.planning.plan import Plan, PlanError, SceneDescription, SkillVocabulary
from vla.rollout.loop import Instrumented

EXECUTORS = ("policy", "expert")


class LongHorizonSuite(Protocol):
    """What a suite declares to take long-horizon requests (e.g. `vla.envs.tabletop.suite`)."""

    long_horizon_kinds: tuple[str, ...]
    long_horizon_splits: tuple[str, ...]

    @property
    def skills(self) -> SkillVocabulary: ...

    def make_long_horizon(
        self, kind: str, *, split: str = ..., image_size: tuple[int, int] = ..., action_mode: str = ...
    ) -> Any: ...

    def long_horizon_request(
        self, kind: str, *, split: str, seed: int
    ) -> tuple[str, SceneDescription, Plan]: ...

    def expert(self, env: Any) -> Any: ...

    def step_monitor(self) -> Any: ...

    def inject_fault(self, actor: Any, *, rate: float, seed: int = 0) -> Any: ...


def long_horizon_suite(suite: Any, name: str) -> LongHorizonSuite:
    """`suite` if it declares long-horizon requests, else a ValueError naming what is missing."""
    need = (
        "long_horizon_kinds",
        "long_horizon_splits",
        "skills",
        "make_long_horizon",
        "long_horizon_request",
    )
    missing = [a for a in need if not hasattr(suite, a)]
    if missing:
        raise ValueError(f"suite '{name}' takes no long-horizon requests (it lacks {', '.join(missing)})")
    return suite


class PerAttempt:
    """Restarts an actor at every step attempt: to a policy controller each attempt is an episode, with
    a fresh controller and its own instruction (`Instrumented` actors are finished between attempts)."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor
        self._open = False

    def reset(self) -> None:
        self.close()
        self.actor.reset()
        self._open = True

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        return np.asarray(self.actor.act(obs), dtype=np.float32)

    def close(self) -> None:
        if self._open and isinstance(self.actor, Instrumented):
            self.actor.finish()
        self._open = False


@dataclass
class StepActor:
    """The actor the executor drives, and what must be closed after the episodes.

    Attributes:
        actor: reset before every step attempt, acts on observations.
        base: the `PerAttempt` wrapper inside (closed by `close`).
        faults: the fault injector when faults are injected (its `injected` counts them), else None.
    """

    actor: Any
    base: PerAttempt
    faults: Any = None

    def close(self) -> None:
        self.base.close()


def policy_image_size(checkpoint: str) -> tuple[int, int]:
    """The camera size a checkpoint was trained on (its envs must render at that size)."""
    from vla.rollout.policy_actor import shared_model

    h, w = shared_model(checkpoint).embodiment.image_size
    return int(h), int(w)


def step_actor(
    suite: LongHorizonSuite,
    env: Any,
    *,
    checkpoint: str = "",
    inject_drops: float = 0.0,
    seed: int = 0,
    options: dict[str, Any] | None = None,
) -> StepActor:
    """The skill actor for `env`: the checkpoint's policy (deployed stack), or the scripted expert ("").

    Args:
        suite: the env's suite.
        env: a long-horizon env of the suite.
        checkpoint: policy checkpoint directory; "" uses the suite's scripted expert.
        inject_drops: share of step attempts whose grasp is made to slip (`suite.inject_fault`).
        seed: seed of the fault draws.
        options: `PolicyActorFactory` fields for the checkpoint's actor (detector_grounding, ...).
    """
    if checkpoint:
        from vla.rollout.policy_actor import PolicyActorFactory

        inner = PolicyActorFactory(checkpoint, **(options or {}))(env, suite)  # type: ignore[arg-type]
    else:
        inner = suite.expert(env)
    base = PerAttempt(inner)
    if inject_drops > 0:
        faults = suite.inject_fault(base, rate=inject_drops, seed=seed)
        return StepActor(faults, base, faults)
    return StepActor(base, base)


def find_scene(
    suite: LongHorizonSuite, instruction: str, *, split: str, first_seed: int = 0, tries: int = 20
) -> tuple[str, int]:
    """The first (kind, seed) whose scene has everything `instruction` names (kinds round-robin).

    Checked with the request parser alone (no simulator, no language model): the scene has the
    objects and containers, and every clause fits a skill.

    Raises:
        PlanError: no scene of `tries` seeds per kind fits; the message is the first scene's reason.
    """
    parser = RequestParser(suite.skills)
    first_error = ""
    for seed in range(first_seed, first_seed + tries):
        for kind in suite.long_horizon_kinds:
            _, scene, _ = suite.long_horizon_request(kind, split=split, seed=seed)
            try:
                parser.parse(instruction, scene)
            except PlanError as e:
                first_error = first_error or str(e)
                continue
            return kind, seed
    raise PlanError(
        f"no scene of {tries} seeds per kind holds what '{instruction}' asks for; in the first: {first_error}"
    )


def run_instruction(
    suite: LongHorizonSuite,
    planner: Any,
    instruction: str,
    *,
    kind: str,
    seed: int,
    split: str = "long_horizon",
    checkpoint: str = "",
    executor: ExecutorConfig | None = None,
    inject_drops: float = 0.0,
    image_size: tuple[int, int] = (64, 64),
) -> tuple[ExecutionResult, dict[str, Any]]:
    """Plans and executes `instruction` in the scene of (`kind`, `seed`).

    Returns:
        The execution, and what the simulator says about it (for the report, never for the executor):
        `final_scene_success` (every step of the first plan holds at the end), `sim_step_success` per
        attempt, `faults_injected`.
    """
    if checkpoint:
        image_size = policy_image_size(checkpoint)
    env = suite.make_long_horizon(kind, split=split, image_size=image_size)
    actor = step_actor(suite, env, checkpoint=checkpoint, inject_drops=inject_drops, seed=seed)
    try:
        env.reset(seed=seed, options={"instruction": instruction})
        runner = Executor(
            planner,
            actor.actor,
            suite.step_monitor(),
            executor,
            rephrase=getattr(suite, "paraphrase", None),
        )
        result = runner.run(env, instruction)
        sim = {
            "kind": kind,
            "seed": seed,
            "final_scene_success": bool(result.plan) and bool(env.request_fulfilled(plan=result.plan)),
            "sim_step_success": [bool(a.info.get("step_success")) for a in result.attempts],
            "faults_injected": int(getattr(actor.faults, "injected", 0)),
        }
    finally:
        actor.close()
        env.close()
    return result, sim
