"""Running a policy on a robot: chunking, safety filter, recovery, inference engine, policy server.

Importing `vla.runtime` stays torch-free (the client runs on robot computers); the engine lives in
`vla.runtime.engine` and the ONNX export in `vla.runtime.onnx_export`.
"""

from vla.runtime.chunking import (
    ChunkBroker,
    Controller,
    ObservationHistory,
    PolicyLike,
    TemporalEnsembler,
    make_controller,
)
from vla.runtime.recovery import RecoveryConfig, SafeController, make_safe_controller
from vla.runtime.safety import SafetyConfig, SafetyFilter
from vla.runtime.schema import ObservationSchema, PolicySpec

__all__ = [
    "ChunkBroker",
    "Controller",
    "ObservationHistory",
    "ObservationSchema",
    "PolicyLike",
    "PolicySpec",
    "RecoveryConfig",
    "SafeController",
    "SafetyConfig",
    "SafetyFilter",
    "TemporalEnsembler",
    "make_controller",
    "make_safe_controller",
]
