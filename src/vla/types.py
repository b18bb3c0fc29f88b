"""Core data types shared by every part of vla, with their shapes written down.

Shape glossary (used in annotations and `# (B, T, ...)` comments across the code base):

    B   batch size
    T   observation history length (frames of context the policy sees; T=1 means the current frame)
    H   action horizon (length of a predicted action chunk)
    A   action dimension (from the embodiment's action space)
    S   state dimension (proprioception, laid out by `Embodiment.state_fields`)
    D   size of one declared feature (`vla.features.Feature.size`)
    V   number of cameras
    Hi, Wi   image height and width in pixels (images are always uint8 RGB, channels last)

Canonical names:
    camera images live under their camera name ("scene", "wrist") in `images`;
    `state` is the flat proprioceptive vector laid out by `Embodiment.state_fields`;
    `instruction` is the natural-language command (openpi calls it `prompt`, LeRobot `task`).

Units: actions and states are always in robot units (metres, radians, gripper fraction) outside a
policy. Normalization happens inside the policy, with statistics saved in its checkpoint, so a
deployment can never apply the wrong statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

STATS_QUANTILES = ("q01", "q99")


@dataclass(frozen=True)
class Observation:
    """What a policy sees at one control step (unbatched) or for a batch.

    Attributes:
        images: camera name -> uint8 [Hi, Wi, 3] (single step) or [B, T, Hi, Wi, 3] (batched).
        state: float32 [S] (single step) or [B, T, S] (batched).
        instruction: the command; a list of B strings when batched.
        features: declared features by name (`vla.features`): float32 [D] (single step) or [B, D]. A
            policy that estimates an episode feature itself (`Policy.estimates`) acts on the value
            given here when there is one (a controller holds the first frame's estimate) and
            estimates it on this frame otherwise.
    """

    images: dict[str, np.ndarray]
    state: np.ndarray
    instruction: str | list[str]
    features: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def batched(self) -> bool:
        return self.state.ndim == 3

    def as_batch(self) -> Observation:
        """Returns the observation with batch and time axes added (B=1, T=1) if it has none."""
        if self.batched:
            return self
        if self.state.ndim != 1:
            raise ValueError(f"state must be [S] or [B, T, S], got shape {self.state.shape}")
        images = {k: v[None, None] for k, v in self.images.items()}
        instruction = [self.instruction] if isinstance(self.instruction, str) else list(self.instruction)
        features = {k: np.asarray(v)[None] for k, v in self.features.items()}
        return Observation(
            images=images, state=self.state[None, None], instruction=instruction, features=features
        )


@dataclass(frozen=True)
class ActionChunk:
    """A policy's prediction: H future actions per batch element, in robot units.

    Attributes:
        actions: float32 [B, H, A].
        confidence: float32 [B] in [0, 1], higher means the policy is more certain; None if the
            head cannot estimate it.
        info: free-form diagnostics (e.g. attention maps), never needed to act.
    """

    actions: np.ndarray
    confidence: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.actions.ndim != 3:
            raise ValueError(f"ActionChunk.actions must be [B, H, A], got shape {self.actions.shape}")


@dataclass
class Batch:
    """A training batch of windows cut from demonstrations (torch tensors, raw robot units).

    Attributes:
        images: camera name -> uint8 [B, T, Hi, Wi, 3].
        state: float32 [B, T, S].
        obs_pad: bool [B, T]; True where the frame lies before the episode start (copied padding).
        instruction: B strings.
        actions: float32 [B, H, A].
        action_pad: bool [B, H]; True where the step lies past the episode end (copied padding).
        family: B task-family names ("" when unknown), for per-family metrics and balanced sampling.
        features: extra fields by name, float32 [B, D] each: the dataset's declared episode features
            (`vla.features`, with "<name>_mask" beside a masked one) and "subgoal" [B, 3], the
            hindsight end-effector position at the next gripper event (`vla.data.subgoals`) when the
            embodiment can define it. Auxiliary heads read the feature they attach to; a batch
            without it trains without that loss.
    """

    images: dict[str, Any]
    state: Any
    obs_pad: Any
    instruction: list[str]
    actions: Any
    action_pad: Any
    family: list[str] = field(default_factory=list)
    features: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.instruction)

    def to(self, device: Any) -> Batch:
        """Returns the batch with every tensor moved to `device`."""
        return Batch(
            images={k: v.to(device) for k, v in self.images.items()},
            state=self.state.to(device),
            obs_pad=self.obs_pad.to(device),
            instruction=self.instruction,
            actions=self.actions.to(device),
            action_pad=self.action_pad.to(device),
            family=self.family,
            features={k: v.to(device) for k, v in self.features.items()},
        )


@dataclass
class JointBatch:
    """A training batch of several robots' windows (a joint policy's, `vla.models.joint`):
    embodiment name -> that robot's `Batch`."""

    parts: dict[str, Batch]

    def __len__(self) -> int:
        return sum(len(b) for b in self.parts.values())

    @property
    def family(self) -> list[str]:
        """Every window's family, robot by robot in `parts` order."""
        return [f for b in self.parts.values() for f in b.family]

    def to(self, device: Any) -> JointBatch:
        """Returns the batch with every part's tensors moved to `device`."""
        return JointBatch({k: b.to(device) for k, b in self.parts.items()})


