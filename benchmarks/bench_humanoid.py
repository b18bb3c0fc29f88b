"""Unitree G1 simulation speed: env steps/s with the three 96×96 cameras rendered every step.

One step = one 0.1 s control period: whole-body controller (mink IK + feed-forward torque), 20 physics
steps of 5 ms, the state vector, and three camera renders. The arms follow a slow scripted figure so
the IK and contacts do real work. Run it alone on the machine (other jobs share the 2 cores):

    MUJOCO_GL=egl nice -n 19 python benchmarks/bench_humanoid.py --seconds 20

Prints a table (per-step time split into controller / physics / state / render, median and p95) for
one process and for one process per core, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from vla.robots.g1.robot import G1Robot

PARTS = ("controller", "physics", "state", "render")


def _scripted_action(robot: G1Robot, step: int) -> np.ndarray:
    """Palms on slow circles (2 cm per step at most), hands opening and closing, waist swaying."""
    a = np.zeros(robot.space.dim)
    phase = 2 * np.pi * step / 40
    s = robot.space.slice
    a[s("left_arm")][:3] = 0.015 * np.array([np.cos(phase), 0.0, np.sin(phase)])
    a[s("right_arm")][:3] = 0.015 * np.array([np.cos(phase), -np.sin(phase), 0.0])
    a[s("hands")] = 0.5 + 0.5 * np.sin(phase)
    a[s("waist")][0] = 0.2 * np.sin(phase / 2)
    return a


def measure(seconds: float, image_size: tuple[int, int], seed: int) -> dict[str, list[float]]:
    """Steps the G1 for about `seconds`; returns per-step seconds of each part (and "total")."""
    import mujoco

    from vla.robots.g1.model import G1SceneConfig
    from vla.robots.g1.robot import G1Robot, G1RobotConfig

    robot = G1Robot(G1RobotConfig(scene=G1SceneConfig(image_size=image_size)))
    times: dict[str, list[float]] = {p: [] for p in (*PARTS, "total")}

    try:
        robot.reset(seed)
        robot.render()  # the GL context is created on first use; not part of a step
        start, step = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            if step % 200 == 0:
                robot.reset(seed + step)
            t0 = time.perf_counter()
            # The same work as G1Robot.step, timed part by part.
            cmd = robot.command(robot.validate(_scripted_action(robot, step)))
            ctrl0 = robot.data.ctrl.copy()
            targets = robot.controller.plan(cmd, robot.control_dt)
            end = robot.controller.actuator_targets(targets)
            t1 = time.perf_counter()
            for k in range(1, robot.substeps + 1):
                robot.data.ctrl[:] = ctrl0 + (end - ctrl0) * (k / robot.substeps)
                mujoco.mj_step(robot.model, robot.data)
            t2 = time.perf_counter()
            robot.state()
            t3 = time.perf_counter()
            robot.render()
            t4 = time.perf_counter()
            for name, dt in zip(
                (*PARTS, "total"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True
            ):
                times[name].append(dt)
            step += 1
    finally:
        robot.close()
    return times


def _init_worker() -> None:
    # Before any GL context exists in the spawned process: one llvmpipe thread per process.
    os.environ["LP_NUM_THREADS"] = "1"


def _worker(args: tuple[float, tuple[int, int], int]) -> dict[str, list[float]]:
    return measure(*args)


def _row(name: str, times: dict[str, list[float]], steps_per_s: float) -> str:
    ms = {p: 1e3 * np.asarray(v) for p, v in times.items()}
    cells = " ".join(f"{np.median(ms[p]):6.2f}/{np.percentile(ms[p], 95):6.2f}" for p in (*PARTS, "total"))
    return f"{name:18s} {len(ms['total']):6d} {steps_per_s:9.1f} {cells}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--processes", type=int, default=0, help="0: one per core")
    parser.add_argument("--image-size", default="96x96", help="HxW")
    args = parser.parse_args()
    h, w = (int(v) for v in args.image_size.lower().split("x"))
    n = args.processes or os.cpu_count() or 1

    one = measure(args.seconds, (h, w), 0)
    ctx = mp.get_context("spawn")
    with ctx.Pool(processes=n, initializer=_init_worker) as pool:
        many = pool.map(_worker, [(args.seconds, (h, w), 1000 * i) for i in range(n)])

    def rate(t: dict[str, list[float]]) -> float:
        return len(t["total"]) / max(sum(t["total"]), 1e-9)

    all_cores = sum(rate(t) for t in many)
    merged = {p: [x for t in many for x in t[p]] for p in (*PARTS, "total")}
    header = " ".join(f"{p + ' ms':>13s}" for p in (*PARTS, "total"))
    print(f"{'setting':18s} {'steps':>6s} {'steps/s':>9s} {header}   (median/p95)")
    print(_row("1 process", one, rate(one)))
    print(_row(f"{n} processes (sum)", merged, all_cores))
    total_ms = 1e3 * np.asarray(one["total"])
    print(
        json.dumps(
            {
                "steps_per_s_one_process": round(rate(one), 1),
                "steps_per_s_all_cores": round(all_cores, 1),
                "steps_per_s_median": round(1e3 / float(np.median(total_ms)), 1),
                "steps_per_s_p95": round(1e3 / float(np.percentile(total_ms, 95)), 1),
                "step_ms_median": round(float(np.median(total_ms)), 2),
                "step_ms_p95": round(float(np.percentile(total_ms, 95)), 2),
                **{f"{p}_ms_median": round(1e3 * float(np.median(one[p])), 2) for p in PARTS},
                "controller_ms_p95": round(1e3 * float(np.percentile(one["controller"], 95)), 2),
                "processes": n,
                "load_avg_1min": round(os.getloadavg()[0], 2),
                "image_size": [h, w],
                "cameras": 3,
                "seconds": args.seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
