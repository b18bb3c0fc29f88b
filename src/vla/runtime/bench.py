"""Latency and throughput measurements of the engine backends and of the server on loopback.

Used by `vla bench latency` and `benchmarks/bench_latency.py` / `benchmarks/bench_server.py`. Every figure
is wall-clock per call after warm-up: median, p95 and p99 (tails matter for a 10 Hz control loop on a
shared CPU, see docs/platform.md#threads), never a mean alone.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vla.runtime.client import PolicyClient
from vla.runtime.engine import BACKENDS, Engine, EngineConfig
from vla.runtime.server import PolicyServer, ServeConfig
from vla.types import Observation


@dataclass(frozen=True)
class LatencyConfig:
    """What `run_latency` times.

    Attributes:
        backends: engine backends to time.
        calls: timed calls per backend (after `warmup` untimed ones).
        num_threads: intra-op threads of every engine.
        server_calls: requests over the loopback server (0 skips the server).
        load_clients / load_seconds: concurrent clients and duration of the load run (0 clients skips it).
        server_backend: the engine backend behind the server.
    """

    backends: tuple[str, ...] = BACKENDS
    calls: int = 200
    warmup: int = 10
    num_threads: int = 1
    server_calls: int = 200
    load_clients: int = 16
    load_seconds: float = 3.0
    server_backend: str = "eager"

    def __post_init__(self) -> None:
        bad = [b for b in (*self.backends, self.server_backend) if b not in BACKENDS]
        if bad:
            raise ValueError(f"unknown backends {bad}; expected some of {BACKENDS}")
        if self.calls < 1 or self.warmup < 0 or self.server_calls < 0 or self.load_clients < 0:
            raise ValueError("calls must be >= 1 and warmup/server_calls/load_clients >= 0")


def percentiles(seconds: list[float]) -> dict[str, float]:
    """median / p95 / p99 / max of a list of durations, in milliseconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    return {
        "median": float(np.median(ms)),
        "p95": float(np.percentile(ms, 95)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
    }


def untrained_checkpoint(directory: str | Path, *, preset: str = "default") -> Path:
    """Writes an untrained `preset` policy for the default suite's robot (synthetic stats) into `directory`."""
    from vla.models.bench import build_for_bench
    from vla.presets import get_preset

    policy = build_for_bench(get_preset(preset))
    return policy.save_pretrained(directory, metadata={"note": "untrained, for benchmarks"})


def example_request(engine: Engine, seed: int = 0) -> dict[str, Any]:
    """A valid server request for `engine` (random images, a mid-range state inside the workspace)."""
    rng = np.random.default_rng(seed)
    spec = engine.spec
    hi, wi = spec.image_size
    emb = spec.embodiment
    state = np.zeros(emb.state_dim, np.float32)
    for name, value in (
        ("joint_pos", (np.asarray(emb.joint_low) + np.asarray(emb.joint_high)) / 2),
        ("ee_pos", (np.asarray(emb.workspace_low) + np.asarray(emb.workspace_high)) / 2),
    ):
        try:
            sl = emb.state_slice(name)
        except KeyError:
            continue
        if sl.stop - sl.start == len(value):
            state[sl] = value
    req: dict[str, Any] = {
        f"images/{c}": rng.integers(0, 256, (hi, wi, 3), dtype=np.uint8) for c in spec.cameras
    }
    req["state"] = state
    req["prompt"] = "put the red block in the bowl"
    return req


def _observation(req: dict[str, Any], cameras: tuple[str, ...]) -> Observation:
    return Observation(
        images={c: req[f"images/{c}"] for c in cameras}, state=req["state"], instruction=req["prompt"]
    )


def time_engine(engine: Engine, obs: Observation, *, calls: int, warmup: int) -> dict[str, float]:
    """Per-call latency of `engine.predict` (ms percentiles)."""
    for _ in range(warmup):
        engine.predict(obs)
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        engine.predict(obs)
        times.append(time.perf_counter() - t)
    return percentiles(times)


def time_server(
    engine: Engine, req: dict[str, Any], *, calls: int, clients: int, seconds: float
) -> dict[str, Any]:
    """Round-trip latency over a loopback server (one client), then a load run with `clients` threads."""
    server = PolicyServer(engine, engine.spec, ServeConfig(host="127.0.0.1", port=0))
    port = server.start()
    out: dict[str, Any] = {}
    try:
        with PolicyClient("127.0.0.1", port) as client:
            for _ in range(10):
                client.infer(req)
            times = []
            for _ in range(calls):
                t = time.perf_counter()
                client.infer(req)
                times.append(time.perf_counter() - t)
        out["server"] = percentiles(times)
        if clients:
            out["load"] = _load(port, req, clients=clients, seconds=seconds)
    finally:
        server.stop()
    return out


def _load(port: int, req: dict[str, Any], *, clients: int, seconds: float) -> dict[str, float]:
    times: list[float] = []
    lock = threading.Lock()
    errors: list[str] = []
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        try:
            with PolicyClient("127.0.0.1", port, timeout=60) as c:
                while time.perf_counter() < deadline:
                    t = time.perf_counter()
                    c.infer(req)
                    with lock:
                        times.append(time.perf_counter() - t)
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=seconds + 60)
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"load run: {len(errors)} clients failed, first: {errors[0]}")
    return {
        "clients": clients,
        "requests": len(times),
        "throughput_rps": len(times) / wall,
        **percentiles(times),
    }


