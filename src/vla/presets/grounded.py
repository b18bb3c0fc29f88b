"""grounded: `default` plus a grounding head co-trained on labelled rendered scenes (`--grounding`).

Why: `default` learns where the instructed object is only from demonstrations, and 50 per family are
too few (docs/measured.md: 11.7% on the full tabletop suite). The simulator labels object positions
for free, so this preset adds a head (vla.models.grounding) trained on `vla collect-grounding` views;
the scene, relative to the end effector, is one more fusion token: in training the scene the
demonstration recorded, at run time the head's estimate of the episode's first frame, held.
Train with `vla train DATA --preset grounded --grounding VIEWS.h5`.
"""

from __future__ import annotations

from vla.models.config import PolicyConfig
from vla.presets import default


def config() -> PolicyConfig:
    return default.config().override({"name": "grounded", "grounding_loss": 1.0})
