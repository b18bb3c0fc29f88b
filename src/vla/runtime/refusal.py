"""The server's reply to an instruction its instruction check refused (`vla.models.instruction_check`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from vla.runtime.safety import SafetyFilter


def refusal_reply(filt: SafetyFilter, state: np.ndarray, reason: str, horizon: int) -> dict[str, Any]:
    """A chunk of `horizon` holds (reason "ungroundable_instruction") and the refusal's reason; the model
    is not called. Holds are zero for delta groups and the last safe command for absolute ones."""
    hold = filt.act(np.zeros(filt.action_dim, np.float32), state, hold="ungroundable_instruction")
    return {
        "actions": np.repeat(hold[None], horizon, axis=0).astype(np.float32),
        "safety": {
            "enabled": True,
            "retries": 0,
            "interventions": list(filt.last_reasons),
            "estop": filt.estopped,
            "recovery_exhausted": False,
            "held": reason,
        },
    }