def run_latency(
    checkpoint: str | Path | None, config: LatencyConfig
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Times every backend and the server. Returns table rows and the summary (the JSON line).

    Args:
        checkpoint: a checkpoint directory; None builds an untrained default-preset policy in a temp dir.
        config: what to time.
    """
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"benchmark": "latency", "threads": config.num_threads, "calls": config.calls}
    with tempfile.TemporaryDirectory(prefix="vla-bench-") as tmp:
        if checkpoint is None:
            checkpoint = untrained_checkpoint(Path(tmp) / "untrained")
            summary["checkpoint"] = "untrained default preset (built in a temp dir)"
        else:
            summary["checkpoint"] = str(checkpoint)
        engines: dict[str, Engine] = {}
        for backend in config.backends:
            t = time.perf_counter()
            cfg = EngineConfig(backend=backend, num_threads=config.num_threads)
            try:
                engine = Engine.from_checkpoint(checkpoint, cfg)
                req = example_request(engine)
                obs = _observation(req, engine.spec.cameras)
                engine.predict(obs)  # compile / first-call costs are reported as setup time
            except ValueError as e:  # e.g. ONNX export of a sampling head
                rows.append({"what": backend, "error": str(e)})
                continue
            setup = time.perf_counter() - t
            stats = time_engine(engine, obs, calls=config.calls, warmup=config.warmup)
            rows.append({"what": backend, "setup_s": setup, **stats})
            summary[f"{backend}_ms_median"] = stats["median"]
            summary[f"{backend}_ms_p99"] = stats["p99"]
            engines[backend] = engine
        if config.server_calls:
            sb = config.server_backend
            engine = engines.get(sb) or Engine.from_checkpoint(
                checkpoint, EngineConfig(backend=sb, num_threads=config.num_threads)
            )
            req = example_request(engine)
            res = time_server(
                engine,
                req,
                calls=config.server_calls,
                clients=config.load_clients,
                seconds=config.load_seconds,
            )
            rows.append({"what": f"server ({sb}, loopback)", **res["server"]})
            summary["server_ms_median"] = res["server"]["median"]
            summary["server_ms_p99"] = res["server"]["p99"]
            if "load" in res:
                load = res["load"]
                rows.append({"what": f"server load, {load['clients']} clients", **load})
                summary["load_clients"] = load["clients"]
                summary["load_throughput_rps"] = load["throughput_rps"]
                summary["load_ms_p99"] = load["p99"]
    return rows, summary


def format_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width text table of `run_latency` rows."""
    lines = [f"{'what':<28} {'median ms':>10} {'p95 ms':>9} {'p99 ms':>9} {'max ms':>9}  notes"]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['what']:<28} {'-':>10} {'-':>9} {'-':>9} {'-':>9}  {r['error']}")
            continue
        note = f"setup {r['setup_s']:.1f} s" if "setup_s" in r else ""
        if "throughput_rps" in r:
            note = f"{r['throughput_rps']:.0f} req/s over {r['requests']} requests"
        lines.append(
            f"{r['what']:<28} {r['median']:>10.2f} {r['p95']:>9.2f} {r['p99']:>9.2f} {r['max']:>9.2f}  {note}"
        )
    return "\n".join(lines)
