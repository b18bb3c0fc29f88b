"""Opportunistic request batching for the policy server.

Model calls run one at a time on a worker thread. Requests that arrive while a call is running queue up
and all go into the next call as one batch (up to `max_batch`), so with many robots on one server the
throughput grows with the batch size a CPU handles well, while a lone client sees no added latency:
nothing ever waits for a batch to fill. Must be used from one asyncio event loop (the server's).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable

import numpy as np

from vla.types import ActionChunk, Observation


def stack(observations: list[Observation]) -> Observation:
    """Concatenates batched observations ([1, T, ...] each) along the batch axis, held feature
    estimates included (the connections of one policy all hold the same features, or none)."""
    first = observations[0]
    names = set(first.features)
    if any(set(o.features) != names for o in observations):
        raise ValueError("cannot batch observations that carry different features")
    return Observation(
        images={
            k: np.concatenate([o.images[k] for o in observations]) for k in first.images
        },  # (B, T, Hi, Wi, 3)
        state=np.concatenate([o.state for o in observations]),  # (B, T, S)
        instruction=[s for o in observations for s in o.instruction],
        features={k: np.concatenate([np.asarray(o.features[k]) for o in observations]) for k in names},
    )


class InferenceBatcher:
    """Serializes model calls on one worker thread and merges the requests that queue up meanwhile.

    Args:
        predict: the model call (Observation [B, T, ...] -> ActionChunk [B, H, A]).
        max_batch: largest number of requests merged into one call (1 disables batching).
    """

    def __init__(self, predict: Callable[[Observation], ActionChunk], *, max_batch: int = 8) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.predict = predict
        self.max_batch = max_batch
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="vla-infer")
        self.lock = threading.Lock()  # also guards direct use of the model from other threads
        self.calls = 0
        self.batched_requests = 0
        self._pending: list[tuple[Observation, asyncio.Future[tuple[ActionChunk, float, int]]]] = []
        self._busy = False

    async def submit(self, obs: Observation) -> tuple[ActionChunk, float, int]:
        """Returns this request's chunk ([1, H, A]), the model call's duration (ms) and its batch size."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[ActionChunk, float, int]] = loop.create_future()
        self._pending.append((obs, fut))
        self._start_next(loop)
        return await fut

    def _start_next(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._busy or not self._pending:
            return
        items = self._pending[: self.max_batch]
        del self._pending[: self.max_batch]
        self._busy = True
        job = loop.run_in_executor(self.executor, self._call, [o for o, _ in items])

        def done(f: asyncio.Future[tuple[ActionChunk, float]]) -> None:
            self._busy = False
            try:
                chunk, ms = f.result()
            except Exception as e:  # every request of the failed batch gets the error
                for _, fut in items:
                    if not fut.done():
                        fut.set_exception(e)
            else:
                for i, (_, fut) in enumerate(items):
                    conf = None if chunk.confidence is None else chunk.confidence[i : i + 1]
                    if not fut.done():
                        fut.set_result(
                            (ActionChunk(actions=chunk.actions[i : i + 1], confidence=conf), ms, len(items))
                        )
            self._start_next(loop)

        job.add_done_callback(done)

    def _call(self, observations: list[Observation]) -> tuple[ActionChunk, float]:
        obs = observations[0] if len(observations) == 1 else stack(observations)
        with self.lock:
            t = time.perf_counter()
            chunk = self.predict(obs)
            ms = (time.perf_counter() - t) * 1e3
        self.calls += 1
        self.batched_requests += len(observations)
        b = len(observations)
        if np.asarray(chunk.actions).shape[0] != b:
            raise RuntimeError(
                f"policy returned {np.asarray(chunk.actions).shape[0]} chunks for a batch of {b}"
            )
        return chunk, ms

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
