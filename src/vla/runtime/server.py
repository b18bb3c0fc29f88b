"""A websocket policy server that speaks openpi's wire protocol (so `openpi-client` works unchanged).

Protocol (see `protocol.py` for arrays, `schema.py` for request keys):
    connect     -> the server sends one msgpack frame: the metadata (`PolicyServer.metadata()`), which
                   includes the safety limits in force (`safety_limits`).
    request     <- one binary msgpack frame: the observation map (+ optional request_id / reset / estop).
    reply       -> one binary msgpack frame: {"actions": float32 [H, A] (robot units, after the safety
                   filter), "server_timing": {ms}, "safety": {...}, "request_id" if sent, "confidence"}.
    bad request -> one TEXT frame with the reason; the connection stays usable.
    plan        <- {"plan": {"instruction", "scene", "done"?}} to a server with a planner: the reply is
                   the plan or the planner's refusal (`vla.planning.service`, docs/planning.md).
HTTP: `GET /healthz` answers 200 "ok". With a token, the upgrade needs `Authorization: Api-Key <token>`
(openpi's client sends that for `api_key=`; `Bearer <token>` is accepted too), else 401 before upgrade.

Every connection is one robot: it gets its own safety filter (rate limits, latched e-stop), observation
history and recovery state, so no client can change another's safety state. Releasing a latched e-stop
needs the release token (`ServeConfig.estop_token`, else the API token) and is logged with who, when
and why (`PolicyServer.estop_log`, and the "vla.runtime.server" logger at WARNING).

Differences from openpi's server that users asked for: inference runs in a worker thread (one model call
at a time), so the event loop keeps serving pings, health checks and other clients; replies echo a
request id; the metadata carries the observation schema and the safety limits; frames are validated,
never unpickled.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
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
from vla.runtime.recovery import Recovery, unfiltered_reasons
from vla.runtime.refusal import refusal_reply
from vla.runtime.safety import SafetyFilter
from vla.runtime.schema import PolicySpec, Request
from vla.runtime.serve_config import ServeConfig

logger = logging.getLogger(__name__)


@dataclass
class Session:
    """The state of one connection (one robot); nothing here is shared with another connection.

    Attributes:
        id: connection number (1, 2, ...) in the server's log lines.
        peer: the client's address "host:port".
        history: frame history (and a grounding policy's held scene estimate).
        safety: this robot's safety filter (rate limits, latched e-stop), None in unsafe mode.
        recovery: this robot's recovery policy and its stats.
        verdicts: this robot's instruction verdict, judged on the instruction's first frame and kept
            until it changes or the client resets (`vla.models.grounding_check`); None without a check.
    """

    id: int
    peer: str
    history: ObservationHistory
    safety: SafetyFilter | None
    recovery: Recovery
    verdicts: Any = None
    prev_total_ms: float = 0.0


class PolicyServer:
    """Serves one policy to any number of websocket clients, each with its own safety state.

    Args:
        policy: anything with `predict(Observation) -> ActionChunk` (an `Engine`, a policy).
        spec: what the policy consumes and produces (`Engine.spec`).
        config: network and safety settings.
        planner: a `vla.planning` planner that answers `plan` messages (None: they are refused).

    Attributes:
        sessions: the open connections by id; estop_log: the last e-stop latches / releases / refused
            releases (dicts with "event", "connection", "peer", "operator", "reason", "time").
    """

    def __init__(
        self,
        policy: PolicyLike,
        spec: PolicySpec,
        config: ServeConfig | None = None,
        *,
        planner: Any = None,
        instruction_check: Any = None,
    ) -> None:
        self.policy = policy
        # The checkpoint's `GroundingCheck` (vla.models.grounding_check; an `InstructionCheck` alone
        # also works): a refused prompt gets a hold chunk with reason "ungroundable_instruction" and
        # the model is not called. Each session keeps its own verdict, so one client's refusal never
        # changes another's replies.
        self.instruction_check = instruction_check
        self.plans: Any = None
        if planner is not None:
            from vla.planning.service import PlanService

            self.plans = PlanService(planner)
        self.spec = spec
        self.config = config or ServeConfig()
        self.schema = spec.schema()
        hi, wi = spec.image_size
        request_bytes = len(spec.cameras) * hi * wi * 3 + 8 * spec.embodiment.state_dim + 4096
        self.max_request_bytes = self.config.max_request_bytes or max(1 << 20, 4 * request_bytes)
        # Built once up front so a bad safety config fails here, and to announce the limits in force.
        self.safety_limits: dict[str, Any] | None = None
        if not self.config.unsafe_no_filter:
            self.safety_limits = self._new_filter().describe()
        else:
            logger.warning("policy server runs WITHOUT the safety filter (unsafe_no_filter)")
        if self.config.token is None and self.config.host not in ("127.0.0.1", "localhost", "::1"):
            logger.warning(
                "serving on %s without a token: anyone who reaches it can drive the robot", self.config.host
            )
        self.stats: dict[str, int] = {"connections": 0, "requests": 0, "replies": 0, "errors": 0}
        self.sessions: dict[int, Session] = {}
        self.estop_log: deque[dict[str, Any]] = deque(maxlen=1000)
        self._ids = itertools.count(1)
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

    def _new_filter(self) -> SafetyFilter:
        return SafetyFilter(self.spec.embodiment, self.config.safety)

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
            "safety_filter": self.safety_limits is not None,
            "safety_limits": self.safety_limits,
            "estop": {
                "scope": "connection",
                "release": "estop_token" if self.config.release_token is not None else "not over the wire",
            },
            "recovery": {
                "max_retries": self.config.recovery.max_retries,
                "latch_estop": self.config.recovery.latch_estop,
            },
            "max_request_bytes": self.max_request_bytes,
            "planner": None if self.plans is None else self.plans.metadata(),
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

    def _new_verdicts(self) -> Any:
        if self.instruction_check is None:
            return None
        from vla.models.grounding_check import FirstFrameVerdict, GroundingCheck

        return FirstFrameVerdict(GroundingCheck.of(self.instruction_check))

    # ---- websocket side -----------------------------------------------------------------------------
    def _new_session(self, conn: ServerConnection) -> Session:
        addr = conn.remote_address
        peer = f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and len(addr) >= 2 else str(addr)
        safety = None if self.config.unsafe_no_filter else self._new_filter()
        return Session(
            id=next(self._ids),
            peer=peer,
            # A policy's feature estimates are held from the first frame after a connect or reset.
            history=ObservationHistory(
                self.spec.obs_horizon,
                estimate=feature_estimator(self.policy),
                names=tuple(getattr(self.policy, "estimates", ()) or ()),
            ),
            safety=safety,
            recovery=Recovery(self.config.recovery, safety=safety),
            verdicts=self._new_verdicts(),
        )

    async def _handle(self, conn: ServerConnection) -> None:
        self.stats["connections"] += 1
        session = self._new_session(conn)
        self.sessions[session.id] = session
        logger.info("connection #%d from %s", session.id, session.peer)
        try:
            await conn.send(self._metadata_frame)
            async for message in conn:
                t0 = time.perf_counter()
                self.stats["requests"] += 1
                try:
                    reply = await self._answer(message, session, t0)
                except ProtocolError as e:
                    self.stats["errors"] += 1
                    await conn.send(f"bad request: {e}")
                    continue
                except Exception as e:  # a failure must not take the server down
                    self.stats["errors"] += 1
                    logger.exception("inference failed")
                    await conn.send(f"inference failed: {type(e).__name__}: {e}")
                    continue
                await conn.send(reply)
                self.stats["replies"] += 1
                session.prev_total_ms = (time.perf_counter() - t0) * 1e3
        except ConnectionClosed:
            pass
        finally:
            self.sessions.pop(session.id, None)
            if session.safety is not None and session.safety.estopped:
                logger.warning(
                    "connection #%d (%s) closed with its e-stop latched (%s)",
                    session.id,
                    session.peer,
                    session.safety.estop_reason,
                )

    def _audit(self, event: str, session: Session, req: Request) -> dict[str, Any]:
        entry = {
            "event": event,
            "connection": session.id,
            "peer": session.peer,
            "operator": req.operator or "",
            "reason": req.estop_reason or "",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self.estop_log.append(entry)
        return entry

    def _estop_request(self, session: Session, req: Request) -> None:
        """Latches, or (with the release token) releases, this connection's e-stop."""
        filt = session.safety
        if req.estop is None:
            return
        if filt is None:  # silently ignoring a stop request would be worse than refusing it
            raise ProtocolError(
                "this server runs without the safety filter (--unsafe-no-filter) and cannot e-stop: "
                "stop the robot on its side"
            )
        who = f"connection #{session.id} ({session.peer}, operator '{req.operator or 'unnamed'}')"
        if req.estop:
            self._audit("latch", session, req)
            filt.estop(f"client request from {who}: {req.estop_reason or 'no reason given'}")
            return
        secret = self.config.release_token
        if secret is None:
            self._audit("release_refused", session, req)
            logger.warning("e-stop release REFUSED for %s: the server has no release token", who)
            raise ProtocolError(
                "e-stop release refused: this server has no release token (start it with --token or "
                "--estop-token); the e-stop stays latched for this connection"
            )
        if req.estop_token is None or not hmac.compare_digest(req.estop_token.encode(), secret.encode()):
            self._audit("release_refused", session, req)
            logger.warning("e-stop release REFUSED for %s: missing or wrong estop_token", who)
            raise ProtocolError("e-stop release refused: missing or wrong 'estop_token'")
        if filt.estopped:
            self._audit("release", session, req)
            filt.release_estop(by=who, reason=req.estop_reason or "")

    async def _answer(self, message: str | bytes, session: Session, t0: float) -> bytes:
        if isinstance(message, str):
            raise ProtocolError("expected a binary msgpack frame (the observation map), got a text frame")
        if len(message) > self.max_request_bytes:
            raise ProtocolError(
                f"frame of {len(message)} bytes exceeds max_request_bytes={self.max_request_bytes}"
            )
        msg = unpackb(message)
        if isinstance(msg, dict) and "plan" in msg:
            if self.plans is None:
                raise ProtocolError("this server has no planner: start it with `vla serve --planner NAME`")
            return packb(await self.plans.answer(msg))
        req = self.schema.parse(msg)
        out: dict[str, Any] = {}
        if req.request_id is not None:
            out["request_id"] = req.request_id
        self._estop_request(session, req)
        filt = session.safety
        if req.reset:
            session.history.reset()
            if filt is not None:
                filt.reset()  # rate-limit memory only: a latched e-stop stays
            if session.verdicts is not None:
                session.verdicts.reset()
        if req.observation is None:
            out.update(reset=req.reset, estop=filt is not None and filt.estopped)
            return packb(out)
        state = req.observation.state
        batch = session.history.push(req.observation)
        if session.verdicts is not None and filt is not None:
            verdict = session.verdicts(str(req.observation.instruction), req.observation.images)
            if not verdict.ok:
                logger.info("connection #%d: holding, %s", session.id, verdict.reason)
                return packb({**out, **refusal_reply(filt, state, verdict.reason, self.spec.action_horizon)})
        t1 = time.perf_counter()
        h, a = self.spec.action_horizon, self.spec.action_dim
        infer_ms, filter_ms, batch_size, error = 0.0, 0.0, 0, None
        confidence: float | None = None
        actions = np.full((h, a), np.nan, np.float32)
        attempts = session.recovery.attempts()
        for _ in attempts:  # the recovery policy of vla.runtime.recovery (the same as SafeController's)
            try:
                chunk, call_ms, batch_size = await self.batcher.submit(batch)
                infer_ms += call_ms
                raw = np.asarray(chunk.actions)
                if raw.shape != (1, h, a):
                    raise RuntimeError(
                        f"policy returned actions of shape {list(raw.shape)}, expected [1, {h}, {a}]"
                    )
                error = None
                confidence = (
                    None if chunk.confidence is None else float(np.asarray(chunk.confidence).reshape(-1)[0])
                )
                raw = raw[0]
            except Exception as e:  # a failed model call is a failed attempt, like in SafeController
                session.recovery.stats["policy_error"] += 1
                error = f"{type(e).__name__}: {e}"
                logger.warning("connection #%d: policy failed: %s", session.id, error)
                raw, confidence = np.full((h, a), np.nan, np.float32), None
            if filt is None:
                actions = raw.astype(np.float32)
                attempts.judge(unfiltered_reasons(raw, error))
            else:
                tf = time.perf_counter()
                actions = filt.filter_chunk(raw, state, confidence=confidence, prev_action=req.prev_action)
                filter_ms += (time.perf_counter() - tf) * 1e3
                attempts.judge(filt.last_reasons)
        if attempts.exhausted and filt is None:
            raise RuntimeError(
                f"no finite chunk after {attempts.retries + 1} attempts (last error: {error}); "
                "no safety filter to hold (unsafe mode)"
            )
        t2 = time.perf_counter()
        safety: dict[str, Any] = {"enabled": filt is not None, "retries": attempts.retries}
        if filt is not None:
            safety.update(
                interventions=list(filt.last_reasons),
                estop=filt.estopped,
                recovery_exhausted=attempts.exhausted,  # every attempt failed: the reply holds
            )
            if attempts.exhausted and error is not None:
                safety["error"] = error
        out["actions"] = actions  # (H, A)
        if confidence is not None:
            out["confidence"] = confidence
        out["safety"] = safety
        t3 = time.perf_counter()
        out["server_timing"] = {
            "infer_ms": infer_ms,  # model calls of every attempt
            "queue_ms": max(0.0, (t2 - t1) * 1e3 - infer_ms - filter_ms),
            "filter_ms": filter_ms + (t3 - t2) * 1e3,
            "total_ms": (t3 - t0) * 1e3,
            "prev_total_ms": session.prev_total_ms,
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
            self._shutdown_workers()

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
        self._shutdown_workers()

    def _shutdown_workers(self) -> None:
        self.batcher.shutdown()
        if self.plans is not None:
            self.plans.shutdown()
