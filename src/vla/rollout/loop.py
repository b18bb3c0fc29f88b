"""The one episode loop of vla: an actor acts in an env until success or the time limit.

Every rollout in the code base goes through `run_episode`: scripted experts (`vla env expert`, the
collector), policies (`vla eval`, through `vla.rollout.policy_actor`) and DAgger-style runs, where a
second actor, the *labeller* (e.g. the expert), is asked for its action on every state the actor visits
and, with probability `beta` per step, its action is the one executed (beta-mixing, Ross et al. 2011),
or, with a `Takeover`, wherever the actor strays from it (HG-DAgger, `vla.rollout.takeover`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vla.envs.base import Env, Suite
from vla.rollout.episode import ActorStats, EpisodeJob, EpisodeResult, trajectory_jerk
from vla.rollout.perturb import Perturber
from vla.rollout.takeover import Takeover

# Stream index of the beta-mixing draws, so they never coincide with an env's or an expert's stream.
_MIX_STREAM = 11


class Actor(Protocol):
    """Anything that acts in an env: a scripted expert or a policy wrapper.

    An actor may also have `label` (its clean intent for the last step, recorded instead of the
    executed action, e.g. a DART expert) and `finish() -> ActorStats` (called once when an episode
    ends, also when it fails; see `Instrumented`).
    """

    def reset(self) -> None: ...

    def act(self, obs: dict[str, Any]) -> np.ndarray: ...


@runtime_checkable
class Instrumented(Protocol):
    """An actor that reports on each episode (latencies, safety interventions, diagnostics)."""

    def finish(self) -> ActorStats: ...


ActorFactory = Callable[[Env, Suite], Actor]


def expert_actor(env: Env, suite: Suite) -> Actor:
    """The default actor factory: the suite's scripted expert (picklable, for worker processes)."""
    return suite.expert(env)


def _label(actor: Actor, action: np.ndarray) -> np.ndarray:
    """The action to record for `actor`'s last step: its clean intent `label` when it has one."""
    label = getattr(actor, "label", None)
    return action if label is None else np.asarray(label, dtype=np.float32)


def _finish(actor: Actor | None) -> ActorStats | None:
    return actor.finish() if isinstance(actor, Instrumented) else None


def _ee_slice(env: Env) -> slice | None:
    try:
        return env.embodiment.state_slice("ee_pos")
    except KeyError:  # an embodiment without an end-effector position: no jerk
        return None


def _side_by_side(obs: dict[str, Any]) -> np.ndarray:
    return np.concatenate([obs["images"][c] for c in sorted(obs["images"])], axis=1)


class _Recording:
    """What an episode keeps: frames and the first observation, recorded steps, labels."""

    def __init__(self, job: EpisodeJob, obs: dict[str, Any], *, labelled: bool) -> None:
        self.job = job
        self.labelled = labelled
        self.first: dict[str, Any] | None = None
        if job.record_frames:
            self.first = {
                "images": {k: v.copy() for k, v in obs["images"].items()},
                "state": obs["state"].copy(),
                "instruction": str(obs["instruction"]),
            }
        self.frames: list[np.ndarray] = []
        self.images: dict[str, list[np.ndarray]] = {cam: [] for cam in obs["images"]}
        self.rows: dict[str, list[Any]] = {
            k: [] for k in ("state", "action", "reward", "label", "labeller_acted")
        }

    def step(
        self, obs: dict[str, Any], action: np.ndarray, label: np.ndarray | None, labeller_acted: bool
    ) -> None:
        """Before `env.step`: the observation, the actor's action to record and the labeller's label."""
        if self.job.record_frames:
            self.frames.append(_side_by_side(obs))
        if self.job.record_steps:
            for cam, img in obs["images"].items():
                self.images[cam].append(img)
            self.rows["state"].append(obs["state"])
            self.rows["action"].append(action)
            if label is not None:
                self.rows["label"].append(label)
                self.rows["labeller_acted"].append(labeller_acted)

    def reward(self, reward: float) -> None:
        self.rows["reward"].append(float(reward))

    def frames_with(self, last: dict[str, Any]) -> np.ndarray | None:
        """uint8 [N+1, Hi, V*Wi, 3] including the final observation, or None when not recorded."""
        return np.stack([*self.frames, _side_by_side(last)]) if self.job.record_frames else None

    def steps_data(self) -> dict[str, Any] | None:
        if not self.job.record_steps:
            return None
        rows = self.rows
        data: dict[str, Any] = {
            "images": {cam: np.stack(v) for cam, v in self.images.items()},
            "state": np.stack(rows["state"]).astype(np.float32),
            "action": np.stack(rows["action"]).astype(np.float32),
            "reward": np.asarray(rows["reward"], dtype=np.float32),
        }
        if self.labelled:
            data["label"] = np.stack(rows["label"]).astype(np.float32)
            data["labeller_acted"] = np.asarray(rows["labeller_acted"], dtype=bool)
        return data


