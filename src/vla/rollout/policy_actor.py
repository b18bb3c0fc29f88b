"""A policy checkpoint as an actor of the rollout engine: exactly the deployed control stack.

`PolicyActorFactory(checkpoint, ...)` is picklable; called inside a worker it loads the checkpoint once
per process (a `SharedModel`, so episodes running side by side in that process share one model and
gather their calls) and returns a `PolicyActor` for an env. Each episode gets a fresh controller:
chunk broker or temporal ensembler (`vla.runtime.chunking`), then the safety filter with recovery
(`vla.runtime.recovery`, on unless `safety=False`), as `vla serve` and robot loops run it. The
episode's hook (`vla.rollout.extras`) builds the policy's observations and reports diagnostics.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla.envs.base import Env, Suite, get_suite
from vla.rollout.episode import ActorStats
from vla.rollout.extras import EpisodeExtras, FeatureHook
from vla.rollout.gather import SharedModel
from vla.types import ActionChunk, Observation

_MODELS: dict[str, SharedModel] = {}
_CHECKS: dict[str, Any] = {}
_LOAD_LOCK = threading.Lock()


def shared_model(checkpoint: str) -> SharedModel:
    """The process's one `SharedModel` of `checkpoint` (loaded on first use, thread-safe)."""
    with _LOAD_LOCK:
        if checkpoint not in _MODELS:
            from vla.models import Policy

            _MODELS[checkpoint] = SharedModel(Policy.from_pretrained(checkpoint))
        return _MODELS[checkpoint]


def instruction_check(checkpoint: str) -> Any:
    """The process's one `GroundingCheck` of `checkpoint` (words and scene), or None when it has none."""
    with _LOAD_LOCK:
        if checkpoint not in _CHECKS:
            from vla.models.grounding_check import GroundingCheck

            _CHECKS[checkpoint] = GroundingCheck.load(checkpoint)
        return _CHECKS[checkpoint]


class _EpisodePolicy:
    """What one episode's controller calls: the shared model, timed, with the hook seeing estimates."""

    def __init__(self, model: SharedModel, extras: EpisodeExtras, refine: Any = None) -> None:
        self.model = model
        self.refine = refine  # (estimates, Observation) -> estimates, or None
        self.config = model.config
        self.embodiment = model.embodiment
        self.extras = extras
        self.estimates = model.estimates
        self.latencies_ms: list[float] = []

    def predict(self, obs: Observation) -> ActionChunk:
        chunk, ms = self.model.predict_timed(obs)
        self.latencies_ms.append(ms)
        return chunk

    def estimate(self, obs: Observation) -> dict[str, np.ndarray]:
        """The policy's feature estimates (held per episode by the controller; once per episode)."""
        out = self.model.estimate(obs)
        if self.refine is not None:
            out = self.refine(out, obs)
        self.extras.on_estimate(out)
        return out


class PolicyActor:
    """Drives one env with a policy through chunking, the safety filter and recovery (see module doc).

    Args:
        model: the process's shared model.
        env: the env the actor acts in (its hook reads the episode's labels from it).
        controller: "chunk" or "ensemble".
        execute_steps: actions per chunk in chunk mode (0: the policy's `config.steps_per_chunk`).
        safety: run the safety filter (off only for experiments).
        hook: builds the episode's observations and diagnostics.
        check: the checkpoint's `GroundingCheck` (None: every instruction is acted on).
        refine: (estimates, Observation) -> estimates applied to the policy's held first-frame
            estimates (detector grounding), or None.
    """

    def __init__(
        self,
        model: SharedModel,
        env: Env,
        *,
        controller: str = "chunk",
        execute_steps: int = 0,
        safety: bool = True,
        hook: FeatureHook | None = None,
        check: Any = None,
        refine: Any = None,
    ) -> None:
        self.model = model
        self.check = check
        self.refine = refine
        self.env = env
        self.mode = controller
        self.execute_steps = execute_steps or model.config.steps_per_chunk
        self.safety = safety
        self.hook = hook or FeatureHook()
        self.controller: Any = None
        self._episode: _EpisodePolicy | None = None
        self._open = False

    def reset(self) -> None:
        """Starts an episode (after `env.reset`): a fresh controller, and joins the model's batches."""
        from vla.runtime.recovery import make_safe_controller

        self._episode = _EpisodePolicy(self.model, self.hook.start(self.env, self.model.policy), self.refine)
        # The limits are the checkpoint's; what the robot's driver clips by itself is the env's (the
        # robot running the commands), so a checkpoint saved before `driver_clips` existed counts the
        # physical interventions right too.
        driver_clips = getattr(getattr(self.env, "embodiment", None), "driver_clips", ())
        self.controller = make_safe_controller(
            self._episode,
            embodiment=dataclasses.replace(self.model.embodiment, driver_clips=tuple(driver_clips)),
            mode=self.mode,
            execute_steps=self.execute_steps,
            unsafe_no_filter=not self.safety,
            instruction_check=self.check,
        )
        self.model.open()
        self._open = True

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        if self._episode is None:
            raise RuntimeError("PolicyActor.act called before reset()")
        return np.asarray(self.controller.act(self._episode.extras.observation(obs)), dtype=np.float32)

    def finish(self) -> ActorStats:
        """Ends the episode (leaves the model's batches) and reports its latencies and interventions."""
        if self._open:
            self.model.close()
            self._open = False
        if self._episode is None:
            return ActorStats()
        safety = getattr(self.controller, "safety", None)
        return ActorStats(
            latencies_ms=list(self._episode.latencies_ms),
            interventions_by_reason={} if safety is None else dict(safety.stats),
            physical_by_reason={} if safety is None else dict(safety.physical_stats),
            extras={**self._episode.extras.results(), **self._refusal()},
        )

    def _refusal(self) -> dict[str, Any]:
        """The episode's instruction verdict for the results (empty without a check)."""
        if self.check is None:
            return {}
        refusal = getattr(self.controller, "refusal", None)
        if refusal is None:
            return {"instruction_held": None}
        return {"instruction_held": {"kind": refusal.kind, "reason": refusal.reason}}


