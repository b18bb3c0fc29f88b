"""`ServeConfig`: the network, limits and safety settings of a `vla.runtime.server.PolicyServer`."""

from __future__ import annotations

from dataclasses import dataclass, field

from vla.runtime.recovery import RecoveryConfig
from vla.runtime.safety import SafetyConfig


def _server_recovery() -> RecoveryConfig:
    # One re-plan per reply: a client waits for the whole chunk, and a second failure in a row
    # rarely clears on a third try (the same policy, the same observation).
    return RecoveryConfig(max_retries=1)


@dataclass(frozen=True)
class ServeConfig:
    """Network, limits and safety settings of a PolicyServer.

    Attributes:
        host: interface to listen on (127.0.0.1 by default: expose it deliberately).
        port: TCP port (0 picks a free one).
        token: when set, clients must send `Authorization: Api-Key <token>`.
        estop_token: secret a client must send (`estop_token`) to release a latched e-stop; None: the
            API `token`. With neither, a latched e-stop is never released over the wire (it lasts as
            long as the connection).
        max_request_bytes: largest request frame answered (a text error beyond it); None: 4x the schema's
            request size, at least 1 MiB. Frames over twice this close the connection (code 1009).
        safety: safety filter settings (one filter per connection); unsafe_no_filter: serve raw model
            actions (explicit opt-out).
        max_batch: requests that queued up during a model call are answered by one batched call, up to
            this many (1: never batch). A lone client never waits for a batch.
        recovery: the recovery policy (`vla.runtime.recovery`, the same as SafeController's): a chunk
            the filter holds for a retryable reason (NaN/inf, low confidence, a policy exception) is
            re-planned up to `max_retries` times (1 by default), then the reply holds
            (`safety.recovery_exhausted`).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    estop_token: str | None = None
    max_request_bytes: int | None = None
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    unsafe_no_filter: bool = False
    max_batch: int = 8
    recovery: RecoveryConfig = field(default_factory=_server_recovery)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in [0, 65535], got {self.port}")
        for name in ("token", "estop_token"):
            value = getattr(self, name)
            if value is not None and (not value or any(c.isspace() for c in value)):
                raise ValueError(f"{name} must be a non-empty string without whitespace")
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.max_request_bytes is not None and self.max_request_bytes < 1024:
            raise ValueError(f"max_request_bytes must be >= 1024, got {self.max_request_bytes}")

    @property
    def release_token(self) -> str | None:
        """The secret that releases a latched e-stop (None: release over the wire is refused)."""
        return self.estop_token if self.estop_token is not None else self.token
