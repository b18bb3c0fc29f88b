"""Turning action chunks into one action per control step, around any policy.

Two strategies, both with `reset()` and `act(obs) -> action [A]`:

* `ChunkBroker(policy, execute_steps=k)`: run k actions of a chunk open-loop, then re-plan (openpi's
  `ActionChunkBroker`, Diffusion Policy's receding horizon). One model call every k steps.
* `TemporalEnsembler(policy, decay=m)`: predict a chunk every step and average every prediction made for
  the current step with weights exp(-m * i), i = 0 for the oldest (ACT, Zhao et al. 2023, Sec. 3.3),
  which smooths the jumps between consecutive chunks at the cost of one model call per step.

Both keep the last T observations the policy needs (`config.obs_horizon`), so a policy with history
works unchanged. Nothing here imports torch: any object with `predict(Observation) -> ActionChunk` works.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vla.types import ActionChunk, Observation

MODES = ("chunk", "ensemble")


@runtime_checkable
class PolicyLike(Protocol):
    """Anything that maps a batched observation to an action chunk (a `vla.models` policy, an Engine)."""

    def predict(self, obs: Observation) -> ActionChunk: ...


@runtime_checkable
class Controller(Protocol):
    """A per-step actor: one action [A] per observation."""

    def reset(self) -> None: ...

    def act(self, obs: Observation | dict[str, Any]) -> np.ndarray: ...


def obs_horizon_of(policy: Any) -> int:
    """Returns T of a policy (`policy.config.obs_horizon` or `policy.obs_horizon`), 1 when it has none."""
    cfg = getattr(policy, "config", None)
    t = getattr(cfg, "obs_horizon", None) or getattr(policy, "obs_horizon", None) or 1
    return int(t)


def to_observation(obs: Observation | dict[str, Any]) -> Observation:
    """Accepts an `Observation` or an env observation dict {"images", "state", "instruction"} (one step)."""
    if isinstance(obs, Observation):
        return obs
    if isinstance(obs, dict) and {"images", "state", "instruction"} <= obs.keys():
        return Observation(
            images=dict(obs["images"]),
            state=np.asarray(obs["state"], dtype=np.float32),
            instruction=str(obs["instruction"]),
        )
    keys = sorted(obs) if isinstance(obs, dict) else type(obs).__name__
    raise TypeError(f"expected an Observation or a dict with images/state/instruction, got {keys}")


def feature_estimator(policy: Any) -> Callable[[Observation], dict[str, np.ndarray]] | None:
    """`policy.estimate` when the policy estimates episode features itself (`Policy.estimates`), else None."""
    estimate = getattr(policy, "estimate", None)
    if callable(estimate) and tuple(getattr(policy, "estimates", ()) or ()):
        return estimate
    return None


class ObservationHistory:
    """The last T single-step observations, stacked into a batch of one: images [1, T, Hi, Wi, 3],
    state [1, T, S]. Before T steps have been seen, the oldest frame is repeated (as in training, where
    windows at an episode start are padded by copying).

    With `estimate` (a policy's `estimate`, for the episode features it estimates), it also holds the
    estimates of the episode's first frame and attaches them to every batch (`Observation.features`):
    an episode feature describes the episode's start, and the first frame shows it before the arm
    hides anything (vla.models.grounding). Features an observation brings itself are passed on as
    they are (and win over the held estimate).
    """

    def __init__(
        self,
        horizon: int,
        *,
        estimate: Callable[[Observation], dict[str, np.ndarray]] | None = None,
        names: tuple[str, ...] = (),
    ) -> None:
        if horizon < 1:
            raise ValueError(f"observation horizon must be >= 1, got {horizon}")
        self.horizon = horizon
        self.estimate = estimate
        self.names = names  # what `estimate` returns: no call when the observation brings them all
        self.held: dict[str, np.ndarray] | None = None
        self._frames: deque[Observation] = deque(maxlen=horizon)

    @classmethod
    def for_policy(cls, policy: Any) -> ObservationHistory:
        """The history a controller keeps for `policy`: its horizon and feature estimator."""
        names = tuple(getattr(policy, "estimates", ()) or ())
        return cls(obs_horizon_of(policy), estimate=feature_estimator(policy), names=names)

    def reset(self) -> None:
        self._frames.clear()
        self.held = None

    def push(self, obs: Observation) -> Observation:
        """Adds a single-step observation and returns the stacked batch of one."""
        if obs.batched:
            raise ValueError("ObservationHistory.push takes one unbatched step (state [S])")
        if self._frames and self._frames[-1] is obs:
            self._frames[-1] = obs  # a retry of the same step (recovery) must not count as a new frame
        else:
            self._frames.append(obs)
        frames = list(self._frames)
        frames = [frames[0]] * (self.horizon - len(frames)) + frames
        images = {k: np.stack([f.images[k] for f in frames])[None] for k in obs.images}  # (1, T, Hi, Wi, 3)
        state = np.stack([f.state for f in frames])[None]  # (1, T, S)
        batch = Observation(images=images, state=state, instruction=[str(obs.instruction)])
        given = {k: np.asarray(v, dtype=np.float32)[None] for k, v in obs.features.items()}  # (1, D)
        if self.estimate is not None and self.held is None and not set(self.names) <= given.keys():
            self.held = {k: np.asarray(v, dtype=np.float32) for k, v in self.estimate(batch).items()}
        if not given and not self.held:
            return batch
        return replace(batch, features={**(self.held or {}), **given})


def _first_chunk(chunk: ActionChunk) -> tuple[np.ndarray, float | None]:
    """Returns actions [H, A] and the confidence of batch element 0."""
    actions = np.asarray(chunk.actions)[0]
    conf = None if chunk.confidence is None else float(np.asarray(chunk.confidence).reshape(-1)[0])
    return actions, conf


class ChunkBroker:
    """Executes `execute_steps` actions of each chunk, then asks the policy for a new one.

    Attributes:
        last_confidence: the confidence of the chunk the last action came from (None if unknown).
        replanned: True when the last `act` called the policy.
    """

    def __init__(self, policy: PolicyLike, *, execute_steps: int | None = None) -> None:
        if execute_steps is not None and execute_steps < 1:
            raise ValueError(f"execute_steps must be >= 1, got {execute_steps}")
        self.policy = policy
        self.execute_steps = execute_steps
        self.history = ObservationHistory.for_policy(policy)
        self.last_confidence: float | None = None
        self.replanned = False
        self._chunk: np.ndarray | None = None
        self._index = 0

    def reset(self) -> None:
        self.history.reset()
        self.replan()
        self.last_confidence = None

    def replan(self) -> None:
        """Drops the rest of the current chunk, so the next `act` calls the policy."""
        self._chunk = None
        self._index = 0

    def act(self, obs: Observation | dict[str, Any]) -> np.ndarray:
        """Returns the next action float32 [A] in robot units."""
        batch = self.history.push(to_observation(obs))
        k = self.execute_steps
        self.replanned = False
        if self._chunk is None or self._index >= (k if k is not None else len(self._chunk)):
            self._chunk, self.last_confidence = _first_chunk(self.policy.predict(batch))
            if k is not None and k > len(self._chunk):
                raise ValueError(f"execute_steps={k} exceeds the policy's chunk length {len(self._chunk)}")
            self._index = 0
            self.replanned = True
        action = self._chunk[self._index]
        self._index += 1
        return np.asarray(action, dtype=np.float32)


class TemporalEnsembler:
    """ACT's temporal ensembling: a new chunk every step, overlapping predictions averaged.

    Weights are exp(-decay * i) with i = 0 for the oldest prediction of the current step: a larger
    `decay` favours older plans (smoother, slower to react); ACT's 0.01 weights them nearly uniformly.
    """

    def __init__(self, policy: PolicyLike, *, decay: float = 0.01) -> None:
        if decay < 0 or not np.isfinite(decay):
            raise ValueError(f"decay must be a finite number >= 0, got {decay}")
        self.policy = policy
        self.decay = decay
        self.history = ObservationHistory.for_policy(policy)
        self.last_confidence: float | None = None
        self.replanned = False
        self._chunks: deque[tuple[int, np.ndarray]] = deque()  # (step the chunk was made at, [H, A])
        self._t = 0

    def reset(self) -> None:
        self.history.reset()
        self.replan()
        self._t = 0
        self.last_confidence = None

    def replan(self) -> None:
        """Forgets every earlier chunk, so the next action comes from a fresh prediction only."""
        self._chunks.clear()

    def act(self, obs: Observation | dict[str, Any]) -> np.ndarray:
        """Predicts a chunk for this step and returns the weighted average action float32 [A]."""
        batch = self.history.push(to_observation(obs))
        actions, self.last_confidence = _first_chunk(self.policy.predict(batch))
        self.replanned = True
        self._chunks.append((self._t, actions))
        while self._chunks and self._t - self._chunks[0][0] >= len(self._chunks[0][1]):
            self._chunks.popleft()  # that chunk does not reach this step any more
        preds = np.stack([c[self._t - start] for start, c in self._chunks])  # (n, A), oldest first
        weights = np.exp(-self.decay * np.arange(len(preds)))
        # Non-finite predictions must reach the safety filter as such, not be averaged away silently.
        action = (weights[:, None] * preds).sum(0) / weights.sum()
        self._t += 1
        return np.asarray(action, dtype=np.float32)


def make_controller(
    policy: PolicyLike, *, mode: str = "chunk", execute_steps: int | None = None, decay: float = 0.01
) -> ChunkBroker | TemporalEnsembler:
    """Builds the per-step controller for `mode` ("chunk": `ChunkBroker`, "ensemble": `TemporalEnsembler`).

    Args:
        policy: anything with `predict(Observation) -> ActionChunk`.
        mode: "chunk" or "ensemble".
        execute_steps: actions run per chunk in "chunk" mode (None: the whole chunk).
        decay: ensembling weight decay in "ensemble" mode.
    """
    if mode == "chunk":
        return ChunkBroker(policy, execute_steps=execute_steps)
    if mode == "ensemble":
        return TemporalEnsembler(policy, decay=decay)
    raise ValueError(f"unknown controller mode '{mode}'; expected one of {MODES}")
