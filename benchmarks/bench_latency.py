"""Per-call latency of every engine backend and over the loopback server (same as `vla bench latency`).

    python benchmarks/bench_latency.py [CHECKPOINT_DIR] [--calls 200] [--threads 1]

Without a checkpoint it times an untrained default-preset policy built in a temp dir. Prints a table
and ends with one JSON line (eager_ms_median, server_ms_median, ...).
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from vla.runtime.bench import LatencyConfig, format_table, run_latency


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", nargs="?", default=None)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backends", default="eager,compile,int8,onnx")
    parser.add_argument("--server-calls", type=int, default=200)
    parser.add_argument("--load-clients", type=int, default=16)
    parser.add_argument("--load-seconds", type=float, default=5.0)
    args = parser.parse_args()
    cfg = LatencyConfig(
        backends=tuple(b for b in args.backends.split(",") if b),
        calls=args.calls,
        num_threads=args.threads,
        server_calls=args.server_calls,
        load_clients=args.load_clients,
        load_seconds=args.load_seconds,
    )
    if args.checkpoint is None:
        print("no checkpoint given: timing an UNTRAINED default-preset policy built in a temp dir")
    rows, summary = run_latency(args.checkpoint, cfg)
    print(format_table(rows))
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    main()
