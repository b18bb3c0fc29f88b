"""A websocket policy server that speaks openpi's wire protocol (so `openpi-client` works unchanged).

Protocol (see `protocol.py` for arrays, `schema.py` for request keys):
    connect     -> the server sends one msgpack frame: the metadata (`PolicyServer.metadata()`).
    request     <- one binary msgpack frame: the observation map (+ optional request_id / reset / estop).
    reply       -> one binary msgpack frame: {"actions": float32 [H, A] (robot units, after the safety
                   filter), "server_timing": {ms}, "safety": {...}, "request_id" if sent, "confidence"}.
    bad request -> one TEXT frame with the reason; the connection stays usable.
HTTP: `GET /healthz` answers 200 "ok". With a token, the upgrade needs `Authorization: Api-Key <token>`
(openpi's client sends that for `api_key=`; `Bearer <token>` is accepted too), else 401 before upgrade.

Differences from openpi's server that users asked for: inference runs in a worker thread (one model call
at a time), so the event loop keeps serving pings, health checks and other clients; replies echo a
request id; the metadata carries the observation schema; frames are validated, never unpickled.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request as HttpRequest
from websockets.http11 import Response

from vla.runtime.batching import InferenceBatcher
from vla.runtime.chunking import ObservationHistory, PolicyLike, feature_estimator
from vla.runtime.protocol import PROTOCOL_VERSION, ProtocolError, packb, unpackb
from vla.runtime.safety import SafetyConfig, SafetyFilter
from vla.runtime.schema import PolicySpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeConfig:
    """Network, limits and safety settings of a PolicyServer.

    Attributes:
        host: interface to listen on (127.0.0.1 by default: expose it deliberately).
        port: TCP port (0 picks a free one).
        token: when set, clients must send `Authorization: Api-Key <token>`.
        max_request_bytes: largest request frame answered (a text error beyond it); None: 4x the schema's
            request size, at least 1 MiB. Frames over twice this close the connection (code 1009).
        safety: safety filter settings; unsafe_no_filter: serve raw model actions (explicit opt-out).
        max_batch: requests that queued up during a model call are answered by one batched call, up to
            this many (1: never batch). A lone client never waits for a batch.
        max_retries: re-plans of a chunk with NaN/inf actions or confidence below the safety filter's
            `min_confidence` before the reply holds (flagged `safety.recovery_exhausted`).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    max_request_bytes: int | None = None
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    unsafe_no_filter: bool = False
    max_batch: int = 8
    max_retries: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in [0, 65535], got {self.port}")
        if self.token is not None and (not self.token or any(c.isspace() for c in self.token)):
            raise ValueError("token must be a non-empty string without whitespace")
        if not 0 <= self.max_retries <= 10:
            raise ValueError(f"max_retries must be in [0, 10], got {self.max_retries}")
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.max_request_bytes is not None and self.max_request_bytes < 1024:
            raise ValueError(f"max_request_bytes must be >= 1024, got {self.max_request_bytes}")