@dataclass(frozen=True)
class FeatureStats:
    """Per-dimension normalization statistics of one feature (state or action), in robot units.

    Every array is float64 [D]. `count` is the number of samples the statistics were computed from.
    """

    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    q01: np.ndarray
    q99: np.ndarray
    count: int

    def __post_init__(self) -> None:
        dims = {
            name: np.asarray(getattr(self, name)).shape
            for name in ("mean", "std", "min", "max", "q01", "q99")
        }
        if len(set(dims.values())) != 1 or len(next(iter(dims.values()))) != 1:
            raise ValueError(f"FeatureStats arrays must all be 1-D of one length, got shapes {dims}")

    @property
    def dim(self) -> int:
        return int(np.asarray(self.mean).shape[0])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: np.asarray(getattr(self, k), dtype=np.float64).tolist()
            for k in ("mean", "std", "min", "max", "q01", "q99")
        }
        out["count"] = int(self.count)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str = "stats") -> FeatureStats:
        missing = [k for k in ("mean", "std", "min", "max", "q01", "q99", "count") if k not in d]
        if missing:
            raise ValueError(f"{where}: missing normalization statistics {missing}")
        arrays = {k: np.asarray(d[k], dtype=np.float64) for k in ("mean", "std", "min", "max", "q01", "q99")}
        for k, v in arrays.items():
            if not np.all(np.isfinite(v)):
                raise ValueError(f"{where}.{k}: statistics must be finite, got {v.tolist()}")
        return cls(**arrays, count=int(d["count"]))


@dataclass(frozen=True)
class DatasetStats:
    """Normalization statistics of a dataset; copied into every checkpoint trained on it."""

    state: FeatureStats
    action: FeatureStats

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state.to_dict(), "action": self.action.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str = "stats") -> DatasetStats:
        for key in ("state", "action"):
            if key not in d:
                raise ValueError(
                    f"{where}: missing statistics for '{key}' (expected keys 'state' and 'action')"
                )
        return cls(
            state=FeatureStats.from_dict(d["state"], where=f"{where}.state"),
            action=FeatureStats.from_dict(d["action"], where=f"{where}.action"),
        )


@dataclass(frozen=True)
class GroundingBatch:
    """Labelled views for a feature-estimating head (`vla.data.grounding`), torch tensors.

    Attributes:
        images: camera name -> uint8 [B, 1, Hi, Wi, 3].
        state: float32 [B, S], the robot state of each view (robot units).
        instruction: B strings.
        labels: float32 [B, D], values of the declared feature the views label.
        mask: float32 [B, D]; 0 where a label does not apply.
    """

    images: dict[str, Any]
    state: Any
    instruction: list[str]
    labels: Any
    mask: Any
