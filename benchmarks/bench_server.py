"""Server load test on loopback: N concurrent clients for S seconds against one checkpoint.

    python benchmarks/bench_server.py [CHECKPOINT_DIR] [--clients 16,32] [--seconds 10] [--backend onnx]

Reports throughput (requests/s) and per-request latency percentiles for every client count, then one
JSON line. Model calls are serialized on one worker thread, so throughput is bounded by 1 / model
latency and tail latency grows with the number of clients; the event loop itself stays responsive.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from vla.runtime.bench import example_request, time_server, untrained_checkpoint
from vla.runtime.engine import Engine, EngineConfig


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", nargs="?", default=None)
    parser.add_argument("--clients", default="16,32")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--backend", default="eager")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    summary: dict[str, object] = {
        "benchmark": "server_load",
        "backend": args.backend,
        "seconds": args.seconds,
    }
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint
        if ckpt is None:
            print("no checkpoint given: serving an UNTRAINED default-preset policy built in a temp dir")
            ckpt = untrained_checkpoint(Path(tmp) / "untrained")
        engine = Engine.from_checkpoint(ckpt, EngineConfig(backend=args.backend, num_threads=args.threads))
        req = example_request(engine)
        print(f"{'clients':>8} {'req/s':>8} {'median ms':>10} {'p95 ms':>9} {'p99 ms':>9} {'requests':>9}")
        for n in (int(c) for c in args.clients.split(",") if c):
            load = time_server(engine, req, calls=20, clients=n, seconds=args.seconds)["load"]
            print(
                f"{n:>8} {load['throughput_rps']:>8.0f} {load['median']:>10.1f} {load['p95']:>9.1f} "
                f"{load['p99']:>9.1f} {load['requests']:>9}"
            )
            summary[f"c{n}_rps"] = load["throughput_rps"]
            summary[f"c{n}_p99_ms"] = load["p99"]
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
