"""Declared features: the extra fields a suite or embodiment provides beside images, state and actions.

The core never names a suite's extras. A suite declares each one (`Suite.features`), the declaration
travels with every dataset and checkpoint (as LeRobot's `info.json` features do), and the parts that
use a feature find it by name: `Batch.features[name]`, `Observation.features[name]`, an auxiliary
head that attaches to `PolicyConfig.grounding_feature`. A suite that declares none needs no branch.

Scopes:
    "episode": one value per episode, e.g. where the instructed objects were at the start. An env
        writes it into `env.episode_meta[name]` (and the reset `info[name]`); a recorder keeps the
        episode meta, so datasets carry it.
    "step": one value per control step (reserved for suites that record one; none does yet).

A feature with `masked=True` comes with a float32 mask of the same shape under `mask_key` (0 where
a value does not apply, e.g. the yaw of a round object).

Shapes: a feature's value is float32 [D] (single step / one episode) or [B, D] batched, D = `size`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SCOPES = ("episode", "step")
# A per-step feature every dataset whose embodiment has `ee_pos` and a `gripper` group gets without
# declaring it: the hindsight sub-goal (`vla.data.subgoals`), float32 [3].
SUBGOAL = "subgoal"
PART_KINDS = ("position", "angle", "value")


@dataclass(frozen=True)
class FeaturePart:
    """A named slice of a feature vector.

    Attributes:
        name: e.g. "target", "place", "yaw".
        kind: "position" (3-D point in the robot base frame, metres), "angle" (cos/sin pairs) or "value".
        size: number of dimensions.
        units: e.g. "m", "(cos 4θ, sin 4θ)".
    """

    name: str
    kind: str
    size: int
    units: str = ""

    def __post_init__(self) -> None:
        if self.kind not in PART_KINDS:
            raise ValueError(
                f"feature part '{self.name}': kind must be one of {PART_KINDS}, got '{self.kind}'"
            )
        if self.size <= 0:
            raise ValueError(f"feature part '{self.name}': size must be positive, got {self.size}")
        if self.kind == "position" and self.size != 3:
            raise ValueError(f"feature part '{self.name}': a position has 3 values, got {self.size}")


@dataclass(frozen=True)
class Feature:
    """One declared extra field (see the module docstring).

    Attributes:
        name: the key under which it travels ("scene").
        scope: "episode" or "step".
        parts: its layout, in order.
        meaning: one sentence for humans (shown by `vla data info`, stored in datasets and checkpoints).
        masked: whether a mask of the same shape accompanies it (`mask_key`).
    """

    name: str
    scope: str
    parts: tuple[FeaturePart, ...]
    meaning: str = ""
    masked: bool = False

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"feature name must be a non-empty identifier, got '{self.name}'")
        if self.scope not in SCOPES:
            raise ValueError(f"feature '{self.name}': scope must be one of {SCOPES}, got '{self.scope}'")
        if not self.parts:
            raise ValueError(f"feature '{self.name}' declares no parts")
        names = [p.name for p in self.parts]
        if len(set(names)) != len(names):
            raise ValueError(f"feature '{self.name}': part names must be unique, got {names}")

    @property
    def size(self) -> int:
        return sum(p.size for p in self.parts)

    @property
    def mask_key(self) -> str:
        return f"{self.name}_mask"

    def slice(self, part: str) -> slice:
        """Where `part` lies in the feature vector."""
        start = 0
        for p in self.parts:
            if p.name == part:
                return slice(start, start + p.size)
            start += p.size
        raise KeyError(f"feature '{self.name}' has no part '{part}'; parts: {[p.name for p in self.parts]}")

    def layout(self) -> tuple[tuple[str, str, int], ...]:
        """(name, kind, size) per part: what a head that reads this feature checks it against."""
        return tuple((p.name, p.kind, p.size) for p in self.parts)

    def check(self, value: Any, *, where: str) -> np.ndarray:
        """Returns `value` as float32 [..., D], or raises naming the feature, the shape and what was expected."""
        arr = np.asarray(value, dtype=np.float32)
        if arr.ndim == 0 or arr.shape[-1] != self.size:
            raise ValueError(
                f"{where}: feature '{self.name}' must hold {self.size} values per row "
                f"({', '.join(f'{p.name}[{p.size}]' for p in self.parts)}), got shape {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{where}: feature '{self.name}' holds NaN/inf")
        return arr

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope,
            "meaning": self.meaning,
            "masked": self.masked,
            "parts": [{"name": p.name, "kind": p.kind, "size": p.size, "units": p.units} for p in self.parts],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Feature:
        try:
            return cls(
                name=str(d["name"]),
                scope=str(d["scope"]),
                meaning=str(d.get("meaning", "")),
                masked=bool(d.get("masked", False)),
                parts=tuple(
                    FeaturePart(str(p["name"]), str(p["kind"]), int(p["size"]), str(p.get("units", "")))
                    for p in d["parts"]
                ),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"feature declaration {d!r} is missing or mistypes {e}") from e


def features_to_json(features: tuple[Feature, ...] | list[Feature]) -> list[dict[str, Any]]:
    return [f.to_dict() for f in features]


def features_from_json(data: Any, *, where: str) -> tuple[Feature, ...]:
    """Parses a list of feature declarations (datasets, checkpoints); an unreadable one names `where`."""
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ValueError(f"{where}: 'features' must be a list of declarations, got {type(data).__name__}")
    out = tuple(Feature.from_dict(d) for d in data)
    names = [f.name for f in out]
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: feature names must be unique, got {names}")
    return out


def find_feature(features: tuple[Feature, ...] | list[Feature], name: str, *, where: str) -> Feature:
    """The feature called `name`, or a ValueError that lists what `where` declares."""
    for f in features:
        if f.name == name:
            return f
    have = [f.name for f in features] or "none"
    raise ValueError(f"{where} declares no feature '{name}' (it declares {have})")
