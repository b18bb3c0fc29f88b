"""The episode hook of policy rollouts: declared episode features, in one place.

A policy actor (`vla.rollout.policy_actor`) asks its hook, once per episode, for an `EpisodeExtras`:
it turns each env observation into the policy's `Observation` (with the env's true values of the
features the policy estimates, when `oracle` is on: a diagnostic), sees the policy's estimates
(`estimate`, held per episode by the controller) and reports per-episode diagnostics: the distance in
cm between the first held estimate and the env's true value, per position part of each feature
(`estimate_cm`, e.g. {"scene.target": 0.6}). Nothing here names a suite: the features are the
policy's declarations (`vla.features`), their true values the env's `episode_meta`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from vla.envs.base import Env, suite_features
from vla.features import Feature
from vla.types import Observation


class EpisodeExtras(Protocol):
    """One episode's view of the hook (see the module docstring)."""

    def observation(self, obs: dict[str, Any]) -> Observation: ...

    def on_estimate(self, estimate: dict[str, np.ndarray]) -> None: ...

    def results(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class FeatureHook:
    """Episode features and estimate diagnostics of an evaluation episode (picklable).

    Attributes:
        oracle: act on the env's true values of the features the policy estimates
            (`episode_meta[name]`) instead of the policy's own held estimate (`EvalConfig.oracle_features`).
    """

    oracle: bool = False

    def start(self, env: Env, policy: Any) -> FeatureEpisode:
        """The hook for the episode `env` has just been reset to, for `policy`."""
        meta = getattr(env, "episode_meta", {}) or {}
        names = tuple(getattr(policy, "estimates", ()) or ())
        declared = {f.name: f for f in getattr(policy, "features", ())}
        truth = {n: np.asarray(meta[n], np.float32) for n in names if n in meta}
        if self.oracle and len(truth) != len(names):
            missing = [n for n in names if n not in truth]
            raise ValueError(
                f"oracle_features needs an env that reports the features {missing} in its episode_meta; "
                f"{type(env).__name__} does not"
            )
        features = [declared[n] for n in names if n in declared]
        return FeatureEpisode(truth, features, oracle=self.oracle)


class FeatureEpisode:
    """`FeatureHook` for one episode: the features to act on and the estimates the policy made."""

    def __init__(self, truth: dict[str, np.ndarray], features: list[Feature], *, oracle: bool) -> None:
        self.truth = truth
        self.features = features
        self.given = dict(truth) if oracle else {}
        self.estimated: list[dict[str, np.ndarray]] = []

    def observation(self, obs: dict[str, Any]) -> Observation:
        """The policy's observation of an env observation dict (single step)."""
        return Observation(
            images=obs["images"], state=obs["state"], instruction=obs["instruction"], features=self.given
        )

    def on_estimate(self, estimate: dict[str, np.ndarray]) -> None:
        self.estimated.append({k: np.asarray(v) for k, v in estimate.items()})

    def results(self) -> dict[str, Any]:
        """{"estimate_cm": {"<feature>.<part>": cm}} for the first held estimate's position parts,
        when the policy estimated features the env reports, else {}."""
        if not self.estimated:
            return {}
        out: dict[str, float] = {}
        first = self.estimated[0]
        for feat in self.features:
            if feat.name not in first or feat.name not in self.truth:
                continue
            est = np.asarray(first[feat.name], np.float64).reshape(-1)
            true = np.asarray(self.truth[feat.name], np.float64).reshape(-1)
            for part in feat.parts:
                if part.kind == "position":
                    sl = feat.slice(part.name)
                    out[f"{feat.name}.{part.name}"] = float(np.linalg.norm(est[sl] - true[sl]) * 100.0)
        return {"estimate_cm": out} if out else {}


def summarize_family(extras: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-family aggregate of the episodes' `results()`: the median first-frame error of each held
    estimate's position part ("scene.target_median", ...; not oracle runs), or {} when none has one."""
    errs = [e["estimate_cm"] for e in extras if "estimate_cm" in e]
    if not errs:
        return {}
    keys = sorted({k for e in errs for k in e})
    return {"estimate_cm": {f"{k}_median": float(np.median([e[k] for e in errs if k in e])) for k in keys}}


def check_hook(hook: FeatureHook, policy: Any, suite: Any, *, checkpoint: str, suite_name: str) -> None:
    """Refuses an oracle run that cannot work, before any rollout."""
    if not hook.oracle:
        return
    names = tuple(getattr(policy, "estimates", ()) or ())
    declared = {f.name for f in suite_features(suite)}
    if not names or not set(names) <= declared:
        raise ValueError(
            "oracle_features needs a policy that estimates episode features (grounding_loss > 0) and a "
            f"suite that declares them; checkpoint {checkpoint} estimates {list(names)}, suite "
            f"'{suite_name}' declares {sorted(declared)}"
        )