def run_episode(
    env: Env,
    actor: Actor,
    job: EpisodeJob,
    *,
    labeller: Actor | None = None,
    beta: float = 0.0,
    takeover: Takeover | None = None,
) -> EpisodeResult:
    """Runs one episode of `actor` in `env` with the job's seed until success or truncation.

    Args:
        env: the environment (already built for the job's family/split).
        actor: resets after `env.reset` and acts on each observation.
        job: the episode description (its seed, and what to record).
        labeller: optional second actor asked on every visited state (before the step); its labels
            are recorded in `steps_data["label"]` with `job.record_steps`.
        beta: probability per step of executing the labeller's action instead of the actor's (the
            actor still acts every step, so its history and chunks stay continuous). Draws come from
            the episode seed: the same job mixes the same way.
        takeover: instead of beta, the labeller takes over where the actor's action strays from its
            own and hands back once they agree again (HG-DAgger; needs a labeller and beta 0).

    Returns:
        The episode's result (see `EpisodeResult`).
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    if beta > 0 and labeller is None:
        raise ValueError(f"beta={beta} mixes in a labeller's actions, but no labeller was given")
    if takeover is not None and (labeller is None or beta > 0):
        raise ValueError("a takeover needs a labeller and beta 0 (it decides who drives instead of beta)")
    gate = None
    if takeover is not None:
        space = env.action_space  # type: ignore[attr-defined]  # every suite env has gym bounds
        gate = takeover.gate(space.low, space.high)
    start = time.perf_counter()
    obs, _ = env.reset(seed=int(job.seed))
    instruction = str(obs["instruction"])
    view = Perturber(job.perturb, seed=int(job.seed))  # what the actor sees; the labeller sees obs
    seen = view(obs)
    rec = _Recording(job, seen, labelled=labeller is not None)
    mix = np.random.default_rng([int(job.seed), _MIX_STREAM])
    ee = _ee_slice(env)
    path = [] if ee is None else [obs["state"][ee]]
    success, steps, failure = False, 0, ""
    stats: ActorStats | None = None
    try:
        actor.reset()
        if labeller is not None:
            labeller.reset()
        for _ in range(env.max_steps):
            action = np.asarray(actor.act(seen), dtype=np.float32)
            executed, label, from_labeller = action, None, False
            if labeller is not None:
                # Asked on the state the actor is in, before the env moves on (DAgger's query).
                proposal = np.asarray(labeller.act(obs), dtype=np.float32)
                label = _label(labeller, proposal)
                if gate is not None:
                    from_labeller = gate.step(action, label)
                elif beta > 0:
                    from_labeller = bool(mix.random() < beta)
                if from_labeller:
                    executed = proposal
            rec.step(seen, _label(actor, action), label, from_labeller)
            obs, reward, terminated, truncated, info = env.step(executed)
            seen = view(obs)
            rec.reward(reward)
            if ee is not None:
                path.append(obs["state"][ee])
            steps += 1
            success = bool(info["success"])
            failure = str(info.get("failure") or "")
            if terminated or truncated:
                break
    finally:
        # Always: a shared model waits for every open episode, so a failed one must check out too.
        try:
            stats = _finish(actor)
        finally:
            _finish(labeller)
    stats = stats or ActorStats()
    return EpisodeResult(
        job=job,
        success=success,
        steps=steps,
        instruction=instruction,
        meta=dict(getattr(env, "episode_meta", {})),
        seconds=time.perf_counter() - start,
        jerk=trajectory_jerk(np.asarray(path), env.embodiment.control_hz) if ee is not None else 0.0,
        latencies_ms=list(stats.latencies_ms),
        interventions_by_reason=dict(stats.interventions_by_reason),
        physical_by_reason=dict(stats.physical_by_reason),
        extras=dict(stats.extras),
        failure=failure,
        frames=rec.frames_with(seen),
        first_obs=rec.first,
        steps_data=rec.steps_data(),
    )
