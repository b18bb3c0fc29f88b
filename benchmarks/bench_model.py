"""Per-call latency and training throughput of policy presets (same as `vla bench model`).

    python benchmarks/bench_model.py [--preset default --preset act | --all] [--threads 2]
                                     [--calls 200] [--batch-size 64] [--train-steps 20] [--set k=v ...]

Shapes are the tabletop suite's: two 96 x 96 cameras, 22-D state, 7-D actions, random inputs and
untrained weights (speed does not depend on what the weights learned). Prints a table and ends with
one JSON line (forward_ms_median, forward_ms_p95, train_samples_per_s, params, ...).
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from vla.models.bench import ModelBenchConfig, format_table, run_model_bench
from vla.presets import list_presets


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", action="append", default=None, help="preset to time (repeatable)")
    parser.add_argument("--all", action="store_true", help="time every preset")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--set", action="append", default=[], dest="overrides", help="config override k=v")
    args = parser.parse_args()
    names = list_presets() if args.all else (args.preset or ["default"])
    rows = [
        run_model_bench(
            ModelBenchConfig(
                preset=n,
                overrides=tuple(args.overrides),
                threads=args.threads,
                calls=args.calls,
                batch_size=args.batch_size,
                train_steps=args.train_steps,
            )
        )
        for n in names
    ]
    print(format_table(rows))
    print(json.dumps(rows[0] if len(rows) == 1 else {"presets": rows}, sort_keys=True))


if __name__ == "__main__":
    main()
