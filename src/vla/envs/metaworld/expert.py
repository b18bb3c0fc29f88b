"""Meta-World's own scripted policies (`metaworld.policies`) as vla experts.

They read the full 39-D simulator observation (object and goal positions), which the env keeps in
`raw_obs` for them only. They are stateless, so they act correctly from any state (DAgger can ask them
about states a policy visited).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


class MetaWorldExpert:
    """The task's scripted policy, clipped to the action bounds like every executed action."""

    def __init__(self, env: Any) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        self.env = env
        self.policy = ENV_POLICY_MAP[env.task]()  # type: ignore[abstract]  # mypy sees the base class

    def reset(self) -> None:
        """Nothing to reset: Meta-World's scripted policies keep no state."""

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        del obs  # the expert reads the simulator's state
        with warnings.catch_warnings():  # "Constant(s) may be too high": the clip below is intended
            warnings.simplefilter("ignore", UserWarning)
            action = self.policy.get_action(self.env.raw_obs)
        return np.clip(action, -1.0, 1.0).astype(np.float32)
