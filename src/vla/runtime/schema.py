"""What a policy server accepts: the observation schema, key aliases and request validation.

Request keys (a request is one msgpack map; nested maps are flattened with "/"):

    images:  for each camera `c` of the policy, the first present of
             `images/<c>`, `<c>`, `observation/images/<c>`, `observation.images.<c>`, `observation/<c>_image`;
             openpi aliases: `observation/image` is the first camera, `observation/wrist_image` the camera
             named "wrist" (or the second camera when none is named so).
             uint8 [Hi, Wi, 3] (channels last, the policy's image size; no resizing is done for you).
    state:   `state`, `observation/state` or `observation.state`: float [S] (float16/32/64 accepted).
    prompt:  `prompt`, `instruction` or `task`: str (utf-8 bytes accepted), at most 1000 characters.
    optional `request_id` (str or int, echoed in the reply), `reset` (bool: clear per-connection state),
    optional `prev_action` float [A]: the last command the robot executed, used by the safety filter's
             rate limits at the start of a chunk.
    optional `estop` (bool): true latches this connection's e-stop (every reply holds), false asks to
             release it, which needs `estop_token` (the server's release token); `operator` (who) and
             `estop_reason` (why) are logged with the latch or release (strings, at most 256 chars).

Other keys are ignored, so openpi clients that send extra fields keep working.
This module imports numpy only (it is shared by the server and the torch-free client).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vla.runtime.protocol import ProtocolError
from vla.spaces import Embodiment
from vla.types import Observation

MAX_PROMPT_CHARS = 1000
MAX_AUDIT_CHARS = 256
STATE_KEYS = ("state", "observation/state", "observation.state")
PROMPT_KEYS = ("prompt", "instruction", "task")


@dataclass(frozen=True)
class Request:
    """A validated request: a single-step observation (or None for a bare reset) plus the extras."""

    observation: Observation | None
    request_id: str | int | None
    reset: bool
    prev_action: np.ndarray | None
    estop: bool | None = None
    estop_token: str | None = None
    operator: str | None = None
    estop_reason: str | None = None


@dataclass(frozen=True)
class PolicySpec:
    """What a served policy consumes and produces (everything the metadata frame describes).

    Attributes:
        embodiment: the robot (its limits configure the safety filter).
        action_space: name of the embodiment's action space the policy outputs.
        cameras, image_size: the policy's cameras and their (Hi, Wi).
        action_horizon: H; obs_horizon: T.
        execute_steps: actions a client should run from each chunk before asking again (the
            policy's `config.steps_per_chunk`; 0 when unknown).
        stats_sha256: sha256 of the checkpoint's stats.json ("" when unknown).
        name: the model's name, for humans.
    """

    embodiment: Embodiment
    action_space: str
    cameras: tuple[str, ...]
    image_size: tuple[int, int]
    action_horizon: int
    obs_horizon: int = 1
    execute_steps: int = 0
    stats_sha256: str = ""
    name: str = ""

    @property
    def action_dim(self) -> int:
        return self.embodiment.action_space(self.action_space).dim

    def schema(self) -> ObservationSchema:
        return ObservationSchema(
            cameras=self.cameras,
            image_size=self.image_size,
            state_dim=self.embodiment.state_dim,
            action_dim=self.action_dim,
        )


def flatten(msg: dict[Any, Any], prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """Flattens nested maps into one level, joining keys with "/" (bytes keys decoded as utf-8)."""
    out: dict[str, Any] = {}
    for k, v in msg.items():
        key = k.decode("utf-8", errors="replace") if isinstance(k, bytes) else str(k)
        full = f"{prefix}/{key}" if prefix else key
        if isinstance(v, dict) and depth < 4:
            out.update(flatten(v, full, depth + 1))
        else:
            out[full] = v
    return out


@dataclass(frozen=True)
class ObservationSchema:
    """The shapes a policy needs, and the validation of incoming requests against them.

    Attributes:
        cameras: camera names, in the policy's order.
        image_size: (Hi, Wi) of every camera.
        state_dim: S.
        action_dim: A (for `prev_action`).
    """

    cameras: tuple[str, ...]
    image_size: tuple[int, int]
    state_dim: int
    action_dim: int

    def __post_init__(self) -> None:
        if not self.cameras:
            raise ValueError("ObservationSchema needs at least one camera")
        if self.state_dim <= 0 or self.action_dim <= 0:
            raise ValueError(
                f"state_dim and action_dim must be positive, got {self.state_dim}, {self.action_dim}"
            )

    def camera_aliases(self, cam: str) -> tuple[str, ...]:
        """Returns the request keys accepted for camera `cam`, in order of preference."""
        keys = [f"images/{cam}", cam, f"observation/images/{cam}", f"observation.images.{cam}"]
        keys.append(f"observation/{cam}_image")
        if cam == self.cameras[0]:
            keys.append("observation/image")
        wrist = "wrist" if "wrist" in self.cameras else (self.cameras[1] if len(self.cameras) > 1 else None)
        if cam == wrist:
            keys.append("observation/wrist_image")
        return tuple(dict.fromkeys(keys))

    def to_metadata(self) -> dict[str, Any]:
        """Returns `{key: {"shape": [...], "dtype": "..."}}` with the canonical request keys."""
        hi, wi = self.image_size
        schema: dict[str, Any] = {
            f"images/{c}": {"shape": [hi, wi, 3], "dtype": "uint8"} for c in self.cameras
        }
        schema["state"] = {"shape": [self.state_dim], "dtype": "float32"}
        schema["prompt"] = {"shape": [], "dtype": "str"}
        return schema

    def aliases_metadata(self) -> dict[str, list[str]]:
        """Returns canonical key -> every accepted alias (sent in the metadata for client authors)."""
        out = {f"images/{c}": list(self.camera_aliases(c)) for c in self.cameras}
        out["state"] = list(STATE_KEYS)
        out["prompt"] = list(PROMPT_KEYS)
        return out

    def parse(self, msg: Any) -> Request:
        """Validates a decoded request and converts it to a single-step `Observation`.

        Raises:
            ProtocolError: a key is missing, or an array has the wrong shape or dtype.
        """
        if not isinstance(msg, dict):
            raise ProtocolError(f"request must be a msgpack map, got {type(msg).__name__}")
        flat = flatten(msg)
        request_id = flat.get("request_id")
        if request_id is not None and (
            isinstance(request_id, bool)
            or not isinstance(request_id, str | int)
            or (isinstance(request_id, str) and len(request_id) > 256)
        ):
            raise ProtocolError("request_id must be a string (at most 256 chars) or an integer")
        reset = flat.get("reset", False)
        if not isinstance(reset, bool | np.bool_):
            raise ProtocolError(f"'reset' must be a boolean, got {type(reset).__name__}")
        reset = bool(reset)
        prev_action = None
        if flat.get("prev_action") is not None:
            prev_action = self._float_array(flat["prev_action"], "prev_action", (self.action_dim,))
            if not np.all(np.isfinite(prev_action)):
                raise ProtocolError("'prev_action' must be finite (it is the command the robot executed)")
        estop = flat.get("estop")
        if estop is not None and not isinstance(estop, bool | np.bool_):
            raise ProtocolError(f"'estop' must be a boolean, got {type(estop).__name__}")
        estop = None if estop is None else bool(estop)
        token, operator = _short_text(flat, "estop_token"), _short_text(flat, "operator")
        why = _short_text(flat, "estop_reason")
        has_obs = any(k in flat for k in STATE_KEYS) or any(
            a in flat for c in self.cameras for a in self.camera_aliases(c)
        )
        if (reset or estop is not None) and not has_obs:
            return Request(
                None,
                request_id,
                reset=reset,
                prev_action=prev_action,
                estop=estop,
                estop_token=token,
                operator=operator,
                estop_reason=why,
            )
        images = {c: self._image(flat, c) for c in self.cameras}
        state = self._float_array(self._first(flat, STATE_KEYS, "state"), "state", (self.state_dim,))
        prompt = self._prompt(self._first(flat, PROMPT_KEYS, "prompt"))
        return Request(
            observation=Observation(images=images, state=state, instruction=prompt),
            request_id=request_id,
            reset=reset,
            prev_action=prev_action,
            estop=estop,
            estop_token=token,
            operator=operator,
            estop_reason=why,
        )

    @staticmethod
    def _first(flat: dict[str, Any], keys: tuple[str, ...], what: str) -> Any:
        for k in keys:
            if k in flat:
                return flat[k]
        raise ProtocolError(f"missing key '{what}': send one of {list(keys)}")

    def _image(self, flat: dict[str, Any], cam: str) -> np.ndarray:
        keys = self.camera_aliases(cam)
        value = self._first(flat, keys, f"images/{cam}")
        hi, wi = self.image_size
        if not isinstance(value, np.ndarray):
            raise ProtocolError(
                f"image '{cam}' must be a numpy array uint8 [{hi}, {wi}, 3], got {type(value).__name__}"
            )
        if value.dtype != np.uint8:
            raise ProtocolError(f"image '{cam}' must have dtype uint8, got {value.dtype}")
        if value.shape != (hi, wi, 3):
            raise ProtocolError(
                f"image '{cam}' must have shape [{hi}, {wi}, 3] (HWC), got {list(value.shape)}"
            )
        return value

    @staticmethod
    def _float_array(value: Any, what: str, shape: tuple[int, ...]) -> np.ndarray:
        if isinstance(value, list) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        ):
            value = np.asarray(value, dtype=np.float64)
        if not isinstance(value, np.ndarray):
            raise ProtocolError(
                f"'{what}' must be a float array of shape {list(shape)}, got {type(value).__name__}"
            )
        if value.dtype.kind != "f":
            raise ProtocolError(f"'{what}' must have a float dtype (float16/32/64), got {value.dtype}")
        if value.shape != shape:
            raise ProtocolError(f"'{what}' must have shape {list(shape)}, got {list(value.shape)}")
        return value.astype(np.float32)

    @staticmethod
    def _prompt(value: Any) -> str:
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ProtocolError("'prompt' bytes are not valid utf-8") from e
        if not isinstance(value, str):
            raise ProtocolError(f"'prompt' must be a string, got {type(value).__name__}")
        if len(value) > MAX_PROMPT_CHARS:
            raise ProtocolError(
                f"'prompt' is {len(value)} characters long; at most {MAX_PROMPT_CHARS} accepted"
            )
        return value


def _short_text(flat: dict[str, Any], what: str) -> str | None:
    """The optional short string field `what` (utf-8 bytes accepted), or None when absent."""
    value = flat.get(what)
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str) or len(value) > MAX_AUDIT_CHARS:
        raise ProtocolError(f"'{what}' must be a string of at most {MAX_AUDIT_CHARS} characters")
    return value