class PolicyServer:
    """Serves one policy to any number of websocket clients.

    Args:
        policy: anything with `predict(Observation) -> ActionChunk` (an `Engine`, a policy).
        spec: what the policy consumes and produces (`Engine.spec`).
        config: network and safety settings.
    """

    def __init__(self, policy: PolicyLike, spec: PolicySpec, config: ServeConfig | None = None) -> None:
        self.policy = policy
        self.spec = spec
        self.config = config or ServeConfig()
        self.schema = spec.schema()
        hi, wi = spec.image_size
        request_bytes = len(spec.cameras) * hi * wi * 3 + 8 * spec.embodiment.state_dim + 4096
        self.max_request_bytes = self.config.max_request_bytes or max(1 << 20, 4 * request_bytes)
        self.safety: SafetyFilter | None = None
        if not self.config.unsafe_no_filter:
            self.safety = SafetyFilter(spec.embodiment, self.config.safety)
        else:
            logger.warning("policy server runs WITHOUT the safety filter (unsafe_no_filter)")
        if self.config.token is None and self.config.host not in ("127.0.0.1", "localhost", "::1"):
            logger.warning(
                "serving on %s without a token: anyone who reaches it can drive the robot", self.config.host
            )
        self.stats: dict[str, int] = {"connections": 0, "requests": 0, "replies": 0, "errors": 0}
        # One worker thread: model calls are serialized (the model is not re-entrant and two calls would
        # only fight over the same cores), while the event loop stays free for every other connection.
        self.batcher = InferenceBatcher(policy.predict, max_batch=self.config.max_batch)
        self._metadata_frame = packb(self.metadata())
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.port: int = self.config.port

    def metadata(self) -> dict[str, Any]:
        """The first frame every client receives."""
        spec = self.spec
        emb = spec.embodiment
        return {
            "server": "vla",
            "protocol_version": PROTOCOL_VERSION,
            "policy_name": spec.name,
            "embodiment": emb.name,
            "action_space": spec.action_space,
            "action_shape": [spec.action_horizon, spec.action_dim],
            "action_horizon": spec.action_horizon,
            "chunk_size": spec.action_horizon,
            "execute_steps": spec.execute_steps,
            "obs_horizon": spec.obs_horizon,
            "control_hz": emb.control_hz,
            "cameras": list(spec.cameras),
            "observation_schema": self.schema.to_metadata(),
            "key_aliases": self.schema.aliases_metadata(),
            "stats_sha256": spec.stats_sha256,
            "safety_filter": self.safety is not None,
            "max_request_bytes": self.max_request_bytes,
        }

    # ---- HTTP side ----------------------------------------------------------------------------------
    def _process_request(self, conn: ServerConnection, request: HttpRequest) -> Response | None:
        if request.path.split("?")[0] == "/healthz":
            return conn.respond(HTTPStatus.OK, "ok\n")
        token = self.config.token
        if token is not None:
            got = request.headers.get("Authorization", "")
            ok = any(
                hmac.compare_digest(got.encode(), f"{scheme} {token}".encode())
                for scheme in ("Api-Key", "Bearer")
            )
            if not ok:
                logger.info("refused a connection without a valid API key")
                response = conn.respond(
                    HTTPStatus.UNAUTHORIZED,
                    "missing or wrong API key: send 'Authorization: Api-Key <token>'\n",
                )
                response.headers = Headers([*response.headers.raw_items(), ("WWW-Authenticate", "Api-Key")])
                return response
        return None

    # ---- websocket side -----------------------------------------------------------------------------
    async def _handle(self, conn: ServerConnection) -> None:
        self.stats["connections"] += 1
        # Per-connection state, new for each client: the frame history and, for a policy that
        # estimates episode features, the estimates held from the first frame after a connect or a
        # `reset` request.
        history = ObservationHistory(
            self.spec.obs_horizon,
            estimate=feature_estimator(self.policy),
            names=tuple(getattr(self.policy, "estimates", ()) or ()),
        )
        prev_total_ms = 0.0
        try:
            await conn.send(self._metadata_frame)
            async for message in conn:
                t0 = time.perf_counter()
                self.stats["requests"] += 1
                try:
                    reply = await self._answer(message, history, t0, prev_total_ms)
                except ProtocolError as e:
                    self.stats["errors"] += 1
                    await conn.send(f"bad request: {e}")
                    continue
                except Exception as e:  # a model failure must not take the server down
                    self.stats["errors"] += 1
                    logger.exception("inference failed")
                    await conn.send(f"inference failed: {type(e).__name__}: {e}")
                    continue
                await conn.send(reply)
                self.stats["replies"] += 1
                prev_total_ms = (time.perf_counter() - t0) * 1e3
        except ConnectionClosed:
            pass

    async def _answer(
        self, message: str | bytes, history: ObservationHistory, t0: float, prev_total_ms: float
    ) -> bytes:
        if isinstance(message, str):
            raise ProtocolError("expected a binary msgpack frame (the observation map), got a text frame")
        if len(message) > self.max_request_bytes:
            raise ProtocolError(
                f"frame of {len(message)} bytes exceeds max_request_bytes={self.max_request_bytes}"
            )
        req = self.schema.parse(unpackb(message))
        out: dict[str, Any] = {}
        if req.request_id is not None:
            out["request_id"] = req.request_id
        if req.estop is not None and self.safety is not None:
            if req.estop:
                self.safety.estop("client request")
            else:
                self.safety.release_estop()
        if req.reset:
            history.reset()
        if req.observation is None:
            out.update(reset=req.reset, estop=self.safety is not None and self.safety.estopped)
            return packb(out)
        batch = history.push(req.observation)
        t1 = time.perf_counter()
        h, a = self.spec.action_horizon, self.spec.action_dim
        min_conf = self.config.safety.min_confidence if self.safety is not None else None
        retries = 0
        while True:  # recovery: re-plan a NaN or low-confidence chunk up to max_retries times
            chunk, infer_ms, batch_size = await self.batcher.submit(batch)
            actions = np.asarray(chunk.actions)
            if actions.shape != (1, h, a):
                raise RuntimeError(
                    f"policy returned actions of shape {list(actions.shape)}, expected [1, {h}, {a}]"
                )
            confidence = (
                None if chunk.confidence is None else float(np.asarray(chunk.confidence).reshape(-1)[0])
            )
            bad = not np.all(np.isfinite(actions)) or (
                min_conf is not None and confidence is not None and not confidence >= min_conf
            )
            if not bad or retries >= self.config.max_retries:
                break
            retries += 1
        t2 = time.perf_counter()
        safety: dict[str, Any] = {"enabled": self.safety is not None, "retries": retries}
        if self.safety is not None:
            actions = self.safety.filter_chunk(
                actions[0], req.observation.state, confidence=confidence, prev_action=req.prev_action
            )
            safety.update(
                interventions=list(self.safety.last_reasons),
                estop=self.safety.estopped,
                recovery_exhausted=bad,  # every attempt failed: the reply holds where the model failed
            )
        else:
            actions = actions[0].astype(np.float32)
        out["actions"] = actions  # (H, A)
        if confidence is not None:
            out["confidence"] = confidence
        out["safety"] = safety
        t3 = time.perf_counter()
        out["server_timing"] = {
            "infer_ms": infer_ms,
            "queue_ms": (t2 - t1) * 1e3 - infer_ms,
            "filter_ms": (t3 - t2) * 1e3,
            "total_ms": (t3 - t0) * 1e3,
            "prev_total_ms": prev_total_ms,
            "batch_size": batch_size,
        }
        return packb(out)

    # ---- lifecycle ----------------------------------------------------------------------------------
    async def serve(self) -> None:
        """Runs until `stop()` is called (or the task is cancelled)."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(
            self._handle,
            self.config.host,
            self.config.port,
            process_request=self._process_request,
            compression=None,
            max_size=2 * self.max_request_bytes,
            max_queue=4,
        ) as server:
            self._server = server
            self.port = int(server.sockets[0].getsockname()[1])
            logger.info("serving on ws://%s:%d", self.config.host, self.port)
            self._ready.set()
            await self._stop.wait()

    def serve_forever(self) -> None:
        """Blocks serving until interrupted (Ctrl-C)."""
        try:
            asyncio.run(self.serve())
        finally:
            self.batcher.shutdown()

    def start(self, *, timeout: float = 10.0) -> int:
        """Serves from a background thread; returns the bound port once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("server already started")
        failure: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self.serve())
            except BaseException as e:  # reported to the caller of start(), e.g. port already in use
                failure.append(e)
                self._ready.set()

        self._thread = threading.Thread(target=run, name="vla-serve", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(
                f"server did not start within {timeout} s on {self.config.host}:{self.config.port}"
            )
        if failure:
            self._thread = None
            raise RuntimeError(
                f"server failed to start on {self.config.host}:{self.config.port}: {failure[0]}"
            )
        return self.port

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stops a server started with `start()` (or from another thread) and waits for it."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.batcher.shutdown()
