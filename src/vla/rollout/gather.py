"""One model shared by the episodes running side by side in a process, with their calls gathered.

Several episodes ("lanes", one thread each) step their own envs with their own controllers (chunk
broker, history, safety filter: all per env, unchanged). Their controllers call `SharedModel.predict`
with a batch of one; the call waits until every lane with an open episode is waiting too, then one
model call runs on the whole batch [K, T, ...] and each lane gets its row back. With one lane the call
runs at once, so the same code serves batched and unbatched rollouts. Because a chunking controller
calls the model only every few steps, lanes that started together fall into lockstep: they re-plan at
the same step and wait for each other only then.

A lane opens its episode (`open`) before the first call and closes it (`close`) when it ends; a lane
between episodes is not waited for. Calls are serialized (one model call at a time); `estimate` (a
policy's feature estimates, once per episode) is not gathered.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from vla.runtime.batching import stack
from vla.types import ActionChunk, Observation


@dataclass
class _Request:
    obs: Observation
    thread: int
    chunk: ActionChunk | None = None
    ms: float = 0.0
    error: BaseException | None = None
    done: bool = False
    batch: int = 0


def _row(chunk: ActionChunk, i: int) -> ActionChunk:
    conf = None if chunk.confidence is None else np.asarray(chunk.confidence)[i : i + 1]
    return ActionChunk(actions=np.asarray(chunk.actions)[i : i + 1], confidence=conf, info=chunk.info)


class SharedModel:
    """A policy behind a call gatherer (see the module docstring).

    Args:
        policy: anything with `predict(Observation [B, ...]) -> ActionChunk [B, H, A]`, `config` and
            `embodiment` (a `vla.models` policy); `estimate` is passed through when it has one.

    Attributes:
        calls: model calls made; requests: requests served (requests / calls is the mean batch).
    """

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.config = policy.config
        self.embodiment = policy.embodiment
        self.calls = 0
        self.requests = 0
        self._cv = threading.Condition()
        self._model_lock = threading.Lock()
        self._open: Counter[int] = Counter()  # thread id -> episodes it has open (actor + labeller)
        self._pending: list[_Request] = []
        self._running = False

    # ---- episodes ------------------------------------------------------------------------------------
    def open(self) -> None:
        """Marks the calling thread as running an episode: gathered calls wait for it."""
        with self._cv:
            self._open[threading.get_ident()] += 1

    def close(self) -> None:
        """Ends the calling thread's episode (no-op without an open one); waiting calls may run now."""
        with self._cv:
            tid = threading.get_ident()
            if self._open[tid] > 0:
                self._open[tid] -= 1
            if self._open[tid] <= 0:
                del self._open[tid]
            self._drive()

    # ---- model calls ---------------------------------------------------------------------------------
    def predict(self, obs: Observation) -> ActionChunk:
        """This request's chunk [1, H, A], computed in one model call with every lane's request."""
        chunk, _ = self.predict_timed(obs)
        return chunk

    def predict_timed(self, obs: Observation) -> tuple[ActionChunk, float]:
        """`predict`, and the duration in ms of the model call that served it."""
        if not obs.batched or obs.state.shape[0] != 1:
            raise ValueError(
                f"SharedModel.predict takes one request, state [1, T, S]; got shape {obs.state.shape}"
            )
        req = _Request(obs=obs, thread=threading.get_ident())
        with self._cv:
            self._pending.append(req)
            self._drive()
            while not req.done:
                self._cv.wait()
                self._drive()
        if req.error is not None:
            raise req.error
        assert req.chunk is not None
        return req.chunk, req.ms

    @property
    def estimates(self) -> tuple[str, ...]:
        """The episode features the policy estimates itself (`Policy.estimates`)."""
        return tuple(getattr(self.policy, "estimates", ()) or ())

    def estimate(self, obs: Observation) -> dict[str, np.ndarray]:
        """The policy's feature estimates (not gathered: once per episode)."""
        with self._model_lock:
            return dict(self.policy.estimate(obs))

    def _drive(self) -> None:
        """Runs the pending batch when every open episode is waiting in it (caller holds `_cv`)."""
        while not self._running and self._pending:
            waiting = {r.thread for r in self._pending}
            if not set(self._open) <= waiting:
                return  # some lane is still stepping its env; it will call or close soon
            batch, self._pending = self._pending, []
            self._running = True
            self._cv.release()
            try:
                self._call(batch)
            finally:
                self._cv.acquire()
                self._running = False
                self._cv.notify_all()

    def _call(self, batch: list[_Request]) -> None:
        """One model call per group of stackable requests (the same features given by each)."""
        groups: dict[frozenset[str], list[_Request]] = {}
        for r in batch:
            groups.setdefault(frozenset(r.obs.features), []).append(r)
        for reqs in groups.values():
            try:
                obs = reqs[0].obs if len(reqs) == 1 else stack([r.obs for r in reqs])
                with self._model_lock:
                    t0 = time.perf_counter()
                    chunk = self.policy.predict(obs)
                    ms = (time.perf_counter() - t0) * 1e3
                n = int(np.asarray(chunk.actions).shape[0])
                if n != len(reqs):
                    raise RuntimeError(f"policy returned {n} chunks for a batch of {len(reqs)}")
                self.calls += 1
                self.requests += len(reqs)
                for i, r in enumerate(reqs):
                    r.chunk, r.ms, r.batch = _row(chunk, i), ms, len(reqs)
            except Exception as e:  # every request of the failed call gets the error (recovery retries)
                for r in reqs:
                    r.error = e
            for r in reqs:
                r.done = True
