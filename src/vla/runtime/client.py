"""A numpy-only client for `vla serve` (no torch import: it runs on the robot's computer).

    with PolicyClient("127.0.0.1", 8000) as client:
        print(client.metadata["action_shape"])
        reply = client.infer({"images/scene": img, "images/wrist": wrist, "state": s, "prompt": "open"})
        actions = reply["actions"]  # float32 [H, A], robot units, already safety-filtered

Every request carries an increasing `request_id`, and a reply with another id is an error, so a late
reply can never be taken for the answer to the next request (a gap users hit with openpi's client).
`openpi_client.websocket_client_policy.WebsocketClientPolicy` also works against the same server.
"""

from __future__ import annotations

import itertools
from types import TracebackType
from typing import Any

from websockets.sync.client import ClientConnection, connect

from vla.runtime.protocol import packb, unpackb


class ServerError(RuntimeError):
    """The server refused a request (the text frame's message) or broke the protocol."""


class PolicyClient:
    """Connects to a policy server and exchanges one observation for one action chunk at a time.

    Args:
        host: server address ("127.0.0.1") or a full "ws://host:port" URI.
        port: TCP port (ignored when `host` is a URI).
        token: API key, sent as `Authorization: Api-Key <token>`.
        timeout: seconds to wait for each reply (and for the connection).
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 8000, *, token: str | None = None, timeout: float = 30.0
    ):
        uri = host if host.startswith("ws") else f"ws://{host}:{port}"
        headers = {"Authorization": f"Api-Key {token}"} if token else None
        self.timeout = timeout
        ws = connect(
            uri,
            compression=None,
            max_size=None,
            additional_headers=headers,
            open_timeout=timeout,
            legacy=True,
        )
        assert isinstance(ws, ClientConnection)
        self._ws = ws
        self._ids = itertools.count(1)
        first = self._ws.recv(timeout=timeout)
        if isinstance(first, str):
            raise ServerError(f"expected the metadata frame, got text: {first}")
        self.metadata: dict[str, Any] = unpackb(first)

    def _call(self, msg: dict[str, Any]) -> dict[str, Any]:
        rid = next(self._ids)
        self._ws.send(packb({**msg, "request_id": rid}))
        reply = self._ws.recv(timeout=self.timeout)
        if isinstance(reply, str):
            raise ServerError(reply)
        out = unpackb(reply)
        if not isinstance(out, dict) or out.get("request_id") != rid:
            got = out.get("request_id") if isinstance(out, dict) else type(out).__name__
            raise ServerError(f"reply for request {got} arrived while waiting for {rid}")
        return out

    def infer(self, obs: dict[str, Any]) -> dict[str, Any]:
        """Sends one observation (see `metadata["observation_schema"]`) and returns the reply dict.

        Raises:
            ServerError: the server refused the observation; the message says why.
        """
        return self._call(dict(obs))

    def reset(self) -> None:
        """Clears the server's per-connection state (observation history, rate-limit memory; a latched
        e-stop stays) for a new episode."""
        self._call({"reset": True})

    def estop(self, *, reason: str = "", operator: str = "") -> None:
        """Latches this connection's e-stop on the server: every reply holds until a release."""
        self._call({"estop": True, "estop_reason": reason, "operator": operator})

    def release_estop(self, token: str | None, *, reason: str = "", operator: str = "") -> None:
        """Releases this connection's latched e-stop; the server logs who, when and why.

        Args:
            token: the server's release token (`--estop-token`, else its API `--token`).
            reason: why it is safe to move again; operator: who releases it.

        Raises:
            ServerError: the server refused (no or a wrong token).
        """
        msg: dict[str, Any] = {"estop": False, "estop_reason": reason, "operator": operator}
        if token is not None:
            msg["estop_token"] = token
        self._call(msg)

    def plan(
        self, instruction: str, scene: dict[str, Any], *, done: list[dict[str, str]] | None = None
    ) -> dict[str, Any]:
        """Asks the server's planner for the plan of `instruction` (a server run with `--planner`).

        Args:
            instruction: the request, e.g. "put every block in the bowl".
            scene: {"objects": [...], "containers": [...], "positions": {name: [x, y]}, "contents": {...}}.
            done: steps already done, as {"skill": ..., slot: value} maps; the server plans the rest.

        Returns:
            The reply: "plan" (steps as maps), "steps" (their instructions), "planner", "server_timing".

        Raises:
            ServerError: the planner refused (the reason), the request was malformed, or the server has
                no planner.
        """
        reply = self._call({"plan": {"instruction": instruction, "scene": scene, "done": list(done or [])}})
        if reply.get("plan") is None:
            raise ServerError(f"the planner refused: {reply.get('error')}")
        return reply

    def close(self) -> None:
        self._ws.close()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
