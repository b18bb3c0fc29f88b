"""The episode hook of policy rollouts: everything scene- and grounding-specific, in one place.

A policy actor (`vla.rollout.policy_actor`) asks its hook, once per episode, for an `EpisodeExtras`:
it turns each env observation into the policy's `Observation` (here: with the simulator's true scene
labels as `Observation.scene` when `oracle_scene` is on, a diagnostic), sees the policy's scene
estimates (`ground`, held per episode by the controller) and reports per-episode diagnostics (here: the
error in cm of the first held estimate, `grounding_cm`). `summarize_family` aggregates them for
results.json. The engine itself knows nothing of scenes: swap `SceneHook` for another hook with the
same three methods to declare other per-episode features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from vla.envs.base import Env
from vla.types import Observation


class EpisodeExtras(Protocol):
    """One episode's view of the hook (see the module docstring)."""

    def observation(self, obs: dict[str, Any]) -> Observation: ...

    def on_ground(self, estimate: np.ndarray) -> None: ...

    def results(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class SceneHook:
    """Scene labels and grounding diagnostics of an evaluation episode (picklable).

    Attributes:
        oracle_scene: act on the env's true scene labels (`episode_meta["grounding_labels"]`)
            instead of the policy's own held estimate (`EvalConfig.oracle_scene`).
    """

    oracle_scene: bool = False

    def start(self, env: Env) -> SceneEpisode:
        """The hook for the episode `env` has just been reset to."""
        truth = getattr(env, "episode_meta", {}).get("grounding_labels")
        if self.oracle_scene and truth is None:
            raise ValueError(
                "oracle_scene needs an env that labels its scenes (episode_meta['grounding_labels']); "
                f"{type(env).__name__} does not"
            )
        return SceneEpisode(
            None if truth is None else np.asarray(truth, np.float32), oracle=self.oracle_scene
        )


class SceneEpisode:
    """`SceneHook` for one episode: the scene to act on and the estimates the policy made."""

    def __init__(self, truth: np.ndarray | None, *, oracle: bool) -> None:
        self.truth = truth
        self.scene = truth if oracle else None
        self.estimates: list[np.ndarray] = []

    def observation(self, obs: dict[str, Any]) -> Observation:
        """The policy's observation of an env observation dict (single step)."""
        return Observation(
            images=obs["images"], state=obs["state"], instruction=obs["instruction"], scene=self.scene
        )

    def on_ground(self, estimate: np.ndarray) -> None:
        self.estimates.append(np.asarray(estimate))

    def results(self) -> dict[str, Any]:
        """{"grounding_cm": [target, place]} (distance between the first held estimate and the true
        scene) when the policy estimated one and the env labels its scenes, else {}."""
        if not self.estimates or self.truth is None:
            return {}
        est = np.asarray(self.estimates[0], np.float64).reshape(-1)[:6]
        true = np.asarray(self.truth, np.float64)[:6]
        err = np.linalg.norm((est - true).reshape(2, 3), axis=1) * 100.0
        return {"grounding_cm": [float(err[0]), float(err[1])]}


def summarize_family(extras: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-family aggregate of the episodes' `results()`: median first-frame error of the held scene
    estimate (grounding policies; not oracle runs), or {} when no episode has one."""
    errs = [e["grounding_cm"] for e in extras if "grounding_cm" in e]
    if not errs:
        return {}
    return {
        "grounding_cm": {
            "target_median": float(np.median([e[0] for e in errs])),
            "place_median": float(np.median([e[1] for e in errs])),
        }
    }


def check_hook(hook: SceneHook, policy: Any, suite: Any, *, checkpoint: str, suite_name: str) -> None:
    """Refuses an oracle-scene run that cannot work, before any rollout."""
    from vla.envs.base import GroundingSuite

    if hook.oracle_scene and (
        getattr(policy, "grounding", None) is None or not isinstance(suite, GroundingSuite)
    ):
        raise ValueError(
            "oracle_scene needs a grounding policy (grounding_loss > 0) and a suite that labels its "
            f"scenes; checkpoint {checkpoint} / suite '{suite_name}' is not both"
        )
