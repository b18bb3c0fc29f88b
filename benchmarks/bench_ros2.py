"""The vla ROS 2 node over DDS on loopback: latency and rate, and success through ROS 2 vs `vla eval`.

    python benchmarks/bench_ros2.py [--checkpoint DIR] [--seconds 15] [--compare --episodes 10]

1. Latency (image published -> command received), the controller's time per step and the node's period
   jitter at 20 Hz with the checkpoint's cameras (two 96x96 for the tabletop Panda), for the "timer"
   and "frames" triggers, idle and with one busy process per core (`vla bench ros2`).
2. With --compare: the simulated tabletop robot on the ROS 2 graph (`vla ros2 sim`) driven by the node
   (`vla ros2 node`, its own process) on --episodes seeds per family, then `vla eval` on the same
   checkpoint and seeds; prints both success rates with 95% intervals and how many episodes agree.

Run it alone on the machine (flock /tmp/vla-heavy.lock ...). Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def latency(checkpoint: str | None, seconds: float) -> dict:
    from vla.runtime.ros2.bench import Ros2BenchConfig, format_table, run_bench

    out = {}
    for trigger in ("timer", "frames"):
        summary = run_bench(checkpoint, Ros2BenchConfig(rate_hz=20.0, seconds=seconds, trigger=trigger))
        print(format_table(summary), flush=True)
        out[trigger] = summary
    return out


def compare(checkpoint: str, episodes: int, families: str, seed: int, domain_id: int) -> dict:
    from vla.config import EvalConfig
    from vla.evaluate import evaluate, wilson_interval

    with tempfile.TemporaryDirectory(prefix="vla-ros2-compare-") as tmp:
        results = Path(tmp) / "ros2.json"
        node = subprocess.Popen(
            [sys.executable, "-m", "vla.cli.main", "ros2", "node", "--checkpoint", checkpoint, "--threads", "1",
             "--domain-id", str(domain_id), "--transport", "dds"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        t0 = time.perf_counter()
        try:
            subprocess.run(
                [sys.executable, "-m", "vla.cli.main", "ros2", "sim", "tabletop", "--families", families,
                 "--episodes", str(episodes), "--seed", str(seed), "--domain-id", str(domain_id), "--out", str(results)],
                check=True,
            )  # fmt: skip
        finally:
            node.terminate()
            node.wait(timeout=30)
        ros_s = time.perf_counter() - t0
        ros = json.loads(results.read_text())
        t0 = time.perf_counter()
        ev = evaluate(
            EvalConfig(
                checkpoint=checkpoint,
                families=tuple(families.split(",")),
                episodes_per_task=episodes,
                seed=seed,
                videos_per_family=0,
                out=str(Path(tmp) / "eval"),
            )
        )
        eval_s = time.perf_counter() - t0
    by_seed = {(r["family"], r["seed"]): r["success"] for r in ev["rollouts"]}
    agree = sum(by_seed[(r["family"], r["seed"])] == r["success"] for r in ros["rollouts"])
    k_ros = sum(r["success"] for r in ros["rollouts"])
    k_ev = sum(r["success"] for r in ev["rollouts"])
    n = len(ros["rollouts"])
    out = {
        "ros2": {
            "success_rate": k_ros / n,
            "ci95": list(wilson_interval(k_ros, n)),
            "per_family": ros["success_rate_per_family"],
            "wall_s": ros_s,
        },
        "eval": {
            "success_rate": k_ev / n,
            "ci95": list(wilson_interval(k_ev, n)),
            "per_family": ev["success_rate_per_family"],
            "wall_s": eval_s,
        },
        "episodes": n,
        "same_outcome": agree,
    }
    print(f"{'':8s} {'success':>8s} {'95% CI':>12s}  per family")
    for name in ("ros2", "eval"):
        r = out[name]
        fams = ", ".join(f"{f} {v:.0%}" for f, v in r["per_family"].items())
        print(f"{name:8s} {r['success_rate']:8.1%} {r['ci95'][0]:5.1%}-{r['ci95'][1]:5.1%}  {fams}")
    print(f"same outcome on {agree}/{n} episodes")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--compare", action="store_true")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--families", default="pick_up,touch,push")
    p.add_argument("--seed", type=int, default=100_000)
    p.add_argument("--domain-id", type=int, default=61)
    p.add_argument("--skip-latency", action="store_true")
    args = p.parse_args()
    out: dict = {"bench": "ros2"}
    if not args.skip_latency:
        out["latency"] = latency(args.checkpoint, args.seconds)
    if args.compare:
        if not args.checkpoint:
            p.error("--compare needs --checkpoint (a trained policy)")
        out["compare"] = compare(args.checkpoint, args.episodes, args.families, args.seed, args.domain_id)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