@dataclass(frozen=True)
class PolicyActorFactory:
    """Builds `PolicyActor`s for envs inside rollout workers (picklable; the model loads once per process).

    Attributes:
        checkpoint: the checkpoint directory.
        controller: "chunk" or "ensemble".
        execute_steps: actions per chunk in chunk mode (0: the policy's own).
        safety: run the safety filter.
        hook: the episode hook (scene labels, grounding diagnostics).
        instruction_check: refuse what the checkpoint's instruction check refuses (hold, with the
            reason in the episode's extras); off, every instruction is acted on.
        detector_grounding: place the instructed objects in the policy's held first-frame estimates
            with the checkpoint's presence net (the suite's `refine_estimates`); needs a presence check.
    """

    checkpoint: str
    controller: str = "chunk"
    execute_steps: int = 0
    safety: bool = True
    hook: FeatureHook = field(default_factory=FeatureHook)
    instruction_check: bool = True
    detector_grounding: bool = False

    def __post_init__(self) -> None:
        from vla.runtime.chunking import MODES

        if self.controller not in MODES:
            raise ValueError(f"controller must be one of {MODES}, got '{self.controller}'")
        if self.execute_steps < 0:
            raise ValueError(f"execute_steps must be >= 0 (0: the policy's own), got {self.execute_steps}")

    def __call__(self, env: Env, suite: Suite) -> PolicyActor:
        model = shared_model(self.checkpoint)
        problems = model.embodiment.compatible_with(env.embodiment)
        if problems:
            raise ValueError(
                f"checkpoint {self.checkpoint} ({model.embodiment.name}) cannot drive "
                f"{env.embodiment.name}: {'; '.join(problems)}"
            )
        return PolicyActor(
            model,
            env,
            controller=self.controller,
            execute_steps=self.execute_steps,
            safety=self.safety,
            hook=self.hook,
            check=instruction_check(self.checkpoint) if self.instruction_check else None,
            refine=self._refine(suite) if self.detector_grounding else None,
        )

    def _refine(self, suite: Suite) -> Any:
        """The suite's estimate refinement bound to the checkpoint's presence net (a clear error without)."""
        checks = instruction_check(self.checkpoint)
        scene = getattr(checks, "scene", None)
        refine = getattr(suite, "refine_estimates", None)
        if scene is None or refine is None:
            raise ValueError(
                f"detector_grounding needs a presence check in {self.checkpoint} (`vla models presence`) "
                f"and a suite that can refine estimates; has check: {scene is not None}, "
                f"suite can: {refine is not None}"
            )

        def apply(estimates: dict[str, np.ndarray], obs: Observation) -> dict[str, np.ndarray]:
            text = obs.instruction if isinstance(obs.instruction, str) else obs.instruction[0]
            frames = {c: (v[0, -1] if v.ndim == 5 else v) for c, v in obs.images.items()}
            return dict(refine(estimates, text, frames, scene))

        return apply


def detector_grounding_default(wanted: bool | None, checkpoint: str, suite_name: str, policy: Any) -> bool:
    """Whether a rollout refines the policy's held estimates with the presence net (`detector_grounding`).

    `wanted` None decides: on for a policy with a grounding head (`grounding_loss > 0`) whose checkpoint
    has a presence check, in a suite that can refine (tabletop). The reason it is the default: on the
    README's grounded checkpoint it lifted unseen compositions by about 50 points and left train and
    paraphrase within their intervals (docs/measured.md, "Grounding from the presence net"); a policy
    without the head holds no estimate to refine, and without a presence file there is nothing to
    refine with. True or False is kept as given (True then fails clearly in the factory if it cannot).
    """
    if wanted is not None:
        return wanted
    from vla.models import presence

    has_head = float(getattr(policy.config, "grounding_loss", 0.0)) > 0
    can_refine = callable(getattr(get_suite(suite_name), "refine_estimates", None))
    return has_head and can_refine and (Path(checkpoint) / presence.FILE).is_file()
