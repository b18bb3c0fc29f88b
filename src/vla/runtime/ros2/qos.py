"""The QoS profiles vla's ROS 2 endpoints use, named after rmw's standard profiles.

Readers ask for the least they can live with, so they match any publisher: a best-effort reader
matches best-effort and reliable writers, a volatile reader volatile and transient-local ones.

    SENSOR    best effort, volatile, keep last 5   (rmw_qos_profile_sensor_data): images, joint states
    RELIABLE  reliable, volatile, keep last 10     (rmw_qos_profile_default): commands, instruction, e-stop
    LATCHED   reliable, transient local, keep last 1: node status (a late `ros2 topic echo` sees the last)
    SERVICES  reliable, volatile, keep last 10     (rmw_qos_profile_services_default)
    ACTION_STATUS reliable, transient local, keep last 1 (rcl_action_qos_profile_status_default)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class QosProfile:
    """A ROS 2 QoS profile (the policies ROS exposes; deadline/lifespan/liveliness stay at defaults).

    Attributes:
        reliable: reliable (True) or best effort (False).
        depth: keep-last history depth.
        transient_local: keep the last `depth` samples for late-joining readers.
    """

    reliable: bool
    depth: int
    transient_local: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.depth <= 10_000:
            raise ValueError(f"QoS history depth must be in [1, 10000], got {self.depth}")


SENSOR = QosProfile(reliable=False, depth=5)
RELIABLE = QosProfile(reliable=True, depth=10)
LATCHED = QosProfile(reliable=True, depth=1, transient_local=True)
SERVICES = QosProfile(reliable=True, depth=10)
ACTION_STATUS = QosProfile(reliable=True, depth=1, transient_local=True)


def to_cyclonedds(profile: QosProfile) -> Any:
    """The cyclonedds `Qos` of a profile."""
    from cyclonedds.core import Policy, Qos
    from cyclonedds.util import duration

    reliability = (
        Policy.Reliability.Reliable(max_blocking_time=duration(milliseconds=100))
        if profile.reliable
        else Policy.Reliability.BestEffort
    )
    durability = Policy.Durability.TransientLocal if profile.transient_local else Policy.Durability.Volatile
    return Qos(reliability, durability, Policy.History.KeepLast(profile.depth))
